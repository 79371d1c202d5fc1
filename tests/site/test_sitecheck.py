"""The browser check really detects undrawn charts and off-host requests."""

from __future__ import annotations

import shutil

import pytest

needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")


def _site(tmp_path, body: str):
    from sasp_atlas.site.charts import write_vega_bundle

    root = tmp_path / "html"
    write_vega_bundle(root / "_static")
    page = ('<html><head><script src="_static/vega/vega-bundle.js"></script></head><body>' + body + "</body></html>")
    (root / "index.html").write_text(page)
    return root


@pytest.mark.slow
@needs_chromium
def test_site_check_sees_drawn_and_undrawn_charts(tmp_path):
    import altair as alt
    import pandas as pd

    from sasp_atlas.site.charts import _TEMPLATE
    from sasp_atlas.site.sitecheck import check_site

    spec = alt.Chart(pd.DataFrame({"a": [1, 2], "b": [3, 4]})).mark_bar().encode(x="a:Q", y="b:Q").to_json()
    good = _TEMPLATE.render(output_div="c1", spec=spec, embed_options="{}")
    report = check_site(_site(tmp_path / "ok", good))
    assert report["ok"] and report["n_charts"] == 1

    bad = good.replace('"mark"', '"nomark"').replace("c1", "c2")  # an invalid spec does not draw
    report = check_site(_site(tmp_path / "bad", bad))
    assert not report["ok"]

    broken = good + '<a href="_static/figures/missing.svg" download>SVG</a>'
    report = check_site(_site(tmp_path / "dl", broken))
    assert not report["ok"] and report["pages"][0]["broken_downloads"]

    external = good + '<img src="http://example.invalid/x.png">'
    report = check_site(_site(tmp_path / "ext", external))
    assert not report["ok"]
    assert report["pages"][0]["external"] == ["http://example.invalid/x.png"]
