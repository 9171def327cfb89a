"""The docker stack: `docker compose up -d --wait` on docker-compose.yml, ports read back.

Containers publish on 127.0.0.1 with ports Docker picks (or fixed ones from .env); we ask
`docker compose port` where each service landed and build URLs from that. `labs stack down
--stack docker` takes the containers down; `labs run --stack docker` leaves them running.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from harness.errors import StackError

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
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


def _compose(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    if shutil.which("docker") is None:
        raise StackError("the docker client is not installed", hint=NO_ENGINE_HINT)
    try:
        return subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), *args], capture_output=True,
                              text=True, timeout=timeout, cwd=REPO_ROOT)
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


def up() -> dict[str, str]:
    """Bring the data services up (idempotent) and return component -> URL."""
    reason = available()
    if reason:
        raise StackError(reason, hint=NO_ENGINE_HINT)
    done = _compose("up", "-d", "--wait", *SERVICES)
    if done.returncode != 0:
        raise explain_failure(done)
    return urls()


def urls() -> dict[str, str]:
    password = os.environ.get("POSTGRES_PASSWORD") or _env_file().get("POSTGRES_PASSWORD", "")
    out = {}
    for service, port in SERVICES.items():
        done = _compose("port", service, str(port), timeout=30)
        if done.returncode != 0:
            raise explain_failure(done)
        host, published = parse_published(done.stdout)
        if service in {"postgres", "pgbouncer"}:
            out[service] = f"postgresql://perflab:{password}@{host}:{published}/perflab"
        elif service == "redis":
            out[service] = f"redis://{host}:{published}/0"
        else:
            out[service] = f"memcached://{host}:{published}"
    return out


def down() -> None:
    done = _compose("down", "--remove-orphans")
    if done.returncode != 0:
        raise explain_failure(done)


def _env_file() -> dict[str, str]:
    path = REPO_ROOT / ".env"
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.strip().startswith("#"):
                values[key.strip()] = value.strip()
    return values
