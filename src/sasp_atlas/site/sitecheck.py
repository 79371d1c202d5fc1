"""Check a built site in headless Chromium, tested like a user, at a desktop and a phone width.

Serves the HTML folder on 127.0.0.1 (a random free port) under a sub-path and drives Debian's
Chromium (``/usr/bin/chromium``) with Playwright: one browser for the whole run, a fresh context
per (page, width), two at a time. For every page, at 1400 px and 390 px:

* every chart draws: drawn Vega charts (``<svg class="marks">`` or ``<canvas class="marks">``)
  against the chart containers (``class="sasp-chart"``) of the static HTML, and no chart error;
* no chart overflows: the drawn content of each ``.sasp-chart`` (the container, its
  ``.vega-embed`` box and its ``svg``/``canvas``) ends inside the right edge of the main content
  column (``article.bd-article`` / ``main#main-content``; else the viewport), and the document
  does not scroll horizontally;
* no console errors (``console.error`` and uncaught page errors);
* nothing is requested off 127.0.0.1 (the request is aborted and reported);
* no serious or critical accessibility violation: axe-core's default rules (every enabled rule not
  tagged experimental: WCAG 2.0/2.1/2.2 A and AA and best practices), from the axe-core that the
  project's ``package-lock.json`` pins (``npm ci`` installs ``node_modules/axe-core/axe.min.js``; see
  :func:`axe_path`), injected into each page as a script tag (nothing is fetched from the internet),
  so the rules are those a reader's current tools apply. Of the default rules, only those that can
  report serious or critical run; color-contrast runs at the first (widest) width only and checks up
  to five visible elements of each text style: it costs ~10 ms an element plus a layout grid of the
  whole page (a page of 40,000 gene names took 7 minutes, and ~17 s even sampled).

Once per page: the page links an icon (``<link rel="icon">``; without one the browser asks the server
root for ``/favicon.ico``, which logs a 404 in the console after the page has loaded, too late for
the console check to see it reliably); every ``<a ... download>`` link answers 200 with content, and every internal link
(relative or same-host ``a[href]``, fragment stripped) answers 200 (deduplicated over the site);
external links are only counted. The landing page is screenshotted (full page) at both widths.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from ..sources.paths import CHECKOUT_DIR

try:  # the test extra: the package itself runs without a browser driver
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover - check_site says how to install it
    async_playwright = None

    class PlaywrightError(Exception):  # type: ignore[no-redef]
        pass


__all__ = ["check_site", "chromium_path", "axe_path", "axe_version", "WIDTHS", "AXE_ENV"]

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTHS = {1400: 900, 390: 844}  # viewport width -> height (desktop, phone)
AXE_IMPACTS = ("serious", "critical")
CONTRAST_PER_STYLE = 5
log = logging.getLogger(__name__)
INSTALL_HINT = 'pip install -e ".[test]"  (Playwright for Python)'
#: environment variable naming the axe-core script to inject (``--axe PATH`` on the command line)
AXE_ENV = "SASP_ATLAS_AXE"
AXE_FILE = Path("node_modules", "axe-core", "axe.min.js")
AXE_INSTALL_HINT = (
    "run `npm ci` in the project folder (it installs the axe-core that package-lock.json pins into "
    f"{AXE_FILE.as_posix()}), or name the file with --axe PATH or ${AXE_ENV}"
)

_LOCAL_URL = re.compile(r"^(?:https?|wss?)://(?:127\.0\.0\.1|localhost)(?::\d+)?(?:[/?#]|$)")
_NETWORK_URL = re.compile(r"^(?:https?|wss?)://", re.I)
_ICON = re.compile(r'<link\b[^>]*\brel="?(?:shortcut\s+)?icon\b', re.I)
_REFRESH = re.compile(r'<meta[^>]+http-equiv="?refresh"?[^>]*content="\s*\d+\s*;\s*url=([^"]+)"', re.I)

# every .sasp-chart container holds a drawn chart or an error message
_JS_CHARTS_SETTLED = """() => [...document.querySelectorAll('.sasp-chart')].every(
    el => el.querySelector('svg.marks, canvas.marks, .sasp-chart-error'))"""
_JS_COUNT = """() => ({
    drawn: document.querySelectorAll('svg.marks, canvas.marks').length,
    errors: document.querySelectorAll('.sasp-chart-error').length})"""
_JS_TWO_FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"
_JS_OVERFLOW = """() => {
    const vw = window.innerWidth;
    const main = document.querySelector('article.bd-article') || document.querySelector('main#main-content')
        || document.querySelector('main') || document.querySelector('article');
    const limit = main ? Math.min(vw, main.getBoundingClientRect().right + window.scrollX) : vw;
    const charts = [];
    document.querySelectorAll('.sasp-chart').forEach((el, i) => {
        let right = -Infinity;
        for (const box of [el, ...el.querySelectorAll('.vega-embed, svg.marks, canvas.marks')]) {
            const r = box.getBoundingClientRect();
            if (r.width > 0) right = Math.max(right, r.right + window.scrollX);
        }
        charts.push({id: el.id || ('sasp-chart #' + (i + 1)), right: right});
    });
    // what makes the document scroll sideways: the outermost visible element past the viewport that
    // no ancestor clips, scrolls or fixes in place (a hidden off-canvas drawer does not count)
    let culprit = null;
    if (document.documentElement.scrollWidth > vw + 1) {
        const clipped = el => {
            const own = getComputedStyle(el);
            if (own.position === 'fixed' || own.visibility === 'hidden') return true;
            for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
                const cs = getComputedStyle(a);
                if (cs.overflowX !== 'visible' || cs.position === 'fixed') return true;
            }
            return false;
        };
        let best = vw + 1;
        for (const el of document.body.querySelectorAll('*')) {
            const right = el.getBoundingClientRect().right + window.scrollX;
            const parent = el.parentElement;
            if (right <= best || (parent && parent !== document.body
                && parent.getBoundingClientRect().right + window.scrollX > vw + 1) || clipped(el)) continue;
            best = right;
            culprit = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
                + [...el.classList].slice(0, 3).map(c => '.' + c).join('');
        }
    }
    return {limit: limit, viewport: vw, scroll_width: document.documentElement.scrollWidth, charts: charts,
            culprit: culprit};
}"""
_JS_LINKS = "() => [...document.querySelectorAll('a[href]')].map(a => a.href)"
# axe's color-contrast costs ~10 ms an element (40,000 gene-name <code> spans: 7 minutes), so it
# checks a sample: up to `per` visible elements of each text style (colour, size, weight, opacity,
# the background behind it); the other rules see every element.
_JS_CONTRAST_SAMPLE = """per => {
    const bgMemo = new Map();
    const bg = el => {
        if (!el) return 'none';
        if (bgMemo.has(el)) return bgMemo.get(el);
        const cs = getComputedStyle(el);
        const own = (cs.backgroundImage !== 'none' ? cs.backgroundImage.slice(0, 40) : '')
            + (cs.backgroundColor !== 'rgba(0, 0, 0, 0)' ? cs.backgroundColor : '');
        const out = own && !own.endsWith(', 0)') ? own : bg(el.parentElement);
        bgMemo.set(el, out);
        return out;
    };
    const seen = new Map(), marked = new Set();
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let t = walker.nextNode(); t; t = walker.nextNode()) {
        const el = t.parentElement;
        if (!el || marked.has(el) || !t.data.trim() || !el.getClientRects().length) continue;
        const cs = getComputedStyle(el);
        const key = [el.namespaceURI, cs.color, cs.fontSize, cs.fontWeight, cs.opacity, cs.textShadow, bg(el)].join('|');
        const n = seen.get(key) || 0;
        if (n >= per) continue;
        seen.set(key, n + 1);
        marked.add(el);
        el.setAttribute('data-sasp-axe-cc', '');
    }
    axe.configure({rules: [{id: 'color-contrast', selector: '[data-sasp-axe-cc]'}]});
    return {styles: seen.size, sampled: marked.size};
}"""
_JS_AXE_RUN = """([impacts, contrast]) => {
    const audit = axe._audit;  // only the rules that can report these impacts (default rules, not experimental)
    const ids = audit && audit.rules.filter(r => r.enabled && impacts.includes(r.impact)
        && !r.tags.includes('experimental') && (contrast || r.id !== 'color-contrast')).map(r => r.id);
    const opts = {resultTypes: ['violations']};
    if (ids && ids.length) opts.runOnly = {type: 'rule', values: ids};
    return axe.run(document, opts);
}"""


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if p := shutil.which(name):
            return p
    return None


def axe_path(axe: str | Path | None = None) -> Path:
    """The axe-core script the check injects into each page.

    ``axe`` when given, else ``$SASP_ATLAS_AXE``, else ``node_modules/axe-core/axe.min.js`` in the
    current folder (the project a wheel builds in) or in the source checkout the package runs from.
    ``npm ci`` in the project folder installs it at the version ``package-lock.json`` pins. Raises
    ``FileNotFoundError`` naming ``npm ci`` when the file is missing: the check never runs without
    its accessibility rules, nor with an older axe-core than the one pinned.
    """
    named = axe if axe is not None else os.environ.get(AXE_ENV) or None
    if named is not None:
        path = Path(named).expanduser().resolve()
        if path.is_file():
            return path
        raise FileNotFoundError(f"axe-core script {path} not found: {AXE_INSTALL_HINT}")
    tried = [Path.cwd() / AXE_FILE] + ([CHECKOUT_DIR / AXE_FILE] if CHECKOUT_DIR is not None else [])
    for path in tried:
        if path.is_file():
            return path.resolve()
    raise FileNotFoundError(
        f"axe-core is not installed (looked for {', '.join(map(str, dict.fromkeys(tried)))}): {AXE_INSTALL_HINT}"
    )


@functools.cache
def axe_version(path: str | Path) -> str:
    """The version in the banner of an axe-core script (``/*! axe v4.14.1 ...``); ``FileNotFoundError``
    naming ``npm ci`` when the file is not axe-core."""
    with open(path, encoding="utf-8") as fh:
        head = fh.read(2000)
    found = re.search(r"axe v(\d+\.\d+\.\d+\S*)", head)
    if not found:
        raise FileNotFoundError(f"{path} is not an axe-core script (no 'axe vX.Y.Z' banner): {AXE_INSTALL_HINT}")
    return found.group(1)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # Chromium closing its sockets early is not a site error
        pass


def _serve(root: Path):
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _downloads(page_html: str) -> list[str]:
    """The ``href`` of every ``<a ... download>`` link (the figure and table downloads)."""
    return re.findall(r'<a href="([^"]+)"[^>]*\bdownload\b', page_html)


def _resolves(url: str, *, nonempty: bool = True) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status == 200 and (not nonempty or len(resp.read(1)) == 1)
    except OSError:
        return False


def _is_external(url: str) -> bool:
    return bool(_NETWORK_URL.match(url)) and not _LOCAL_URL.match(url)


def _site_path(url: str, base: str) -> str:
    """A local URL as the reader sees it: relative to the site root, or its absolute path outside it."""
    if url.startswith(base):
        return url[len(base) :] or "./"
    parts = urllib.parse.urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def _axe_violations(page, width: int, *, axe_js: Path, contrast: bool) -> list[dict]:
    await page.add_script_tag(path=str(axe_js))
    if not await page.evaluate("() => typeof window.axe === 'object' && typeof window.axe.run === 'function'"):
        raise PlaywrightError(f"axe-core from {axe_js} did not load in the page")
    if contrast:
        await page.evaluate(_JS_CONTRAST_SAMPLE, CONTRAST_PER_STYLE)
    result = await page.evaluate(_JS_AXE_RUN, [list(AXE_IMPACTS), contrast])
    out = []
    for v in result.get("violations", []):
        if v.get("impact") in AXE_IMPACTS:
            nodes = v.get("nodes") or [{}]
            target = nodes[0].get("target") or ["?"]
            out.append(
                {
                    "rule": v["id"],
                    "impact": v["impact"],
                    "nodes": len(v.get("nodes") or []),
                    "target": " ".join(str(t) for t in target),
                    "help": v.get("help", ""),
                    "widths": [width],
                }
            )
    return out


def _merge_axe(found: dict[str, dict], new: list[dict]) -> None:
    for v in new:
        if v["rule"] in found:
            old = found[v["rule"]]
            old["widths"] = sorted(set(old["widths"]) | set(v["widths"]), reverse=True)
            old["nodes"] = max(old["nodes"], v["nodes"])
        else:
            found[v["rule"]] = v


class _Listen:
    """One (page, width) visit's listeners: console errors and off-host requests."""

    def __init__(self, page):
        self.console: list[str] = []
        self.external: set[str] = set()
        page.on("request", lambda req: self._request(req.url))
        page.on("websocket", lambda ws: self._request(ws.url))
        page.on("console", self._console)
        page.on(
            "pageerror",
            lambda err: self.console.append(
                f"uncaught {getattr(err, 'name', '') or 'error'}: {getattr(err, 'message', '') or err}"
            ),
        )

    def _request(self, url: str) -> None:
        if _is_external(url):
            self.external.add(url)

    async def abort(self, route) -> None:
        self.external.add(route.request.url)
        await route.abort("blockedbyclient")

    def _console(self, msg) -> None:
        if msg.type != "error":
            return
        text = msg.text
        where = (msg.location or {}).get("url", "")
        if text.startswith("Failed to load resource") and where:
            text = f"{text}: {where}"
        self.console.append(text)


async def _visit(
    browser, url: str, *, width: int, redirect: bool, budget_ms: int, first: bool, axe: Path | None, shots: list[Path]
) -> dict:
    started = time.monotonic()
    context = await browser.new_context(
        viewport={"width": width, "height": WIDTHS.get(width, 900)}, service_workers="block"
    )
    page = await context.new_page()
    listen = _Listen(page)
    await context.route(_is_external, listen.abort)  # nothing leaves 127.0.0.1: record and abort
    out = {"drawn": 0, "errors": 0, "overflow": [], "overflow_px": {}, "hscroll": 0, "links": [], "axe": []}
    try:
        await page.goto(url, wait_until="load", timeout=max(budget_ms, 30000))
        if redirect:  # a meta-refresh page (index.html): follow it, so the screenshot shows the landing page
            await page.wait_for_url(lambda u: u.split("#")[0] != url, timeout=max(budget_ms, 10000))
            await page.wait_for_load_state("load")
        try:
            await page.wait_for_function(_JS_CHARTS_SETTLED, timeout=budget_ms, polling=100)
        except PlaywrightError:
            pass  # undrawn charts are counted below
        await page.evaluate(_JS_TWO_FRAMES)  # let vega-embed's resize and the layout settle
        out.update(await page.evaluate(_JS_COUNT))
        if not redirect:
            geo = await page.evaluate(_JS_OVERFLOW)
            for chart in geo["charts"]:
                over = chart["right"] - geo["limit"]
                if over > 1:
                    out["overflow"].append(chart["id"])
                    out["overflow_px"][chart["id"]] = round(over)
            out["hscroll"] = max(0, round(geo["scroll_width"] - geo["viewport"]))
            out["hscroll_by"] = geo["culprit"]
            out["column"] = round(geo["limit"])
            if first:  # the links are the same at every width
                out["links"] = await page.evaluate(_JS_LINKS)
            if axe is not None:
                out["axe"] = await _axe_violations(
                    page, width, axe_js=axe, contrast=first
                )  # colours: at the first width
        for shot in shots:
            shot.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(shot), full_page=True)
    except PlaywrightError as exc:
        listen.console.append(f"check failed at {width} px: {str(exc).splitlines()[0]}")
    finally:
        await context.close()
    out["console"] = listen.console
    out["external"] = sorted(listen.external)
    out["seconds"] = time.monotonic() - started
    return out


async def _visit_all(exe: str, jobs: list[dict], workers: int) -> list[dict]:
    """Run every (page, width) visit in one browser, ``workers`` at a time; results in job order."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=exe, headless=True, args=[f for f in CHROMIUM_FLAGS if f != "--headless"]
        )
        gate = asyncio.Semaphore(max(1, workers))

        async def one(job):
            async with gate:
                return await _visit(browser, **job)

        try:
            return await asyncio.gather(*(one(job) for job in jobs))
        finally:
            await browser.close()


def _pages(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*.html") if "_static" not in p.parts and p.name not in ("search.html", "genindex.html")
    )


def check_site(
    html_dir: str | Path,
    *,
    screenshot: str | Path | None = None,
    screenshots_dir: str | Path | None = None,
    budget_ms: int = 15000,
    subpath: str = "sasp-atlas",
    widths: tuple[int, ...] = tuple(WIDTHS),
    axe: bool = True,
    axe_js: str | Path | None = None,
    workers: int = 2,
) -> dict:
    """Check every page of a built site in headless Chromium at each width (1400 px and 390 px).

    Returns ``{"ok", "n_pages", "n_charts", "n_downloads", "n_internal_links", "n_external_links",
    "n_broken_links", "n_overflowing", "n_console_errors", "n_axe", "axe", "widths", "seconds",
    "screenshots", "pages": [...]}`` (``axe``: ``{"path", "version"}`` of the axe-core script injected,
    None when ``axe=False``); each page has:

    * ``page``, ``charts`` (containers in the static HTML), ``drawn`` (the least over the widths),
      ``drawn_by_width``, ``errors`` (chart error messages), ``redirect`` (meta-refresh target or None);
    * ``downloads``, ``broken_downloads``, ``external`` (off-host URLs the page requested: aborted);
    * ``overflow`` ``{"1400": [chart ids], "390": [...]}``, ``overflow_px`` ``{width: {chart id: px
      past the column}}``, ``column`` ``{width: right edge of the content column}``, ``hscroll``
      ``{width: px the document scrolls sideways}``, ``hscroll_by`` ``{width: the outermost unclipped
      element past the viewport}``;
    * ``console_errors`` ``["[<width> px] text"]`` (and ``check failed at <width> px: ...`` when a
      page could not be checked);
    * ``internal_links``, ``broken_links`` (site paths), ``external_links`` (counted, not fetched);
    * ``icon`` (the page links an icon; None for a redirect page);
    * ``axe`` ``[{rule, impact, nodes, target (one example), help, widths}]``;
    * ``seconds`` (browser time at all widths) and ``ok``.

    The site is served under ``/<subpath>/`` (as on a GitHub project page), so a link that only
    works at the server root is caught. ``screenshots_dir`` gets ``landing-<width>.png`` (full page)
    of ``index.html`` (following its redirect); ``screenshot`` (the older option) gets the atlas
    page at the widest width. Pages are visited ``workers`` at a time, biggest first. ``axe_js`` names
    the axe-core script (default: :func:`axe_path`); a missing one is an error naming ``npm ci``.
    """
    html_root = Path(html_dir).resolve()
    if not (html_root / "index.html").exists():
        raise FileNotFoundError(f"{html_root} has no index.html: build the site first (sasp-atlas build)")
    if async_playwright is None:
        raise RuntimeError(f"Playwright for Python is not installed; the site check needs it: {INSTALL_HINT}")
    exe = chromium_path()
    if exe is None:
        raise RuntimeError("chromium not found: install Debian's chromium (apt-get install -y chromium)")
    axe_file = axe_path(axe_js) if axe else None  # fail before starting the browser
    axe_info = {"path": str(axe_file), "version": axe_version(axe_file)} if axe_file else None
    started = time.monotonic()
    root = html_root
    pages = _pages(root)
    atlas = next((p for p in pages if p.name == "atlas.html"), pages[0])
    shots_dir = Path(screenshots_dir).resolve() if screenshots_dir else None
    serve_dir = tempfile.TemporaryDirectory()
    (Path(serve_dir.name) / subpath).symlink_to(html_root, target_is_directory=True)
    httpd = _serve(Path(serve_dir.name))
    base = f"http://127.0.0.1:{httpd.server_address[1]}/{subpath}/"
    link_ok: dict[str, bool] = {}  # internal link -> answers 200 (checked once per site)
    download_ok: dict[str, bool] = {}
    report = []
    try:
        entries, jobs = [], []
        for page_path in pages:
            rel = page_path.relative_to(root).as_posix()
            url = base + rel
            text = page_path.read_text(errors="ignore")
            refresh = _REFRESH.search(text)
            target = urllib.parse.urljoin(url, refresh.group(1).strip()) if refresh else None
            downloads = [urllib.parse.urljoin(url, href) for href in _downloads(text)]
            entries.append(
                {
                    "page": rel,
                    "charts": len(re.findall(r'class="sasp-chart"', text)),
                    "drawn": None,
                    "drawn_by_width": {},
                    "downloads": len(downloads),
                    "broken_downloads": [],
                    "external": set(),
                    "errors": 0,
                    "overflow": {},
                    "overflow_px": {},
                    "column": {},
                    "hscroll": {},
                    "hscroll_by": {},
                    "console_errors": [],
                    "internal_links": 0,
                    "external_links": 0,
                    "broken_links": [],
                    "axe": {},
                    "redirect": _site_path(target, base) if target else None,
                    "icon": None if refresh else bool(_ICON.search(text)),
                    "seconds": 0.0,
                    "_urls": downloads,
                    "_hrefs": [target] if target else [],
                    "_size": len(text),
                }
            )
            for i, width in enumerate(widths):
                shots = []
                if shots_dir and page_path == root / "index.html":
                    shots.append(shots_dir / f"landing-{width}.png")
                if screenshot and page_path == atlas and width == max(widths):
                    shots.append(Path(screenshot).resolve())
                jobs.append(
                    {
                        "url": url,
                        "width": width,
                        "redirect": bool(refresh),
                        "budget_ms": budget_ms,
                        "first": i == 0,
                        "axe": axe_file,
                        "shots": shots,
                        "_entry": len(entries) - 1,
                    }
                )
        order = sorted(range(len(jobs)), key=lambda j: -entries[jobs[j]["_entry"]]["_size"])  # biggest pages first
        results = asyncio.run(
            _visit_all(exe, [{k: v for k, v in jobs[j].items() if k != "_entry"} for j in order], workers)
        )
        by_job = dict(zip(order, results))
        for j, job in enumerate(jobs):
            entry, res, key = entries[job["_entry"]], by_job[j], str(job["width"])
            entry["drawn_by_width"][key] = res["drawn"]
            entry["errors"] = max(entry["errors"], res["errors"])
            entry["overflow"][key] = res["overflow"]
            if res["overflow_px"]:
                entry["overflow_px"][key] = res["overflow_px"]
            if "column" in res:
                entry["column"][key] = res["column"]
            entry["hscroll"][key] = res["hscroll"]
            if res.get("hscroll_by"):
                entry["hscroll_by"][key] = res["hscroll_by"]
            entry["console_errors"] += [f"[{job['width']} px] {m}" for m in res["console"]]
            entry["external"].update(res["external"])
            entry["_hrefs"] += res["links"]
            _merge_axe(entry["axe"], res["axe"])
            entry["seconds"] += res["seconds"]
        for entry in entries:
            for u in entry["_urls"]:
                if u not in download_ok:
                    download_ok[u] = _resolves(u)
                if not download_ok[u]:
                    entry["broken_downloads"].append(u)
            internal, downloads = set(), set(entry.pop("_urls"))
            for href in entry.pop("_hrefs"):
                if _is_external(href):
                    entry["external_links"] += 1
                elif _LOCAL_URL.match(href) and href not in downloads:  # downloads are checked above
                    internal.add(urllib.parse.urldefrag(href).url)
            for u in sorted(internal):
                if u not in link_ok:
                    link_ok[u] = _resolves(u, nonempty=False)
            entry.pop("_size")
            entry["internal_links"] = len(internal)
            entry["broken_links"] = [_site_path(u, base) for u in sorted(internal) if not link_ok[u]]
            entry["drawn"] = min(entry["drawn_by_width"].values())
            entry["external"] = sorted(entry["external"])
            entry["axe"] = sorted(entry["axe"].values(), key=lambda v: (v["impact"] != "critical", v["rule"]))
            entry["seconds"] = round(entry["seconds"], 1)
            entry["ok"] = (
                entry["drawn"] >= entry["charts"]
                and entry["errors"] == 0
                and not entry["external"]
                and entry["icon"] is not False
                and not entry["broken_downloads"]
                and not entry["broken_links"]
                and not any(entry["overflow"].values())
                and all(px <= 1 for px in entry["hscroll"].values())
                and not entry["console_errors"]
                and not entry["axe"]
            )
            log.debug(
                "check-site %s: %s (%.1f s in the browser)",
                entry["page"],
                "ok" if entry["ok"] else "FAIL",
                entry["seconds"],
            )
            report.append(entry)
    finally:
        httpd.shutdown()
        httpd.server_close()
        serve_dir.cleanup()
    written = sorted(str(s) for job in jobs for s in job["shots"] if s.exists())
    return {
        "ok": all(r["ok"] for r in report) and bool(report),
        "n_pages": len(report),
        "n_charts": sum(r["charts"] for r in report),
        "n_downloads": sum(r["downloads"] for r in report),
        "n_internal_links": len(link_ok),
        "n_external_links": sum(r["external_links"] for r in report),
        "n_broken_links": sum(len(r["broken_links"]) for r in report),
        "n_overflowing": sum(len(ids) for r in report for ids in r["overflow"].values()),
        "n_console_errors": sum(len(r["console_errors"]) for r in report),
        "n_axe": sum(len(r["axe"]) for r in report),
        "axe": axe_info,
        "widths": list(widths),
        "seconds": round(time.monotonic() - started, 1),
        "screenshots": written,
        "pages": report,
    }


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(check_site(sys.argv[1] if len(sys.argv) > 1 else "_build/html"), indent=2))
