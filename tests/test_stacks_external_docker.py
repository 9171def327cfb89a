"""The docker stack (checked statically: no engine here) and the external stack (run for real
against a second, separately started PostgreSQL + Valkey: the wiring the docker stack uses)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.errors import StackError
from harness.stack import docker, embedded, redact
from harness.stack.urls import with_database

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "harness" / "infra" / "docker-compose.yml"
"""The definition (package data: an installed lab has it too)."""
ROOT_COMPOSE = ROOT / "docker-compose.yml"
"""What `docker compose` typed in a clone reads: it includes the definition."""


def test_compose_files_match_the_compose_spec():
    from tests.helpers import need

    need("check-jsonschema", bool(shutil.which("check-jsonschema")), "pip install -e '.[test]'")
    done = subprocess.run(["check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE),
                           str(ROOT_COMPOSE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert yaml.safe_load(ROOT_COMPOSE.read_text())["include"][0]["path"] == "harness/infra/docker-compose.yml"


def test_every_path_the_compose_file_names_exists_beside_it():
    """Volumes, the build context and the Dockerfile resolve relative to the compose file, as
    docker compose resolves them — in the source tree, and in an installed package's copy."""
    spec = yaml.safe_load(COMPOSE.read_text())
    here = COMPOSE.parent
    for name, svc in spec["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (here / source).exists(), (name, source)
        if "build" in svc:
            context = (here / svc["build"]["context"]).resolve()
            assert (context / svc["build"]["dockerfile"]).is_file(), name
            dockerfile = (context / svc["build"]["dockerfile"]).read_text()
            for line in dockerfile.splitlines():
                if line.startswith("COPY") and "--from" not in line:
                    for src in line.split()[1:-1]:
                        assert (context / src).exists(), (name, line)


def test_compose_file_is_loopback_only_healthy_and_secret_free():
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert {"postgres", "pgbouncer", "redis", "memcached", "app", "locust-master", "locust-worker"} <= set(services)
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
        if name not in {"locust-master", "locust-worker"}:
            assert "healthcheck" in svc, name
        for dep, cond in (svc.get("depends_on") or {}).items() if isinstance(svc.get("depends_on"), dict) else ():
            assert cond["condition"] == "service_healthy", (name, dep)
    assert services["locust-master"]["profiles"] == ["load"]
    assert services["worker"]["profiles"] == services["rabbitmq"]["profiles"] == ["tasks"]
    assert services["worker"]["command"][:3] == ["celery", "-A", "labs.celery_app"]
    assert "pgdata" in spec["volumes"]
    text = COMPOSE.read_text()
    assert "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?" in text  # required from .env, never committed
    assert (ROOT / ".env.example").exists() and ".env" in (ROOT / ".gitignore").read_text().split()
    for svc in ("postgres", "redis", "memcached", "pgbouncer"):
        assert docker.SERVICES[svc] in [int(str(p).rsplit(":", 1)[1]) for p in services[svc]["ports"]]


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:55012\n", ("127.0.0.1", 55012)),
    ("0.0.0.0:5432", ("127.0.0.1", 5432)),
    ("[::]:6379", ("127.0.0.1", 6379)),
    ("[::1]:6379", ("::1", 6379)),
])
def test_parse_published_port(text, expected):
    assert docker.parse_published(text) == expected


@pytest.mark.parametrize("text", ["", "no port", "127.0.0.1:99999", ":0"])
def test_parse_published_port_garbage(text):
    with pytest.raises(StackError):
        docker.parse_published(text)


def test_compose_failures_are_explained():
    def fail(stderr: str) -> StackError:
        return docker.explain_failure(subprocess.CompletedProcess([], 1, "", stderr))

    no_engine = fail("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?")
    assert "no Docker engine" in no_engine.message and "embedded" in no_engine.hint
    assert "compose" in fail("unknown shorthand flag: 'f' in -f").message
    assert "POSTGRES_PASSWORD" in fail('required variable POSTGRES_PASSWORD is missing a value').message


def test_docker_stack_without_engine_is_a_clear_stack_error(tmp_path):
    if docker.available() is None:
        pytest.skip("a Docker engine is reachable here")
    done = subprocess.run([sys.executable, "-m", "harness", "run", "n_plus_one", "--stack", "docker",
                           "--results-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert "Docker" in done.stderr and "embedded stack" in done.stderr and "Traceback" not in done.stderr


def test_redact_hides_passwords():
    assert redact("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"


@pytest.fixture(scope="module")
def second_stack(runtime_dir):
    """A separately started PostgreSQL + Valkey (+ memcached), as a user's managed services would be."""
    stack = embedded.EmbeddedStack(embedded.runtime_dir() / "external-under-test")
    stack.start()
    yield stack
    stack.stop()
    shutil.rmtree(stack.base, ignore_errors=True)


@pytest.mark.stack
@pytest.mark.parametrize("scenario, params", [
    ("n_plus_one", ["books=3,6", "catalog=30"]),
    ("caching", ["ops=60", "keys=20", "ops_per_sample=20", "readers=4", "recompute_work=100000", "catalog=30"]),
])
def test_external_stack_runs_the_scenarios(second_stack, tmp_path, scenario, params):
    # a database that does not exist yet (the lab creates and marks its own) and the server's
    # password, which must not leak into anything stored or printed
    secret = second_stack.secret
    env = {**os.environ,
           "DATABASE_URL": with_database(second_stack.services["postgres"].url, "lab_external"),
           "REDIS_URL": second_stack.services["redis"].url}
    if "memcached" in second_stack.services:
        env["MEMCACHED_URL"] = second_stack.services["memcached"].url
    args = [sys.executable, "-m", "harness", "run", scenario, "--stack", "external", "--no-chart",
            "--results-dir", str(tmp_path)]
    for p in params:
        args += ["--param", p]
    import redis

    user_redis = {db: redis.Redis.from_url(second_stack.services["redis"].url.rsplit("/", 1)[0] + f"/{db}")
                  for db in (0, 1)}
    for db, client in user_redis.items():  # a user's own keys, in the lab's db and another
        client.set("user:keep", f"mine-{db}")
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for db, client in user_redis.items():
        assert client.get("user:keep") == f"mine-{db}".encode()
        assert not list(client.scan_iter("labs*")), f"the lab left its keys in db {db}"
        client.close()
    (result_file,) = tmp_path.glob("*.json")
    text = result_file.read_text()
    assert secret not in text and secret not in done.stdout + done.stderr
    data = json.loads(text)
    assert data["ok"] and data["env"]["stack"]["kind"] == "external"
    expected = {"postgres", "redis"} | ({"memcached"} if "memcached" in second_stack.services else set())
    assert set(data["env"]["stack"]["components"]) == expected


@pytest.mark.stack
def test_external_stack_unreachable_database_is_a_stack_error(tmp_path):
    env = {**os.environ, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nope"}
    done = subprocess.run([sys.executable, "-m", "harness", "run", "n_plus_one", "--stack", "external",
                           "--results-dir", str(tmp_path)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 3, done.stderr
    assert "cannot connect" in done.stderr and "Traceback" not in done.stderr


def test_compose_env_and_urls_keep_a_password_whole(tmp_path, monkeypatch):
    from harness.stack.urls import password, pg_connect_kwargs

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text('POSTGRES_PASSWORD="p#w/d@%20x"\nOTHER=\'lit\'\nPLAIN=v # note\n')
    env = docker._env_file()
    assert env == {"POSTGRES_PASSWORD": "p#w/d@%20x", "OTHER": "lit", "PLAIN": "v"}  # as compose reads it
    url = docker.pg_url(env["POSTGRES_PASSWORD"], "127.0.0.1", 5432)
    assert password(url) == "p#w/d@%20x" and pg_connect_kwargs(url)["password"] == "p#w/d@%20x"
    assert "p#w" not in redact(url) and redact(url).endswith("@127.0.0.1:5432/perflab")
