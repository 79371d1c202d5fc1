"""Scoring a matrix larger than memory: a dask array of CSR row chunks, on dask.distributed or any scheduler.

The methods that score each cell on its own values plus per-gene statistics of the whole matrix
(``scanpy``, ``expected``, ``seurat``, ``aucell``, ``ucell``, ``mean``, ``zmean``; see
:data:`DASK_METHODS`) run in two passes over the row chunks, with the same plans and kernels as
in memory (:func:`sasp_atlas.engines.build_plan`, ``Plan.compute``):

1. **Reduction** (only what the method needs, each chunk read once): the gene statistics of
   :class:`~sasp_atlas.engines.MatrixContext`, computed so that they equal the in-memory ones
   *bit for bit* where a rank decides something (the expression bins):

   * ``exact_gene_means`` (``expected``, and its null): fixed-point integer sums per chunk
     (:func:`._linear.exact_column_sums`), added exactly in any order, so the chunks are summed in
     parallel (each task reads its own chunk) and the means equal the in-memory ones bit for bit
     for any chunking.
   * ``scanpy_gene_means`` (``scanpy``; the null's random sets): scipy sums ``X.sum(axis=0)`` of float32 data
     in float32, row after row (``ones @ X``); the rounding of such a sum depends on the order,
     and a gene whose mean moves by one ulp can cross a bin edge. So the sums are a *fold*: one
     small task per chunk, in row order, adds the chunk's values to the running float32 sums
     (:func:`_fold`) exactly as scipy does, so the bins are the in-memory bins for any chunking.
   * Seurat's gene averages: float64 sums entry by entry in row order (``np.add.at`` in memory),
     the same fold in float64.
   * ``zmean``'s gene mean and SD (no ranks involved): per-chunk count, sum and sum of squared
     deviations from the chunk mean, combined in chunk order (Chan et al. 1979, "Updating formulae
     and a pairwise algorithm for computing sample variances"), float64; equal to the in-memory
     values to ~1e-15 relative.
   * ``aucell``: stored entries per gene (integers, exact).

   The fold is serial: each fold task reads its own chunk (for lazily read files), so at most one
   chunk per fold is in memory; the other statistics are parallel per-chunk tasks, combined in a
   tree.

2. **Scores**: the method's plan over the row chunks (one numba thread per task: the parallelism is
   dask's), cells x signatures float64, gathered on the client (8 bytes per cell and signature:
   2.4 GB for 10M cells x 30 signatures). For lazily read chunks each task reads its own chunk and
   returns only its scores, so no loaded chunk waits in a worker's memory (or spills) between a
   read task and a score task; other dask arrays are scored with ``map_blocks``.

``ssgsea`` and ``gsva`` depend on all cells (GSVA's kernel CDF) or on every gene's rank: they are
refused with an error naming them. Chunks must hold whole rows (all genes); chunks split along the
genes are rechunked (logged). A chunk that cannot be read or holds impossible values (a damaged or
truncated zarr/h5ad chunk, NaN/inf) raises :class:`CorruptChunkError` naming the file, the array,
the chunk and the fix: never a silent NaN.

Lazily read stores: :func:`sasp_atlas.data.lazy.read_lazy` (``.zarr`` or ``.h5ad`` written by
anndata; obs and var in memory, the matrix as a dask array whose tasks open the file themselves,
so they run on any worker that sees the path), re-exported here.
"""

from __future__ import annotations

import logging
import pickle
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from functools import cached_property, wraps
from typing import Any

import cloudpickle
import dask
import dask.array as da
import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from distributed import default_client
from distributed import progress as show_progress
from rich.console import Console

from ..data.lazy import CorruptChunkError, read_csr_lazy, read_lazy
from ..genes import GeneSet, is_low_coverage, match_gene_sets, resolve_signatures
from . import _seurat
from ._base import LinearPlan
from ._driver import CHUNK_BYTES, MatrixContext, build_plan, group_codes
from ._driver import score as _score_in_memory
from ._linear import add_exact, csr_group_gene_sums, exact_column_sums, exact_means
from ._registry import get_method
from ._scanpy import bin_members, control_gene_plan, expression_bins
from .null import _signature_rng, draw_null_sets, null_table

log = logging.getLogger(__name__)

__all__ = [
    "ALL_CELL_METHODS",
    "DASK_METHODS",
    "CorruptChunkError",
    "DaskMatrixContext",
    "WORKER_ENVIRON",
    "celltype_null_dask",
    "group_gene_sums_dask",
    "group_means_dask",
    "is_dask_array",
    "local_worker_config",
    "read_csr_lazy",
    "read_lazy",
    "reduce_statistics",
    "score",
    "score_dask",
]

#: methods computed chunk by chunk (gene statistics from a reduction pass first)
DASK_METHODS = ("scanpy", "expected", "seurat", "aucell", "ucell", "mean", "zmean", "husi")
#: methods that need all cells at once (refused on a dask matrix)
ALL_CELL_METHODS = ("ssgsea", "gsva")
#: the gene statistics each method's ``prepare`` reads from the context
_NEEDS = {"scanpy": ("f32",), "expected": ("exact",), "seurat": ("f64",), "aucell": ("moments",), "ucell": (),
          "mean": (), "zmean": ("moments",), "husi": ()}


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
WORKER_ENVIRON = {"ZARR_THREADING__MAX_WORKERS": "1", "MALLOC_ARENA_MAX": "1",
                  "MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


def local_worker_config() -> dict[str, str]:
    """``dask.config`` settings for a ``LocalCluster`` whose workers score lazily read chunks (one
    decoding thread per worker, see :data:`WORKER_ENVIRON`); use as ``with dask.config.set(...)``
    around ``LocalCluster(...)``. On an existing cluster set the same environment variables on the
    workers (dask-jobqueue ``job_script_prologue``, the Kubernetes pod spec)."""
    return {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENVIRON.items()}


def is_dask_array(X) -> bool:
    """True if ``X`` is a ``dask.array.Array``."""
    return isinstance(X, da.Array)


# --------------------------------------------------------------------------- kernels
@numba.njit(cache=True)
def _fold_sums(indptr, indices, data, acc):
    """``acc[g] += x`` over the stored values in row order, in ``acc``'s dtype (scipy's ``ones @ X``
    for float32 data in float32; ``np.add.at`` order in float64)."""
    for p in range(indptr[0], indptr[-1]):
        acc[indices[p]] += data[p]


@numba.njit(cache=True)
def _chunk_moments(indptr, indices, data, n_rows, n_genes):
    """Per gene over a chunk: stored entries, sum, and squared deviations from the chunk mean (the
    ``n_rows - nnz`` implicit zeros included), float64."""
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
        _fold_sums(X.indptr, X.indices, X.data, acc["f32"])
    if "f64" in kinds:
        _fold_sums(X.indptr, X.indices, X.data, acc["f64"])
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
    nnz, s, ss = _chunk_moments(X.indptr, X.indices, X.data, X.shape[0], n_vars)
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
    :meth:`reduce` (one pass over the chunks), not from an in-memory matrix. Contexts of the same
    array (same dask name) share what has been reduced (:data:`_STATS_BY_NAME`).

    ``row_blocks`` is refused: a method that reads the whole matrix on the client has no place here.
    """

    def __init__(self, X, *, compute_kwargs: Mapping[str, Any] | None = None):
        if X.ndim != 2:
            raise ValueError(f"X must be 2-d, not {X.ndim}-d")
        if X.numblocks[1] != 1:
            log.warning("X is chunked along the genes (%d chunks): rechunking to whole rows", X.numblocks[1])
            X = X.rechunk({1: -1})
        self.X = X
        self.n_obs, self.n_vars = (int(n) for n in X.shape)
        self.is_csr = True
        self._stats: dict[str, Any] = _stats_for(X.name)
        self._compute_kwargs = dict(compute_kwargs or {})

    def row_blocks(self, start: int = 0, end: int | None = None, max_rows: int | None = None):
        raise TypeError("a dask-backed matrix is not read on the client: score it with sasp_atlas.engines.score_dask "
                        f"(methods {', '.join(DASK_METHODS)})")

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
                self._stats["exact"] = exact if exact is not None else \
                    (np.zeros(self.n_vars, np.int64), np.zeros(self.n_vars, np.int64), 0)
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


def _prepare_seurat(ctx: DaskMatrixContext, gene_sets, *, random_state, ctrl, nbin) -> LinearPlan:
    """``_seurat.prepare`` with the gene averages of the reduction pass."""
    means = ctx.seurat_gene_averages
    seed = _seurat._seed(random_state)
    controls = {id(gs): _seurat.seurat_control_genes(means, [gs.idx], ctrl=ctrl, nbin=nbin, seed=seed)[0]
                for gs in gene_sets}

    def drawn(gs):
        genes = controls[id(gs)]
        return genes, np.full(len(genes), 1.0 / max(len(genes), 1))

    return control_gene_plan(ctx, gene_sets, drawn, {"ctrl": ctrl, "nbin": nbin, "seed": seed})


class _SeuratModule:
    META = _seurat.META
    prepare = staticmethod(_prepare_seurat)


def reduce_statistics(X, method: str, *, null: bool = False, progress: bool = False,
                      compute_kwargs: Mapping[str, Any] | None = None) -> None:
    """Reduce, in one pass over the chunks of the dask array ``X``, the gene statistics that
    :func:`score_dask` with ``method`` needs (and, with ``null``, :func:`celltype_null_dask`: the
    scanpy-order sums its random sets are drawn from). Later contexts of the same array reuse them
    (:data:`_STATS_BY_NAME`), so scoring and the null read the chunks for their statistics once."""
    check_method(method)
    ctx = DaskMatrixContext(X, compute_kwargs=compute_kwargs)
    kinds = (("f32",) if null else ()) + _NEEDS[method]
    ctx.reduce(kinds) if not progress else _with_progress(lambda: ctx.reduce(kinds))


def check_method(method: str) -> None:
    """Refuse a method that cannot be computed chunk by chunk (naming it and the alternatives)."""
    get_method(method)  # unknown names: the registry's error
    if method in ALL_CELL_METHODS:
        raise ValueError(f"method {method!r} depends on all cells at once ({' and '.join(ALL_CELL_METHODS)} rank or "
                         f"estimate densities across the whole matrix), so it cannot score a dask-backed matrix chunk "
                         f"by chunk; use one of {', '.join(DASK_METHODS)}, or load the data into memory")


# --------------------------------------------------------------------------- scoring
def dask_scores(ctx: DaskMatrixContext, plan, *, threads_per_task: int = 1):
    """The lazy cells x sets float64 dask array of ``plan`` over the chunks of ``ctx.X``."""
    if isinstance(plan, LinearPlan):  # build the code table once here, not in every task
        plan.compute(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), 0, 0,
                     np.zeros((0, plan.n_sets)))
    recipes = ctx._recipes
    if recipes is None:  # chunks that carry their data: map over them
        return ctx.X.map_blocks(_score_block, plan, ctx.n_vars, plan.n_sets, threads_per_task, dtype=np.float64,
                                chunks=(ctx.X.chunks[0], (plan.n_sets,)), meta=np.empty((0, 0), dtype=np.float64))
    # lazily read chunks: each task reads its own chunk and returns only its scores, so a loaded chunk is
    # never a result the scheduler holds (or spills) between a read task and a score task; the plan is
    # one key of the graph, sent once to each worker
    shared_plan = dask.delayed(plan, pure=False)
    step = dask.delayed(_score_own_block, pure=True)
    parts = [da.from_delayed(step(r, shared_plan, ctx.n_vars, plan.n_sets, threads_per_task),
                             shape=(rows, plan.n_sets), dtype=np.float64)
             for r, rows in zip(recipes, ctx.X.chunks[0], strict=True)]
    return da.concatenate(parts, axis=0)


def score_dask(adata: AnnData, signatures: Sequence[str] | Mapping[str, Sequence[str]], *, method: str = "scanpy",
               random_state: int | None = 0, layer: str | None = None, key_added: str = "sasp_scores",
               copy: bool = False, progress: bool = False, compute_kwargs: Mapping[str, Any] | None = None,
               **params) -> AnnData | None:
    """:func:`sasp_atlas.engines.score` for an ``adata`` whose ``X`` (or ``layer``) is a dask array of row chunks.

    Same parameters, outputs and scores as :func:`sasp_atlas.engines.score` (equal to ~1e-12; the
    expression bins exactly, see the module doc), for the methods of :data:`DASK_METHODS`; the
    ``ssgsea`` and ``gsva`` methods need all cells and are refused. The computation runs on the
    current dask scheduler (a ``distributed.Client`` if one is active). Chunks: scipy CSR (or
    dense) blocks of whole rows; each is read twice (reduction pass, then scores).

    Parameters
    ----------
    adata, signatures, method, random_state, layer, key_added, copy, **params
        As for :func:`sasp_atlas.engines.score`.
    progress
        Show ``distributed.progress`` bars (needs a ``distributed.Client``; ignored without one).
    compute_kwargs
        Passed to ``dask.compute`` (e.g. ``scheduler="synchronous"``).

    Returns
    -------
    AnnData or None
        As :func:`sasp_atlas.engines.score`: sets ``adata.obsm[key_added]`` (cells x signatures,
        float64, in memory) and ``adata.uns[key_added]`` (``params["backend"] = "dask"`` and the
        number of chunks added).
    """
    check_method(method)
    if copy:
        adata = adata.copy()
    X = adata.layers[layer] if layer else adata.X
    if not is_dask_array(X):
        raise TypeError(f"{'adata.layers[' + repr(layer) + ']' if layer else 'adata.X'} is a {type(X).__name__}, "
                        "not a dask array: use sasp_atlas.score for in-memory data")
    module = _SeuratModule if method == "seurat" else get_method(method)
    ctx = DaskMatrixContext(X, compute_kwargs=compute_kwargs)
    sigs = resolve_signatures(signatures)
    gene_sets = match_gene_sets(sigs, pd.Index(adata.var_names.astype(str)))
    ctx.reduce(_NEEDS[method]) if not progress else _with_progress(lambda: ctx.reduce(_NEEDS[method]))
    plan = build_plan(module, ctx, gene_sets, random_state=random_state, params=params)
    lazy = dask_scores(ctx, plan)
    scores = _compute(lazy, progress=progress, compute_kwargs=compute_kwargs)
    info: dict[str, Any] = {}
    for gs, extra in zip(gene_sets, plan.set_info, strict=True):
        info[gs.name] = {"genes_used": [str(g) for g in gs.used], "genes_missing": [str(g) for g in gs.missing],
                         "n_genes": int(gs.n_genes), "n_control_genes": 0,
                         "coverage": len(gs.used) / gs.n_genes, "low_coverage": is_low_coverage(len(gs.used), gs.n_genes),
                         **extra}
    adata.obsm[key_added] = pd.DataFrame(scores, index=adata.obs_names, columns=[gs.name for gs in gene_sets])
    adata.uns[key_added] = {
        "method": module.META.name,
        "params": {"random_state": random_state, **plan.params, "layer": layer or "X",
                   "reference": module.META.reference, "backend": "dask", "n_chunks": int(ctx.X.numblocks[0])},
        "signatures": info,
    }
    return adata if copy else None


@wraps(_score_in_memory)
def score(adata: AnnData, signatures: Sequence[str] | Mapping[str, Sequence[str]], *, layer: str | None = None,
          **kwargs) -> AnnData | None:
    X = adata.layers[layer] if layer else adata.X
    if is_dask_array(X):
        return score_dask(adata, signatures, layer=layer, **kwargs)
    return _score_in_memory(adata, signatures, layer=layer, **kwargs)


score.__doc__ = (_score_in_memory.__doc__ or "") + """
    A dask-backed ``X`` (or ``layer``; a dask array of row chunks) is scored chunk by chunk by
    :func:`sasp_atlas.engines.score_dask` (methods of :data:`~sasp_atlas.engines.DASK_METHODS`)."""


def _client():
    try:
        return default_client()
    except ValueError:  # no client: the local scheduler
        return None


def _with_progress(fn):
    """Run ``fn`` (which calls ``dask.compute``) while a rich status line says so; distributed's
    progress bar is shown for the score pass, whose futures exist before they are waited on."""
    with Console(stderr=True).status("gene statistics: reduction pass over the chunks"):
        return fn()


def _compute(lazy, *, progress: bool, compute_kwargs: Mapping[str, Any] | None):
    client = _client() if progress else None
    if client is None:
        return lazy.compute(**dict(compute_kwargs or {}))
    future = client.compute(lazy)
    show_progress(future)
    return future.result()


# --------------------------------------------------------------------------- per-group reductions
def _group_gene_sums_block(block, codes_block, n_groups: int, n_vars: int):
    X = _as_csr(block, n_vars)
    codes = np.asarray(codes_block, dtype=np.int64).ravel()
    out = csr_group_gene_sums(X.indptr, X.indices, X.data, 0, X.shape[0], codes, n_groups, n_vars, 1)
    return out[None, :, :]


def group_gene_sums_dask(X, codes: np.ndarray, n_groups: int, *, compute_kwargs: Mapping[str, Any] | None = None):
    """Per-group gene sums (pseudobulk; ``(n_groups, n_genes)`` float64) of a dask matrix of row chunks:
    one task per chunk (:func:`._linear.csr_group_gene_sums`), summed in chunk order. ``codes < 0``: no group."""
    codes = da.from_array(np.asarray(codes, dtype=np.int64)[:, None], chunks=(X.chunks[0], 1))
    parts = da.map_blocks(_group_gene_sums_block, X, codes, n_groups, int(X.shape[1]), dtype=np.float64,
                          chunks=((1,) * X.numblocks[0], (n_groups,), (int(X.shape[1]),)), new_axis=2,
                          meta=np.empty((0, 0, 0)))
    return parts.sum(axis=0).compute(**dict(compute_kwargs or {}))


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


def group_means_dask(ctx: DaskMatrixContext, plan, codes: np.ndarray, n_groups: int, *,
                     compute_kwargs: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sasp_atlas.engines.group_means` on a dask matrix: linear plans from the pseudobulk gene
    sums (one reduction), others from per-chunk score sums (scores never gathered)."""
    codes = np.asarray(codes, dtype=np.int64)
    counts = np.bincount(codes[codes >= 0], minlength=n_groups).astype(np.float64)
    if plan.linear is not None:
        W, offset = plan.linear
        G = group_gene_sums_dask(ctx.X, codes, n_groups, compute_kwargs=compute_kwargs)
        sums = np.asarray((W.T @ G.T).T) + counts[:, None] * offset[None, :]
    else:
        c = da.from_array(codes[:, None], chunks=(ctx.X.chunks[0], 1))
        parts = da.map_blocks(_group_score_sums_block, ctx.X, c, plan, n_groups, ctx.n_vars, dtype=np.float64,
                              chunks=((1,) * ctx.X.numblocks[0], (n_groups,), (plan.n_sets,)), new_axis=2,
                              meta=np.empty((0, 0, 0)))
        sums = parts.sum(axis=0).compute(**dict(compute_kwargs or {}))
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None], counts


def _expected_group_means_from_sums(G_sums: np.ndarray, counts: np.ndarray, gene_means: np.ndarray,
                                    sets: list[np.ndarray], *, ctrl_size: int, n_bins: int) -> np.ndarray:
    """The ``expected`` score's group means of every gene set from per-group gene sums (as
    ``null._expected_group_means``, whose matrix pass this replaces)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        G = G_sums / counts[:, None]
    bins = expression_bins(gene_means, n_bins)
    members = bin_members(bins)
    cuts = sorted(members)
    bin_of = np.full(len(gene_means), -1, dtype=np.int64)
    chance = np.zeros(len(gene_means))
    A = np.zeros((G.shape[0], len(cuts)))
    P = np.zeros(len(cuts))
    for b, cut in enumerate(cuts):
        genes = members[cut]
        bin_of[genes] = b
        chance[genes] = min(ctrl_size, len(genes)) / len(genes)
        A[:, b] = G[:, genes] @ chance[genes]
        P[b] = chance[genes].sum()
    out = np.zeros((G.shape[0], len(sets)))
    for k, idx in enumerate(sets):
        touched = np.unique(bin_of[idx][bin_of[idx] >= 0])
        num = A[:, touched].sum(axis=1) - G[:, idx] @ chance[idx]
        den = P[touched].sum() - chance[idx].sum()
        out[:, k] = G[:, idx].mean(axis=1) - num / den
    return out


def celltype_null_dask(adata: AnnData, signatures: Sequence[str] | Mapping[str, Sequence[str]], *,
                       method: str = "scanpy", group_by: str = "cell_type", n_null: int = 100, seed: int = 0,
                       n_bins: int = 25, random_state: int | None = 0, layer: str | None = None,
                       compute_kwargs: Mapping[str, Any] | None = None, **params) -> pd.DataFrame:
    """:func:`sasp_atlas.engines.celltype_null` for a dask-backed ``adata`` (same sets, same table).

    The random sets are drawn from the same gene means (the reduction pass) with the same seeds; the
    group means come from the pseudobulk gene sums (linear methods, one pass) or per-chunk score
    sums (``aucell``, ``ucell``).
    """
    check_method(method)
    if n_null < 1:
        raise ValueError(f"n_null must be >= 1, not {n_null}")
    X = adata.layers[layer] if layer else adata.X
    module = _SeuratModule if method == "seurat" else get_method(method)
    ctx = DaskMatrixContext(X, compute_kwargs=compute_kwargs)
    ctx.reduce(("f32",) + _NEEDS[method])
    sigs = resolve_signatures(signatures)
    var_names = pd.Index(adata.var_names.astype(str))
    observed = [GeneSet(gs.name, len(gs.used), gs.used, pd.Index([]), gs.idx)
                for gs in match_gene_sets(sigs, var_names)]
    null_sets = []
    for gs in observed:
        for j, idx in enumerate(draw_null_sets(ctx.scanpy_gene_means, gs.idx, n_null=n_null, n_bins=n_bins,
                                               rng=_signature_rng(seed, gs.name))):
            null_sets.append(GeneSet(f"{gs.name}[null {j}]", len(idx), var_names[idx], pd.Index([]), idx))
    codes, labels = group_codes(adata, group_by)
    if module.META.name == "expected":
        unknown = set(params) - set(module.META.defaults)
        if unknown:
            raise TypeError(f"method 'expected' has no parameter(s) {sorted(unknown)}")
        resolved = {**module.META.defaults, **params}
        counts = np.bincount(codes[codes >= 0], minlength=len(labels)).astype(np.float64)
        G = group_gene_sums_dask(ctx.X, codes, len(labels), compute_kwargs=compute_kwargs)
        means = _expected_group_means_from_sums(G, counts, ctx.exact_gene_means,
                                                [gs.idx for gs in observed + null_sets],
                                                ctrl_size=resolved["ctrl_size"], n_bins=resolved["n_bins"])
        plan_params = dict(resolved)
    else:
        plan = build_plan(module, ctx, observed + null_sets, random_state=random_state, params=params)
        means, counts = group_means_dask(ctx, plan, codes, len(labels), compute_kwargs=compute_kwargs)
        plan_params = dict(plan.params)
    return null_table(means, counts, observed, labels, n_null=n_null, group_by=group_by,
                      attrs={"method": module.META.name, "n_null": n_null, "seed": seed, "n_bins": n_bins,
                             "random_state": random_state, "params": plan_params})
