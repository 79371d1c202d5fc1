"""SASP composition: which classes of SASP factors (interleukins, chemokines, MMPs, growth factors ...)
a cell type expresses, per dataset x cell type x class, the patient as the unit.

Classes: :func:`sasp_atlas.genes.sasp_classes` (one class per SASP gene of SenMayo, the Basisty 2020
core SASP and Reactome "SASP", with its source). Per cell, from the class genes present in the data:

* **class score** = mean over the class's genes of the log-normalised expression in ``.X``
  (natural ``log1p`` of counts per 10,000 for UMI data, ``log2(TPM/10 + 1)`` for the Smart-seq2
  releases; the unit is written in ``score_unit``). Not comparable across value types;
* **class expression** = sum over the class's genes of the expression on the linear scale
  (``base**x - 1``: counts per 10,000, or TPM/10), the quantity the shares are made of.

Per sample x cell type (the cells of one tumour):

* ``class_score``: mean over the cells of the per-cell class score;
* ``share``: the class's share of the cell type's SASP expression = (sum over the class's genes of
  the genes' mean linear expression in the cell type) / (the same sum over every classified SASP
  gene present). A ratio of linear expression, so scale factors (CP10k vs TPM/10) cancel. The
  ``unclassified`` genes (Reactome's histones / APC/C / CDK genes, Basisty's glycolytic and
  cytoskeletal proteins) are left out of the denominator by default — they would dominate it —
  or form a class of their own (``include_unclassified=True``). Shares of a cell type sum to 1
  (classes with no gene in the data have no share, NaN, and are flagged). Within-sample variance
  of the ratio of means by the delta method (Cochran 1977, Sampling Techniques, ch. 6);
* the per-cell class score's AUROC against the other cells of the same tumour and its
  **composition-balanced AUROC** (:func:`sasp_atlas.stats.sample_effects`, Hanley & McNeil 1982,
  doi:10.1148/radiology.143.1.7063747): scale-free and within-tumour, the same effect measure the
  atlas uses for signatures, so it is the number to compare across datasets and value types.

Across samples (:func:`sasp_class_scores`): the class score and the AUROCs are pooled by the
atlas's Paule-Mandel random-effects meta-analysis (:func:`sasp_atlas.stats.pool`); the share is the
**equal-weight mean of the per-sample shares** (every tumour weighs the same, and the pooled shares
of a cell type still sum to 1, which per-class inverse-variance weights would break), with a
t-interval over the samples (k - 1 degrees of freedom) when >= 2 samples hold the cell type and a
delta-method Wald interval over the cells of the single tumour otherwise (``ci_unit`` says which).
``evidence`` is :func:`sasp_atlas.stats.evidence_label` of the number of samples the balanced effect
rests on (``effect_n_samples``), not of the samples holding the cell type (``n_samples``). A row
with a missing interval says why in ``flag``. Seed-free: nothing here draws random numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from scipy.stats import t as student_t

from .._constants import CELL_TYPE_KEY, PROVENANCE_KEY, SAMPLE_KEY
from ..genes import LOW_COVERAGE_FLAG, SASP_SET_COLUMNS, UNCLASSIFIED, is_low_coverage, sasp_classes
from .effects import MIN_BALANCE_CELLS, UNRECORDED_SUFFIX, evidence_label, pool, sample_effects

__all__ = [
    "sample_class_composition",
    "sasp_class_scores",
    "VALUE_TYPES",
    "SAMPLE_COMPOSITION_COLUMNS",
    "CLASS_SCORE_COLUMNS",
    "CLASS_EFFECT_MEASURE",
]

SAMPLE_COMPOSITION_COLUMNS = [
    "dataset",
    "sample",
    "cell_type",
    "sasp_class",
    "class_label",
    "class_order",
    "n_cells",
    "class_score",
    "class_score_sd",
    "class_expression",
    "share",
    "share_var",
    "auroc",
    "auroc_var",
    "auroc_ci_low",
    "auroc_ci_high",
    "balanced_auroc",
    "balanced_var",
    "n_genes_class",
    "n_genes_present",
]
CLASS_SCORE_COLUMNS = [
    "dataset",
    "cancer_type",
    "cell_type",
    "cell_type_ontology_id",
    "lineage",
    "sasp_class",
    "class_label",
    "class_order",
    "class_score",
    "class_score_ci_low",
    "class_score_ci_high",
    "score_unit",
    "class_expression",
    "expression_unit",
    "share",
    "share_ci_low",
    "share_ci_high",
    "ci_unit",
    "balanced_effect",
    "balanced_ci_low",
    "balanced_ci_high",
    "effect_size",
    "effect_ci_low",
    "effect_ci_high",
    "effect_measure",
    "effect_n_samples",
    "tau2",
    "i2",
    "n_cells",
    "n_samples",
    "evidence",
    "n_genes_class",
    "n_genes_present",
    "coverage",
    "genes_present",
    "low_coverage",
    "flag",
    "gene_sets",
    "unclassified_in_shares",
    "table_version",
]
CLASS_EFFECT_MEASURE = (
    "composition-balanced AUROC of the per-cell class score against each other cell type of the "
    "same tumour (per sample, pooled across samples)"
)
NO_GENES_FLAG = "no gene of the class in the data"
NO_SASP_FLAG = "no SASP expression: shares undefined"

#: value type (``uns["provenance"]["value_type"]``) -> (log base, score unit, linear unit)
_VALUE_TYPES = {
    "raw_counts": (math.e, "mean natural log1p of counts per 10,000", "counts per 10,000 (expm1 of .X)"),
    "log2_tpm10_plus1": (2.0, "mean log2(TPM/10 + 1)", "TPM/10 (2**X - 1)"),
    "tpm_like": (2.0, "mean log2(TPM/10 + 1)", "TPM/10 (2**X - 1)"),
    "tpm": (2.0, "mean log2(TPM/10 + 1)", "TPM/10 (2**X - 1)"),
    "log_normalised": (
        math.e,
        "mean log-normalised value (natural log1p assumed)",
        "normalised values (expm1 of .X, natural log assumed)",
    ),
}
#: the value types whose log base is known (``uns["provenance"]["value_type"]``; the ``value_type`` of
#: :func:`sasp_atlas.atlas.run_dataset`)
VALUE_TYPES = tuple(_VALUE_TYPES)


def _scale(adata: AnnData, log_base: float | str) -> tuple[float, str, str]:
    if log_base != "auto":
        base = float(log_base)
        if not base > 1:
            raise ValueError(f"log_base must be 'auto' or a number > 1 (e.g. np.e, 2); got {log_base!r}")
        return base, f"mean log-normalised value (log base {base:.4g})", f"linear values ({base:.4g}**X - 1)"
    value_type = (adata.uns.get(PROVENANCE_KEY) or {}).get("value_type")
    if value_type not in _VALUE_TYPES:
        raise ValueError(
            f"cannot tell the log base of .X: uns['provenance']['value_type'] is {value_type!r} (known: "
            f"{', '.join(_VALUE_TYPES)}); pass log_base=np.e for natural log1p or log_base=2 for log2(x + 1)"
        )
    return _VALUE_TYPES[value_type]


def _class_genes(classes: pd.DataFrame, gene_sets: Sequence[str] | None, include_unclassified: bool):
    cols = list(gene_sets) if gene_sets is not None else list(SASP_SET_COLUMNS)
    bad = [c for c in cols if c not in SASP_SET_COLUMNS]
    if bad or not cols:
        raise ValueError(
            f"gene_sets must name SASP set columns of the class table ({', '.join(SASP_SET_COLUMNS)}); got {list(cols)}"
        )
    missing = [c for c in ("gene", "sasp_class", "class_label", "class_order", *cols) if c not in classes]
    if missing:
        raise ValueError(
            f"classes lacks column(s) {missing}: pass sasp_atlas.genes.sasp_classes() (or a filtered copy)"
        )
    table = classes[classes[cols].any(axis=1)]
    if not include_unclassified:
        table = table[table["sasp_class"] != UNCLASSIFIED]
    order = (
        table[["sasp_class", "class_label", "class_order"]]
        .drop_duplicates("sasp_class")
        .sort_values("class_order")
        .itertuples(index=False)
    )
    return [
        (c, lab, int(o), table.loc[table["sasp_class"] == c, "gene"].astype(str).tolist()) for c, lab, o in order
    ], cols


def _per_cell(adata: AnnData, present: list[list[str]], layer: str | None, base: float):
    """Per cell x class: mean log-normalised expression of the class's ``present`` genes (NaN without
    genes) and their summed linear expression. Reads only the SASP genes' columns of the matrix."""
    union = list(dict.fromkeys(g for genes in present for g in genes))
    n = adata.n_obs
    if not union:
        return np.full((n, len(present)), np.nan), np.zeros((n, len(present)))
    X = adata.layers[layer] if layer is not None else adata.X
    cols = pd.Index(adata.var_names.astype(str)).get_indexer(union)
    sub = (
        sp.csr_matrix(X[:, cols], dtype=np.float64)
        if sp.issparse(X)
        else sp.csr_matrix(np.asarray(X[:, cols], dtype=np.float64))
    )
    indicator = np.zeros((len(union), len(present)))
    pos = {g: i for i, g in enumerate(union)}
    for k, genes in enumerate(present):
        indicator[[pos[g] for g in genes], k] = 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        log_mean = np.asarray(sub @ indicator) / indicator.sum(axis=0)
    lin = sub.copy()
    lin.data = np.expm1(lin.data * math.log(base))
    return log_mean, np.asarray(lin @ indicator)


def _ratio_var(num: np.ndarray, den: np.ndarray, ratio: float) -> float:
    """Delta-method variance of mean(num) / mean(den) over n cells (NaN for n < 2 or a zero denominator)."""
    n = len(num)
    if n < 2 or not np.isfinite(ratio) or den.mean() <= 0:
        return float("nan")
    resid = num - ratio * den
    return float((resid @ resid) / (n * (n - 1)) / den.mean() ** 2)


def _plan(
    adata: AnnData,
    classes: pd.DataFrame | None,
    gene_sets: Sequence[str] | None,
    include_unclassified: bool,
    log_base: float | str,
) -> dict:
    """Classes, their genes (all / present in ``adata``), units and the log base: everything but the matrix."""
    base, score_unit, linear_unit = _scale(adata, log_base)
    table = sasp_classes() if classes is None else classes
    groups, cols = _class_genes(table, gene_sets, include_unclassified)
    if not groups:
        raise ValueError("no SASP class has genes in the chosen gene_sets: check classes / gene_sets")
    var_index = pd.Index(adata.var_names.astype(str))
    present = {cid: [g for g in genes if g in var_index] for cid, _, _, genes in groups}
    version = str(table["table_version"].iloc[0]) if "table_version" in table and len(table) else ""
    return {
        "groups": groups,
        "gene_sets": ";".join(cols),
        "base": base,
        "score_unit": score_unit,
        "expression_unit": linear_unit,
        "present": present,
        "table_version": version,
    }


def _compute(adata: AnnData, plan: dict, groupby: str, sample_key: str, layer: str | None) -> pd.DataFrame:
    groups = plan["groups"]
    present = [plan["present"][cid] for cid, _, _, _ in groups]
    log_mean, lin_sum = _per_cell(adata, present, layer, plan["base"])
    cell_types = adata.obs[groupby].astype(str).to_numpy()
    samples = adata.obs[sample_key].astype(str).to_numpy()
    ids = [c for c, _, _, _ in groups]
    scored = [k for k, genes in enumerate(present) if genes]
    eff = (
        sample_effects(pd.DataFrame(log_mean[:, scored], columns=[ids[k] for k in scored]), cell_types, samples)
        if scored
        else pd.DataFrame(columns=["sample", "cell_type", "signature"])
    )
    eff = eff.set_index(["sample", "cell_type", "signature"])
    rows = []
    for sample in sorted(pd.unique(samples)):
        in_s = samples == sample
        for ct in sorted(pd.unique(cell_types[in_s])):
            idx = np.flatnonzero(in_s & (cell_types == ct))
            n = len(idx)
            lin = lin_sum[idx]
            total_per_cell = lin.sum(axis=1)
            total = float(total_per_cell.sum())
            for k, (cid, label, order, genes) in enumerate(groups):
                has_genes = bool(present[k])
                scores = log_mean[idx, k]
                share = float(lin[:, k].sum() / total) if has_genes and total > 0 else float("nan")
                key = (sample, ct, cid)
                e = eff.loc[key] if key in eff.index else None
                rows.append(
                    {
                        "sample": sample,
                        "cell_type": ct,
                        "sasp_class": cid,
                        "class_label": label,
                        "class_order": order,
                        "n_cells": n,
                        "class_score": float(scores.mean()) if has_genes else float("nan"),
                        "class_score_sd": float(scores.std(ddof=1)) if has_genes and n > 1 else float("nan"),
                        "class_expression": float(lin[:, k].mean()) if has_genes else float("nan"),
                        "share": share,
                        "share_var": _ratio_var(lin[:, k], total_per_cell, share),
                        "auroc": float(e["auroc"]) if e is not None else float("nan"),
                        "auroc_var": float(e["auroc_var"]) if e is not None else float("nan"),
                        "auroc_ci_low": float(e["auroc_ci_low"]) if e is not None else float("nan"),
                        "auroc_ci_high": float(e["auroc_ci_high"]) if e is not None else float("nan"),
                        "balanced_auroc": float(e["balanced_auroc"]) if e is not None else float("nan"),
                        "balanced_var": float(e["balanced_var"]) if e is not None else float("nan"),
                        "n_genes_class": len(genes),
                        "n_genes_present": len(present[k]),
                    }
                )
    return pd.DataFrame(rows, columns=SAMPLE_COMPOSITION_COLUMNS[1:])


def _with_dataset(table: pd.DataFrame, dataset_id: str | None) -> pd.DataFrame:
    """``table`` with a first column ``dataset`` when the atlas names one (generic statistics need none)."""
    if dataset_id is not None:
        table.insert(0, "dataset", dataset_id)
    return table


def _missing_interval_reasons(e: pd.DataFrame, score: dict, balanced: dict, effect: dict, n_cells: int) -> list[str]:
    """Why a class row has no interval (a NaN interval is never left bare in the table)."""
    reasons = []
    if not np.isfinite(score["ci_low"]):
        sd = e["class_score_sd"].to_numpy(dtype=float)
        if n_cells < 2:
            reasons.append("no score interval: one cell")
        elif np.all(~np.isfinite(sd) | (sd == 0)):
            reasons.append("no score interval: the class's score does not vary (not detected) in this cell type")
        else:
            reasons.append("no score interval: no sample with a score variance")
    if not np.isfinite(balanced["ci_low"]):
        reasons.append(f"no balanced AUROC: no other cell type with >= {MIN_BALANCE_CELLS} cells in its samples")
    if not np.isfinite(effect["ci_low"]):
        reasons.append("no AUROC vs rest: no other cells in its samples")
    return reasons


def _check_obs(adata: AnnData, groupby: str, sample_key: str) -> None:
    for key in (groupby, sample_key):
        if key not in adata.obs:
            raise ValueError(
                f"adata.obs has no column {key!r}: pass groupby= / sample_key= naming the cell types and "
                f"the samples (tumours); a dataset without samples gets one pseudo-sample on loading"
            )


def sample_class_composition(
    adata: AnnData,
    *,
    classes: pd.DataFrame | None = None,
    groupby: str = CELL_TYPE_KEY,
    sample_key: str = SAMPLE_KEY,
    dataset_id: str | None = None,
    gene_sets: Sequence[str] | None = None,
    include_unclassified: bool = False,
    log_base: float | str = "auto",
    layer: str | None = None,
) -> pd.DataFrame:
    """Per sample x cell type x SASP class: class score, share of the SASP expression and within-tumour AUROCs.

    Method, units and references: module docstring of :mod:`sasp_atlas.stats.composition`. Seed-free.
    Reads only the SASP genes' columns of the matrix; ``adata`` is not modified.

    Parameters
    ----------
    adata
        Log-normalised values in ``.X`` (or ``layers[layer]``), ``obs[groupby]`` and ``obs[sample_key]``.
    classes
        The class table (:func:`sasp_atlas.genes.sasp_classes`, the default) or a filtered copy.
    groupby
        The obs column of cell types (the table's ``cell_type`` column).
    sample_key
        The obs column of samples (tumours; the ``sample`` column).
    dataset_id
        If given, written into a first column ``dataset`` (the atlas's bookkeeping); else no such column.
    gene_sets
        Which SASP sets define the genes, as class-table columns (``in_senmayo``, ``in_basisty_core``,
        ``in_basisty_core_fibroblast_epithelial``, ``in_reactome_sasp``); a gene in any of them counts.
        Default: all of them.
    include_unclassified
        Count the ``unclassified`` genes as a class of their own in the shares (default: left out).
    log_base
        Base of the log in ``.X`` (``np.e`` for ``log1p``, ``2`` for ``log2(x + 1)``); ``"auto"`` reads
        ``uns["provenance"]["value_type"]`` (raw counts -> natural log1p CP10k; Smart-seq2 -> log2(TPM/10 + 1)).
    layer
        Read this layer instead of ``.X`` (log-normalised values).

    Returns
    -------
    DataFrame with :data:`SAMPLE_COMPOSITION_COLUMNS`: ``class_score`` / ``class_score_sd`` (per cell,
    log scale), ``class_expression`` (mean per cell of the summed linear expression), ``share`` and its
    delta-method ``share_var``, ``auroc`` / ``balanced_auroc`` with their variances (NaN where
    undefined), ``n_genes_class`` / ``n_genes_present``.
    """
    _check_obs(adata, groupby, sample_key)
    plan = _plan(adata, classes, gene_sets, include_unclassified, log_base)
    return _with_dataset(_compute(adata, plan, groupby, sample_key, layer), dataset_id)


def sasp_class_scores(
    adata: AnnData,
    *,
    classes: pd.DataFrame | None = None,
    groupby: str = CELL_TYPE_KEY,
    sample_key: str = SAMPLE_KEY,
    dataset_id: str | None = None,
    cancer_type: str | None = None,
    gene_sets: Sequence[str] | None = None,
    include_unclassified: bool = False,
    log_base: float | str = "auto",
    layer: str | None = None,
    min_cells: int = 10,
    per_sample: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per dataset x cell type x SASP class: class score, share of the cell type's SASP expression and a
    scale-free effect, the patient as the unit (``sasp_class_scores.csv``).

    Method (module docstring of :mod:`sasp_atlas.stats.composition`): per sample first
    (:func:`sample_class_composition`), then across samples: the class score and the AUROCs by
    Paule-Mandel random-effects pooling (:func:`sasp_atlas.stats.pool`; one sample: the class score's
    Wald interval over its cells, the AUROCs' score intervals), the share as the equal-weight mean of the per-sample shares with a t-interval over the
    samples (one sample: delta-method Wald interval over its cells; intervals clipped to [0, 1]).
    Shares of a cell type sum to 1 over the classes with genes in the data. ``balanced_effect`` (the
    composition-balanced AUROC) is the number for a cross-cancer heatmap. Seed-free.

    Parameters
    ----------
    adata
        Log-normalised values in ``.X`` (or ``layers[layer]``), ``obs[groupby]`` and ``obs[sample_key]``;
        ``obs["lineage"]`` / ``obs["cell_type_ontology_id"]`` are copied when present.
    classes
        The class table (:func:`sasp_atlas.genes.sasp_classes`, the default) or a filtered copy.
    groupby
        The obs column of cell types (the table's ``cell_type`` column).
    sample_key
        The obs column of samples (tumours; the ``sample`` column).
    dataset_id
        If given, written into a first column ``dataset`` (the atlas's bookkeeping); else no such column.
    cancer_type
        Written into ``cancer_type`` (default ``uns["provenance"]["cancer_type"]`` or empty).
    gene_sets
        SASP set columns of the class table defining the genes (default: all; see
        :func:`sample_class_composition`).
    include_unclassified
        Count the ``unclassified`` genes as a class of their own in the shares (default: left out).
    log_base
        Base of the log in ``.X``; ``"auto"`` reads ``uns["provenance"]["value_type"]``.
    layer
        Read this layer instead of ``.X``.
    min_cells
        Cell types with fewer cells are flagged.
    per_sample
        :func:`sample_class_composition` of the same ``adata`` and options, if already computed.

    Returns
    -------
    DataFrame with :data:`CLASS_SCORE_COLUMNS`, one row per cell type x class, sorted by cell type and
    class order. ``class_score`` (log scale, ``score_unit``), ``class_expression`` (linear,
    ``expression_unit``), ``share`` with ``share_ci_low/high``, ``ci_unit`` (``samples``, or
    ``cells`` for a single sample), ``balanced_effect`` / ``effect_size`` (AUROCs) with intervals, ``tau2`` / ``i2``
    of the balanced AUROC, ``n_cells``, ``n_samples`` (samples holding the cell type), ``evidence`` (of
    ``effect_n_samples``, the samples the balanced effect rests on),
    gene coverage (``n_genes_class``, ``n_genes_present``, ``coverage``, ``genes_present``,
    ``low_coverage``) and ``flag``.
    """
    _check_obs(adata, groupby, sample_key)
    meta = _plan(adata, classes, gene_sets, include_unclassified, log_base)
    ps = per_sample if per_sample is not None else _compute(adata, meta, groupby, sample_key, layer)
    obs = adata.obs
    cell_types = obs[groupby].astype(str).to_numpy()
    if cancer_type is None:
        cancer_type = str((adata.uns.get(PROVENANCE_KEY) or {}).get("cancer_type", ""))
    rows = []
    for (ct, _order, cid), e in ps.groupby(["cell_type", "class_order", "sasp_class"], sort=True):
        in_ct = cell_types == ct
        first = e.iloc[0]
        n_cells = int(e["n_cells"].sum())
        n_present, n_class = int(first["n_genes_present"]), int(first["n_genes_class"])
        sample_names = list(e["sample"])
        unrecorded = len(sample_names) == 1 and sample_names[0].endswith(UNRECORDED_SUFFIX)
        shares = e["share"].to_numpy(dtype=float)
        ok = np.isfinite(shares)
        k = int(ok.sum())
        if k >= 2:
            share = float(shares[ok].mean())
            half = float(student_t.ppf(0.975, k - 1) * shares[ok].std(ddof=1) / np.sqrt(k))
            share_lo, share_hi, ci_unit = share - half, share + half, "samples"
        elif k == 1:
            share = float(shares[ok][0])
            se = float(np.sqrt(e["share_var"].to_numpy(dtype=float)[ok][0]))
            share_lo, share_hi, ci_unit = share - 1.96 * se, share + 1.96 * se, "cells (single sample)"
        else:
            share = share_lo = share_hi = float("nan")
            ci_unit = "samples" if len(e) > 1 else "cells (single sample)"
        if np.isfinite(share_lo):
            share_lo, share_hi = max(share_lo, 0.0), min(share_hi, 1.0)
        score = pool(e["class_score"], e["class_score_sd"] ** 2 / e["n_cells"])
        score_est = (
            score["estimate"]
            if np.isfinite(score["estimate"])
            else (float(np.average(e["class_score"], weights=e["n_cells"])) if n_present else float("nan"))
        )
        expression = float(e["class_expression"].mean()) if n_present else float("nan")
        balanced = pool(e["balanced_auroc"], e["balanced_var"], bounds=(0, 1))
        effect = pool(e["auroc"], e["auroc_var"], bounds=(0, 1), intervals=(e["auroc_ci_low"], e["auroc_ci_high"]))
        low = is_low_coverage(n_present, n_class)
        flags = []
        if n_cells < min_cells:
            flags.append(f"fewer than {min_cells} cells")
        if n_present == 0:
            flags.append(NO_GENES_FLAG)
        elif low:
            flags.append(LOW_COVERAGE_FLAG)
        if n_present and k == 0:
            flags.append(NO_SASP_FLAG)
        if n_present:
            flags.extend(_missing_interval_reasons(e, score, balanced, effect, n_cells))
        n_samples = len(e)
        rows.append(
            {
                "cancer_type": cancer_type,
                "cell_type": ct,
                "cell_type_ontology_id": str(obs.loc[in_ct, "cell_type_ontology_id"].astype(str).iloc[0])
                if "cell_type_ontology_id" in obs and in_ct.any()
                else "",
                "lineage": str(obs.loc[in_ct, "lineage"].astype(str).iloc[0])
                if "lineage" in obs and in_ct.any()
                else "",
                "sasp_class": cid,
                "class_label": first["class_label"],
                "class_order": int(first["class_order"]),
                "class_score": score_est,
                "class_score_ci_low": score["ci_low"],
                "class_score_ci_high": score["ci_high"],
                "score_unit": meta["score_unit"],
                "class_expression": expression,
                "expression_unit": meta["expression_unit"],
                "share": share,
                "share_ci_low": share_lo,
                "share_ci_high": share_hi,
                "ci_unit": ci_unit,
                "balanced_effect": balanced["estimate"],
                "balanced_ci_low": balanced["ci_low"],
                "balanced_ci_high": balanced["ci_high"],
                "effect_size": effect["estimate"],
                "effect_ci_low": effect["ci_low"],
                "effect_ci_high": effect["ci_high"],
                "effect_measure": CLASS_EFFECT_MEASURE,
                "effect_n_samples": int(balanced["k"]),
                "tau2": balanced["tau2"],
                "i2": balanced["i2"],
                "n_cells": n_cells,
                "n_samples": n_samples,
                "evidence": evidence_label(int(balanced["k"]), unrecorded=unrecorded),
                "n_genes_class": n_class,
                "n_genes_present": n_present,
                "coverage": n_present / n_class if n_class else float("nan"),
                "genes_present": ";".join(meta["present"].get(cid, [])),
                "low_coverage": low,
                "flag": "; ".join(flags),
                "gene_sets": meta["gene_sets"],
                "unclassified_in_shares": include_unclassified,
                "table_version": meta["table_version"],
            }
        )
    return _with_dataset(pd.DataFrame(rows, columns=CLASS_SCORE_COLUMNS[1:]), dataset_id)
