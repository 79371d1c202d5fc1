"""Load registry datasets into harmonised AnnData objects.

One reader per file format returns ``(matrix cells x genes, gene symbols, cell ids, obs frame)``;
:func:`load_dataset` then harmonises ``.obs`` (``cell_type_author``, ``sample``, ``malignant``),
keeps the values as released in ``layers["original"]``, writes log-normalised values to ``.X``
(value-type aware, see :func:`normalise`), records provenance in ``.uns["provenance"]`` and caches
the result as h5ad keyed by the sha256 of the source files and the loader version.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from ..genes import HGNC_SOURCE, resolve_symbols
from ..sources import Dataset, cache_dir, fetch_dataset, get_dataset, is_census_entry
from .harmonise import ONTOLOGY_COLUMN, crosswalk, harmonise_cell_types, harmonise_obs
from .readers import READERS
from .validate import LOG_MAX, InputError, dedupe_genes, scan_matrix

__all__ = [
    "load_dataset",
    "normalise",
    "resolve_var_names",
    "apply_gene_policy",
    "LOADER_VERSION",
    "CPM_LIKE_SUM_RANGE",
    "TPM_MAX_SUM",
    "TPM_MIN_MEDIAN_SUM",
]

log = logging.getLogger(__name__)

#: bump when readers, normalisation or symbol resolution change: it is part of the h5ad cache key
#: ("2": var_names resolved to approved HGNC symbols, see :func:`resolve_var_names`; "3": duplicated
#: gene symbols keep their first column only, the atlas's one duplicate-gene policy)
LOADER_VERSION = "3"

#: per-sample sums a ``cpm_like`` matrix may have: counts per million over all genes, of which a released
#: matrix may keep a filtered subset (sum below 1e6, at least half of it) plus the small prior count of
#: voom-style values (a little above 1e6 at most)
CPM_LIKE_SUM_RANGE = (5e5, 1.05e6)

#: a ``tpm`` matrix: no cell may sum above this (TPM sum to 1e6 over all genes; a released matrix may keep
#: a subset, never more, plus rounding)
TPM_MAX_SUM = 1.05e6
#: ... and the median cell must sum above this: TPM/10-scale values (``tpm_like``) sum to at most 1e5 per cell
TPM_MIN_MEDIAN_SUM = 1.05e5


# --------------------------------------------------------------------------- normalisation
def normalise(adata: ad.AnnData, value_type: str, *, checked: bool = False) -> dict[str, str]:
    """Write log-normalised values to ``adata.X`` according to the released value type.

    * ``raw_counts`` (UMI counts): library-size normalisation to 10,000 counts per cell, then
      natural ``log1p`` (``scanpy.pp.normalize_total(target_sum=1e4)`` + ``scanpy.pp.log1p``), the
      standard of the single-cell best-practices book (Heumos et al. 2023, doi:10.1038/s41576-023-00586-w).
    * ``log2_tpm10_plus1`` (Smart-seq2 releases of the Tirosh/Puram studies): already
      log2(TPM/10 + 1); kept as it is.
    * ``tpm_like`` (linear, TPM/10 scale): ``log2(x + 1)``, which puts it on the same
      log2(TPM/10 + 1) scale as the other Smart-seq2 datasets.
    * ``tpm`` (linear TPM, full scale, e.g. the Fluidigm C1 release of Winterhoff 2017): checked to be
      linear (not integers, maximum above :data:`~sasp_atlas.data.validate.LOG_MAX`), no cell summing
      above :data:`TPM_MAX_SUM` and the median cell above :data:`TPM_MIN_MEDIAN_SUM` (else it is
      ``tpm_like``), then ``log2(x/10 + 1)``: the same log2(TPM/10 + 1) scale as the Smart-seq2 datasets.
    * ``cpm_like`` (bulk: linear, library-size normalised counts per million, possibly of a filtered
      gene subset, e.g. ``2^`` of voom's log2-CPM): checked to be linear (not integers, maximum above
      :data:`~sasp_atlas.data.validate.LOG_MAX`) with per-sample sums in :data:`CPM_LIKE_SUM_RANGE`,
      then rescaled to 10,000 per sample over the genes present and natural ``log1p`` — the same
      log1p-CP10k scale as raw counts.

    Scores compare cells *within* a dataset (control genes, ranks); absolute values are not
    comparable across value types, which is why the atlas compares ranks and effect sizes.
    The values are checked first with the same scan as users' files
    (:func:`sasp_atlas.data.validate.scan_matrix`: no NaN/inf, no negative values; integers for
    ``raw_counts``), unless ``checked`` says the caller has just done so.
    Returns a description recorded in ``adata.uns["provenance"]["normalisation"]``.

    Parameters
    ----------
    adata
        Values as released in ``.X``; ``.X`` is replaced in place.
    value_type
        ``raw_counts``, ``cpm_like``, ``log2_tpm10_plus1``, ``tpm_like`` or ``tpm`` (the registry's ``value_type``).
    checked
        Skip the matrix scan (the caller has just run it).
    """
    integer, vmax = True, None
    if not checked or value_type in ("cpm_like", "tpm"):
        found = scan_matrix(
            adata.X,
            adata.obs_names,
            adata.var_names,
            "the matrix",
            "fix value_type in the registry entry, or pass another layer of your file",
        )
        integer, vmax = found["integer"], found["max"]
    if value_type == "raw_counts":
        if not integer:
            raise InputError(
                "value_type is raw_counts but the values are not integers: the data "
                "look normalised already; fix value_type in the registry (or pass raw counts)"
            )
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
        desc = "raw counts -> normalize_total(target_sum=1e4) -> natural log1p"
    elif value_type == "cpm_like":
        _check_cpm_like(adata, integer, vmax)
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
        desc = "counts-per-million-like values -> rescaled to 1e4 per sample over the genes present -> natural log1p"
    elif value_type == "log2_tpm10_plus1":
        desc = "log2(TPM/10+1) as released; unchanged"
    elif value_type == "tpm_like":
        sc.pp.log1p(adata, base=2)
        desc = "TPM/10-scale values -> log2(x+1) (same scale as log2(TPM/10+1))"
    elif value_type == "tpm":
        _check_tpm(adata, integer, vmax)
        adata.X = adata.X / 10.0
        sc.pp.log1p(adata, base=2)
        desc = "TPM -> log2(TPM/10+1) (the scale of the Smart-seq2 releases)"
    else:
        raise InputError(
            f"unknown value_type {value_type!r}; expected raw_counts, cpm_like, log2_tpm10_plus1, tpm_like or tpm"
        )
    adata.uns.pop("log1p", None)
    return {"value_type": value_type, "method": desc}


def _check_cpm_like(adata: ad.AnnData, integer: bool, vmax: float) -> None:
    """Refuse, by name, values declared ``cpm_like`` that are not linear counts per million."""
    fix = "fix value_type in the registry entry (raw_counts, cpm_like, log2_tpm10_plus1, tpm_like, tpm) or pass the linear values"
    if integer:
        raise InputError(
            "value_type is cpm_like but every value is an integer: these look like raw counts, not counts "
            f"per million; {fix}"
        )
    if vmax <= LOG_MAX:
        raise InputError(
            f"value_type is cpm_like but the values reach only {vmax:.4g} (<= {LOG_MAX:g}): they look "
            f"log-transformed (e.g. voom log2-CPM), not linear counts per million; {fix} (un-log them: 2**x)"
        )
    sums = np.asarray(adata.X.sum(axis=1)).ravel()
    low, high = CPM_LIKE_SUM_RANGE
    bad = np.flatnonzero((sums < low) | (sums > high))
    if len(bad):
        shown = ", ".join(f"{adata.obs_names[i]} ({sums[i]:,.0f})" for i in bad[:5])
        raise InputError(
            f"value_type is cpm_like but {len(bad)} of {adata.n_obs} samples sum outside {low:,.0f}-{high:,.0f} "
            f"(counts per million over all genes, of which a subset may be kept): {shown}. They look like "
            f"another scale (TPM/FPKM of another total, or corrected values); {fix}"
        )


def _check_tpm(adata: ad.AnnData, integer: bool, vmax: float) -> None:
    """Refuse, by name, values declared ``tpm`` that are not linear, full-scale TPM."""
    fix = "fix value_type in the registry entry (raw_counts, log2_tpm10_plus1, tpm_like, tpm)"
    if integer:
        raise InputError(f"value_type is tpm but every value is an integer: these look like raw counts; {fix}")
    if vmax <= LOG_MAX:
        raise InputError(
            f"value_type is tpm but the values reach only {vmax:.4g} (<= {LOG_MAX:g}): they look "
            f"log-transformed, not linear TPM; {fix}"
        )
    sums = np.asarray(adata.X.sum(axis=1)).ravel()
    bad = np.flatnonzero(sums > TPM_MAX_SUM)
    if len(bad):
        shown = ", ".join(f"{adata.obs_names[i]} ({sums[i]:,.0f})" for i in bad[:5])
        raise InputError(
            f"value_type is tpm but {len(bad)} of {adata.n_obs} cells sum above {TPM_MAX_SUM:,.0f} "
            f"(TPM sum to 1e6 over all genes): {shown}; they look like counts or another scale; {fix}"
        )
    if np.median(sums) <= TPM_MIN_MEDIAN_SUM:
        raise InputError(
            f"value_type is tpm but the median cell sums to {np.median(sums):,.0f} (<= "
            f"{TPM_MIN_MEDIAN_SUM:,.0f}): the values look like TPM/10 (value_type tpm_like); {fix}"
        )


# --------------------------------------------------------------------------- harmonise + cache
def _malignant(obs: pd.DataFrame, spec: dict | None) -> np.ndarray | bool:
    """The registry's ``columns.malignant`` rule: a column whose value is one of ``values`` or starts with ``prefix``."""
    if spec is None:
        return False
    col = obs[spec["column"]].astype(str)
    return (col.isin(spec["values"]) if "values" in spec else col.str.startswith(spec["prefix"])).to_numpy()


def _registry_obs(obs: pd.DataFrame, ds: Dataset) -> pd.DataFrame:
    cols = ds["columns"]
    try:
        return harmonise_obs(
            obs,
            cell_type_key=cols["cell_type_author"],
            sample_key=cols.get("sample"),
            cell_type_fine_key=cols.get("cell_type_fine"),
            malignant=_malignant(obs, cols.get("malignant")),
            pseudo_sample=f"{ds.id}:unrecorded",
        )
    except KeyError as exc:
        raise ValueError(f"dataset {ds.id!r}: {exc.args[0]}") from None


def apply_gene_policy(adata: ad.AnnData, *, what: str = "", notes: list[str] | None = None) -> ad.AnnData:
    """The atlas's duplicate-gene policy on ``adata`` (:func:`sasp_atlas.data.validate.dedupe_genes`:
    the first column of every symbol is kept); returns ``adata`` itself or a copy without the repeats."""
    keep = dedupe_genes([str(g) for g in adata.var_names], what, notes if notes is not None else [])
    return adata if len(keep) == adata.n_vars else adata[:, keep].copy()


def resolve_var_names(adata: ad.AnnData) -> dict[str, Any]:
    """Rename ``var_names`` to approved HGNC symbols (2022-04-04) in place; returns the summary.

    Uses :func:`sasp_atlas.genes.resolve_symbols`. ``var["symbol_original"]`` keeps the released
    symbol and ``var["symbol_status"]`` its status. A symbol is renamed only when it is an alias or
    previous symbol of exactly one approved gene (``CTGF`` -> CCN2); approved, ambiguous and unknown
    symbols keep their released name. If the approved name is taken already (the data hold the
    approved symbol too, or an earlier alias of the same gene was renamed to it), the symbol keeps
    its released name and counts as a collision. The summary (``n_renamed``, ``n_ambiguous``,
    ``n_unknown``, ``n_collisions`` and the affected symbols) goes to
    ``uns["provenance"]["symbol_resolution"]``.
    """
    original = [str(g) for g in adata.var_names]
    res = resolve_symbols(original, warn=False)
    names, taken = list(original), set(original)
    renamed, collisions = [], []
    for i, (status, approved) in enumerate(zip(res["status"], res["approved"])):
        if status != "alias":
            continue
        if approved in taken:
            collisions.append(f"{original[i]}->{approved}")
            continue
        names[i] = approved
        taken.add(approved)
        renamed.append(f"{original[i]}->{approved}")
    adata.var["symbol_original"] = original
    adata.var["symbol_status"] = res["status"].astype(str).to_numpy()
    adata.var_names = pd.Index(names, name="gene_symbol")
    ambiguous = [f"{r.input} ({r.candidates})" for r in res[res["status"] == "ambiguous"].itertuples()]
    if ambiguous:
        log.warning(
            "%d gene symbol(s) are aliases of several approved genes and keep their released name: %s",
            len(ambiguous),
            "; ".join(ambiguous[:20]) + (" ..." if len(ambiguous) > 20 else ""),
        )
    return {
        "source": HGNC_SOURCE,
        "rule": "alias/previous symbol of exactly one approved gene -> approved symbol; approved, ambiguous, "
        "unknown and colliding symbols keep the released name (var['symbol_original'])",
        "n_renamed": len(renamed),
        "n_ambiguous": len(ambiguous),
        "n_unknown": int((res["status"] == "unknown").sum()),
        "n_collisions": len(collisions),
        "ambiguous": "; ".join(ambiguous),
        "collisions": "; ".join(collisions),
    }


def _crosswalk_id(adata: ad.AnnData, ds: Dataset) -> str | None:
    """The crosswalk block to harmonise with: the dataset's own, or none for an ontology-coded dataset
    (CELLxGENE schema: ``cell_type_ontology_term_id`` in obs and no hand-written block), whose Cell
    Ontology ids are used directly."""
    if ds.id not in crosswalk()["datasets"] and ONTOLOGY_COLUMN in adata.obs:
        return None
    return ds.id


def _file_provenance(f: dict[str, Any]) -> dict[str, Any]:
    """URL, sha256 and size of a registry file; a full-profile file not pinned yet gives its git blob id instead."""
    out = {"url": f["url"]}
    out.update({"sha256": f["sha256"]} if "sha256" in f else {"git_blob_sha1": f["git_blob_sha1"]})
    out.update({"size": f["size"]} if "size" in f else {})
    return out


def _cache_key(ds: Dataset) -> str:
    h = hashlib.sha256(LOADER_VERSION.encode())
    for f in ds.files:
        h.update(
            (f.get("sha256") or f.get("git_blob_sha1") or "not pinned").encode()
        )  # unpinned: fetch refuses  # full-profile files may have a blob id only
    h.update(repr(sorted(ds["loader"].items())).encode())
    h.update(repr(sorted(ds["columns"].items())).encode())
    h.update(ds["value_type"].encode())
    return h.hexdigest()[:16]


def load_dataset(dataset_id: str, *, mirror: str | None = None, use_cache: bool = True) -> ad.AnnData:
    """Load a registry dataset as a harmonised, log-normalised AnnData.

    Returns cells x genes with ``.X`` float32 CSR log-normalised (see :func:`normalise`),
    ``layers["original"]`` the values as released, ``.obs`` columns ``cell_type_author``,
    ``cell_type_fine``, ``sample``, ``malignant`` (bool), the harmonised ``cell_type``,
    ``cell_type_ontology_id`` and ``lineage`` (crosswalk, :func:`sasp_atlas.data.harmonise_cell_types`)
    plus the author columns, and
    ``.uns["provenance"]`` with dataset id, citation, DOI, accession, licence, value type, the
    normalisation, the gene symbol resolution (``symbol_resolution``, see
    :func:`resolve_var_names`: var_names are approved HGNC symbols where the released symbol is an
    unambiguous alias, ``var["symbol_original"]`` keeps the released one), and each file's URL and
    sha256, and, when the reader dropped anything by a rule of the entry (columns named in
    ``drop_columns``, unlabelled cells, genes NA in every cell), the counts under ``reader``.
    The converted object is cached as ``<cache>/<id>/converted-<key>.h5ad`` (key: source
    sha256s + loader version); a cache hit skips the fetch entirely.

    Parameters
    ----------
    dataset_id
        A registry id (``sasp-atlas list``).
    mirror
        A local mirror folder checked before any download (default ``$SASP_ATLAS_MIRROR``).
    use_cache
        Read the converted h5ad from the cache when it exists (default); ``False`` converts again.
    """
    ds = get_dataset(dataset_id)
    key = _cache_key(ds)
    h5ad = cache_dir() / ds.id / f"converted-{key}.h5ad"
    if use_cache and h5ad.exists():
        log.info("cached  %s (converted, %s)", ds.id, h5ad)
        adata = ad.read_h5ad(h5ad)
        adata.uns["provenance"]["cancer_type_ontology_id"] = ds["cancer_type_ontology_id"]  # registry field, not cached
        harmonise_cell_types(adata, dataset_id=_crosswalk_id(adata, ds))
        return adata

    paths = fetch_dataset(ds, mirror=mirror)
    reader = READERS[ds["loader"]["name"]]
    options = ds["loader"].get("options") or {}
    if mirror is not None and is_census_entry(ds):  # no file to fetch: the census copy may sit in the mirror
        options = {**options, "mirror": mirror}
    X, genes, cells, obs = reader(paths, options)
    reader_provenance = dict(obs.attrs.get("reader_provenance") or {})  # what the reader dropped, by its rules
    var = pd.DataFrame(index=pd.Index(genes, name="gene_symbol"))
    adata = ad.AnnData(X=X, obs=_registry_obs(obs, ds), var=var)
    adata.obs_names = pd.Index(cells).astype(str)
    notes: list[str] = []
    adata = apply_gene_policy(adata, what=f"in {ds.id}", notes=notes)
    for note in notes:
        log.warning("%s: %s", ds.id, note)
    symbol_resolution = resolve_var_names(adata)
    adata.layers["original"] = adata.X.copy()
    norm = normalise(adata, ds["value_type"])
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    pub = ds["publication"]
    adata.uns["provenance"] = {
        "dataset_id": ds.id,
        "title": ds["title"],
        "cancer_type": ds["cancer_type"],
        "cancer_type_ontology_id": ds["cancer_type_ontology_id"],
        "cancer_type_short": ds["cancer_type_short"],
        "tissue": ds["tissue"],
        "technology": ds["technology"],
        "citation": pub["citation"],
        "doi": pub["doi"],
        "accession": pub["accession"],
        "license": ds["license"],
        "value_type": ds["value_type"],
        "normalisation": norm["method"],
        "loader": ds["loader"]["name"],
        "loader_version": LOADER_VERSION,
        "symbol_resolution": symbol_resolution,
        "files": {f["name"]: _file_provenance(f) for f in ds.files},
    }
    if reader_provenance:
        adata.uns["provenance"]["reader"] = reader_provenance
    if is_census_entry(ds):  # no file: the pinned census subset is the provenance
        opts = ds["loader"]["options"]
        adata.uns["provenance"]["census"] = {
            **{k: opts[k] for k in ("census_version", "dataset_version_id", "obs_value_filter")},
            **{k: opts["pin"][k] for k in ("n_cells", "n_donors", "sha256")},
        }
    h5ad.parent.mkdir(parents=True, exist_ok=True)
    tmp = h5ad.with_suffix(".h5ad.tmp")
    adata.write_h5ad(tmp)
    tmp.replace(h5ad)  # atomic: a crash never leaves a half-written cache entry
    log.info("converted %s: %d cells x %d genes -> %s", ds.id, adata.n_obs, adata.n_vars, h5ad)
    harmonise_cell_types(
        adata, dataset_id=_crosswalk_id(adata, ds)
    )  # after caching: a crosswalk edit needs no reconversion
    return adata
