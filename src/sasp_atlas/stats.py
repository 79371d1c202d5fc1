"""Per-cell-type summaries of per-cell scores.

The unit of replication is the sample (patient), not the cell: cells of one tumour are not
independent observations. :func:`celltype_scores` therefore reports, per (dataset, cell type,
signature), the mean over cells *and* the number of samples the cells come from, so no figure
can present cells as if they were replicates.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd
import yaml
from anndata import AnnData

__all__ = ["harmonise_cell_types", "crosswalk_table", "celltype_scores", "coverage_table", "CELLTYPE_COLUMNS"]

CELLTYPE_COLUMNS = ["dataset", "cancer_type", "cell_type", "lineage", "cell_type_author", "signature", "method",
                    "mean", "median", "sd", "q25", "q75", "n_cells", "n_samples", "n_genes", "n_genes_used", "coverage"]


@lru_cache(maxsize=1)
def _crosswalk() -> dict:
    return yaml.safe_load(resources.files("sasp_atlas").joinpath("crosswalk.yaml").read_text())


def crosswalk_table() -> pd.DataFrame:
    """The published crosswalk: ``dataset, cell_type_author, cell_type, cell_type_ontology_id,
    cell_type_ontology_label, lineage`` (malignant cells: "Malignant cell", CL:0001064)."""
    cw = _crosswalk()
    rows = []
    for dataset_id, labels in cw["datasets"].items():
        for author, harmonised in labels.items():
            ct = cw["cell_types"][harmonised]
            rows.append({"dataset": dataset_id, "cell_type_author": author, "cell_type": harmonised,
                         "cell_type_ontology_id": ct["ontology_id"], "cell_type_ontology_label": ct["ontology_label"],
                         "lineage": ct["lineage"]})
    return pd.DataFrame(rows)


def harmonise_cell_types(adata: AnnData, dataset_id: str) -> None:
    """Add ``obs["cell_type"]``, ``obs["cell_type_ontology_id"]`` and ``obs["lineage"]`` from the crosswalk.

    Malignant cells (``obs["malignant"]``) become "Malignant cell" (CL:0001064). An author label
    missing from the crosswalk is an error naming the label and the dataset (never a silent "Unknown").
    """
    cw = _crosswalk()
    table = cw["datasets"].get(dataset_id, {})
    authors = adata.obs["cell_type_author"].astype(str)
    malignant = adata.obs["malignant"].to_numpy(bool)
    unknown = sorted(set(authors[~malignant]) - set(table))
    if unknown:
        raise KeyError(f"dataset {dataset_id!r}: author cell types {unknown} are not in crosswalk.yaml; add them")
    ct = np.where(malignant, "Malignant cell", [table.get(a, "Malignant cell") for a in authors])
    vocab = cw["cell_types"]
    adata.obs["cell_type"] = pd.Categorical(ct)
    adata.obs["cell_type_ontology_id"] = pd.Categorical([vocab[c]["ontology_id"] for c in ct])
    adata.obs["lineage"] = pd.Categorical([vocab[c]["lineage"] for c in ct])


def celltype_scores(adata: AnnData, *, dataset_id: str, cancer_type: str, group_by: str = "cell_type") -> pd.DataFrame:
    """Long table of score summaries per (cell type, signature): columns :data:`CELLTYPE_COLUMNS`.

    ``cell_type_author`` lists the author labels pooled into the harmonised type ("; "-joined).
    ``coverage`` is genes used / signature genes (see ``adata.uns["sasp_scores"]``).
    """
    scores: pd.DataFrame = adata.obsm["sasp_scores"]
    meta = adata.uns["sasp_scores"]
    obs = adata.obs
    rows = []
    for ct, idx in obs.groupby(group_by, observed=True).indices.items():
        authors = "; ".join(sorted(obs["cell_type_author"].iloc[idx].astype(str).unique()))
        n_samples = int(obs["sample"].iloc[idx].nunique())
        for sig in scores.columns:
            v = scores[sig].to_numpy()[idx]
            info = meta["signatures"][sig]
            rows.append({
                "dataset": dataset_id, "cancer_type": cancer_type, "cell_type": str(ct),
                "lineage": str(obs["lineage"].iloc[idx[0]]) if "lineage" in obs else "",
                "cell_type_author": authors, "signature": sig, "method": meta["method"],
                "mean": float(v.mean()), "median": float(np.median(v)), "sd": float(v.std(ddof=1)) if len(v) > 1 else np.nan,
                "q25": float(np.quantile(v, 0.25)), "q75": float(np.quantile(v, 0.75)),
                "n_cells": int(len(v)), "n_samples": n_samples,
                "n_genes": info["n_genes"], "n_genes_used": len(info["genes_used"]),
                "coverage": len(info["genes_used"]) / info["n_genes"],
            })
    return pd.DataFrame(rows, columns=CELLTYPE_COLUMNS)


def coverage_table(adata: AnnData, *, dataset_id: str) -> pd.DataFrame:
    """Signature gene coverage: ``dataset, signature, n_genes, n_present, missing``."""
    rows = []
    for sig, info in adata.uns["sasp_scores"]["signatures"].items():
        rows.append({"dataset": dataset_id, "signature": sig, "n_genes": info["n_genes"],
                     "n_present": len(info["genes_used"]), "missing": " ".join(sorted(info["genes_missing"]))})
    return pd.DataFrame(rows)
