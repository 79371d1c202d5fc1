"""The figure registry: every figure of the site is a citable object.

:data:`FIGURES` defines each figure kind once (stable id pattern, title, the chart function, a short
caption and reading notes). :func:`render` draws a figure and writes ``results/figures/<id>.svg``,
``<id>.png`` (300 ppi), ``<id>.csv`` (the data behind it), ``<id>.bib`` (its citation, with the full
provenance) and ``<id>.json`` (its index record); it returns the chart with its id, a caption of at
most :data:`MAX_CAPTION` characters (what is drawn, the unit, the method, how many tumours and
datasets), download links, and a collapsed "Sources and citation" block with the full provenance
(datasets with source URLs and sha256, signature sources, version, commit, plain and BibTeX
citation). :func:`show` displays it in a page notebook; :func:`write_index` collects
``results/figures/index.csv``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.display import HTML, display

from ..genes import signature_record
from ..sources import Dataset, atlas_version
from ..stats.effects import UNRECORDED_SUFFIX
from . import charts
from .references import bibtex_entry

__all__ = ["FIGURES", "FigureSpec", "MAX_CAPTION", "show", "render", "write_index", "atlas_version", "figure_id"]


#: the longest caption a figure may carry (what, unit, method, n tumours, id); provenance goes in the
#: collapsed "Sources and citation" block and the downloads
MAX_CAPTION = 400


@dataclass(frozen=True)
class FigureSpec:
    """One figure kind: ``id`` pattern (``str.format`` fields), title, chart function, a one- or
    two-sentence ``caption`` (what is drawn, the unit, the method) and ``reading`` notes (how to read
    the marks; shown in the collapsed block under the figure)."""

    id: str
    title: str
    draw: Callable[..., Any]
    caption: str
    reading: str = ""


FIGURES: dict[str, FigureSpec] = {
    spec.id: spec
    for spec in [
        FigureSpec(
            "fig-{dataset}-composition",
            "Cell-type composition of {dataset}",
            charts.composition_chart,
            "Cells per harmonised cell type, split by sample.",
        ),
        FigureSpec(
            "fig-{dataset}-heatmap",
            "Mean signature score per cell type in {dataset}",
            charts.celltype_heatmap,
            "Mean per-cell score of each signature in each harmonised cell type ({method} engine; raw scores, "
            "comparable within this dataset only).",
        ),
        FigureSpec(
            "fig-{dataset}-distribution-{signature}",
            "{signature} score distribution per cell type in {dataset}",
            charts.score_distribution_chart,
            "Per-cell {signature} scores per cell type: interquartile range (bar), median (tick), mean (diamond).",
        ),
        FigureSpec(
            "fig-{dataset}-umap-{signature}",
            "UMAP of {dataset} coloured by {signature}",
            charts.embedding_chart,
            "UMAP embedding (display only) coloured by the per-cell {signature} score.",
        ),
        FigureSpec(
            "fig-{dataset}-genes-{signature}",
            "Genes behind the {signature} score in {dataset}",
            charts.gene_dotplot,
            "Mean log-normalised expression (colour) and share of cells expressing (size) of the {signature} genes "
            "that differ most between a cell type and the rest.",
            "Top 30 genes by cell-type-vs-rest difference; the CSV has all genes.",
        ),
        FigureSpec(
            "fig-{dataset}-null-{signature}",
            "Is {signature} high? Observed vs random gene sets in {dataset}",
            charts.null_chart,
            "Each cell type's mean {signature} score (red) against 1,000 random gene sets of the same "
            "expression-bin composition (grey: mean ± 2 SD).",
            "Fixed seed; the empirical p and z are in the tooltip and the CSV, the Benjamini-Hochberg q in "
            "celltype_scores.csv.",
        ),
        FigureSpec(
            "fig-{dataset}-methods",
            "Method sensitivity in {dataset}",
            charts.method_sensitivity_chart,
            "Rank of each cell type (1 = highest mean) under each scoring engine.",
            "Engines: the seed-free control-gene score, scanpy's single draw, Seurat's AddModuleScore, AUCell, "
            "UCell, z-mean, ssGSEA and GSVA (GSVA only where its quadratic cost fits the budget; the section above "
            "the figure names the engines drawn); the Spearman concordance of the orders is in the tooltip and the "
            "CSV.",
        ),
        FigureSpec(
            "fig-{dataset}-sasp-composition",
            "SASP composition per cell type in {dataset}",
            charts.sasp_composition_chart,
            "Share of each SASP factor class (interleukins, chemokines, MMPs, ...) in each cell type's SASP "
            "expression: linear expression of the class's genes over all classified SASP genes present, mean over "
            "tumours.",
            "Classes and their sources: tables/sasp_classes.csv (SenMayo, Basisty core SASP and Reactome SASP genes; "
            "unclassified genes are left out of the shares). The interval and the genes present are in the tooltip.",
        ),
        FigureSpec(
            "fig-{dataset}-sasp-communication",
            "SASP ligand-receptor traffic between cell types in {dataset}",
            charts.sasp_communication_chart,
            "Number of SASP ligand-receptor pairs (SenMayo secreted and Basisty core SASP ligands) specific to each "
            "sender and receiver (LIANA rank aggregate, specificity rank <= 0.05) in at least one tumour.",
            "LIANA's consensus resource restricted to SASP ligands, run per tumour; the strongest pair, the tumours it "
            "was found in and the tumours tested are in the tooltip, every pair in sasp_communication.csv.",
        ),
        FigureSpec(
            "fig-atlas-sasp-classes",
            "SASP factor classes across cell types and cancers",
            charts.sasp_class_heatmap,
            "Composition-balanced AUROC of each SASP factor class's score in each cell type against the other cells "
            "of the same tumours (0.5 = no difference), per dataset, grouped by cancer type.",
            "A scale-free effect, comparable across datasets; grey: no gene of the class in the data or low "
            "coverage; outlined: replicated in >= 3 tumours. The share of the class is in the tooltip.",
        ),
        FigureSpec(
            "fig-atlas-ranking-{signature}",
            "Cell types ranked by {signature} within each dataset",
            charts.ranking_chart,
            "Mean {signature} score per cell type with its 95% interval, ranked within each dataset (own axis per "
            "dataset: raw scores are not compared across datasets).",
            "Intervals: random-effects over tumours, over cells where a dataset has one tumour. Filled points: "
            "replicated in >= 3 tumours; open: fewer. *: q < 0.05 for being higher than the other cells of the "
            "same tumours (within-tumour permutation, Benjamini-Hochberg; shown as < 1e-16 below that floor, exact "
            "in the CSV). Faded: low gene coverage (score not comparable; coverage and flag in the tooltip).",
        ),
        FigureSpec(
            "fig-atlas-genes-{signature}",
            "Genes behind the {signature} score across datasets",
            charts.gene_dotplot,
            "Mean log-normalised expression (colour) and share of cells expressing (size) of the {signature} genes "
            "per cell type and dataset.",
            "Top 30 genes by cell-type-vs-rest difference; the CSV has all genes.",
        ),
        FigureSpec(
            "fig-table2-forest",
            "Review Table 2 tested on the atlas datasets",
            charts.table2_forest,
            "For each row of the review's Table 2 and each dataset with its cell type: composition-balanced AUROC "
            "of the row's genes in that cell type against the other cells of the same tumours (95% interval).",
            "Pooled over tumours. Colour: verdict (supported needs the review's cancer type, AUROC >= 0.6 and the "
            "interval above 0.5; inconclusive: genes barely detected when every gene of the row is detected in "
            "fewer than 10% of the tested cells); filled: replicated in >= 3 tumours.",
        ),
        FigureSpec(
            "fig-validity-forest",
            "Which signatures detect senescence?",
            charts.validity_forest,
            "Per signature: AUROC of its score in senescent vs non-senescent samples of labelled ground truth, per "
            "unit of replication (points) and pooled over units and data sets (diamond, 95% interval), coloured by "
            "its validity label; 0.5 = no signal, below 0.5 = scores senescent samples lower.",
            "Units: a fibroblast strain (bulk, samples within the strain compared), or the replicate samples of "
            "one condition compared as units. Pooled by random effects (Knapp-Hartung t intervals below 5 units). "
            "Labels: detects (AUROC >= 0.75, interval above 0.5), weak (interval above 0.5), no signal, inverse "
            "(interval below 0.5), untested (too few genes measured). Labels use the estimate without data sets "
            "a signature or index was derived from or trained on, when one exists.",
        ),
        FigureSpec(
            "fig-catalogue-jaccard",
            "Gene overlap between catalogued signatures",
            charts.jaccard_heatmap,
            "Jaccard index of the scored (HGNC-resolved) gene sets.",
        ),
        FigureSpec(
            "fig-catalogue-coverage",
            "Signature gene coverage per dataset",
            charts.coverage_heatmap,
            "Share of each signature's genes present in each dataset after alias resolution; outlined: below the "
            "minimum coverage.",
        ),
        FigureSpec(
            "fig-atlas-heatmap-{signature}",
            "{signature} across cell types, datasets and cancer types",
            charts.atlas_heatmap,
            "AUROC of the {signature} score of each cell type against the other cells of the same tumour "
            "(0.5 = no difference), per dataset, grouped by cancer type.",
            "A scale-free effect, comparable across datasets and platforms; the mean raw score and its interval "
            "are in the tooltip. Outlined: replicated in >= 3 tumours; grey: low gene coverage (score not "
            "comparable; coverage and flag in the tooltip). p- and q-values below 1e-16 are shown as < 1e-16 (the "
            "CSV keeps the exact value).",
        ),
        FigureSpec(
            "fig-home-sasp-map",
            "The SASP map: which cell types express a SASP signature, per cancer",
            charts.sasp_map_chart,
            "Composition-balanced AUROC of the chosen signature in each cell type against the other cells of the "
            "same tumours (0.5 = no difference), per cancer type; choose the signature in the menu.",
            "The number is the count of named tumours (n.r.: only files whose patients are not recorded, never "
            "counted as tumours); full colour: >= 3 named tumours, faded: fewer; grey: low gene coverage (score not "
            "comparable). The tooltip gives the interval, tumours, cohorts, files with unrecorded patients, the gene "
            "coverage and the row's flags (perfect separation, a comparison group without malignant cells). Click a "
            "square to open its dataset page.",
        ),
    ]
}


def _scope(data: pd.DataFrame, datasets: list[Dataset] = ()) -> str:
    """How much evidence a figure's data holds: named tumours (max samples per dataset) and datasets. A
    dataset whose patients are not recorded (``evidence`` "samples not recorded", or a pseudo-sample) is
    no tumour and is counted apart; where drawn datasets share tumours (registry ``overlaps``), the sum
    is an upper bound and says so."""
    if "dataset" not in data or data.empty:
        return ""
    n_ds = data["dataset"].nunique()
    if "n_samples" not in data and "sample" not in data:
        return f"{n_ds} dataset{'s' * (n_ds != 1)}."
    if "sample" in data:
        unrecorded_ds = data.groupby("dataset")["sample"].agg(
            lambda s: s.astype(str).str.endswith(UNRECORDED_SUFFIX).all()
        )
    elif "evidence" in data:
        unrecorded_ds = data.groupby("dataset")["evidence"].agg(
            lambda e: set(e.astype(str)) <= {"samples not recorded"}
        )
    else:
        unrecorded_ds = pd.Series(False, index=data["dataset"].unique())
    unrecorded = set(unrecorded_ds[unrecorded_ds].index)
    named = data[~data["dataset"].isin(unrecorded)]
    if "n_samples" in data:
        tumours = int(pd.to_numeric(named.groupby("dataset")["n_samples"].max(), errors="coerce").fillna(0).sum())
    else:
        tumours = int(named.groupby("dataset")["sample"].nunique().sum())
    drawn = set(named["dataset"])
    shared = any(o in drawn for d in datasets if d.id in drawn for o in d.get("overlaps", []))
    files = (
        (f"; {len(unrecorded)} with patients not recorded" if tumours else " (patients not recorded)")
        if unrecorded
        else ""
    )
    if not tumours:
        return f"{n_ds} dataset{'s' * (n_ds != 1)}{files}."
    return (
        f"{'at most ' if shared else ''}{tumours} tumour{'s' * (tumours != 1)} in {n_ds} "
        f"dataset{'s' * (n_ds != 1)}{files}{' (datasets sharing tumours)' if shared else ''}."
    )


def figure_id(kind: str, **params: Any) -> str:
    return FIGURES[kind].id.format(**params)


def _dataset_sources(datasets: list[Dataset]) -> list[str]:
    out = []
    for d in datasets:
        pub = d["publication"]
        files = "; ".join(f"{f['url']} (sha256 {f['sha256']})" for f in d.files)
        ids = ", ".join(x for x in (f"doi:{pub['doi']}" if pub["doi"] else "", pub["accession"]) if x)
        out.append(f"{d.id}: {pub['citation']}" + (f" {ids}" if ids else "") + f". Files: {files}")
    return out


def _signature_sources(signatures: list[str]) -> list[str]:
    out = []
    for s in signatures:
        try:
            rec = signature_record(s)
        except KeyError:
            out.append(f"{s}: custom gene set")
            continue
        src = rec["source"]
        out.append(f"{s}: {src['citation']}" + (f" doi:{src['doi']}" if src.get("doi") else ""))
    return out


def _bibtex(fig_id: str, title: str, datasets: list[Dataset], signatures: list[str], *, provenance: str = "") -> str:
    """The figure's BibTeX record: the data and signature DOIs in ``note``; the full provenance (every
    citation, file URL and sha256, version, commit) in ``annote`` when given."""
    v = atlas_version()
    notes = "; ".join(
        [
            f"data: doi:{d['publication']['doi']}"
            if d["publication"]["doi"]
            else f"data: {d['publication']['citation']}"
            for d in datasets
        ]
        + [
            f"signature {s}: doi:{signature_record(s)['source']['doi']}"
            for s in signatures
            if _has_signature(s) and signature_record(s)["source"].get("doi")
        ]
    )
    fields = {
        "title": f"{title} (figure {fig_id})",
        "author": "{sasp-atlas contributors}",  # braced: a corporate author, not a first and last name
        "year": "2026",
        "howpublished": f"SASP atlas, version {v['version']}, commit {v['commit']}",
        "note": notes,
    }
    if provenance:
        fields["annote"] = provenance
    return bibtex_entry(fig_id.replace("-", "_"), fields, verbatim=("author",))


def _has_signature(s: str) -> bool:
    try:
        signature_record(s)
        return True
    except KeyError:
        return False


def show(kind: str, data: pd.DataFrame, **kwargs: Any) -> None:
    """:func:`render` a registered figure and display it in the page notebook."""
    display(HTML(render(kind, data, **kwargs)))


def render(
    kind: str,
    data: pd.DataFrame,
    *,
    datasets: list[Dataset],
    signatures: list[str],
    method: str,
    page_depth: int,
    results: str | Path = "results",
    extra_caption: str = "",
    **params: Any,
) -> str:
    """Draw and save one registered figure; return its HTML (chart, caption, downloads, the collapsed
    "Sources and citation" block). Its index record goes to ``<id>.json``.

    ``data`` is what the chart encodes (saved as ``<id>.csv``); ``params`` fill the id/title
    pattern and are passed to the chart function (e.g. ``signature``); ``page_depth`` is the
    page's folder depth below the site root, for relative download links.
    """
    spec = FIGURES[kind]
    fmt = {"dataset": datasets[0].id if len(datasets) == 1 else "atlas", "method": method, **params}
    if len(signatures) > 12:  # the catalogue-wide figures: name the families, not 100 sets
        signatures_for_caption = []
    else:
        signatures_for_caption = signatures
    fig_id, title = spec.id.format(**fmt), spec.title.format(**fmt)
    chart_params = {k: v for k, v in params.items() if k in spec.draw.__code__.co_varnames}
    chart = charts.fit_page(spec.draw(data, **chart_params))
    out = Path(results) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    chart.save(str(out / f"{fig_id}.svg"))
    chart.save(str(out / f"{fig_id}.png"), ppi=300)
    data.to_csv(out / f"{fig_id}.csv", index=False, float_format="%.6g")
    v = atlas_version()
    caption = " ".join(
        x
        for x in (spec.caption.format(**fmt), extra_caption.strip(), _scope(data, datasets), f"Method: {method}.")
        if x
    )
    if len(caption) > MAX_CAPTION:
        raise ValueError(
            f"{fig_id}: caption of {len(caption)} characters (max {MAX_CAPTION}); move detail to `reading`"
        )
    sources = []
    if spec.reading:
        sources.append(("How to read", [spec.reading.format(**fmt)]))
    if datasets:
        sources.append(("Datasets", _dataset_sources(datasets)))
    if signatures_for_caption:
        sources.append(("Signatures", _signature_sources(signatures_for_caption)))
    elif signatures:
        sources.append(("Signatures", [f"{len(signatures)} catalogued sets (sources on the catalogue pages)."]))
    sources.append(("Build", [f"SASP atlas {v['version']}, commit {v['commit']}; method {method}."]))
    provenance = " ".join(f"{head}: {'; '.join(items)}" for head, items in sources)
    bibtex = _bibtex(fig_id, title, datasets, signatures, provenance=provenance)
    record = {
        "id": fig_id,
        "title": title,
        "caption": caption,
        "provenance": provenance,
        "datasets": " ".join(d.id for d in datasets),
        "signatures": " ".join(signatures),
        "method": method,
        "version": v["version"],
        "commit": v["commit"],
        "n_rows": len(data),
    }
    (out / f"{fig_id}.json").write_text(json.dumps(record, indent=1))
    (out / f"{fig_id}.bib").write_text(bibtex + "\n")
    plain = (
        f"sasp-atlas contributors (2026). {title} (figure {fig_id}). SASP atlas version {v['version']}, "
        f"commit {v['commit']}."
        + (
            " Data: "
            + "; ".join(
                d["publication"]["citation"] + (f" doi:{d['publication']['doi']}" if d["publication"]["doi"] else "")
                for d in datasets
            )
            + "."
            if datasets
            else ""
        )
    )
    up = "../" * page_depth
    links = " · ".join(
        f'<a href="{up}_static/figures/{fig_id}.{ext}" download>{label}</a>'
        for ext, label in (("svg", "SVG"), ("png", "PNG"), ("csv", "CSV"), ("bib", "BibTeX"))
    )
    blocks = "".join(
        f"<p><strong>{html.escape(head)}.</strong> {'<br>'.join(html.escape(i) for i in items)}</p>"
        for head, items in sources
    )
    return (
        charts.chart_html(chart, f"chart-{fig_id}")
        + f'<div class="sasp-figure" id="{fig_id}"><p class="sasp-caption"><strong>Figure <code>{fig_id}</code>.</strong> '
        f'{html.escape(caption)}</p><p class="sasp-downloads">Download: {links}</p>'
        f'<details class="sasp-sources"><summary>Sources and citation</summary>{blocks}'
        f"<p><strong>Cite this figure.</strong> {html.escape(plain)}</p>"
        f"<pre>{html.escape(bibtex)}</pre></details></div>"
    )


def write_index(results: str | Path = "results") -> pd.DataFrame:
    """Collect every figure record into ``results/figures/index.csv``."""
    out = Path(results) / "figures"
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    df = pd.DataFrame(
        records,
        columns=[
            "id",
            "title",
            "caption",
            "provenance",
            "datasets",
            "signatures",
            "method",
            "version",
            "commit",
            "n_rows",
        ],
    )
    df.to_csv(out / "index.csv", index=False)
    return df
