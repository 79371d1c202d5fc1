"""Scoring engines: one module per method, one shared driver (decoupler-style method registry).

Every method is a small module with its numba kernel, a :class:`MethodMeta` record (name,
description, value range, reference DOI, input assumptions, parameters, the gene statistics it
reads) and a ``prepare`` function, listed in :mod:`._registry`; :mod:`._driver` does the gene
matching, batching over cells and output for all of them, in memory or on a dask array of row
chunks (:mod:`._dask`, registered with :func:`matrix_context`), so every method takes the same
inputs and writes the same ``adata`` slots.

========  ==============================================================  =====================
method    score                                                            equals
========  ==============================================================  =====================
scanpy    signature mean - expression-matched control mean (Tirosh 2016)   ``sc.tl.score_genes``
aucell    recovery-curve AUC in the top ``n_up`` ranks (Aibar 2017)         ``dc.mt.aucell``
ucell     Mann-Whitney U of ranks truncated at 1500 (Andreatta 2021)       ``pyucell``
mean      mean of the signature genes                                      ``X[:, S].mean(1)``
zmean     mean of per-gene z-scores                                        ``sc.pp.scale`` + mean
expected  scanpy's score averaged over its control draws (seed-free)       its own expectation
seurat    per-gene control draws, cut_number bins (Seurat 4.3)             R ``AddModuleScore``
ssgsea    rank-weighted random-walk sum, range-normalised (Barbie 2009)    R GSVA 1.46 ``ssgsea``
gsva      kernel-CDF ranks, KS-like walk (Hanzelmann 2013)                 R GSVA 1.46 ``gsva``
husi      Spearman rho of expression with the hUSI model weights (2025)   ``cal_hUSI`` (raw rho)
========  ==============================================================  =====================

A signed signature (a direction per gene: a catalogue set with ``directions`` or ``{name: {gene: +1 | -1}}``)
is scored as its up and down parts in the same pass, and every method reports ``score(up) - score(down)``
(``ucell``: pyucell's ``max(0, U(up) - w_neg U(down))``; ``husi`` refuses): see :func:`score` and
``MethodMeta.signed``.

``husi`` scores a model, not a signature: :func:`husi_scores` scores the hUSI model's genes
against its weights (one column, raw rho); :func:`husi_minmax` and :func:`husi_sse_split` are the
authors' data-set-relative transforms.
"""

from __future__ import annotations

from .._lazy import lazy_import
from ._base import MethodMeta, Plan
from ._concordance import Concordance, method_concordance
from ._driver import MatrixContext, compute_scores, group_means, matrix_context, reduce_statistics, score
from ._gsva import kernel_terms as gsva_kernel_terms
from ._husi import load_husi_model
from ._husi_api import husi_minmax, husi_scores, husi_sse_split
from ._registry import ALL_CELL_METHODS, DASK_METHODS, DEFAULT_METHOD, METHODS, get_method, list_methods
from .null import NULL_COLUMNS, celltype_null, draw_null_sets

#: names whose modules import dask, imported when first used (``sasp_atlas.engines.DaskMatrixContext``)
_DASK_NAMES = {
    "DaskMatrixContext": "sasp_atlas.engines._dask",
    "WORKER_ENVIRON": "sasp_atlas.engines._dask",
    "local_worker_config": "sasp_atlas.engines._dask",
    "read_lazy": "sasp_atlas.data.lazy",
    "CorruptChunkError": "sasp_atlas.data.lazy",
}

__all__ = [
    "list_methods",
    "get_method",
    "score",
    "method_concordance",
    "Concordance",
    "MethodMeta",
    "Plan",
    "MatrixContext",
    "matrix_context",
    "compute_scores",
    "group_means",
    "reduce_statistics",
    "METHODS",
    "DEFAULT_METHOD",
    "DASK_METHODS",
    "ALL_CELL_METHODS",
    "celltype_null",
    "draw_null_sets",
    "NULL_COLUMNS",
    "gsva_kernel_terms",
    "husi_scores",
    "husi_minmax",
    "husi_sse_split",
    "load_husi_model",
    *_DASK_NAMES,
]


def __getattr__(name: str):
    if name in _DASK_NAMES:
        return lazy_import(_DASK_NAMES[name], name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
