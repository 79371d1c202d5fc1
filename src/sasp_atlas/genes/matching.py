"""Gene matching: the one place where signature genes meet a dataset's ``var_names``.

Scoring engines, coverage tables, Table 2 and the user-file checks all match genes here, so a
gene counts as present (or missing) by one rule everywhere: signature genes are de-duplicated
(first occurrence kept) and looked up by exact symbol in ``var_names`` (which the data layer has
resolved to approved HGNC symbols and made unique, see :mod:`sasp_atlas.data.validate`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .signatures import get_signature

__all__ = ["resolve_signatures", "GeneSet", "match_gene_sets", "present_genes"]


def resolve_signatures(signatures: Sequence[str] | Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Catalogue ids -> gene lists; a mapping ``{name: genes}`` is taken as given."""
    if isinstance(signatures, str):
        signatures = [signatures]
    if isinstance(signatures, Mapping):
        return {str(k): list(v) for k, v in signatures.items()}
    return {s: get_signature(s) for s in signatures}


@dataclass(frozen=True)
class GeneSet:
    """One signature matched against ``var_names``."""

    name: str
    n_genes: int  # distinct genes in the signature
    used: pd.Index  # present in the data, signature order
    missing: pd.Index  # absent from the data
    idx: np.ndarray  # positions of ``used`` in var_names


def match_gene_sets(signatures: Mapping[str, Sequence[str]], var_names: pd.Index) -> list[GeneSet]:
    """De-duplicate and match every signature; raise naming any signature with no gene present.

    A gene name occurring more than once in ``var_names`` is matched to its first column.
    """
    position: dict[str, int] = {}
    for i, name in enumerate(var_names):
        position.setdefault(name, i)
    out = []
    for name, genes in signatures.items():
        gene_list = list(dict.fromkeys(str(g) for g in genes))
        used = [g for g in gene_list if g in position]
        missing = [g for g in gene_list if g not in position]
        if not used:
            raise ValueError(f"signature {name!r}: none of its {len(gene_list)} genes is in the data "
                             "(are var_names gene symbols?)")
        out.append(GeneSet(name, len(gene_list), pd.Index(used), pd.Index(missing, dtype=object),
                           np.array([position[g] for g in used], dtype=np.int64)))
    return out


def present_genes(genes: Sequence[str], var_names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(used, missing)``: the de-duplicated ``genes`` found in ``var_names`` and those not found,
    each in signature order (no error when none is present)."""
    present = set(map(str, var_names))
    genes = list(dict.fromkeys(map(str, genes)))
    return [g for g in genes if g in present], [g for g in genes if g not in present]
