"""A real PgBouncer in front of the stack's PostgreSQL, started by the harness.

Debian's pgbouncer refuses to run as root: when root, it runs as the unprivileged service user
and every file it writes (ini dir, log, pid) is that user's. It listens on 127.0.0.1 only.
"""
from __future__ import annotations

import shutil
import signal
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from harness.errors import StackError
from harness.stack import embedded, procs, urls

INSTALL = "install pgbouncer (apt-get install pgbouncer / brew install pgbouncer)"


def binary() -> Path | None:
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer") if Path(p).exists()), None)
    return Path(found) if found else None


@dataclass
class PgBouncer:
    """`databases` maps an alias to the PostgreSQL role it connects as (same database)."""

    workdir: Path
    database_url: str
    pool_mode: str = "transaction"
    pool_size: int = 10
    databases: dict[str, str] | None = None
    port: int = 0
    proc: object = None

    def start(self) -> None:
        exe = binary()
        if exe is None:
            raise StackError("no pgbouncer binary", hint=INSTALL)
        user = procs.service_user()
        pg = urllib.parse.urlsplit(self.database_url)
        dbname = pg.path.lstrip("/") or "perflab"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        if not procs.user_can_traverse(self.workdir, user):
            raise StackError(f"PgBouncer's user {user.name if user else '?'} cannot reach {self.workdir}",
                             hint="keep run artifacts under a world-traversable directory")
        owner = urllib.parse.unquote(pg.username or "postgres")
        roles = self.databases or {dbname: owner}
        # clients log in with SCRAM against the plaintext passwords here (mode 0600, the service
        # user's), and PgBouncer logs in to PostgreSQL with the same ones
        secrets = {r: self.password_of(r) for r in {*roles.values(), owner}}
        embedded.write_private(self.workdir / "userlist.txt",
                               "".join(f'"{r}" "{pw.replace(chr(34), chr(34) * 2)}"\n' for r, pw in secrets.items()),
                               user)
        log = self.workdir / "pgbouncer.log"
        log.touch()
        for _attempt in range(3):
            self.port = procs.free_port()
            dbs = "".join(f"{alias} = host={pg.hostname} port={pg.port or 5432} dbname={dbname} user={role}\n"
                          for alias, role in roles.items())
            (self.workdir / "pgbouncer.ini").write_text(
                f"[databases]\n{dbs}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {self.port}\n"
                "unix_socket_dir =\nauth_type = scram-sha-256\n"
                f"auth_file = {self.workdir / 'userlist.txt'}\npool_mode = {self.pool_mode}\n"
                f"default_pool_size = {self.pool_size}\nmin_pool_size = 0\nreserve_pool_size = 0\n"
                "max_client_conn = 1000\nserver_reset_query = DISCARD ALL\n"
                "ignore_startup_parameters = extra_float_digits,options\n"
                f"logfile = {log}\npidfile = {self.workdir / 'pgbouncer.pid'}\nadmin_users = {owner}\n"
                "log_connections = 0\nlog_disconnections = 0\n")
            procs.chown_tree(self.workdir, user)
            self.proc = procs.start([str(exe), str(self.workdir / "pgbouncer.ini")], self.workdir / "stdout.log",
                                    user=user, death_signal=signal.SIGTERM)
            try:
                procs.wait_ready("PgBouncer", lambda: procs.port_open(self.port), self.proc, log, timeout_s=10)
                return
            except StackError:
                procs.stop_child(self.proc)
                if "in use" in log.read_text(errors="replace"):
                    continue
                raise
        raise StackError("PgBouncer could not bind a free port after 3 tries")

    def password_of(self, role: str) -> str:
        """The stack user's own password, or a lab role's derived one (`urls.role_password`)."""
        if role == urllib.parse.unquote(urllib.parse.urlsplit(self.database_url).username or ""):
            return urls.password(self.database_url) or ""
        return urls.role_password(self.database_url, role)

    def url(self, alias: str, user: str) -> str:
        return urls.with_hostport(urls.with_database(
            urls.with_userinfo(self.database_url, user, self.password_of(user)), alias), "127.0.0.1", self.port)

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop_child(self.proc, signal.SIGINT)
            self.proc = None
