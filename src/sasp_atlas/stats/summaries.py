"""Per-cell-type summaries with intervals and effect sizes, and the genes behind a score.

The unit of replication is the sample (patient), not the cell: cells of one tumour are not
independent observations. :func:`celltype_scores` therefore summarises per sample first and pools
the samples by a random-effects meta-analysis (:mod:`sasp_atlas.stats.effects`); where a dataset has
a single sample, its interval is over cells and is labelled so (``ci_unit``, ``evidence``), never
presented as a between-tumour statement. Nothing here is random: the tables are the same for every seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from scipy.stats import rankdata

from .._constants import CELL_TYPE_KEY, PROVENANCE_KEY, SAMPLE_KEY, SCORES_KEY
from ..genes import LOW_COVERAGE_FLAG, catalogue, is_low_coverage
from .effects import (
    MIN_BALANCE_CELLS,
    UNRECORDED_SUFFIX,
    bh_q,
    evidence_label,
    pool,
    sample_effects,
    stratified_permutation_p,
)

__all__ = [
    "celltype_scores",
    "add_q_values",
    "auroc",
    "sample_celltype_summary",
    "gene_decomposition",
    "CELLTYPE_COLUMNS",
    "NULL_JOIN_COLUMNS",
    "EFFECT_MEASURE",
]

CELLTYPE_COLUMNS = [
    "dataset",
    "cancer_type",
    "cancer_type_ontology_id",
    "cell_type",
    "cell_type_ontology_id",
    "lineage",
    "cell_type_author",
    "signature",
    "method",
    "mean",
    "ci_low",
    "ci_high",
    "ci_unit",
    "effect_size",
    "effect_ci_low",
    "effect_ci_high",
    "effect_measure",
    "balanced_effect",
    "balanced_ci_low",
    "balanced_ci_high",
    "tau2",
    "i2",
    "median",
    "sd",
    "q25",
    "q75",
    "n_cells",
    "n_samples",
    "evidence",
    "p_perm",
    "n_genes",
    "n_genes_used",
    "coverage",
    "low_coverage",
    "caveat",
    "flag",
    "random_state",
]
#: added by :func:`sasp_atlas.atlas.run_dataset` from :func:`sasp_atlas.engines.celltype_null` and
#: :func:`add_q_values`
NULL_JOIN_COLUMNS = ["null_mean", "null_sd", "null_z", "p_null", "n_null", "q_null", "q_perm"]
EFFECT_MEASURE = "AUROC vs the other cells of the same tumour (per sample, pooled across samples)"


# --------------------------------------------------------------------------- across samples
def auroc(x: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve of ``x`` (cells of one type) against ``y`` (the other cells).

    AUROC = U / (n_x n_y), with U the Mann–Whitney statistic and ties counted 1/2 (Hanley &
    McNeil 1982, doi:10.1148/radiology.143.1.7063747). 0.5 = no difference; 1 = every cell of the
    type scores above every other cell. Returns NaN when either group is empty.

    Parameters
    ----------
    x
        Scores of the cells of one type (1-D).
    y
        Scores of the other cells (1-D).
    """
    nx, ny = len(x), len(y)
    if nx == 0 or ny == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([x, y]))
    return float((ranks[:nx].sum() - nx * (nx + 1) / 2) / (nx * ny))


def _unrecorded(samples: list[str]) -> bool:
    return len(samples) == 1 and str(samples[0]).endswith(UNRECORDED_SUFFIX)


def sample_celltype_summary(
    adata: AnnData,
    *,
    key: str = SCORES_KEY,
    groupby: str = CELL_TYPE_KEY,
    sample_key: str = SAMPLE_KEY,
    dataset_id: str | None = None,
    effects: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per (sample, cell type, signature): ``n_cells``, ``mean``, ``median`` of per-cell scores, the
    within-sample AUROC against all other cells of the same sample (``auroc_vs_rest``, with its
    score interval ``auroc_ci_low``/``auroc_ci_high`` and the variance it implies, ``auroc_var``) and the
    composition-balanced AUROC (``balanced_auroc``, ``balanced_var``, ``balanced_ci_low``/``high``; see
    :mod:`sasp_atlas.stats.effects`).

    Parameters
    ----------
    adata
        Scored (``obsm[key]``) with ``obs[groupby]`` and ``obs[sample_key]``.
    key
        The ``obsm`` slot of the scores (``key_added`` of :func:`sasp_atlas.score`).
    groupby
        The obs column of cell types (the table's ``cell_type`` column).
    sample_key
        The obs column of samples (tumours; the table's ``sample`` column).
    dataset_id
        If given, written into a first column ``dataset`` (the atlas's bookkeeping); else no such column.
    effects
        :func:`sasp_atlas.stats.effects.sample_effects` of ``adata`` if already computed.
    """
    scores: pd.DataFrame = adata.obsm[key]
    groups = adata.obs[groupby].astype(str).to_numpy()
    samples = adata.obs[sample_key].astype(str).to_numpy()
    eff = effects if effects is not None else sample_effects(scores, groups, samples)
    long = scores.assign(_g=groups, _s=samples).melt(id_vars=["_g", "_s"], var_name="signature")
    medians = long.groupby(["_s", "_g", "signature"], observed=True)["value"].median()
    out = eff.rename(columns={"auroc": "auroc_vs_rest"})
    out["median"] = [medians[(s, g, sig)] for s, g, sig in zip(out["sample"], out["cell_type"], out["signature"])]
    out = out[
        [
            "sample",
            "cell_type",
            "signature",
            "n_cells",
            "mean",
            "median",
            "auroc_vs_rest",
            "auroc_var",
            "auroc_ci_low",
            "auroc_ci_high",
            "balanced_auroc",
            "balanced_var",
            "balanced_ci_low",
            "balanced_ci_high",
        ]
    ]
    return _with_dataset(out, dataset_id)


def _with_dataset(table: pd.DataFrame, dataset_id: str | None) -> pd.DataFrame:
    """``table`` with a first column ``dataset`` when the atlas names one (generic statistics need none)."""
    if dataset_id is not None:
        table.insert(0, "dataset", dataset_id)
    return table


def celltype_scores(
    adata: AnnData,
    *,
    key: str = SCORES_KEY,
    groupby: str = CELL_TYPE_KEY,
    sample_key: str = SAMPLE_KEY,
    dataset_id: str | None = None,
    cancer_type: str | None = None,
    cancer_type_ontology_id: str | None = None,
    random_state: int = 0,
    min_cells: int = 10,
    effects: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per (cell type, signature): the cell type's mean score and effect sizes, the patient as the unit.

    Method (seed-free; :mod:`sasp_atlas.stats.effects`): per sample, the cell type's mean score,
    its AUROC against the other cells of the same sample (``effect_size``) and its
    composition-balanced AUROC against each other cell type weighted equally (``balanced_effect``).
    Across samples each is pooled by a Paule-Mandel random-effects meta-analysis (``tau2``, ``i2``
    of the AUROC; Knapp-Hartung t intervals below :data:`~sasp_atlas.stats.effects.SMALL_K` samples);
    with one sample the interval is over that tumour's cells (``ci_unit`` says which): Newcombe's
    score interval for the AUROC and the mean of the pairwise ones for the balanced AUROC, a Wald
    interval for the mean. ``n_samples`` counts the samples with a defined AUROC (the type and
    other cells present); ``evidence`` says how much stands behind the row (``single tumour``,
    ``2 tumours``, ``replicated (n tumours)``, ``samples not recorded``). ``p_perm`` is the
    within-sample label-permutation p of specificity. ``caveat`` repeats a signature's known
    confounder from the catalogue. ``flag`` marks fewer than ``min_cells`` cells, low gene coverage,
    perfect separation (with the lowest per-tumour bound) and says why an interval is missing.

    Parameters
    ----------
    adata
        Scored (``obsm[key]``, ``uns[key]``) with ``obs[groupby]`` and ``obs[sample_key]``;
        ``obs["cell_type_author"]``, ``obs["cell_type_ontology_id"]`` and ``obs["lineage"]`` are copied
        when present.
    key
        The ``obsm``/``uns`` slot of the scores (``key_added`` of :func:`sasp_atlas.score`).
    groupby
        The obs column of cell types (the table's ``cell_type`` column).
    sample_key
        The obs column of samples (tumours), the unit of replication.
    dataset_id
        If given, written into a first column ``dataset`` (the atlas's bookkeeping); else no such column.
    cancer_type, cancer_type_ontology_id
        Written into the table's columns of the same names (default: ``uns["provenance"]``'s, else empty).
    random_state
        Recorded in the ``random_state`` column (the score's seed; nothing here is random).
    min_cells
        Cell types with fewer cells are flagged.
    effects
        :func:`sasp_atlas.stats.effects.sample_effects` of ``adata`` if already computed.
    """
    scores: pd.DataFrame = adata.obsm[key]
    meta = adata.uns[key]
    prov = adata.uns.get(PROVENANCE_KEY) or {}
    cancer_type = str(prov.get("cancer_type", "")) if cancer_type is None else cancer_type
    cancer_type_ontology_id = (
        str(prov.get("cancer_type_ontology_id", "")) if cancer_type_ontology_id is None else cancer_type_ontology_id
    )
    obs = adata.obs
    groups = obs[groupby].astype(str).to_numpy()
    samples = obs[sample_key].astype(str).to_numpy()
    eff = effects if effects is not None else sample_effects(scores, groups, samples)
    cat = catalogue()
    rows = []
    for (ct, sig), e in eff.groupby(["cell_type", "signature"], sort=True):
        in_ct = groups == ct
        v = scores[sig].to_numpy()[in_ct]
        info = meta["signatures"][sig]
        n_used = len(info["genes_used"])
        defined = e[np.isfinite(e["auroc"])]
        unrecorded = _unrecorded(list(e["sample"]))
        means = pool(e["mean"], e["sd"] ** 2 / e["n_cells"])
        effect = pool(
            defined["auroc"],
            defined["auroc_var"],
            bounds=(0, 1),
            intervals=(defined["auroc_ci_low"], defined["auroc_ci_high"]),
        )
        balanced = pool(
            e["balanced_auroc"],
            e["balanced_var"],
            bounds=(0, 1),
            intervals=(e["balanced_ci_low"], e["balanced_ci_high"]),
        )
        k = int(effect["k"])
        n_cells = int(in_ct.sum())
        flags = []
        if n_cells < min_cells:
            flags.append(f"fewer than {min_cells} cells")
        low = is_low_coverage(n_used, info["n_genes"])
        if low:
            flags.append(LOW_COVERAGE_FLAG)
        if n_cells < 2:
            flags.append("no interval of the mean: one cell")
        if not np.isfinite(effect["ci_low"]):
            flags.append("no AUROC vs rest: no other cells in its tumours")
        if not np.isfinite(balanced["ci_low"]):
            flags.append(f"no balanced AUROC: no other cell type with >= {MIN_BALANCE_CELLS} cells in its tumours")
        perfect = int(np.isin(defined["auroc"].to_numpy(), (0.0, 1.0)).sum())
        if perfect:
            flags.append(
                f"perfect separation in {perfect} of {k} tumour{'s' * (k != 1)} (lowest per-tumour bound "
                f"{defined['auroc_ci_low'].min():.2f})"
            )
        rows.append(
            {
                "dataset": dataset_id,
                "cancer_type": cancer_type,
                "cancer_type_ontology_id": cancer_type_ontology_id,
                "cell_type": ct,
                "cell_type_ontology_id": str(obs.loc[in_ct, "cell_type_ontology_id"].astype(str).iloc[0])
                if "cell_type_ontology_id" in obs
                else "",
                "lineage": str(obs.loc[in_ct, "lineage"].astype(str).iloc[0]) if "lineage" in obs else "",
                "cell_type_author": "; ".join(sorted(obs.loc[in_ct, "cell_type_author"].astype(str).unique()))
                if "cell_type_author" in obs
                else "",
                "signature": sig,
                "method": info.get("method", meta["method"]),
                "mean": means["estimate"] if len(e) > 1 else float(v.mean()),
                "ci_low": means["ci_low"],
                "ci_high": means["ci_high"],
                "ci_unit": "samples (random effects)" if len(e) > 1 else "cells (single sample)",
                "effect_size": effect["estimate"],
                "effect_ci_low": effect["ci_low"],
                "effect_ci_high": effect["ci_high"],
                "effect_measure": EFFECT_MEASURE,
                "balanced_effect": balanced["estimate"],
                "balanced_ci_low": balanced["ci_low"],
                "balanced_ci_high": balanced["ci_high"],
                "tau2": effect["tau2"],
                "i2": effect["i2"],
                "median": float(np.median(v)),
                "sd": float(v.std(ddof=1)) if n_cells > 1 else float("nan"),
                "q25": float(np.quantile(v, 0.25)),
                "q75": float(np.quantile(v, 0.75)),
                "n_cells": n_cells,
                "n_samples": k,
                "evidence": evidence_label(k, unrecorded=unrecorded),
                "p_perm": stratified_permutation_p(e["dev_sum"].to_numpy(), e["perm_var"].to_numpy()),
                "n_genes": info["n_genes"],
                "n_genes_used": n_used,
                "coverage": n_used / info["n_genes"],
                "low_coverage": low,
                "caveat": " ".join(str(cat.get(sig, {}).get("scoring_note", "") or "").split()),
                "flag": "; ".join(flags),
                "random_state": random_state,
            }
        )
    return _with_dataset(pd.DataFrame(rows, columns=CELLTYPE_COLUMNS[1:]), dataset_id)


def add_q_values(table: pd.DataFrame) -> pd.DataFrame:
    """Benjamini-Hochberg q-values over every row of one dataset's table: ``q_null`` from ``p_null``
    and ``q_perm`` from ``p_perm`` (the family: all cell types x signatures of the dataset)."""
    out = table.copy()
    out["q_null"] = bh_q(out["p_null"].to_numpy()) if "p_null" in out else np.nan
    out["q_perm"] = bh_q(out["p_perm"].to_numpy())
    return out


# --------------------------------------------------------------------------- genes behind a score
def gene_decomposition(
    adata: AnnData, genes: list[str], *, signature: str, groupby: str = CELL_TYPE_KEY, dataset_id: str | None = None
) -> pd.DataFrame:
    """Which genes drive a signature in each cell type: mean expression and fraction expressing.

    Per (cell type, gene present in the data): ``mean_expression`` (mean of ``X``, log-normalised),
    ``frac_expressing`` (fraction of cells with a non-zero value) and ``delta`` (mean in the cell
    type minus mean in all other cells of the dataset) — the gene's share in a control-gene score's
    difference. Reads only the signature's columns of ``X``.

    Parameters
    ----------
    adata
        Log-normalised cells x genes with ``obs[groupby]``.
    genes
        The signature's genes (e.g. ``adata.uns[key]["signatures"][signature]["genes_used"]``); those
        not in ``var_names`` are left out.
    signature
        Written into the ``signature`` column.
    groupby
        The obs column of cell types (the table's ``cell_type`` column).
    dataset_id
        If given, written into a first column ``dataset`` (the atlas's bookkeeping); else no such column.

    Returns
    -------
    DataFrame with ``signature, cell_type, gene, mean_expression, frac_expressing, delta, n_cells``.
    """
    columns = ["signature", "cell_type", "gene", "mean_expression", "frac_expressing", "delta", "n_cells"]
    present = [g for g in dict.fromkeys(genes) if g in adata.var_names]
    if not present:
        return _with_dataset(pd.DataFrame(columns=columns), dataset_id)
    sub = adata[:, present].X
    sub = sub.tocsc() if sp.issparse(sub) else np.asarray(sub)
    groups = adata.obs[groupby].astype(str).to_numpy()
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
            rows.append(
                {
                    "signature": signature,
                    "cell_type": ct,
                    "gene": g,
                    "mean_expression": float(s[j] / k),
                    "frac_expressing": float(nz[j] / k),
                    "delta": float(s[j] / k - rest[j]),
                    "n_cells": k,
                }
            )
    return _with_dataset(pd.DataFrame(rows, columns=columns), dataset_id)
