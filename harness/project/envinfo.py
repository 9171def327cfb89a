"""Environment metadata recorded once per run, next to the values (never filled in later)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

def project_root(start: Path | None = None) -> Path:
    """The repository being measured: the git work tree of the current directory (the user's
    project, or the lab's own clone), else the directory itself. Results, history and asv belong
    to it — never to wherever the lab happens to be installed."""
    here = (start or Path.cwd()).resolve()
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=here, capture_output=True, text=True,
                             timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        top = ""
    return Path(top) if top else here


def git_state(root: Path | None = None) -> dict[str, Any]:
    root = root or project_root()
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


def packages() -> list[str]:
    """Every installed distribution as name==version, sorted: what the run measured with."""
    import importlib.metadata

    seen = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name and name not in seen:
            seen[name] = dist.version
    return [f"{name}=={version}" for name, version in sorted(seen.items())]


def collect(stack_description: dict[str, Any]) -> dict[str, Any]:
    import hashlib

    import django

    installed = packages()
    cpus = os.cpu_count()
    return {
        **git_state(),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "gil_enabled": bool(getattr(sys, "_is_gil_enabled", lambda: True)()),
        "django": django.get_version(),
        "stack": stack_description,
        "cpus": cpus,
        "cpu_model": cpu_model(),
        "machine_class": os.environ.get("LABS_MACHINE_CLASS") or f"{cpus} cpu · {cpu_model()}",
        "packages": installed,
        "packages_hash": hashlib.sha256("\n".join(installed).encode()).hexdigest()[:16],
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
