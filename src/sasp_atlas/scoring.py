"""The shared scoring entry point: every signature in one sparse pass over ``X``.

:func:`score` runs any method of the engine registry (:mod:`sasp_atlas.engines`; see
:func:`sasp_atlas.engines.list_methods`): ``"scanpy"`` (default, equal to
``scanpy.tl.score_genes``), ``"aucell"`` (equal to ``decoupler.mt.aucell``), ``"ucell"`` (equal
to ``pyucell.compute_ucell_scores``), ``"mean"`` and ``"zmean"``. This module keeps the names
earlier code imports from here.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .engines import METHODS, resolve_signatures, score
from .engines._driver import MatrixContext
from .engines._linear import csr_weighted_sums
from .engines._scanpy import scanpy_control_genes

__all__ = ["score", "resolve_signatures", "scanpy_control_genes", "weighted_row_sums", "METHODS"]


def weighted_row_sums(X, weights: sp.csr_matrix) -> np.ndarray:
    """``X @ weights`` (cells x sets) in one pass over the rows, float64 sums; ``weights`` is genes x sets."""
    W = sp.csr_matrix(weights, dtype=np.float64)
    ctx = MatrixContext(X)
    out = np.zeros((ctx.n_obs, W.shape[1]))
    for r0, r1, (indptr, indices, data, s, e) in ctx.row_blocks():
        csr_weighted_sums(indptr, indices, data, s, e, W.indptr, W.indices, W.data, out[r0:r1])
    return out
