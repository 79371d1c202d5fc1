"""``ucell``: the UCell score (Andreatta & Carmona 2021, Comput Struct Biotechnol J 19:3796,
doi:10.1016/j.csbj.2021.06.043), exactly as ``pyucell.compute_ucell_scores`` (0.8) computes it.

In each cell the non-zero genes are ranked by decreasing value (rank 1 = highest; ties get their
average rank); a gene that is zero, or whose rank exceeds ``max_rank``, gets rank ``max_rank``. With
``lgt`` signature genes the score is the Mann-Whitney U statistic of their ranks, normalised:

    score = 1 - (sum of ranks - lgt (lgt + 1) / 2) / (lgt * max_rank - lgt (lgt + 1) / 2),

clipped at 0 (0 when the denominator is 0). ``missing_genes="impute"`` (pyucell's default) counts
signature genes absent from the data with rank ``max_rank`` (so ``lgt`` = all distinct genes);
``"skip"`` drops them. Rewritten additively, ``score = sum_{g in S, r_g < max_rank} (max_rank - r_g)
/ (lgt * max_rank - lgt (lgt + 1) / 2)``: only non-zero genes ranked above ``max_rank`` contribute,
so one pass over each CSR row (ranked by tie groups, :mod:`._ranks`) scores every signature.
pyucell computes in float32; here sums are float64 (differences ~1e-7).

Signed sets: pyucell's own signed form (``compute_ucell_scores`` with genes suffixed ``+`` / ``-``,
``pyucell.scoring._score_chunk``; as R UCell): ``score = max(0, U(up) - w_neg * U(down))``, each
part's ``U`` computed as above over its own genes (``lgt`` per part, missing genes imputed per part
with ``missing_genes="impute"``), ``w_neg = 1`` by default (:func:`combine_signed`). So a cell whose
down genes outrank its up genes scores 0, not a negative value.
"""

from __future__ import annotations

import numba
import numpy as np

from ._base import MethodMeta, Plan, gene_lookup
from ._ranks import row_tie_groups, sort_groups_descending, table_bits, value_bits

META = MethodMeta(
    name="ucell",
    description="UCell: normalised Mann-Whitney U of the signature genes' within-cell ranks "
    "(non-zero genes ranked, truncated at max_rank); equals pyucell.compute_ucell_scores",
    value_range=(0.0, 1.0),
    reference="https://doi.org/10.1016/j.csbj.2021.06.043",
    assumptions="any per-cell monotone scale (counts or log-normalised give the same ranks); zeros "
    "are unranked (rank max_rank), so scores fall with sparsity",
    kind="rank",
    defaults={"max_rank": 1500, "missing_genes": "impute", "w_neg": 1.0},
    signed="max(0, U(up) - w_neg * U(down)) (pyucell's signed UCell)",
)


@numba.njit(parallel=True, cache=True)
def ucell_sums(indptr, indices, data, bits, start, end, lk_ptr, lk_set, max_rank, max_nnz, log2_table, n_threads, out):
    """``out[r, s] += sum over genes g of set s with average rank r_g < max_rank of (max_rank - r_g)``."""
    n = end - start
    if n <= 0:
        return
    n_blocks = min(n, n_threads * 4)
    size = 1 << log2_table
    shift = np.uint64(64 - log2_table)
    mask = size - 1
    for blk in numba.prange(n_blocks):
        tab_key = np.empty(size, dtype=np.uint64)
        tab_stamp = np.full(size, -1, dtype=np.int64)
        tab_cnt = np.empty(size, dtype=np.int64)
        tab_val = np.empty(size, dtype=np.float64)
        tab_start = np.empty(size, dtype=np.int64)
        ent_slot = np.empty(max(max_nnz, 1), dtype=np.int64)
        dist_slot = np.empty(max(max_nnz, 1), dtype=np.int64)
        for r in range(n * blk // n_blocks, n * (blk + 1) // n_blocks):
            i = start + r
            a = indptr[i]
            b = indptr[i + 1]
            d = row_tie_groups(
                data, bits, a, b, tab_key, tab_stamp, tab_cnt, tab_val, i, shift, mask, ent_slot, dist_slot
            )
            sort_groups_descending(dist_slot, d, tab_val)
            cum = 0
            for k in range(d):
                h = dist_slot[k]
                tab_start[h] = cum
                cum += tab_cnt[h]
            for p in range(a, b):
                g = indices[p]
                q0 = lk_ptr[g]
                q1 = lk_ptr[g + 1]
                h = ent_slot[p - a]
                if q0 == q1 or h < 0:
                    continue
                rank = tab_start[h] + 0.5 * (tab_cnt[h] + 1)
                if rank < max_rank:
                    c = max_rank - rank
                    for q in range(q0, q1):
                        out[r, lk_set[q]] += c


class UCellPlan(Plan):
    def __init__(self, lk_ptr, lk_set, scale, max_rank, set_info, params):
        self.lk_ptr, self.lk_set, self.scale, self.max_rank = lk_ptr, lk_set, scale, max_rank
        self.n_sets = len(scale)
        self.set_info, self.params = set_info, params

    def compute(self, indptr, indices, data, start, end, out):
        max_nnz, log2_table = table_bits(indptr, start, end)
        ucell_sums(
            indptr,
            indices,
            data,
            value_bits(data),
            start,
            end,
            self.lk_ptr,
            self.lk_set,
            float(self.max_rank),
            max_nnz,
            log2_table,
            numba.get_num_threads(),
            out,
        )
        out *= self.scale
        np.maximum(out, 0.0, out=out)


def combine_signed(up: np.ndarray, down: np.ndarray, params: dict) -> np.ndarray:
    """pyucell's signed UCell: ``max(0, U(up) - w_neg * U(down))``."""
    return np.maximum(up - params["w_neg"] * down, 0.0)


def prepare(ctx, gene_sets, *, random_state, max_rank, missing_genes, w_neg) -> UCellPlan:
    if missing_genes not in ("impute", "skip"):
        raise ValueError(f"missing_genes must be 'impute' or 'skip', not {missing_genes!r}")
    if not max_rank >= 1:
        raise ValueError(f"max_rank must be >= 1, not {max_rank!r}")
    lk_ptr, lk_set = gene_lookup([gs.idx for gs in gene_sets], ctx.n_vars)
    scale = np.empty(len(gene_sets))
    info = []
    for k, gs in enumerate(gene_sets):
        lgt = len(gs.idx) + (len(gs.missing) if missing_genes == "impute" else 0)
        denom = lgt * max_rank - lgt * (lgt + 1) / 2.0
        scale[k] = 1.0 / denom if denom != 0 else 0.0
        info.append({"n_genes_ranked": int(lgt)})
    return UCellPlan(
        lk_ptr,
        lk_set,
        scale,
        max_rank,
        info,
        {"max_rank": max_rank, "missing_genes": missing_genes, "w_neg": float(w_neg)},
    )
