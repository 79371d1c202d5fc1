"""``husi``: the human universal senescence index (hUSI): "A transcriptome-based human universal
senescence index (hUSI) robustly predicts cellular senescence under various conditions", Nature Aging
(2025), doi:10.1038/s43587-025-00886-2 (model and code: github.com/WJPina/HUSI, Apache-2.0).

hUSI is a one-class logistic regression trained on senescent bulk transcriptomes; its weights over
13,346 genes are a registry resource (``husi2025_senescence_index``, ``SenOCLR_features.csv``,
fetched and verified by :func:`sasp_atlas.sources.fetch_resource`). A cell's (or sample's) score is
the **Spearman correlation** between the normalised expression of the model genes present in the
data and their weights, zeros included: exactly the authors' ``cal_hUSI`` (``sc/hUSI.py``, pandas
``Series.corr(method="spearman")`` per cell, ties averaged) before their min-max step. The engine
stores this **raw rho** in [-1, 1], comparable across data sets; the authors' data-set-relative
transforms are separate, named options: :func:`sasp_atlas.engines.husi_scores` ``husi_scale="minmax"`` and
:func:`sasp_atlas.engines.husi_sse_split`.

Kernel: one pass over the CSR rows, no dense row. With ``m`` model genes present, the weights'
average ranks ``r_w`` are computed once, centred (``c_g = r_w(g) - (m + 1) / 2``, ``S_w = sum c_g^2``).
In a row the non-zero values of the model genes (``k`` of them) are grouped into tie groups
(:mod:`._ranks`, a hash of the values' bits; no sort of the genes), the groups sorted by value, and
the ``m - k`` implicit zeros form one tied block at rank ``a_0`` (after the negative values, if any).
Then, since ranks average to ``(m + 1) / 2`` and ``sum c_g = 0``,

    rho = sum_{g non-zero} (a_g - a_0) c_g / sqrt(S_a S_w),
    S_a = (m^3 - m - sum over tie groups t (t^2 - 1)) / 12      (the zero block one of the groups),

the Pearson correlation of the two rank vectors. Ranks and the ``c_g`` are multiples of 1/2, so
the numerator is exact in float64; rho differs from scipy's (which pandas calls) by rounding only.
A row with fewer than two model genes, or constant over them (all zeros), has no correlation: NaN,
as pandas returns. A NaN value is a missing pair for pandas (the gene is dropped for that cell):
rows holding one are flagged by the kernel and recomputed that way, one by one.

Gene sets: each set is scored against the weights of its genes (a gene of the set without a
weight is an error); :func:`sasp_atlas.engines.husi_scores` passes the whole model as one set named ``husi``, so the
driver reports ``coverage`` = model genes present / 13,346 as for any signature.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import numba
import numpy as np
import pandas as pd
from scipy import stats

from ..data import InputError
from ..sources import fetch_resource, get_resource
from ._base import MethodMeta, Plan
from ._ranks import row_tie_groups, sort_groups_descending, table_bits

#: the registry resource holding the model, and its file
MODEL_RESOURCE = "husi2025_senescence_index"
MODEL_FILE = "SenOCLR_features.csv"
REFERENCE = "https://doi.org/10.1038/s43587-025-00886-2"
#: the authors' data-set-relative transforms of the raw rho (:func:`sasp_atlas.engines.husi_scores`)
HUSI_SCALES = ("raw", "minmax")

META = MethodMeta(
    name="husi",
    description="hUSI senescence index: Spearman correlation of the model genes' expression with the hUSI "
    "model weights (raw rho; equals the authors' cal_hUSI before its min-max step)",
    value_range=(-1.0, 1.0),
    reference=REFERENCE,
    assumptions="normalised (log) expression; per-cell ranks, so any per-cell monotone normalisation gives the "
    "same score; zeros are one tied block; the gene sets scored must hold model genes (the model "
    "itself: sasp_atlas.engines.husi_scores)",
    kind="rank",
    defaults={"weights": None},
    # the model weights its genes itself (signs included): a signed signature has no meaning here
    signed=None,
)


@lru_cache(maxsize=4)
def _read_model(path: str) -> pd.Series:
    table = pd.read_csv(path, index_col=0)  # as cal_hUSI reads it
    return table["Weight"].astype(np.float64).rename("weight")


def load_husi_model(*, mirror: str | None = None) -> pd.Series:
    """The hUSI model weights: a float64 Series indexed by gene symbol (13,346 genes).

    Fetched through the registry (resource ``husi2025_senescence_index``, ``SenOCLR_features.csv``
    at WJPina/HUSI commit b46437b; sha256 and git blob id verified; a local mirror, ``mirror`` or
    ``$SASP_ATLAS_MIRROR``, is read first) and parsed as ``cal_hUSI`` parses it
    (``pd.read_csv(index_col=0)["Weight"]``). Reference: Nature Aging (2025),
    doi:10.1038/s43587-025-00886-2.

    Parameters
    ----------
    mirror
        A local mirror folder checked before any download (default ``$SASP_ATLAS_MIRROR``).
    """
    path = fetch_resource(MODEL_RESOURCE, mirror=mirror)[MODEL_FILE]
    return _read_model(str(Path(path).resolve())).copy()


def model_provenance() -> dict[str, str]:
    """URL and sha256 of the model file (recorded with every hUSI score)."""
    (entry,) = [f for f in get_resource(MODEL_RESOURCE).files if f["name"] == MODEL_FILE]
    return {"model": f"{MODEL_RESOURCE}/{MODEL_FILE}", "model_url": entry["url"], "model_sha256": entry["sha256"]}


# --------------------------------------------------------------------------- kernel
@numba.njit(parallel=True, cache=True)
def husi_rows(
    indptr, indices, data, start, end, model_pos, centred, s_w, max_nnz, log2_table, n_threads, col, out, has_nan
):
    """``out[r, col]`` = Spearman rho of row ``start + r`` over the ``m = len(centred)`` model genes
    (``model_pos[gene]``: the gene's position among them, -1 if not a model gene; ``centred``: the
    weights' average ranks minus ``(m + 1) / 2``; ``s_w``: their sum of squares). Rows with a NaN
    model value are set NaN and flagged in ``has_nan`` (pandas drops NaN pairs: recomputed apart)."""
    n = end - start
    if n <= 0:
        return
    m = centred.shape[0]
    mf = float(m)
    n_blocks = min(n, n_threads * 4)
    size = 1 << log2_table
    shift = np.uint64(64 - log2_table)
    mask = size - 1
    for blk in numba.prange(n_blocks):
        tab_key = np.empty(size, dtype=np.uint64)
        tab_stamp = np.full(size, -1, dtype=np.int64)
        tab_cnt = np.empty(size, dtype=np.int64)
        tab_val = np.empty(size, dtype=np.float64)
        tab_rank = np.empty(size, dtype=np.float64)
        cap = max(max_nnz, 1)
        vals = np.empty(cap, dtype=np.float64)
        weight_c = np.empty(cap, dtype=np.float64)
        ent_slot = np.empty(cap, dtype=np.int64)
        dist_slot = np.empty(cap, dtype=np.int64)
        bits = vals.view(np.uint64)
        for r in range(n * blk // n_blocks, n * (blk + 1) // n_blocks):
            i = start + r
            k = 0
            n_neg = 0
            nan = False
            for p in range(indptr[i], indptr[i + 1]):
                q = model_pos[indices[p]]
                if q < 0:
                    continue
                v = np.float64(data[p])
                if v != v:
                    nan = True
                    break
                if v == 0.0:  # a stored zero is one of the zeros
                    continue
                if v < 0.0:
                    n_neg += 1
                vals[k] = v
                weight_c[k] = centred[q]
                k += 1
            if nan:
                has_nan[r] = 1
                out[r, col] = np.nan
                continue
            if m < 2:
                out[r, col] = np.nan
                continue
            d = row_tie_groups(
                vals, bits, 0, k, tab_key, tab_stamp, tab_cnt, tab_val, i, shift, mask, ent_slot, dist_slot
            )
            sort_groups_descending(dist_slot, d, tab_val)
            z = float(m - k)
            ties = z * z * z - z
            below = 0.0  # values ranked so far (ascending)
            zero_rank = 0.0
            placed = False
            for j in range(d - 1, -1, -1):
                h = dist_slot[j]
                if not placed and tab_val[h] > 0.0:
                    zero_rank = below + 0.5 * (z + 1.0)
                    below += z
                    placed = True
                t = float(tab_cnt[h])
                tab_rank[h] = below + 0.5 * (t + 1.0)
                below += t
                ties += t * t * t - t
            if not placed:
                zero_rank = below + 0.5 * (z + 1.0)
            s_a = (mf * mf * mf - mf - ties) / 12.0
            if s_a <= 0.0 or s_w <= 0.0:
                out[r, col] = np.nan
                continue
            num = 0.0
            for e in range(k):
                num += (tab_rank[ent_slot[e]] - zero_rank) * weight_c[e]
            out[r, col] = num / np.sqrt(s_a * s_w)


def spearman_dense(values: np.ndarray, weights: np.ndarray) -> float:
    """Spearman rho of one dense row with the weights as pandas computes it: pairs with a NaN
    dropped, then ``scipy.stats.spearmanr`` (NaN for a constant input or fewer than two pairs)."""
    values = np.asarray(values, dtype=np.float64)
    keep = ~(np.isnan(values) | np.isnan(weights))
    if keep.sum() < 2:
        return np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.spearmanr(values[keep], weights[keep])[0])


class HusiPlan(Plan):
    """One model-gene lookup per gene set; the kernel runs once per set."""

    def __init__(self, model_pos: list[np.ndarray], weights: list[np.ndarray], set_info, params):
        self.model_pos = model_pos
        self.weights = weights  # per set, the weights of its genes in model_pos order (the NaN path)
        self.centred, self.s_w = [], []
        for w in weights:
            c = stats.rankdata(w, method="average") - 0.5 * (len(w) + 1)
            self.centred.append(c)
            self.s_w.append(float(np.sum(c * c)))
        self.n_sets = len(weights)
        self.set_info, self.params = set_info, params

    def compute(self, indptr, indices, data, start, end, out):
        max_nnz, log2_table = table_bits(indptr, start, end)
        has_nan = np.zeros(max(end - start, 0), dtype=np.uint8)
        for s in range(self.n_sets):
            has_nan[:] = 0
            husi_rows(
                indptr,
                indices,
                data,
                start,
                end,
                self.model_pos[s],
                self.centred[s],
                self.s_w[s],
                max_nnz,
                log2_table,
                numba.get_num_threads(),
                s,
                out,
                has_nan,
            )
            for r in np.flatnonzero(has_nan):
                out[r, s] = spearman_dense(self._dense_row(indptr, indices, data, start + r, s), self.weights[s])

    def _dense_row(self, indptr, indices, data, i, s) -> np.ndarray:
        row = np.zeros(len(self.weights[s]))
        a, b = indptr[i], indptr[i + 1]
        q = self.model_pos[s][indices[a:b]]
        row[q[q >= 0]] = data[a:b][q >= 0]
        return row


def _check_weights(weights) -> pd.Series:
    if not isinstance(weights, pd.Series):
        raise InputError(
            f"weights must be a pandas Series of weights indexed by gene symbol, not "
            f"{type(weights).__name__}; leave it None for the hUSI model"
        )
    if not weights.index.is_unique:
        dup = weights.index[weights.index.duplicated()].unique()
        raise InputError(
            f"weights name {len(dup)} gene(s) more than once (e.g. {', '.join(map(str, dup[:5]))}): "
            "give one weight per gene"
        )
    values = pd.to_numeric(weights, errors="coerce").astype(np.float64)
    if not np.isfinite(values.to_numpy()).all():
        raise InputError("weights hold NaN, infinite or non-numeric values: give a finite weight per gene")
    return values.set_axis(weights.index.astype(str))


def prepare(ctx, gene_sets, *, random_state, weights) -> HusiPlan:
    model = load_husi_model() if weights is None else _check_weights(weights)
    params = model_provenance() if weights is None else {"model": f"user weights ({len(model)} genes)"}
    positions, set_weights, info = [], [], []
    for gs in gene_sets:
        w = model.reindex(gs.used)
        unweighted = list(gs.used[w.isna().to_numpy()])
        if unweighted:
            raise InputError(
                f"gene set {gs.name!r}: {len(unweighted)} of its {len(gs.used)} genes present have no weight in the "
                f"{'hUSI model' if weights is None else 'weights given'} (e.g. {', '.join(unweighted[:5])}); method "
                "'husi' correlates expression with model weights: score the model with "
                "sasp_atlas.engines.husi_scores(adata), or give sets of model genes"
            )
        pos = np.full(ctx.n_vars, -1, dtype=np.int64)
        pos[gs.idx] = np.arange(len(gs.idx))
        positions.append(pos)
        set_weights.append(w.to_numpy(dtype=np.float64))
        info.append({"n_model_genes": int(len(model))})
    return HusiPlan(positions, set_weights, info, params)
