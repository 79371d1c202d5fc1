"""The kernels shared by the linear methods (``scanpy``, ``mean``, ``zmean``): ``X @ W`` over CSR rows.

One pass over the rows; each stored value is added into the sets its gene belongs to through a
gene -> set lookup. Sums are float64 whatever the dtype of ``X`` (scanpy's reproducibility fix,
scverse/scanpy#1890).

The main kernel (:func:`code_sums`) does not add each value into every set with its own weight:
the sets are first factored into *codes*, gene sets with one weight each (:class:`CodeTable`). A
cell's values are summed per code (one add per code membership, no weights), and the code sums
are spread into the sets once per cell. Where sets overlap heavily, as scanpy's control-gene sets
do (every signature's controls are drawn with the same seed, so most share their genes), a set
is coded as a shared base set plus/minus its few differing genes, which halves the additions.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp


@numba.njit(parallel=True, cache=True)
def _code_sums(indptr, indices, data, start, end, lk_ptr, lk_code, gene_scale, use_scale, has_codes,
               t_ptr, t_set, t_w, max_nnz, n_threads, out):
    n = end - start
    if n <= 0:
        return
    n_codes = t_ptr.shape[0] - 1
    n_blocks = min(n, n_threads * 4)
    for blk in numba.prange(n_blocks):
        keep = np.empty(max(max_nnz, 1), dtype=np.int64)
        acc = np.zeros(n_codes, dtype=np.float64)
        for r in range(n * blk // n_blocks, n * (blk + 1) // n_blocks):
            i = start + r
            m = 0
            for p in range(indptr[i], indptr[i + 1]):  # branch-free: entries of genes in any code
                keep[m] = p
                m += has_codes[indices[p]]
            for t in range(m):
                p = keep[t]
                g = indices[p]
                v = np.float64(data[p])
                if use_scale:
                    v *= gene_scale[g]
                for q in range(lk_ptr[g], lk_ptr[g + 1]):
                    acc[lk_code[q]] += v
            for c in range(n_codes):
                a = acc[c]
                if a != 0.0:
                    for j in range(t_ptr[c], t_ptr[c + 1]):
                        out[r, t_set[j]] += a * t_w[j]
                    acc[c] = 0.0


class CodeTable:
    """``W`` (genes x sets, optionally ``diag(gene_scale) @ W``) factored into codes.

    A code is a gene set with unit weight and a list of ``(set, weight)`` targets, so that
    ``X @ W = (X_scaled @ codes) @ targets``. Each column of ``W`` is split into its parts of equal
    weight; then, in order, a part whose symmetric difference with an earlier base part is under
    half its size is coded as that base (shared) plus a code of its extra genes and a code of the
    base genes it lacks (weight negated). Exact up to float64 rounding of the reordered sums.
    """

    MAX_PARTS_TO_DECOMPOSE = 512

    def __init__(self, W: sp.spmatrix, gene_scale: np.ndarray | None = None):
        Wc = sp.csc_matrix(W, dtype=np.float64)
        Wc.sum_duplicates()
        n_genes, n_sets = Wc.shape
        parts = []  # (genes, set, weight)
        for s in range(n_sets):
            genes = Wc.indices[Wc.indptr[s]:Wc.indptr[s + 1]]
            weights = Wc.data[Wc.indptr[s]:Wc.indptr[s + 1]]
            for w in np.unique(weights[weights != 0]):
                parts.append((np.sort(genes[weights == w]), s, float(w)))
        codes: list[tuple[np.ndarray, list[tuple[int, float]]]] = []
        if 0 < len(parts) <= self.MAX_PARTS_TO_DECOMPOSE:
            P = sp.csc_matrix((np.ones(sum(len(g) for g, _, _ in parts)),
                               (np.concatenate([g for g, _, _ in parts]),
                                np.concatenate([np.full(len(g), k) for k, (g, _, _) in enumerate(parts)]))),
                              shape=(n_genes, len(parts)))
            overlap = (P.T @ P).toarray()
            size = np.diag(overlap)
            bases: list[tuple[int, int]] = []  # (part index, code index)
            for k, (genes, s, w) in enumerate(parts):
                best = None
                if bases:
                    idx = np.array([b for b, _ in bases])
                    symdiff = size[k] + size[idx] - 2 * overlap[k, idx]
                    j = int(np.argmin(symdiff))
                    if symdiff[j] < size[k] // 2:
                        best = bases[j]
                if best is None:
                    codes.append((genes, [(s, w)]))
                    bases.append((k, len(codes) - 1))
                    continue
                base_genes = parts[best[0]][0]
                codes[best[1]][1].append((s, w))
                plus = np.setdiff1d(genes, base_genes, assume_unique=True)
                minus = np.setdiff1d(base_genes, genes, assume_unique=True)
                if len(plus):
                    codes.append((plus, [(s, w)]))
                if len(minus):
                    codes.append((minus, [(s, -w)]))
        else:
            codes = [(genes, [(s, w)]) for genes, s, w in parts]
        rows = np.concatenate([g for g, _ in codes]) if codes else np.empty(0, np.int64)
        cols = np.concatenate([np.full(len(g), c) for c, (g, _) in enumerate(codes)]) if codes else np.empty(0, np.int64)
        lookup = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_genes, max(len(codes), 1)))
        lookup.sum_duplicates()
        self.n_codes = len(codes)
        self.lk_ptr = lookup.indptr.astype(np.int32 if lookup.nnz < 2**31 else np.int64)
        self.lk_code = lookup.indices.astype(np.int16 if len(codes) < 2**15 else np.int32)
        self.has_codes = (np.diff(lookup.indptr) > 0).astype(np.uint8)
        self.t_ptr = np.concatenate([[0], np.cumsum([len(t) for _, t in codes])]).astype(np.int64)
        self.t_set = np.array([s for _, t in codes for s, _ in t], dtype=np.int64)
        self.t_w = np.array([w for _, t in codes for _, w in t], dtype=np.float64)
        self.use_scale = gene_scale is not None
        self.gene_scale = (np.asarray(gene_scale, dtype=np.float64) if gene_scale is not None
                           else np.ones(1, dtype=np.float64))

    def add_into(self, indptr, indices, data, start: int, end: int, out: np.ndarray) -> None:
        """``out[r] += X[start + r] @ W`` for ``r < end - start``."""
        max_nnz = int(np.diff(indptr[start:end + 1]).max()) if end > start else 0
        _code_sums(indptr, indices, data, start, end, self.lk_ptr, self.lk_code, self.gene_scale, self.use_scale,
                   self.has_codes, self.t_ptr, self.t_set, self.t_w, max_nnz, numba.get_num_threads(), out)


@numba.njit(parallel=True, cache=True)
def csr_group_gene_sums(indptr, indices, data, start, end, codes, n_groups, n_genes, n_threads):
    """Per-group column sums ``(n_groups, n_genes)`` of rows ``start:end`` (``codes < 0``: skipped).

    Each thread accumulates into its own block, so no two threads write the same cell.
    """
    n = end - start
    n_blocks = min(max(n, 1), n_threads)
    acc = np.zeros((n_blocks, n_groups, n_genes), dtype=np.float64)
    for b in numba.prange(n_blocks):
        for r in range(n * b // n_blocks, n * (b + 1) // n_blocks):
            c = codes[start + r]
            if c < 0:
                continue
            i = start + r
            for p in range(indptr[i], indptr[i + 1]):
                acc[b, c, indices[p]] += np.float64(data[p])
    return acc.sum(axis=0)


@numba.njit(parallel=True, cache=True)
def csr_column_moments(indptr, indices, data, n_genes, center, n_threads):
    """Per column: number of stored entries, sum, and sum of squared deviations from ``center``
    over the stored entries (float64). With ``center`` the column means, the implicit zeros add
    ``(n_obs - nnz) * center**2`` to the squared deviations, so no densifying is needed."""
    n = indptr.shape[0] - 1
    n_blocks = min(max(n, 1), n_threads)
    nnz = np.zeros((n_blocks, n_genes), dtype=np.int64)
    s = np.zeros((n_blocks, n_genes), dtype=np.float64)
    ss = np.zeros((n_blocks, n_genes), dtype=np.float64)
    for b in numba.prange(n_blocks):
        for i in range(n * b // n_blocks, n * (b + 1) // n_blocks):
            for p in range(indptr[i], indptr[i + 1]):
                g = indices[p]
                v = np.float64(data[p])
                nnz[b, g] += 1
                s[b, g] += v
                d = v - center[g]
                ss[b, g] += d * d
    return nnz.sum(axis=0), s.sum(axis=0), ss.sum(axis=0)
