"""Check a built site in headless Chromium: every chart draws, nothing leaves 127.0.0.1.

Serves the HTML folder on 127.0.0.1 (a random free port) under a sub-path, checks that every
download link answers, loads each page with Debian's
``chromium --headless --dump-dom`` and counts drawn Vega charts (``<svg class="marks">`` or a
``<canvas class="marks">``) against the chart containers in the static HTML. Off-host requests
are detected from Chromium's net log.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from pathlib import Path

__all__ = ["check_site", "chromium_path"]

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if p := shutil.which(name):
            return p
    return None


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # Chromium closing its sockets early is not a site error
        pass


def _serve(root: Path):
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _external_requests(netlog: Path) -> list[str]:
    """URLs off 127.0.0.1 that the *page* requested.

    Page requests carry the page's site in their ``network_isolation_key``; Chromium's own
    background requests (update checks, clock sync) carry ``null`` and are not the site's doing.
    """
    if not netlog.exists():
        return []
    text = netlog.read_text(errors="ignore").rstrip()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # Chromium killed before closing the JSON
        log = json.loads(text.rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    local = re.compile(r"^(https?|wss?)://(127\.0\.0\.1|localhost)[:/]")
    out = set()
    for event in log.get("events", []):
        params = event.get("params") or {}
        if event.get("type") != start_job or "url" not in params:
            continue
        if str(params.get("network_isolation_key", "")).startswith("http://127.0.0.1") and not local.match(params["url"]):
            out.add(params["url"])
    return sorted(out)


def _downloads(page_html: str) -> list[str]:
    """The ``href`` of every ``<a ... download>`` link (the figure and table downloads)."""
    return re.findall(r'<a href="([^"]+)"[^>]*\bdownload\b', page_html)


def _resolves(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status == 200 and len(resp.read(1)) == 1
    except OSError:
        return False


def check_site(html_dir: str | Path, *, screenshot: str | Path | None = None, budget_ms: int = 15000,
               subpath: str = "sasp-atlas") -> dict:
    """Return ``{"ok", "n_pages", "n_charts", "n_downloads", "pages": [{page, charts, drawn, downloads,
    broken_downloads, external, errors, ok}]}``.

    The site is served under ``/<subpath>/`` (as on a GitHub project page), so a link that only
    works at the server root is caught; every download link must answer 200.
    """
    html_root = Path(html_dir).resolve()
    if not (html_root / "index.html").exists():
        raise FileNotFoundError(f"{html_root} has no index.html: build the site first (sasp-atlas build)")
    serve_dir = tempfile.TemporaryDirectory()
    (Path(serve_dir.name) / subpath).symlink_to(html_root, target_is_directory=True)
    root = html_root
    exe = chromium_path()
    if exe is None:
        raise RuntimeError("chromium not found: install Debian's chromium (apt-get install -y chromium)")
    pages = sorted(p for p in root.rglob("*.html") if "_static" not in p.parts and p.name not in ("search.html", "genindex.html"))
    httpd = _serve(Path(serve_dir.name))
    port = httpd.server_address[1]
    base = f"http://127.0.0.1:{port}/{subpath}/"
    report = []
    try:
        for page in pages:
            rel = page.relative_to(root).as_posix()
            text = page.read_text(errors="ignore")
            charts = len(re.findall(r'class="sasp-chart"', text))
            downloads = [urllib.parse.urljoin(base + rel, href) for href in _downloads(text)]
            broken = [u for u in downloads if not _resolves(u)]
            with tempfile.TemporaryDirectory() as profile:
                netlog = Path(profile) / "net.json"
                cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--log-net-log={netlog}",
                       f"--virtual-time-budget={budget_ms}", "--dump-dom", base + rel]
                dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
                external = _external_requests(netlog)
            drawn = len(re.findall(r'<(?:svg|canvas)[^>]*class="marks"', dom))
            errors = len(re.findall(r'class="sasp-chart-error"', dom))
            report.append({"page": rel, "charts": charts, "drawn": drawn, "downloads": len(downloads),
                           "broken_downloads": broken, "external": external, "errors": errors,
                           "ok": drawn >= charts and errors == 0 and not external and not broken})
        if screenshot:
            atlas = next((p for p in pages if p.name == "atlas.html"), pages[0])
            with tempfile.TemporaryDirectory() as profile:
                subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                                f"--screenshot={Path(screenshot).resolve()}", "--window-size=1400,2400",
                                base + atlas.relative_to(root).as_posix()],
                               capture_output=True, timeout=120)
    finally:
        httpd.shutdown()
        serve_dir.cleanup()
    return {"ok": all(r["ok"] for r in report) and bool(report), "n_pages": len(report),
            "n_charts": sum(r["charts"] for r in report), "n_downloads": sum(r["downloads"] for r in report),
            "pages": report}


if __name__ == "__main__":  # pragma: no cover
    import sys
    print(json.dumps(check_site(sys.argv[1] if len(sys.argv) > 1 else "_build/html"), indent=2))
