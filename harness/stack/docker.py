"""The docker stack: `docker compose up -d --wait` on the lab's compose definition, ports read back.

The definition is package data (harness/infra/docker-compose.yml). Run from a source tree, compose
builds the app image from it; run from an installed wheel, the lab first lays its packages out in
./.perflab/docker/ (the same layout), so the build has its sources. Settings come from the
environment and ./.env of the current directory (POSTGRES_PASSWORD, fixed ports).

Containers publish on 127.0.0.1 with ports Docker picks (or fixed ones from .env); we ask
`docker compose port` where each service landed and build URLs from that. `labs stack down
--stack docker` takes the containers down; `labs run --stack docker` leaves them running.
"""
from __future__ import annotations

import json
import os
import urllib.parse
import re
import shutil
import subprocess
from pathlib import Path

from harness.errors import StackError

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
"""Where the lab's packages live: a source tree (with pyproject.toml) or site-packages."""
COMPOSE = Path("harness") / "infra" / "docker-compose.yml"
SERVICES = {"postgres": 5432, "redis": 6379, "memcached": 11211, "pgbouncer": 6432}
NO_ENGINE_HINT = "start Docker (or use the embedded stack, which needs none: drop --stack docker)"


def parse_published(text: str) -> tuple[str, int]:
    """'127.0.0.1:55012' / '0.0.0.0:55012' / '[::]:55012' -> ('127.0.0.1', 55012)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    m = re.fullmatch(r"\[?([0-9a-fA-F:.]*)\]?:(\d+)", line)
    if not m or not 0 < int(m.group(2)) < 65536:
        raise StackError(f"could not read a published port from docker compose: {text.strip()!r}")
    host = m.group(1)
    return ("127.0.0.1" if host in {"", "0.0.0.0", "::"} else host), int(m.group(2))


def compose_file() -> Path:
    """The compose definition, beside the sources its app image is built from."""
    if (PACKAGE_ROOT / "pyproject.toml").is_file() and (PACKAGE_ROOT / COMPOSE).is_file():
        return PACKAGE_ROOT / COMPOSE
    return materialize(Path.cwd() / ".perflab" / "docker") / COMPOSE


def materialize(target: Path) -> Path:
    """Lay out the installed lab as a source tree (its packages and a pyproject.toml from the
    installed metadata) so `docker compose build` has what infra/Dockerfile copies. Idempotent."""
    import importlib.metadata

    meta = importlib.metadata.metadata("perf-lab")
    for package in ("harness", "labs", "scenarios"):
        src = PACKAGE_ROOT / package
        dst = target / package
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    requires = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    (target / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "perf-lab"\nversion = "{meta["Version"]}"\nrequires-python = ">=3.11"\n'
        f"dependencies = {json.dumps(requires)}\n\n"
        '[tool.setuptools.packages.find]\ninclude = ["harness*", "labs*", "scenarios*"]\n\n'
        '[tool.setuptools.package-data]\n"*" = ["*.md", "*.html", "*.conf", "*.json", "*.tmpl", "*.yml", "*.sh", '
        '"*.css", "*.js", "Dockerfile"]\n')
    (target / "README.md").write_text("Perf Lab, laid out for `docker compose build` by `labs stack up --stack docker`.\n")
    return target


def _compose(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    if shutil.which("docker") is None:
        raise StackError("the docker client is not installed", hint=NO_ENGINE_HINT)
    env_file = Path.cwd() / ".env"
    argv = ["docker", "compose", "-f", str(compose_file()), *(["--env-file", str(env_file)] if env_file.exists()
                                                                else []), *args]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=Path.cwd())
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"docker compose {' '.join(args)} timed out after {timeout:.0f} s") from exc


def explain_failure(done: subprocess.CompletedProcess) -> StackError:
    text = (done.stderr or done.stdout or "").strip()
    if "unknown shorthand flag" in text or "is not a docker command" in text or "unknown command" in text:
        return StackError("docker compose (v2 plugin) is not available", hint=NO_ENGINE_HINT)
    if "Cannot connect to the Docker daemon" in text or "docker daemon" in text.lower() or "docker.sock" in text:
        return StackError("no Docker engine is reachable: " + text.splitlines()[-1], hint=NO_ENGINE_HINT)
    if "POSTGRES_PASSWORD" in text:
        return StackError("POSTGRES_PASSWORD is not set", hint="cp .env.example .env and set a password")
    return StackError("docker compose failed:\n    " + "\n    ".join(text.splitlines()[-6:]))


def available() -> str | None:
    if shutil.which("docker") is None:
        return "the docker client is not installed"
    done = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                          timeout=20)
    if done.returncode != 0:
        return "no Docker engine is reachable"
    return None


APP = ("app", 8000)
"""The lab app under Gunicorn (infra/Dockerfile): `labs stack up --stack docker` starts it for you to
click through or load; scenarios start their own servers, so `labs run` needs only the data services."""


def up(with_app: bool = False) -> dict[str, str]:
    """Bring the data services up — and the lab app, `with_app` — (idempotent); component -> URL."""
    reason = available()
    if reason:
        raise StackError(reason, hint=NO_ENGINE_HINT)
    done = _compose("up", "-d", "--wait", *SERVICES, *((APP[0],) if with_app else ()), timeout=900)
    if done.returncode != 0:
        raise explain_failure(done)
    found = urls()
    if with_app:
        done = _compose("port", APP[0], str(APP[1]), timeout=30)
        if done.returncode != 0:
            raise explain_failure(done)
        host, published = parse_published(done.stdout)
        found["app"] = f"http://{host}:{published}"
    return found


def urls() -> dict[str, str]:
    password = os.environ.get("POSTGRES_PASSWORD") or _env_file().get("POSTGRES_PASSWORD", "")
    out = {}
    for service, port in SERVICES.items():
        done = _compose("port", service, str(port), timeout=30)
        if done.returncode != 0:
            raise explain_failure(done)
        host, published = parse_published(done.stdout)
        if service in {"postgres", "pgbouncer"}:
            out[service] = pg_url(password, host, published)
        elif service == "redis":
            out[service] = f"redis://{host}:{published}/0"
        else:
            out[service] = f"memcached://{host}:{published}"
    return out


def pg_url(password: str, host: str, port: int | str) -> str:
    """The compose PostgreSQL's URL, the password quoted: a '/', '#' or '@' in it must not end
    the authority (psycopg and `urls.pg_connect_kwargs` decode it back)."""
    return f"postgresql://perflab:{urllib.parse.quote(password, safe='')}@{host}:{port}/perflab"


def down() -> None:
    done = _compose("down", "--remove-orphans")
    if done.returncode != 0:
        raise explain_failure(done)


def _env_file() -> dict[str, str]:
    """./.env read as docker compose reads it: `KEY=value`, `export KEY=…`, surrounding single or
    double quotes removed (single: literal; double: `\\"` and `\\\\` unescaped), an unquoted value
    ending at ` #`; nothing percent-decoded (the value is the password itself)."""
    path = Path.cwd() / ".env"
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            key = key.strip().removeprefix("export ").strip()
            if not sep or not key or key.startswith("#"):
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]
            elif len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            else:
                value = value.split(" #", 1)[0].rstrip()
            values[key] = value
    return values
