"""`labs report`: one stored run written as self-contained HTML, Markdown or PNG."""
from __future__ import annotations

from pathlib import Path

from harness.errors import LabsError, UsageError
from harness.results import store

FORMATS = ("html", "md", "png")


def write(path: Path, fmt: str, output: Path | None = None) -> Path:
    """Render the result at `path` as `fmt` beside it (or to `output`); returns the file written."""
    from harness.present import charts, html
    from harness.project import registry

    result = store.load(path)
    target = output or path.with_suffix({"html": ".html", "md": ".md", "png": ".png"}[fmt])
    try:
        lesson = registry.get(result.scenario).lesson_text()
    except LabsError:
        lesson = ""  # a result of a scenario this project does not have: report it without its lesson
    try:
        if fmt == "png":
            charts.result_png(result, target)
        elif fmt == "md":
            store.write_text_atomic(target, html.to_markdown(result))
        else:
            store.write_text_atomic(target, html.to_html(result, lesson))
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target
