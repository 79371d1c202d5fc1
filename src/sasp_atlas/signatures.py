"""The signature catalogue: our curated gene-set YAML files (``signature_sets/*.yaml``).

Each file holds ``id, name, family, species, description, genes, source {citation, doi, pmid,
table, url}, license, curation_notes`` (and optional ``categories``). The files are the single
source of truth; tests compare them gene for gene with the verified references.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import pandas as pd
import yaml

__all__ = ["get_signature", "list_signatures", "signature_record"]

REQUIRED = ("id", "name", "species", "genes", "source", "license")


@lru_cache(maxsize=1)
def _catalogue() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    folder = resources.files("sasp_atlas").joinpath("signature_sets")
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".yaml"):
            continue
        rec = yaml.safe_load(entry.read_text())
        missing = [k for k in REQUIRED if k not in rec]
        if missing:
            raise ValueError(f"signature file {entry.name}: missing field(s) {missing}")
        if rec["id"] in out:
            raise ValueError(f"signature id {rec['id']!r} is defined twice")
        genes = rec["genes"]
        if len(set(genes)) != len(genes):
            raise ValueError(f"signature {rec['id']!r}: duplicated genes")
        out[rec["id"]] = rec
    return out


def signature_record(signature_id: str) -> dict[str, Any]:
    """The full catalogue record of a signature (a copy)."""
    cat = _catalogue()
    if signature_id not in cat:
        raise KeyError(f"unknown signature {signature_id!r}; known: {', '.join(sorted(cat))}")
    return dict(cat[signature_id])


def get_signature(signature_id: str) -> list[str]:
    """Gene symbols (approved HGNC, human) of a catalogued signature, in catalogue order."""
    return list(signature_record(signature_id)["genes"])


def list_signatures() -> pd.DataFrame:
    """All catalogued signatures: ``id, name, family, species, n_genes, citation, doi, license``."""
    rows = []
    for rec in _catalogue().values():
        src = rec["source"]
        rows.append({"id": rec["id"], "name": rec["name"], "family": rec.get("family", rec["id"]),
                     "species": rec["species"], "n_genes": len(rec["genes"]),
                     "citation": src.get("citation"), "doi": src.get("doi"), "license": rec["license"]})
    return pd.DataFrame(rows)
