"""Readers, one per registry file format.

Each reader takes ``({file name: verified local path}, loader options)`` and returns ``(matrix
cells x genes as float32 CSR, gene symbols, cell ids, obs frame)``; :func:`sasp_atlas.data.load_dataset`
does everything after that (duplicate genes, symbol resolution, normalisation, harmonisation).
"""

from __future__ import annotations

import dataclasses
import gzip
import io as _io
import logging
import re
import tarfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._lazy import lazy_import
from .validate import InputError, dedupe_genes

__all__ = ["READERS", "Reader", "NA_RULES", "CXG_MALIGNANT_TERM", "cxg_malignant"]

log = logging.getLogger(__name__)

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
            raise ValueError(
                f"{int((obs['patient'] == 'unknown').sum())} cell ids do not match the sample pattern {pattern!r}"
            )
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
    """``rdata`` with its "Missing constructor" warnings (R classes it does not convert) silenced
    inside the caller's ``warnings.catch_warnings()`` block."""
    warnings.filterwarnings("ignore", message="Missing constructor")
    return _rdata()


def _rdata(submodule: str = ""):
    """``rdata`` (or ``rdata.<submodule>``), loaded when an R file is read (:mod:`sasp_atlas._lazy`)."""
    return lazy_import("rdata" + (f".{submodule}" if submodule else ""))


@_reader("sce_rdata")
def read_sce_rdata(paths: dict[str, Path], options: dict[str, Any]):
    """A SingleCellExperiment with a dgCMatrix assay in an ``.RData`` file (read with ``rdata``, no R)."""
    with warnings.catch_warnings():
        _quiet_rdata()
        (path,) = paths.values()
        sce = _rdata().read_rda(path)[options["object"]]
    c = sce.assays.data.listData[options.get("assay", "counts")]
    X = sp.csc_matrix(
        (np.asarray(c.x, dtype=np.float32), np.asarray(c.i), np.asarray(c.p)), shape=tuple(c.Dim)
    ).T.tocsr()
    genes = [str(g) for g in sce.rowRanges.partitioning.NAMES]
    cells = [str(c) for c in sce.colData.rownames]
    obs = pd.DataFrame({str(k): np.asarray(v) for k, v in sce.colData.listData.items()}, index=cells)
    for col in obs.columns:
        if isinstance(obs[col].dtype, pd.CategoricalDtype) or obs[col].dtype == object:
            obs[col] = obs[col].astype(str)
    return X, genes, cells, obs


def _r_attributes(obj) -> dict[str, Any]:
    RObjectType = _rdata("parser").RObjectType
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
    if isinstance(value, _rdata("parser").RObject):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _r_children(v)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _r_children(getattr(value, f.name))


def _assay_matrix(slots: dict[str, Any], path: Path):
    """The single REAL matrix with a ``dim`` attribute reachable from a (Single Cell) Summarized
    Experiment's ``assays`` slot, converted (an xarray genes x cells), without converting the rest:
    Bioconductor keeps assays in a reference-class environment that ``rdata`` cannot convert
    (``NotImplementedError: PROM``). Searched depth-first over attributes, values and environment frames."""
    RObjectType = _rdata("parser").RObjectType
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
    return _rdata("conversion").convert(found[0])


@_reader("sce_rda_partial")
def read_sce_rda_partial(paths: dict[str, Path], options: dict[str, Any]):
    """A SingleCellExperiment whose assay sits in a reference-class environment (CHETAH refs).

    ``rdata.read_rda`` cannot convert the whole object (``NotImplementedError: PROM``), so the file is
    parsed and only two sub-objects are converted: ``colData`` and the single REAL matrix with a
    ``dim`` attribute reachable from the ``assays`` slot (depth-first over attributes, values and
    environment frames).
    """
    with warnings.catch_warnings():
        _quiet_rdata()
        (path,) = paths.values()
        root = _rdata("parser").parse_file(path).object.value[0]
        slots = _r_attributes(root)
        coldata = _rdata("conversion").convert(slots["colData"])
        mat = _assay_matrix(slots, path)
    genes = [str(g) for g in mat.coords[mat.dims[0]].values]
    cells = [str(c) for c in mat.coords[mat.dims[1]].values]
    if list(map(str, coldata.rownames)) != cells:
        raise ValueError(f"{path}: colData rownames do not match the assay columns")
    obs = pd.DataFrame({str(k): np.asarray(v).astype(str) for k, v in coldata.listData.items()}, index=cells)
    X = sp.csr_matrix(np.asarray(mat.values, dtype=np.float32).T)
    return X, genes, cells, obs


# --------------------------------------------------------------------------- full-profile readers
# Formats of the `profile: full` registry entries that the core datasets do not use. Each reader
# returns the same ``(X cells x genes CSR float32, genes, cells, obs)`` as the core readers and
# shares these options: a label/metadata table (``labels``, see :func:`_label_table`),
# ``columns_by_id`` (``{column: {cell or sample id: value}}``: a column transcribed into the registry,
# e.g. the strain of each bulk sample, with its source named in the entry),
# ``drop_unlabelled`` (drop cells missing from it, with a warning, instead of raising),
# ``sample_from_cell_id``/``sample_format`` (as for ``tsv_matrix``) and ``derive`` (new obs
# columns computed from label text, see :func:`_derive`).
def _derive(obs: pd.DataFrame, options: dict[str, Any]) -> pd.DataFrame:
    """Add obs columns computed from others: ``derive: [{column, from, pattern, template, default}]``.

    For each value of ``from`` that ``re.match``-es ``pattern``, the new ``column`` gets
    ``match.expand(template)`` (default: the whole match); other values get ``default`` (default:
    the value itself). Example: ``{column: patient, from: annotation, pattern: "^(.+)_malignant$",
    template: "\\1", default: unrecorded}``.
    """
    for rule in options.get("derive") or []:
        if rule["from"] not in obs:
            raise ValueError(f"derive: column {rule['from']!r} not found; available: {list(obs.columns)}")
        rx, template, default = re.compile(rule["pattern"]), rule.get("template", r"\g<0>"), rule.get("default")

        def one(value: str, rx=rx, template=template, default=default) -> str:  # this rule's values bound
            m = rx.match(value)
            if m:
                return m.expand(template)
            return value if default is None else str(default)

        obs[rule["column"]] = [one(v) for v in obs[rule["from"]].astype(str)]
    return obs


def _label_table(path: Path, options: dict[str, Any]) -> pd.DataFrame:
    """A cell label/metadata table indexed by cell id (all columns as strings).

    ``labels_header: false`` (default): no header, column 1 = cell id, column 2 = ``label_column``
    (default ``annotation``), further columns ``label_3`` ... ``labels_header: true``: the header
    names the columns; ``cell_column`` (default: the first) holds the cell ids and
    ``label_column_index`` optionally renames the column at that position to ``label_column``.
    ``labels_sep`` is the delimiter (default tab); ``.gz`` files are read transparently.
    """
    sep = options.get("labels_sep", "\t")
    col = options.get("label_column", "annotation")
    if options.get("labels_header", False):
        table = pd.read_csv(path, sep=sep, dtype=str)
        if (pos := options.get("label_column_index")) is not None:
            table = table.rename(columns={table.columns[int(pos)]: col})
        table = table.set_index(options.get("cell_column", table.columns[0]))
    else:
        table = pd.read_csv(path, sep=sep, header=None, dtype=str)
        table.columns = ["cell", col] + [f"label_{i + 1}" for i in range(2, table.shape[1])]
        table = table.set_index("cell")
    table.index = table.index.astype(str)
    if not table.index.is_unique:
        raise ValueError(f"{path.name}: duplicated cell ids, e.g. {list(table.index[table.index.duplicated()][:3])}")
    return table


def _obs_for_cells(cells: list[str], table: pd.DataFrame | None, options: dict[str, Any], source: str):
    """Align a label table to ``cells``; returns ``(obs, keep mask)`` (see the section comment)."""
    idx = pd.Index(cells).astype(str)
    if not idx.is_unique:
        raise ValueError(f"{source}: duplicated cell ids, e.g. {list(idx[idx.duplicated()][:3])}")
    keep = np.ones(len(idx), dtype=bool)
    if table is None:
        obs = pd.DataFrame(index=idx)
    else:
        missing = ~idx.isin(table.index)
        if missing.any():
            if not options.get("drop_unlabelled", False):
                raise ValueError(
                    f"{int(missing.sum())} cells have no label in {options.get('labels', 'the metadata')} "
                    f"(e.g. {list(idx[missing][:3])}); set drop_unlabelled: true to drop them"
                )
            log.warning("%s: %d of %d cells have no label and are dropped", source, int(missing.sum()), len(idx))
            keep = ~missing
        obs = table.loc[idx[keep]].copy()
    if pattern := options.get("sample_from_cell_id"):
        fmt = options.get("sample_format", "{}")
        obs["patient"] = [fmt.format(m.group(1)) if (m := re.match(pattern, c)) else "unknown" for c in obs.index]
        if (obs["patient"] == "unknown").any():
            raise ValueError(
                f"{int((obs['patient'] == 'unknown').sum())} cell ids do not match the sample pattern {pattern!r}"
            )
    for column, by_id in (options.get("columns_by_id") or {}).items():
        missing = [c for c in obs.index if c not in by_id]
        if missing:
            raise ValueError(f"columns_by_id: {column!r} has no value for {len(missing)} id(s), e.g. {missing[:3]}")
        obs[column] = [str(by_id[c]) for c in obs.index]
    return _derive(obs, options), keep


def _open_text(path: Path):
    """A text handle on ``path``: plain, gzipped, or the single regular file inside a ``.tar.gz``/``.tgz``
    (streamed, never extracted to disk)."""
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz")):
        archive = tarfile.open(path, "r:gz")
        members = [m for m in archive.getmembers() if m.isfile() and not Path(m.name).name.startswith("._")]
        if len(members) != 1:
            archive.close()
            raise ValueError(f"{path.name}: expected one file inside the archive, found {[m.name for m in members]}")
        return _ArchiveText(archive, members[0])
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


class _ArchiveText(_io.TextIOWrapper):
    """The text of one tar member; closing it closes the archive too."""

    def __init__(self, archive: tarfile.TarFile, member: tarfile.TarInfo):
        super().__init__(archive.extractfile(member), encoding="utf-8")
        self._archive = archive

    def close(self) -> None:
        super().close()
        self._archive.close()


def _read_text_chunks(
    path: Path, sep: str = "\t", chunk_rows: int = 2000
) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """A delimited text matrix with a header row and row names, read ``chunk_rows`` rows at a
    time into a sparse matrix (the dense text never sits in memory as a whole).

    R's ``write.table`` header without a corner cell (one name fewer than the data columns) is
    handled as pandas does: the first column becomes the row names.
    """
    blocks, rows, columns = [], [], None
    with _open_text(path) as fh:
        for chunk in pd.read_csv(fh, sep=sep, index_col=0, chunksize=chunk_rows):
            if columns is None:
                columns = [str(c) for c in chunk.columns]
            blocks.append(sp.csr_matrix(chunk.to_numpy(dtype=np.float32)))
            rows.extend(str(r) for r in chunk.index)
    if columns is None or not blocks:
        raise ValueError(f"{path.name}: no data rows")
    return sp.vstack(blocks, format="csr"), rows, columns


@_reader("text_matrix")
def read_text_matrix(paths: dict[str, Path], options: dict[str, Any]):
    """A delimited text matrix (gzipped or not), read in row chunks, plus a separate label table.

    Options: ``matrix`` (file name), ``sep`` (default tab; ``","`` for CSV), ``orientation``
    (``genes_x_cells``, the inferCNV/GEO default, or ``cells_x_genes``), ``chunk_rows``, ``labels``
    and the shared label options. Used for the full inferCNV example matrices (same format as the
    core ``tsv_matrix`` file, on which it is tested to give identical results) and for GEO-style
    CSV/TSV matrices with separate metadata.
    """
    M, rows, cols = _read_text_chunks(
        paths[options["matrix"]], sep=options.get("sep", "\t"), chunk_rows=int(options.get("chunk_rows", 2000))
    )
    orientation = options.get("orientation", "genes_x_cells")
    if orientation == "genes_x_cells":
        X, genes, cells = M.T.tocsr(), rows, cols
    elif orientation == "cells_x_genes":
        X, genes, cells = M, cols, rows
    else:
        raise ValueError(f"orientation must be genes_x_cells or cells_x_genes, not {orientation!r}")
    table = _label_table(paths[options["labels"]], options) if options.get("labels") else None
    obs, keep = _obs_for_cells(cells, table, options, options["matrix"])
    return X[keep], genes, [c for c, k in zip(cells, keep) if k], obs


@_reader("text_matrix_samples")
def read_text_matrix_samples(paths: dict[str, Path], options: dict[str, Any]):
    """One delimited genes x cells text matrix and one label table per sample (the GEO per-sample
    supplementary layout, e.g. van Galen 2019 ``GSM..._AML328-D0.dem.txt.gz`` + ``.anno.txt.gz``).

    Options: ``samples`` (``{sample id: {matrix: file, labels: file}}``), ``sep`` and the shared
    label options (applied to every label table). Each sample is read as :func:`read_text_matrix`
    reads one file; cell ids become ``"<sample>:<cell id>"`` and obs gains a ``sample`` column (the
    patient, for the statistics). Genes are the union over samples in first-seen order; a gene
    missing from a sample's file is 0 there (the matrices of one study share one annotation, so
    this only touches genes with no count at all in that sample). Within a file, a repeated gene
    symbol keeps its first row (the duplicate-gene policy of :func:`~sasp_atlas.data.validate.dedupe_genes`).
    """
    samples = options.get("samples") or {}
    if not samples:
        raise ValueError("text_matrix_samples: `samples` must map each sample id to {matrix: ..., labels: ...}")
    parts, gene_index, all_cells, obs_parts = [], {}, [], []
    for sample, files in samples.items():
        M, rows, cols = _read_text_chunks(
            paths[files["matrix"]], sep=options.get("sep", "\t"), chunk_rows=int(options.get("chunk_rows", 2000))
        )
        first = dedupe_genes(rows, f"in {files['matrix']}", [])
        X = M[first].T.tocsr()
        genes = [rows[i] for i in first]
        table = _label_table(paths[files["labels"]], options) if files.get("labels") else None
        obs, keep = _obs_for_cells(cols, table, options, files["matrix"])
        for g in genes:
            gene_index.setdefault(g, len(gene_index))
        parts.append((X[keep], np.array([gene_index[g] for g in genes], dtype=np.int64)))
        kept = [f"{sample}:{c}" for c, k in zip(cols, keep) if k]
        obs.index = pd.Index(kept)
        obs["sample"] = str(sample)
        all_cells.extend(kept)
        obs_parts.append(obs)
    n_genes = len(gene_index)
    blocks = []
    for X, cols in parts:
        C = X.tocoo()
        blocks.append(sp.csr_matrix((C.data, (C.row, cols[C.col])), shape=(X.shape[0], n_genes), dtype=np.float32))
    genes = sorted(gene_index, key=gene_index.get)
    return sp.vstack(blocks, format="csr"), genes, all_cells, pd.concat(obs_parts)


@_reader("tenx_mtx")
def read_tenx_mtx(paths: dict[str, Path], options: dict[str, Any]):
    """Cell Ranger MatrixMarket output: ``matrix`` (genes x cells ``.mtx``, gzipped or not),
    ``genes`` (``genes.tsv``/``features.tsv``; ``gene_column``: 0-based column with the symbol,
    default 1), ``barcodes``, plus a label table (``labels`` and the shared label options)."""
    with (
        gzip.open(paths[options["matrix"]], "rb")
        if paths[options["matrix"]].suffix == ".gz"
        else open(paths[options["matrix"]], "rb")
    ) as fh:
        M = lazy_import("scipy.io").mmread(fh)
    with _open_text(paths[options["genes"]]) as fh:
        features = pd.read_csv(fh, sep="\t", header=None, dtype=str)
    with _open_text(paths[options["barcodes"]]) as fh:
        barcodes = pd.read_csv(fh, sep="\t", header=None, dtype=str)[0].tolist()
    genes = features[int(options.get("gene_column", 1))].tolist()
    if M.shape != (len(genes), len(barcodes)):
        raise ValueError(
            f"{options['matrix']}: shape {M.shape} does not match {len(genes)} genes x {len(barcodes)} barcodes"
        )
    X = sp.csr_matrix(M.T, dtype=np.float32)
    table = _label_table(paths[options["labels"]], options) if options.get("labels") else None
    obs, keep = _obs_for_cells(barcodes, table, options, options["matrix"])
    return X[keep], genes, [c for c, k in zip(barcodes, keep) if k], obs


@_reader("h5ad")
def read_h5ad(paths: dict[str, Path], options: dict[str, Any]):
    """An AnnData ``.h5ad`` opened backed (``anndata.read_h5ad(path, backed="r")``) and read in chunks.

    The file is never loaded whole: ``.obs``/``.var`` are read, cells are selected
    (``obs_filter: {column: [values]}``, e.g. one disease of an atlas), then the selected rows of
    ``matrix`` (``X``, default, or ``raw.X``) are read ``chunk_size`` cells at a time (default
    10,000) into a float32 CSR matrix, so peak memory is about that matrix plus one chunk.
    ``gene_symbols`` names a ``var`` column holding symbols (CELLxGENE: ``feature_name``);
    default: ``var_names``. Obs columns are returned as strings; ``derive`` applies as elsewhere.
    """
    path = paths[options["file"]] if "file" in options else next(iter(paths.values()))
    a = ad.read_h5ad(path, backed="r")
    try:
        matrix = options.get("matrix", "X")
        if matrix == "X":
            source, var = a.X, a.var
        elif matrix == "raw.X":
            if a.raw is None:
                raise ValueError(f"{path.name}: matrix raw.X requested but the file has no .raw")
            source, var = a.raw.X, a.raw.var
            sym = options.get("gene_symbols")
            if sym and sym not in var and sym in a.var and var.index.equals(a.var.index):
                var = a.var  # CELLxGENE keeps feature_name in var only; raw has the same genes
        else:
            raise ValueError(f"matrix must be X or raw.X, not {matrix!r}")
        sym = options.get("gene_symbols")
        if sym and sym not in var:
            raise ValueError(f"{path.name}: var has no column {sym!r}; available: {list(var.columns)}")
        genes = [str(g) for g in (var[sym] if sym else var.index)]
        obs = a.obs.copy()
        keep = np.ones(a.n_obs, dtype=bool)
        for col, values in (options.get("obs_filter") or {}).items():
            if col not in obs:
                raise ValueError(f"{path.name}: obs_filter column {col!r} not found; available: {list(obs.columns)}")
            keep &= obs[col].astype(str).isin([str(v) for v in values]).to_numpy()
        idx = np.flatnonzero(keep)
        if not len(idx):
            raise ValueError(f"{path.name}: no cell passes obs_filter {options.get('obs_filter')}")
        step = int(options.get("chunk_size", 10_000))
        blocks = [sp.csr_matrix(source[idx[i : i + step]], dtype=np.float32) for i in range(0, len(idx), step)]
    finally:
        a.file.close()
    X = sp.vstack(blocks, format="csr")
    obs = obs.iloc[idx].copy()
    for col in obs.columns:
        obs[col] = obs[col].astype(str)
    obs.index = obs.index.astype(str)
    cells = list(obs.index)
    return X, genes, cells, _derive(obs, options)


#: the CELLxGENE Cell Ontology term of malignant cells; its descendants carry "malignant" in their label
CXG_MALIGNANT_TERM = "CL:0001064"


def cxg_malignant(obs: pd.DataFrame) -> np.ndarray:
    """The CELLxGENE malignant rule, one place for the h5ad and the Census readers: ``"True"`` for cells whose
    ``cell_type_ontology_term_id`` is :data:`CXG_MALIGNANT_TERM` or whose ``cell_type`` label names a malignant
    cell, else ``"False"`` (strings, like every obs column a reader returns)."""
    term = obs["cell_type_ontology_term_id"].astype(str)
    label = obs["cell_type"].astype(str).str.lower()
    return np.where((term == CXG_MALIGNANT_TERM) | label.str.contains("malignant"), "True", "False")


@_reader("cellxgene")
def read_cellxgene(paths: dict[str, Path], options: dict[str, Any]):
    """A CELLxGENE-schema (5.x) ``.h5ad``, read backed and in chunks like :func:`read_h5ad`.

    Schema conventions applied: raw counts from ``raw.X`` when the file has ``.raw``, else ``X``
    (``matrix`` overrides); gene symbols from ``var["feature_name"]`` (the index holds Ensembl
    ``feature_id``s); only primary data (``is_primary_data`` true, so no cell counts twice across the
    collections that reuse it; ``primary_only: false`` keeps all); ``obs_filter`` on any obs column
    (``disease``, ``tissue``, ...). Adds ``obs["cxg_malignant"]`` = ``"True"`` for cells whose
    ``cell_type_ontology_term_id`` is CL:0001064 (malignant cell) or whose ``cell_type`` label names a
    malignant cell, else ``"False"``. Donors (``donor_id``) and the Cell Ontology ids are used as they
    are by the registry entry's ``columns`` and the harmoniser (no hand mapping).
    """
    path = paths[options["file"]] if "file" in options else next(iter(paths.values()))
    a = ad.read_h5ad(path, backed="r")
    try:
        has_raw = a.raw is not None
        missing = [c for c in ("cell_type", "cell_type_ontology_term_id", "donor_id") if c not in a.obs]
        has_primary = "is_primary_data" in a.obs
    finally:
        a.file.close()
    if missing:
        raise ValueError(f"{path.name}: not a CELLxGENE-schema file: obs has no {missing}")
    opts = {
        "gene_symbols": "feature_name",
        **{k: v for k, v in options.items() if k != "primary_only"},
        "matrix": options.get("matrix") or ("raw.X" if has_raw else "X"),
    }
    if options.get("primary_only", True) and has_primary:
        opts["obs_filter"] = {**(options.get("obs_filter") or {}), "is_primary_data": ["True", "1"]}
    X, genes, cells, obs = read_h5ad(paths, opts)
    obs["cxg_malignant"] = cxg_malignant(obs)
    return X, genes, cells, obs


def _rda_object(path: Path, name: str | None):
    """One object of an ``.RData``/``.rda`` file (the only one when ``name`` is None)."""
    with warnings.catch_warnings():
        _quiet_rdata()
        objects = _rdata().read_rda(path)
    if name is None:
        if len(objects) != 1:
            raise ValueError(f"{path.name}: holds {sorted(map(str, objects))}; name the object in the loader options")
        return next(iter(objects.items()))
    if name not in objects:
        raise ValueError(f"{path.name}: no object {name!r}; it holds {sorted(map(str, objects))}")
    return name, objects[name]


def _r_matrix(obj, what: str) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """An R genes x cells matrix with dimnames -> ``(cells x genes CSR, genes, cells)``.

    Accepts a dense numeric matrix (``rdata`` gives an xarray DataArray), a numeric ``data.frame``
    with gene rownames, or a ``dgCMatrix`` (``rdata`` gives its slots ``i``, ``p``, ``x``, ``Dim``, ``Dimnames``).
    """
    if all(hasattr(obj, s) for s in ("i", "p", "x", "Dim", "Dimnames")):
        cls = getattr(obj, "class", None)
        if cls is not None and "dgCMatrix" not in [str(c) for c in np.atleast_1d(cls)]:
            raise ValueError(f"{what}: sparse matrix class {cls} is not dgCMatrix")
        M = sp.csc_matrix(
            (np.asarray(obj.x, dtype=np.float32), np.asarray(obj.i), np.asarray(obj.p)),
            shape=tuple(int(d) for d in obj.Dim),
        )
        rows, cols = obj.Dimnames
        if rows is None or cols is None:
            raise ValueError(f"{what}: the dgCMatrix has no row or column names")
        return M.T.tocsr(), [str(g) for g in rows], [str(c) for c in cols]
    if hasattr(obj, "dims") and hasattr(obj, "coords") and getattr(obj, "ndim", 0) == 2:
        if not all(d in obj.coords for d in obj.dims):
            raise ValueError(f"{what}: the matrix has no row or column names (dimnames)")
        genes = [str(g) for g in obj.coords[obj.dims[0]].values]
        cells = [str(c) for c in obj.coords[obj.dims[1]].values]
        return sp.csr_matrix(np.asarray(obj.values, dtype=np.float32).T), genes, cells
    if isinstance(obj, pd.DataFrame):  # a numeric data.frame, rownames = genes (markeR's counts_example)
        bad = [c for c in obj.columns if not pd.api.types.is_numeric_dtype(obj[c])]
        if bad:
            raise ValueError(f"{what}: the data.frame has non-numeric column(s) {bad[:3]}")
        return (
            sp.csr_matrix(obj.to_numpy(dtype=np.float32).T),
            [str(g) for g in obj.index],
            [str(c) for c in obj.columns],
        )
    if isinstance(obj, np.ndarray) and obj.ndim == 2:  # rdata gives a bare array when dimnames are absent
        raise ValueError(f"{what}: the matrix has no row or column names (dimnames)")
    raise ValueError(f"{what}: expected a dense matrix or a dgCMatrix, got {type(obj).__name__}")


@_reader("rdata_matrix_meta")
def read_rdata_matrix_meta(paths: dict[str, Path], options: dict[str, Any]):
    """A genes x cells matrix (dense or ``dgCMatrix``) in one ``.RData`` file and a cell metadata
    ``data.frame`` (rownames = cell ids, or ``cell_column``) in another (CARD's ``sc_count`` +
    ``sc_meta``; markeR's bulk ``counts_example`` + ``metadata_example``, samples for cells). Options:
    ``matrix``, ``matrix_object``, ``meta``, ``meta_object``, ``cell_column`` and the shared
    ``drop_unlabelled``/``derive``/``columns_by_id``."""
    name, obj = _rda_object(paths[options["matrix"]], options.get("matrix_object"))
    X, genes, cells = _r_matrix(obj, f"{options['matrix']}:{name}")
    meta_name, meta = _rda_object(paths[options["meta"]], options.get("meta_object"))
    if not isinstance(meta, pd.DataFrame):
        raise ValueError(f"{options['meta']}:{meta_name} is a {type(meta).__name__}, not a data.frame")
    meta = meta.copy()
    if col := options.get("cell_column"):
        meta.index = meta[col]
    meta.index = meta.index.astype(str)
    for c in meta.columns:
        meta[c] = meta[c].astype(str)
    obs, keep = _obs_for_cells(cells, meta, {**options, "labels": options["meta"]}, options["matrix"])
    return X[keep], genes, [c for c, k in zip(cells, keep) if k], obs


@_reader("rda_matrices_refcells")
def read_rda_matrices_refcells(paths: dict[str, Path], options: dict[str, Any]):
    """Dense genes x cells matrices, one sample per ``.rda`` file, and an ``.rda`` list of normal
    cell ids (jlaffy/infercna ``refCells``).

    Options: ``matrices`` (file names; sample = the object name), ``refcells`` (file),
    ``ref_labels`` (list name -> label, e.g. ``macrophages: Macrophage``), ``default_label`` for
    every cell in no list (default ``Malignant``). Gives obs ``annotation`` and ``sample``. The
    matrices must share their genes; if they do not, the genes common to all are kept (warning).
    """
    blocks, gene_lists, cells, samples = [], [], [], []
    for fname in options["matrices"]:
        name, obj = _rda_object(paths[fname], (options.get("objects") or {}).get(fname))
        X, genes, cols = _r_matrix(obj, f"{fname}:{name}")
        blocks.append(X)
        gene_lists.append(genes)
        cells += cols
        samples += [str(name)] * len(cols)
    if any(g != gene_lists[0] for g in gene_lists[1:]):
        common = set(gene_lists[0]).intersection(*map(set, gene_lists[1:]))
        genes = [g for g in gene_lists[0] if g in common]
        log.warning("the %d matrices do not share their genes; keeping the %d common genes", len(blocks), len(genes))
        blocks = [B[:, [gl.index(g) for g in genes]] for B, gl in zip(blocks, gene_lists)]
    else:
        genes = gene_lists[0]
    X = sp.vstack(blocks, format="csr")
    _, refs = _rda_object(paths[options["refcells"]], options.get("refcells_object"))
    if not isinstance(refs, dict):
        raise ValueError(f"{options['refcells']}: expected a named list of cell id vectors, got {type(refs).__name__}")
    ref_labels = options.get("ref_labels") or {}
    label_of: dict[str, str] = {}
    for list_name, ids in refs.items():
        label = ref_labels.get(str(list_name), str(list_name))
        for c in np.atleast_1d(ids):
            if label_of.setdefault(str(c), label) != label:
                raise ValueError(f"{options['refcells']}: cell {c!r} is in two lists")
    default = options.get("default_label", "Malignant")
    table = pd.DataFrame(
        {"annotation": [label_of.get(c, default) for c in cells], "sample": samples}, index=pd.Index(cells, dtype=str)
    )
    if not table.index.is_unique:
        raise ValueError(f"duplicated cell ids across {options['matrices']}")
    obs, _ = _obs_for_cells(cells, table, options, "+".join(options["matrices"]))
    return X, genes, cells, obs


@_reader("seurat_v5_rds")
def read_seurat_v5_rds(paths: dict[str, Path], options: dict[str, Any]):
    """A Seurat v5 object saved with ``saveRDS`` (read with ``rdata``, no R).

    Seurat v5 keeps each assay as an ``Assay5``: its matrices are ``layers`` (``counts``, ``data``, ...)
    without dimnames; the cell and feature names sit in the assay's ``cells`` and ``features``
    LogMaps (logical matrices: one row per name, one column per layer, true where the layer holds
    that name). Options: ``file`` (default: the only file), ``assay`` (default ``RNA``), ``layer``
    (default ``counts``). ``obs`` is the object's ``meta.data`` (all columns as strings).
    """
    path = paths[options["file"]] if "file" in options else next(iter(paths.values()))
    with warnings.catch_warnings():
        _quiet_rdata()
        obj = _rdata().read_rds(path)
    assays = getattr(obj, "assays", None)
    if not isinstance(assays, dict):
        raise ValueError(f"{path.name}: not a Seurat object (no 'assays' slot)")
    assay_name, layer = str(options.get("assay", "RNA")), str(options.get("layer", "counts"))
    if assay_name not in assays:
        raise ValueError(f"{path.name}: no assay {assay_name!r}; it has {sorted(map(str, assays))}")
    assay = assays[assay_name]
    cls = [str(c) for c in np.atleast_1d(getattr(assay, "class", []))]
    if "Assay5" not in cls:
        raise ValueError(
            f"{path.name}: assay {assay_name!r} is {cls}, not a Seurat v5 Assay5 (a v3/v4 Assay keeps "
            "counts in its 'counts' slot: convert it with SeuratObject or save it as v5)"
        )
    if layer not in assay.layers:
        raise ValueError(
            f"{path.name}: assay {assay_name!r} has no layer {layer!r}; it has {sorted(map(str, assay.layers))}"
        )

    def names(logmap, what: str) -> list[str]:
        col = logmap.sel({logmap.dims[1]: layer}).values.astype(bool)
        return [str(n) for n, on in zip(logmap.coords[logmap.dims[0]].values, col) if on]

    genes, cells = names(assay.features, "features"), names(assay.cells, "cells")
    m = assay.layers[layer]
    shape = tuple(int(d) for d in m.Dim)
    if shape != (len(genes), len(cells)):
        raise ValueError(
            f"{path.name}: layer {layer!r} is {shape} but the assay names {len(genes)} features x {len(cells)} cells"
        )
    X = sp.csc_matrix((np.asarray(m.x, dtype=np.float32), np.asarray(m.i), np.asarray(m.p)), shape=shape).T.tocsr()
    meta = getattr(obj, "meta.data", None)
    if meta is None:
        meta = vars(obj).get("meta.data")
    table = pd.DataFrame(index=pd.Index(cells)) if meta is None else meta.copy()
    table.index = table.index.astype(str)
    for c in table.columns:
        table[c] = table[c].astype(str)
    obs, keep = _obs_for_cells(cells, table, options, path.name)
    return X[keep], genes, [c for c, k in zip(cells, keep) if k], obs


def _series_matrix_samples(path: Path) -> pd.DataFrame:
    """Per-sample fields of a GEO series matrix (``!Sample_*`` lines), indexed by GSM accession:
    ``title``, ``source_name`` and ``characteristics_1`` ... (one column per characteristics line)."""
    rows: dict[str, list[str]] = {}
    n_char = 0
    with _open_text(path) as fh:
        for line in fh:
            if line.startswith("!series_matrix_table_begin"):
                break
            if not line.startswith("!Sample_"):
                continue
            key, *values = line.rstrip("\n").split("\t")
            values = [v.strip().strip('"') for v in values]
            key = key[len("!Sample_") :]
            if key == "characteristics_ch1":
                n_char += 1
                key = f"characteristics_{n_char}"
            elif key == "source_name_ch1":
                key = "source_name"
            rows.setdefault(key, values)
    if "geo_accession" not in rows or "title" not in rows:
        raise ValueError(f"{path.name}: not a GEO series matrix (no !Sample_geo_accession / !Sample_title lines)")
    table = pd.DataFrame({k: v for k, v in rows.items() if len(v) == len(rows["geo_accession"])})
    return table.set_index("geo_accession")


@_reader("geo_ncbi_counts")
def read_geo_ncbi_counts(paths: dict[str, Path], options: dict[str, Any]):
    """GEO's NCBI-generated RNA-seq counts of a series (bulk): ``counts`` (``<GSE>_raw_counts_GRCh38.p13_NCBI.tsv.gz``,
    tab-separated, rows = NCBI GeneID, first column ``GeneID``, one column per GSM, integer counts),
    ``annotation`` (``Human.GRCh38.p13.annot.tsv.gz``: ``GeneID`` -> ``Symbol``) and the series
    matrix (``series_matrix``: sample titles and characteristics, the labels).

    Genes are named by their symbol; a GeneID without a symbol keeps ``GeneID:<id>``. ``obs`` holds
    the series matrix fields per sample (``title``, ``source_name``, ``characteristics_N``) plus the
    shared ``derive``/``columns_by_id`` options.
    """
    M, rows, cols = _read_text_chunks(paths[options["counts"]], chunk_rows=int(options.get("chunk_rows", 5000)))
    with _open_text(paths[options["annotation"]]) as fh:
        annot = pd.read_csv(fh, sep="\t", dtype=str, usecols=["GeneID", options.get("symbol_column", "Symbol")])
    symbol = dict(zip(annot["GeneID"], annot[options.get("symbol_column", "Symbol")]))
    genes = [s if isinstance(s := symbol.get(g), str) and s else f"GeneID:{g}" for g in rows]
    table = _series_matrix_samples(paths[options["series_matrix"]])
    obs, keep = _obs_for_cells(cols, table, {**options, "labels": options["series_matrix"]}, options["counts"])
    return M.T.tocsr()[keep], genes, [c for c, k in zip(cols, keep) if k], obs


#: the rules a reader can apply to NA values (loader option ``na``); anything else is refused by name
NA_RULES = ("refuse", "drop_genes_na_in_every_cell")


def _apply_na_rule(
    M: np.ndarray, genes: list[str], rule: str, source: str
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Apply the loader's ``na`` rule to a dense genes x cells matrix (the kept cells only).

    ``refuse`` (default): any NA is an :class:`~sasp_atlas.data.validate.InputError`.
    ``drop_genes_na_in_every_cell``: genes that are NA in every kept cell carry no measurement and
    are dropped (counted, logged, returned in the summary); an NA anywhere else (a gene measured in
    some cells but not in others) is still refused, because imputing a value there would invent data.
    Returns ``(matrix, genes, summary)`` with ``n_na_values``, ``n_genes_dropped_all_na`` and ``rule``.
    """
    if rule not in NA_RULES:
        raise InputError(f"{source}: loader option na is {rule!r}; expected one of {', '.join(NA_RULES)}")
    na = np.isnan(M)
    summary: dict[str, Any] = {
        "rule": rule,
        "n_na_values": int(na.sum()),
        "n_genes_dropped_all_na": 0,
        "genes_dropped_all_na": "",
    }
    if not summary["n_na_values"]:
        return M, genes, summary
    all_na = na.all(axis=1)
    if rule == "refuse":
        raise InputError(
            f"{source}: {summary['n_na_values']:,} NA values in {int(na.any(axis=1).sum()):,} genes "
            f"({int(all_na.sum()):,} of them NA in every cell); the atlas does not impute expression. "
            "Fix: release the values without NA, or set the loader option "
            "na: drop_genes_na_in_every_cell if the NA are whole unmeasured genes"
        )
    scattered = na[~all_na].any(axis=1)
    if scattered.any():
        rows = np.flatnonzero(~all_na)[scattered]
        raise InputError(
            f"{source}: {int(scattered.sum()):,} genes are NA in some cells but measured in others "
            f"(e.g. {', '.join(genes[i] for i in rows[:5])}); na: drop_genes_na_in_every_cell drops only "
            "genes NA in every cell and never imputes. Fix: release the values without NA, or drop "
            "these genes upstream and say so in the registry notes"
        )
    dropped = [g for g, a in zip(genes, all_na) if a]
    log.warning(
        "%s: %d of %d genes are NA in every kept cell and are dropped (na: %s)", source, len(dropped), len(genes), rule
    )
    summary.update(n_genes_dropped_all_na=len(dropped), genes_dropped_all_na=";".join(dropped))
    return M[~all_na], [g for g, a in zip(genes, all_na) if not a], summary


@_reader("se_rds")
def read_se_rds(paths: dict[str, Path], options: dict[str, Any]):
    """A ``SummarizedExperiment`` saved with ``saveRDS`` (one dense assay), plus a label table
    (read with ``rdata``, no R; the assay is found as for :func:`read_sce_rda_partial`).

    Options: ``file`` (the ``.rds``), ``genes`` (``names``, default: the object's ``NAMES``, e.g.
    the symbols when the assay's own rownames are Ensembl ids; or ``assay_rownames``),
    ``drop_columns`` (assay columns dropped by name before anything else, e.g. a bulk sample stored
    next to the cells; each must exist; logged), ``label_id_format`` (how a label file's cell id
    names an assay column, e.g. ``"X{}"``: R's ``make.names`` prefixes ``X`` to ids starting with a
    digit), ``na`` (see :func:`_apply_na_rule`; default ``refuse``) and the shared label options
    (``labels``, ``labels_header``, ``cell_column``, ``label_column``, ``drop_unlabelled``,
    ``sample_from_cell_id``/``sample_format``, ``derive``). What was dropped is counted in
    ``obs.attrs["reader_provenance"]`` (copied to ``uns["provenance"]["reader"]`` by the loader).
    """
    path = paths[options["file"]]
    with warnings.catch_warnings():
        _quiet_rdata()
        root = _rdata("parser").parse_file(path).object
        slots = _r_attributes(root)
        if "assays" not in slots:
            raise ValueError(f"{path.name}: not a SummarizedExperiment (no 'assays' slot)")
        mat = _assay_matrix(slots, path)
        names = _rdata("conversion").convert(slots["NAMES"]) if "NAMES" in slots else None
    M = np.asarray(mat.values, dtype=np.float64)  # float32 only after the NA rule: casting R's NA warns
    cells = [str(c) for c in mat.coords[mat.dims[1]].values]
    source = options.get("genes", "names")
    if source == "names":
        if names is None or isinstance(names, str) or len(names) != M.shape[0]:
            raise ValueError(
                f"{path.name}: the object's NAMES do not name the {M.shape[0]} assay rows; "
                "set the loader option genes: assay_rownames"
            )
        genes = [str(g) for g in names]
    elif source == "assay_rownames":
        genes = [str(g) for g in mat.coords[mat.dims[0]].values]
    else:
        raise ValueError(f"genes must be names or assay_rownames, not {source!r}")
    drop = [str(c) for c in options.get("drop_columns") or []]
    absent = [c for c in drop if c not in cells]
    if absent:
        raise ValueError(f"{path.name}: drop_columns names columns that are not in the assay: {absent}")
    if drop:
        log.warning("%s: %d column(s) dropped by name (drop_columns): %s", path.name, len(drop), ", ".join(drop))
        kept_cols = [i for i, c in enumerate(cells) if c not in drop]
        M, cells = M[:, kept_cols], [cells[i] for i in kept_cols]
    table = _label_table(paths[options["labels"]], options) if options.get("labels") else None
    if table is not None and (fmt := options.get("label_id_format")):
        table.index = pd.Index([fmt.format(c) for c in table.index])
    n_before = len(cells)
    obs, keep = _obs_for_cells(cells, table, options, path.name)
    M, cells = M[:, keep], [c for c, k in zip(cells, keep) if k]
    M, genes, na_summary = _apply_na_rule(M, genes, options.get("na", "refuse"), path.name)
    obs.attrs["reader_provenance"] = {
        "columns_dropped_by_name": ";".join(drop),
        "n_unlabelled_cells_dropped": n_before - len(cells),
        "na_rule": na_summary["rule"],
        "n_na_values": na_summary["n_na_values"],
        "n_genes_dropped_all_na": na_summary["n_genes_dropped_all_na"],
        "genes_dropped_all_na": na_summary["genes_dropped_all_na"],
    }
    return sp.csr_matrix(M.T, dtype=np.float32), genes, cells, obs
