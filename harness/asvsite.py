"""`asv publish`, then (with offline=True) the page's CDN scripts and styles replaced by local
copies taken from the npm registry's packages, so the history site opens with no network.

asv's index.html loads jQuery, flot (+plugins), stupidtable, blueimp-md5 and bootstrap from CDNs.
The same files ship in npm packages; `npm pack` fetches them (the npm registry is reachable where
PyPI is), they are unpacked into <html_dir>/vendor/ and the URLs rewritten.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from harness.errors import LabsError

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


def html_dir(root: Path) -> Path:
    conf = json.loads((root / "asv.conf.json").read_text())
    return root / conf.get("html_dir", "html")


def publish(root: Path, offline: bool) -> Path:
    if shutil.which("asv") is None:
        raise LabsError("asv is not installed", hint="pip install asv")
    done = subprocess.run(["asv", "publish"], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise LabsError("asv publish failed: " + (done.stderr or done.stdout).strip().splitlines()[-1],
                        hint="record results first: asv run --python=same --set-commit-hash $(git rev-parse HEAD)")
    site = html_dir(root)
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
