"""Per-cell-type summaries with intervals and effect sizes, and the genes behind a score.

The unit of replication is the sample (patient), not the cell: cells of one tumour are not
independent observations. :func:`celltype_scores` therefore summarises per sample first and
bootstraps over samples; where a dataset has a single sample, its interval is over cells and is
labelled so (``ci_unit``), never presented as a between-tumour statement.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from scipy.stats import rankdata

from ..genes import LOW_COVERAGE_FLAG, is_low_coverage

__all__ = ["celltype_scores", "auroc", "sample_celltype_summary", "gene_decomposition", "CELLTYPE_COLUMNS",
           "NULL_JOIN_COLUMNS"]

CELLTYPE_COLUMNS = ["dataset", "cancer_type", "cancer_type_ontology_id", "cell_type", "cell_type_ontology_id", "lineage",
                    "cell_type_author", "signature", "method", "mean", "ci_low", "ci_high", "ci_unit", "effect_size",
                    "effect_ci_low", "effect_ci_high", "effect_measure", "median", "sd", "q25", "q75", "n_cells",
                    "n_samples", "n_genes", "n_genes_used", "coverage", "low_coverage", "flag", "n_boot", "random_state"]
#: added by :func:`sasp_atlas.atlas.run_dataset` from :func:`sasp_atlas.engines.celltype_null`
NULL_JOIN_COLUMNS = ["null_mean", "null_sd", "null_z", "empirical_p", "n_null"]


# --------------------------------------------------------------------------- across samples
def auroc(x: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve of ``x`` (cells of one type) against ``y`` (the other cells).

    AUROC = U / (n_x n_y), with U the Mann–Whitney statistic and ties counted 1/2 (Hanley &
    McNeil 1982, doi:10.1148/radiology.143.1.7063747). 0.5 = no difference; 1 = every cell of the
    type scores above every other cell. Returns NaN when either group is empty.
    """
    nx, ny = len(x), len(y)
    if nx == 0 or ny == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([x, y]))
    return float((ranks[:nx].sum() - nx * (nx + 1) / 2) / (nx * ny))


def _auroc_rows(values: np.ndarray, in_group: np.ndarray) -> np.ndarray:
    """AUROC for each row of ``values`` (bootstrap replicates x cells), group mask per row."""
    ranks = rankdata(values, axis=1)
    nx = in_group.sum(axis=1)
    ny = in_group.shape[1] - nx
    u = (ranks * in_group).sum(axis=1) - nx * (nx + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return u / (nx * ny)


def _percentile_ci(boot: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(boot, a)), float(np.quantile(boot, 1 - a))


def sample_celltype_summary(adata: AnnData, *, dataset_id: str, group_by: str = "cell_type") -> pd.DataFrame:
    """Per (sample, cell type, signature): ``n_cells``, ``mean``, ``median`` of per-cell scores and
    the within-sample AUROC of the cell type against all other cells of the same sample.

    Parameters
    ----------
    adata
        Scored (``obsm["sasp_scores"]``) with ``obs[group_by]`` and ``obs["sample"]``.
    dataset_id
        Written into the ``dataset`` column.
    group_by
        The obs column of cell types.
    """
    scores: pd.DataFrame = adata.obsm["sasp_scores"]
    obs = adata.obs
    rows = []
    for sample, s_idx in obs.groupby("sample", observed=True).indices.items():
        groups = obs[group_by].to_numpy()[s_idx]
        for ct in pd.unique(groups):
            mask = groups == ct
            for sig in scores.columns:
                v = scores[sig].to_numpy()[s_idx]
                rows.append({"dataset": dataset_id, "sample": str(sample), "cell_type": str(ct), "signature": sig,
                             "n_cells": int(mask.sum()), "mean": float(v[mask].mean()), "median": float(np.median(v[mask])),
                             "auroc_vs_rest": auroc(v[mask], v[~mask])})
    return pd.DataFrame(rows)


def celltype_scores(adata: AnnData, *, dataset_id: str, cancer_type: str, cancer_type_ontology_id: str = "",
                        group_by: str = "cell_type", n_boot: int = 1000, random_state: int = 0,
                        min_cells: int = 10) -> pd.DataFrame:
    """Per (cell type, signature): mean score with a 95 % bootstrap interval and an effect size.

    Method (no pseudoreplication): the sample (patient) is the unit. Per sample, the cell type's
    mean score and its AUROC against the other cells of the *same* sample are computed. With
    ``n_samples >= 2`` the reported ``mean`` is the mean of sample means and ``effect_size`` the
    mean of per-sample AUROCs, each with a percentile bootstrap interval over samples
    (``n_boot`` resamples of samples with replacement; Efron & Tibshirani 1993). With one sample
    (or none recorded) the interval is over cells and ``ci_unit`` says so: it describes that one
    tumour, not cancer type. ``flag`` marks fewer than ``min_cells`` cells, fewer than 3 samples
    (an interval over 2 samples is little more than their range), and low gene coverage.
    Randomness: bootstrap indices from ``numpy.random.default_rng(random_state)``; the seed is
    in the ``random_state`` column.

    Parameters
    ----------
    adata
        Scored (``obsm["sasp_scores"]``, ``uns["sasp_scores"]``) with ``obs[group_by]``, ``obs["sample"]``,
        ``obs["cell_type_author"]``.
    dataset_id, cancer_type, cancer_type_ontology_id
        Written into the table's columns of the same names.
    group_by
        The obs column of cell types.
    n_boot
        Bootstrap resamples.
    random_state
        Seed of the bootstrap.
    min_cells
        Cell types with fewer cells are flagged.
    """

    scores: pd.DataFrame = adata.obsm["sasp_scores"]
    meta = adata.uns["sasp_scores"]
    obs = adata.obs
    rng = np.random.default_rng(random_state)
    groups = obs[group_by].astype(str).to_numpy()
    samples = obs["sample"].astype(str).to_numpy()
    rows = []
    for ct in sorted(pd.unique(groups)):
        in_ct = groups == ct
        ct_samples = sorted(pd.unique(samples[in_ct]))
        authors = "; ".join(sorted(obs["cell_type_author"].astype(str)[in_ct].unique()))
        onto = str(obs["cell_type_ontology_id"].astype(str)[in_ct].iloc[0]) if "cell_type_ontology_id" in obs else ""
        lineage = str(obs["lineage"].astype(str)[in_ct].iloc[0]) if "lineage" in obs else ""
        for sig in scores.columns:
            v = scores[sig].to_numpy()
            info = meta["signatures"][sig]
            n_used = len(info["genes_used"])
            if len(ct_samples) >= 2:
                s_means = np.array([v[in_ct & (samples == s)].mean() for s in ct_samples])
                s_auc = np.array([auroc(v[in_ct & (samples == s)], v[~in_ct & (samples == s)]) for s in ct_samples])
                pick = rng.integers(0, len(ct_samples), size=(n_boot, len(ct_samples)))
                mean, effect = float(s_means.mean()), float(np.nanmean(s_auc))
                ci = _percentile_ci(s_means[pick].mean(axis=1))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    eci = _percentile_ci(np.nanmean(s_auc[pick], axis=1))
                unit = "samples"
            else:
                s = ct_samples[0]
                in_s = samples == s
                x, y = v[in_ct & in_s], v[~in_ct & in_s]
                mean, effect = float(x.mean()), auroc(x, y)
                ci = _percentile_ci(x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1))
                if len(y):
                    bx = x[rng.integers(0, len(x), size=(n_boot, len(x)))]
                    by = y[rng.integers(0, len(y), size=(n_boot, len(y)))]
                    mask = np.concatenate([np.ones_like(bx, bool), np.zeros_like(by, bool)], axis=1)
                    eci = _percentile_ci(_auroc_rows(np.concatenate([bx, by], axis=1), mask))
                else:
                    eci = (float("nan"), float("nan"))
                unit = "cells (single sample)"
            n_cells = int(in_ct.sum())
            coverage = n_used / info["n_genes"]
            flags = []
            if n_cells < min_cells:
                flags.append(f"fewer than {min_cells} cells")
            if len(ct_samples) < 3:
                flags.append("fewer than 3 samples: interval describes these tumours only")
            if is_low_coverage(n_used, info["n_genes"]):
                flags.append(LOW_COVERAGE_FLAG)
            rows.append({
                "dataset": dataset_id, "cancer_type": cancer_type, "cancer_type_ontology_id": cancer_type_ontology_id,
                "cell_type": ct, "cell_type_ontology_id": onto, "lineage": lineage, "cell_type_author": authors,
                "signature": sig, "method": meta["method"], "mean": mean, "ci_low": ci[0], "ci_high": ci[1],
                "ci_unit": unit, "effect_size": effect, "effect_ci_low": eci[0], "effect_ci_high": eci[1],
                "effect_measure": "AUROC vs other cells of the same tumour",
                "median": float(np.median(v[in_ct])), "sd": float(v[in_ct].std(ddof=1)) if n_cells > 1 else float("nan"),
                "q25": float(np.quantile(v[in_ct], 0.25)),
                "q75": float(np.quantile(v[in_ct], 0.75)), "n_cells": n_cells, "n_samples": len(ct_samples),
                "n_genes": info["n_genes"], "n_genes_used": n_used, "coverage": coverage,
                "low_coverage": is_low_coverage(n_used, info["n_genes"]),
                "flag": "; ".join(flags), "n_boot": n_boot, "random_state": random_state,
            })
    return pd.DataFrame(rows, columns=CELLTYPE_COLUMNS)


# --------------------------------------------------------------------------- genes behind a score
def gene_decomposition(adata: AnnData, genes: list[str], *, dataset_id: str, signature: str,
                       group_by: str = "cell_type") -> pd.DataFrame:
    """Which genes drive a signature in each cell type: mean expression and fraction expressing.

    Per (cell type, gene present in the data): ``mean_expression`` (mean of ``X``, log-normalised),
    ``frac_expressing`` (fraction of cells with a non-zero value) and ``delta`` (mean in the cell
    type minus mean in all other cells of the dataset) — the gene's share in a control-gene score's
    difference. Reads only the signature's columns of ``X``.
    """
    present = [g for g in dict.fromkeys(genes) if g in adata.var_names]
    if not present:
        return pd.DataFrame(columns=["dataset", "signature", "cell_type", "gene", "mean_expression",
                                     "frac_expressing", "delta", "n_cells"])
    sub = adata[:, present].X
    sub = sub.tocsc() if sp.issparse(sub) else np.asarray(sub)
    groups = adata.obs[group_by].astype(str).to_numpy()
    total_sum = np.asarray(sub.sum(axis=0)).ravel()
    n = adata.n_obs
    rows = []
    for ct in sorted(pd.unique(groups)):
        mask = groups == ct
        block = sub[mask]
        s = np.asarray(block.sum(axis=0)).ravel()
        nz = np.asarray((block != 0).sum(axis=0)).ravel()
        k = int(mask.sum())
        rest = (total_sum - s) / (n - k) if n > k else np.full(len(present), np.nan)
        for j, g in enumerate(present):
            rows.append({"dataset": dataset_id, "signature": signature, "cell_type": ct, "gene": g,
                         "mean_expression": float(s[j] / k), "frac_expressing": float(nz[j] / k),
                         "delta": float(s[j] / k - rest[j]), "n_cells": k})
    return pd.DataFrame(rows)
