"""The public hUSI functions: :func:`husi_scores` (the model scored through the engine's dispatching
``score``, in memory or on dask) and the authors' data-set-relative transforms :func:`husi_minmax` and
:func:`husi_sse_split`. The method itself (kernel, metadata, plan, model resource) is :mod:`._husi`;
this module sits apart because it calls the driver, which imports the method registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from ..data import InputError
from ._driver import score
from ._husi import HUSI_SCALES, REFERENCE, load_husi_model, model_provenance

__all__ = ["husi_scores", "husi_minmax", "husi_sse_split"]


def husi_scores(adata, *, layer: str | None = None, husi_scale: str = "raw", mirror: str | None = None) -> pd.Series:
    """hUSI per cell (or sample): the Spearman rho of the model genes' expression with the hUSI weights.

    Method: Nature Aging (2025), doi:10.1038/s43587-025-00886-2; equal to the authors' ``cal_hUSI``
    (``pandas.Series.corr(method="spearman")`` of each cell's values of the model genes present,
    zeros included, with their weights; ties averaged) to rounding (< 1e-16 measured on the Wu cells and
    the Marthandan bulk samples), in one sparse pass (see :mod:`sasp_atlas.engines._husi`). A
    dask-backed matrix is scored chunk by chunk (:func:`sasp_atlas.engines.score` on a dask array). A symbol
    repeated in ``var_names`` is read from its first column (the driver's rule). ``adata`` is not
    modified.

    Parameters
    ----------
    adata
        Cells (or bulk samples) x genes, normalised expression (log-normalised, e.g. log1p CP10k, or
        log TPM) in ``.X`` or ``layer``; gene symbols as ``var_names``. Per-cell ranks: any per-cell
        monotone transform gives the same score.
    layer
        Score ``adata.layers[layer]`` instead of ``.X``.
    husi_scale
        ``"raw"`` (default): the raw rho in [-1, 1], comparable across data sets (what the atlas
        stores). ``"minmax"``: the authors' within-data-set min-max, ``(rho - min) / (max - min)`` over
        the cells scored together (NaN ignored): relative to this data set only.
    mirror
        A local mirror folder checked before downloading the model (default ``$SASP_ATLAS_MIRROR``).

    Returns
    -------
    pandas.Series
        float64, indexed by ``obs_names``, named ``"husi"`` (NaN where a cell's model-gene values are
        all equal, e.g. all zero: no correlation, as in pandas). ``.attrs`` holds ``n_model_genes`` (13,346),
        ``genes_used``, ``coverage`` (model genes present / 13,346), ``low_coverage``,
        ``husi_scale``, ``reference`` and the model's URL and sha256.
    """
    if husi_scale not in HUSI_SCALES:
        raise InputError(f"husi_scale must be one of {', '.join(map(repr, HUSI_SCALES))}, not {husi_scale!r}")
    model = load_husi_model(mirror=mirror)
    X = adata.layers[layer] if layer else adata.X
    shell = AnnData(X=X, obs=pd.DataFrame(index=adata.obs_names), var=pd.DataFrame(index=adata.var_names))
    score(shell, {"husi": list(model.index)}, method="husi", key_added="husi")
    rho = shell.obsm["husi"]["husi"].astype(np.float64)
    info = shell.uns["husi"]["signatures"]["husi"]
    if husi_scale == "minmax":
        rho = husi_minmax(rho)
    rho.attrs = {
        "n_model_genes": int(info["n_genes"]),
        "genes_used": len(info["genes_used"]),
        "coverage": float(info["coverage"]),
        "low_coverage": bool(info["low_coverage"]),
        "husi_scale": husi_scale,
        "reference": REFERENCE,
        **model_provenance(),
    }
    return rho.rename("husi")


def husi_minmax(scores: pd.Series) -> pd.Series:
    """The authors' within-data-set min-max of hUSI (``minmax`` in ``hUSI.py``): ``(x - min) / (max - min)``.

    Relative to the cells scored together (a data-set-relative transform, not comparable across
    data sets; the atlas stores the raw rho). NaN scores are ignored and stay NaN; equal scores
    (max = min) give NaN.

    Parameters
    ----------
    scores
        Raw hUSI (:func:`husi_scores`), one value per cell.
    """
    x = pd.Series(scores, dtype=np.float64)
    lo, hi = np.nanmin(x.to_numpy()), np.nanmax(x.to_numpy())
    if not hi > lo:
        return pd.Series(np.nan, index=x.index, name=x.name)
    return (x - lo) / (hi - lo)


def husi_sse_split(scores: pd.Series) -> pd.Series:
    """The authors' SSE two-group split of hUSI (``SSE_hUSI`` in ``hUSI.py``): 1 = senescent group.

    Every observed score ``t`` is a candidate threshold; the one minimising the within-group sum
    of squared deviations of ``{x <= t}`` and ``{x > t}`` is kept (the first in the order of
    ``scores`` on an exact tie, as the authors' loop), and a cell is 1 if its score is above it.
    A data-set-relative classification (it depends on the cells scored together), named as the
    authors' transform. The authors' loop is O(n^2); here sorted prefix sums (centred for
    accuracy) make it O(n log n) with the same result. NaN scores are left out and get ``<NA>``.

    Parameters
    ----------
    scores
        hUSI per cell (raw or min-max: the split is the same), indexed by cell.

    Returns
    -------
    pandas.Series
        Nullable integer (``Int64``) 0/1 per cell, same index.
    """
    x = pd.Series(scores, dtype=np.float64)
    values = x.to_numpy()
    finite = ~np.isnan(values)
    out = pd.Series(pd.array(np.full(len(x), pd.NA), dtype="Int64"), index=x.index, name="husi_sse_class")
    v = values[finite]
    if len(v) == 0:
        return out
    order = np.sort(v - v.mean())
    n = len(order)
    s1, s2 = np.cumsum(order), np.cumsum(order * order)
    # the last position of each distinct value: the group {x <= t} ends there
    last = np.flatnonzero(np.append(order[1:] != order[:-1], True))
    n_low, n_high = last + 1, n - last - 1
    sse_low = s2[last] - s1[last] ** 2 / n_low
    with np.errstate(invalid="ignore", divide="ignore"):
        sse_high = np.where(n_high > 0, (s2[-1] - s2[last]) - (s1[-1] - s1[last]) ** 2 / np.maximum(n_high, 1), 0.0)
    sse = sse_low + sse_high
    # thresholds within rounding of the minimum are compared as the authors compute them (two-pass
    # sums of squares), in the order of the scores; the first strict minimum wins, as in their loop
    near = set(np.sort(v)[last][sse <= sse.min() + 1e-9 * max(abs(s2[-1]), 1e-300)])
    threshold, best = None, None
    for t in v:
        if t not in near:
            continue
        low, high = v[v <= t], v[v > t]
        total = np.sum((low - np.mean(low)) ** 2) + (np.sum((high - np.mean(high)) ** 2) if len(high) else 0.0)
        if best is None or total < best:
            threshold, best = t, total
        near.discard(t)
    out[finite] = (v > threshold).astype(np.int64)
    return out
