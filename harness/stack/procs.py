"""Child processes of the harness: start them safely, wait until they serve, stop them for sure.

Every server binds 127.0.0.1. Processes of a temporary stack get a parent-death signal (Linux),
so even a SIGKILLed `labs` leaves no orphan behind; a warm stack's processes are detached on
purpose and tracked by PID in the state file instead.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from harness.errors import StackError

SERVICE_USER = "perflab"
"""Unprivileged account that runs PostgreSQL (and PgBouncer, memcached) when labs runs as root."""

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the caller retries if it is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class ServiceUser:
    name: str
    uid: int
    gid: int


def service_user() -> ServiceUser | None:
    """The account to drop to when we are root (created on first use), else None."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        try:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 "--user-group", SERVICE_USER],
                check=True, capture_output=True, text=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            raise StackError(
                f"running as root, and could not create the unprivileged user {SERVICE_USER!r} "
                f"that PostgreSQL needs: {detail.strip()}",
                hint=f"create it yourself (useradd --system {SERVICE_USER}) or run labs as a normal user",
            ) from exc
        entry = pwd.getpwnam(SERVICE_USER)
    return ServiceUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def chown_tree(path: Path, user: ServiceUser | None) -> None:
    if user is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, user.uid, user.gid)
        for name in files:
            os.chown(os.path.join(root, name), user.uid, user.gid)


def user_can_traverse(path: Path, user: ServiceUser | None) -> bool:
    """True when `user` can reach `path` (execute bit on every parent directory)."""
    if user is None:
        return True
    path = path.resolve()
    for parent in [path, *path.parents]:
        st = parent.stat()
        if st.st_uid == user.uid:
            ok = st.st_mode & 0o100
        elif st.st_gid == user.gid:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            return False
    return True


def _death_signal(sig: int) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child after setuid: the kernel keeps the setting
        set_death_signal(sig)

    return preexec


_LIBC = ctypes.util.find_library("c")


def set_death_signal(sig: int) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux; a no-op elsewhere)."""
    if _LIBC and sys.platform.startswith("linux"):
        ctypes.CDLL(_LIBC, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


def start(
    argv: Sequence[str],
    log_path: Path,
    *,
    user: ServiceUser | None = None,
    detached: bool = False,
    death_signal: int = signal.SIGTERM,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen:
    """Start a server process with its output in `log_path`.

    `detached=True` is for the warm stack: new session, no parent-death signal.
    Otherwise the process dies with us even if we are SIGKILLed.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    try:
        kwargs: dict = {}
        if user is not None:
            kwargs.update(user=user.uid, group=user.gid, extra_groups=[])
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, not the servers: we stop them in order
            preexec_fn=None if detached else _death_signal(death_signal),
            env=env,
            cwd=cwd,
            **kwargs,
        )
    except FileNotFoundError as exc:
        raise StackError(f"cannot run {argv[0]}: not found") from exc
    except PermissionError as exc:
        raise StackError(f"cannot run {argv[0]}: permission denied") from exc
    finally:
        log.close()


def wait_ready(
    name: str,
    ready: Callable[[], bool],
    proc: subprocess.Popen | None,
    log_path: Path,
    timeout_s: float = 30.0,
) -> None:
    """Poll `ready()` until it is true; fail with the tail of the log if the process exits."""
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while time.monotonic() < deadline:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{name} exited during start-up (code {proc.returncode}):\n{log_tail(log_path)}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)
    raise StackError(f"{name} did not become ready within {timeout_s:.0f} s:\n{log_tail(log_path)}")


def log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:]) or "(empty log)"


def stop_pid(pid: int, sig: int = signal.SIGTERM, timeout_s: float = 10.0, expect: str | None = None) -> None:
    """Signal a process and wait for it and its children to go; SIGKILL what lingers.

    `expect`: a word its command line must contain. PIDs read back from a state file may have
    been reused by an unrelated process since; that one is left alone.
    """
    try:
        if expect is not None and expect not in " ".join(psutil.Process(pid).cmdline()):
            return
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return
    _stop_families([pid], sig, timeout_s)


def stop_child(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """stop_pid for a process we started, then reap it."""
    stop_children([proc], sig)


def stop_children(children: list[subprocess.Popen], sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
    """Stop processes we started, all at once (their shutdowns overlap), then reap them."""
    _stop_families([proc.pid for proc in children], sig, timeout_s)
    for proc in children:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _stop_families(pids: list[int], sig: int, timeout_s: float) -> None:
    """Signal each process, wait for it and its children together, SIGKILL what lingers."""
    families: list[psutil.Process] = []
    for pid in pids:
        try:
            main = psutil.Process(pid)
            family = [main, *main.children(recursive=True)]
            main.send_signal(sig)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        families += family
    _, alive = psutil.wait_procs(families, timeout=timeout_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def stop_referencing(path: Path, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> list[int]:
    """Stop every process (and its children) whose command line names a file under `path`: the
    servers of a stack directory, found without a state file (one killed before it was written)."""
    needle = str(path.resolve())
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.pid != os.getpid() and any(needle in arg for arg in (p.info["cmdline"] or ())):
                found.append(p.pid)
        except psutil.Error:
            continue
    _stop_families(found, sig, timeout_s)
    return found


def cpu_seconds(processes) -> dict[int, float]:
    """User + system CPU seconds of each process still there, by pid."""
    out = {}
    for p in processes:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
