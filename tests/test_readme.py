"""Every `labs …` command shown in the README and the docs parses against the real CLI, and the
scenario, variant, parameter and exercise names it uses exist: the docs cannot drift from the code."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from harness.cli import app
from harness.project import registry
from harness.workshop import exercises as ws

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/workshop.md", "docs/own-code.md"]


def _shown_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) for every `labs` line of a fenced shell block; `a | b` alternatives expanded,
    `[optional]` brackets dropped, `x|y` values taken as their first choice, N as 1."""
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        for block in re.findall(r"```(?:bash|sh|console|shell)?\n(.*?)```", text, re.S):
            for line in block.splitlines():
                line = re.split(r"\s+#", line.strip(), maxsplit=1)[0].strip()
                if not line.startswith("labs "):
                    continue
                first, *alternatives = line.split(" | ")
                base = first.split()
                for words in [base] + [base[:-1] + alt.split() for alt in alternatives]:
                    argv = []
                    for word in words[1:]:
                        word = word.strip("[]")
                        word = word.split("|")[0] if "|" in word else word
                        argv.append("1" if word == "N" else word)
                    found.append((f"{doc}: {line}", argv))
        for span in re.findall(r"`(labs [^`]*)`", text):
            if "…" in span or span in DELIBERATE_MISTAKES:
                continue
            words = ["1" if w == "N" else "n_plus_one" if w == "NAME" else "HEAD~1..HEAD" if w == "A..B" else w
                     for w in span.split()[1:]]
            found.append((f"{doc}: {span} (inline)", words))
    return found


DELIBERATE_MISTAKES = {"labs run cachign"}  # the README's example of a typo and its "did you mean"


COMMANDS = _shown_commands()


def test_the_docs_show_the_headline_commands():
    shown = {" ".join(argv) for _, argv in COMMANDS}
    assert "run caching" in shown and "check 1" in shown and "asv backfill HEAD~10..HEAD" in shown
    assert len(COMMANDS) >= 30


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[" ".join(w.split(": ", 1)[1].split())[:60] for w, _ in COMMANDS])
def test_shown_command_parses_and_names_exist(where, argv):
    cmd = typer.main.get_command(app)
    args = list(argv)
    path = []
    if args and args[0].startswith("--"):  # the app's own options (labs --install-completion)
        opts = {o for p in cmd.params for o in p.opts}
        assert set(args) <= opts, f"{where}: {args} are not options of labs ({sorted(opts)})"
        return
    while hasattr(cmd, "commands"):
        assert args, f"{where}: a command group needs a subcommand"
        name = args.pop(0)
        assert name in cmd.commands, f"{where}: `labs {' '.join(path + [name])}` is not a command"
        path.append(name)
        cmd = cmd.commands[name]
    try:
        params = cmd.make_context(" ".join(path), args).params
    except Exception as exc:  # click's usage errors: unknown option, bad value, missing argument
        if where.endswith("(inline)") and type(exc).__name__ == "MissingParameter" and not args:
            return  # prose naming a command (`labs run`), not a command line to run
        pytest.fail(f"{where}: {type(exc).__name__}: {exc}")
    scenarios = [s for s in params.get("scenarios") or [params.get("scenario")] if s and s != "all"]
    for name in scenarios:
        assert name in registry.names(), f"{where}: no scenario {name!r}"
    known_variants = {v for s in scenarios for p in ("quick", "full") for v in registry.get(s).variant_names(p)}
    for variant in (params.get("variants") or "").split(",") + [params.get("variant") or ""]:
        assert not variant or variant in known_variants, f"{where}: no variant {variant!r}"
    for item in params.get("param") or ():
        key = item.partition("=")[0]
        assert any(key in registry.get(s).profiles["quick"] for s in scenarios), f"{where}: no parameter {key!r}"
    if path in (["check"], ["workshop", "start"], ["workshop", "hint"], ["workshop", "solution"],
                ["workshop", "reset"]):
        ws.get(params["number"])
