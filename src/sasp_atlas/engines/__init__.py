"""Scoring engines: one module per method, one shared driver (decoupler-style method registry).

Every method is a small module with its numba kernel, a :class:`MethodMeta` record (name,
description, value range, reference DOI, input assumptions, parameters) and a ``prepare`` function;
:mod:`._driver` does the gene matching, batching over cells and output for all of them, so every
method takes the same inputs and writes the same ``adata`` slots.

========  ==============================================================  =====================
method    score                                                            equals
========  ==============================================================  =====================
scanpy    signature mean - expression-matched control mean (Tirosh 2016)   ``sc.tl.score_genes``
aucell    recovery-curve AUC in the top ``n_up`` ranks (Aibar 2017)         ``dc.mt.aucell``
ucell     Mann-Whitney U of ranks truncated at 1500 (Andreatta 2021)       ``pyucell``
mean      mean of the signature genes                                      ``X[:, S].mean(1)``
zmean     mean of per-gene z-scores                                        ``sc.pp.scale`` + mean
========  ==============================================================  =====================
"""

from __future__ import annotations

from types import ModuleType

import pandas as pd

from . import _aucell, _mean, _scanpy, _ucell, _zmean
from ._base import MethodMeta, Plan
from ._concordance import Concordance, method_concordance
from ._driver import (GeneSet, MatrixContext, compute_scores, group_means, match_gene_sets, resolve_signatures,
                      score)

__all__ = ["list_methods", "get_method", "score", "method_concordance", "Concordance", "MethodMeta", "Plan",
           "MatrixContext", "GeneSet", "match_gene_sets", "resolve_signatures", "compute_scores", "group_means",
           "METHODS"]

_REGISTRY: dict[str, ModuleType] = {m.META.name: m for m in (_scanpy, _aucell, _ucell, _mean, _zmean)}
METHODS = tuple(_REGISTRY)


def get_method(name: str) -> ModuleType:
    """The module of method ``name`` (its ``META``, kernel and ``prepare``)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown scoring method {name!r}; available: {', '.join(METHODS)}") from None


def list_methods() -> pd.DataFrame:
    """One row per method: ``name, description, value_range, reference, assumptions, kind, params``."""
    return pd.DataFrame([m.META.record() for m in _REGISTRY.values()])
