"""Environment metadata recorded once per run, next to the values (never filled in later)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=5).stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        return {"git_sha": None, "git_dirty": None}
    return {"git_sha": sha or None, "git_dirty": dirty if sha else None}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def collect(stack_description: dict[str, Any]) -> dict[str, Any]:
    import django

    return {
        **git_state(),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "gil_enabled": bool(getattr(sys, "_is_gil_enabled", lambda: True)()),
        "django": django.get_version(),
        "stack": stack_description,
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "machine": f"{platform.system()} {platform.release()} {platform.machine()}",
        "hostname": platform.node(),
    }


def database_versions(stack) -> dict[str, str]:
    """The PostgreSQL server's version, asked over the stack's URL (no Django needed)."""
    import psycopg

    url = stack.urls.get("postgres")
    if not url:
        return {}
    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
            return {"postgres": conn.execute("SHOW server_version").fetchone()[0]}
    except psycopg.Error:
        return {}
