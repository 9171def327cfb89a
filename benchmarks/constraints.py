"""Write constraints/nightly.txt: the exact versions of perf-lab[test] and everything it pulls in,
as installed here, so the nightly job's environment changes only when someone changes this file
(and a change point that coincides with a dependency change says so).

    python benchmarks/constraints.py        # after `pip install -e '.[test]'`
"""
from __future__ import annotations

import importlib.metadata as md
import re
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def closure(name: str = "perf-lab", extras: frozenset[str] = frozenset({"test"})) -> dict[str, str]:
    seen: dict[str, str] = {}
    stack = [(name, extras)]
    while stack:
        dist_name, wanted = stack.pop()
        key = re.sub(r"[-_.]+", "-", dist_name).lower()
        if key in seen:
            continue
        try:
            dist = md.distribution(dist_name)
        except md.PackageNotFoundError:
            continue  # a requirement for another platform or Python
        seen[key] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (wanted or {""})):
                stack.append((req.name, frozenset(req.extras)))
    seen.pop("perf-lab", None)
    return seen


def main() -> None:
    pins = closure()
    target = ROOT / "constraints" / "nightly.txt"
    target.parent.mkdir(exist_ok=True)
    target.write_text("# Pinned versions for the nightly job (pip install -c constraints/nightly.txt -e '.[test]'):\n"
                      "# the environment changes only when someone changes this file. Regenerate: "
                      "python benchmarks/constraints.py\n" + "".join(f"{k}=={v}\n" for k, v in sorted(pins.items())))
    print(f"{target}: {len(pins)} pins")


if __name__ == "__main__":
    main()
