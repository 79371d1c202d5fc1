"""How much the answer depends on the scoring method: per-group means and rank concordance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy.stats import spearmanr

from .._constants import CELL_TYPE_KEY
from ..genes import match_signatures
from ..genes.matching import Signatures
from ._driver import MatrixContext, build_signed_plan, compute_scores, group_codes
from ._registry import get_method


class Concordance(NamedTuple):
    """``means``: ``signature, <groupby>, method, mean, rank, n_cells`` (rank 1 = highest mean of
    that signature under that method); ``concordance``: ``signature, method_a, method_b,
    spearman_groups, spearman_cells, n_groups``."""

    means: pd.DataFrame
    concordance: pd.DataFrame


def method_concordance(
    adata: AnnData,
    signatures: Signatures,
    *,
    methods: Sequence[str] = ("scanpy", "aucell", "ucell", "zmean"),
    groupby: str = CELL_TYPE_KEY,
    random_state: int | None = 0,
    layer: str | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> Concordance:
    """Score with each method and compare what they say about which groups are high.

    For every method the signatures are scored (same gene matching, same matrix; ``adata`` is not
    modified) and averaged per ``adata.obs[groupby]`` group. For every signature and pair of
    methods, two Spearman rank correlations: ``spearman_groups`` between the per-group means (do
    the methods order the cell types alike? the question the atlas pages ask) and
    ``spearman_cells`` between the per-cell scores. Scores of different methods are on different
    scales, so only ranks are compared.

    ``params`` optionally gives per-method parameters, e.g. ``{"ucell": {"max_rank": 1000}}``.
    Returns a :class:`Concordance` of two tidy DataFrames (``means, concordance``).

    Parameters
    ----------
    adata
        Log-normalised cells x genes with ``obs[groupby]``; not modified.
    signatures
        Catalogue ids or ``{name: genes}`` (a signed set scored as in :func:`sasp_atlas.score`).
    methods
        Engine names (:func:`sasp_atlas.engines.list_methods`).
    groupby
        The obs column whose groups are averaged and ranked.
    random_state
        Seed passed to every engine (control genes, tie-breaking).
    layer
        Score ``adata.layers[layer]`` instead of ``.X``.
    params
        Per-method parameters.
    """
    if len(methods) < 1:
        raise ValueError("methods must name at least one method")
    params = params or {}
    ctx = MatrixContext(adata.layers[layer] if layer else adata.X)
    gene_sets = match_signatures(signatures, pd.Index(adata.var_names.astype(str)))
    codes, labels = group_codes(adata, groupby)
    keep = codes >= 0
    counts = np.bincount(codes[keep], minlength=len(labels))
    mean_rows, per_method = [], {}
    for name in methods:
        module = get_method(name)
        plan = build_signed_plan(module, ctx, gene_sets, random_state=random_state, params=params.get(name, {}))
        cell_scores = compute_scores(ctx, plan)
        sums = np.zeros((len(labels), plan.n_sets))
        np.add.at(sums, codes[keep], cell_scores[keep])
        means = sums / np.maximum(counts, 1)[:, None]
        per_method[name] = (cell_scores, means)
        for k, gs in enumerate(gene_sets):
            ranks = pd.Series(means[:, k]).rank(ascending=False, method="min").to_numpy()
            for j, label in enumerate(labels):
                mean_rows.append(
                    {
                        "signature": gs.name,
                        groupby: label,
                        "method": module.META.name,
                        "mean": means[j, k],
                        "rank": int(ranks[j]),
                        "n_cells": int(counts[j]),
                    }
                )
    conc_rows = []
    for a, b in combinations(methods, 2):
        for k, gs in enumerate(gene_sets):
            ca, ma = per_method[a][0][:, k], per_method[a][1][:, k]
            cb, mb = per_method[b][0][:, k], per_method[b][1][:, k]
            conc_rows.append(
                {
                    "signature": gs.name,
                    "method_a": a,
                    "method_b": b,
                    "spearman_groups": _spearman(ma, mb),
                    "spearman_cells": _spearman(ca, cb),
                    "n_groups": len(labels),
                }
            )
    return Concordance(
        pd.DataFrame(mean_rows),
        pd.DataFrame(
            conc_rows, columns=["signature", "method_a", "method_b", "spearman_groups", "spearman_cells", "n_groups"]
        ),
    )


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)
