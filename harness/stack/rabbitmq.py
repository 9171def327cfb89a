"""A real RabbitMQ broker for the tasks scenario, started by the harness like PgBouncer.

It runs the Debian/Homebrew `rabbitmq-server` (Erlang) as the unprivileged service user, on
127.0.0.1 only, with every port its own (AMQP, Erlang distribution, epmd) so it never meets a
system RabbitMQ, and its node name, database, logs and Erlang cookie under its work directory.
Stopped with SIGTERM (then SIGKILL) and with the run, whatever ends it.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import StackError
from harness.stack import embedded, procs

INSTALL = "install rabbitmq-server (apt-get install rabbitmq-server / brew install rabbitmq)"
CANDIDATES = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/local/sbin/rabbitmq-server",
              "/opt/homebrew/sbin/rabbitmq-server")


def binary() -> Path | None:
    """The server script itself (Debian's /usr/sbin wrapper insists on its own `rabbitmq` user)."""
    for path in CANDIDATES:
        if Path(path).exists():
            return Path(path)
    found = shutil.which("rabbitmq-server")
    return Path(found) if found else None


def _amqp_ready(port: int) -> bool:
    """AMQP answers its protocol header (a bare open port is not enough: the broker boots late)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            return sock.recv(8)[:1] == b"\x01"  # connection.start
    except OSError:
        return False


@dataclass
class RabbitMQ:
    workdir: Path
    port: int = 0
    proc: object = field(default=None, repr=False)
    ready: bool = False
    epmd: object = field(default=None, repr=False)
    secret: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    """The broker's only account's password: another local account cannot use it (no guest)."""

    @property
    def url(self) -> str:
        return f"amqp://perflab:{self.secret}@127.0.0.1:{self.port}//"

    def start(self, timeout_s: float = 60.0) -> None:
        self.launch()
        self.wait_ready(timeout_s)

    def launch(self) -> None:
        """Start the broker without waiting for it (`wait_ready` does): its seconds of boot can
        overlap other work."""
        exe = binary()
        if exe is None:
            raise StackError("no rabbitmq-server binary", hint=INSTALL)
        user = procs.service_user()
        self.workdir = self.workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        if not procs.user_can_traverse(self.workdir, user):
            raise StackError(f"RabbitMQ's user {user.name if user else '?'} cannot reach {self.workdir}",
                             hint="keep run artifacts under a world-traversable directory")
        self.port = procs.free_port()
        dist, epmd = procs.free_port(), procs.free_port()
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(os.urandom(16).hex())
        cookie.chmod(0o400)
        conf = self.workdir / "rabbitmq.conf"
        # one account of the lab's own (no guest/guest), in a file only the broker's user reads;
        # no management or other listeners
        embedded.write_private(conf, f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
                               f"default_user = perflab\ndefault_pass = {self.secret}\n"
                               "loopback_users = none\nlog.console = true\nlog.file = false\n")
        (self.workdir / "enabled_plugins").write_text("[].\n")
        procs.chown_tree(self.workdir, user)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": f"perflab{self.port}@localhost", "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(dist), "ERL_EPMD_PORT": str(epmd),
            "ERL_EPMD_ADDRESS": "127.0.0.1", "RABBITMQ_CONFIG_FILE": str(conf.with_suffix("")),
            "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"), "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.workdir / "rabbitmq.pid"), "RABBITMQ_ALLOW_INPUT": "",
            "RABBITMQ_CONF_ENV_FILE": str(self.workdir / "rabbitmq-env.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.workdir / "advanced.config"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+S 1:1 +sbwt none",  # a small broker: one scheduler
        }
        log = self.workdir / "rabbitmq.log"
        # our own epmd, in the foreground, as our child: the broker finds it on ERL_EPMD_PORT and does
        # not start `epmd -daemon` (which detaches and outlives every run)
        epmd_exe = shutil.which("epmd") or next((p for p in ("/usr/lib/erlang/bin/epmd",) if Path(p).exists()), None)
        if epmd_exe:
            self.epmd = procs.start([epmd_exe, "-port", str(epmd), "-address", "127.0.0.1"],
                                    self.workdir / "epmd.log", user=user, env=env, death_signal=signal.SIGTERM,
                                    cwd=self.workdir)
            procs.wait_ready("epmd", lambda: procs.port_open(epmd), self.epmd, self.workdir / "epmd.log",
                             timeout_s=10)
        self.proc = procs.start([str(exe)], log, user=user, env=env, death_signal=signal.SIGTERM, cwd=self.workdir)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        try:
            procs.wait_ready("RabbitMQ", lambda: _amqp_ready(self.port), self.proc, self.workdir / "rabbitmq.log",
                             timeout_s=timeout_s)
        except StackError:
            self.stop()
            raise
        self.ready = True

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop_child(self.proc, signal.SIGTERM)  # the whole family: beam, inet_gethost
            self.proc = None
        if self.epmd is not None:
            procs.stop_child(self.epmd, signal.SIGTERM)
            self.epmd = None

    def keep_log(self, dest: Path) -> None:
        """Copy the broker's log to `dest`, then remove its work directory (database, cookie)."""
        log = self.workdir / "rabbitmq.log"
        try:
            if log.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log, dest)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
