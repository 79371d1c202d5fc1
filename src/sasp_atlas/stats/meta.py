"""Across patients and datasets: random-effects meta-analysis per cancer type x cell type x signature."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .effects import REPLICATED_MIN, UNRECORDED_SUFFIX, pool

__all__ = ["META_COLUMNS", "meta_analysis", "dedupe_overlapping_samples"]

META_COLUMNS = ["cancer_type", "cell_type", "signature", "measure", "k_samples", "k_datasets", "datasets", "estimate",
                "se", "ci_low", "ci_high", "pi_low", "pi_high", "tau2", "i2", "evidence"]
MEASURE = "composition-balanced AUROC (per sample), Paule-Mandel random effects"


def dedupe_overlapping_samples(samples: pd.DataFrame, overlaps: dict[str, list[str]]) -> pd.DataFrame:
    """Samples present in several datasets that share cells (registry ``overlaps``) count once: the
    copy with the most cells of the cell type is kept. ``samples`` has ``dataset, sample, cell_type,
    signature, n_cells``."""
    keep = np.ones(len(samples), dtype=bool)
    for (sample, ct, sig), idx in samples.groupby(["sample", "cell_type", "signature"]).groups.items():
        if len(idx) < 2:
            continue
        sub = samples.loc[idx]
        dsets = list(sub["dataset"])
        linked = any(b in overlaps.get(a, []) for a in dsets for b in dsets if a != b)
        if linked:
            best = sub["n_cells"].idxmax()
            keep[samples.index.get_indexer([i for i in idx if i != best])] = False
    return samples[keep]


def _evidence(k_samples: int, k_datasets: int, unrecorded_only: bool) -> str:
    if unrecorded_only:
        return "samples not recorded"
    if k_samples >= REPLICATED_MIN and k_datasets >= 2:
        return f"replicated across datasets ({k_samples} tumours, {k_datasets} datasets)"
    if k_samples >= REPLICATED_MIN:
        return f"replicated ({k_samples} tumours)"
    return "single tumour" if k_samples == 1 else f"{k_samples} tumours"


def meta_analysis(samples: pd.DataFrame, cancer_types: dict[str, str],
                  overlaps: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Pool per-sample composition-balanced AUROCs across the samples of every dataset of a cancer type.

    ``samples``: the atlas's ``sample_celltype_scores`` (``dataset, sample, cell_type, signature,
    n_cells, balanced_auroc, balanced_var``); ``cancer_types``: dataset -> cancer type. Samples shared
    by overlapping datasets count once (:func:`dedupe_overlapping_samples`). Per cancer type x cell type
    x signature: the Paule-Mandel random-effects estimate (:func:`sasp_atlas.stats.effects.pool`) with
    its 95 % confidence and prediction intervals, tau^2 and I^2, ``k_samples``, ``k_datasets`` and an
    ``evidence`` label (``replicated across datasets`` needs >= 3 tumours from >= 2 datasets). The
    pseudo-sample of a dataset that recorded no samples enters as one sample and is labelled so.
    Columns :data:`META_COLUMNS`.
    """
    s = samples.copy()
    s["cancer_type"] = s["dataset"].map(cancer_types)
    s = s[np.isfinite(s["balanced_auroc"]) & np.isfinite(s["balanced_var"]) & (s["balanced_var"] > 0)]
    s = dedupe_overlapping_samples(s.reset_index(drop=True), overlaps or {})
    rows = []
    for (cancer, ct, sig), g in s.groupby(["cancer_type", "cell_type", "signature"], sort=True):
        res = pool(g["balanced_auroc"].to_numpy(), g["balanced_var"].to_numpy(), bounds=(0, 1))
        dsets = sorted(g["dataset"].unique())
        unrecorded_only = bool(g["sample"].astype(str).str.endswith(UNRECORDED_SUFFIX).all())
        rows.append({"cancer_type": cancer, "cell_type": ct, "signature": sig, "measure": MEASURE,
                     "k_samples": int(res["k"]), "k_datasets": len(dsets), "datasets": "; ".join(dsets),
                     **{k: res[k] for k in ("estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high", "tau2", "i2")},
                     "evidence": _evidence(int(res["k"]), len(dsets), unrecorded_only)})
    return pd.DataFrame(rows, columns=META_COLUMNS)
