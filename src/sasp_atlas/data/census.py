"""Registry entries read through the CELLxGENE Census: only the cells an entry keeps, never the whole collection.

Why: five ``profile: full`` entries are subsets (one disease) of whole CELLxGENE collections of 0.4-2+ million
cells, whose h5ad files do not fit a GitHub-hosted runner (about 14 GB of disk, 16 GB of memory). The Census
(`cellxgene-census`, on TileDB-SOMA) serves the same CELLxGENE-schema cells, immutable per release, and reads
only the rows of a query; ``pip install "sasp-atlas[census]"`` adds it.

An entry names ``loader: {name: cellxgene_census, options: {census_version, dataset_version_id,
obs_value_filter}}``. The reader (:func:`read_cellxgene_census`, registered as ``READERS["cellxgene_census"]``):

1. opens the Census where :func:`sasp_atlas.sources.census_location` says (``$SASP_ATLAS_CENSUS_URI``, then
   ``<mirror>/cellxgene-census/<census_version>/soma``, then the public release), and logs which;
2. resolves the dataset *version* id (the uuid of the entry's CELLxGENE URL) to the stable ``dataset_id`` of
   Census ``obs`` through ``census_info/datasets``; a release that does not hold that version is a
   :class:`CensusDatasetError` naming the release and the fix;
3. queries ``census_data/homo_sapiens`` with ``dataset_id == ... and is_primary_data == True and
   (obs_value_filter)``, ``X`` layer ``raw`` (raw counts), gene symbols from ``var["feature_name"]``;
4. keeps ``obs`` columns :data:`OBS_COLUMNS` and adds ``cxg_malignant`` with the rule of the h5ad reader
   (:func:`sasp_atlas.data.readers.cxg_malignant`);
5. checks the pin ``registry pin`` recorded (:func:`census_subset_pin`): an unpinned entry is refused
   (:class:`~sasp_atlas.sources.NotPinnedError`), a different subset is a :class:`CensusPinMismatchError`,
   never a silently different figure.

:func:`write_local_census` writes a Census-shaped SOMA collection from AnnData objects: the offline tests,
the full-size rehearsal (``benchmarks/full_rehearsal.py``) and local mirrors read it exactly as the real one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._lazy import lazy_import
from ..sources import (
    CENSUS_LOADER,
    DataUnavailableError,
    NotPinnedError,
    census_location,
    census_pin,
    get_dataset,
    is_census_entry,
    list_datasets,
    pin_census_entry,
    registry_path,
)
from .readers import _reader, cxg_malignant

__all__ = [
    "OBS_COLUMNS",
    "CENSUS_ORGANISM",
    "CensusDatasetError",
    "CensusPinMismatchError",
    "read_cellxgene_census",
    "census_subset_pin",
    "pin_census_dataset",
    "pin_census_all",
    "write_local_census",
]

log = logging.getLogger(__name__)

#: the Census obs columns an entry keeps (CELLxGENE schema); ``donor_id`` is the sample of every census entry
OBS_COLUMNS = ("cell_type", "cell_type_ontology_term_id", "donor_id", "disease", "tissue")
#: the Census experiment the entries read (``census_data/homo_sapiens``)
CENSUS_ORGANISM = "Homo sapiens"
#: version tag of the subset checksum below; bump if its definition changes (old pins then fail by name)
_SUBSET_HASH_TAG = b"sasp-atlas census subset v1\n"
#: values converted and hashed at a time (16 Mi, 128 MiB as int64)
_HASH_CHUNK = 1 << 24


class CensusDatasetError(ValueError):
    """The pinned Census release does not hold the entry's dataset version (or its filter keeps no cell)."""


class CensusPinMismatchError(RuntimeError):
    """The subset read from the Census differs from what ``registry pin`` recorded; it was not used."""


# --------------------------------------------------------------------------- opening the Census
def _census_api():
    """``cellxgene_census``, or a :class:`DataUnavailableError` saying which extra installs it."""
    try:
        return lazy_import("cellxgene_census")
    except ModuleNotFoundError as exc:
        raise DataUnavailableError(
            f"reading a CELLxGENE Census entry needs cellxgene-census and tiledbsoma ({exc}): "
            'pip install "sasp-atlas[census]" (or install from requirements-lock.txt)'
        ) from exc


def _open_census(census_version: str, mirror: str | os.PathLike | None = None):
    """The Census collection of ``census_version`` (a context manager) and where it is, logged."""
    census = _census_api()
    uri, how = census_location(census_version, mirror)
    try:
        handle = census.open_soma(uri=uri) if uri else census.open_soma(census_version=census_version)
    except Exception as exc:  # network errors and missing folders of every kind
        raise DataUnavailableError(
            f"cannot open the CELLxGENE Census release {census_version} from {how} ({type(exc).__name__}: {exc}). "
            f"No network? Then put a copy at <mirror>/cellxgene-census/{census_version}/soma (SASP_ATLAS_MIRROR or "
            "--mirror) or set SASP_ATLAS_CENSUS_URI to one."
        ) from exc
    log.info("census  release %s from %s", census_version, how)
    return handle, how


def _dataset_id(census_handle, dataset_version_id: str, census_version: str, how: str) -> str:
    """The stable ``dataset_id`` of a dataset version, from ``census_info/datasets``."""
    table = census_handle["census_info"]["datasets"].read(value_filter=f"dataset_version_id == '{dataset_version_id}'")
    found = table.concat().to_pandas()
    if found.empty:
        raise CensusDatasetError(
            f"the CELLxGENE Census release {census_version} ({how}) does not hold dataset version "
            f"{dataset_version_id}: the dataset was republished under a new version or is not in that release. "
            "Fix: look the collection up on CELLxGENE Discover, set loader.options.dataset_version_id to the version a "
            "Census LTS release holds (census_info/datasets lists them) and census_version to that release, then "
            "`sasp-atlas registry pin ID` again."
        )
    return str(found["dataset_id"].iloc[0])


def _query(options: dict[str, Any], mirror) -> tuple[ad.AnnData, str]:
    """The entry's subset as returned by the Census (rows and columns sorted by soma_joinid), and where it was read."""
    census = _census_api()
    version, version_id = options["census_version"], options["dataset_version_id"]
    handle, how = _open_census(version, mirror)
    with handle:
        dataset_id = _dataset_id(handle, version_id, version, how)
        value_filter = f"dataset_id == '{dataset_id}' and is_primary_data == True and ({options['obs_value_filter']})"
        with warnings.catch_warnings():  # the query builds AnnData on integer row labels; ours are set below
            warnings.filterwarnings("ignore", category=ad.ImplicitModificationWarning)
            adata = census.get_anndata(
                handle,
                organism=CENSUS_ORGANISM,
                measurement_name="RNA",
                X_name="raw",
                obs_value_filter=value_filter,
                obs_column_names=["soma_joinid", *OBS_COLUMNS],
                var_column_names=["soma_joinid", "feature_id", "feature_name"],
            )
    if adata.n_obs == 0:
        raise CensusDatasetError(
            f"no primary cell of dataset version {version_id} in the CELLxGENE Census release {version} ({how}) "
            f"passes obs_value_filter {options['obs_value_filter']!r}: either the label differs (check CELLxGENE's "
            "disease or tissue term on the collection page and fix obs_value_filter), or the dataset, an integrated "
            "atlas, marks these cells non-primary because their primary copies are in the source datasets (then read "
            "a source dataset's version instead)"
        )
    obs_ids, var_ids = adata.obs["soma_joinid"].to_numpy(), adata.var["soma_joinid"].to_numpy()
    if np.all(np.diff(obs_ids) > 0) and np.all(np.diff(var_ids) > 0):
        return adata, how  # already in soma_joinid order: no copy of the matrix
    return adata[np.argsort(obs_ids, kind="stable"), np.argsort(var_ids, kind="stable")].copy(), how


# --------------------------------------------------------------------------- the pin
def _subset_sha256(adata: ad.AnnData) -> str:
    """sha256 of a census subset, defined as the digest of, in this order:

    ``b"sasp-atlas census subset v1\\n"``; the obs ``soma_joinid`` s (sorted, int64 little-endian); the var
    ``feature_id`` s in ``soma_joinid`` order, newline-joined (UTF-8); the ``raw`` counts as CSR in that row and
    column order with sorted indices (``indptr`` and ``indices`` int64, ``data`` float32, little-endian); and, for
    each of :data:`OBS_COLUMNS`, its name and its values newline-joined (UTF-8). So the same cells, genes,
    counts and annotations give the same digest on every machine; any other subset a different one.
    """
    X = sp.csr_matrix(adata.X, dtype=np.float32)
    X.sort_indices()
    h = hashlib.sha256(_SUBSET_HASH_TAG)
    h.update(np.ascontiguousarray(adata.obs["soma_joinid"].to_numpy(), dtype="<i8").tobytes())
    h.update("\n".join(map(str, adata.var["feature_id"])).encode())
    for part, dtype in ((X.indptr, "<i8"), (X.indices, "<i8"), (X.data, "<f4")):
        for start in range(0, len(part), _HASH_CHUNK):  # converted piecewise: no second copy of a large subset
            h.update(np.ascontiguousarray(part[start : start + _HASH_CHUNK], dtype=dtype).tobytes())
    for col in OBS_COLUMNS:
        h.update(f"\n{col}\n".encode() + "\n".join(adata.obs[col].astype(str)).encode())
    return h.hexdigest()


def _pin_of(adata: ad.AnnData) -> dict[str, Any]:
    return {
        "n_cells": int(adata.n_obs),
        "n_donors": int(adata.obs["donor_id"].astype(str).nunique()),
        "sha256": _subset_sha256(adata),
    }


def census_subset_pin(options: dict[str, Any], *, mirror: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read an entry's subset from the Census and return what ``registry pin`` records: ``n_cells``,
    ``n_donors`` (distinct ``donor_id``) and ``sha256`` (see :func:`_subset_sha256`), plus a ``note`` saying
    when and from which release and location it was read."""
    adata, how = _query(options, mirror)
    pin = _pin_of(adata)
    pin["note"] = (
        f"recorded by `sasp-atlas registry pin` on {date.today().isoformat()} from CELLxGENE Census release "
        f"{options['census_version']} ({how}): the primary cells of dataset version {options['dataset_version_id']} "
        f"that pass obs_value_filter; every later read must give the same cells, donors and sha256"
    )
    return pin


def _verify(adata: ad.AnnData, options: dict[str, Any]) -> None:
    pin = options.get("pin")
    what = f"dataset version {options['dataset_version_id']} of Census release {options['census_version']}"
    if not pin:
        raise NotPinnedError(
            f"the census subset of {what} has no pin yet: run `sasp-atlas registry pin ID` for the entry once (it "
            "reads the subset and records its number of cells, donors and sha256); until then it is never scored"
        )
    got = _pin_of(adata)
    bad = [f"{k} {got[k]} (pinned {pin[k]})" for k in ("n_cells", "n_donors", "sha256") if got[k] != pin[k]]
    if bad:
        raise CensusPinMismatchError(
            f"the subset read from {what} differs from the registry pin: {'; '.join(bad)}. It was not used. The "
            "Census copy read is not that release (check SASP_ATLAS_CENSUS_URI and the mirror), or the entry's "
            "filter changed; re-pin (`sasp-atlas registry pin ID`) only once the difference is understood."
        )


# --------------------------------------------------------------------------- the reader
@_reader(CENSUS_LOADER)
def read_cellxgene_census(paths: dict[str, Path], options: dict[str, Any]):
    """Read a registry entry's cells from the CELLxGENE Census (module doc); same return as every reader.

    ``paths`` is empty (a census entry downloads no file). Returns the ``raw`` counts as float32 CSR (cells in
    ``soma_joinid`` order, every gene of the Census experiment), gene symbols from ``var["feature_name"]``,
    cell ids ``census:<soma_joinid>`` and obs :data:`OBS_COLUMNS` plus ``cxg_malignant``, all as strings.
    ``options["mirror"]`` (optional) is a mirror folder; default ``$SASP_ATLAS_MIRROR``.
    """
    adata, _ = _query(options, options.get("mirror"))
    _verify(adata, options)
    obs = pd.DataFrame({col: adata.obs[col].astype(str).to_numpy() for col in OBS_COLUMNS})
    cells = [f"census:{j}" for j in adata.obs["soma_joinid"]]
    obs.index = pd.Index(cells)
    obs["cxg_malignant"] = cxg_malignant(obs)
    genes = [str(g) for g in adata.var["feature_name"]]
    return sp.csr_matrix(adata.X, dtype=np.float32), genes, cells, obs


# --------------------------------------------------------------------------- pinning census entries
def pin_census_dataset(
    dataset_id: str, *, registry: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None
) -> dict[str, Any]:
    """``sasp-atlas registry pin ID`` for a census entry: read its subset, record ``loader.options.pin``.

    An existing pin is verified, never overwritten: the same subset returns status ``already pinned``, a different
    one raises :class:`CensusPinMismatchError`. Returns a record like :func:`sasp_atlas.sources.pin_all` 's
    (``entry``, ``kind``, ``name``, ``url``, ``status``, ``how``, ``sha256``, ``size``: here the number of cells,
    ``retry``).
    """
    path = Path(registry) if registry else registry_path()
    ds = get_dataset(dataset_id, path)
    if not is_census_entry(ds):
        raise ValueError(f"entry {dataset_id!r} is not read through the CELLxGENE Census (loader {CENSUS_LOADER})")
    options = ds["loader"]["options"]
    pin = census_subset_pin(options, mirror=mirror)
    base = {
        "entry": ds.id,
        "kind": "dataset",
        "name": f"Census {options['census_version']} subset",
        "url": f"census:{options['census_version']}/{options['dataset_version_id']}",
        "sha256": pin["sha256"],
        "size": pin["n_cells"],
        "retry": None,
    }
    old = census_pin(ds)
    if old:
        bad = [k for k in ("n_cells", "n_donors", "sha256") if old[k] != pin[k]]
        if bad:
            raise CensusPinMismatchError(
                f"registry pin {dataset_id}: the subset read now differs from the recorded pin in {bad} "
                f"({', '.join(f'{k} {pin[k]} vs {old[k]}' for k in bad)}); the registry was left as it was"
            )
        return {**base, "status": "already pinned", "how": f"{pin['n_cells']} cells, {pin['n_donors']} donors"}
    pin_census_entry(ds.id, pin, registry=path)
    return {
        **base,
        "status": "pinned",
        "how": f"census subset: {pin['n_cells']} cells, {pin['n_donors']} donors (read from the Census, not a file)",
    }


def pin_census_all(
    *, registry: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None, on_entry=None
) -> list[dict[str, Any]]:
    """The census part of ``registry pin --all``: :func:`pin_census_dataset` for every census entry of the full
    profile, failures recorded with their reason (status ``failed`` and the command to retry) instead of raised.
    ``on_entry(index, total, entry_id)`` is called before each entry."""
    path = Path(registry) if registry else registry_path()
    entries = [d for d in list_datasets("full", path) if is_census_entry(d)]
    records = []
    for i, ds in enumerate(entries, 1):
        if on_entry is not None:
            on_entry(i, len(entries), ds.id)
        try:
            records.append(pin_census_dataset(ds.id, registry=path, mirror=mirror))
        except (DataUnavailableError, CensusDatasetError, CensusPinMismatchError, OSError) as exc:
            why = "refused" if isinstance(exc, CensusPinMismatchError) else "unreachable"
            options = ds["loader"]["options"]
            records.append(
                {
                    "entry": ds.id,
                    "kind": "dataset",
                    "name": f"Census {options['census_version']} subset",
                    "url": f"census:{options['census_version']}/{options['dataset_version_id']}",
                    "status": "failed",
                    "how": f"{why}: {exc}",
                    "sha256": None,
                    "size": None,
                    "retry": f"sasp-atlas registry pin {ds.id}",
                }
            )
    return records


# --------------------------------------------------------------------------- a local Census
_DATASET_COLUMNS = (
    "citation",
    "collection_id",
    "collection_name",
    "collection_doi",
    "dataset_id",
    "dataset_version_id",
    "dataset_title",
    "dataset_h5ad_path",
)


def _census_obs(adata: ad.AnnData, version_id: str) -> pd.DataFrame:
    need = [*OBS_COLUMNS, "is_primary_data"]
    if missing := [c for c in need if c not in adata.obs]:
        raise ValueError(f"dataset version {version_id}: obs has no {missing} (CELLxGENE schema columns)")
    # unnamed indexes: the ids become the columns obs_id / feature_id and, as in the Census, no index is recorded
    obs = pd.DataFrame(index=pd.Index([f"{version_id}:{c}" for c in adata.obs_names]))
    ids = adata.obs["dataset_id"].astype(str).unique() if "dataset_id" in adata.obs else []
    if len(ids) > 1:
        raise ValueError(f"dataset version {version_id}: obs['dataset_id'] holds several ids {list(ids)}")
    # no dataset_id given: a stable one derived from the version id (Census dataset ids differ from version ids)
    obs["dataset_id"] = str(ids[0]) if len(ids) else str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataset:{version_id}"))
    for col in OBS_COLUMNS:
        obs[col] = adata.obs[col].astype(str).to_numpy()
    obs["is_primary_data"] = adata.obs["is_primary_data"].astype(bool).to_numpy()
    return obs


def write_local_census(adatas: dict[str, ad.AnnData], uri: str | os.PathLike, census_version: str) -> Path:
    """Write a Census-shaped SOMA collection at ``uri`` from CELLxGENE-schema AnnData objects.

    Serves the offline tests, the full-size rehearsal (``benchmarks/full_rehearsal.py``) and local mirrors
    (``<mirror>/cellxgene-census/<census_version>/soma``): ``read_cellxgene_census`` reads it exactly as it
    reads the public Census.

    Parameters
    ----------
    adatas
        ``{dataset_version_id: AnnData}``. Each AnnData holds raw counts in ``X`` (cells x genes, integers; stored
        as float32 like the Census), ``var`` indexed by Ensembl ``feature_id`` with a ``feature_name`` column
        (gene symbols), and obs columns ``cell_type``, ``cell_type_ontology_term_id``, ``donor_id``, ``disease``,
        ``tissue``, ``is_primary_data`` and optionally ``dataset_id`` (one value; default: a uuid5 of the
        version id, since Census dataset ids differ from version ids).
    uri
        A folder that does not exist yet.
    census_version
        The release this copy stands for, recorded as ``census_build_date`` in ``census_info/summary``.

    Returns
    -------
    Path
        The folder written: a SOMA collection with ``census_info/datasets`` and ``census_info/summary``
        (SOMADataFrames) and ``census_data/homo_sapiens`` (a SOMA Experiment: ``obs``, measurement ``RNA`` with
        ``var`` (``feature_id``, ``feature_name``) and ``X["raw"]``). The datasets are appended one at a time
        (TileDB-SOMA's registration mapping): beyond the inputs, memory holds one dataset's float32 copy at a
        time.
    """
    soma = lazy_import("tiledbsoma")
    soma_io = lazy_import("tiledbsoma.io")
    pa = lazy_import("pyarrow")
    root_path = Path(uri)
    if root_path.exists():
        raise FileExistsError(f"{root_path} exists already: write_local_census writes a new collection")
    if not adatas:
        raise ValueError("write_local_census needs at least one dataset")
    shaped, rows = [], []
    for i, (version_id, adata) in enumerate(adatas.items()):
        if "feature_name" not in adata.var:
            raise ValueError(f"dataset version {version_id}: var has no 'feature_name' column (gene symbols)")
        obs = _census_obs(adata, version_id)
        var = pd.DataFrame(
            {"feature_name": adata.var["feature_name"].astype(str).to_numpy()},
            index=pd.Index(adata.var_names.astype(str)).rename(None),  # a named index (e.g. "feature_id") would clash
        )
        shaped.append((version_id, obs, var))
        dataset_id = obs["dataset_id"].iloc[0] if len(obs) else str(uuid.uuid5(uuid.NAMESPACE_URL, version_id))
        rows.append(
            {
                "soma_joinid": i,
                "citation": "",
                "collection_id": "",
                "collection_name": "",
                "collection_doi": "",
                "dataset_id": dataset_id,
                "dataset_version_id": version_id,
                "dataset_title": f"local copy of dataset version {version_id}",
                "dataset_h5ad_path": f"{dataset_id}.h5ad",
                "dataset_total_cell_count": int(adata.n_obs),
            }
        )
    with soma.Collection.create(str(root_path)) as root:
        info = root.add_new_collection("census_info")
        datasets = pa.Table.from_pylist(
            rows,
            schema=pa.schema(
                [("soma_joinid", pa.int64())]
                + [(c, pa.large_string()) for c in _DATASET_COLUMNS]
                + [("dataset_total_cell_count", pa.int64())]
            ),
        )
        with info.add_new_dataframe("datasets", schema=datasets.schema, domain=[(0, len(rows) - 1)]) as df:
            df.write(datasets)
        summary = pa.Table.from_pydict(
            {
                "soma_joinid": [0, 1],
                "label": ["census_build_date", "census_schema_version"],
                "value": [census_version, "sasp-atlas local copy"],
            },
            schema=pa.schema([("soma_joinid", pa.int64()), ("label", pa.large_string()), ("value", pa.large_string())]),
        )
        with info.add_new_dataframe("summary", schema=summary.schema, domain=[(0, 1)]) as df:
            df.write(summary)
        data = root.add_new_collection("census_data")
        exp_uri = str(root_path / "census_data" / "homo_sapiens")
        ids = {"obs_id_name": "obs_id", "var_id_name": "feature_id", "X_layer_name": "raw"}
        mapping = soma_io.register_anndatas(
            None,
            [ad.AnnData(obs=obs, var=var) for _, obs, var in shaped],  # the ids only: no matrix copied here
            measurement_name="RNA",
            obs_field_name="obs_id",
            var_field_name="feature_id",
        )
        for k, (version_id, obs, var) in enumerate(shaped):
            one = ad.AnnData(X=sp.csr_matrix(adatas[version_id].X, dtype=np.float32), obs=obs, var=var)
            if k == 0:
                soma_io.from_anndata(exp_uri, one, "RNA", ingest_mode="schema_only", **ids)
                mapping.prepare_experiment(exp_uri)
            soma_io.from_anndata(exp_uri, one, "RNA", registration_mapping=mapping, **ids)
            del one
        with soma.Experiment.open(exp_uri) as exp:
            data.set("homo_sapiens", exp, use_relative_uri=True)
    log.info("wrote a local CELLxGENE Census (release %s, %d dataset(s)) at %s", census_version, len(rows), root_path)
    return root_path
