"""``zmean``: the mean of the signature genes' per-gene z-scores.

``z_ig = (x_ig - mu_g) / sd_g`` with ``mu_g``, ``sd_g`` the mean and SD (``ddof=1``) of gene ``g``
over all cells, as ``sc.pp.scale`` (without clipping) computes them; a gene with ``sd_g = 0`` has
``z = 0``, as in ``sc.pp.scale``. The score is ``mean_{g in S} z_ig``. Aggregating gene z-scores
follows Lee et al. 2008 (PLoS Comput Biol 4:e1000217, doi:10.1371/journal.pcbi.1000217), which
sums them and divides by ``sqrt(|S|)``; the mean used here is that value divided by ``sqrt(|S|)``.

Sparse, without densifying: ``mu_g`` and ``sd_g`` come from two passes over the stored values
(sums; then squared deviations from ``mu_g``, to which each of the ``n - nnz_g`` implicit zeros
adds ``mu_g**2``; float64). Because ``mean_g z_ig = sum_g x_ig / (|S| sd_g) - sum_g mu_g / (|S| sd_g)``,
the score is one weighted pass over the stored values plus a per-signature constant: the zeros of
``X`` stay zeros and nothing of size cells x genes is ever formed.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._base import LinearPlan, MethodMeta

META = MethodMeta(
    name="zmean",
    description="Mean of the signature genes' z-scores (each gene centred and scaled over all cells)",
    value_range=(-np.inf, np.inf),
    reference="https://doi.org/10.1371/journal.pcbi.1000217",
    assumptions="log-normalised expression; z is relative to the cells of this matrix, so scores "
    "depend on the dataset's cell-type composition",
    kind="linear",
    defaults={},
    gene_statistics=("gene_mean_sd",),
)


def prepare(ctx, gene_sets, *, random_state) -> LinearPlan:
    mean, sd = ctx.gene_mean_sd
    inv_sd = np.divide(1.0, sd, out=np.zeros_like(sd), where=sd > 0)  # sd = 0: z = 0, as sc.pp.scale
    rows, cols, vals = [], [], []
    offset = np.empty(len(gene_sets))
    for k, gs in enumerate(gene_sets):
        rows.append(gs.idx)
        cols.append(np.full(len(gs.idx), k))
        vals.append(np.full(len(gs.idx), 1.0 / len(gs.idx)))
        offset[k] = -np.dot(inv_sd[gs.idx], mean[gs.idx]) / len(gs.idx)
    W = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(ctx.n_vars, len(gene_sets))
    )
    # z_ig / |S| = x_ig * inv_sd_g / |S| - ...: the per-gene factor goes to the kernel, so each
    # signature keeps a single weight 1/|S|
    return LinearPlan(W, offset, gene_scale=inv_sd, set_info=[{} for _ in gene_sets])
