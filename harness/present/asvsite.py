"""asv integration: `asv publish` (optionally made to work offline) and a commit-range backfill.

Publish: asv's index.html loads jQuery, flot (+plugins), stupidtable, blueimp-md5 and bootstrap
from CDNs. The same files ship in npm packages; `npm pack` fetches them (the npm registry is
reachable where PyPI is), they are unpacked into <html_dir>/vendor/ and the URLs rewritten.

Backfill: with an existing environment asv refuses commit ranges and records only what it is told
with `--set-commit-hash`, running the code that is installed. `backfill` checks each commit out
into a git worktree and runs `asv run --set-commit-hash <sha>` with LABS_ASV_SOURCE pointing the
suite at that worktree, so each commit's own harness, app and scenarios are what get measured.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import LabsError, UsageError

# CDN URL suffix (what asv's index.html references) -> (npm package@version, file inside the package)
VENDOR = {
    "jquery-3.3.1.min.js": ("jquery@3.3.1", "package/dist/jquery.min.js"),
    "flot/0.8.3/jquery.flot.min.js": ("flot@0.8.3", "package/jquery.flot.js"),
    "flot/0.8.3/jquery.flot.time.min.js": ("flot@0.8.3", "package/jquery.flot.time.js"),
    "flot/0.8.3/jquery.flot.selection.min.js": ("flot@0.8.3", "package/jquery.flot.selection.js"),
    "flot/0.8.3/jquery.flot.categories.min.js": ("flot@0.8.3", "package/jquery.flot.categories.js"),
    "flot-orderbars@1.0.0/js/jquery.flot.orderBars.js": ("flot-orderbars@1.0.0", "package/js/jquery.flot.orderBars.js"),
    "stupidtable/1.0.1/stupidtable.min.js": ("stupid-table-plugin@1.1.3", "package/stupidtable.min.js"),
    "blueimp-md5/2.19.0/js/md5.min.js": ("blueimp-md5@2.19.0", "package/js/md5.min.js"),
    "bootstrap@3.1.1/dist/js/bootstrap.min.js": ("bootstrap@3.1.1", "package/dist/js/bootstrap.min.js"),
    "bootstrap@3.1.1/dist/css/bootstrap.min.css": ("bootstrap@3.1.1", "package/dist/css/bootstrap.min.css"),
}


def asv_dir(root: Path, key: str) -> Path:
    """A directory asv.conf.json names (html_dir, results_dir), with asv's default."""
    path = root / "asv.conf.json"
    if not path.is_file():
        raise UsageError(f"no asv.conf.json in {root}", hint="labs asv init sets asv up for this repository")
    conf = json.loads(path.read_text())
    return root / conf.get(key, {"html_dir": "html", "results_dir": "results"}[key])


def publish(root: Path, offline: bool) -> Path:
    if shutil.which("asv") is None:
        raise LabsError("asv is not installed", hint="pip install asv")
    asv_dir(root, "html_dir")  # no asv.conf.json: a clear error, before asv says something less clear
    done = subprocess.run(["asv", "publish"], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise LabsError("asv publish failed: " + (done.stderr or done.stdout).strip().splitlines()[-1],
                        hint="record results first: asv run --python=same --set-commit-hash $(git rev-parse HEAD)")
    site = asv_dir(root, "html_dir")
    if offline:
        vendor(site)
    return site / "index.html"


def _retarget(html: str, url: str, local: str) -> str:
    """Point the tag at the local copy and drop its Subresource Integrity attributes: they pin the
    CDN's exact bytes (flot's minified build), while npm ships the same library unminified."""
    def fix(tag: re.Match) -> str:
        text = tag.group(0).replace(url, local)
        return re.sub(r'\s+(integrity|crossorigin)="[^"]*"', "", text)
    return re.sub(r"<(script|link)\b[^>]*" + re.escape(url) + r"[^>]*>", fix, html)


def vendor(site: Path) -> list[str]:
    """Rewrite every CDN reference of index.html to a vendored copy; returns the files written."""
    if shutil.which("npm") is None:
        raise LabsError("npm is needed to fetch the site's scripts for offline use",
                        hint="install Node.js/npm, or publish without --offline")
    index = site / "index.html"
    text = index.read_text()
    target = site / "vendor"
    target.mkdir(exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="labs-npm-") as tmp:
        packed: dict[str, Path] = {}
        for url in sorted(set(re.findall(r'(?:src|href)="(https://[^"]+)"', text))):
            key = next((k for k in VENDOR if url.endswith(k)), None)
            if key is None:
                if url.endswith((".js", ".css")):
                    raise LabsError(f"asv's page loads {url}, which labs does not know how to vendor")
                continue  # a plain link (e.g. to asv's GitHub page), not a resource
            package, member = VENDOR[key]
            if package not in packed:
                done = subprocess.run(["npm", "pack", package, "--silent", "--pack-destination", tmp],
                                      capture_output=True, text=True, timeout=300)
                if done.returncode != 0:
                    raise LabsError(f"npm pack {package} failed: {done.stderr.strip()[-200:]}")
                packed[package] = Path(tmp) / done.stdout.strip().splitlines()[-1]
            with tarfile.open(packed[package]) as tar:
                data = tar.extractfile(member).read()
            name = Path(key).name
            (target / name).write_bytes(data)
            text = _retarget(text, url, f"vendor/{name}")
            written.append(name)
    index.write_text(text)
    return written


# ---------------------------------------------------------------------------------------------
# backfill


@dataclass
class Commit:
    sha: str
    subject: str


@dataclass
class Recorded:
    commit: Commit
    status: str  # recorded | failed | skipped (already recorded)
    seconds: float = 0.0
    values: int = 0  # benchmark values asv stored for the commit (non-null)
    detail: str = ""


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    if shutil.which("git") is None:
        raise LabsError("git is not installed", hint="apt-get install -y git")
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def commits(root: Path, spec: str, every: int = 1, limit: int = 50) -> list[Commit]:
    """The commits of `A..B` (first-parent, oldest first; A itself excluded, as in git) or one commit.

    `every` keeps every Nth commit (the newest always); more than `limit` commits is refused."""
    spec = spec.strip()
    if not spec or spec.startswith("-"):
        raise UsageError(f"bad commit range {spec!r}", hint="e.g. HEAD~5..HEAD, v1.0..main, or one commit")
    if ".." in spec:
        listed = _git(root, "rev-list", "--first-parent", "--reverse", spec, "--")
    else:
        listed = _git(root, "rev-list", "--no-walk", spec, "--")
    if listed.returncode != 0:
        why = (listed.stderr.strip().splitlines() or ["unknown revision"])[0]
        raise UsageError(f"git does not know the commit range {spec!r}: {why}",
                         hint="e.g. HEAD~5..HEAD (see `git log --oneline`)")
    shas = listed.stdout.split()
    if not shas:
        raise UsageError(f"the range {spec!r} holds no commits", hint="A..B lists commits after A up to B")
    if every > 1:
        shas = [sha for i, sha in enumerate(shas) if (len(shas) - 1 - i) % every == 0]
    if len(shas) > limit:
        raise UsageError(f"{spec!r} is {len(shas)} commits; backfill takes at most {limit} at a time",
                         hint="narrow the range, use --every N, or raise --max-commits")
    shown = _git(root, "show", "--no-patch", "--format=%H%x00%s", *shas)
    subjects = dict(line.split("\0", 1) for line in shown.stdout.splitlines() if "\0" in line)
    return [Commit(sha, subjects.get(sha, "")) for sha in shas]


def recorded_values(root: Path, sha: str, machine: str | None = None) -> int:
    """How many non-null benchmark values asv holds for `sha` (0: none, or never recorded)."""
    count = 0
    pattern = f"{machine or '*'}/{sha[:8]}-*.json"
    for path in asv_dir(root, "results_dir").glob(pattern):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if data.get("commit_hash") != sha:
            continue
        for entry in data.get("results", {}).values():
            values = entry[0] if isinstance(entry, list) and entry else entry
            if isinstance(values, list):
                count += sum(v is not None and v == v for v in values)  # v == v: not NaN
            elif values is not None:
                count += 1
    return count


def _ensure_machine(root: Path, machine: str | None) -> None:
    known = Path.home() / ".asv-machine.json"
    try:
        names = set(json.loads(known.read_text())) - {"version"}
    except (OSError, ValueError):
        names = set()
    if (machine is None and names) or (machine is not None and machine in names):
        return
    args = ["asv", "machine", "--yes"] + (["--machine", machine] if machine else [])
    done = subprocess.run(args, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise LabsError("`asv machine --yes` failed: " + (done.stderr or done.stdout).strip()[-300:])


def _run_asv(args: list[str], cwd: Path, env: dict[str, str], timeout_s: float) -> tuple[int, str]:
    """Run asv in its own session (a terminal's Ctrl-C reaches us, not it); on interrupt or timeout
    stop it and everything under it before going on."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_us)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop_asv(proc)
            code = -1
            log.write(f"\n(stopped: no result within {timeout_s:.0f} s)")
        except BaseException:
            _stop_asv(proc)
            raise
        log.seek(0)
        return code, log.read()


def _die_with_us() -> None:
    """asv gets SIGTERM when `labs asv backfill` dies, even by kill -9 (its own session keeps a
    terminal's Ctrl-C away from it, so without this it would go on measuring alone)."""
    from harness.stack.procs import set_death_signal

    set_death_signal(signal.SIGTERM)


def _stop_asv(proc: subprocess.Popen) -> None:
    """SIGTERM to asv; whatever of its family (benchmark runners in their own groups, `labs run`)
    is still there after 20 s is killed (the servers of a killed `labs run` die with it)."""
    from harness.stack import procs

    procs.stop_pid(proc.pid, signal.SIGTERM, timeout_s=20.0)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def backfill(
    root: Path,
    spec: str,
    *,
    every: int = 1,
    limit: int = 50,
    machine: str | None = None,
    scenarios: list[str] | None = None,
    profile: str = "quick",
    params: dict[str, str] | None = None,
    rerun: bool = False,
    timeout_s: float = 3600.0,
    on_commit: Callable[[int, int, Commit, Recorded | None], None] | None = None,
    keep_results: Path | None = None,
) -> list[Recorded]:
    """Record each commit of `spec` in asv, measured with that commit's own code; with
    `keep_results`, each run's lab result is stored there too (its git_sha is the commit's), so
    `labs history` sees the same commits asv does."""
    if shutil.which("asv") is None:
        raise LabsError("asv is not installed", hint="pip install asv")
    chosen = commits(root, spec, every, limit)
    _ensure_machine(root, machine)
    done: list[Recorded] = []
    from harness.measure.commits import reap_stale_worktrees

    reap_stale_worktrees(root)  # what a killed backfill left registered
    with tempfile.TemporaryDirectory(prefix="labs-backfill-") as tmp:
        owner = Path(f"{tmp}.pid")
        owner.write_text(str(os.getpid()))
        try:
            for i, commit in enumerate(chosen):
                if on_commit:
                    on_commit(i, len(chosen), commit, None)
                held = 0 if rerun else recorded_values(root, commit.sha, machine)
                if held:
                    row = Recorded(commit, "skipped", values=held, detail="already recorded (--rerun to measure again)")
                else:
                    row = _record(root, commit, Path(tmp) / commit.sha[:12], machine, scenarios, profile,
                                  params or {}, timeout_s, keep_results)
                done.append(row)
                if on_commit:
                    on_commit(i, len(chosen), commit, row)
        finally:
            _git(root, "worktree", "prune")
            owner.unlink(missing_ok=True)
    return done


def _record(root: Path, commit: Commit, tree: Path, machine: str | None, scenarios: list[str] | None,
            profile: str, params: dict[str, str], timeout_s: float, keep_results: Path | None = None) -> Recorded:
    added = _git(root, "worktree", "add", "--detach", "--force", str(tree), commit.sha)
    if added.returncode != 0:
        return Recorded(commit, "failed", detail="git worktree add: " + added.stderr.strip()[-300:])
    t0 = time.perf_counter()
    try:
        env = {**os.environ, "LABS_ASV_SOURCE": str(tree), "LABS_ASV_PROFILE": profile}
        if scenarios:
            env["LABS_ASV_SCENARIOS"] = ",".join(scenarios)
        if params:
            env["LABS_ASV_PARAMS"] = ";".join(f"{k}={v}" for k, v in params.items())
        if keep_results is not None:
            env["LABS_ASV_KEEP_RESULTS"] = str(keep_results)
        args = ["asv", "run", "--python=same", "--set-commit-hash", commit.sha, "--show-stderr"]
        if machine:
            args += ["--machine", machine]
        code, log = _run_asv(args, root, env, timeout_s)
    finally:
        _git(root, "worktree", "remove", "--force", str(tree))
    seconds = time.perf_counter() - t0
    values = recorded_values(root, commit.sha, machine)
    if values:
        return Recorded(commit, "recorded", seconds, values, "" if code == 0 else f"asv exit {code}")
    last = [line for line in log.strip().splitlines() if line.strip()][-3:]
    return Recorded(commit, "failed", seconds, 0, " | ".join(last)[-400:] or f"asv exit {code}")


SUITE_FILE = '''"""asv suite of this project's Perf Lab scenarios (written by `labs asv init`; the classes are
generated by harness.present.asvsuite from the scenarios labs.toml names)."""
from pathlib import Path

from harness.present.asvsuite import suite

globals().update(suite(Path(__file__).resolve().parents[1]))
'''


def init(root: Path, machine: str | None = None) -> list[Path]:
    """asv for a project's repository: asv.conf.json (existing environment, history under .asv/),
    benchmarks/perflab_suite.py. What exists is kept. Returns the files written."""
    written = []
    conf = root / "asv.conf.json"
    if not conf.exists():
        conf.write_text(json.dumps({
            "version": 1, "project": root.name, "project_url": "", "repo": ".", "branches": ["main"],
            "environment_type": "existing", "benchmark_dir": "benchmarks", "env_dir": ".asv/env",
            "results_dir": ".asv/results", "html_dir": ".asv/html", "build_command": [], "install_command": [],
            "uninstall_command": []}, indent=4) + "\n")
        written.append(conf)
    bench_dir = root / json.loads(conf.read_text()).get("benchmark_dir", "benchmarks")
    bench_dir.mkdir(parents=True, exist_ok=True)
    for path, text in ((bench_dir / "__init__.py", ""), (bench_dir / "perflab_suite.py", SUITE_FILE)):
        if not path.exists():
            path.write_text(text)
            written.append(path)
    return written
