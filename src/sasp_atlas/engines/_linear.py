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

Two other tables serve other shapes of ``W``. :class:`ClassTable`: genes whose rows of ``W`` are
identical form a class (scanpy's drawn controls come in pools shared between signatures; every gene
of an ``expected`` expression bin has the same weights), a stored value is added once into its
class, and class sums are spread into the sets once per cell. :class:`DenseRowTable`: where genes
have rows of their own and sit in many sets (Seurat's per-signature controls, ~5 sets per gene),
``W`` is held as dense rows and ``v * W[g, :]`` is added per stored value, a vector operation,
visiting genes in tiles so that a tile of ``W`` stays in the core's cache. :func:`linear_table`
picks one of the three from ``W``'s shape alone (never from timings), so the same ``W`` is always
summed the same way; the three agree to float64 rounding of reordered sums (~1e-15).
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp


@numba.njit(parallel=True, cache=True)
def _code_sums(
    indptr,
    indices,
    data,
    start,
    end,
    lk_ptr,
    lk_code,
    gene_scale,
    use_scale,
    has_codes,
    t_ptr,
    t_set,
    t_w,
    max_nnz,
    n_threads,
    out,
):
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
            genes = Wc.indices[Wc.indptr[s] : Wc.indptr[s + 1]]
            weights = Wc.data[Wc.indptr[s] : Wc.indptr[s + 1]]
            for w in np.unique(weights[weights != 0]):
                parts.append((np.sort(genes[weights == w]), s, float(w)))
        codes: list[tuple[np.ndarray, list[tuple[int, float]]]] = []
        if 0 < len(parts) <= self.MAX_PARTS_TO_DECOMPOSE:
            P = sp.csc_matrix(
                (
                    np.ones(sum(len(g) for g, _, _ in parts)),
                    (
                        np.concatenate([g for g, _, _ in parts]),
                        np.concatenate([np.full(len(g), k) for k, (g, _, _) in enumerate(parts)]),
                    ),
                ),
                shape=(n_genes, len(parts)),
            )
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
        cols = (
            np.concatenate([np.full(len(g), c) for c, (g, _) in enumerate(codes)]) if codes else np.empty(0, np.int64)
        )
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
        self.gene_scale = (
            np.asarray(gene_scale, dtype=np.float64) if gene_scale is not None else np.ones(1, dtype=np.float64)
        )

    def add_into(self, indptr, indices, data, start: int, end: int, out: np.ndarray) -> None:
        """``out[r] += X[start + r] @ W`` for ``r < end - start``."""
        max_nnz = int(np.diff(indptr[start : end + 1]).max()) if end > start else 0
        _code_sums(
            indptr,
            indices,
            data,
            start,
            end,
            self.lk_ptr,
            self.lk_code,
            self.gene_scale,
            self.use_scale,
            self.has_codes,
            self.t_ptr,
            self.t_set,
            self.t_w,
            max_nnz,
            numba.get_num_threads(),
            out,
        )


@numba.njit(parallel=True, cache=True)
def _dense_row_sums(indptr, indices, data, start, end, Wd, row_of, tile, rows_per_block, out):
    n = end - start
    k = Wd.shape[1]
    n_genes = row_of.shape[0]
    n_blocks = (n + rows_per_block - 1) // rows_per_block
    for blk in numba.prange(n_blocks):
        r0 = blk * rows_per_block
        r1 = min(n, r0 + rows_per_block)
        cur = np.empty(r1 - r0, dtype=np.int64)
        acc = np.zeros((r1 - r0, k), dtype=np.float64)
        for r in range(r0, r1):
            cur[r - r0] = indptr[start + r]
        # a row's cursor moves forward only: every stored value is added exactly once, in its row's stored
        # order (gene order for sorted indices), whatever the tile size
        for g1 in range(tile, n_genes + tile, tile):
            for r in range(r0, r1):
                p = cur[r - r0]
                stop = indptr[start + r + 1]
                while p < stop and indices[p] < g1:  # the last tile's g1 >= n_genes takes the rest
                    w = row_of[indices[p]]
                    if w >= 0:
                        v = np.float64(data[p])
                        for j in range(k):
                            acc[r - r0, j] += v * Wd[w, j]
                    p += 1
                cur[r - r0] = p
        for r in range(r0, r1):
            for j in range(k):
                out[r, j] += acc[r - r0, j]


class DenseRowTable:
    """``W`` (genes x sets, optionally ``diag(gene_scale) @ W``) as dense float64 rows of the genes in any set.

    ``X @ W`` adds ``v * W[g, :]`` for every stored value ``v`` of gene ``g`` (float64, the row's stored
    order). Rows of ``W`` are visited in tiles of :attr:`TILE_GENES` genes (a tile of 30 sets is ~1 MiB,
    the size of one core's L2 cache here) by blocks of :attr:`ROWS_PER_BLOCK` cells.
    """

    TILE_GENES = 4096
    ROWS_PER_BLOCK = 256

    def __init__(self, W: sp.spmatrix, gene_scale: np.ndarray | None = None):
        W = sp.csr_matrix(W, dtype=np.float64)
        if gene_scale is not None:
            W = sp.csr_matrix(sp.diags(np.asarray(gene_scale, dtype=np.float64)) @ W)
        W.sum_duplicates()
        used = np.flatnonzero(np.diff(W.indptr) > 0)
        self.row_of = np.full(W.shape[0], -1, dtype=np.int64)
        self.row_of[used] = np.arange(len(used))
        self.Wd = np.ascontiguousarray(W[used].toarray())

    def add_into(self, indptr, indices, data, start: int, end: int, out: np.ndarray) -> None:
        """``out[r] += X[start + r] @ W`` for ``r < end - start``."""
        if end > start:
            _dense_row_sums(
                indptr, indices, data, start, end, self.Wd, self.row_of, self.TILE_GENES, self.ROWS_PER_BLOCK, out
            )


@numba.njit(parallel=True, cache=True)
def _class_sums(indptr, indices, data, start, end, class_of, gene_scale, use_scale, T, rows_per_block, out):
    n = end - start
    n_classes, k = T.shape
    n_blocks = (n + rows_per_block - 1) // rows_per_block
    for blk in numba.prange(n_blocks):
        r0 = blk * rows_per_block
        r1 = min(n, r0 + rows_per_block)
        acc = np.zeros((r1 - r0, n_classes), dtype=np.float64)
        for r in range(r0, r1):  # one add per stored value: into its gene's class (the last: genes in no set)
            for p in range(indptr[start + r], indptr[start + r + 1]):
                g = indices[p]
                v = np.float64(data[p])
                if use_scale:
                    v *= gene_scale[g]
                acc[r - r0, class_of[g]] += v
        for r in range(r0, r1):  # then each class sum into the sets, with the class's weights
            for c in range(n_classes - 1):
                a = acc[r - r0, c]
                if a != 0.0:
                    for j in range(k):
                        out[r, j] += a * T[c, j]


class ClassTable:
    """``W`` (genes x sets) by *classes*: genes whose rows of ``W`` are identical share a class.

    ``X @ diag(gene_scale) @ W = (X_scaled @ C) @ T`` with ``C`` the gene -> class indicator and ``T``
    the classes' rows of ``W``. A cell's values are summed per class (one add per stored value, float64,
    the row's order), then each class sum is spread into the sets. Fast where there are few classes and
    each gene is in many sets (``expected``: all genes of an expression bin carry the same weights, so
    ~600 classes for 30 signatures x 25 bins, against ~10 code memberships per gene). Cells are taken
    in blocks of ``2**18 // n_classes`` (64 to 1,024; the block's class sums stay within ~2 MiB).
    """

    def __init__(self, W: sp.spmatrix, gene_scale: np.ndarray | None = None, *, classes=None):
        rows, class_of = classes if classes is not None else gene_classes(W)
        nonzero = rows.any(axis=1)
        order = np.concatenate([np.flatnonzero(nonzero), np.flatnonzero(~nonzero)])  # the zero row last
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        T = rows[order]
        if nonzero.all():  # no gene outside every set: still one (empty) last class
            T = np.vstack([T, np.zeros((1, T.shape[1]))])
        self.T = np.ascontiguousarray(T, dtype=np.float64)
        self.rows_per_block = int(np.clip(2**18 // len(self.T), 64, 1024))
        self.class_of = rank[class_of].astype(np.int64)
        self.use_scale = gene_scale is not None
        self.gene_scale = (
            np.asarray(gene_scale, dtype=np.float64) if gene_scale is not None else np.ones(1, dtype=np.float64)
        )

    def add_into(self, indptr, indices, data, start: int, end: int, out: np.ndarray) -> None:
        """``out[r] += X[start + r] @ W`` for ``r < end - start``."""
        if end > start:
            _class_sums(
                indptr,
                indices,
                data,
                start,
                end,
                self.class_of,
                self.gene_scale,
                self.use_scale,
                self.T,
                self.rows_per_block,
                out,
            )


def gene_classes(W: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, class_of)``: the distinct rows of ``W`` (classes x sets) and each gene's class."""
    dense = np.ascontiguousarray(sp.csr_matrix(W, dtype=np.float64).toarray())
    if dense.shape[1] == 0:
        return np.zeros((1 if len(dense) else 0, 0)), np.zeros(len(dense), dtype=np.int64)
    # each row's bytes as one value: a 1-d sort, ~10x faster than np.unique(axis=0) (bitwise equality:
    # a -0.0 would only make one more class, never a wrong one)
    keys = dense.view(np.dtype((np.void, dense.dtype.itemsize * dense.shape[1]))).ravel()
    _, first, class_of = np.unique(keys, return_index=True, return_inverse=True)
    return dense[first], np.asarray(class_of).ravel()


CLASS_MAX = 2048


DENSE_MAX_SETS = 256


def prefers_dense_rows(codes: CodeTable, n_sets: int) -> bool:
    """Whether :class:`DenseRowTable` beats ``codes`` (the code table of a genes x ``n_sets`` ``W``),
    judged from the table's shape alone.

    Measured on 50,000 cells x 20,000 genes, 30 sets (2 threads): a code table costs about 0.4 s per
    code membership per gene (scanpy's shared controls: 1.2 memberships, 0.47 s; Seurat's per-signature
    controls: 5.3, 2.5 s; ``expected``: 10.3, 1.5 s), dense rows 0.55-0.8 s for 30 sets, growing with
    the number of sets. Dense rows are used from ``1 + n_sets / 15`` code memberships per gene, for at
    most :data:`DENSE_MAX_SETS` sets.
    """
    n_genes = codes.lk_ptr.shape[0] - 1
    if n_sets > DENSE_MAX_SETS or n_genes == 0:
        return False
    return codes.lk_code.shape[0] / n_genes >= 1 + n_sets / 15


def linear_table(W: sp.spmatrix, gene_scale: np.ndarray | None = None) -> CodeTable | ClassTable | DenseRowTable:
    """The kernel table for ``X @ diag(gene_scale) @ W``, chosen from ``W``'s shape alone (never from timings).

    Kernel seconds for 30 sets on 50,000 cells x 20,000 genes (97M stored values, 2 threads), codes /
    classes / dense rows: mean 0.08 / 0.15 / -, zmean 0.13 / 0.22 / -, scanpy 0.43 / 0.26 / 0.6,
    expected 1.46 / 0.17 / 0.64, seurat 2.5 / 1.9 / 0.6. So: codes where genes average under one code
    membership (only the few genes in a set are touched); classes where ``W`` has at most
    :data:`CLASS_MAX` distinct gene rows; dense rows where :func:`prefers_dense_rows`; else codes.
    """
    codes = CodeTable(W, gene_scale)
    n_genes, n_sets = W.shape
    if n_genes == 0 or codes.lk_code.shape[0] / n_genes < 1 or n_sets > DENSE_MAX_SETS:
        return codes
    classes = gene_classes(W)
    if len(classes[0]) <= CLASS_MAX:
        return ClassTable(W, gene_scale, classes=classes)
    if prefers_dense_rows(codes, n_sets):
        return DenseRowTable(W, gene_scale)
    return codes


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


@numba.njit(cache=True)
def fold_column_sums(indptr, indices, data, acc):
    """``acc[g] += x`` over the stored values in row order, in ``acc``'s dtype: scipy's ``ones @ X``
    (float32 data summed in float32) or the float64 ``bincount`` order, continued across row chunks."""
    for p in range(indptr[0], indptr[-1]):
        acc[indices[p]] += data[p]


@numba.njit(cache=True)
def csr_chunk_moments(indptr, indices, data, n_rows, n_genes):
    """Per gene over a block of rows: stored entries, sum, and squared deviations from the block's
    mean (the ``n_rows - nnz`` implicit zeros included), float64; blocks combine by Chan et al.'s update."""
    nnz = np.zeros(n_genes, dtype=np.int64)
    s = np.zeros(n_genes)
    for p in range(indptr[0], indptr[-1]):
        nnz[indices[p]] += 1
        s[indices[p]] += np.float64(data[p])
    mean = s / max(n_rows, 1)
    ss = np.zeros(n_genes)
    for p in range(indptr[0], indptr[-1]):
        d = np.float64(data[p]) - mean[indices[p]]
        ss[indices[p]] += d * d
    for g in range(n_genes):
        ss[g] += (n_rows - nnz[g]) * mean[g] * mean[g]
    return nnz, s, ss


#: the fixed-point grid of :func:`exact_column_sums`: each stored value is truncated to a multiple of
#: ``2**-EXACT_BITS`` and the multiples are summed as integers
EXACT_BITS = 40
#: values at or above this magnitude (or not finite) cannot be summed exactly on that grid in int64
EXACT_MAX = 2.0**22
_LOW = np.int64(0xFFFFFFFF)


#: stored values per segment of :func:`_exact_sums_rows`, and the magnitude below which a segment's
#: int64 sums cannot overflow (2**18 values of |r| < 2**44 sum to < 2**62)
_EXACT_SEGMENT = 1 << 18
_EXACT_FAST_MAX = 16.0


@numba.njit(cache=True)
def _exact_sums_rows(indptr, indices, data, start, end, hi, lo):
    """Add rows ``start:end`` into ``hi``/``lo`` (see :func:`exact_column_sums`); returns the number
    of values that cannot be summed (not finite, or ``|x| >= EXACT_MAX``), which are left out.

    Segment by segment of stored values: scaled values go into one int64 per gene, moved into
    ``hi``/``lo`` at the end of the segment. A segment holding a value of magnitude >= 16 (or not
    finite), whose int64 sums could overflow, is discarded and redone value by value straight into
    ``hi``/``lo``."""
    scale = 2.0**EXACT_BITS
    acc = np.zeros(hi.shape[0], dtype=np.int64)
    last = indptr[end]
    bad = 0
    for p0 in range(indptr[start], last, _EXACT_SEGMENT):
        p1 = min(p0 + _EXACT_SEGMENT, last)
        big = 0
        for p in range(p0, p1):
            v = np.float64(data[p])
            big += not abs(v) < _EXACT_FAST_MAX
            acc[indices[p]] += np.int64(v * scale)
        if big:
            acc[:] = 0
            for p in range(p0, p1):
                v = np.float64(data[p])
                if not abs(v) < EXACT_MAX:
                    bad += 1
                    continue
                r = np.int64(v * scale)
                hi[indices[p]] += r >> 32
                lo[indices[p]] += r & _LOW
            continue
        for g in range(acc.shape[0]):
            if acc[g] != 0:
                hi[g] += acc[g] >> 32
                lo[g] += acc[g] & _LOW
                acc[g] = 0
    return bad


@numba.njit(parallel=True, cache=True)
def _exact_sums_parallel(indptr, indices, data, start, end, n_genes, n_threads):
    n = end - start
    n_blocks = min(max(n, 1), n_threads)
    hi = np.zeros((n_blocks, n_genes), dtype=np.int64)
    lo = np.zeros((n_blocks, n_genes), dtype=np.int64)
    bad = np.zeros(n_blocks, dtype=np.int64)
    for b in numba.prange(n_blocks):
        bad[b] = _exact_sums_rows(
            indptr, indices, data, start + n * b // n_blocks, start + n * (b + 1) // n_blocks, hi[b], lo[b]
        )
    return hi.sum(axis=0), lo.sum(axis=0), bad.sum()


def exact_column_sums(
    indptr, indices, data, start: int, end: int, n_genes: int, *, n_threads: int = 1
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-gene sums of rows ``start:end`` of a CSR matrix that do not depend on the order of the
    values: ``(hi, lo, n_bad)``, int64.

    Each stored value ``x`` becomes the integer ``r = trunc(x * 2**40)``, a property of the value
    alone (exact for float32 values of magnitude >= 2**-16; smaller ones lose < 2**-40), and the
    integers are added exactly, kept as a high and a low 32-bit part (``sum = hi * 2**32 + lo``;
    an int64 per gene collects a segment of 2**18 values first when all are below 16 in magnitude,
    as log-expression is). Integer addition is associative, so any chunking of the rows, any thread
    count and any order gives the same sums, bit for bit; partial sums of chunks are added with
    :func:`add_exact`. (A float32 sum of ``n`` values in row order is off by up to ``~n * 6e-8``
    relative.) ``n_bad`` counts values this cannot represent (not finite, or ``|x| >= 2**22``),
    left out of the sums; the caller refuses them (:func:`exact_means`).
    """
    if n_threads > 1:
        hi, lo, bad = _exact_sums_parallel(indptr, indices, data, start, end, n_genes, n_threads)
        return hi, lo, int(bad)
    hi = np.zeros(n_genes, dtype=np.int64)
    lo = np.zeros(n_genes, dtype=np.int64)
    bad = _exact_sums_rows(indptr, indices, data, start, end, hi, lo)
    return hi, lo, int(bad)


def add_exact(a: tuple[np.ndarray, np.ndarray, int], b: tuple[np.ndarray, np.ndarray, int]):
    """The sums of two row ranges from their :func:`exact_column_sums` (exact: integer addition)."""
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def exact_means(sums: tuple[np.ndarray, np.ndarray, int], n_rows: int, *, where: str = "X") -> np.ndarray:
    """Gene means (float64) from :func:`exact_column_sums` over ``n_rows`` rows; a deterministic function
    of the exact integer totals. Raises ``ValueError`` if any value could not be summed exactly."""
    hi, lo, bad = sums
    if bad:
        raise ValueError(
            f"{where} holds {bad} values that are not finite or of magnitude >= {EXACT_MAX:.0f}: gene "
            "means for expression bins need finite, log-normalised expression; normalise the data "
            "(sc.pp.normalize_total, sc.pp.log1p) or remove the non-finite values"
        )
    hi = hi + (lo >> 32)
    lo = lo & _LOW
    total = hi * 2.0 ** (32 - EXACT_BITS) + lo * 2.0**-EXACT_BITS
    return total / max(int(n_rows), 1)
