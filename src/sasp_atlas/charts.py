"""Altair charts for the book, drawn offline.

The pages load one vendored Vega bundle (``_static/vega/vega-bundle.js``, written by
:func:`write_vega_bundle` from the pinned ``vl-convert-python``); :func:`enable_offline_renderer`
makes each chart output a ``<div>`` plus a call to that bundle's ``vegaEmbed``, so no CDN is
contacted (see ``../shared/notes/build_chain.md``, recipe D).
"""

from __future__ import annotations

from pathlib import Path

import altair as alt
import jinja2
import numpy as np
import pandas as pd

__all__ = ["write_vega_bundle", "enable_offline_renderer", "composition_chart", "score_distribution_chart",
           "celltype_heatmap", "embedding_chart", "atlas_heatmap"]

_TEMPLATE = jinja2.Template("""\
<div id="{{ output_div }}" class="sasp-chart"></div>
<script type="text/javascript">
(function () {
  var el = document.getElementById("{{ output_div }}");
  var spec = {{ spec }};
  var opt = {{ embed_options }};
  function fail(msg) {
    var p = document.createElement("p");
    p.className = "sasp-chart-error";
    p.style.color = "#b00";
    p.textContent = msg;
    el.appendChild(p);
  }
  function draw() {
    if (typeof window.vegaEmbed !== "function") { fail("Chart library not loaded (_static/vega/vega-bundle.js)."); return; }
    window.vegaEmbed(el, spec, opt).catch(function (err) { fail("Chart error: " + err); });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
</script>
""")


def write_vega_bundle(static_dir: str | Path = "_static") -> Path:
    """Write the Vega/Vega-Lite/vega-embed bundle matching altair's schema (IIFE-wrapped)."""
    import vl_convert as vlc

    vl = "_".join(alt.SCHEMA_VERSION.split(".")[:2])
    target = Path(static_dir) / "vega" / "vega-bundle.js"
    target.parent.mkdir(parents=True, exist_ok=True)
    js = vlc.javascript_bundle(vl_version=vl)
    target.write_text("(function () {\n" + js + "\n})();\n", encoding="utf-8")
    return target


def enable_offline_renderer() -> None:
    """Render charts as a div + ``window.vegaEmbed`` call (no CDN, no inline bundle)."""
    alt.renderers.enable("html", template=_TEMPLATE, embed_options={"actions": {"export": True, "source": False,
                                                                                "compiled": False, "editor": False}})


def composition_chart(cells: pd.DataFrame, *, title: str = "Cells per cell type") -> alt.Chart:
    """Bar chart of cell counts per harmonised cell type, split by sample."""
    counts = cells.groupby(["cell_type", "sample"], observed=True).size().reset_index(name="n_cells")
    return alt.Chart(counts, title=title).mark_bar().encode(
        y=alt.Y("cell_type:N", sort="-x", title="cell type"),
        x=alt.X("sum(n_cells):Q", title="cells"),
        color=alt.Color("sample:N", title="sample"),
        tooltip=["cell_type", "sample", "n_cells"],
    ).properties(width=420)


def score_distribution_chart(table: pd.DataFrame, *, signature: str) -> alt.Chart:
    """Box-style summary (median, IQR, mean) of per-cell scores per cell type for one signature."""
    df = table[table["signature"] == signature]
    base = alt.Chart(df, title=f"{signature}: per-cell scores by cell type").encode(
        y=alt.Y("cell_type:N", sort=alt.EncodingSortField("median", order="descending"), title="cell type"))
    iqr = base.mark_bar(size=12, opacity=0.6).encode(x=alt.X("q25:Q", title="score"), x2="q75:Q")
    med = base.mark_tick(color="black", size=16, thickness=2).encode(
        x="median:Q", tooltip=["cell_type", "n_cells", "n_samples", alt.Tooltip("median:Q", format=".3f"),
                               alt.Tooltip("mean:Q", format=".3f"), alt.Tooltip("q25:Q", format=".3f"),
                               alt.Tooltip("q75:Q", format=".3f")])
    mean = base.mark_point(shape="diamond", color="firebrick", filled=True).encode(x="mean:Q")
    return (iqr + med + mean).properties(width=420)


def celltype_heatmap(table: pd.DataFrame, *, title: str = "Mean score per signature and cell type") -> alt.Chart:
    """Heatmap of mean score, signature x cell type, with n and coverage in tooltips."""
    return alt.Chart(table, title=title).mark_rect().encode(
        x=alt.X("cell_type:N", title="cell type"),
        y=alt.Y("signature:N", title="signature"),
        color=alt.Color("mean:Q", scale=alt.Scale(scheme="redblue", domainMid=0, reverse=True), title="mean score"),
        tooltip=["signature", "cell_type", alt.Tooltip("mean:Q", format=".3f"), "n_cells", "n_samples",
                 alt.Tooltip("coverage:Q", format=".0%")],
    )


def embedding_chart(cells: pd.DataFrame, *, signature: str, max_points: int = 5000, random_state: int = 0) -> alt.Chart:
    """UMAP scatter coloured by a signature's score (at most ``max_points`` cells, seeded subsample)."""
    df = cells.reset_index()
    if len(df) > max_points:
        df = df.sample(max_points, random_state=random_state)
    df = df[["umap_1", "umap_2", "cell_type", "sample", signature]].rename(columns={signature: "score"})
    lim = float(np.nanquantile(np.abs(df["score"]), 0.99)) or 1.0
    return alt.Chart(df, title=f"UMAP coloured by {signature} score").mark_circle(size=12, opacity=0.8).encode(
        x=alt.X("umap_1:Q", axis=None), y=alt.Y("umap_2:Q", axis=None),
        color=alt.Color("score:Q", scale=alt.Scale(scheme="redblue", domain=[-lim, lim], reverse=True, clamp=True)),
        tooltip=["cell_type", "sample", alt.Tooltip("score:Q", format=".3f")],
    ).properties(width=380, height=340)


def atlas_heatmap(table: pd.DataFrame, *, signature: str) -> alt.Chart:
    """Mean score of one signature: harmonised cell type x dataset, faceted by cancer type.

    Datasets stay separate columns (two may share a cancer type, or even cells); tooltips carry
    n cells, n samples and gene coverage.
    """
    df = table[table["signature"] == signature]
    return alt.Chart(df).mark_rect().encode(
        x=alt.X("dataset:N", title=None, axis=alt.Axis(labelAngle=-40, labelLimit=220)),
        y=alt.Y("cell_type:N", title="cell type"),
        color=alt.Color("mean:Q", scale=alt.Scale(scheme="redblue", domainMid=0, reverse=True), title="mean score"),
        tooltip=["dataset", "cancer_type", "cell_type", alt.Tooltip("mean:Q", format=".3f"), "n_cells", "n_samples",
                 alt.Tooltip("coverage:Q", format=".0%")],
    ).properties(width=alt.Step(28)).facet(
        column=alt.Column("cancer_type:N", title=None), title=f"{signature}: mean score by cell type, dataset and cancer type"
    ).resolve_scale(x="independent")
