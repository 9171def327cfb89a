"""A `labs` child process whose stderr is read as it comes, so a test can wait for what labs says
("· n_plus_one · books=3 measuring") instead of guessing how long boot and seeding take."""
from __future__ import annotations

import subprocess
import sys
import threading
import time


class Labs:
    def __init__(self, *args: str, **kw) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "harness", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, **kw)
        self.pid = self.proc.pid
        self.lines: list[str] = []
        self._out: list[str] = []
        self._readers = [threading.Thread(target=self._pump, args=(self.proc.stderr, self.lines), daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stdout, self._out), daemon=True)]
        for t in self._readers:
            t.start()

    @staticmethod
    def _pump(stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)

    def wait_for(self, needle: str, timeout_s: float = 90) -> str:
        """Block until a stderr line contains `needle`; the line. Fails if labs ends first."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            while seen < len(self.lines):
                if needle in self.lines[seen]:
                    return self.lines[seen]
                seen += 1
            if self.proc.poll() is not None and seen >= len(self.lines):
                for t in self._readers:
                    t.join(timeout=5)
                if not any(needle in line for line in self.lines):
                    raise AssertionError(f"labs ended (exit {self.proc.returncode}) before saying {needle!r}:\n"
                                         + "".join(self.lines)[-3000:])
            time.sleep(0.02)
        raise AssertionError(f"labs did not say {needle!r} within {timeout_s} s:\n" + "".join(self.lines)[-3000:])

    def send_signal(self, sig) -> None:
        self.proc.send_signal(sig)

    def poll(self):
        return self.proc.poll()

    def kill(self) -> None:
        self.proc.kill()

    @property
    def returncode(self):
        return self.proc.returncode

    def communicate(self, timeout: float = 120) -> tuple[str, str]:
        self.proc.wait(timeout=timeout)
        for t in self._readers:
            t.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        return "".join(self._out), "".join(self.lines)

    def __enter__(self) -> Labs:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.communicate(timeout=30)


def golden(path, text: str) -> None:
    """Compare with a committed golden file. A missing one fails (it never writes itself); to
    change one on purpose: LABS_UPDATE_GOLDEN=1 pytest …, then review the diff and commit it."""
    import os
    from pathlib import Path

    path = Path(path)
    if os.environ.get("LABS_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"golden file {path} is missing: write it with LABS_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text()


def need(what: str, present: bool, hint: str = "") -> None:
    """Skip a test whose tool is not installed — except in CI (CI=true, or LABS_REQUIRE_ALL=1), where
    .ci/run installs every tool: there a missing one is a failure, never a quiet skip."""
    import os

    import pytest

    if present:
        return
    text = f"{what} not installed" + (f" ({hint})" if hint else "")
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"} or os.environ.get("LABS_REQUIRE_ALL") == "1":
        pytest.fail(f"{text}: CI installs it, so its absence is a broken install, not a reason to skip")
    pytest.skip(text)
