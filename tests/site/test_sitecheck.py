"""The browser check, tested like a user, on small constructed sites with known answers.

One mixed site (a page per fault) is checked once at 1400 px and 390 px; each fault page must fail
for its own reason and the clean page must pass. A clean site must pass through the CLI and leave
landing-page screenshots behind.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")

PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def _chart(div: str, width: int = 200, *, spec_edit=None, style: str = "") -> str:
    """A chart container and its vegaEmbed call, as the built pages write them (no actions menu)."""
    import altair as alt
    import pandas as pd

    from sasp_atlas.site.charts import _TEMPLATE

    spec = (
        alt.Chart(pd.DataFrame({"a": [1, 2], "b": [3, 4]}), title=f"chart {div}")
        .mark_bar()
        .encode(x="a:Q", y="b:Q")
        .properties(width=width, height=120)
        .to_json()
    )
    if spec_edit:
        spec = spec_edit(spec)
    html = _TEMPLATE.render(output_div=div, spec=spec, embed_options='{"actions": false}')
    if style:
        html = html.replace('class="sasp-chart"', f'class="sasp-chart" style="{style}"', 1)
    return html


def _page(title: str, body: str, *, icon: bool = True) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        + ('<link rel="icon" href="_static/pixel.png"/>' if icon else "")
        + f'<title>{title}</title><script src="_static/vega/vega-bundle.js"></script></head>'
        f'<body><main id="main-content"><article class="bd-article"><h1>{title}</h1>{body}'
        "</article></main></body></html>"
    )


def _write_site(root, pages: dict[str, str]):
    from sasp_atlas.site.charts import write_vega_bundle

    write_vega_bundle(root / "_static")
    (root / "_static" / "pixel.png").write_bytes(PIXEL_PNG)
    (root / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=clean.html" />')  # as jupyter-book
    for name, html in pages.items():
        (root / name).write_text(html)
    return root


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """The report of one check of a site with one fault per page (and its screenshots folder)."""
    if shutil.which("chromium") is None:
        pytest.skip("Debian chromium not installed")
    from sasp_atlas.site.sitecheck import check_site

    tmp = tmp_path_factory.mktemp("mixed")
    pages = {
        "clean.html": _page(
            "Clean",
            "<p>A chart that fits a phone.</p>"
            + _chart("c1")
            + '<p><a href="links.html">links</a> <a href="_static/pixel.png" download>PNG</a></p>',
        ),
        "wide.html": _page("Wide", _chart("wide", style="width: 2000px") + _chart("mid", width=600) + _chart("narrow")),
        "console.html": _page("Console", '<p>text</p><script>console.error("x")</script>'),
        "links.html": _page(
            "Links",
            '<p><a href="missing.html">gone</a> <a href="clean.html#top">back</a> '
            '<a href="https://example.org/page">elsewhere</a> '
            '<a href="/elsewhere/root.html">root-absolute</a></p>',
        ),
        "img.html": _page("Image", '<p><img src="_static/pixel.png"></p>'),
        "contrast.html": _page("Contrast", '<p style="color: #d0d0d0">faint grey text on white</p>'),
        # WCAG 2.5.3: a default rule of axe-core 4.14 (still experimental in the 4.12 that axe-playwright-python bundled)
        "noicon.html": _page("No icon", "<p>No icon: the browser asks for /favicon.ico.</p>", icon=False),
        "label.html": _page("Label", '<p><button type="button" aria-label="Open the menu">Search</button></p>'),
        "ext.html": _page("External", '<p><img src="http://example.invalid/x.png" alt="remote"></p>'),
        "undrawn.html": _page("Undrawn", _chart("bad", spec_edit=lambda s: s.replace('"mark"', '"nomark"'))),
        "download.html": _page("Download", '<p><a href="_static/figures/missing.svg" download>SVG</a></p>'),
    }
    root = _write_site(tmp / "html", pages)
    shots = tmp / "shots"
    report = check_site(root, screenshots_dir=shots, screenshot=tmp / "atlas.png")
    return report, {p["page"]: p for p in report["pages"]}, shots


def _faults(page: dict) -> dict:
    """Everything that failed on a page (empty when the page is ok)."""
    out = {
        "undrawn": page["drawn"] < page["charts"],
        "chart_errors": page["errors"],
        "broken_downloads": page["broken_downloads"],
        "external": page["external"],
        "broken_links": page["broken_links"],
        "overflow": {w: ids for w, ids in page["overflow"].items() if ids},
        "hscroll": {w: px for w, px in page["hscroll"].items() if px > 1},
        "console_errors": page["console_errors"],
        "axe": [v["rule"] for v in page["axe"]],
        "no_icon": page["icon"] is False,
    }
    return {k: v for k, v in out.items() if v}


@pytest.mark.slow
def test_a_clean_page_passes(mixed):
    report, pages, _ = mixed
    clean = pages["clean.html"]
    assert _faults(clean) == {} and clean["ok"], clean
    assert clean["charts"] == 1 and clean["drawn_by_width"] == {"1400": 1, "390": 1}
    assert clean["internal_links"] == 1 and clean["downloads"] == 1  # links.html; the PNG is a download
    assert report["widths"] == [1400, 390] and not report["ok"]
    assert pages["index.html"]["redirect"] == "clean.html" and pages["index.html"]["ok"]


@pytest.mark.slow
def test_a_too_wide_chart_fails_at_the_width_it_overflows(mixed):
    _, pages, _ = mixed
    wide = pages["wide.html"]
    assert not wide["ok"]
    assert wide["overflow"] == {"1400": ["wide"], "390": ["wide", "mid"]}  # the 600 px chart fits 1400 px only
    assert wide["overflow_px"]["390"]["wide"] > 1500
    assert wide["hscroll"]["390"] > 1500 and wide["hscroll"]["1400"] > 500  # the document scrolls sideways
    assert wide["hscroll_by"] == {"1400": "div#wide.sasp-chart.vega-embed", "390": "div#wide.sasp-chart.vega-embed"}
    assert set(_faults(wide)) == {"overflow", "hscroll"}


@pytest.mark.slow
def test_a_console_error_fails_with_its_text(mixed):
    _, pages, _ = mixed
    page = pages["console.html"]
    assert page["console_errors"] == ["[1400 px] x", "[390 px] x"]
    assert set(_faults(page)) == {"console_errors"} and not page["ok"]


@pytest.mark.slow
def test_a_link_to_a_missing_page_fails_with_that_link(mixed):
    _, pages, _ = mixed
    page = pages["links.html"]
    # served under /sasp-atlas/: the root-absolute link misses the site as it would on a project page
    assert page["broken_links"] == ["/elsewhere/root.html", "missing.html"]
    assert page["external_links"] == 1 and page["internal_links"] == 3  # clean.html#top -> clean.html
    assert page["external"] == []  # external links are counted, not fetched
    assert set(_faults(page)) == {"broken_links"} and not page["ok"]


@pytest.mark.slow
def test_an_image_without_alt_fails_axe(mixed):
    _, pages, _ = mixed
    page = pages["img.html"]
    (violation,) = page["axe"]
    assert violation["rule"] == "image-alt" and violation["impact"] == "critical"
    assert violation["nodes"] == 1 and violation["target"] == "img" and violation["widths"] == [1400, 390]
    assert set(_faults(page)) == {"axe"} and not page["ok"]


@pytest.mark.slow
def test_faint_text_fails_axe_color_contrast_at_the_first_width(mixed):
    _, pages, _ = mixed
    (violation,) = pages["contrast.html"]["axe"]
    assert violation["rule"] == "color-contrast" and violation["impact"] == "serious"
    assert violation["target"] == "p" and violation["widths"] == [1400]  # colours are checked at one width


@pytest.mark.slow
def test_a_button_named_unlike_its_text_fails_axe_label_content_name_mismatch(mixed):
    report, pages, _ = mixed
    page = pages["label.html"]
    (violation,) = page["axe"]
    assert violation["rule"] == "label-content-name-mismatch" and violation["impact"] == "serious"
    assert violation["target"] == "button" and violation["widths"] == [1400, 390]
    assert set(_faults(page)) == {"axe"} and not page["ok"]
    assert report["axe"]["version"] == _pinned_axe_version()
    assert report["axe"]["path"].endswith("node_modules/axe-core/axe.min.js")


@pytest.mark.slow
def test_a_page_without_an_icon_fails(mixed):
    _, pages, _ = mixed
    assert pages["noicon.html"]["icon"] is False and set(_faults(pages["noicon.html"])) == {"no_icon"}
    assert pages["clean.html"]["icon"] is True and pages["index.html"]["icon"] is None  # a redirect page


@pytest.mark.slow
def test_an_off_host_request_is_reported_and_blocked(mixed):
    _, pages, _ = mixed
    page = pages["ext.html"]
    assert page["external"] == ["http://example.invalid/x.png"] and not page["ok"]
    assert "external" in _faults(page)


@pytest.mark.slow
def test_undrawn_charts_and_broken_downloads_fail(mixed):
    _, pages, _ = mixed
    undrawn = pages["undrawn.html"]
    assert undrawn["charts"] == 1 and undrawn["drawn"] == 0 and undrawn["errors"] == 1 and not undrawn["ok"]
    download = pages["download.html"]
    assert download["broken_downloads"] and download["broken_downloads"][0].endswith("/_static/figures/missing.svg")
    assert set(_faults(download)) == {"broken_downloads"} and not download["ok"]


@pytest.mark.slow
def test_landing_screenshots_at_both_widths(mixed):
    report, _, shots = mixed
    for width in (1400, 390):
        png = shots / f"landing-{width}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
        assert str(png) in report["screenshots"]
    assert any(s.endswith("atlas.png") for s in report["screenshots"])  # the older --screenshot option


@pytest.mark.slow
@needs_chromium
def test_a_clean_site_passes_through_the_cli(tmp_path, capsys):
    from sasp_atlas.cli import main

    root = _write_site(
        tmp_path / "html", {"clean.html": _page("Clean", _chart("c1") + '<a href="clean.html">self</a>')}
    )
    shots = tmp_path / "results" / "screenshots"
    assert main(["check-site", str(root), "--screenshots", str(shots)]) == 0
    assert sorted(p.name for p in shots.iterdir()) == ["landing-1400.png", "landing-390.png"]
    err = capsys.readouterr().err
    assert "ok clean.html" in err and "FAIL" not in err


def test_without_playwright_the_check_names_the_fix(tmp_path, monkeypatch):
    from sasp_atlas.site import sitecheck

    (tmp_path / "index.html").write_text("<p>hi</p>")
    monkeypatch.setattr(sitecheck, "async_playwright", None)
    with pytest.raises(RuntimeError, match=r'pip install -e "\.\[test\]"'):
        sitecheck.check_site(tmp_path)


def _pinned_axe_version() -> str:
    lock = json.loads((Path(__file__).resolve().parents[2] / "package-lock.json").read_text())
    return lock["packages"]["node_modules/axe-core"]["version"]


def test_axe_core_is_pinned_exactly_in_the_lock_files():
    root = Path(__file__).resolve().parents[2]
    pinned = _pinned_axe_version()
    assert json.loads((root / "package.json").read_text())["devDependencies"]["axe-core"] == pinned  # no range
    assert pinned.startswith("4.14.")


def test_the_check_injects_the_pinned_axe_core():
    from sasp_atlas.site import sitecheck

    path = sitecheck.axe_path()
    if not path.is_file():  # pragma: no cover - axe_path raises instead
        pytest.fail(str(path))
    assert path.parts[-3:] == ("node_modules", "axe-core", "axe.min.js")
    assert sitecheck.axe_version(path) == _pinned_axe_version()


def test_a_missing_axe_core_is_an_error_naming_npm_ci(tmp_path, monkeypatch):
    from sasp_atlas.site import sitecheck

    (tmp_path / "index.html").write_text("<p>hi</p>")
    with pytest.raises(FileNotFoundError, match="npm ci"):
        sitecheck.check_site(tmp_path, axe_js=tmp_path / "missing" / "axe.min.js")
    monkeypatch.setenv(sitecheck.AXE_ENV, str(tmp_path / "nowhere.js"))
    with pytest.raises(FileNotFoundError, match="npm ci"):
        sitecheck.axe_path()
    monkeypatch.delenv(sitecheck.AXE_ENV)
    monkeypatch.chdir(tmp_path)  # an installed wheel run outside any project with node_modules
    monkeypatch.setattr(sitecheck, "CHECKOUT_DIR", None)
    with pytest.raises(FileNotFoundError, match="npm ci"):
        sitecheck.axe_path()
    (tmp_path / "fake.js").write_text("console.log('not axe')")
    with pytest.raises(FileNotFoundError, match="npm ci"):
        sitecheck.axe_version(tmp_path / "fake.js")


def test_axe_core_from_the_environment_or_the_project_folder(tmp_path, monkeypatch):
    from sasp_atlas.site import sitecheck

    pinned = sitecheck.axe_path()
    monkeypatch.setenv(sitecheck.AXE_ENV, str(pinned))
    assert sitecheck.axe_path() == pinned
    monkeypatch.delenv(sitecheck.AXE_ENV)
    local = tmp_path / "node_modules" / "axe-core" / "axe.min.js"
    local.parent.mkdir(parents=True)
    local.write_bytes(pinned.read_bytes())
    monkeypatch.chdir(tmp_path)  # the project folder a wheel builds in comes first
    assert sitecheck.axe_path() == local.resolve()
