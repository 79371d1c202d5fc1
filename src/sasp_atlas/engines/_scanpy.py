"""``scanpy``: the control-gene score of Tirosh et al. 2016, exactly as ``scanpy.tl.score_genes``.

Score = mean expression of the signature genes minus the mean of control genes drawn from the same
expression bins (Tirosh et al. 2016, Science 352:189, doi:10.1126/science.aad0501; Satija 2015 /
Seurat ``AddModuleScore``). Genes are ranked by their mean over all cells and cut into ``n_bins``
bins; for each bin the signature touches, ``ctrl_size`` genes are sampled; signature genes are
removed from the controls. Units: those of ``X``; 0 = no different from expression-matched genes.

Exactness: the controls are drawn exactly as scanpy 1.11 draws them (gene means from
``X.sum(axis=0, dtype="float64")``, pandas ``rank(method="min") // n_items``, a numpy
``RandomState(random_state)`` reset per signature and ``choice(n, ctrl_size, replace=False)`` per
touched bin in ascending bin order, which is what ``Series.sample`` draws from the seeded global
RNG). The scores then equal ``scanpy.tl.score_genes(adata, genes, random_state=...)`` signature by
signature to ~1e-7 (float64 sums here, float32 in scanpy).

Kernel: the score is linear, ``X @ (W_sig - W_ctrl)``: one pass over the CSR rows. Because scanpy
reseeds the same RNG for every signature, the control sets of different signatures are drawn from the
same per-bin pools, so genes fall into a few hundred to a thousand classes of identical weights; each
stored value is added once into its gene's class (:class:`._linear.ClassTable`, chosen by
:func:`._linear.linear_table`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._base import LinearPlan, MethodMeta

META = MethodMeta(
    name="scanpy",
    description="Tirosh 2016 control-gene score: mean of the signature genes minus the mean of "
    "expression-bin-matched control genes; equals scanpy.tl.score_genes",
    value_range=(-np.inf, np.inf),
    reference="https://doi.org/10.1126/science.aad0501",
    assumptions="log-normalised, unscaled expression; gene means (the bins) are taken over all cells "
    "of the matrix scored, so scores depend on the dataset's composition",
    kind="linear",
    defaults={"ctrl_size": 50, "n_bins": 25},
    gene_statistics=("scanpy_gene_means",),
)


def expression_bins(gene_means: np.ndarray, n_bins: int = 25) -> np.ndarray:
    """scanpy's expression bin of every gene (float; NaN where the mean is not finite).

    ``rank(method="min") // round(n_finite / (n_bins - 1))`` over the genes with a finite mean.
    """
    means = pd.Series(np.asarray(gene_means, dtype=np.float64))
    finite = np.isfinite(means.to_numpy())
    obs_avg = means[finite]
    n_items = int(np.round(len(obs_avg) / (n_bins - 1)))
    bins = np.full(len(means), np.nan)
    bins[finite] = (obs_avg.rank(method="min") // n_items).to_numpy()
    return bins


def bin_members(bins: np.ndarray) -> dict[float, np.ndarray]:
    """Bin -> gene positions in it, in ``var_names`` order (the order scanpy samples from)."""
    finite = np.flatnonzero(np.isfinite(bins))
    order = finite[np.argsort(bins[finite], kind="stable")]
    keys, starts = np.unique(bins[order], return_index=True)
    return dict(zip(keys.tolist(), np.split(order, starts[1:]), strict=True))


def control_indices(
    sig_idx: np.ndarray,
    bins: np.ndarray,
    members: dict[float, np.ndarray],
    *,
    ctrl_size: int,
    rng: np.random.RandomState,
) -> np.ndarray:
    """Control gene positions for one signature (positions ``sig_idx``), drawing from ``rng``."""
    picked = []
    for cut in np.unique(bins[sig_idx]):
        r_genes = members[float(cut)]
        if ctrl_size < len(r_genes):
            r_genes = r_genes[rng.choice(len(r_genes), size=ctrl_size, replace=False)]
        picked.append(r_genes)
    control = np.unique(np.concatenate(picked)) if picked else np.empty(0, np.int64)
    return np.setdiff1d(control, sig_idx, assume_unique=False)


def _rng(random_state: int | None) -> np.random.RandomState:
    return np.random.RandomState(random_state) if random_state is not None else np.random.mtrand._rand


def control_gene_plan(ctx, gene_sets, controls, params: dict) -> LinearPlan:
    """The linear plan of a control-gene score: the signature's mean minus a weighted control mean.

    ``controls(gene_set)`` returns ``(control gene positions, weights summing to 1)``; shared by
    ``scanpy`` (one drawn control set, equal weights) and ``expected`` (every gene of the touched
    bins, weighted by its chance of being drawn).
    """
    rows, cols, vals, info = [], [], [], []
    for k, gs in enumerate(gene_sets):
        ctrl, weights = controls(gs)
        if len(ctrl) == 0:
            raise RuntimeError(f"signature {gs.name!r}: no control genes found in any expression bin")
        rows += [gs.idx, ctrl]
        cols += [np.full(len(gs.idx), k), np.full(len(ctrl), k)]
        vals += [np.full(len(gs.idx), 1.0 / len(gs.idx)), -np.asarray(weights, dtype=np.float64)]
        info.append({"n_control_genes": int(len(ctrl))})
    W = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(ctx.n_vars, len(gene_sets))
    )
    return LinearPlan(W, set_info=info, params=params)


def prepare(ctx, gene_sets, *, random_state, ctrl_size, n_bins) -> LinearPlan:
    bins = expression_bins(ctx.scanpy_gene_means, n_bins)
    members = bin_members(bins)

    def drawn(gs):  # scanpy reseeds the same RNG for every signature
        ctrl = control_indices(gs.idx, bins, members, ctrl_size=ctrl_size, rng=_rng(random_state))
        return ctrl, np.full(len(ctrl), 1.0 / max(len(ctrl), 1))

    return control_gene_plan(ctx, gene_sets, drawn, {"ctrl_size": ctrl_size, "n_bins": n_bins})
