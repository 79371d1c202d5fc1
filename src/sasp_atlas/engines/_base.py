"""What every scoring method provides: a metadata record and a *plan* the driver runs.

A method module (``_scanpy``, ``_aucell``, ...) holds its numba kernel, a :class:`MethodMeta`
record and a ``prepare(context, gene_sets, *, random_state, **params)`` function returning a
:class:`Plan`; a line in :mod:`._registry` makes it a method. The driver (:mod:`._driver`) owns
everything else: gene matching, the matrix context (in memory or a dask array of row chunks),
chunking over cells, output. ``prepare`` reads the matrix only through the context's gene
statistics (``scanpy_gene_means``, ``exact_gene_means``, ``seurat_gene_averages``, ``column_nnz``,
``gene_mean_sd``), so the same method runs in memory and on a dask array.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._linear import ClassTable, CodeTable, DenseRowTable, linear_table


@dataclass(frozen=True)
class MethodMeta:
    """The record :func:`sasp_atlas.engines.list_methods` shows for one method."""

    name: str
    description: str
    value_range: tuple[float, float]
    reference: str
    assumptions: str
    kind: str  # "linear" (score = X @ W + offset) or "rank" (per-cell ranks)
    defaults: dict[str, Any] = field(default_factory=dict)
    #: the context's gene statistics ``prepare`` reads: a dask-backed matrix reduces them in one pass
    #: over its chunks before ``prepare`` (any other statistic is reduced when first read)
    gene_statistics: tuple[str, ...] = ()
    #: the scores depend on all cells at once (``prepare`` reads the whole matrix): refused on a dask array
    all_cells: bool = False
    #: how a signed signature is scored from its up and down parts (the module's ``combine_signed``, else
    #: the plain difference); ``None``: the method refuses signed signatures
    signed: str | None = "score(up) - score(down)"

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "value_range": self.value_range,
            "reference": self.reference,
            "assumptions": self.assumptions,
            "kind": self.kind,
            "params": dict(self.defaults),
            "signed": self.signed,
        }


class Plan:
    """Everything a method precomputed for one matrix and one list of gene sets.

    ``compute(indptr, indices, data, start, end, out)`` fills ``out`` (rows ``start:end`` of a CSR
    matrix given by its arrays; ``out`` zeroed, float64, rows x sets). ``set_info`` holds one dict
    of method-specific facts per set (e.g. ``n_control_genes``); ``params`` the resolved parameters.
    """

    n_sets: int
    set_info: list[dict[str, Any]]
    params: dict[str, Any]

    def compute(self, indptr, indices, data, start: int, end: int, out: np.ndarray) -> None:
        raise NotImplementedError

    @property
    def linear(self) -> tuple[sp.csr_matrix, np.ndarray] | None:
        """``(W, offset)`` if the score is ``X @ W + offset`` (genes x sets), else ``None``."""
        return None


class LinearPlan(Plan):
    """A score that is a weighted sum of a cell's values plus a per-set constant:
    ``X @ diag(gene_scale) @ W + offset`` (``gene_scale``: optional per-gene factor, genes x 1)."""

    def __init__(
        self,
        weights: sp.spmatrix,
        offset: np.ndarray | None = None,
        *,
        gene_scale: np.ndarray | None = None,
        set_info: list[dict[str, Any]] | None = None,
        params: dict[str, Any] | None = None,
    ):
        W = sp.csr_matrix(weights, dtype=np.float64)
        W.sum_duplicates()
        self.n_sets = W.shape[1]
        self.offset = np.zeros(self.n_sets) if offset is None else np.asarray(offset, dtype=np.float64)
        self.set_info = set_info if set_info is not None else [{} for _ in range(self.n_sets)]
        self.params = params or {}
        self._W, self._gene_scale = W, gene_scale
        self._codes: CodeTable | ClassTable | DenseRowTable | None = None

    def compute(self, indptr, indices, data, start, end, out):
        if self._codes is None:  # built on first use: the group-mean path never needs it
            self._codes = linear_table(self._W, self._gene_scale)
        self._codes.add_into(indptr, indices, data, start, end, out)
        out += self.offset

    @property
    def linear(self):
        W = self._W if self._gene_scale is None else sp.csr_matrix(sp.diags(self._gene_scale) @ self._W)
        return W, self.offset


def difference(up: np.ndarray, down: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """The signed score of every method without its own signed form: ``score(up) - score(down)``."""
    return up - down


class SignedPlan(Plan):
    """Scores of signatures of which some are signed: ``inner`` scores every part (an unsigned set is one
    part, a signed set its up and down parts, in the same pass), then each output column is its part's
    column, or ``combine(up, down, params)`` of a signed set's two columns.

    ``columns``: per output signature ``(part, None)`` or ``(up part, down part)``. When ``inner`` is
    linear and ``combine`` is the plain :func:`difference`, so is this plan (``W_up - W_down``), and
    group means are taken from per-group gene sums as for any linear plan.
    """

    def __init__(self, inner: Plan, columns: list[tuple[int, int | None]], combine, set_info: list[dict[str, Any]]):
        self.inner, self.columns, self.combine = inner, columns, combine
        self.n_sets = len(columns)
        self.set_info = set_info
        self.params = inner.params

    def compute(self, indptr, indices, data, start, end, out):
        parts = np.zeros((out.shape[0], self.inner.n_sets), dtype=np.float64)
        self.inner.compute(indptr, indices, data, start, end, parts)
        for k, (up, down) in enumerate(self.columns):
            out[:, k] += parts[:, up] if down is None else self.combine(parts[:, up], parts[:, down], self.params)

    @property
    def linear(self):
        inner = self.inner.linear
        if inner is None or self.combine is not difference:
            return None
        W, offset = inner
        rows, cols, vals = [], [], []
        for k, (up, down) in enumerate(self.columns):
            rows.append(up)
            cols.append(k)
            vals.append(1.0)
            if down is not None:
                rows.append(down)
                cols.append(k)
                vals.append(-1.0)
        C = sp.csr_matrix((vals, (rows, cols)), shape=(self.inner.n_sets, self.n_sets))
        return sp.csr_matrix(W @ C), np.asarray(C.T @ offset)


def gene_lookup(gene_sets: list[np.ndarray], n_genes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gene -> sets it belongs to, as CSR arrays ``(ptr, set_ids)`` (the kernels' lookup table)."""
    rows = np.concatenate([np.asarray(g, dtype=np.int64) for g in gene_sets]) if gene_sets else np.empty(0, np.int64)
    cols = (
        np.concatenate([np.full(len(g), k, dtype=np.int64) for k, g in enumerate(gene_sets)])
        if gene_sets
        else np.empty(0, np.int64)
    )
    M = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_genes, len(gene_sets)))
    M.sum_duplicates()
    return M.indptr.astype(np.int64), M.indices.astype(np.int64)
