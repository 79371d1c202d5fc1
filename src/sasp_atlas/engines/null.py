"""Is a signature *high* in a cell type? An expression-matched random-gene-set null.

A cell type's mean score means little on its own: every method's scale depends on how many genes a
signature has, how highly expressed they are and how deeply the cells were sequenced. The null
asks instead whether the signature scores higher than gene sets that look like it but are random.

Method. For each signature, ``n_null`` random gene sets are drawn with the *same expression-bin
composition* as the signature's genes present in the data: genes are binned as
``scanpy.tl.score_genes`` bins them (gene means over all cells ranked, ``n_bins`` bins; see
:func:`sasp_atlas.engines._scanpy.expression_bins`), and for every bin holding ``k`` signature
genes, ``k`` genes are drawn without replacement from that bin's other genes (from the whole bin if
it has fewer than ``k`` non-signature genes). The draws use scanpy's float32 gene means for every
method; the ``expected`` scores of the drawn sets use that engine's exact gene means
(:attr:`~sasp_atlas.engines.MatrixContext.exact_gene_means`), which put every gene in the same bin
on the core data. The signature and all its random sets are scored
together, through the same engine and the same driver in one pass over the cells, and averaged per
cell type. Per (signature, cell type):

* ``observed_mean``: the cell type's mean score of the signature;
* ``null_mean``, ``null_sd`` (``ddof=1``): over the ``n_null`` random sets' cell-type means;
* ``z = (observed_mean - null_mean) / null_sd``;
* ``empirical_p = (1 + #{null >= observed}) / (1 + n_null)`` (one-sided, never 0; Phipson &
  Smyth 2010, Stat Appl Genet Mol Biol 9:39, doi:10.2202/1544-6115.1585).

This is the "random gene sets of matched expression" control of gene-set scoring (Tirosh et al.
2016, doi:10.1126/science.aad0501, draw one such set per signature as the control genes; here the
whole distribution is drawn). It tests the *gene set*, with the cells as given: cells of one sample
are not independent, so a small p says the signature stands out among expression-matched genes in
this cell type, not that it would replicate across patients.

Randomness: one numpy ``default_rng([seed, crc32(signature name)])`` per signature, so a
signature's null does not depend on which other signatures are scored or in what order; ``seed``
is recorded in ``DataFrame.attrs``. Signatures are scored on their present genes only (for
``ucell`` no missing gene is imputed), exactly like their random sets.

Speed. For the ``expected`` method (linear, seed-free controls) a cell type's mean score is a
function of the cell type's mean expression of each gene: ``mean(G[S]) - control(S)``, where the
control is the selection-probability-weighted mean of the touched bins' genes minus the set's own
genes. :func:`_expected_group_means` takes the per-type gene means (one pass over ``X``) and
then every random set in O(|S|), so 1,000 sets per signature cost about as much as one; the result
equals the group means of :func:`sasp_atlas.score` exactly (tested).

Signed signatures (a direction per gene, :func:`sasp_atlas.genes.match_signatures`). Each random set
is signed too: its up part is drawn with the bin composition of the signature's up genes, its down part
with that of its down genes (the two draws independent, each excluding only its own part's genes, from
the signature's one generator, up then down), and it is scored as the signature is, ``score(up) -
score(down)`` (``ucell``: ``max(0, U(up) - U(down))``) cell by cell, then averaged per cell type.
So the null asks whether the signed contrast stands out among contrasts of expression-matched random
genes. ``husi`` refuses signed sets, as in :func:`sasp_atlas.score`.

Array types. The matrix is read through the driver's context (:func:`~sasp_atlas.engines._driver.matrix_context`),
so a dask array of row chunks gets the same random sets (from the same gene means) and the same
table; its group means come from per-chunk pseudobulk gene sums (linear methods) or per-chunk score
sums (``aucell``, ``ucell``), and ``ssgsea``/``gsva`` are refused.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from .._constants import CELL_TYPE_KEY
from ..genes import GeneSet, SignedGeneSet, match_signatures
from ..genes.matching import Signatures
from ._driver import build_signed_plan, group_codes, group_means, matrix_context, resolve_params
from ._registry import get_method
from ._scanpy import bin_members, expression_bins

__all__ = ["celltype_null", "draw_null_sets", "NULL_COLUMNS"]

NULL_COLUMNS = ["signature", "observed_mean", "null_mean", "null_sd", "z", "empirical_p", "n_cells"]


def draw_null_sets(
    gene_means: np.ndarray, signature_idx: np.ndarray, *, n_null: int = 100, n_bins: int = 25, rng: np.random.Generator
) -> list[np.ndarray]:
    """``n_null`` random gene sets (positions) with the expression-bin composition of ``signature_idx``.

    Genes whose mean is not finite have no bin and are left out of the composition.
    """
    bins = expression_bins(gene_means, n_bins)
    members = bin_members(bins)
    sig = np.unique(signature_idx)
    sig_bins = bins[sig]
    cuts, counts = np.unique(sig_bins[np.isfinite(sig_bins)], return_counts=True)
    pools = []
    for cut, k in zip(cuts, counts, strict=True):
        pool = np.setdiff1d(members[float(cut)], sig, assume_unique=True)
        pools.append((pool if len(pool) >= k else members[float(cut)], int(k)))
    return [
        np.concatenate([rng.choice(pool, k, replace=False) for pool, k in pools]).astype(np.int64)
        for _ in range(n_null)
    ]


def _expected_group_means(
    gene_sums: np.ndarray,
    counts: np.ndarray,
    gene_means: np.ndarray,
    sets: list[np.ndarray],
    *,
    ctrl_size: int,
    n_bins: int,
) -> np.ndarray:
    """Group means of the ``expected`` score of every gene set (positions), ``(n_groups, n_sets)``, from
    the per-group gene sums ``gene_sums`` of ``counts`` cells each and the gene means of the bins."""
    n_groups, n_vars = gene_sums.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        G = gene_sums / counts[:, None]  # groups x genes: mean expression of each gene per group
    bins = expression_bins(gene_means, n_bins)
    members = bin_members(bins)
    cuts = sorted(members)
    bin_of = np.full(n_vars, -1, dtype=np.int64)
    chance = np.zeros(n_vars)
    A = np.zeros((n_groups, len(cuts)))  # chance-weighted sum of each bin's gene means
    P = np.zeros(len(cuts))  # total chance of each bin
    for b, cut in enumerate(cuts):
        genes = members[cut]
        bin_of[genes] = b
        chance[genes] = min(ctrl_size, len(genes)) / len(genes)
        A[:, b] = G[:, genes] @ chance[genes]
        P[b] = chance[genes].sum()
    out = np.zeros((n_groups, len(sets)))
    for k, idx in enumerate(sets):
        touched = np.unique(bin_of[idx][bin_of[idx] >= 0])
        num = A[:, touched].sum(axis=1) - G[:, idx] @ chance[idx]
        den = P[touched].sum() - chance[idx].sum()
        out[:, k] = G[:, idx].mean(axis=1) - num / den
    return out


def _signature_rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def null_table(means, counts, observed, labels, *, n_null: int, groupby: str, attrs: dict) -> pd.DataFrame:
    """The null table from group means: columns ``0 .. len(observed)-1`` hold the observed signatures,
    then ``n_null`` columns per signature its random sets, in order (as :func:`celltype_null` scores them)."""
    n_sig = len(observed)
    rows = []
    for k, gs in enumerate(observed):
        null = means[:, n_sig + k * n_null : n_sig + (k + 1) * n_null]
        obs = means[:, k]
        null_mean = null.mean(axis=1)
        null_sd = null.std(axis=1, ddof=1) if n_null > 1 else np.full(len(labels), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (obs - null_mean) / null_sd
        p = (1 + (null >= obs[:, None]).sum(axis=1)) / (1 + n_null)
        for c, label in enumerate(labels):
            rows.append(
                {
                    "signature": gs.name,
                    groupby: label,
                    "observed_mean": obs[c],
                    "null_mean": null_mean[c],
                    "null_sd": null_sd[c],
                    "z": z[c],
                    "empirical_p": p[c],
                    "n_cells": int(counts[c]),
                }
            )
    out = pd.DataFrame(rows, columns=["signature", groupby] + NULL_COLUMNS[1:])
    out.attrs = attrs
    return out


def _present_only(gs: GeneSet) -> GeneSet:
    """``gs`` with its present genes only (a missing gene is then never imputed, as for its random sets)."""
    return GeneSet(gs.name, len(gs.used), gs.used, pd.Index([]), gs.idx)


def _random_set(name: str, idx: np.ndarray, var_names: pd.Index) -> GeneSet:
    return GeneSet(name, len(idx), var_names[idx], pd.Index([]), idx)


def _parts(sets: list[GeneSet | SignedGeneSet]) -> tuple[list[GeneSet], list[tuple[int, int | None]]]:
    """The sets' parts (an unsigned set is one part) and, per set, its ``(part, None)`` or ``(up, down)`` columns."""
    parts, columns = [], []
    for gs in sets:
        if isinstance(gs, SignedGeneSet):
            columns.append((len(parts), len(parts) + 1))
            parts.extend(gs.parts)
        else:
            columns.append((len(parts), None))
            parts.append(gs)
    return parts, columns


def celltype_null(
    adata: AnnData,
    signatures: Signatures,
    *,
    method: str = "scanpy",
    groupby: str = CELL_TYPE_KEY,
    n_null: int = 100,
    seed: int = 0,
    n_bins: int = 25,
    random_state: int | None = 0,
    layer: str | None = None,
    compute_kwargs: Mapping[str, Any] | None = None,
    **params,
) -> pd.DataFrame:
    """Per (signature, cell type): observed mean score against ``n_null`` expression-matched random sets.

    Parameters
    ----------
    adata
        Cells x genes (as for :func:`sasp_atlas.score`, a dask array of row chunks included); not modified.
    signatures
        Catalogue ids or a mapping ``{name: genes}`` (``genes`` a list, or ``{gene: +1 | -1}`` for a signed
        set; see :func:`sasp_atlas.score`). Signed sets get signed random sets (module docstring).
    method, random_state, layer, params
        The scoring engine and its options, as in :func:`sasp_atlas.score`; the signature and its
        random sets are scored with the same ones.
    groupby
        Column of ``adata.obs`` holding the cell types (cells with a missing value are left out).
    n_null
        Random gene sets per signature.
    seed
        Seed of the random gene sets (see the module docstring).
    n_bins
        Expression bins for matching (scanpy's binning).
    compute_kwargs
        Dask-backed ``X`` only: passed to ``dask.compute``.

    Returns
    -------
    pandas.DataFrame
        A tidy DataFrame ``signature, <groupby>, observed_mean, null_mean, null_sd, z,
        empirical_p, n_cells`` with ``attrs`` ``{"method", "n_null", "seed", "n_bins", "random_state",
        "params"}``. See the module docstring for the method and its references.
    """
    if n_null < 1:
        raise ValueError(f"n_null must be >= 1, not {n_null}")
    module = get_method(method)
    ctx = matrix_context(adata.layers[layer] if layer else adata.X, compute_kwargs=compute_kwargs)
    ctx.check_method(module.META)
    ctx.prefetch(("scanpy_gene_means", *module.META.gene_statistics))  # the random sets' bins, then the method's
    var_names = pd.Index(adata.var_names.astype(str))
    observed: list[GeneSet | SignedGeneSet] = []
    for gs in match_signatures(signatures, var_names):
        observed.append(
            SignedGeneSet(gs.name, _present_only(gs.up), _present_only(gs.down))
            if isinstance(gs, SignedGeneSet)
            else _present_only(gs)
        )
    null_sets: list[GeneSet | SignedGeneSet] = []
    for gs in observed:
        rng = _signature_rng(seed, gs.name)
        if isinstance(gs, SignedGeneSet):
            ups, downs = (
                draw_null_sets(ctx.scanpy_gene_means, part.idx, n_null=n_null, n_bins=n_bins, rng=rng)
                for part in gs.parts
            )
            null_sets.extend(
                SignedGeneSet(
                    f"{gs.name}[null {j}]",
                    _random_set(f"{gs.name}[null {j}][up]", up, var_names),
                    _random_set(f"{gs.name}[null {j}][down]", down, var_names),
                )
                for j, (up, down) in enumerate(zip(ups, downs, strict=True))
            )
        else:
            null_sets.extend(
                _random_set(f"{gs.name}[null {j}]", idx, var_names)
                for j, idx in enumerate(
                    draw_null_sets(ctx.scanpy_gene_means, gs.idx, n_null=n_null, n_bins=n_bins, rng=rng)
                )
            )
    codes, labels = group_codes(adata, groupby)
    if module.META.name == "expected":  # linear and seed-free: every set from the per-type gene means
        resolved = resolve_params(module.META, params)
        counts = np.bincount(codes[codes >= 0], minlength=len(labels)).astype(np.float64)
        parts, columns = _parts(observed + null_sets)
        part_means = _expected_group_means(
            ctx.group_gene_sums(codes, len(labels)),
            counts,
            ctx.exact_gene_means,
            [gs.idx for gs in parts],
            ctrl_size=resolved["ctrl_size"],
            n_bins=resolved["n_bins"],
        )
        # the expected score is linear: a cell type's mean of up minus down is the difference of the means
        means = (
            part_means
            if len(parts) == len(columns)
            else np.column_stack(
                [part_means[:, up] if down is None else part_means[:, up] - part_means[:, down] for up, down in columns]
            )
        )
        plan_params = dict(resolved)
    else:
        plan = build_signed_plan(module, ctx, observed + null_sets, random_state=random_state, params=params)
        means, counts = group_means(ctx, plan, codes, len(labels))
        plan_params = dict(plan.params)
    return null_table(
        means,
        counts,
        observed,
        labels,
        n_null=n_null,
        groupby=groupby,
        attrs={
            "method": module.META.name,
            "n_null": n_null,
            "seed": seed,
            "n_bins": n_bins,
            "random_state": random_state,
            "params": plan_params,
        },
    )
