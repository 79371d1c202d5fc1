"""Gene matching: the one place where signature genes meet a dataset's ``var_names``.

Scoring engines, coverage tables, Table 2 and the user-file checks all match genes here, so a
gene counts as present (or missing) by one rule everywhere: signature genes are de-duplicated
(first occurrence kept) and looked up by exact symbol in ``var_names`` (which the data layer has
resolved to approved HGNC symbols and made unique, see :mod:`sasp_atlas.data.validate`).

Signed signatures (a direction per gene: +1 up in senescent cells, -1 down) are matched as two parts,
the up genes and the down genes (:class:`SignedGeneSet`), each de-duplicated and matched by the same
rule; the engines score the parts in the same pass as every other set and report
``score(up) - score(down)`` under the signature's name (:func:`sasp_atlas.score`). A signature is
signed when it is a catalogue id with ``directions`` (:func:`sasp_atlas.genes.is_signed`) or a user
mapping ``{name: {gene: +1 | -1}}``; a list of genes is unsigned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .signatures import get_signature, get_signed_signature, is_signed

__all__ = [
    "resolve_signatures",
    "resolve_directions",
    "GeneSet",
    "SignedGeneSet",
    "match_gene_sets",
    "match_signatures",
    "present_genes",
]

#: what :func:`sasp_atlas.score` accepts: catalogue ids, or ``{name: genes}`` / ``{name: {gene: +1 | -1}}``
Signatures = Sequence[str] | Mapping[str, Sequence[str] | Mapping[str, int]]


def resolve_signatures(signatures: Signatures) -> dict[str, list[str]]:
    """Catalogue ids -> gene lists; a mapping ``{name: genes}`` is taken as given. A signed set gives
    all its genes (up and down; :func:`resolve_directions` has their directions)."""
    if isinstance(signatures, str):
        signatures = [signatures]
    if isinstance(signatures, Mapping):
        return {str(k): list(v) for k, v in signatures.items()}  # a {gene: sign} mapping lists its genes
    return {s: get_signature(s) for s in signatures}


def resolve_directions(signatures: Signatures) -> dict[str, dict[str, int]]:
    """``{name: {gene: +1 | -1}}`` for the signed signatures among ``signatures`` (unsigned ones are absent).

    Signed: a catalogue id with ``directions`` (:func:`~sasp_atlas.genes.get_signed_signature`), or a
    mapping value that is itself a mapping ``{gene: +1 | -1}``; any other sign is an error naming the gene.

    Parameters
    ----------
    signatures
        Catalogue ids, or ``{name: genes}`` with ``genes`` a list (unsigned) or ``{gene: +1 | -1}`` (signed).
    """
    if isinstance(signatures, str):
        signatures = [signatures]
    if not isinstance(signatures, Mapping):
        return {s: get_signed_signature(s) for s in signatures if is_signed(s)}
    out = {}
    for name, genes in signatures.items():
        if not isinstance(genes, Mapping):
            continue
        bad = {str(g): d for g, d in genes.items() if isinstance(d, bool) or d not in (1, -1)}
        if bad:
            raise ValueError(
                f"signature {name!r}: a signed set maps each gene to +1 (up) or -1 (down); got "
                f"{dict(list(bad.items())[:5])}"
            )
        out[str(name)] = {str(g): int(d) for g, d in genes.items()}
    return out


@dataclass(frozen=True)
class GeneSet:
    """One signature matched against ``var_names``."""

    name: str
    n_genes: int  # distinct genes in the signature
    used: pd.Index  # present in the data, signature order
    missing: pd.Index  # absent from the data
    idx: np.ndarray  # positions of ``used`` in var_names


@dataclass(frozen=True)
class SignedGeneSet:
    """One signed signature matched against ``var_names``: its up and down parts, each a :class:`GeneSet`
    (named ``<name>[up]`` and ``<name>[down]``). ``n_genes``, ``used``, ``missing`` and ``idx`` cover both
    parts, up first, for coverage."""

    name: str
    up: GeneSet
    down: GeneSet

    @property
    def parts(self) -> tuple[GeneSet, GeneSet]:
        return self.up, self.down

    @property
    def n_genes(self) -> int:
        return self.up.n_genes + self.down.n_genes

    @property
    def used(self) -> pd.Index:
        return self.up.used.append(self.down.used)

    @property
    def missing(self) -> pd.Index:
        return self.up.missing.append(self.down.missing)

    @property
    def idx(self) -> np.ndarray:
        return np.concatenate([self.up.idx, self.down.idx])


def match_signatures(signatures: Signatures, var_names: pd.Index) -> list[GeneSet | SignedGeneSet]:
    """Resolve and match every signature: a :class:`GeneSet` per unsigned one, a :class:`SignedGeneSet`
    per signed one (:func:`resolve_directions`), in the order given.

    A signed set's parts are matched like unsigned sets; a part with no gene present is an error
    naming the signature and the part (its score would rest on one direction only).

    Parameters
    ----------
    signatures
        Catalogue ids, or ``{name: genes}`` with ``genes`` a list (unsigned) or ``{gene: +1 | -1}`` (signed).
    var_names
        The dataset's gene symbols (``adata.var_names``).

    Returns
    -------
    list
        One :class:`GeneSet` or :class:`SignedGeneSet` per signature (the parts named ``<name>[up]``,
        ``<name>[down]``); a signature with no gene present raises ``ValueError`` naming it.
    """
    genes = resolve_signatures(signatures)
    directions = resolve_directions(signatures)
    flat: dict[str, list[str]] = {}
    for name, gene_list in genes.items():
        if name in directions:
            flat[f"{name}[up]"] = [g for g in gene_list if directions[name][str(g)] > 0]
            flat[f"{name}[down]"] = [g for g in gene_list if directions[name][str(g)] < 0]
            for part in ("up", "down"):
                if not flat[f"{name}[{part}]"]:
                    raise ValueError(
                        f"signed signature {name!r} has no {part} genes: give it as a list of genes (unsigned) instead"
                    )
        else:
            flat[name] = gene_list
    position = pd.Index(var_names)
    present = set(map(str, position))
    for name in directions:
        for part in ("up", "down"):
            part_genes = flat[f"{name}[{part}]"]
            if not any(str(g) in present for g in part_genes):
                raise ValueError(
                    f"signed signature {name!r}: none of its {len(part_genes)} {part} genes is in the "
                    "data, so up minus down is undefined (score its other genes as an unsigned list)"
                )
    matched = {gs.name: gs for gs in match_gene_sets(flat, position)}
    return [
        SignedGeneSet(name, matched[f"{name}[up]"], matched[f"{name}[down]"]) if name in directions else matched[name]
        for name in genes
    ]


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
            raise ValueError(
                f"signature {name!r}: none of its {len(gene_list)} genes is in the data (are var_names gene symbols?)"
            )
        out.append(
            GeneSet(
                name,
                len(gene_list),
                pd.Index(used),
                pd.Index(missing, dtype=object),
                np.array([position[g] for g in used], dtype=np.int64),
            )
        )
    return out


def present_genes(genes: Sequence[str], var_names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(used, missing)``: the de-duplicated ``genes`` found in ``var_names`` and those not found,
    each in signature order (no error when none is present)."""
    present = set(map(str, var_names))
    genes = list(dict.fromkeys(map(str, genes)))
    return [g for g in genes if g in present], [g for g in genes if g not in present]
