"""``expected``: the Tirosh control-gene score averaged over every possible control draw (seed-free).

scanpy's score (:mod:`._scanpy`) subtracts the mean of ``ctrl_size`` genes drawn at random from each
expression bin a signature gene falls in, so a cell's score moves with the seed (per-cell scores of
seeds 0 and 1 correlate at r = 0.97-0.98 on the core data). This method replaces the draw by its
expectation (Rao-Blackwellisation): every gene of a touched bin enters the control with its
probability of being drawn, ``min(ctrl_size, |bin|) / |bin|``, signature genes excluded, and the
control is the weighted mean of those genes. Each touched bin therefore weighs as much as scanpy's
``ctrl_size`` draws from it do on average; the bins (``n_bins`` quantiles of the gene means over all
cells) and the signature part are scanpy's (Tirosh et al. 2016, Science 352:189,
doi:10.1126/science.aad0501). The gene means are exact sums (:attr:`._driver.MatrixContext.exact_gene_means`:
fixed-point integers, < 9e-13 from exact) where scanpy sums float32 values in float32 row after row;
so the bins do not depend on the order of the cells, their chunking or the thread count, which lets
the dask engine sum chunks in parallel. The two sets of means differ by ~1e-6 relative on the core
data and no gene changes bin between them there; where scanpy's rounding does move a gene across a
bin edge (tested on a constructed case), ``expected`` follows the exact means.

The score is the same for every ``random_state`` and equals the mean of scanpy's score over many
seeds up to the ratio of expectations (tested: the mean over 200 seeds is within Monte-Carlo error).
Units: those of ``X`` (log-normalised expression); 0 = as expressed as expression-matched genes.
Kernel: linear (``X @ W``), one pass over the CSR rows; every gene of a touched bin has its own weight
in every set, so ``W`` is held as dense rows (:func:`._linear.linear_table`).
"""

from __future__ import annotations

import numpy as np

from ._base import LinearPlan, MethodMeta
from ._scanpy import bin_members, control_gene_plan, expression_bins

META = MethodMeta(
    name="expected",
    description="Tirosh 2016 control-gene score with the control draw replaced by its expectation: every gene "
    "of a touched expression bin weighted by its chance of being drawn (seed-free); the atlas default",
    value_range=(-np.inf, np.inf),
    reference="https://doi.org/10.1126/science.aad0501",
    assumptions="log-normalised, unscaled expression; gene means (the bins) are taken over all cells of the "
    "matrix scored, so scores depend on the dataset's composition",
    kind="linear",
    defaults={"ctrl_size": 50, "n_bins": 25},
    gene_statistics=("exact_gene_means",),
)


def control_weights(
    sig_idx: np.ndarray, bins: np.ndarray, members: dict[float, np.ndarray], *, ctrl_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(gene positions, weights summing to 1)`` of the expected control of one signature."""
    sig_bins = bins[sig_idx]
    cuts = np.unique(sig_bins[np.isfinite(sig_bins)])
    if cuts.size == 0:
        return np.empty(0, np.int64), np.empty(0)
    pools = [members[float(c)] for c in cuts]
    genes = np.concatenate(pools)
    # chance of each gene of a bin to be among scanpy's ctrl_size draws from it
    chance = np.concatenate([np.full(len(p), min(ctrl_size, len(p)) / len(p)) for p in pools])
    keep = ~np.isin(genes, sig_idx)
    genes, chance = genes[keep], chance[keep]
    return genes.astype(np.int64), chance / chance.sum() if chance.size else chance


def prepare(ctx, gene_sets, *, random_state, ctrl_size, n_bins) -> LinearPlan:
    bins = expression_bins(ctx.exact_gene_means, n_bins)
    members = bin_members(bins)
    return control_gene_plan(
        ctx,
        gene_sets,
        lambda gs: control_weights(gs.idx, bins, members, ctrl_size=ctrl_size),
        {"ctrl_size": ctrl_size, "n_bins": n_bins},
    )
