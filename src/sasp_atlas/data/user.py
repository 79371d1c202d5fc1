"""A user's ``.h5ad`` read into the same shape as a registry dataset.

:func:`load_user_data` reads an AnnData file, refuses what scores cannot be computed on (each refusal
is an :class:`~sasp_atlas.data.validate.InputError` that names the problem and the fix), and returns
it harmonised by the same code as a registry dataset (:mod:`sasp_atlas.data.harmonise`, the
duplicate-gene policy and the matrix scan of :mod:`sasp_atlas.data.validate`, symbol resolution and
normalisation of :mod:`sasp_atlas.data.load`), together with a :class:`~sasp_atlas.sources.Dataset`
record for the pages. :func:`sasp_atlas.atlas.score_user_file` runs it through the atlas pipeline.

What is checked, in this order (``book/bad_inputs.md`` lists every message):

1. the file exists and reads as ``.h5ad`` (backed mode for large files, dense or sparse ``X``);
2. the obs columns named by ``cell_type_key`` / ``sample_key`` / ``malignant_key`` exist;
3. gene identifiers: Ensembl ids (``ENSG...``/``ENSMUSG...``) are replaced by a var symbol column
   (:data:`~sasp_atlas.data.validate.SYMBOL_COLUMNS`), the symbols must fit ``species`` (mouse-like ``Il6`` vs human ``IL6``);
4. the values: no NaN/inf, no negative values (scaled / z-scored data), and a recognised value
   type (:func:`~sasp_atlas.data.validate.detect_value_type`): integers are raw counts (normalised with
   :func:`sasp_atlas.data.normalise`), non-integers up to :data:`LOG_MAX` are log-normalised values
   (used as they are), larger non-integers are refused;
5. warnings, not errors: duplicated symbols (the first column is kept), no sample column (one
   pseudo-sample), cell types with fewer than ``min_cells`` cells (flagged in the tables), labels
   missing for some cells; low signature coverage is flagged by the usual coverage table.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..genes import HCOP_SOURCE, MAPPED_ORTHOLOG_STATUSES, mouse_to_human
from ..sources import USER_TRUST, Dataset, file_sha256
from .harmonise import harmonise_cell_types, harmonise_obs
from .lazy import (
    DEFAULT_CHUNK_ROWS,
    is_lazy,
    normalise_lazy,
    read_lazy,
    scan_matrix_lazy,
    select_columns_lazy,
    store_sha_size,
)
from .load import normalise, resolve_var_names
from .validate import (
    LOG_MAX,
    InputError,
    as_bool,
    check_species,
    dedupe_genes,
    detect_value_type,
    examples,
    gene_symbols,
    layer_hint,
    row_blocks,
    scan_matrix,
    select_matrix,
    warn_input,
)

__all__ = ["is_cellxgene", "load_user_data", "user_dataset_id", "USER_SAMPLE", "DEFAULT_MIN_CELLS", "USER_VALUE_TYPES"]

log = logging.getLogger(__name__)

#: the one pseudo-sample of a file without a sample column
USER_SAMPLE = "user:unrecorded"
#: files larger than this are opened in backed mode (the matrix is read in blocks of rows)
BACKED_BYTES = 2 * 2**30
#: cell types with fewer cells are warned about and flagged in the tables
DEFAULT_MIN_CELLS = 10


# --------------------------------------------------------------------------- reading
def _open(path: Path, backed: bool | None) -> ad.AnnData:
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    if path.suffix != ".h5ad":
        raise InputError(f"input file {path.name} is not an .h5ad file; save your AnnData with adata.write_h5ad(...)")
    use_backed = path.stat().st_size > BACKED_BYTES if backed is None else backed
    try:
        return ad.read_h5ad(path, backed="r") if use_backed else ad.read_h5ad(path)
    except Exception as exc:  # h5py/anndata raise many types for a damaged or foreign file
        raise InputError(f"cannot read {path.name} as .h5ad ({type(exc).__name__}: {exc})") from None


def is_cellxgene(adata: ad.AnnData) -> bool:
    """True for a CELLxGENE-schema AnnData: ontology-coded cell types, donors and ``feature_name`` symbols."""
    return {"cell_type", "cell_type_ontology_term_id", "donor_id"} <= set(
        adata.obs.columns
    ) and "feature_name" in adata.var.columns


def _to_human(symbols: list[str], notes: list[str]) -> tuple[list[str], dict[str, Any]]:
    res = mouse_to_human(symbols, warn=False)
    mapped = res["status"].isin(MAPPED_ORTHOLOG_STATUSES).to_numpy()
    human = [str(h) if m else s for h, m, s in zip(res["human"], mapped, symbols)]
    counts = res["status"].value_counts().to_dict()
    unmapped = [s for s, m in zip(symbols, mapped) if not m]
    if unmapped:
        warn_input(
            f"mouse -> human (HCOP): {int(mapped.sum())} of {len(symbols)} genes mapped; {len(unmapped)} have no usable "
            f"human ortholog and keep their mouse symbol, so no signature uses them (e.g. {examples(unmapped)})",
            notes,
        )
    return human, {
        "source": HCOP_SOURCE,
        **{f"n_{k}": int(v) for k, v in counts.items()},
        "n_mapped": int(mapped.sum()),
    }


def _user_obs(
    obs: pd.DataFrame, *, cell_type_key: str, sample_key: str | None, malignant_key: str | None, notes: list[str]
) -> pd.DataFrame:
    """The one harmoniser (:func:`sasp_atlas.data.harmonise_obs`) with a user's keys."""
    malignant = as_bool(obs[malignant_key], malignant_key) if malignant_key else False
    out = harmonise_obs(
        obs,
        cell_type_key=cell_type_key,
        sample_key=sample_key,
        malignant=malignant,
        pseudo_sample=USER_SAMPLE,
        notes=notes,
    )
    if sample_key is None:
        warn_input(
            f"no sample_key: all cells form one pseudo-sample {USER_SAMPLE!r}, so intervals are over cells and "
            "describe these cells only (pass --sample-key to summarise per sample)",
            notes,
        )
    return out


def _small_cell_types(adata: ad.AnnData, min_cells: int, notes: list[str]) -> list[str]:
    sizes = adata.obs["cell_type"].value_counts()
    small = sizes[sizes < min_cells]
    if len(small):
        warn_input(
            f"{len(small)} cell type(s) have fewer than {min_cells} cells: "
            f"{examples([f'{ct!r} ({n})' for ct, n in small.items()], 10)}; they are kept and flagged in the "
            f"tables ('fewer than {min_cells} cells'): their summaries are unreliable",
            notes,
        )
    return [str(c) for c in small.index]


#: what ``value_type=`` (``sasp-atlas score --value-type``) accepts: the user's two detected types and the
#: registry's linear ones, normalised by :func:`sasp_atlas.data.normalise` as for a registry entry
USER_VALUE_TYPES = ("log_normalised", "raw_counts", "tpm", "tpm_like", "log2_tpm10_plus1")


def _declared_value_type(value_type: str, stats: dict[str, Any]) -> str:
    """Check a declared value type against the scan: refuse, by name, what cannot be it."""
    if value_type not in USER_VALUE_TYPES:
        raise InputError(f"unknown value type {value_type!r} (--value-type); one of {', '.join(USER_VALUE_TYPES)}")
    if value_type == "raw_counts" and not stats["integer"]:
        raise InputError(
            "--value-type raw_counts but the values are not integers: they look normalised already; "
            "leave --value-type out to detect log-normalised values, or name the linear scale (tpm, ...)"
        )
    if value_type in ("log_normalised", "log2_tpm10_plus1") and stats["max"] > LOG_MAX:
        raise InputError(
            f"--value-type {value_type} but the values reach {stats['max']:.6g} (> {LOG_MAX:g}): they are "
            "not log-transformed; name the linear scale instead (--value-type tpm or tpm_like)"
        )
    return value_type


def _read_checked(
    src: ad.AnnData,
    file_name: str,
    *,
    cell_type_key: str | None,
    sample_key: str | None,
    species: str,
    malignant_key: str | None,
    min_cells: int,
    layer: str | None,
    gene_symbols_key: str | None,
    notes: list[str],
    value_type: str | None = None,
) -> tuple[ad.AnnData, dict[str, Any]]:
    """Checks 2-5 of the module doc on an opened (possibly backed) file; returns the raw harmonised
    AnnData (float32 CSR, symbols as var_names, not yet normalised) and what was found."""
    obs_cols = list(map(str, src.obs.columns))
    if cell_type_key is None:
        if "cell_type" not in src.obs:
            raise InputError(
                f"no cell_type_key given and obs has no 'cell_type' column: pass --cell-type-key "
                f"(cell_type_key=...); available obs columns: {obs_cols}"
            )
        cell_type_key = "cell_type"
    for what, key in (("cell_type_key", cell_type_key), ("sample_key", sample_key), ("malignant_key", malignant_key)):
        if key is not None and key not in src.obs:
            raise InputError(f"{what} {key!r} is not an obs column; available obs columns: {obs_cols}")
    if src.n_obs == 0 or src.n_vars == 0:
        raise InputError(f"{file_name} has {src.n_obs} cells x {src.n_vars} genes; nothing to score")

    X, var, where = select_matrix(src, layer)
    symbols, symbol_source = gene_symbols(var, species, gene_symbols_key, notes)
    check_species(symbols, species)
    stats = (
        scan_matrix_lazy(X, where, layer_hint(src))
        if is_lazy(X)
        else scan_matrix(X, src.obs_names, pd.Index(map(str, var.index)), where, layer_hint(src))
    )
    declared = value_type is not None
    value_type = (
        _declared_value_type(value_type, stats) if declared else detect_value_type(stats["integer"], stats["max"])
    )

    orthologs: dict[str, Any] = {}
    if species == "mouse":
        first = dedupe_genes(symbols, "", notes)  # positions in the file
        human, orthologs = _to_human([symbols[i] for i in first], notes)
        second = dedupe_genes(human, "after mapping mouse genes to human orthologs", notes)  # positions in `first`
        keep = first[second]
        names = [human[i] for i in second]
    else:
        keep = dedupe_genes(symbols, "", notes)
        names = [symbols[i] for i in keep]

    # the matrix, block by block (backed: never whole in memory), float32 CSR, kept columns only
    if is_lazy(X):  # a dask array (lazy=True): the same columns, chunk by chunk, nothing read yet
        matrix = select_columns_lazy(X, np.asarray(keep))
    else:
        blocks = [sp.csr_matrix(b[:, keep], dtype=np.float32) for _, b in row_blocks(X, src.n_obs, len(var))]
        matrix = sp.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
    obs = _user_obs(
        src.obs, cell_type_key=cell_type_key, sample_key=sample_key, malignant_key=malignant_key, notes=notes
    )
    var_out = pd.DataFrame({"feature_id": [str(var.index[i]) for i in keep]}, index=pd.Index(names, name="gene_symbol"))
    if species == "mouse":
        var_out["mouse_symbol"] = [symbols[i] for i in keep]
    adata = ad.AnnData(X=matrix, obs=obs, var=var_out)
    harmonise_cell_types(adata, dataset_id=None)  # no crosswalk for a user's labels: the label is the cell type
    small = _small_cell_types(adata, min_cells, notes)
    info = {
        "cell_type_key": cell_type_key,
        "value_type": value_type,
        "declared": declared,
        "max": stats["max"],
        "integer": stats["integer"],
        "where": where,
        "source": symbol_source,
        "orthologs": orthologs,
        "small": small,
    }
    return adata, info


def user_dataset_id(path: str | Path) -> str:
    """The dataset id of a user's file: a slug of its file name (``My Data.h5ad`` -> ``my_data``)."""
    return re.sub(r"[^a-z0-9]+", "_", Path(path).stem.lower()).strip("_") or "user_data"


# --------------------------------------------------------------------------- the public entry points
def load_user_data(
    path: str | Path,
    *,
    cell_type_key: str | None = None,
    sample_key: str | None = None,
    species: str = "human",
    malignant_key: str | None = None,
    cancer_type: str = "unknown",
    min_cells: int = DEFAULT_MIN_CELLS,
    layer: str | None = None,
    gene_symbols_key: str | None = None,
    backed: bool | None = None,
    lazy: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    value_type: str | None = None,
) -> tuple[Dataset, ad.AnnData]:
    """Read and validate a user's ``.h5ad``; return ``(Dataset record, harmonised AnnData)``.

    Parameters
    ----------
    path
        An ``.h5ad`` file, cells x genes, ``X`` dense or sparse. Files above 2 GiB (or with
        ``backed=True``) are opened with ``anndata.read_h5ad(path, backed="r")`` and the matrix is
        read in blocks of rows, so a dense ``X`` is never held whole.
    cell_type_key
        obs column of cell-type labels (required; ``None`` uses a ``cell_type`` column if there is one).
    sample_key
        obs column of samples (patients). ``None``: one pseudo-sample :data:`USER_SAMPLE` (warned).
    species
        ``"human"`` or ``"mouse"`` (mouse symbols mapped with :func:`sasp_atlas.genes.mouse_to_human`).
    malignant_key
        obs column of booleans marking malignant cells (``None``: no cell is malignant).
    cancer_type
        Free text for the tables and the report.
    min_cells
        Cell types with fewer cells are warned about and flagged in the tables (not dropped).
    layer
        Score ``adata.layers[layer]`` (or ``"raw"`` for ``adata.raw``) instead of ``X``.
    gene_symbols_key
        var column of gene symbols (default: found among :data:`SYMBOL_COLUMNS` when ``var_names``
        are Ensembl ids).

    backed
        Force (``True``) or forbid (``False``) backed reading; ``None`` decides by file size.
    lazy
        Read ``X`` (or ``layer``) as a dask array of ``chunk_rows``-row CSR chunks
        (:func:`sasp_atlas.data.lazy.read_lazy`; ``.h5ad`` or anndata ``.zarr``, CSR matrix): the
        checks, the column selection and the normalisation are done chunk by chunk when the matrix
        is computed (on the current dask scheduler), and the returned ``X`` stays lazy.
    chunk_rows
        Rows per chunk with ``lazy``.
    value_type
        What the values are (``sasp-atlas score --value-type``), one of :data:`USER_VALUE_TYPES`;
        ``None`` detects ``raw_counts`` (integers) or ``log_normalised`` (non-integer, max <=
        :data:`LOG_MAX`). Linear values (``tpm``, ``tpm_like``) must be named: they are
        checked and normalised by :func:`sasp_atlas.data.normalise`, as a registry entry of that type.

    Returns
    -------
    tuple of (Dataset, AnnData)
        A :class:`~sasp_atlas.sources.Dataset` (id = slug of the file name, publication
        ``"User-provided data: <file>"``, the file's ``file://`` URL and sha256) and an AnnData with
        ``.X`` float32 CSR log-normalised (value-type aware, see :func:`detect_value_type`), var_names
        approved HGNC symbols (:func:`sasp_atlas.data.resolve_var_names`; duplicates: first column kept),
        obs ``cell_type_author``, ``cell_type`` (= the user's label), ``cell_type_fine``,
        ``cell_type_ontology_id`` (from ``cell_type_ontology_term_id`` if present, else ""), ``lineage``
        (""), ``sample``, ``malignant`` (replacing user columns of those names) and
        ``uns["provenance"]`` (file, sha256, value type, normalisation, keys, what was warned).
        Raises :class:`InputError` for every refused input; warnings are :class:`InputWarning`.
    """
    path = Path(path).expanduser().resolve()
    if species not in ("human", "mouse"):
        raise InputError(f"species must be 'human' or 'mouse', not {species!r} (--species)")
    notes: list[str] = []
    src = (
        read_lazy(
            path,
            chunk_rows=chunk_rows,
            layers=[layer] if layer not in (None, "raw") else [],
            raw=True if layer == "raw" else None,
        )
        if lazy
        else _open(path, backed)
    )
    if is_cellxgene(src):  # the schema says where things are: no options needed
        if sample_key is None and "donor_id" in src.obs:
            sample_key = "donor_id"
        if layer is None and src.raw is not None:
            layer = "raw"
        notes.append(
            "CELLxGENE-schema file: donors (obs['donor_id']) are the samples"
            + (", raw counts from raw.X" if layer == "raw" else "")
            + ", gene symbols from var['feature_name'], Cell Ontology ids from obs['cell_type_ontology_term_id']"
        )
    try:
        adata, info = _read_checked(
            src,
            path.name,
            cell_type_key=cell_type_key,
            sample_key=sample_key,
            species=species,
            malignant_key=malignant_key,
            min_cells=min_cells,
            layer=layer,
            gene_symbols_key=gene_symbols_key,
            notes=notes,
            value_type=value_type,
        )
    finally:
        if src.isbacked:
            src.file.close()
    cell_type_key, value_type, where, symbol_source = (
        info["cell_type_key"],
        info["value_type"],
        info["where"],
        info["source"],
    )
    symbol_resolution = resolve_var_names(adata)
    if value_type == "raw_counts" and is_lazy(adata.X):
        adata.X = normalise_lazy(adata.X)
        norm = "raw counts -> normalize_total(target_sum=1e4) -> natural log1p (chunk by chunk)"
    elif value_type == "raw_counts":
        norm = normalise(adata, "raw_counts", checked=True)["method"]
    elif value_type == "log_normalised":
        norm = f"log-normalised values as provided (non-integer, max <= {LOG_MAX:g}); used as they are"
    elif is_lazy(adata.X):
        raise InputError(
            f"--value-type {value_type} is normalised in memory: score this file without --dask (or "
            "convert it to raw counts or log-normalised values)"
        )
    else:
        norm = normalise(adata, value_type)["method"]
    if not is_lazy(adata.X):
        adata.X = sp.csr_matrix(adata.X, dtype=np.float32)

    sha, size = store_sha_size(path) if lazy else (file_sha256(path), path.stat().st_size)
    detected = (
        f"{value_type}: declared (--value-type); maximum {info['max']:.4g}"
        if info["declared"]
        else f"{value_type}: every value is an integer"
        if value_type == "raw_counts"
        else f"{value_type}: non-integer values, maximum {info['max']:.4g} <= {LOG_MAX:g}"
    )
    keys = {
        "cell_type_key": cell_type_key,
        "sample_key": sample_key or "",
        "malignant_key": malignant_key or "",
        "layer": layer or "",
        "gene_symbols": symbol_source,
        "species": species,
    }
    summary = (
        f"{adata.n_obs:,} cells x {adata.n_vars:,} genes from {path.name} ({where}); cell types from "
        f"obs[{cell_type_key!r}], samples from {f'obs[{sample_key!r}]' if sample_key else 'one pseudo-sample'}; "
        f"gene symbols from {symbol_source} ({species}); value type{'' if info['declared'] else ' detected'}: "
        f"{detected}."
    )
    entry = {
        "id": user_dataset_id(path),
        "title": f"User data: {path.name}",
        "species": species,
        "cancer_type": cancer_type,
        "cancer_type_short": cancer_type,
        "cancer_type_ontology_id": "",
        "tissue": "user data",
        "technology": "unknown",
        "value_type": value_type,
        "publication": {"citation": f"User-provided data: {path.name}", "doi": "", "accession": ""},
        "license": "user data",
        "trust": USER_TRUST,
        "files": [{"name": path.name, "url": f"file://{path}", "sha256": sha, "size": size}],
        "notes": " ".join([summary] + notes),
    }
    adata.uns["provenance"] = {
        "dataset_id": entry["id"],
        "title": entry["title"],
        "cancer_type": cancer_type,
        "cancer_type_short": cancer_type,
        "cancer_type_ontology_id": "",
        "tissue": "user data",
        "technology": "unknown",
        "citation": entry["publication"]["citation"],
        "doi": "",
        "accession": "",
        "license": "user data",
        "file": path.name,
        "sha256": sha,
        "value_type": value_type,
        "value_type_detected": detected,
        "normalisation": norm,
        "symbol_resolution": symbol_resolution,
        "orthologs": info["orthologs"],
        "keys": keys,
        "min_cells": int(min_cells),
        "small_cell_types": info["small"],
        "warnings": notes,
        "files": {path.name: {"url": entry["files"][0]["url"], "sha256": sha, "size": size}},
    }
    log.info("user data %s: %s", path.name, summary)
    return Dataset(entry), adata
