"""The landing page: the SASP map (cancer type x cell type, a scale-free effect, a signature menu)
and the key findings, generated from the build's tables (no kernel: a MyST page with the chart's
HTML), with a References section."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..sources import get_dataset
from . import pages, policy, references
from .figures import render

__all__ = ["HOME_PAGE", "home_signatures", "home_markdown", "write_home_page"]

#: the landing page (the book's root in ``_toc.yml``), written by the build
HOME_PAGE = Path("book") / "generated" / "home.md"


def home_signatures(meta: pd.DataFrame, signatures: list[str]) -> list[str]:
    """The map's menu: the build's signatures that have pooled estimates, the headline first."""
    have = set(meta["signature"])
    ordered = [s for s in signatures if s in have]
    return sorted(ordered, key=lambda s: s != policy.headline_signature(ordered)) if ordered else []


def home_markdown(meta: pd.DataFrame, checks: pd.DataFrame | None, *, signatures: list[str], method: str,
                  results: str | Path) -> str:
    """The page text: motivation, the map (``fig-home-sasp-map``), the findings and the references."""
    sigs = home_signatures(meta, signatures)
    if not sigs:
        raise ValueError("no pooled estimate in meta_analysis.csv: build the atlas tables first")
    dataset_ids = sorted({d.strip() for ds in meta["datasets"] for d in str(ds).split(";") if d.strip()})
    datasets = [get_dataset(d) for d in dataset_ids]
    figure = render("fig-home-sasp-map", meta[meta["signature"].isin(sigs)], datasets=datasets, signatures=sigs,
                    method=method, page_depth=2, results=results, signature_list=sigs, default=sigs[0],
                    dataset_url="../datasets/{}.html")
    findings = pages.key_findings(meta, checks, signature=sigs[0])
    cited = references.cite(references.dataset_key(d) for d in datasets)
    n_tumours = int(meta.groupby("cancer_type")["k_samples"].max().sum())  # deduplicated within a cancer type
    return "\n".join([
        "# SASP atlas", "",
        "Senescent cells secrete cytokines, chemokines, proteases and growth factors (the SASP: IL6, CXCL8, CCL2, "
        "MMP2, SERPINE1, VEGFA, ...) that can restrain or promote tumours. **Which cell populations express which "
        "SASP programme, in which cancer?** The map below answers from public tumour single-cell data, and says "
        "how many tumours stand behind each square.", "",
        "## The SASP map", "",
        f"{len(datasets)} datasets, at least {n_tumours} tumours, {meta['cancer_type'].nunique()} cancer types "
        f"{cited}. Red: the cell type scores higher than the rest of its tumours; blue: lower; the number is the "
        "count of tumours behind the square.", "",
        "```{raw} html", figure, "```", "",
        "## Key findings", "",
        "Generated from this build's tables; each says how much evidence stands behind it.", "",
        pages.key_findings_markdown(findings), "",
        "Explore: [across cancers](../atlas.ipynb) (rankings, genes, heatmaps), [the review's Table 2 tested]"
        "(../table2.ipynb), [the signature catalogue](../catalogue.ipynb), one page per dataset (left menu), "
        "and [how every number is made](../methods.md).", "",
        references.references_section(),
    ])


def write_home_page(root: str | Path, *, results: str | Path, signatures: list[str], method: str) -> Path:
    """Write :data:`HOME_PAGE` under ``root`` from ``<results>/tables``."""
    tables = Path(results) / "tables"
    meta = pd.read_csv(tables / "meta_analysis.csv")
    checks_path = tables / "table2_checks.csv"
    checks = pd.read_csv(checks_path) if checks_path.exists() else None
    path = Path(root) / HOME_PAGE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(home_markdown(meta, checks, signatures=signatures, method=method, results=results), encoding="utf-8")
    return path
