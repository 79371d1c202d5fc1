"""``mean``: the plain mean of the signature genes' values in each cell.

No reference distribution: genes with high baseline expression dominate, and the score moves with
sequencing depth if ``X`` is not normalised. It is the baseline the other methods are compared to.
Kernel: ``X @ W`` with ``W = 1/|S|`` on the signature genes (:class:`._linear.CodeTable`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._base import LinearPlan, MethodMeta

META = MethodMeta(
    name="mean",
    description="Mean expression of the signature genes present",
    value_range=(-np.inf, np.inf),
    reference="",
    assumptions="log-normalised expression; highly expressed genes dominate the score",
    kind="linear",
    defaults={},
)


def prepare(ctx, gene_sets, *, random_state) -> LinearPlan:
    rows = np.concatenate([gs.idx for gs in gene_sets])
    cols = np.concatenate([np.full(len(gs.idx), k) for k, gs in enumerate(gene_sets)])
    vals = np.concatenate([np.full(len(gs.idx), 1.0 / len(gs.idx)) for gs in gene_sets])
    W = sp.csr_matrix((vals, (rows, cols)), shape=(ctx.n_vars, len(gene_sets)))
    return LinearPlan(W, set_info=[{} for _ in gene_sets])
