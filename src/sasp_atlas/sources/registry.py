"""The data registry: which public datasets the atlas uses, where they live and how to read them.

One source of truth, ``data_registry.yaml`` at the project root, validated against
``registry_schema.json`` (JSON Schema, ``additionalProperties: false``): an unknown key, a
missing field or a malformed value is a :class:`RegistryError` that names the entry and the field.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .._lazy import lazy_import
from .paths import project_file

__all__ = [
    "TRUST_LEVELS",
    "USER_TRUST",
    "trust_level",
    "RegistryError",
    "Dataset",
    "registry_path",
    "load_registry",
    "get_dataset",
    "list_datasets",
    "get_resource",
    "list_unverified",
    "get_unverified",
    "list_ground_truth",
    "get_ground_truth",
    "cohort_of",
    "list_unverified_signatures",
    "CENSUS_LOADER",
    "CENSUS_TRUST",
    "is_census_entry",
    "census_pin",
]


def cohort_of(publication: dict | None, fallback: str) -> str:
    """The independent study (cohort) a dataset comes from: its publication's accession (``GEO GSE70630``),
    else ``doi:<DOI>``, else ``fallback`` (the dataset id). Registry subsets of one study share it, so
    they count as one cohort in every evidence count (tables, findings, Table 2)."""
    pub = publication or {}
    return str(pub.get("accession") or (f"doi:{pub['doi']}" if pub.get("doi") else "") or fallback)


class RegistryError(ValueError):
    """The registry file is malformed; the message names the entry and the field."""


@dataclass(frozen=True)
class Dataset:
    """One validated registry entry (the raw mapping is kept in :attr:`entry`)."""

    entry: dict[str, Any]

    @property
    def id(self) -> str:
        return self.entry["id"]

    @property
    def files(self) -> list[dict[str, Any]]:
        return self.entry["files"]

    def __getitem__(self, key: str) -> Any:
        return self.entry[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.entry.get(key, default)


#: what each trust level means (shown by ``sasp-atlas list`` and on the dataset pages)
TRUST_LEVELS = {
    "published": "the host publishes each file's hash (sha256, or the git blob id GitHub publishes for every "
    "file of a commit); every download is verified against it",
    "pinned on first download": "the host publishes no hash: `sasp-atlas registry pin ID` downloaded each file "
    "once and recorded its sha256 and size; later downloads must match them",
    "pinned census subset": "read from an immutable CELLxGENE Census release (census version pinned in the "
    "entry), only the cells the entry keeps: `sasp-atlas registry pin ID` recorded their number, their donors and "
    "a sha256 of the cells and counts read; every later read must match them",
    "your file": "read from your disk (sasp-atlas score); no host vouches for it: its sha256, computed when it "
    "was read, names exactly the file that was scored",
}
#: the trust level of a user's own file (:func:`sasp_atlas.data.load_user_data`), never of a registry entry
USER_TRUST = "your file"


#: the loader of entries read through the CELLxGENE Census (``sasp_atlas.data.census``), not from files
CENSUS_LOADER = "cellxgene_census"
#: the trust level of those entries (no file to hash: the read subset itself is pinned)
CENSUS_TRUST = "pinned census subset"


def is_census_entry(dataset: Dataset | dict) -> bool:
    """Whether the entry is read through the CELLxGENE Census (loader ``cellxgene_census``) rather than from files."""
    entry = dataset.entry if isinstance(dataset, Dataset) else dataset
    return (entry.get("loader") or {}).get("name") == CENSUS_LOADER  # resources have no loader


def census_pin(dataset: Dataset | dict) -> dict[str, Any] | None:
    """The pin ``registry pin`` recorded for a census entry (``n_cells``, ``n_donors``, ``sha256``, ``note``), or
    ``None`` when it has none yet."""
    entry = dataset.entry if isinstance(dataset, Dataset) else dataset
    return ((entry.get("loader") or {}).get("options") or {}).get("pin")


def trust_level(dataset: Dataset | dict) -> str:
    """``published`` or ``pinned on first download`` (registry field ``trust``; default ``published``), or
    :data:`USER_TRUST` for a user's own file."""
    entry = dataset.entry if isinstance(dataset, Dataset) else dataset
    return str(entry.get("trust", "published"))


def registry_path() -> Path:
    """Path of the registry: ``$SASP_ATLAS_REGISTRY`` or ``data_registry.yaml`` at the project root."""
    env = os.environ.get("SASP_ATLAS_REGISTRY")
    return Path(env) if env else project_file("data_registry.yaml")


def _schema() -> dict[str, Any]:
    return json.loads((Path(__file__).with_name("registry_schema.json")).read_text())


def _describe(error, doc: dict[str, Any]) -> str:
    path = list(error.absolute_path)
    where = "registry"
    kinds = {
        "datasets": "dataset entry",
        "resources": "resource entry",
        "unverified": "unverified entry",
        "ground_truth": "ground-truth entry",
    }
    if len(path) >= 2 and path[0] in kinds and isinstance(path[1], int):
        entries = doc.get(path[0]) or []
        entry_id = entries[path[1]].get("id", f"#{path[1]}") if isinstance(entries[path[1]], dict) else f"#{path[1]}"
        where = f"{kinds[path[0]]} {entry_id!r}"
        path = path[2:]
    field = ".".join(str(p) for p in path) or "(top level)"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"{where}: unknown key(s) {extra} in {field}; allowed: {sorted(error.schema.get('properties', {}))}"
    if error.validator == "required":
        return f"{where}: missing field in {field}: {error.message}"
    return f"{where}: field {field!r}: {error.message}"


def validate_registry(doc: Any) -> None:
    """Validate a parsed registry document; raise :class:`RegistryError` naming entry and field."""
    if not isinstance(doc, dict):
        raise RegistryError("registry: the top level must be a mapping with 'schema_version' and 'datasets'")
    jsonschema = lazy_import("jsonschema")  # loaded on first validation, not at import
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        # the deepest error is the most specific one (oneOf/anyOf report on the parent first)
        best = jsonschema.exceptions.best_match(errors)
        raise RegistryError(
            _describe(best, doc) + (f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else "")
        )
    ids = (
        [d["id"] for d in doc["datasets"]]
        + [r["id"] for r in doc.get("resources", [])]
        + [u["id"] for u in doc.get("unverified", [])]
        + [g["id"] for g in doc.get("ground_truth", [])]
    )
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise RegistryError(f"registry: duplicated dataset id(s) {dupes}")
    for d in doc["datasets"] + doc.get("resources", []) + doc.get("ground_truth", []):
        names = [f["name"] for f in d["files"]]
        if len(set(names)) != len(names):
            raise RegistryError(f"dataset entry {d['id']!r}: field 'files': duplicated file names {names}")
    for g in doc.get("ground_truth", []):
        lab = g["labels"]
        classes = [
            v for key in ("senescent", "proliferating", "quiescent", "control", "exclude") for v in lab.get(key, [])
        ]
        shared = sorted({v for v in classes if classes.count(v) > 1})
        if shared:
            raise RegistryError(
                f"ground-truth entry {g['id']!r}: field 'labels': label value(s) {shared} are in more than "
                "one class (quiescent is never pooled with proliferating; each value has one class)"
            )


@lru_cache(maxsize=8)
def _load(
    path: str, mtime: float
) -> tuple[
    tuple[Dataset, ...],
    tuple[Dataset, ...],
    tuple[dict[str, Any], ...],
    tuple[Dataset, ...],
    tuple[dict[str, Any], ...],
]:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise RegistryError(f"registry {path}: not valid YAML: {exc}") from exc
    validate_registry(doc)
    return (
        tuple(Dataset(d) for d in doc["datasets"]),
        tuple(Dataset(r) for r in doc.get("resources", [])),
        tuple(doc.get("unverified", [])),
        tuple(Dataset(g) for g in doc.get("ground_truth", [])),
        tuple(doc.get("unverified_signatures", [])),
    )


def list_unverified_signatures(path: str | Path | None = None) -> list[dict[str, Any]]:
    """Published gene sets the catalogue leaves out (registry ``unverified_signatures``: no verifiable
    machine-readable source), each with its citation and the reason; never scored."""
    return list(_read(path)[4])


def _read(path: str | Path | None):
    p = Path(path) if path else registry_path()
    if not p.exists():
        raise RegistryError(f"registry file not found: {p} (set SASP_ATLAS_REGISTRY to its path)")
    return _load(str(p), p.stat().st_mtime)


def load_registry(path: str | Path | None = None) -> tuple[Dataset, ...]:
    """Read and validate the registry; returns the dataset entries in file order."""
    return _read(path)[0]


def load_resources(path: str | Path | None = None) -> tuple[Dataset, ...]:
    """The registry's reference resources (e.g. the HGNC symbol table)."""
    return _read(path)[1]


def get_resource(resource_id: str, path: str | Path | None = None) -> Dataset:
    """A reference resource of the registry (e.g. ``hgnc_symbols``); same file fields as datasets."""
    resources_ = _read(path)[1]
    for r in resources_:
        if r.id == resource_id:
            return r
    raise KeyError(f"unknown resource id {resource_id!r}; the registry has: {', '.join(r.id for r in resources_)}")


def list_datasets(profile: str | None = None, path: str | Path | None = None) -> list[Dataset]:
    """Registry entries, optionally of one profile (``core`` is part of ``full``).

    Parameters
    ----------
    profile
        ``core``, ``full`` (every entry of the full profile, the core included) or ``None`` (all).
    path
        Another registry file (default: :func:`registry_path`).
    """
    entries = load_registry(path)
    if profile in (None, "full"):
        return list(entries)
    return [d for d in entries if d["profile"] == profile]


def get_dataset(dataset_id: str, path: str | Path | None = None) -> Dataset:
    """The registry entry ``dataset_id``; a :class:`KeyError` lists the known ids.

    Parameters
    ----------
    dataset_id
        A registry id.
    path
        Another registry file (default: :func:`registry_path`).
    """
    for d in load_registry(path):
        if d.id == dataset_id:
            return d
    known = ", ".join(d.id for d in load_registry(path))
    raise KeyError(f"unknown dataset id {dataset_id!r}; the registry has: {known}")


# --------------------------------------------------------------------------- ground truth
def list_ground_truth(profile: str | None = None, path: str | Path | None = None) -> list[Dataset]:
    """The registry's ``ground_truth`` entries: labelled senescence data, their own kind.

    They are never returned by :func:`list_datasets` or :func:`get_dataset` (they are not tumour
    datasets, so the atlas build never scores them as such); :func:`sasp_atlas.data.load_ground_truth`
    reads them.

    Parameters
    ----------
    profile
        ``core``, ``full`` (every entry, the core included) or ``None`` (all).
    path
        Another registry file (default: :func:`registry_path`).
    """
    entries = _read(path)[3]
    if profile in (None, "full"):
        return list(entries)
    return [g for g in entries if g["profile"] == profile]


def get_ground_truth(ground_truth_id: str, path: str | Path | None = None) -> Dataset:
    """The ground-truth entry ``ground_truth_id``; a :class:`KeyError` lists the known ids (and says when
    the id is a tumour dataset instead)."""
    for g in _read(path)[3]:
        if g.id == ground_truth_id:
            return g
    known = ", ".join(g.id for g in _read(path)[3])
    tumour = any(d.id == ground_truth_id for d in _read(path)[0])
    hint = " (it is a tumour dataset: use load_dataset)" if tumour else ""
    raise KeyError(
        f"unknown ground-truth id {ground_truth_id!r}{hint}; the registry's ground_truth section has: {known}"
    )


# --------------------------------------------------------------------------- unverified candidates
def list_unverified(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The registry's ``unverified`` section: candidate sources with no published checksum.

    They are documentation only: never returned by :func:`list_datasets` or :func:`get_dataset`,
    so ``fetch``, ``list`` and ``build`` never touch them.
    """
    return [dict(u) for u in _read(path)[2]]


def get_unverified(source_id: str, path: str | Path | None = None) -> dict[str, Any]:
    """One entry of the ``unverified`` section (a :class:`KeyError` lists the known ids)."""
    for u in list_unverified(path):
        if u["id"] == source_id:
            return u
    raise KeyError(
        f"unknown unverified source {source_id!r}; the registry lists: "
        f"{', '.join(u['id'] for u in list_unverified(path))}"
    )
