"""The dask registration of the driver: a matrix larger than memory, as a dask array of CSR row chunks.

:func:`sasp_atlas.engines.score` and :func:`sasp_atlas.engines.celltype_null` read every matrix
through :func:`~sasp_atlas.engines._driver.matrix_context`; for a dask array it returns a
:class:`DaskMatrixContext` (registered here, so dask is imported only when a dask array is seen).
The context gives each method's ``prepare`` the same gene statistics as in memory and runs the
same plans and kernels chunk by chunk; this module holds only the reading and the scheduling. The
methods whose scores depend on all cells (``MethodMeta.all_cells``: ``ssgsea``, ``gsva``) are
refused with an error naming them; every other method (:data:`~sasp_atlas.engines.DASK_METHODS`)
runs in two passes over the row chunks:

1. **Reduction** (only the statistics the method declares, ``MethodMeta.gene_statistics``, each
   chunk read once), computed so that they equal the in-memory ones *bit for bit* where a rank
   decides something (the expression bins):

   * ``exact_gene_means`` (``expected``, and its null): fixed-point integer sums per chunk
     (:func:`._linear.exact_column_sums`), added exactly in any order, so the chunks are summed in
     parallel (each task reads its own chunk) and the means equal the in-memory ones bit for bit
     for any chunking.
   * ``scanpy_gene_means`` (``scanpy``; the null's random sets): scipy sums ``X.sum(axis=0)`` of float32 data
     in float32, row after row (``ones @ X``); the rounding of such a sum depends on the order,
     and a gene whose mean moves by one ulp can cross a bin edge. So the sums are a *fold*: one
     small task per chunk, in row order, adds the chunk's values to the running float32 sums
     (:func:`._linear.fold_column_sums`) exactly as scipy does, so the bins are the in-memory bins
     for any chunking.
   * ``seurat_gene_averages``: float64 sums entry by entry in row order (``bincount`` in memory),
     the same fold in float64.
   * ``gene_mean_sd`` (``zmean``; no ranks involved): per-chunk count, sum and sum of squared
     deviations from the chunk mean, combined in chunk order (Chan et al. 1979, "Updating formulae
     and a pairwise algorithm for computing sample variances"), float64; equal to the in-memory
     values to ~1e-15 relative.
   * ``column_nnz`` (``aucell``): stored entries per gene (integers, exact).

   The fold is serial: each fold task reads its own chunk (for lazily read files), so at most one
   chunk per fold is in memory; the other statistics are parallel per-chunk tasks, combined in a
   tree. Contexts of the same array (same dask name) share what has been reduced, so scoring and
   the null of one run read the chunks for their statistics once
   (:func:`~sasp_atlas.engines.reduce_statistics` reduces both in one pass).

2. **Scores**: the method's plan over the row chunks (one numba thread per task: the parallelism is
   dask's), cells x signatures float64, gathered on the client (8 bytes per cell and signature:
   2.4 GB for 10M cells x 30 signatures). For lazily read chunks each task reads its own chunk and
   returns only its scores, so no loaded chunk waits in a worker's memory (or spills) between a
   read task and a score task; other dask arrays are scored with ``map_blocks``. Group means (the
   null) are per-chunk pseudobulk gene sums (linear methods) or per-chunk score sums, never the
   cells' scores.

Chunks must hold whole rows (all genes); chunks split along the genes are rechunked (logged). A
chunk that cannot be read or holds impossible values (a damaged or truncated zarr/h5ad chunk,
NaN/inf) raises :class:`~sasp_atlas.data.lazy.CorruptChunkError` naming the file, the array, the
chunk and the fix: never a silent NaN. Lazily read stores: :func:`sasp_atlas.data.lazy.read_lazy`
(``.zarr`` or ``.h5ad`` written by anndata; obs and var in memory, the matrix as a dask array whose
tasks open the file themselves, so they run on any worker that sees the path).
"""

from __future__ import annotations

import logging
import pickle
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import cloudpickle
import dask
import dask.array as da
import numba
import numpy as np
import scipy.sparse as sp
from distributed import default_client
from distributed import progress as show_progress
from rich.console import Console

from ._base import LinearPlan, MethodMeta, Plan
from ._driver import CHUNK_BYTES, MatrixContext, matrix_context
from ._linear import add_exact, csr_chunk_moments, csr_group_gene_sums, exact_column_sums, exact_means, fold_column_sums
from ._registry import ALL_CELL_METHODS, DASK_METHODS

log = logging.getLogger(__name__)

__all__ = ["DaskMatrixContext", "WORKER_ENVIRON", "local_worker_config"]

#: the reduction that gives each gene statistic of :class:`~sasp_atlas.engines.MatrixContext`
_KIND_OF = {
    "scanpy_gene_means": "f32",
    "exact_gene_means": "exact",
    "seurat_gene_averages": "f64",
    "column_nnz": "moments",
    "gene_mean_sd": "moments",
}


#: environment of the worker processes a LocalCluster starts (``local_worker_config``), measured on
#: the scale benchmark (5,000 cells = 61 MB of CSR per read, 2 cores):
#:
#: * one zarr decoding thread: zarr decodes the pieces of a chunk on a thread pool of its own, so
#:   a 1-thread worker used more than one core and two workers competed for the two;
#: * glibc's mmap and trim thresholds at 256 MiB: dask's default (``MALLOC_TRIM_THRESHOLD_=65536``)
#:   returns every freed chunk buffer to the system, so each read page-faulted its ~150 MB afresh
#:   (37,000 minor faults per read; 0.137 s per read in a worker against 0.081 s in a plain
#:   process); with these, 12 faults and 0.084 s, and a worker's resident memory stays ~0.6 GB;
#: * one malloc arena per process, so freed buffers of other threads are reused too.
WORKER_ENVIRON = {
    "ZARR_THREADING__MAX_WORKERS": "1",
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": str(256 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
}


def local_worker_config() -> dict[str, str]:
    """``dask.config`` settings for a ``LocalCluster`` whose workers score lazily read chunks (one
    decoding thread per worker, see :data:`WORKER_ENVIRON`); use as ``with dask.config.set(...)``
    around ``LocalCluster(...)``. On an existing cluster set the same environment variables on the
    workers (dask-jobqueue ``job_script_prologue``, the Kubernetes pod spec)."""
    return {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENVIRON.items()}


# --------------------------------------------------------------------------- reading chunks
def _as_csr(block, n_vars: int) -> sp.csr_matrix:
    if sp.issparse(block):
        block = block.tocsr() if block.format != "csr" else block
    else:
        block = sp.csr_matrix(np.asarray(block))
    if block.shape[1] != n_vars:
        raise ValueError(f"a chunk has {block.shape[1]} columns, not {n_vars}: chunks must hold whole rows")
    return block


def _fold_step(acc: dict, block, n_vars: int, kinds: tuple[str, ...]) -> dict:
    X = _as_csr(block, n_vars)
    if X.shape[0] == 0:
        return acc
    acc = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in acc.items()}  # add_exact makes new arrays
    if "f32" in kinds:
        if acc["f32"] is None:  # the accumulator takes the data's dtype, as scipy's sum does
            acc["f32"] = np.zeros(n_vars, dtype=_sum_dtype(X.dtype))
        fold_column_sums(X.indptr, X.indices, X.data, acc["f32"])
    if "f64" in kinds:
        fold_column_sums(X.indptr, X.indices, X.data, acc["f64"])
    if "exact" in kinds:  # the exact sums ride along the chain (integer addition: any order is exact)
        part = exact_column_sums(X.indptr, X.indices, X.data, 0, X.shape[0], n_vars)
        acc["exact"] = part if acc.get("exact") is None else add_exact(acc["exact"], part)
    return acc


def _read_own(recipe: bytes):
    """The chunk a pickled one-chunk graph (:func:`_block_recipes`) reads, computed in this task."""
    return pickle.loads(recipe).compute(scheduler="synchronous")


def _fold_own_step(acc: dict, recipe: bytes, n_vars: int, kinds: tuple[str, ...]) -> dict:
    return _fold_step(acc, _read_own(recipe), n_vars, kinds)


def _exact_step(block, n_vars: int):
    X = _as_csr(block, n_vars)
    return exact_column_sums(X.indptr, X.indices, X.data, 0, X.shape[0], n_vars)


def _exact_own_step(recipe: bytes, n_vars: int):
    return _exact_step(_read_own(recipe), n_vars)


def _tree(parts: list, combine):
    """Pairwise reduction of delayed ``parts`` with ``combine`` (depth log2(n), small results)."""
    step = dask.delayed(combine, pure=True)
    while len(parts) > 1:
        parts = [step(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    return parts[0]


#: a chunk whose task graph pickles larger than this (in-memory data inside the graph) is passed to the
#: fold as a computed dependency instead of a recipe
MAX_RECIPE_BYTES = 1 << 20


def _block_recipes(X) -> list[bytes] | None:
    """Each row chunk's own task graph, pickled (a lazily read chunk: a few hundred bytes), or ``None``
    if a chunk's graph carries data (e.g. ``da.from_array`` of an in-memory matrix)."""
    recipes = []
    for k in range(X.numblocks[0]):
        blob = cloudpickle.dumps(X.blocks[k])
        if len(blob) > MAX_RECIPE_BYTES:
            return None
        recipes.append(blob)
    return recipes


def _sum_dtype(dtype) -> np.dtype:
    """scipy's ``get_sum_dtype``: integers sum in the platform integer, floats in their own dtype."""
    dtype = np.dtype(dtype)
    if dtype.kind == "u" and np.can_cast(dtype, np.uint64):
        return np.dtype(np.uint64)
    if np.issubdtype(dtype, np.integer):
        return np.dtype(np.int64)
    return dtype


def _moments_step(block, n_vars: int):
    X = _as_csr(block, n_vars)
    nnz, s, ss = csr_chunk_moments(X.indptr, X.indices, X.data, X.shape[0], n_vars)
    return X.shape[0], nnz, s, ss


def _moments_own_step(recipe: bytes, n_vars: int):
    return _moments_step(_read_own(recipe), n_vars)


def _combine_moments(parts, n_vars: int):
    """Chan et al.'s pairwise update over the chunks, in chunk order: ``(n, nnz, sum, M2)``."""
    n, nnz, s, m2 = 0, np.zeros(n_vars, dtype=np.int64), np.zeros(n_vars), np.zeros(n_vars)
    for nb, nnz_b, s_b, m2_b in parts:
        if nb == 0:
            continue
        if n:
            delta = s_b / nb - s / n
            m2 = m2 + m2_b + delta**2 * (n * nb / (n + nb))
        else:
            m2 = m2_b.copy()
        n, nnz, s = n + nb, nnz + nnz_b, s + s_b
    return n, nnz, s, m2


def _score_block(block, plan, n_vars: int, n_sets: int, threads: int):
    X = _as_csr(block, n_vars)
    out = np.zeros((X.shape[0], n_sets), dtype=np.float64)
    if X.shape[0]:
        before = numba.get_num_threads()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        try:
            plan.compute(X.indptr, X.indices, X.data, 0, X.shape[0], out)
        finally:
            numba.set_num_threads(before)
    return out


def _score_own_block(recipe: bytes, plan, n_vars: int, n_sets: int, threads: int):
    return _score_block(_read_own(recipe), plan, n_vars, n_sets, threads)


def _group_gene_sums_block(block, codes_block, n_groups: int, n_vars: int):
    X = _as_csr(block, n_vars)
    codes = np.asarray(codes_block, dtype=np.int64).ravel()
    out = csr_group_gene_sums(X.indptr, X.indices, X.data, 0, X.shape[0], codes, n_groups, n_vars, 1)
    return out[None, :, :]


def _group_score_sums_block(block, codes_block, plan, n_groups: int, n_vars: int):
    X = _as_csr(block, n_vars)
    codes = np.asarray(codes_block, dtype=np.int64).ravel()
    sums = np.zeros((n_groups, plan.n_sets))
    step = max(1, CHUNK_BYTES // (8 * max(plan.n_sets, 1)))
    for r0 in range(0, X.shape[0], step):
        r1 = min(r0 + step, X.shape[0])
        chunk = np.zeros((r1 - r0, plan.n_sets))
        plan.compute(X.indptr, X.indices, X.data, r0, r1, chunk)
        c = codes[r0:r1]
        keep = c >= 0
        np.add.at(sums, c[keep], chunk[keep])
    return sums[None]


def _client():
    try:
        return default_client()
    except ValueError:  # no client: the local scheduler
        return None


# --------------------------------------------------------------------------- context
#: the reduced gene statistics of the last few dask arrays, by array name. A dask array's name is a
#: token of its graph (a lazily read file's path, array, row chunks and store stamp, then each
#: selection or transform), so it names the values; scoring and the null of one run then reduce the
#: chunks once. A file written again has a new stamp, so a new name (:func:`~sasp_atlas.data.lazy.store_stamp`).
_STATS_BY_NAME: OrderedDict[str, dict[str, Any]] = OrderedDict()
_STATS_KEPT = 8


def _stats_for(name: str) -> dict[str, Any]:
    """The statistics dict of the array ``name`` (new, or kept from an earlier context), most recent last."""
    stats = _STATS_BY_NAME.pop(name, None)
    _STATS_BY_NAME[name] = stats = {} if stats is None else stats
    while len(_STATS_BY_NAME) > _STATS_KEPT:
        _STATS_BY_NAME.popitem(last=False)
    return stats


class DaskMatrixContext(MatrixContext):
    """:class:`MatrixContext` of a dask array of row chunks: the gene statistics come from
    :meth:`reduce` (one pass over the chunks), not from an in-memory matrix; scores and group sums
    are computed chunk by chunk. Contexts of the same array (same dask name) share what has been
    reduced (:data:`_STATS_BY_NAME`). ``progress``: a status line for the reduction and
    ``distributed.progress`` bars for the scores; ``compute_kwargs``: passed to ``dask.compute``.

    ``row_blocks`` is refused: a method that reads the whole matrix on the client has no place here.
    """

    def __init__(self, X, *, progress: bool = False, compute_kwargs: Mapping[str, Any] | None = None):
        if X.ndim != 2:
            raise ValueError(f"X must be 2-d, not {X.ndim}-d")
        if X.numblocks[1] != 1:
            log.warning("X is chunked along the genes (%d chunks): rechunking to whole rows", X.numblocks[1])
            X = X.rechunk({1: -1})
        self.X = X
        self.n_obs, self.n_vars = (int(n) for n in X.shape)
        self.is_csr = True
        self._stats: dict[str, Any] = _stats_for(X.name)
        self._progress = progress
        self._compute_kwargs = dict(compute_kwargs or {})

    def row_blocks(self, start: int = 0, end: int | None = None, max_rows: int | None = None):
        raise TypeError(
            "a dask-backed matrix is not read on the client, only its gene statistics and scores chunk "
            f"by chunk: the method must read the context's statistics (methods {', '.join(DASK_METHODS)})"
        )

    def check_method(self, meta: MethodMeta) -> None:
        """Refuse a method that cannot be computed chunk by chunk (naming it and the alternatives)."""
        if meta.all_cells:
            raise ValueError(
                f"method {meta.name!r} depends on all cells at once ({' and '.join(ALL_CELL_METHODS)} "
                "rank or estimate densities across the whole matrix), so it cannot score a dask-backed "
                f"matrix chunk by chunk; use one of {', '.join(DASK_METHODS)}, or load the data into memory"
            )

    def prefetch(self, statistics: Sequence[str]) -> None:
        """Reduce the gene ``statistics`` in one pass over the chunks (names of the context's properties;
        a name without a reduction here is computed when first read)."""
        kinds = tuple(dict.fromkeys(_KIND_OF[name] for name in statistics if name in _KIND_OF))
        if not self._progress:
            self.reduce(kinds)
            return
        with Console(stderr=True).status("gene statistics: reduction pass over the chunks"):
            self.reduce(kinds)

    def reduce(self, kinds: Sequence[str]) -> None:
        """Compute the statistics ``kinds`` (``"f32"``: scipy-order sums; ``"f64"``: float64 sums in row
        order; ``"exact"``: fixed-point integer sums; ``"moments"``: count, sum, squared deviations) in
        one pass over the chunks. With a fold (``f32``/``f64``), the exact sums are taken by the fold's
        tasks (one read per chunk; serial, like the fold); alone, by parallel per-chunk tasks."""
        kinds = tuple(k for k in dict.fromkeys(kinds) if k not in self._stats)
        if not kinds:
            return
        blocks = self.X.to_delayed().ravel()
        recipes = self._recipes
        todo: dict[str, Any] = {}
        fold = tuple(k for k in kinds if k in ("f32", "f64"))
        # a serial fold reads every chunk anyway: it also takes the exact sums, so they cost no second read
        exact_in_fold = bool(fold) and "exact" in kinds
        if exact_in_fold:
            fold = (*fold, "exact")
        if fold:
            acc: Any = {"f32": None, "f64": np.zeros(self.n_vars), "exact": None}
            if recipes is not None:
                # each fold task reads its own chunk: chunks loaded by parallel tasks would wait in
                # memory (and spill) for the serial chain, whose step can only run when its worker's
                # thread is free of the next load
                step = dask.delayed(_fold_own_step, pure=True)
                for r in recipes:
                    acc = step(acc, r, self.n_vars, fold)
            else:
                step = dask.delayed(_fold_step, pure=True)
                for b in blocks:
                    acc = step(acc, b, self.n_vars, fold)
            todo["fold"] = acc

        # per-chunk statistics: each task reads its own chunk where the chunk is lazily read (a loaded
        # chunk handed from a read task to a statistics task can wait, and spill, in between); only the
        # small results travel
        def per_chunk(step, own_step) -> list:
            if recipes is not None:
                return [dask.delayed(own_step, pure=True)(r, self.n_vars) for r in recipes]
            return [dask.delayed(step, pure=True)(b, self.n_vars) for b in blocks]

        if "exact" in kinds and not exact_in_fold:
            todo["exact"] = _tree(per_chunk(_exact_step, _exact_own_step), add_exact)
        if "moments" in kinds:
            todo["moments"] = per_chunk(_moments_step, _moments_own_step)
        (done,) = dask.compute(todo, **self._compute_kwargs)
        if "fold" in done:
            if "f32" in fold:
                f32 = done["fold"]["f32"]
                self._stats["f32"] = f32 if f32 is not None else np.zeros(self.n_vars)
            if "f64" in fold:
                self._stats["f64"] = done["fold"]["f64"]
            if exact_in_fold:
                exact = done["fold"]["exact"]
                self._stats["exact"] = (
                    exact
                    if exact is not None
                    else (np.zeros(self.n_vars, np.int64), np.zeros(self.n_vars, np.int64), 0)
                )
        if "exact" in done:
            self._stats["exact"] = done["exact"]
        if "moments" in done:
            self._stats["moments"] = _combine_moments(done["moments"], self.n_vars)

    @cached_property
    def _recipes(self) -> list[bytes] | None:
        """:func:`_block_recipes` of ``X``, made once for the reduction and the scores."""
        return _block_recipes(self.X)

    def _stat(self, kind: str):
        self.reduce((kind,))
        return self._stats[kind]

    @cached_property
    def scanpy_gene_means(self) -> np.ndarray:
        """As :attr:`MatrixContext.scanpy_gene_means`: scipy's float32 (data dtype) sums, in row order."""
        return np.asarray(self._stat("f32"), dtype=np.float64) / self.n_obs

    @cached_property
    def exact_gene_means(self) -> np.ndarray:
        """As :attr:`MatrixContext.exact_gene_means`: per-chunk integer sums, added in a tree."""
        return exact_means(self._stat("exact"), self.n_obs)

    @cached_property
    def seurat_gene_averages(self) -> np.ndarray:
        """As :func:`sasp_atlas.engines._seurat.gene_averages`: float64 sums entry by entry, in row order."""
        return self._stat("f64") / self.n_obs

    @cached_property
    def _first_moments(self) -> tuple[np.ndarray, np.ndarray]:
        _, nnz, s, _ = self._stat("moments")
        return nnz, s

    @cached_property
    def gene_mean_sd(self) -> tuple[np.ndarray, np.ndarray]:
        n, _, s, m2 = self._stat("moments")
        return s / max(n, 1), np.sqrt(m2 / max(n - 1, 1))

    def lazy_scores(self, plan: Plan, *, threads_per_task: int = 1):
        """The lazy cells x sets float64 dask array of ``plan`` over the chunks of ``X``."""
        inner = getattr(plan, "inner", plan)  # a SignedPlan's parts plan
        if isinstance(inner, LinearPlan):  # build the code table once here, not in every task
            inner.compute(
                np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), 0, 0, np.zeros((0, inner.n_sets))
            )
        recipes = self._recipes
        if recipes is None:  # chunks that carry their data: map over them
            return self.X.map_blocks(
                _score_block,
                plan,
                self.n_vars,
                plan.n_sets,
                threads_per_task,
                dtype=np.float64,
                chunks=(self.X.chunks[0], (plan.n_sets,)),
                meta=np.empty((0, 0), dtype=np.float64),
            )
        # lazily read chunks: each task reads its own chunk and returns only its scores, so a loaded chunk is
        # never a result the scheduler holds (or spills) between a read task and a score task; the plan is
        # one key of the graph, sent once to each worker
        shared_plan = dask.delayed(plan, pure=False)
        step = dask.delayed(_score_own_block, pure=True)
        parts = [
            da.from_delayed(
                step(r, shared_plan, self.n_vars, plan.n_sets, threads_per_task),
                shape=(rows, plan.n_sets),
                dtype=np.float64,
            )
            for r, rows in zip(recipes, self.X.chunks[0], strict=True)
        ]
        return da.concatenate(parts, axis=0)

    def scores(self, plan: Plan) -> np.ndarray:
        """All cells x all sets of ``plan`` (float64), computed chunk by chunk and gathered here."""
        lazy = self.lazy_scores(plan)
        client = _client() if self._progress else None
        if client is None:
            return lazy.compute(**self._compute_kwargs)
        future = client.compute(lazy)
        show_progress(future)
        return future.result()

    def group_gene_sums(self, codes: np.ndarray, n_groups: int, weights: sp.spmatrix | None = None) -> np.ndarray:
        """As :meth:`MatrixContext.group_gene_sums`: one task per chunk (:func:`._linear.csr_group_gene_sums`),
        the chunks' sums added by dask, then times ``weights``."""
        X = self.X
        codes = da.from_array(np.asarray(codes, dtype=np.int64)[:, None], chunks=(X.chunks[0], 1))
        parts = da.map_blocks(
            _group_gene_sums_block,
            X,
            codes,
            n_groups,
            self.n_vars,
            dtype=np.float64,
            chunks=((1,) * X.numblocks[0], (n_groups,), (self.n_vars,)),
            new_axis=2,
            meta=np.empty((0, 0, 0)),
        )
        G = parts.sum(axis=0).compute(**self._compute_kwargs)
        return G if weights is None else np.asarray((weights.T @ G.T).T)

    def group_score_sums(self, plan: Plan, codes: np.ndarray, n_groups: int) -> np.ndarray:
        """As :meth:`MatrixContext.group_score_sums`: per-chunk score sums (the scores never leave their task)."""
        c = da.from_array(np.asarray(codes, dtype=np.int64)[:, None], chunks=(self.X.chunks[0], 1))
        parts = da.map_blocks(
            _group_score_sums_block,
            self.X,
            c,
            plan,
            n_groups,
            self.n_vars,
            dtype=np.float64,
            chunks=((1,) * self.X.numblocks[0], (n_groups,), (plan.n_sets,)),
            new_axis=2,
            meta=np.empty((0, 0, 0)),
        )
        return parts.sum(axis=0).compute(**self._compute_kwargs)

    def backend_params(self) -> dict[str, Any]:
        return {"backend": "dask", "n_chunks": int(self.X.numblocks[0])}


@matrix_context.register(da.Array)
def _dask_context(X, *, progress: bool = False, compute_kwargs: Mapping[str, Any] | None = None) -> DaskMatrixContext:
    return DaskMatrixContext(X, progress=progress, compute_kwargs=compute_kwargs)
