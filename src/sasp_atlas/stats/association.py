"""Are the SASP-high cells the senescence-index-high cells? Within-tumour rank association of each
signature with a reference score (the hUSI senescence index), pooled over tumours.

Method: within each sample (tumour) and cell type with at least :data:`MIN_CELLS` cells, the Spearman
correlation between a signature's per-cell score and the reference score (ties averaged). Across
tumours the correlations are pooled on Fisher's z scale, z = atanh(rho) with sampling variance
1.06 / (n - 3) (Fieller, Hartley & Pearson 1957, doi:10.1093/biomet/44.3-4.470, for Spearman's rho),
by the atlas's random-effects pooling (:func:`sasp_atlas.stats.effects.pool`: Paule-Mandel,
Knapp-Hartung ad hoc t intervals below 5 tumours), and transformed back. The tumour is the unit: cells
of one tumour are never pooled with another's. Nothing here is random.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .effects import UNRECORDED_SUFFIX, evidence_label, pool

__all__ = ["ASSOCIATION_COLUMNS", "SAMPLE_ASSOCIATION_COLUMNS", "MIN_CELLS", "sample_associations", "score_association"]

#: a tumour's cell type enters with at least this many cells (Fisher's variance needs n > 3)
MIN_CELLS = 10
SAMPLE_ASSOCIATION_COLUMNS = ["sample", "cell_type", "signature", "reference", "n_cells", "rho"]
ASSOCIATION_COLUMNS = [
    "cell_type",
    "signature",
    "reference",
    "rho",
    "ci_low",
    "ci_high",
    "ci_method",
    "tau2",
    "n_samples",
    "n_cells",
    "evidence",
    "flag",
]
_SPEARMAN_VAR = 1.06


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / den) if den > 0 else float("nan")


def sample_associations(
    scores: pd.DataFrame,
    reference: np.ndarray,
    groups,
    samples,
    *,
    reference_name: str = "husi",
    min_cells: int = MIN_CELLS,
) -> pd.DataFrame:
    """Per sample x cell type (>= ``min_cells`` cells) x signature: Spearman's rho between the
    signature's score and ``reference`` (NaN when either is constant). Columns
    :data:`SAMPLE_ASSOCIATION_COLUMNS`."""
    reference = np.asarray(reference, dtype=np.float64)
    groups, samples = np.asarray(groups).astype(str), np.asarray(samples).astype(str)
    values = scores.to_numpy(dtype=np.float64)
    rows = []
    for (sample, ct), idx in pd.DataFrame({"s": samples, "g": groups}).groupby(["s", "g"], sort=True).indices.items():
        ok = idx[np.isfinite(reference[idx])]
        if len(ok) < min_cells:
            continue
        for j, sig in enumerate(scores.columns):
            rows.append((sample, ct, sig, reference_name, len(ok), _spearman(values[ok, j], reference[ok])))
    return pd.DataFrame(rows, columns=SAMPLE_ASSOCIATION_COLUMNS)


def score_association(per_sample: pd.DataFrame) -> pd.DataFrame:
    """Pool :func:`sample_associations` over tumours per cell type x signature (Fisher z, random
    effects; module doc). Columns :data:`ASSOCIATION_COLUMNS`."""
    rows = []
    for (ct, sig, ref), g in per_sample.groupby(["cell_type", "signature", "reference"], sort=True):
        g = g[np.isfinite(g["rho"])]
        if g.empty:
            continue
        rho = g["rho"].clip(-0.999999, 0.999999).to_numpy()
        z, var = np.arctanh(rho), _SPEARMAN_VAR / (g["n_cells"].to_numpy() - 3)
        res = pool(z, var)
        unrecorded = len(g) == 1 and str(g["sample"].iloc[0]).endswith(UNRECORDED_SUFFIX)
        flags = [] if res["k"] > 1 else ["one tumour: the interval is over its cells"]
        rows.append(
            {
                "cell_type": ct,
                "signature": sig,
                "reference": ref,
                "rho": float(np.tanh(res["estimate"])),
                "ci_low": float(np.tanh(res["ci_low"])),
                "ci_high": float(np.tanh(res["ci_high"])),
                "ci_method": res["ci_method"],
                "tau2": res["tau2"],
                "n_samples": int(res["k"]),
                "n_cells": int(g["n_cells"].sum()),
                "evidence": evidence_label(int(res["k"]), unrecorded=unrecorded),
                "flag": "; ".join(flags),
            }
        )
    return pd.DataFrame(rows, columns=ASSOCIATION_COLUMNS)
