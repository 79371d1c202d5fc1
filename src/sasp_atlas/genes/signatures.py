"""The signature catalogue: our curated gene-set YAML files (``signature_sets/*.yaml``).

Each file holds ``id, name, family, species, description, genes, source {citation, doi, pmid,
table, url}, license, curation_notes`` (and optional ``categories``). The files are the single
source of truth; tests compare them gene for gene with the verified references.

Optional provenance and direction fields (checked when the catalogue is read):

* ``directions``: ``{gene: +1 | -1}`` for every gene of a *signed* set (up / down in senescent cells,
  where the source gives a direction per gene). :func:`get_signature` still returns the plain gene
  list; :func:`get_signed_signature` returns the scored symbols with their directions.
* ``derived_from``: accessions (GEO ``GSE...``, ArrayExpress ``E-MTAB-...``, SRA/BioProject) of the
  data sets the source says the signature was derived from, so that a benchmark on one of them can be
  flagged (``training_overlap``); ``derived_from_complete: false`` says the source used more data
  sets than are listed (an accession not listed is then not shown to be independent).

The files keep the genes as published (:func:`signature_record`). :func:`get_signature` returns
the genes the atlas scores, as human symbols resolved like the datasets' ``var_names``
(:mod:`sasp_atlas.genes`; :func:`signature_resolution` shows every step):

* ``species: human``: HGNC (2022-04-04) aliases/previous symbols of exactly one gene -> approved
  symbol; approved symbols stay (also when they are an alias of another gene, e.g. SPP1); ambiguous
  aliases and unknown symbols (e.g. symbols approved after April 2022 such as H2BC26) are kept as
  published, and ambiguous ones are named in a warning.
* ``species: mouse``: HCOP orthologs (:func:`sasp_atlas.genes.mouse_to_human`): one-to-one,
  many-to-one and same-symbol orthologs are mapped; mouse genes with several human orthologs and
  none of the same symbol, or with none, are dropped and named in a warning.

A symbol that resolves to a gene already in the list (published twice under two names) is scored once.
"""

from __future__ import annotations

import re
import warnings
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .symbols import MAPPED_ORTHOLOG_STATUSES, mouse_to_human, resolve_symbols

__all__ = [
    "lineage_markers",
    "catalogue",
    "get_signature",
    "get_signed_signature",
    "is_signed",
    "derived_from",
    "list_signatures",
    "signature_record",
    "signature_resolution",
    "SignatureResolutionWarning",
    "jaccard_matrix",
]

REQUIRED = ("id", "name", "species", "genes", "source", "license")
#: accession forms accepted in ``derived_from`` (GEO series, ArrayExpress/BioStudies, SRA/ENA projects)
ACCESSION = re.compile(r"^(GSE\d+|E-[A-Z]{4}-\d+|PRJ[NED][A-Z]?\d+|[SED]RP\d+)$")


def _check_record(rec: dict[str, Any], filename: str) -> None:
    """The optional ``directions`` / ``derived_from`` fields: one direction (+1/-1) for every gene, accessions by form."""
    genes = rec["genes"]
    if len(set(genes)) != len(genes):
        raise ValueError(f"signature {rec['id']!r}: duplicated genes")
    if "directions" in rec:
        directions = rec["directions"]
        if not isinstance(directions, dict) or set(map(str, directions)) != set(genes):
            missing = sorted(set(genes) - set(map(str, directions or {})))
            extra = sorted(set(map(str, directions or {})) - set(genes))
            raise ValueError(
                f"signature file {filename}: 'directions' must give every gene of 'genes' once "
                f"(missing: {missing[:5]}, not in genes: {extra[:5]})"
            )
        bad = {g: d for g, d in directions.items() if d not in (1, -1) or isinstance(d, bool)}
        if bad:
            raise ValueError(f"signature file {filename}: directions must be +1 (up in senescence) or -1 (down): {bad}")
    if "derived_from" in rec:
        acc = rec["derived_from"]
        if not isinstance(acc, list) or not all(isinstance(a, str) and ACCESSION.match(a) for a in acc):
            raise ValueError(
                f"signature file {filename}: 'derived_from' must be a list of accessions (GSE..., E-MTAB-..., "
                f"PRJNA..., SRP...), got {acc!r}"
            )


@lru_cache(maxsize=1)
def _catalogue() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    folder = Path(__file__).with_name("signature_sets")
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".yaml"):
            continue
        rec = yaml.load(entry.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        missing = [k for k in REQUIRED if k not in rec]
        if missing:
            raise ValueError(f"signature file {entry.name}: missing field(s) {missing}")
        if rec["id"] in out:
            raise ValueError(f"signature id {rec['id']!r} is defined twice")
        _check_record(rec, entry.name)
        out[rec["id"]] = rec
    return out


@lru_cache(maxsize=1)
def _lineage_markers() -> dict[str, Any]:
    return yaml.safe_load(Path(__file__).with_name("lineage_markers.yaml").read_text())


def lineage_markers(cell_type: str) -> list[str]:
    """Identity genes of a harmonised cell type (``lineage_markers.yaml``: curated by the developers,
    not a published signature; see the file). Empty for types without an entry."""
    return list(_lineage_markers()["cell_types"].get(cell_type, []))


def catalogue() -> dict[str, dict[str, Any]]:
    """Every catalogued signature record by id (parsed once; do not modify the records)."""
    return _catalogue()


def signature_record(signature_id: str) -> dict[str, Any]:
    """The full catalogue record of a signature (a copy)."""
    cat = _catalogue()
    if signature_id not in cat:
        raise KeyError(f"unknown signature {signature_id!r}; known: {', '.join(sorted(cat))}")
    return dict(cat[signature_id])


class SignatureResolutionWarning(UserWarning):
    """Some published genes of a signature were kept unresolved (ambiguous) or dropped (no ortholog)."""


@cache
def _resolution(signature_id: str) -> tuple[pd.DataFrame, str]:

    rec = _catalogue().get(signature_id) or signature_record(signature_id)  # KeyError names known ids
    published = [str(g) for g in rec["genes"]]
    species = str(rec["species"]).lower()
    if species == "human":
        res = resolve_symbols(published, warn=False)
        symbol = res["approved"].where(res["status"].isin(["approved", "alias"]), res["input"])
        note = res["candidates"].fillna(res["also_alias_of"].radd("also alias of ").astype("string"))
        problems = [
            f"{r.input} (ambiguous: {r.candidates}; kept as published)"
            for r in res[res["status"] == "ambiguous"].itertuples()
        ]
    elif species == "mouse":
        res = mouse_to_human(published, warn=False)
        symbol = res["human"].where(res["status"].isin(MAPPED_ORTHOLOG_STATUSES))
        note = res["candidates"]
        problems = [
            f"{r.input} ({r.status}{': ' + r.candidates if pd.notna(r.candidates) else ''}; dropped)"
            for r in res[~res["status"].isin(MAPPED_ORTHOLOG_STATUSES)].itertuples()
        ]
    else:
        raise ValueError(f"signature {signature_id!r}: species {rec['species']!r} is not supported (human or mouse)")
    out = pd.DataFrame(
        {
            "published": published,
            "symbol": symbol.astype("string").to_numpy(),
            "status": res["status"].astype(str).to_numpy(),
            "note": note.astype("string").to_numpy(),
        }
    )
    out["duplicate"] = out["symbol"].notna() & out["symbol"].duplicated()
    dupes = [f"{r.published}->{r.symbol}" for r in out[out["duplicate"]].itertuples()]
    if dupes:
        problems.append("scored once although published under two names: " + ", ".join(dupes))
    return out, (f"signature {signature_id!r} ({species}): " + "; ".join(problems)) if problems else ""


def signature_resolution(signature_id: str) -> pd.DataFrame:
    """How each published gene of a signature becomes a scored human symbol.

    One row per published gene: ``published``, ``symbol`` (the scored human symbol; NA when
    dropped), ``status`` (human: ``approved/alias/ambiguous/unknown`` of
    :func:`sasp_atlas.genes.resolve_symbols`; mouse: the ortholog status of
    :func:`sasp_atlas.genes.mouse_to_human`), ``note`` (ambiguity or ortholog candidates, or "also
    alias of ...") and ``duplicate`` (resolves to a gene listed earlier; scored once).
    """
    return _resolution(signature_id)[0].copy()


def get_signature(signature_id: str) -> list[str]:
    """Human gene symbols scored for a catalogued signature, in catalogue order.

    Approved HGNC symbols (2022-04-04) where the published symbol resolves uniquely; mouse sets
    mapped to human orthologs (see the module docstring and :func:`signature_resolution`). The
    published genes are in :func:`signature_record`. A :class:`SignatureResolutionWarning` names
    ambiguous symbols kept as published, dropped mouse genes and genes published twice.

    Parameters
    ----------
    signature_id
        A catalogue id (:func:`list_signatures`).
    """
    res, problems = _resolution(signature_id)
    if problems:
        warnings.warn(problems, SignatureResolutionWarning, stacklevel=2)
    return [str(g) for g in res.loc[res["symbol"].notna() & ~res["duplicate"], "symbol"]]


def is_signed(signature_id: str) -> bool:
    """True when the catalogue gives a direction (+1/-1) for every gene of the signature."""
    return "directions" in signature_record(signature_id)


def get_signed_signature(signature_id: str) -> dict[str, int]:
    """Scored human symbols of a signed signature with their direction: ``{symbol: +1 | -1}``, catalogue order.

    The symbols are those of :func:`get_signature` (HGNC resolution, mouse orthologs); each keeps the
    direction of its published gene (``directions`` of the catalogue file: +1 up in senescent cells,
    -1 down). A gene published twice under two names is scored once, with its first direction.

    Parameters
    ----------
    signature_id
        A catalogue id whose record has ``directions`` (:func:`is_signed`); an unsigned set raises
        ``ValueError`` (use :func:`get_signature`: it is scored as one set).
    """
    rec = signature_record(signature_id)
    if "directions" not in rec:
        signed = sorted(sid for sid, r in _catalogue().items() if "directions" in r)
        raise ValueError(
            f"signature {signature_id!r} has no per-gene directions (an unsigned set): use get_signature(); "
            f"signed sets: {', '.join(signed)}"
        )
    res, problems = _resolution(signature_id)
    if problems:
        warnings.warn(problems, SignatureResolutionWarning, stacklevel=2)
    keep = res[res["symbol"].notna() & ~res["duplicate"]]
    return {str(sym): int(rec["directions"][pub]) for pub, sym in zip(keep["published"], keep["symbol"])}


def derived_from(signature_id: str) -> tuple[list[str], bool]:
    """``(accessions, complete)``: the data sets the source says the signature was derived from, and whether
    that list is complete (``derived_from_complete``, default true when accessions are given; an empty,
    incomplete list means the source is silent). A benchmark on a listed accession overlaps training."""
    rec = signature_record(signature_id)
    accessions = [str(a) for a in rec.get("derived_from") or []]
    return accessions, bool(rec.get("derived_from_complete", bool(accessions)))


def list_signatures() -> pd.DataFrame:
    """All catalogued signatures: ``id, name, family, species, n_genes, citation, doi, license``,
    ``signed`` (directions per gene) and ``derived_from`` (``;``-joined accessions, empty when none are named).

    ``n_genes`` is the number of genes as published in the catalogue file (cheap: no symbol
    resolution, no HGNC table needed). The genes actually scored (after alias resolution or mouse
    ortholog mapping) are ``len(get_signature(id))``; they differ only for mouse sets (genes
    without a usable human ortholog) and genes published twice under two names.
    """
    rows = []
    for rec in _catalogue().values():
        src = rec["source"]
        rows.append(
            {
                "id": rec["id"],
                "name": rec["name"],
                "family": rec.get("family", rec["id"]),
                "species": rec["species"],
                "n_genes": len(rec["genes"]),
                "citation": src.get("citation"),
                "doi": src.get("doi"),
                "license": rec["license"],
                "signed": "directions" in rec,
                "derived_from": ";".join(rec.get("derived_from") or []),
            }
        )
    return pd.DataFrame(rows)


def jaccard_matrix(signature_ids: list[str] | None = None) -> pd.DataFrame:
    """Long table ``a, b, jaccard, n_shared`` of gene-set overlap between signatures.

    Jaccard index |A ∩ B| / |A ∪ B| on the scored human symbols (:func:`get_signature`), so sets
    published with old and new names of a gene still overlap.
    """
    ids = list(signature_ids) if signature_ids is not None else list(_catalogue())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SignatureResolutionWarning)
        sets = {i: set(get_signature(i)) for i in ids}
    rows = []
    for a in ids:
        for b in ids:
            inter = len(sets[a] & sets[b])
            union = len(sets[a] | sets[b])
            rows.append({"a": a, "b": b, "jaccard": inter / union if union else 0.0, "n_shared": inter})
    return pd.DataFrame(rows)
