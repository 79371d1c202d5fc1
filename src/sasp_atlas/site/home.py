"""The landing page: the SASP map (cancer type x cell type, a scale-free effect, a signature menu)
and the key findings, generated from the build's tables (no kernel: a MyST page with the chart's
HTML), with a References section."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..engines import DEFAULT_METHOD
from ..genes import LOW_COVERAGE_FLAG
from ..sources import get_dataset
from ..stats.effects import UNRECORDED_SUFFIX
from . import charts, pages, policy, references
from .figures import render

__all__ = [
    "HOME_PAGE",
    "home_signatures",
    "validity_order",
    "home_markdown",
    "write_home_page",
    "tumour_counts",
    "count_line",
]

#: the landing page (the book's root in ``_toc.yml``), written by the build
HOME_PAGE = Path("book") / "generated" / "home.md"


def validity_order(validity: pd.DataFrame | None, method: str) -> dict[str, tuple[int, float]]:
    """``{signature: (label rank, pooled AUROC)}`` from ``signature_validity_pooled.csv`` for ``method``
    (non-senescent controls): how well each signature detects senescence, best first."""
    if validity is None or validity.empty:
        return {}
    own = (validity["method"] == method) | (validity["signature"] == "husi")  # hUSI is scored by its own method
    rows = validity[own & (validity["control"].fillna("non-senescent") == "non-senescent")]
    return {
        r.signature: (pages.validity_rank(r.label), float(r.auroc) if pd.notna(r.auroc) else 0.0)
        for r in rows.itertuples()
    }


def home_signatures(
    meta: pd.DataFrame, signatures: list[str], validity: pd.DataFrame | None = None, *, method: str = DEFAULT_METHOD
) -> list[str]:
    """The map's menu: the build's signatures that have pooled estimates, ordered by how well they detect
    senescence (:data:`sasp_atlas.site.pages.VALIDITY_ORDER`, then the pooled AUROC; without a validity
    table, the build's order), the map's first choice first: the best-validated SASP set
    (:func:`sasp_atlas.site.policy.headline_signature`)."""
    have = set(meta["signature"])
    ordered = [s for s in signatures if s in have]
    if not ordered:
        return []
    order = validity_order(validity, method)
    if order:
        ordered = sorted(ordered, key=lambda s: (order.get(s, (99, 0.0))[0], -order.get(s, (99, 0.0))[1]))
    head = policy.headline_signature(ordered, order or None)
    return [head] + [s for s in ordered if s != head]


def tumour_counts(samples: pd.DataFrame, cohorts: dict[str, str]) -> dict:
    """Named tumours, cohorts and files whose patients are not recorded, from the atlas's
    ``sample_celltype_scores`` (``dataset, sample``) and ``cohorts`` (dataset -> study,
    :func:`sasp_atlas.site.pages.dataset_cohort`). A tumour is a sample name within its cohort, so a tumour
    held by two registry subsets of one study counts once; a file's pseudo-sample (patients not recorded)
    is never a tumour. Returns ``n_tumours``, ``n_cohorts`` and ``unrecorded`` (the files' ids, sorted)."""
    pairs = samples[["dataset", "sample"]].drop_duplicates()
    unrecorded_sample = pairs["sample"].astype(str).str.endswith(UNRECORDED_SUFFIX)
    named = pairs[~unrecorded_sample]
    tumours = {(cohorts[d], str(s)) for d, s in zip(named["dataset"], named["sample"])}
    return {
        "n_tumours": len(tumours),
        "n_cohorts": len({cohorts[d] for d in pairs["dataset"]}),
        "unrecorded": sorted(set(pairs.loc[unrecorded_sample, "dataset"])),
    }


def count_line(n_datasets: int, counts: dict, n_cancer_types: int) -> str:
    """The map's count line from :func:`tumour_counts`: ``"4 datasets from 3 cohorts: 6 named tumours (...)
    and 1 file whose patients are not recorded (puram2017_hnscc_chetah_ref; not counted as tumours), 3
    cancer types"``."""
    unrecorded = counts["unrecorded"]
    files = (
        (
            f" and {len(unrecorded)} file{'s' * (len(unrecorded) != 1)} whose patients are not recorded "
            f"({', '.join(unrecorded)}; not counted as tumours)"
        )
        if unrecorded
        else ""
    )
    return (
        f"{n_datasets} dataset{'s' * (n_datasets != 1)} from {counts['n_cohorts']} "
        f"cohort{'s' * (counts['n_cohorts'] != 1)}: {counts['n_tumours']} named "
        f"tumour{'s' * (counts['n_tumours'] != 1)} (a tumour held by two files of one study counted once){files}, "
        f"{n_cancer_types} cancer type{'s' * (n_cancer_types != 1)}"
    )


def home_markdown(
    meta: pd.DataFrame,
    checks: pd.DataFrame | None,
    *,
    signatures: list[str],
    method: str,
    results: str | Path,
    samples: pd.DataFrame,
    validity: pd.DataFrame | None = None,
) -> str:
    """The page text: motivation, the map (``fig-home-sasp-map``), the findings and the references.
    ``samples`` (``sample_celltype_scores.csv``) gives the count of named tumours (:func:`tumour_counts`)."""
    # the hUSI senescence index is a column of the map like the signatures (its own method, last in the menu)
    sigs = home_signatures(meta, [*signatures, "husi"], validity, method=method)
    if not sigs:
        raise ValueError("no pooled estimate in meta_analysis.csv: build the atlas tables first")
    dataset_ids = sorted({d.strip() for ds in meta["datasets"] for d in str(ds).split(";") if d.strip()})
    datasets = [get_dataset(d) for d in dataset_ids]
    figure = render(
        "fig-home-sasp-map",
        meta[meta["signature"].isin(sigs)],
        datasets=datasets,
        signatures=sigs,
        method=method,
        page_depth=2,
        results=results,
        signature_list=sigs,
        default=sigs[0],
        dataset_url="../datasets/{}.html",
    )
    findings = pages.key_findings(meta, checks, signature=sigs[0], validity=validity, method=method)
    cited = references.cite(references.dataset_key(d) for d in datasets)
    counts = tumour_counts(
        samples[samples["dataset"].isin(dataset_ids)], {d.id: pages.dataset_cohort(d) for d in datasets}
    )
    return "\n".join(
        [
            "# SASP atlas",
            "",
            "Senescent cells secrete cytokines, chemokines, proteases and growth factors (the SASP: IL6, CXCL8, CCL2, "
            "MMP2, SERPINE1, VEGFA, ...) that can restrain or promote tumours. **Which cell populations express which "
            "SASP programme, in which cancer?** The map below answers from public tumour single-cell data, and says "
            "how many tumours stand behind each square.",
            "",
            "## The SASP map",
            "",
            f"{count_line(len(datasets), counts, meta['cancer_type'].nunique())} {cited}. Red: the cell type scores "
            "higher than the other cells of its tumours (balanced AUROC); blue: lower; the number is the count of named "
            f"tumours behind the square ({charts.NOT_RECORDED_MARK}: only files whose patients are not recorded); faded: "
            f"fewer than 3 tumours; grey: low gene coverage ({LOW_COVERAGE_FLAG}). The signature menu lists the sets by "
            "how well they detect senescence on labelled ground truth (the validity label is in each square's tooltip; "
            "see [Which signatures detect senescence?](../validity.ipynb)) and opens on the best-validated SASP set.",
            "",
            "```{raw} html",
            figure,
            "```",
            "",
            "## Key findings",
            "",
            "Generated from this build's tables; each says how much evidence stands behind it.",
            "",
            pages.key_findings_markdown(findings),
            "",
            "Explore: [across cancers](../atlas.ipynb) (rankings, genes, heatmaps), [the review's Table 2 tested]"
            "(../table2.ipynb), [which signatures detect senescence](../validity.ipynb), [the signature catalogue]"
            "(../catalogue.ipynb), one page per dataset (left menu), "
            "and [how every number is made](../methods.md).",
            "",
            references.references_section(),
        ]
    )


def write_home_page(root: str | Path, *, results: str | Path, signatures: list[str], method: str) -> Path:
    """Write :data:`HOME_PAGE` under ``root`` from ``<results>/tables``."""
    tables = Path(results) / "tables"
    meta = pd.read_csv(tables / "meta_analysis.csv")
    checks_path = tables / "table2_checks.csv"
    checks = pd.read_csv(checks_path) if checks_path.exists() else None
    samples = pd.read_csv(tables / "sample_celltype_scores.csv", usecols=["dataset", "sample"])
    validity_path = tables / "signature_validity_pooled.csv"
    validity = pd.read_csv(validity_path) if validity_path.exists() else None
    path = Path(root) / HOME_PAGE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        home_markdown(
            meta, checks, signatures=signatures, method=method, results=results, samples=samples, validity=validity
        ),
        encoding="utf-8",
    )
    return path
