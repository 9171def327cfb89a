"""Where two structured values first differ, said as a path and the two values there.

    first_difference([{"results": [{"author": {"bio": "bio user0"}}]}], [...])
    -> "unit 0: $.results[0].author.bio: 'bio user0' != 'bio user25'"

Long strings are shown around their first differing character, so two 5 kB pages that differ in
one word say which word.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

LIMIT = 60


def first_difference(mine: Sequence[Any], theirs: Sequence[Any]) -> str:
    """The first differing unit result of two passes (lists of per-unit results)."""
    for i, (a, b) in enumerate(zip(mine, theirs)):
        if a != b:
            path, x, y = _walk(a, b, "$")
            return f"unit {i}: {path}: {_show(x, y)}"
    return f"{len(mine)} results vs {len(theirs)}"


def _walk(a: Any, b: Any, path: str) -> tuple[str, Any, Any]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in b:
                return f"{path}{_key(key)}", a[key], _Absent()
            if key not in a:
                return f"{path}{_key(key)}", _Absent(), b[key]
            if a[key] != b[key]:
                return _walk(a[key], b[key], f"{path}{_key(key)}")
        return path, a, b
    if _is_seq(a) and _is_seq(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _walk(x, y, f"{path}[{i}]")
        if len(a) != len(b):
            return f"{path} (length)", len(a), len(b)
        return path, a, b
    if isinstance(a, (set, frozenset)) and isinstance(b, (set, frozenset)):
        return f"{path} (only in one: {_clip(repr(sorted(map(repr, a ^ b))))})", _clip(repr(a)), _clip(repr(b))
    return path, a, b


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


def _is_seq(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _key(key: Any) -> str:
    return f".{key}" if isinstance(key, str) and key.isidentifier() else f"[{key!r}]"


def _show(a: Any, b: Any) -> str:
    if isinstance(a, str) and isinstance(b, str) and (len(a) > LIMIT or len(b) > LIMIT):
        at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        start = max(0, at - LIMIT // 3)
        return (f"at character {at}: {_window(a, start)} != {_window(b, start)}")
    return f"{_clip(repr(a))} != {_clip(repr(b))}"


def _window(text: str, start: int) -> str:
    part = text[start:start + LIMIT]
    return ("…" if start else "") + repr(part) + ("…" if start + LIMIT < len(text) else "")


def _clip(text: str) -> str:
    return text if len(text) <= LIMIT else text[: LIMIT - 1] + "…"
