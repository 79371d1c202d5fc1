"""Altair charts for the book, drawn offline.

The pages load one vendored Vega bundle (``_static/vega/vega-bundle.js``, written by
:func:`write_vega_bundle` from the pinned ``vl-convert-python``); :func:`enable_offline_renderer`
makes each chart output a ``<div>`` plus a call to that bundle's ``vegaEmbed``, so no CDN is
contacted (see ``../shared/notes/build_chain.md``, recipe D).
"""

from __future__ import annotations

import json
from pathlib import Path

import altair as alt
import jinja2
import numpy as np
import pandas as pd
import vl_convert as vlc

from ..genes import LOW_COVERAGE_FLAG
from .pages import format_p

__all__ = [
    "write_vega_bundle",
    "enable_offline_renderer",
    "fit_page",
    "chart_html",
    "sasp_map_chart",
    "composition_chart",
    "score_distribution_chart",
    "validity_forest",
    "VALIDITY_COLOURS",
    "celltype_heatmap",
    "embedding_chart",
    "atlas_heatmap",
    "jaccard_heatmap",
    "coverage_heatmap",
    "ranking_chart",
    "gene_dotplot",
    "table2_forest",
    "null_chart",
    "method_sensitivity_chart",
]

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
    vl = "_".join(alt.SCHEMA_VERSION.split(".")[:2])
    target = Path(static_dir) / "vega" / "vega-bundle.js"
    target.parent.mkdir(parents=True, exist_ok=True)
    js = vlc.javascript_bundle(vl_version=vl)
    target.write_text("(function () {\n" + js + "\n})();\n", encoding="utf-8")
    return target


def enable_offline_renderer() -> None:
    """Render charts as a div + ``window.vegaEmbed`` call (no CDN, no inline bundle)."""
    alt.renderers.enable("html", template=_TEMPLATE, embed_options=_EMBED_OPTIONS)


#: SVG renderer (scales with the column); no vega-embed actions menu: its icon-only disclosure has no
#: accessible name, and every figure has SVG/PNG/CSV downloads under it
_EMBED_OPTIONS = {"renderer": "svg", "actions": False}


def chart_html(chart, div_id: str) -> str:
    """The chart as the page's ``<div class="sasp-chart">`` plus its ``vegaEmbed`` call (the offline
    renderer's output, for pages written without a kernel)."""
    return _TEMPLATE.render(
        output_div=div_id, spec=json.dumps(chart.to_dict()), embed_options=json.dumps(_EMBED_OPTIONS)
    )


def fit_page(chart):
    """Page-wide chart settings: legends below the plot (inside the frame, never off its right edge).
    The page CSS (``_static/sasp.css``) scales a drawn SVG down to the text column; single views
    draw at the column's width (``width="container"``)."""
    return chart.configure_legend(orient="bottom", columns=3, labelLimit=220, titleLimit=300)


def composition_chart(cells: pd.DataFrame, *, title: str = "Cells per cell type") -> alt.Chart:
    """Bar chart of cell counts per harmonised cell type, split by sample."""
    counts = cells.groupby(["cell_type", "sample"], observed=True).size().reset_index(name="n_cells")
    return (
        alt.Chart(counts, title=title)
        .mark_bar()
        .encode(
            y=alt.Y("cell_type:N", sort="-x", title="cell type"),
            x=alt.X("sum(n_cells):Q", title="cells"),
            color=alt.Color("sample:N", title="sample"),
            tooltip=["cell_type", "sample", "n_cells"],
        )
        .properties(width="container")
    )


def score_distribution_chart(table: pd.DataFrame, *, signature: str) -> alt.Chart:
    """Box-style summary (median, IQR, mean) of per-cell scores per cell type for one signature."""
    df = table[table["signature"] == signature]
    base = alt.Chart(df, title=f"{signature}: per-cell scores by cell type{_low_coverage_note(df)}").encode(
        y=alt.Y("cell_type:N", sort=alt.EncodingSortField("median", order="descending"), title="cell type")
    )
    iqr = base.mark_bar(size=12, opacity=0.6).encode(x=alt.X("q25:Q", title="score"), x2="q75:Q")
    med = base.mark_tick(color="black", size=16, thickness=2).encode(
        x="median:Q",
        tooltip=[
            "cell_type",
            "n_cells",
            "n_samples",
            alt.Tooltip("median:Q", format=".3f"),
            alt.Tooltip("mean:Q", format=".3f"),
            alt.Tooltip("q25:Q", format=".3f"),
            alt.Tooltip("q75:Q", format=".3f"),
            *_coverage_tooltips(df),
        ],
    )
    mean = base.mark_point(shape="diamond", color="firebrick", filled=True).encode(x="mean:Q")
    return (iqr + med + mean).properties(width="container")


def _low_coverage_note(table: pd.DataFrame) -> str:
    """`` (low coverage: score not comparable)`` for a chart title when a drawn row is flagged."""
    flagged = "low_coverage" in table and table["low_coverage"].astype(bool).any()
    return f" ({LOW_COVERAGE_FLAG})" if flagged else ""


def _coverage_tooltips(table: pd.DataFrame) -> list:
    """The gene coverage and the flag of a row, for every chart that draws a score."""
    out = [alt.Tooltip("coverage:Q", format=".0%", title="gene coverage")] if "coverage" in table else []
    out += [alt.Tooltip("validity:N", title="detects senescence? (validity)")] if "validity" in table else []
    return out + (["flag"] if "flag" in table else [])


def _mean_colour(table: pd.DataFrame):
    """Diverging colour for mean scores; cells whose signature has low gene coverage are grey."""
    colour = alt.Color("mean:Q", scale=alt.Scale(scheme="redblue", domainMid=0, reverse=True), title="mean score")
    if "low_coverage" in table:
        return alt.condition("datum.low_coverage", alt.value("#d9d9d9"), colour)
    return colour


def celltype_heatmap(table: pd.DataFrame, *, title: str = "Mean score per signature and cell type") -> alt.Chart:
    """Heatmap of mean score, signature x cell type, with n and coverage in tooltips; low-coverage grey."""
    table = _with_shown_p(table)
    return (
        alt.Chart(table, title=title)
        .mark_rect()
        .encode(
            x=alt.X("cell_type:N", title="cell type"),
            y=alt.Y("signature:N", title="signature"),
            color=_mean_colour(table),
            tooltip=[
                "signature",
                "cell_type",
                alt.Tooltip("mean:Q", format=".3f"),
                "n_cells",
                "n_samples",
                *_optional(table, "evidence", "q_null", "caveat"),
                alt.Tooltip("coverage:Q", format=".0%"),
                *_optional(table, "flag"),
            ],
        )
    )


def _with_shown_p(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` with each p- or q-value column also as text, floored for display by
    :func:`sasp_atlas.site.pages.format_p` (``q_perm_shown``); the figure's CSV keeps the exact value."""
    cols = [c for c in table.columns if c.startswith(("p_", "q_")) and not c.endswith("_shown")]
    return table.assign(**{f"{c}_shown": table[c].map(format_p) for c in cols}) if cols else table


def _optional(table: pd.DataFrame, *columns: str) -> list:
    """Tooltip entries for the statistics columns a table has (p- and q-values as floored text: the
    table must have passed through :func:`_with_shown_p`)."""
    out = []
    for c in columns:
        if c in table:
            out.append(alt.Tooltip(f"{c}_shown:N", title=c) if c.startswith(("q_", "p_")) else c)
    return out


#: cell types marked "*" on rankings: higher than the other cells of the same tumours at this FDR (q_perm)
Q_MARK = 0.05
#: a row's evidence, as the marks draw it: filled = replicated in >= 3 tumours, open = fewer
EVIDENCE_SHAPES = {"replicated (>= 3 tumours)": True, "1-2 tumours or samples not recorded": False}


def _evidence_class(table: pd.DataFrame) -> pd.Series:
    ev = table["evidence"].astype(str) if "evidence" in table else pd.Series("", index=table.index)
    return np.where(ev.str.startswith("replicated"), "replicated (>= 3 tumours)", "1-2 tumours or samples not recorded")


def embedding_chart(cells: pd.DataFrame, *, signature: str, max_points: int = 5000, random_state: int = 0) -> alt.Chart:
    """UMAP scatter coloured by a signature's score (at most ``max_points`` cells, seeded subsample)."""
    df = cells.reset_index().dropna(subset=["umap_1", "umap_2"])  # large datasets are embedded on a subsample
    if len(df) > max_points:
        df = df.sample(max_points, random_state=random_state)
    df = df[["umap_1", "umap_2", "cell_type", "sample", signature]].rename(columns={signature: "score"})
    lim = float(np.nanquantile(np.abs(df["score"]), 0.99)) or 1.0
    return (
        alt.Chart(df, title=f"UMAP coloured by {signature} score")
        .mark_circle(size=12, opacity=0.8)
        .encode(
            x=alt.X("umap_1:Q", axis=None),
            y=alt.Y("umap_2:Q", axis=None),
            color=alt.Color("score:Q", scale=alt.Scale(scheme="redblue", domain=[-lim, lim], reverse=True, clamp=True)),
            tooltip=["cell_type", "sample", alt.Tooltip("score:Q", format=".3f")],
        )
        .properties(width=380, height=340)
    )


def _auroc_colour(field: str, title: str = "AUROC vs rest"):
    """Diverging colour for a scale-free AUROC: 0.5 (no difference) white, red above, blue below."""
    return alt.Color(
        f"{field}:Q",
        title=title,
        scale=alt.Scale(scheme="redblue", domain=[0, 1], domainMid=0.5, reverse=True, clamp=True),
    )


def atlas_heatmap(table: pd.DataFrame, *, signature: str) -> alt.Chart:
    """One signature across datasets on a scale-free effect: the AUROC of each cell type's per-cell
    score against the other cells of the same tumour (``effect_size``; 0.5 = no difference), cell
    type x dataset, one panel per cancer type.

    Raw scores are not compared across datasets (10x log-normalised and Smart-seq2 log2(TPM/10+1)
    values live on different scales); the mean and its interval are in the tooltip. Datasets stay
    separate rows (two may share a cancer type, or even cells). Outlined: replicated in >= 3 tumours;
    grey: low gene coverage (the flag and the coverage are in the tooltip).
    """
    df = _with_shown_p(table[table["signature"] == signature].copy())
    df["evidence_class"] = _evidence_class(df)
    colour = _auroc_colour("effect_size")
    if "low_coverage" in df:
        df["low_coverage"] = df["low_coverage"].astype(bool)
        colour = alt.condition("datum.low_coverage", alt.value("#d9d9d9"), colour)
    return (
        alt.Chart(df)
        .mark_rect(strokeWidth=2)
        .encode(
            x=alt.X("cell_type:N", title=None, axis=alt.Axis(labelAngle=-40, labelLimit=180)),
            y=alt.Y("dataset:N", title=None, axis=alt.Axis(labelLimit=200)),
            color=colour,
            stroke=alt.condition(
                "datum.evidence_class == 'replicated (>= 3 tumours)'", alt.value("#222"), alt.value(None)
            ),
            tooltip=[
                "dataset",
                "cancer_type",
                "cell_type",
                alt.Tooltip("effect_size:Q", format=".2f", title="AUROC vs rest"),
                alt.Tooltip("mean:Q", format=".3f", title="mean raw score (this dataset)"),
                alt.Tooltip("ci_low:Q", format=".3f"),
                alt.Tooltip("ci_high:Q", format=".3f"),
                "ci_unit",
                "n_cells",
                "n_samples",
                *_optional(df, "evidence", "q_null", "q_perm", "caveat"),
                *_coverage_tooltips(df),
            ],
        )
        .properties(width=alt.Step(20), height=alt.Step(18))
        .facet(
            row=alt.Row(
                "cancer_type:N",
                title=None,
                header=alt.Header(
                    labelAngle=0, labelOrient="top", labelAnchor="start", labelFontWeight="bold", labelLimit=400
                ),
            ),
            title=f"{signature}: AUROC vs the rest of the tumour, by cell type, dataset and cancer type",
        )
        .resolve_scale(y="independent")
    )


def _class_order(table: pd.DataFrame) -> list[str]:
    """The SASP classes' labels in the class table's order."""
    return list(table.sort_values("class_order")["class_label"].drop_duplicates())


def sasp_composition_chart(scores: pd.DataFrame) -> alt.Chart:
    """SASP composition of each cell type in one dataset: each SASP factor class's share of the cell
    type's SASP expression (``sasp_class_scores.csv``: linear expression of the class's genes over that
    of all classified SASP genes present; shares sum to 1), a 100% stacked bar per cell type; interval,
    genes present, tumours and evidence in the tooltip. Cell types with no SASP expression are left out."""
    df = scores[scores["share"].notna()].copy()
    order = _class_order(scores)
    df["share_interval"] = [
        f"[{lo:.2f}, {hi:.2f}]" if pd.notna(lo) else "" for lo, hi in zip(df["share_ci_low"], df["share_ci_high"])
    ]
    df["genes"] = [f"{int(p)} of {int(n)}" for p, n in zip(df["n_genes_present"], df["n_genes_class"])]
    return (
        alt.Chart(df, title="SASP factor class shares per cell type")
        .mark_bar()
        .encode(
            y=alt.Y("cell_type:N", title=None, axis=alt.Axis(labelLimit=200)),
            x=alt.X("share:Q", stack="normalize", title="share of SASP expression", axis=alt.Axis(format="%")),
            color=alt.Color("class_label:N", sort=order, scale=alt.Scale(scheme="tableau10"), title="SASP class"),
            order=alt.Order("class_order:Q"),
            tooltip=[
                "cell_type",
                "class_label",
                alt.Tooltip("share:Q", format=".1%"),
                alt.Tooltip("share_interval:N", title="95% interval"),
                alt.Tooltip("genes:N", title="class genes present"),
                "n_cells",
                "n_samples",
                "evidence",
                *_coverage_tooltips(df),
            ],
        )
        .properties(width=460)
    )  # a fixed width: the SVG/PNG downloads keep the legend (the page scales the SVG)


def sasp_class_heatmap(scores: pd.DataFrame) -> alt.Chart:
    """SASP factor classes across cell types and cancers on a scale-free effect: the composition-balanced
    AUROC of each class's per-cell score in a cell type against the other cells of the same tumours
    (``balanced_effect``; 0.5 = no difference), class x cell type, one panel per cancer type and dataset.
    Outlined: replicated in >= 3 tumours; grey: no gene of the class in the data or low coverage."""
    df = scores.copy()
    df["evidence_class"] = _evidence_class(df)
    df["panel"] = df["cancer_type"].astype(str) + " — " + df["dataset"].astype(str)
    df["no_estimate"] = df["balanced_effect"].isna() | df.get("low_coverage", False).astype(bool)
    df["interval"] = [
        f"[{lo:.2f}, {hi:.2f}]" if pd.notna(lo) else "" for lo, hi in zip(df["balanced_ci_low"], df["balanced_ci_high"])
    ]
    colour = _auroc_colour("balanced_effect", "balanced AUROC")
    return (
        alt.Chart(df)
        .mark_rect(strokeWidth=2, invalid="show")  # a panel whose every class has no estimate stays (grey)
        .encode(
            x=alt.X(
                "class_label:N", sort=_class_order(scores), title=None, axis=alt.Axis(labelAngle=-40, labelLimit=180)
            ),
            y=alt.Y("cell_type:N", title=None, axis=alt.Axis(labelLimit=200)),
            color=alt.condition("datum.no_estimate", alt.value("#d9d9d9"), colour),
            stroke=alt.condition(
                "datum.evidence_class == 'replicated (>= 3 tumours)'", alt.value("#222"), alt.value(None)
            ),
            tooltip=[
                "dataset",
                "cancer_type",
                "cell_type",
                "class_label",
                alt.Tooltip("balanced_effect:Q", format=".2f", title="balanced AUROC"),
                alt.Tooltip("interval:N", title="95% interval"),
                alt.Tooltip("share:Q", format=".1%"),
                "n_cells",
                "n_samples",
                "evidence",
                alt.Tooltip("n_genes_present:Q", title="class genes present"),
                *_coverage_tooltips(df),
            ],
        )
        .properties(width=alt.Step(26), height=alt.Step(18))
        .facet(
            row=alt.Row(
                "panel:N",
                title=None,
                header=alt.Header(
                    labelAngle=0, labelOrient="top", labelAnchor="start", labelFontWeight="bold", labelLimit=500
                ),
            ),
            title="SASP factor classes: balanced AUROC vs the rest of the tumour, by cell type and cancer",
        )
        .resolve_scale(y="independent")
    )


def sasp_communication_chart(communication: pd.DataFrame) -> alt.Chart:
    """SASP traffic between the cell types of one dataset (``sasp_communication.csv``, LIANA per tumour):
    sender (rows) x receiver (columns), coloured by the number of SASP ligand-receptor pairs found
    (specific to that sender and receiver, ``specificity_rank <= 0.05``) in at least one tumour; the
    strongest pair (best median magnitude rank), the tumours it was found in and the tumours tested are
    in the tooltip."""
    found = communication[communication["n_samples_found"] > 0]
    keys = ["source", "target"]
    if found.empty:
        df = communication.groupby(keys, as_index=False).agg(n_pairs_found=("ligand", lambda x: 0))
        df["top_pair"], df["top_found_in"], df["tested_in"] = "", 0, 0
    else:
        top = found.sort_values(["n_samples_found", "magnitude_rank"], ascending=[False, True]).groupby(keys).head(1)
        df = found.groupby(keys, as_index=False).agg(
            n_pairs_found=("ligand", "size"), tested_in=("n_samples_tested", "max")
        )
        top = top.assign(
            top_pair=top["ligand"] + " → " + top["receptor"] + " (" + top["ligand_class"] + ")",
            top_found_in=top["n_samples_found"],
        )[[*keys, "top_pair", "top_found_in"]]
        df = df.merge(top, on=keys)
    return (
        alt.Chart(df, title="SASP ligand-receptor pairs found per sender and receiver")
        .mark_rect()
        .encode(
            x=alt.X("target:N", title="receiver", axis=alt.Axis(labelAngle=-40, labelLimit=180)),
            y=alt.Y("source:N", title="sender", axis=alt.Axis(labelLimit=200)),
            color=alt.Color("n_pairs_found:Q", scale=alt.Scale(scheme="purples"), title="SASP pairs found"),
            tooltip=[
                alt.Tooltip("source:N", title="sender"),
                alt.Tooltip("target:N", title="receiver"),
                alt.Tooltip("n_pairs_found:Q", title="SASP pairs found"),
                alt.Tooltip("top_pair:N", title="strongest pair"),
                alt.Tooltip("top_found_in:Q", title="tumours it was found in"),
                alt.Tooltip("tested_in:Q", title="tumours tested"),
            ],
        )
        .properties(width=alt.Step(26), height=alt.Step(22))
    )


#: the map's count for a square whose pool holds no named tumour (only files that record no patients)
NOT_RECORDED_MARK = "n.r."


def sasp_map_chart(
    meta: pd.DataFrame, *, signature_list: list[str], default: str | None = None, dataset_url: str = "datasets/{}.html"
) -> alt.Chart:
    """The SASP map: cancer type x harmonised cell type, coloured by the pooled composition-balanced
    AUROC of a signature (``meta_analysis.csv``: per-sample AUROC against the other cells of the same
    tumour, random-effects over tumours and datasets; 0.5 = no difference), a menu to choose the
    signature (a Vega parameter bound to a ``<select>``; drawn offline), the number of named tumours
    printed in each square (``k_tumours``; :data:`NOT_RECORDED_MARK` when the pool holds only files
    that record no patients), faded squares resting on fewer than 3 named tumours, grey squares of low
    gene coverage (``low_coverage``: the score is not comparable), and a click opening the first
    dataset behind the square (``dataset_url`` relative to the page). The tooltip gives the interval,
    tumours, cohorts, files with unrecorded patients, the gene coverage and every flag of the row.
    """
    df = meta[meta["signature"].isin(signature_list)].copy()
    df["n_tumours"] = df["k_tumours"].astype(int)
    df["count_label"] = [
        str(n) if n or not u else NOT_RECORDED_MARK for n, u in zip(df["n_tumours"], df["k_unrecorded"].astype(int))
    ]
    df["replicated"] = df["n_tumours"] >= 3
    df["low_coverage"] = df["low_coverage"].astype(bool)
    df["flag"] = df["flag"].fillna("").astype(str)
    df["first_dataset"] = df["datasets"].astype(str).str.split(";").str[0].str.strip()
    df["url"] = [dataset_url.format(d) for d in df["first_dataset"]]
    df["interval"] = [f"[{lo:.2f}, {hi:.2f}]" if pd.notna(lo) else "" for lo, hi in zip(df["ci_low"], df["ci_high"])]
    choice = alt.param(
        name="signature_choice",
        value=default or signature_list[0],
        bind=alt.binding_select(options=list(signature_list), name="Signature "),
    )
    base = (
        alt.Chart(df)
        .transform_filter(alt.datum.signature == choice)
        .encode(
            x=alt.X("cell_type:N", title=None, axis=alt.Axis(labelAngle=-40, labelLimit=180)),
            y=alt.Y("cancer_type:N", title=None, axis=alt.Axis(labelLimit=240)),
        )
    )
    squares = base.mark_rect(cursor="pointer").encode(
        color=alt.condition("datum.low_coverage", alt.value("#d9d9d9"), _auroc_colour("estimate", "balanced AUROC")),
        opacity=alt.condition("datum.replicated", alt.value(1.0), alt.value(0.55)),
        href="url:N",
        tooltip=[
            "cancer_type",
            "cell_type",
            "signature",
            alt.Tooltip("estimate:Q", format=".2f", title="balanced AUROC"),
            alt.Tooltip("interval:N", title="95% interval"),
            alt.Tooltip("n_tumours:Q", title="named tumours"),
            alt.Tooltip("k_cohorts:Q", title="cohorts"),
            alt.Tooltip("k_unrecorded:Q", title="files with patients not recorded"),
            "datasets",
            "evidence",
            alt.Tooltip("coverage:Q", format=".0%", title="gene coverage (lowest dataset)"),
            *([alt.Tooltip("validity:N", title="detects senescence? (validity)")] if "validity" in df else []),
            "flag",
        ],
    )
    counts = base.mark_text(fontSize=10).encode(text="count_label:N", color=alt.value("#111"), href="url:N")
    return (
        (squares + counts)
        .add_params(choice)
        .properties(
            width=alt.Step(34),
            height=alt.Step(30),
            title="SASP map: balanced AUROC (number: named tumours; grey: low gene coverage)",
        )
    )


def jaccard_heatmap(jaccard: pd.DataFrame) -> alt.Chart:
    """Gene-set overlap (Jaccard index) between signatures."""
    return (
        alt.Chart(jaccard, title="Gene overlap between signatures (Jaccard index)")
        .mark_rect()
        .encode(
            x=alt.X("a:N", title=None, axis=alt.Axis(labelAngle=-60, labelLimit=200)),
            y=alt.Y("b:N", title=None, axis=alt.Axis(labelLimit=260)),
            color=alt.Color("jaccard:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), title="Jaccard"),
            tooltip=["a", "b", alt.Tooltip("jaccard:Q", format=".2f"), "n_shared"],
        )
        .properties(width=alt.Step(11), height=alt.Step(11))
    )


def coverage_heatmap(coverage: pd.DataFrame) -> alt.Chart:
    """Fraction of each signature's genes present in each dataset (after alias resolution)."""
    df = coverage.assign(low=coverage["low_coverage"].astype(bool))
    return (
        alt.Chart(df, title="Signature gene coverage per dataset")
        .mark_rect()
        .encode(
            x=alt.X("dataset:N", title=None, axis=alt.Axis(labelAngle=-30, labelLimit=260)),
            y=alt.Y("signature:N", title=None, axis=alt.Axis(labelLimit=260)),
            color=alt.Color("coverage:Q", scale=alt.Scale(scheme="greens", domain=[0, 1]), title="coverage"),
            stroke=alt.condition("datum.low", alt.value("#b00"), alt.value(None)),
            tooltip=[
                "signature",
                "dataset",
                "n_genes",
                "n_present",
                "n_rescued",
                alt.Tooltip("coverage:Q", format=".0%"),
                "flag",
            ],
        )
        .properties(width=alt.Step(60), height=alt.Step(11))
    )


def ranking_chart(table: pd.DataFrame, *, signature: str) -> alt.Chart:
    """Cell types ranked by a signature's mean score within each dataset, with 95 % intervals.

    Points: mean (random-effects pooled sample means where there are several samples); bars: 95 %
    interval (over samples, or over cells for single-sample datasets: see ``ci_unit``); filled points:
    replicated in >= 3 tumours, open points: fewer (the label says how many); faded: low coverage;
    "*": q_perm < :data:`Q_MARK` (higher than the other cells of the same tumours, Benjamini-Hochberg
    over the dataset's table).
    """
    df = _with_shown_p(table[table["signature"] == signature].copy())
    df["evidence_class"] = _evidence_class(df)
    df["label"] = (
        df["cell_type"]
        + " (n="
        + df["n_cells"].astype(str)
        + ", "
        + (df["evidence"].astype(str) if "evidence" in df else df["n_samples"].astype(str) + " smp")
        + ")"
    )
    base = alt.Chart(df).encode(
        y=alt.Y(
            "label:N", sort=alt.EncodingSortField("mean", order="descending"), title=None, axis=alt.Axis(labelLimit=320)
        )
    )
    bars = base.mark_rule(color="#555").encode(
        x=alt.X("ci_low:Q", title=f"mean {signature} score (95% CI)"), x2="ci_high:Q"
    )
    points = base.mark_point(size=60, strokeWidth=2, shape="circle").encode(
        x="mean:Q",
        color=alt.Color("lineage:N", title="lineage"),
        fill=alt.Fill(
            "evidence_class:N",
            title="evidence",
            scale=alt.Scale(domain=list(EVIDENCE_SHAPES), range=["#333333", "#ffffff"]),
            legend=alt.Legend(symbolStrokeColor="#333333", symbolType="circle", labelLimit=260),
        ),
        opacity=alt.condition("datum.low_coverage", alt.value(0.3), alt.value(1.0)),
        tooltip=[
            "dataset",
            "cell_type",
            alt.Tooltip("mean:Q", format=".3f"),
            alt.Tooltip("ci_low:Q", format=".3f"),
            alt.Tooltip("ci_high:Q", format=".3f"),
            "ci_unit",
            alt.Tooltip("effect_size:Q", format=".2f", title="AUROC"),
            "n_cells",
            "n_samples",
            *_optional(df, "evidence", "q_null", "q_perm", "caveat"),
            *_coverage_tooltips(df),
        ],
    )
    layers = bars + points
    if "q_perm" in df:  # marked by q (FDR over the dataset's table), never by p
        df["q_mark"] = np.where(df["q_perm"] < Q_MARK, "*", "")
        layers += base.mark_text(align="left", dx=6, fontSize=14, fontWeight="bold").encode(
            x="ci_high:Q", text="q_mark:N"
        )
    return (
        layers.properties(width=360)
        .facet(
            row=alt.Row(
                "dataset:N",
                title=None,
                header=alt.Header(
                    labelAngle=0, labelOrient="top", labelAnchor="start", labelFontWeight="bold", labelLimit=400
                ),
            ),
            title=f"{signature}: cell types ranked within each dataset",
        )
        .resolve_scale(y="independent", x="independent")
    )


def gene_dotplot(genes: pd.DataFrame, *, signature: str, top: int = 30) -> alt.Chart:
    """Which genes drive a score: mean expression (colour) x fraction expressing (size) per cell type.

    Shows the ``top`` genes with the largest cell-type-vs-rest difference (``delta``) anywhere;
    the CSV download has all genes.
    """
    df = genes[genes["signature"] == signature]
    keep = df.groupby("gene")["delta"].max().nlargest(top).index
    df = df[df["gene"].isin(keep)]
    facet = "dataset:N" if df["dataset"].nunique() > 1 else None
    chart = (
        alt.Chart(df)
        .mark_circle()
        .encode(
            x=alt.X(
                "gene:N",
                sort=alt.EncodingSortField("delta", op="max", order="descending"),
                title=None,
                axis=alt.Axis(labelAngle=-60),
            ),
            y=alt.Y("cell_type:N", title=None),
            size=alt.Size("frac_expressing:Q", scale=alt.Scale(domain=[0, 1]), title="fraction expressing"),
            color=alt.Color("mean_expression:Q", scale=alt.Scale(scheme="reds"), title="mean expression"),
            tooltip=[
                "dataset",
                "cell_type",
                "gene",
                alt.Tooltip("mean_expression:Q", format=".2f"),
                alt.Tooltip("frac_expressing:Q", format=".0%"),
                alt.Tooltip("delta:Q", format=".2f"),
                "n_cells",
            ],
        )
        .properties(width=alt.Step(14))
    )
    if facet:
        # a shared cell-type axis (resolve_scale(y="independent") breaks vl-convert's SVG export here)
        # colour per dataset: expression scales differ between platforms (10x vs Smart-seq2)
        return chart.facet(
            row=alt.Row(
                facet,
                title=None,
                header=alt.Header(labelAngle=0, labelOrient="top", labelAnchor="start", labelFontWeight="bold"),
            ),
            title=f"{signature}: genes behind the score",
        ).resolve_scale(color="independent")
    return chart.properties(title=f"{signature}: genes behind the score")


#: verdict colours of the Table 2 forest plot
VERDICT_COLOURS = {
    "supported": "#1b7837",
    "supported in another cancer type": "#7fbf7b",
    "inconclusive": "#999999",
    "inconclusive: genes barely detected": "#cccccc",
    "contradicted": "#b2182b",
}


def table2_forest(checks: pd.DataFrame) -> alt.Chart:
    """Composition-balanced AUROC with 95 % interval for each testable Table 2 row x dataset, coloured
    by verdict; filled points: replicated in >= 3 tumours."""
    df = checks.dropna(subset=["effect_size"]).copy()
    df["label"] = "Row " + df["row"].astype(str) + ": " + df["table2_cell_type"] + " — " + df["dataset"]
    base = alt.Chart(df, title="Review Table 2 tested: is the row's gene set higher in its cell type?").encode(
        y=alt.Y("label:N", title=None, axis=alt.Axis(labelLimit=420))
    )
    rule = alt.Chart(pd.DataFrame({"x": [0.5]})).mark_rule(strokeDash=[4, 3], color="#888").encode(x="x:Q")
    df["evidence_class"] = _evidence_class(df)
    bars = base.mark_rule().encode(
        x=alt.X("ci_low:Q", title="AUROC vs each other cell type, balanced (95% CI)", scale=alt.Scale(domain=[0, 1])),
        x2="ci_high:Q",
    )
    colour = alt.Color("verdict:N", scale=alt.Scale(domain=list(VERDICT_COLOURS), range=list(VERDICT_COLOURS.values())))
    points = base.mark_point(size=70, strokeWidth=2).encode(
        x="effect_size:Q",
        color=colour,
        fill=alt.condition("datum.evidence_class == 'replicated (>= 3 tumours)'", colour, alt.value("white")),
        tooltip=[
            "row",
            "table2_cell_type",
            "table2_cancer_types",
            "dataset",
            "cancer_type",
            "cancer_type_matches",
            "cell_type",
            "ontology_match",
            alt.Tooltip("effect_size:Q", format=".2f"),
            alt.Tooltip("ci_low:Q", format=".2f"),
            alt.Tooltip("ci_high:Q", format=".2f"),
            "ci_unit",
            alt.Tooltip("identity_adjusted_effect:Q", format=".2f"),
            "identity_genes_removed",
            "evidence",
            "n_cells",
            "n_samples",
            "n_present",
            "n_genes",
            alt.Tooltip("coverage:Q", format=".0%"),
            *(
                [alt.Tooltip("max_detection:Q", format=".0%", title="best-detected gene (share of cells)")]
                if "max_detection" in df
                else []
            ),
            *([alt.Tooltip("validity:N", title="detects senescence? (validity)")] if "validity" in df else []),
            "verdict",
        ],
    )
    return (rule + bars + points).properties(width="container")


def null_chart(null: pd.DataFrame, *, signature: str) -> alt.Chart:
    """Observed cell-type mean against expression-matched random gene sets (mean ± 2 SD band)."""
    df = null[null["signature"] == signature].copy()
    df["low"], df["high"] = df["null_mean"] - 2 * df["null_sd"], df["null_mean"] + 2 * df["null_sd"]
    base = alt.Chart(df, title=f"{signature}: observed vs random gene sets of matched expression").encode(
        y=alt.Y("cell_type:N", sort=alt.EncodingSortField("z", order="descending"), title=None)
    )
    band = base.mark_bar(color="#bbb", size=10).encode(x=alt.X("low:Q", title="cell-type mean score"), x2="high:Q")
    point = base.mark_point(filled=True, size=70, color="firebrick").encode(
        x="observed_mean:Q",
        tooltip=[
            "cell_type",
            alt.Tooltip("observed_mean:Q", format=".3f"),
            alt.Tooltip("null_mean:Q", format=".3f"),
            alt.Tooltip("null_sd:Q", format=".3f"),
            alt.Tooltip("z:Q", format=".1f"),
            alt.Tooltip("empirical_p:Q", format=".3f"),
            "n_cells",
        ],
    )
    return (band + point).properties(width="container")


def method_sensitivity_chart(method_means: pd.DataFrame, concordance: pd.DataFrame) -> alt.Chart:
    """Rank of each cell type under each scoring engine (1 = highest), one panel per signature;
    the per-signature Spearman concordance of the cell-type order is in the tooltips and the CSV."""
    conc = concordance.groupby("signature")["spearman_groups"].min().rename("min_spearman").reset_index()
    df = method_means.merge(conc, on="signature", how="left")
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("method:N", title=None),
            y=alt.Y("cell_type:N", title=None),
            color=alt.Color("rank:O", scale=alt.Scale(scheme="viridis", reverse=True), title="rank"),
            tooltip=[
                "signature",
                "cell_type",
                "method",
                "rank",
                alt.Tooltip("mean:Q", format=".3f"),
                "n_cells",
                alt.Tooltip("min_spearman:Q", format=".2f", title="lowest Spearman between methods"),
            ],
        )
        .properties(width=alt.Step(22))
        .facet(
            facet=alt.Facet("signature:N", title=None), columns=3, title="Cell-type ranking under each scoring engine"
        )
    )


#: validity labels (``sasp_atlas.stats.validity``) and their colours, strongest first
VALIDITY_COLOURS = {
    "detects": "#1a9850",
    "weak": "#91cf60",
    "no signal": "#999999",
    "inverse": "#d73027",
    "untested": "#cccccc",
}


def validity_forest(units: pd.DataFrame, pooled: pd.DataFrame) -> alt.Chart:
    """Does each signature detect senescence? Per unit of replication (small points: a fibroblast strain,
    or the replicates of one condition compared as units) and pooled over units and data sets (diamond
    with its 95 % interval, coloured by validity label), the AUROC of the signature's score in senescent
    vs non-senescent samples; sorted by the pooled AUROC; 0.5 (dashed) = no signal, below = inverse.
    ``pooled`` is one method's rows of ``signature_validity_pooled.csv`` (control group non-senescent),
    ``units`` the matching rows of ``signature_validity_units.csv``."""
    order = list(pooled.sort_values("auroc", ascending=False, na_position="last")["signature"])
    p = pooled.copy()
    p["label"] = p["label"].fillna("untested")
    y = alt.Y("signature:N", sort=order, title=None, axis=alt.Axis(labelLimit=260, labelFontSize=10))
    rule = alt.Chart(pd.DataFrame({"x": [0.5]})).mark_rule(strokeDash=[4, 3], color="#888").encode(x="x:Q")
    colour = alt.Color(
        "label:N",
        title="validity",
        scale=alt.Scale(domain=list(VALIDITY_COLOURS), range=list(VALIDITY_COLOURS.values())),
    )
    x = alt.X("auroc:Q", title="AUROC senescent vs non-senescent (95% CI)", scale=alt.Scale(domain=[0, 1]))
    dots = (
        alt.Chart(units)
        .mark_circle(size=14, opacity=0.45, color="#555")
        .encode(
            x=x,
            y=y,
            tooltip=[
                "signature",
                "benchmark",
                "unit",
                alt.Tooltip("auroc:Q", format=".2f"),
                alt.Tooltip("ci_low:Q", format=".2f"),
                alt.Tooltip("ci_high:Q", format=".2f"),
                "n_senescent",
                "n_control",
                "design",
            ],
        )
    )
    bars = alt.Chart(p).mark_rule(strokeWidth=2).encode(x="ci_low:Q", x2="ci_high:Q", y=y, color=colour)
    diamonds = (
        alt.Chart(p)
        .mark_point(shape="diamond", size=70, filled=True)
        .encode(
            x="auroc:Q",
            y=y,
            color=colour,
            tooltip=[
                "signature",
                "label",
                "label_basis",
                alt.Tooltip("auroc:Q", format=".2f"),
                alt.Tooltip("ci_low:Q", format=".2f"),
                alt.Tooltip("ci_high:Q", format=".2f"),
                "n_benchmarks",
                "benchmarks",
                "n_units",
                "training_overlap",
                "overlapping_benchmarks",
                alt.Tooltip("auroc_out_of_sample:Q", format=".2f", title="AUROC out of sample"),
                "ci_method",
            ],
        )
    )
    return (rule + bars + dots + diamonds).properties(
        width="container", height=alt.Step(11), title="Which signatures detect senescence?"
    )
