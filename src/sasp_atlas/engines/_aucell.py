"""``aucell``: AUCell (Aibar et al. 2017, Nat Methods 14:1083, doi:10.1038/nmeth.4463), exactly as
``decoupler.mt.aucell`` (2.2) computes it.

In each cell all genes are ranked by decreasing value (rank 1 = highest), ties broken by a fixed
random gene order; the score is the area under the signature's recovery curve up to rank ``n_up``,
divided by its maximum. decoupler's details, reproduced here:

* genes with no stored value in any cell are dropped first (``getnnz(axis=0) == 0``), from the
  ranking and from the signatures (reported per signature as ``genes_undetected``);
* ``n_up`` defaults to ``ceil(0.05 * n_genes)`` clipped to ``[2, n_genes]`` (n_genes after the drop);
* ties (every zero, and the many genes sharing a count within a cell) are broken by the order of a
  permutation ``numpy.random.default_rng(random_state).choice(n_genes, n_genes, replace=False)``
  (decoupler's ``seed=0`` is ``random_state=0``; ``None`` keeps the gene order), i.e. ordinal ranks;
* ``AUC = sum_{g in S, r_g <= n_up} (n_up - r_g) / max_auc`` with ``m = min(|S|, n_up - 1)`` and
  ``max_auc = m n_up - m (m + 1) / 2`` (decoupler's recovery-curve sum, rearranged: exact integers).

Kernel: each CSR row is ranked by tie groups (:mod:`._ranks`); only groups starting above ``n_up``
need their members' order, found by counting set bits below each member's position in a per-thread
bitmap of the tie-break order. When fewer than ``n_up`` genes are positive, the zero group's
signature genes get ``n_pos + 1 + (their position among the cell's zero genes)``, from the same
bitmap. decoupler drops sets with fewer than ``tmin=5`` genes; here every set is scored.
"""

from __future__ import annotations

import logging

import numba
import numpy as np

from ._base import MethodMeta, Plan, gene_lookup
from ._ranks import (
    bit_is_set,
    bitmap_prefix,
    bits_below,
    row_tie_groups,
    set_bit,
    sort_groups_descending,
    table_bits,
    value_bits,
)

log = logging.getLogger(__name__)

META = MethodMeta(
    name="aucell",
    description="AUCell: area under the recovery curve of the signature genes within the top n_up "
    "genes of each cell's ranking; equals decoupler.mt.aucell",
    value_range=(0.0, 1.0),
    reference="https://doi.org/10.1038/nmeth.4463",
    assumptions="any per-cell monotone scale (counts or log-normalised give the same ranks); ties "
    "(zeros and shared counts) broken by a seeded random gene order",
    kind="rank",
    defaults={"n_up": None},
    gene_statistics=("column_nnz",),
)


@numba.njit(cache=True)
def _add(out, r, g, lk_ptr, lk_set, c):
    for q in range(lk_ptr[g], lk_ptr[g + 1]):
        out[r, lk_set[q]] += c


@numba.njit(parallel=True, cache=True)
def aucell_sums(
    indptr,
    indices,
    data,
    bits,
    start,
    end,
    lk_ptr,
    lk_set,
    shufpos,
    n_feat,
    n_up,
    sig_genes,
    max_nnz,
    log2_table,
    n_threads,
    out,
):
    """``out[r, s] += sum over genes g of set s with ordinal rank r_g < n_up of (n_up - r_g)``."""
    n = end - start
    if n <= 0:
        return
    n_blocks = min(n, n_threads * 4)
    size = 1 << log2_table
    shift = np.uint64(64 - log2_table)
    mask = size - 1
    n_words = (n_feat + 63) // 64
    m = max(max_nnz, 1)
    for blk in numba.prange(n_blocks):
        tab_key = np.empty(size, dtype=np.uint64)
        tab_stamp = np.full(size, -1, dtype=np.int64)
        tab_cnt = np.empty(size, dtype=np.int64)
        tab_val = np.empty(size, dtype=np.float64)
        tab_start = np.empty(size, dtype=np.int64)
        tab_off = np.empty(size, dtype=np.int64)
        tab_fill = np.empty(size, dtype=np.int64)
        ent_slot = np.empty(m, dtype=np.int64)
        dist_slot = np.empty(m, dtype=np.int64)
        members = np.empty(m, dtype=np.int64)
        words = np.zeros(n_words, dtype=np.uint64)
        prefix = np.empty(n_words + 1, dtype=np.int64)
        for r in range(n * blk // n_blocks, n * (blk + 1) // n_blocks):
            i = start + r
            a = indptr[i]
            b = indptr[i + 1]
            d = row_tie_groups(
                data, bits, a, b, tab_key, tab_stamp, tab_cnt, tab_val, i, shift, mask, ent_slot, dist_slot
            )
            sort_groups_descending(dist_slot, d, tab_val)
            n_pos = 0
            n_nonzero = 0
            for k in range(d):
                h = dist_slot[k]
                n_nonzero += tab_cnt[h]
                if tab_val[h] > 0:
                    n_pos += tab_cnt[h]
            n_zero = n_feat - n_nonzero
            # 0-based start of each group; negative values rank after the zeros
            cum = 0
            off = 0
            for k in range(d):
                h = dist_slot[k]
                tab_start[h] = cum if tab_val[h] > 0 else cum + n_zero
                cum += tab_cnt[h]
                if tab_start[h] < n_up - 1:
                    tab_off[h] = off
                    tab_fill[h] = 0
                    off += tab_cnt[h]
            for p in range(a, b):
                h = ent_slot[p - a]
                if h >= 0 and tab_start[h] < n_up - 1:
                    members[tab_off[h] + tab_fill[h]] = p
                    tab_fill[h] += 1
            for k in range(d):
                h = dist_slot[k]
                st = tab_start[h]
                if st >= n_up - 1:
                    continue
                c = tab_cnt[h]
                o = tab_off[h]
                if c == 1:
                    _add(out, r, indices[members[o]], lk_ptr, lk_set, n_up - (st + 1))
                elif c <= 32:
                    for x in range(c):
                        g = indices[members[o + x]]
                        if lk_ptr[g] == lk_ptr[g + 1]:
                            continue
                        sx = shufpos[g]
                        ordv = 0
                        for y in range(c):
                            if shufpos[indices[members[o + y]]] < sx:
                                ordv += 1
                        rank = st + 1 + ordv
                        if rank < n_up:
                            _add(out, r, g, lk_ptr, lk_set, n_up - rank)
                else:
                    for x in range(c):
                        set_bit(words, shufpos[indices[members[o + x]]])
                    bitmap_prefix(words, prefix)
                    for x in range(c):
                        g = indices[members[o + x]]
                        if lk_ptr[g] == lk_ptr[g + 1]:
                            continue
                        rank = st + 1 + bits_below(words, prefix, shufpos[g])
                        if rank < n_up:
                            _add(out, r, g, lk_ptr, lk_set, n_up - rank)
                    for x in range(c):
                        words[shufpos[indices[members[o + x]]] >> 6] = 0
            if n_zero > 0 and n_pos + 1 < n_up:
                # zero genes: ranks n_pos + 1 ... in tie-break order among the cell's zero genes
                for p in range(a, b):
                    if ent_slot[p - a] >= 0:
                        set_bit(words, shufpos[indices[p]])
                bitmap_prefix(words, prefix)
                for t in range(sig_genes.shape[0]):
                    g = sig_genes[t]
                    sx = shufpos[g]
                    if bit_is_set(words, sx):
                        continue
                    rank = n_pos + 1 + sx - bits_below(words, prefix, sx)
                    if rank < n_up:
                        _add(out, r, g, lk_ptr, lk_set, n_up - rank)
                for p in range(a, b):
                    if ent_slot[p - a] >= 0:
                        words[shufpos[indices[p]] >> 6] = 0


def resolve_n_up(n_feat: int, n_up: float | None) -> int:
    """decoupler's ``_validate_n_up``: default ``ceil(0.05 n)`` clipped to ``[2, n]``."""
    if n_up is None:
        value = int(np.clip(np.ceil(0.05 * n_feat), 2, n_feat))
    else:
        value = int(np.ceil(n_up))
    if not n_feat >= value > 1:
        raise ValueError(f"n_up={value} must be in (1, {n_feat}] (the number of genes detected in any cell)")
    return value


def tie_break_positions(detected: np.ndarray, random_state: int | None) -> np.ndarray:
    """Position of every gene in the tie-break order (-1 for undetected genes), as decoupler's
    ``_break_ties``: a ``default_rng(seed).choice`` permutation of the detected genes."""
    n_feat = len(detected)
    perm = (
        np.random.default_rng(seed=random_state).choice(np.arange(n_feat), n_feat, replace=False)
        if random_state is not None
        else np.arange(n_feat)
    )
    pos = np.full(detected.max() + 1 if n_feat else 0, -1, dtype=np.int64)
    pos[detected[perm]] = np.arange(n_feat)
    return pos


class AUCellPlan(Plan):
    def __init__(self, lk_ptr, lk_set, shufpos, n_feat, n_up, scale, set_info, params):
        self.lk_ptr, self.lk_set, self.shufpos, self.n_feat, self.n_up = lk_ptr, lk_set, shufpos, n_feat, n_up
        self.sig_genes = np.flatnonzero(np.diff(lk_ptr) > 0).astype(np.int64)
        self.scale = scale
        self.n_sets = len(scale)
        self.set_info, self.params = set_info, params

    def compute(self, indptr, indices, data, start, end, out):
        max_nnz, log2_table = table_bits(indptr, start, end)
        aucell_sums(
            indptr,
            indices,
            data,
            value_bits(data),
            start,
            end,
            self.lk_ptr,
            self.lk_set,
            self.shufpos,
            self.n_feat,
            self.n_up,
            self.sig_genes,
            max_nnz,
            log2_table,
            numba.get_num_threads(),
            out,
        )
        out *= self.scale


def prepare(ctx, gene_sets, *, random_state, n_up) -> AUCellPlan:
    detected_mask = ctx.column_nnz > 0
    detected = np.flatnonzero(detected_mask)
    n_feat = len(detected)
    n_up = resolve_n_up(n_feat, n_up)
    shufpos = np.full(ctx.n_vars, -1, dtype=np.int64)
    if n_feat:
        shufpos[: detected.max() + 1] = tie_break_positions(detected, random_state)
    sets, scale, info = [], np.empty(len(gene_sets)), []
    for k, gs in enumerate(gene_sets):
        keep = detected_mask[gs.idx]
        sets.append(gs.idx[keep])
        m = min(int(keep.sum()), n_up - 1)
        max_auc = m * n_up - m * (m + 1) / 2.0
        if max_auc == 0:
            log.warning("aucell: signature %r has no gene detected in any cell; its score is NaN", gs.name)
        scale[k] = 1.0 / max_auc if max_auc > 0 else np.nan
        info.append({"genes_undetected": [str(g) for g in gs.used[~keep]]})
    lk_ptr, lk_set = gene_lookup(sets, ctx.n_vars)
    return AUCellPlan(lk_ptr, lk_set, shufpos, n_feat, n_up, scale, info, {"n_up": n_up})
