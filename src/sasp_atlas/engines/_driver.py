"""The shared driver: one code path from ``adata`` + signatures to scores, for every method and array type.

1. **Gene matching** (:func:`match_gene_sets`): signature genes are de-duplicated (first occurrence
   kept), split into those present in ``var_names`` (used) and those absent (reported, never
   silently dropped); a signature with no gene present is an error naming it. A signed signature
   (:func:`~sasp_atlas.genes.match_signatures`) is matched as two parts, its up and its down genes.
2. **Matrix context** (:func:`matrix_context`): the matrix as the kernels read it and the per-gene
   statistics every method's ``prepare`` reads (the scanpy-exact gene means, exact means, Seurat's
   gene averages, stored entries per gene, float64 mean and SD), computed lazily, once. One
   function dispatched on the array type (as scanpy's ``get.aggregate``): an in-memory matrix gives
   a :class:`MatrixContext`, a dask array of row chunks a
   :class:`~sasp_atlas.engines._dask.DaskMatrixContext` (registered when the first dask array is
   seen), which reduces the same statistics over the chunks and runs the same plans per chunk.
3. **Batching**: a method's :class:`~._base.Plan` is run over row ranges of the CSR arrays, with
   no copy of ``X`` (dense input is converted to CSR one block of rows at a time). Reductions over
   cells (per-group means, :func:`group_means`) go chunk by chunk, so only a chunk of scores
   exists at once; for linear methods they reduce ``X`` to per-group gene sums first (exact,
   since the score is linear in the cell's values).
4. **Signed signatures** (:func:`build_signed_plan`): the method scores every part, up and down parts
   as sets of their own, in the same pass; a :class:`~._base.SignedPlan` writes ``score(up) -
   score(down)`` under the signature's name (``ucell``: pyucell's ``max(0, up - w_neg * down)``;
   ``husi`` refuses). Every array type and the null go through it.
5. **Output** (:func:`score`, written by one writer for every array type):
   ``adata.obsm[key_added]`` and ``adata.uns[key_added]`` (default
   :data:`sasp_atlas._constants.SCORES_KEY`, the key every reader of scores takes as ``key=``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from functools import cached_property, singledispatch
from typing import Any

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._constants import SCORES_KEY
from .._lazy import lazy_import
from ..data import InputError
from ..genes import GeneSet, SignedGeneSet, is_low_coverage, match_signatures
from ..genes.matching import Signatures
from ._base import MethodMeta, Plan, SignedPlan, difference
from ._linear import add_exact, csr_column_moments, csr_group_gene_sums, exact_column_sums, exact_means
from ._registry import get_method

log = logging.getLogger(__name__)

# size of one block of per-chunk temporaries (dense rows converted to CSR, chunk x sets scores)
CHUNK_BYTES = 64 * 2**20


class MatrixContext:
    """A cells x genes matrix as the kernels read it, plus per-gene statistics computed on demand.

    CSR is used in place. Other sparse formats are converted once (a logged copy); a dense array
    is read one block of rows at a time (:meth:`row_blocks`), each block converted to CSR.
    """

    def __init__(self, X):
        if sp.issparse(X) and X.format != "csr":
            log.warning("X is %s, not CSR: converting a copy to CSR for scoring", X.format)
            X = X.tocsr()
        elif not sp.issparse(X):
            X = np.asarray(X)
        self.X = X
        self.n_obs, self.n_vars = X.shape
        self.is_csr = sp.issparse(X)

    def row_blocks(self, start: int = 0, end: int | None = None, max_rows: int | None = None):
        """Yield ``(row0, row1, (indptr, indices, data, s, e))``: rows ``row0:row1`` of X are rows
        ``s:e`` of the CSR arrays. For CSR the arrays are X's own (no copy)."""
        end = self.n_obs if end is None else end
        if self.is_csr:
            step = max_rows or max(end - start, 1)
            for r0 in range(start, end, step):
                r1 = min(r0 + step, end)
                yield r0, r1, (self.X.indptr, self.X.indices, self.X.data, r0, r1)
            return
        rows_fit = max(1, CHUNK_BYTES // max(1, self.n_vars * self.X.itemsize))
        step = min(rows_fit, max_rows or rows_fit)
        for r0 in range(start, end, step):
            r1 = min(r0 + step, end)
            block = sp.csr_matrix(self.X[r0:r1])
            yield r0, r1, (block.indptr, block.indices, block.data, 0, r1 - r0)

    @cached_property
    def scanpy_gene_means(self) -> np.ndarray:
        """Gene means exactly as ``scanpy.tl.score_genes`` computes them (its bins depend on them).

        The same call scanpy makes: scipy accumulates float32 data in float32 here even with
        ``dtype="float64"`` and then casts; the ranks, and so the bins, must tie-break exactly as
        scanpy's do. (A parallel numba version reproducing these sums bit for bit was only ~10%
        faster on 2 cores: the sums are sequential per gene.)
        """
        if self.is_csr:
            return np.asarray(self.X.sum(axis=0, dtype="float64")).ravel() / self.n_obs
        return np.nanmean(self.X, axis=0, dtype="float64")

    @cached_property
    def exact_gene_means(self) -> np.ndarray:
        """Gene means that no order of summation can change (the bins of ``expected`` and its null).

        Each value is truncated to a multiple of 2**-40 and the multiples are added as integers
        (:func:`._linear.exact_column_sums`), so the in-memory matrix, any chunking of it
        (:mod:`._dask`) and any thread count give the same means, bit for bit, and genes with the
        same values tie exactly. They differ from the exact means by < 2**-40 (9e-13; not at all
        for float32 values of magnitude >= 2**-16); scipy's float32 sums (:attr:`scanpy_gene_means`)
        differ from them by ~1e-6 relative on the core data, where no gene changes bin between the
        two.
        """
        if self.is_csr:
            sums = exact_column_sums(
                self.X.indptr,
                self.X.indices,
                self.X.data,
                0,
                self.n_obs,
                self.n_vars,
                n_threads=numba.get_num_threads(),
            )
        else:
            sums = (np.zeros(self.n_vars, np.int64), np.zeros(self.n_vars, np.int64), 0)
            for _, _, (indptr, indices, data, s, e) in self.row_blocks():
                sums = add_exact(sums, exact_column_sums(indptr, indices, data, s, e, self.n_vars))
        return exact_means(sums, self.n_obs)

    @cached_property
    def seurat_gene_averages(self) -> np.ndarray:
        """Every gene's average over all cells as Seurat's ``Matrix::rowMeans`` (the bins of ``seurat``):
        summed cell by cell in float64."""
        sums = np.zeros(self.n_vars)
        step = 1 << 17  # float64 values and intp indices of at most 131k stored values at a time (2 MiB; same order)
        for _, _, (indptr, indices, data, s, e) in self.row_blocks():
            for lo in range(int(indptr[s]), int(indptr[e]), step):
                hi = min(lo + step, int(indptr[e]))
                # bincount adds its weights in input order, as np.add.at did (the same float64 sums), ~20x faster
                sums += np.bincount(
                    indices[lo:hi], weights=np.asarray(data[lo:hi], dtype=np.float64), minlength=self.n_vars
                )
        return sums / self.n_obs

    @cached_property
    def _first_moments(self) -> tuple[np.ndarray, np.ndarray]:
        if self.is_csr:
            nnz, s, _ = csr_column_moments(
                self.X.indptr, self.X.indices, self.X.data, self.n_vars, np.zeros(self.n_vars), numba.get_num_threads()
            )
            return nnz, s
        nnz = np.zeros(self.n_vars, dtype=np.int64)
        s = np.zeros(self.n_vars)
        for _, _, (_, indices, data, _, _) in self.row_blocks():
            nnz += np.bincount(indices, minlength=self.n_vars)
            s += np.bincount(indices, weights=data.astype(np.float64), minlength=self.n_vars)
        return nnz, s

    @property
    def column_nnz(self) -> np.ndarray:
        """Stored entries per gene (for CSR, explicit zeros count: as ``getnnz(axis=0)``)."""
        return self._first_moments[0]

    @cached_property
    def gene_mean_sd(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-gene mean and SD over all cells (float64, ``ddof=1`` as ``sc.pp.scale``).

        Two passes over the stored values: sums, then squared deviations from the mean; the
        ``n_obs - nnz`` implicit zeros each add ``mean**2``. Nothing is densified.
        """
        nnz, s = self._first_moments
        mean = s / self.n_obs
        if self.is_csr:
            _, _, ss = csr_column_moments(
                self.X.indptr, self.X.indices, self.X.data, self.n_vars, mean, numba.get_num_threads()
            )
        else:
            ss = np.zeros(self.n_vars)
            for _, _, (_, indices, data, _, _) in self.row_blocks():
                ss += np.bincount(indices, weights=(data - mean[indices]) ** 2, minlength=self.n_vars)
            # a dense block's CSR has no explicit zeros, so nnz counts the non-zeros: consistent
        ss += (self.n_obs - nnz) * mean**2
        sd = np.sqrt(ss / max(self.n_obs - 1, 1))
        return mean, sd

    # what the driver asks of a context; a dask context does the same over its chunks
    def check_method(self, meta: MethodMeta) -> None:
        """Refuse a method this context cannot run (every method runs in memory)."""

    def prefetch(self, statistics: Sequence[str]) -> None:
        """Compute the gene ``statistics`` (names of this class's properties) ahead of ``prepare``. In
        memory each is computed when first read, so there is nothing to do; a dask context reduces them
        in one pass over its chunks."""

    def scores(self, plan: Plan) -> np.ndarray:
        """All cells x all sets of ``plan`` (float64)."""
        out = np.zeros((self.n_obs, plan.n_sets), dtype=np.float64)
        for r0, r1, (indptr, indices, data, s, e) in self.row_blocks():
            plan.compute(indptr, indices, data, s, e, out[r0:r1])
        return out

    def group_gene_sums(self, codes: np.ndarray, n_groups: int, weights: sp.spmatrix | None = None) -> np.ndarray:
        """Per-group gene sums of ``X`` (pseudobulk; ``(n_groups, n_vars)`` float64; ``codes < 0``: no
        group), or with ``weights`` (genes x k) their product ``(n_groups, k)``, taken block by block."""
        out = np.zeros((n_groups, self.n_vars if weights is None else weights.shape[1]))
        for r0, r1, (indptr, indices, data, s, e) in self.row_blocks():
            G = csr_group_gene_sums(
                indptr,
                indices,
                data,
                s,
                e,
                codes[r0:r1] if not self.is_csr else codes,
                n_groups,
                self.n_vars,
                numba.get_num_threads(),
            )
            out += G if weights is None else np.asarray((weights.T @ G.T).T)
        return out

    def group_score_sums(self, plan: Plan, codes: np.ndarray, n_groups: int) -> np.ndarray:
        """Per-group sums of the scores of ``plan`` (``(n_groups, n_sets)``), at most :data:`CHUNK_BYTES`
        of scores at once."""
        sums = np.zeros((n_groups, plan.n_sets))
        max_rows = max(1, CHUNK_BYTES // (8 * max(plan.n_sets, 1)))
        for r0, r1, (indptr, indices, data, s, e) in self.row_blocks(max_rows=max_rows):
            chunk = np.zeros((r1 - r0, plan.n_sets))
            plan.compute(indptr, indices, data, s, e, chunk)
            c = codes[r0:r1]
            keep = c >= 0
            onehot = sp.csr_matrix((np.ones(keep.sum()), (c[keep], np.flatnonzero(keep))), shape=(n_groups, r1 - r0))
            sums += onehot @ chunk
        return sums

    def backend_params(self) -> dict[str, Any]:
        """What :func:`score` records about the array type in ``uns[key_added]["params"]`` (nothing in memory)."""
        return {}


def _is_dask_array(X) -> bool:
    dask_array = sys.modules.get("dask.array")  # a dask array exists only once dask.array is imported
    return dask_array is not None and isinstance(X, dask_array.Array)


@singledispatch
def matrix_context(X, *, progress: bool = False, compute_kwargs: Mapping[str, Any] | None = None) -> MatrixContext:
    """The context the driver scores ``X`` through: :class:`MatrixContext` for an in-memory matrix
    (``progress`` and ``compute_kwargs`` do not apply), :class:`~sasp_atlas.engines.DaskMatrixContext`
    for a dask array of row chunks (``progress``: status and progress bars; ``compute_kwargs``: passed
    to ``dask.compute``). The dask context is registered, and dask imported, when a dask array is first seen."""
    if _is_dask_array(X):
        lazy_import(f"{__package__}._dask")  # registers DaskMatrixContext for dask arrays
        return matrix_context(X, progress=progress, compute_kwargs=compute_kwargs)
    return MatrixContext(X)


def compute_scores(ctx: MatrixContext, plan: Plan) -> np.ndarray:
    """All cells x all sets of ``plan`` (float64), for any context."""
    return ctx.scores(plan)


def group_means(ctx: MatrixContext, plan: Plan, codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean score per group: ``(n_groups, n_sets)`` and the group sizes. ``codes < 0``: no group.

    Linear plans: group gene sums of ``X`` (one pass) times ``W``. Other plans: scores chunk by
    chunk, summed per group (:meth:`MatrixContext.group_score_sums`).
    """
    codes = np.asarray(codes, dtype=np.int64)
    counts = np.bincount(codes[codes >= 0], minlength=n_groups).astype(np.float64)
    if plan.linear is not None:
        W, offset = plan.linear
        # a new array (not +=): its memory order, which the row means of the null tables follow, is the same
        # whether the context's product comes C- or F-ordered
        sums = ctx.group_gene_sums(codes, n_groups, weights=W) + counts[:, None] * offset[None, :]
    else:
        sums = ctx.group_score_sums(plan, codes, n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None], counts


def group_codes(adata: AnnData, groupby: str) -> tuple[np.ndarray, list[str]]:
    """Integer codes of ``adata.obs[groupby]`` (-1 for missing) and the group labels (observed only)."""
    if groupby not in adata.obs:
        raise KeyError(f"adata.obs has no column {groupby!r} (available: {', '.join(map(str, adata.obs.columns))})")
    cat = pd.Categorical(adata.obs[groupby])
    cat = cat.remove_unused_categories()
    return np.asarray(cat.codes, dtype=np.int64), [str(c) for c in cat.categories]


def resolve_params(meta: MethodMeta, params: Mapping[str, Any]) -> dict[str, Any]:
    """The method's defaults updated by ``params``; an unknown name is an error listing the valid ones."""
    unknown = set(params) - set(meta.defaults)
    if unknown:
        allowed = ", ".join(meta.defaults) or "none"
        raise TypeError(f"method {meta.name!r} has no parameter(s) {sorted(unknown)}; its parameters: {allowed}")
    return {**meta.defaults, **params}


def build_plan(
    method_module, ctx: MatrixContext, gene_sets: list[GeneSet], *, random_state: int | None, params: Mapping[str, Any]
) -> Plan:
    resolved = resolve_params(method_module.META, params)
    return method_module.prepare(ctx, gene_sets, random_state=random_state, **resolved)


def build_signed_plan(
    method_module,
    ctx: MatrixContext,
    sets: list[GeneSet | SignedGeneSet],
    *,
    random_state: int | None,
    params: Mapping[str, Any],
) -> Plan:
    """The plan scoring ``sets`` (one column each), signed ones from their two parts.

    Without a signed set this is the method's own plan (unsigned scores are exactly as before). With
    one, the method prepares one plan over all parts (an unsigned set is one part, a signed set its
    ``[up]`` then ``[down]`` part) and a :class:`~._base.SignedPlan` combines the parts with the
    module's ``combine_signed(up, down, params)``, or :func:`~._base.difference`. ``set_info`` of a
    signed set is ``{"up": <the up part's facts>, "down": ...}``. A method whose ``MethodMeta.signed``
    is ``None`` refuses signed sets (:class:`~sasp_atlas.data.InputError`).
    """
    parts = [p for gs in sets for p in (gs.parts if isinstance(gs, SignedGeneSet) else (gs,))]
    if len(parts) == len(sets):
        return build_plan(method_module, ctx, parts, random_state=random_state, params=params)
    meta = method_module.META
    if meta.signed is None:
        signed = [gs.name for gs in sets if isinstance(gs, SignedGeneSet)]
        raise InputError(
            f"method {meta.name!r} does not score signed signatures ({', '.join(signed)}): "
            f"{meta.description}. Score them with another method (e.g. 'expected' or 'ucell')."
        )
    inner = build_plan(method_module, ctx, parts, random_state=random_state, params=params)
    columns, info, k = [], [], 0
    for gs in sets:
        if isinstance(gs, SignedGeneSet):
            columns.append((k, k + 1))
            info.append({"up": inner.set_info[k], "down": inner.set_info[k + 1]})
            k += 2
        else:
            columns.append((k, None))
            info.append(inner.set_info[k])
            k += 1
    return SignedPlan(inner, columns, getattr(method_module, "combine_signed", difference), info)


def reduce_statistics(
    X, method: str, *, null: bool = False, progress: bool = False, compute_kwargs: Mapping[str, Any] | None = None
) -> None:
    """Compute ahead, in one pass over a dask array's chunks, the gene statistics that :func:`score`
    with ``method`` reads (with ``null``, also those :func:`~sasp_atlas.engines.celltype_null` draws
    its random sets from); later contexts of the same dask array reuse them, so a run that scores
    and then computes the null reads the chunks for their statistics once. In memory there is
    nothing to share: each context computes its statistics when first read.

    Parameters
    ----------
    X
        The matrix that will be scored (``adata.X`` or a layer).
    method
        The scoring method (its ``MethodMeta.gene_statistics``); ``ssgsea`` and ``gsva`` are refused
        on a dask array.
    null
        Also the scanpy-order gene means of the null's random sets.
    progress, compute_kwargs
        As for :func:`score` (dask-backed ``X`` only).
    """
    meta = get_method(method).META
    ctx = matrix_context(X, progress=progress, compute_kwargs=compute_kwargs)
    ctx.check_method(meta)
    ctx.prefetch((("scanpy_gene_means",) if null else ()) + meta.gene_statistics)


def _coverage_record(gs: GeneSet | SignedGeneSet) -> dict[str, Any]:
    return {
        "genes_used": [str(g) for g in gs.used],
        "genes_missing": [str(g) for g in gs.missing],
        "n_genes": int(gs.n_genes),
        "n_control_genes": 0,
        "coverage": len(gs.used) / gs.n_genes,
        "low_coverage": is_low_coverage(len(gs.used), gs.n_genes),
    }


def _signed_record(gs: SignedGeneSet, extra: dict[str, Any], meta: MethodMeta) -> dict[str, Any]:
    """A signed set's ``uns`` record: coverage over both parts (as an unsigned set's), then per part
    ``genes_<part>_used``, ``genes_<part>_missing``, ``n_genes_<part>``, ``coverage_<part>`` and the
    method's facts suffixed ``_<part>``; ``n_control_genes`` and the method's gene lists (``genes_...``)
    are also given summed / joined over the parts."""
    rec = _coverage_record(gs)
    rec.update({"signed": True, "signed_form": meta.signed})
    for part_name, part in (("up", gs.up), ("down", gs.down)):
        rec.update(
            {
                f"genes_{part_name}_used": [str(g) for g in part.used],
                f"genes_{part_name}_missing": [str(g) for g in part.missing],
                f"n_genes_{part_name}": int(part.n_genes),
                f"coverage_{part_name}": len(part.used) / part.n_genes,
            }
        )
        rec.update({f"{key}_{part_name}": value for key, value in extra[part_name].items()})
    if "n_control_genes" in extra["up"]:
        rec["n_control_genes"] = int(extra["up"]["n_control_genes"] + extra["down"]["n_control_genes"])
    for key, up in extra["up"].items():  # gene lists of the method (e.g. aucell's genes_undetected)
        if key.startswith("genes_") and isinstance(up, list):
            rec[key] = up + extra["down"][key]
    return rec


def _store_scores(
    adata: AnnData,
    key_added: str,
    meta: MethodMeta,
    gene_sets: list[GeneSet | SignedGeneSet],
    plan: Plan,
    scores: np.ndarray,
    *,
    random_state: int | None,
    layer: str | None,
    backend: Mapping[str, Any],
) -> None:
    """Write ``adata.obsm[key_added]`` and ``adata.uns[key_added]``: the one writer of every method and array type."""
    info: dict[str, Any] = {}
    for gs, extra in zip(gene_sets, plan.set_info, strict=True):
        info[gs.name] = (
            _signed_record(gs, extra, meta) if isinstance(gs, SignedGeneSet) else {**_coverage_record(gs), **extra}
        )
    adata.obsm[key_added] = pd.DataFrame(scores, index=adata.obs_names, columns=[gs.name for gs in gene_sets])
    adata.uns[key_added] = {
        "method": meta.name,
        "params": {
            "random_state": random_state,
            **plan.params,
            "layer": layer or "X",
            "reference": meta.reference,
            **backend,
        },
        "signatures": info,
    }


def score(
    adata: AnnData,
    signatures: Signatures,
    *,
    method: str = "scanpy",
    random_state: int | None = 0,
    layer: str | None = None,
    key_added: str = SCORES_KEY,
    copy: bool = False,
    progress: bool = False,
    compute_kwargs: Mapping[str, Any] | None = None,
    **params,
) -> AnnData | None:
    """Score every signature in one pass over the cells and store the results on ``adata``.

    Parameters
    ----------
    adata
        Cells x genes expression in ``.X`` (or ``layer``): log-normalised, not scaled (see each
        method's assumptions in :func:`sasp_atlas.engines.list_methods`). The matrix is never
        modified or copied (except a non-CSR sparse matrix, converted once to CSR). A dask array of
        row chunks (e.g. from :func:`sasp_atlas.data.lazy.read_lazy`) is scored chunk by chunk on
        the current dask scheduler, with the same plans and kernels and the same scores (the
        expression bins exactly; see :mod:`sasp_atlas.engines._dask`), for the methods of
        :data:`~sasp_atlas.engines.DASK_METHODS` (``ssgsea`` and ``gsva`` need all cells at once and
        are refused).
    signatures
        Catalogue ids (see :func:`sasp_atlas.list_signatures`) or a mapping ``{name: genes}``, where
        ``genes`` is a list (an unsigned set) or ``{gene: +1 | -1}`` (a signed set: up / down in
        senescence). A catalogue set with per-gene directions (``list_signatures()["signed"]``, e.g.
        ``hernandez_segura2017_core_senescence``) is scored signed. A signed set is scored as two
        parts, its up and its down genes, in the same pass as the other sets, and its column holds
        ``score(up) - score(down)`` (each part scored by the method as a set of its own: control genes
        matched to that part for ``scanpy``/``expected``/``seurat``, its own ranks and normalisation for
        ``aucell``/``ssgsea``/``gsva``); ``ucell`` gives pyucell's signed score ``max(0, U(up) - w_neg *
        U(down))``; ``husi`` refuses signed sets. A signed set with no gene of one part in the data is
        an error naming it. Unsigned sets are scored exactly as without signed sets. (pyucell's
        ``"GENE+"`` / ``"GENE-"`` suffixes are not parsed: a list holds plain symbols.)
    method
        A name from :func:`sasp_atlas.engines.list_methods`: ``"scanpy"`` (default, for parity with
        ``scanpy.tl.score_genes``: Tirosh 2016 control-gene score, equal to it), ``"expected"`` (its seed-free
        expectation; the atlas's default, :data:`~sasp_atlas.engines.DEFAULT_METHOD`: pass it to reproduce
        an atlas table), ``"seurat"`` (Seurat 4.3 ``AddModuleScore``, equal to R Seurat with the same
        seed), ``"aucell"``, ``"ucell"``, ``"mean"``, ``"zmean"``, ``"ssgsea"`` and ``"gsva"``
        (Bioconductor GSVA 1.46 ``method="ssgsea"`` / ``method="gsva"``, equal to R; both depend on
        the other cells or sets scored together, see their assumptions).
    random_state
        The method's seed: the control-gene draw (``scanpy``, reset per signature as scanpy does;
        ``seurat``: R's ``set.seed`` as ``AddModuleScore(seed=...)``, whose default is 1)
        or the random gene order that breaks rank ties (``aucell``); ignored by the others. It is
        recorded in ``uns[key_added]["params"]["random_state"]``.
    layer
        Score ``adata.layers[layer]`` instead of ``.X``.
    key_added
        Name of the ``obsm`` and ``uns`` slots written.
    copy
        Score a copy of ``adata`` and return it, leaving ``adata`` untouched.
    progress
        Dask-backed ``X`` only: a status line for the statistics pass and ``distributed.progress``
        bars for the scores (with a ``distributed.Client``).
    compute_kwargs
        Dask-backed ``X`` only: passed to ``dask.compute`` (e.g. ``scheduler="synchronous"``).
    **params
        Method parameters (``ctrl_size``, ``n_bins`` for scanpy; ``ctrl``, ``nbin`` for seurat;
        ``n_up`` for aucell; ``max_rank``, ``missing_genes``, ``w_neg`` (weight of a signed set's down
        part) for ucell; ``tau``, ``ssgsea_norm`` for ssgsea; ``tau``, ``mx_diff``, ``abs_ranking`` for gsva). An unknown name is an error listing the valid ones.

    Returns
    -------
    AnnData or None
        ``None``, or the scored copy when ``copy=True``. Sets:

        ``adata.obsm[key_added]``
            DataFrame, cells x signature ids, float64 scores.
        ``adata.uns[key_added]``
            ``{"method", "params", "signatures": {id: {"genes_used", "genes_missing", "n_genes",
            "n_control_genes", "coverage", "low_coverage", ...}}}`` (``low_coverage``:
            :func:`sasp_atlas.genes.is_low_coverage`; ``n_control_genes`` is 0 for methods without
            control genes; methods add their own facts, e.g. ``genes_undetected`` for aucell;
            a dask-backed ``X`` adds ``params["backend"] = "dask"`` and ``params["n_chunks"]``).
            A signed set's record covers both parts (``genes_used`` up then down, ``coverage`` over
            both) and adds ``signed`` (True), ``signed_form``, ``genes_up_used``, ``genes_down_used``,
            ``genes_up_missing``, ``genes_down_missing``, ``n_genes_up``, ``n_genes_down``,
            ``coverage_up``, ``coverage_down`` and the method's facts per part (e.g.
            ``n_control_genes_up``; ``n_control_genes`` is their sum).

        Nothing is written if any signature fails (a signature with no gene present is an error naming it).
    """
    module = get_method(method)
    if copy:
        adata = adata.copy()
    ctx = matrix_context(adata.layers[layer] if layer else adata.X, progress=progress, compute_kwargs=compute_kwargs)
    ctx.check_method(module.META)
    gene_sets = match_signatures(signatures, pd.Index(adata.var_names.astype(str)))
    ctx.prefetch(module.META.gene_statistics)
    plan = build_signed_plan(module, ctx, gene_sets, random_state=random_state, params=params)
    scores = ctx.scores(plan)
    _store_scores(
        adata,
        key_added,
        module.META,
        gene_sets,
        plan,
        scores,
        random_state=random_state,
        layer=layer,
        backend=ctx.backend_params(),
    )
    return adata if copy else None
