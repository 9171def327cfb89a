"""A real streaming replica of the embedded stack's PostgreSQL: `pg_basebackup -R` (the base copy
and `primary_conninfo` + `standby.signal`), then a second postmaster on its own loopback port,
run as the service user, stopped however the run ends (parent-death signal; `stop`).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import StackError
from harness.stack import embedded, procs, urls


def available() -> bool:
    """pg_basebackup beside the embedded PostgreSQL binaries."""
    try:
        return any((d / "pg_basebackup").exists() for d in embedded.pg_bindir_candidates())
    except Exception:  # noqa: BLE001 — no PostgreSQL at all: nothing to start
        return False


@dataclass
class Replica:
    primary_url: str
    workdir: Path
    apply_delay_ms: int = 0
    """recovery_min_apply_delay: apply each commit this much later (a replica across a network or
    under load; 0 = as soon as it arrives)."""
    port: int = 0
    proc: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        # the same role, password and database as the primary: the replica is a copy of it
        return urls.with_hostport(self.primary_url, "127.0.0.1", self.port)

    def start(self) -> None:
        user = procs.service_user()
        bindir = embedded.pg_bindir(user)
        primary = urllib.parse.urlsplit(self.primary_url)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        data, log = self.workdir / "data", self.workdir / "replica.log"
        procs.chown_tree(self.workdir, user)
        kwargs = {"user": user.uid, "group": user.gid, "extra_groups": []} if user else {}
        base = subprocess.run(
            [str(bindir / "pg_basebackup"), "-D", str(data), "-h", "127.0.0.1", "-p", str(primary.port),
             "-U", urllib.parse.unquote(primary.username or "postgres"), "-R", "-X", "stream", "--no-sync", "-c", "fast"],
            capture_output=True, text=True, cwd=self.workdir, timeout=120,
            env={**os.environ, "PGPASSWORD": urls.password(self.primary_url) or ""}, **kwargs)
        if base.returncode != 0:
            raise StackError(f"pg_basebackup failed:\n{base.stderr.strip()}",
                             hint="the primary must accept replication connections from 127.0.0.1 (pg_hba)")
        # its own socket directory and port; everything else as the primary's copy says
        sock = self.workdir / "sock"
        sock.mkdir()
        procs.chown_tree(self.workdir, user)
        with open(data / "postgresql.auto.conf", "a") as fh:
            fh.write(f"\nunix_socket_directories = '{sock}'\nhot_standby = on\n"
                     f"recovery_min_apply_delay = '{self.apply_delay_ms}ms'\n")
        self.proc, self.port = embedded.launch_postmaster(bindir, data, log, user, cwd=self.workdir,
                                                          what="PostgreSQL replica",
                                                          password=urls.password(self.primary_url))

    def stop(self, keep_log: Path | None = None) -> None:
        """Fast shutdown; its log copied to `keep_log`; its files removed."""
        try:
            if self.proc is not None:
                procs.stop_child(self.proc, signal.SIGINT)
                self.proc = None
        finally:
            log = self.workdir / "replica.log"
            if keep_log is not None and log.exists():
                keep_log.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log, keep_log)
            shutil.rmtree(self.workdir, ignore_errors=True)
