"""Load registry datasets into harmonised AnnData objects.

One reader per file format returns ``(matrix cells x genes, gene symbols, cell ids, obs frame)``;
:func:`load_dataset` then harmonises ``.obs`` (``cell_type_author``, ``sample``, ``malignant``),
keeps the values as released in ``layers["original"]``, writes log-normalised values to ``.X``
(value-type aware, see :func:`normalise`), records provenance in ``.uns["provenance"]`` and caches
the result as h5ad keyed by the sha256 of the source files and the loader version.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io as _io
import logging
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .fetch import cache_dir, fetch_dataset
from .registry import Dataset, get_dataset

__all__ = ["load_dataset", "normalise", "resolve_var_names", "READERS", "LOADER_VERSION"]

log = logging.getLogger(__name__)

#: bump when readers, normalisation or symbol resolution change: it is part of the h5ad cache key
#: ("2": var_names resolved to approved HGNC symbols, see :func:`resolve_var_names`)
LOADER_VERSION = "2"

Reader = Callable[[dict[str, Path], dict[str, Any]], tuple[sp.csr_matrix, list[str], list[str], pd.DataFrame]]
READERS: dict[str, Reader] = {}


def _reader(name: str):
    def deco(fn: Reader) -> Reader:
        READERS[name] = fn
        return fn
    return deco


# --------------------------------------------------------------------------- text matrices
def _read_genes_by_cells(handle) -> pd.DataFrame:
    df = pd.read_csv(handle, sep="\t", index_col=0)
    df.index = df.index.astype(str)
    return df


def _labels(path: Path, options: dict[str, Any]) -> pd.DataFrame:
    col = options.get("label_column", "annotation")
    labels = pd.read_csv(path, sep="\t", header=None, index_col=0, names=["cell", col], dtype=str)
    labels.index = labels.index.astype(str)
    return labels


def _with_labels(df: pd.DataFrame, paths: dict[str, Path], options: dict[str, Any]):
    labels = _labels(paths[options["labels"]], options)
    missing = df.columns.difference(labels.index)
    if len(missing):
        raise ValueError(f"{len(missing)} cells have no label in {options['labels']} (e.g. {list(missing[:3])})")
    obs = labels.loc[df.columns].copy()
    if pattern := options.get("sample_from_cell_id"):
        fmt = options.get("sample_format", "{}")
        obs["patient"] = [fmt.format(m.group(1)) if (m := re.match(pattern, c)) else "unknown" for c in obs.index]
        if (obs["patient"] == "unknown").any():
            raise ValueError(f"{int((obs['patient'] == 'unknown').sum())} cell ids do not match the sample pattern {pattern!r}")
    X = sp.csr_matrix(df.to_numpy(dtype=np.float32).T)
    return X, list(df.index), list(df.columns), obs


@_reader("tsv_zip")
def read_tsv_zip(paths: dict[str, Path], options: dict[str, Any]):
    """Zipped genes x cells TSV matrices (one per sample, same genes), concatenated along cells."""
    frames = []
    for name in options["matrices"]:
        with zipfile.ZipFile(paths[name]) as zf:
            members = [m for m in zf.namelist() if m.endswith("_MAT.txt") and not m.startswith("__MACOSX/")]
            if len(members) != 1:
                raise ValueError(f"{name}: expected one *_MAT.txt member, found {members}")
            with zf.open(members[0]) as fh:
                frames.append(_read_genes_by_cells(_io.TextIOWrapper(fh)))
    genes = frames[0].index
    for f in frames[1:]:
        if not f.index.equals(genes):
            raise ValueError("the zipped matrices do not share the same genes in the same order")
    return _with_labels(pd.concat(frames, axis=1), paths, options)


@_reader("tsv_matrix")
def read_tsv_matrix(paths: dict[str, Path], options: dict[str, Any]):
    """A (gzipped) genes x cells TSV matrix with a header of cell ids, plus a label file."""
    p = paths[options["matrix"]]
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt") as fh:
        df = _read_genes_by_cells(fh)
    return _with_labels(df, paths, options)


# --------------------------------------------------------------------------- R files
def _quiet_rdata():
    warnings.filterwarnings("ignore", message="Missing constructor")
    import rdata
    return rdata


@_reader("sce_rdata")
def read_sce_rdata(paths: dict[str, Path], options: dict[str, Any]):
    """A SingleCellExperiment with a dgCMatrix assay in an ``.RData`` file (read with ``rdata``, no R)."""
    with warnings.catch_warnings():
        rdata = _quiet_rdata()
        (path,) = paths.values()
        sce = rdata.read_rda(path)[options["object"]]
    c = sce.assays.data.listData[options.get("assay", "counts")]
    X = sp.csc_matrix((np.asarray(c.x, dtype=np.float32), np.asarray(c.i), np.asarray(c.p)), shape=tuple(c.Dim)).T.tocsr()
    genes = [str(g) for g in sce.rowRanges.partitioning.NAMES]
    cells = [str(c) for c in sce.colData.rownames]
    obs = pd.DataFrame({str(k): np.asarray(v) for k, v in sce.colData.listData.items()}, index=cells)
    for col in obs.columns:
        if isinstance(obs[col].dtype, pd.CategoricalDtype) or obs[col].dtype == object:
            obs[col] = obs[col].astype(str)
    return X, genes, cells, obs


def _r_attributes(obj) -> dict[str, Any]:
    from rdata.parser import RObjectType
    out, a = {}, obj.attributes
    while a is not None and a.info.type == RObjectType.LIST:
        tag = a.tag
        if tag is not None and tag.info.type == RObjectType.REF:
            tag = tag.referenced_object
        name = tag.value.value if tag is not None and tag.value is not None else None
        out[name.decode() if isinstance(name, bytes) else name] = a.value[0]
        a = a.value[1]
    return out


def _r_children(value):
    from rdata.parser import RObject
    if isinstance(value, RObject):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _r_children(v)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _r_children(getattr(value, f.name))


@_reader("sce_rda_partial")
def read_sce_rda_partial(paths: dict[str, Path], options: dict[str, Any]):
    """A SingleCellExperiment whose assay sits in a reference-class environment (CHETAH refs).

    ``rdata.read_rda`` cannot convert the whole object (``NotImplementedError: PROM``), so the file is
    parsed and only two sub-objects are converted: ``colData`` and the single REAL matrix with a
    ``dim`` attribute reachable from the ``assays`` slot (depth-first over attributes, values and
    environment frames).
    """
    with warnings.catch_warnings():
        rdata = _quiet_rdata()
        from rdata.parser import RObjectType
        (path,) = paths.values()
        root = rdata.parser.parse_file(path).object.value[0]
        slots = _r_attributes(root)
        coldata = rdata.conversion.convert(slots["colData"])
        found, seen, stack = [], set(), [slots["assays"]]
        while stack:
            x = stack.pop()
            if id(x) in seen:
                continue
            seen.add(id(x))
            if x.info.type == RObjectType.REAL and x.attributes is not None and "dim" in _r_attributes(x):
                found.append(x)
                continue
            stack.extend(_r_children((x.attributes, x.value, x.referenced_object)))
        if len(found) != 1:
            raise ValueError(f"{path}: expected one assay matrix under 'assays', found {len(found)}")
        mat = rdata.conversion.convert(found[0])  # xarray genes x cells
    genes = [str(g) for g in mat.coords[mat.dims[0]].values]
    cells = [str(c) for c in mat.coords[mat.dims[1]].values]
    if list(map(str, coldata.rownames)) != cells:
        raise ValueError(f"{path}: colData rownames do not match the assay columns")
    obs = pd.DataFrame({str(k): np.asarray(v).astype(str) for k, v in coldata.listData.items()}, index=cells)
    X = sp.csr_matrix(np.asarray(mat.values, dtype=np.float32).T)
    return X, genes, cells, obs


# --------------------------------------------------------------------------- normalisation
def normalise(adata: ad.AnnData, value_type: str) -> dict[str, str]:
    """Write log-normalised values to ``adata.X`` according to the released value type.

    * ``raw_counts`` (UMI counts): library-size normalisation to 10,000 counts per cell, then
      natural ``log1p`` (``scanpy.pp.normalize_total(target_sum=1e4)`` + ``scanpy.pp.log1p``), the
      standard of the single-cell best-practices book (Heumos et al. 2023, doi:10.1038/s41576-023-00586-w).
    * ``log2_tpm10_plus1`` (Smart-seq2 releases of the Tirosh/Puram studies): already
      log2(TPM/10 + 1); kept as it is.
    * ``tpm_like`` (linear, TPM/10 scale): ``log2(x + 1)``, which puts it on the same
      log2(TPM/10 + 1) scale as the other Smart-seq2 datasets.

    Scores compare cells *within* a dataset (control genes, ranks); absolute values are not
    comparable across value types, which is why the atlas compares ranks and effect sizes.
    Returns a description recorded in ``adata.uns["provenance"]["normalisation"]``.
    """
    import scanpy as sc

    X = adata.X
    data = X.data if sp.issparse(X) else np.asarray(X)
    if not np.all(np.isfinite(data)):
        raise ValueError("the matrix holds NaN or infinite values; scores need finite, unscaled expression")
    if data.size and data.min() < 0:
        raise ValueError("the matrix holds negative values (scaled data?); scores need unscaled expression")
    if value_type == "raw_counts":
        if data.size and not all(np.array_equal(c, np.round(c)) for c in np.array_split(data, max(1, data.size // 10_000_000))):
            raise ValueError("value_type is raw_counts but the values are not integers: the data "
                             "look normalised already; fix value_type in the registry")
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
        desc = "raw counts -> normalize_total(target_sum=1e4) -> natural log1p"
    elif value_type == "log2_tpm10_plus1":
        desc = "log2(TPM/10+1) as released; unchanged"
    elif value_type == "tpm_like":
        sc.pp.log1p(adata, base=2)
        desc = "TPM/10-scale values -> log2(x+1) (same scale as log2(TPM/10+1))"
    else:
        raise ValueError(f"unknown value_type {value_type!r}; expected raw_counts, log2_tpm10_plus1 or tpm_like")
    adata.uns.pop("log1p", None)
    return {"value_type": value_type, "method": desc}


# --------------------------------------------------------------------------- harmonise + cache
def _harmonise_obs(obs: pd.DataFrame, ds: Dataset) -> pd.DataFrame:
    cols = ds["columns"]
    out = obs.copy()
    missing = [c for c in (cols["cell_type_author"], cols.get("sample"), cols.get("cell_type_fine")) if c and c not in obs]
    if missing:
        raise ValueError(f"dataset {ds.id!r}: column(s) {missing} not found; available: {list(obs.columns)}")
    out["cell_type_author"] = obs[cols["cell_type_author"]].astype(str)
    out["cell_type_fine"] = obs[cols["cell_type_fine"]].astype(str) if cols.get("cell_type_fine") else out["cell_type_author"]
    out["sample"] = obs[cols["sample"]].astype(str) if cols.get("sample") else f"{ds.id}:unrecorded"
    mal = cols.get("malignant")
    if mal is None:
        out["malignant"] = False
    elif "values" in mal:
        out["malignant"] = obs[mal["column"]].astype(str).isin(mal["values"])
    else:
        out["malignant"] = obs[mal["column"]].astype(str).str.startswith(mal["prefix"])
    for c in ("cell_type_author", "cell_type_fine", "sample"):
        out[c] = out[c].astype("category")
    return out


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
    from .genes import HGNC_SOURCE, resolve_symbols

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
        log.warning("%d gene symbol(s) are aliases of several approved genes and keep their released name: %s",
                    len(ambiguous), "; ".join(ambiguous[:20]) + (" ..." if len(ambiguous) > 20 else ""))
    return {
        "source": HGNC_SOURCE,
        "rule": "alias/previous symbol of exactly one approved gene -> approved symbol; approved, ambiguous, "
                "unknown and colliding symbols keep the released name (var['symbol_original'])",
        "n_renamed": len(renamed), "n_ambiguous": len(ambiguous),
        "n_unknown": int((res["status"] == "unknown").sum()), "n_collisions": len(collisions),
        "ambiguous": "; ".join(ambiguous), "collisions": "; ".join(collisions),
    }


def _cache_key(ds: Dataset) -> str:
    h = hashlib.sha256(LOADER_VERSION.encode())
    for f in ds.files:
        h.update(f["sha256"].encode())
    h.update(repr(sorted(ds["loader"].items())).encode())
    h.update(repr(sorted(ds["columns"].items())).encode())
    h.update(ds["value_type"].encode())
    return h.hexdigest()[:16]


def load_dataset(dataset_id: str, *, mirror: str | None = None, use_cache: bool = True) -> ad.AnnData:
    """Load a registry dataset as a harmonised, log-normalised AnnData.

    Returns cells x genes with ``.X`` float32 CSR log-normalised (see :func:`normalise`),
    ``layers["original"]`` the values as released, ``.obs`` columns ``cell_type_author``,
    ``cell_type_fine``, ``sample``, ``malignant`` (bool) plus the author columns, and
    ``.uns["provenance"]`` with dataset id, citation, DOI, accession, licence, value type, the
    normalisation, the gene symbol resolution (``symbol_resolution``, see
    :func:`resolve_var_names`: var_names are approved HGNC symbols where the released symbol is an
    unambiguous alias, ``var["symbol_original"]`` keeps the released one), and each file's URL and
    sha256. The converted object is cached as ``<cache>/<id>/converted-<key>.h5ad`` (key: source
    sha256s + loader version); a cache hit skips the fetch entirely.
    """
    ds = get_dataset(dataset_id)
    key = _cache_key(ds)
    h5ad = cache_dir() / ds.id / f"converted-{key}.h5ad"
    if use_cache and h5ad.exists():
        log.info("cached  %s (converted, %s)", ds.id, h5ad)
        return ad.read_h5ad(h5ad)

    paths = fetch_dataset(ds, mirror=mirror)
    reader = READERS[ds["loader"]["name"]]
    X, genes, cells, obs = reader(paths, ds["loader"].get("options") or {})
    var = pd.DataFrame(index=pd.Index(genes, name="gene_symbol"))
    adata = ad.AnnData(X=X, obs=_harmonise_obs(obs, ds), var=var)
    adata.obs_names = pd.Index(cells).astype(str)
    if not adata.var_names.is_unique:
        n = int(adata.var_names.duplicated().sum())
        log.warning("%s: %d duplicated gene symbols made unique with suffixes", ds.id, n)
        adata.var_names_make_unique()
    symbol_resolution = resolve_var_names(adata)
    adata.layers["original"] = adata.X.copy()
    norm = normalise(adata, ds["value_type"])
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    pub = ds["publication"]
    adata.uns["provenance"] = {
        "dataset_id": ds.id, "title": ds["title"], "cancer_type": ds["cancer_type"],
        "cancer_type_short": ds["cancer_type_short"], "tissue": ds["tissue"], "technology": ds["technology"],
        "citation": pub["citation"], "doi": pub["doi"], "accession": pub["accession"], "license": ds["license"],
        "value_type": ds["value_type"], "normalisation": norm["method"], "loader": ds["loader"]["name"],
        "loader_version": LOADER_VERSION, "symbol_resolution": symbol_resolution,
        "files": {f["name"]: {"url": f["url"], "sha256": f["sha256"], "size": f["size"]} for f in ds.files},
    }
    h5ad.parent.mkdir(parents=True, exist_ok=True)
    tmp = h5ad.with_suffix(".h5ad.tmp")
    adata.write_h5ad(tmp)
    tmp.replace(h5ad)  # atomic: a crash never leaves a half-written cache entry
    log.info("converted %s: %d cells x %d genes -> %s", ds.id, adata.n_obs, adata.n_vars, h5ad)
    return adata
