"""A user's ``.h5ad`` through the atlas pipeline (``sasp-atlas score``).

The file is read and checked by :func:`sasp_atlas.data.load_user_data` (the same harmoniser,
duplicate-gene policy and matrix checks as registry data) and scored and summarised by
:func:`sasp_atlas.atlas.compute_dataset`, exactly like a registry dataset, once; the tables are
written by :func:`sasp_atlas.atlas.write_tables`, and the report renders from them. A file larger
than memory (``lazy=True``, ``sasp-atlas score --dask``) takes :func:`score_user_file_lazy`: the same
tables from a dask array of row chunks, on the cluster :func:`score_user_file_dask` starts or joins.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._constants import CELL_TYPE_KEY, PROVENANCE_KEY, SAMPLE_KEY, SCORES_KEY
from .._lazy import lazy_import
from ..data import DEFAULT_MIN_CELLS, InputError, load_user_data
from ..data.lazy import DEFAULT_CHUNK_ROWS
from ..data.validate import examples
from ..engines import ALL_CELL_METHODS, DASK_METHODS, DEFAULT_METHOD, reduce_statistics
from ..genes import present_genes, resolve_signatures
from ..sources import Dataset
from .pipeline import (
    DEFAULT_SIGNATURES,
    N_NULL,
    DatasetResult,
    compute_dataset,
    read_tables,
    score_tables,
    signature_coverage,
    write_class_table,
    write_tables,
)

__all__ = [
    "UserOptions",
    "run_user_file",
    "score_user_file",
    "score_user_file_lazy",
    "score_user_file_dask",
    "read_scored_tables",
    "is_lazy_input",
    "LAZY_BYTES",
    "check_signatures_present",
    "USER_OUTPUTS",
    "report_subsample",
    "read_report_cells",
    "run_report_cells",
    "REPORT_CELLS",
]

log = logging.getLogger(__name__)

#: the files :func:`score_user_file` writes (``report.html`` is added by :mod:`sasp_atlas.site.report`)
USER_OUTPUTS = ("celltype_scores.csv", "coverage.csv", "scored.h5ad")
#: ``uns`` key of ``scored.h5ad`` holding its :class:`~sasp_atlas.sources.Dataset` record as JSON (the report reads it)
DATASET_ENTRY_KEY = "dataset_entry"
#: inputs larger than this are scored lazily (``sasp-atlas score --dask``)
LAZY_BYTES = 4 * 2**30


@dataclass(frozen=True)
class UserOptions:
    """How to read a user's file: the options of :func:`sasp_atlas.data.load_user_data` that ``sasp-atlas
    score`` offers, defined once (the command line, :func:`score_user_file` and the report take them from here).

    Attributes
    ----------
    cell_type_key
        obs column of cell-type labels (``None``: a ``cell_type`` column if there is one).
    sample_key
        obs column of samples (patients); ``None``: one pseudo-sample (warned).
    species
        ``"human"`` or ``"mouse"``.
    malignant_key
        obs column of booleans marking malignant cells.
    cancer_type
        Free text for the tables and the report.
    min_cells
        Cell types with fewer cells are flagged.
    layer
        Score ``adata.layers[layer]`` (``"raw"``: ``adata.raw``) instead of ``X``.
    gene_symbols_key
        var column of gene symbols when ``var_names`` are Ensembl ids.
    value_type
        What the values are (``None``: detected).
    """

    cell_type_key: str | None = None
    sample_key: str | None = None
    species: str = "human"
    malignant_key: str | None = None
    cancer_type: str = "unknown"
    min_cells: int = DEFAULT_MIN_CELLS
    layer: str | None = None
    gene_symbols_key: str | None = None
    value_type: str | None = None

    def as_kwargs(self) -> dict[str, Any]:
        """The keywords of :func:`sasp_atlas.data.load_user_data`."""
        return asdict(self)


def is_lazy_input(path: str | Path, *, dask: bool = False) -> bool:
    """Whether ``sasp-atlas score`` reads ``path`` lazily: ``dask`` asked, a zarr store (never read
    whole), or a file larger than :data:`LAZY_BYTES`."""
    path = Path(path)
    return dask or path.is_dir() or (path.is_file() and path.stat().st_size > LAZY_BYTES)


def check_signatures_present(adata: AnnData, signatures: list[str]) -> None:
    """Refuse signatures none of whose genes are in ``adata`` (:class:`~sasp_atlas.data.InputError` naming them)."""
    empty = [s for s, genes in resolve_signatures(signatures).items() if not present_genes(genes, adata.var_names)[0]]
    if len(empty) == len(signatures):
        raise InputError(
            f"no gene of any signature ({', '.join(signatures)}) is in the data; var_names begin "
            f"{examples(list(adata.var_names[:5]))}: are they gene symbols of the right species?"
        )
    if empty:
        raise InputError(
            f"signature(s) {', '.join(empty)} have no gene in the data; choose others with --signatures "
            "(signatures=...)"
        )


def run_user_file(
    path: str | Path,
    *,
    signatures: list[str] | None = None,
    method: str = DEFAULT_METHOD,
    random_state: int = 0,
    out_dir: str | Path | None = None,
    with_embedding: bool = True,
    **options: Any,
) -> tuple[Dataset, DatasetResult]:
    """Load a user's file and compute its tables with :func:`sasp_atlas.atlas.compute_dataset` (nothing
    is written: :func:`sasp_atlas.atlas.write_tables` does); returns ``(Dataset record, result)``.
    The result's ``adata.uns["dataset_entry"]`` holds the record (JSON), so a written ``scored.h5ad``
    is enough to render the report (:func:`read_scored_tables`).

    Parameters
    ----------
    path
        The user's ``.h5ad``.
    signatures
        Catalogue ids (default :data:`~sasp_atlas.atlas.DEFAULT_SIGNATURES`).
    method
        The scoring engine.
    random_state
        The seed, recorded in every table.
    out_dir
        Results folder whose signature validity table labels the rows (none: ``not assessed``).
    with_embedding
        Compute the display-only UMAP.
    **options
        The fields of :class:`UserOptions`, and ``backed`` (see :func:`sasp_atlas.data.load_user_data`).
    """
    sigs = list(signatures or DEFAULT_SIGNATURES)
    ds, adata = load_user_data(path, **options)
    check_signatures_present(adata, sigs)
    adata.uns[DATASET_ENTRY_KEY] = json.dumps(ds.entry)
    res = compute_dataset(
        ds.id,
        adata=adata,
        signatures=sigs,
        method=method,
        random_state=random_state,
        out_dir=out_dir,
        with_embedding=with_embedding,
        min_cells=options.get("min_cells", DEFAULT_MIN_CELLS),
    )
    return ds, res


def _write_scored(adata: AnnData, path: Path) -> Path:
    """``scored.h5ad``: the harmonised object with its scores and the signature order they were asked in."""
    adata.uns[SCORES_KEY]["signature_ids"] = list(adata.obsm[SCORES_KEY].columns)
    adata.write_h5ad(path)
    return path


def score_user_file(
    path: str | Path,
    out_dir: str | Path,
    *,
    signatures: list[str] | None = None,
    method: str = DEFAULT_METHOD,
    random_state: int = 0,
    tables_dir: str | Path | None = None,
    lazy: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: bool = False,
    n_null: int = N_NULL,
    report_cells: int = 0,
    **options: Any,
) -> dict[str, Path]:
    """Score a user's ``.h5ad`` once and write the results to ``out_dir``.

    Loads with :func:`sasp_atlas.data.load_user_data` (``options``: the fields of :class:`UserOptions`),
    computes with :func:`sasp_atlas.atlas.compute_dataset` and writes exactly
    (:func:`sasp_atlas.atlas.write_tables`):

    * ``celltype_scores.csv`` — the atlas table (:data:`sasp_atlas.stats.CELLTYPE_COLUMNS`; the
      ``random_state`` column records the seed), ``flag`` using ``min_cells``;
    * ``coverage.csv`` — signature genes present / rescued / missing (:func:`sasp_atlas.genes.coverage_table`);
    * ``scored.h5ad`` — the harmonised object with ``obsm[SCORES_KEY]`` (cells x signatures;
      :data:`sasp_atlas._constants.SCORES_KEY`) and ``uns[SCORES_KEY]`` (method, parameters including ``random_state``, genes used per signature).

    With ``tables_dir`` (the report's results folder), the same computation, with the display-only
    embedding, also writes every table of a dataset page under ``tables_dir/tables/`` (as the build
    does), so the report (:func:`sasp_atlas.site.report.render_report`) renders from the written files
    and ``scored.h5ad`` and computes nothing again. Returns ``{name: path}`` of the files written.

    Parameters
    ----------
    path
        The user's ``.h5ad``.
    out_dir
        Output folder (created).
    signatures, method, random_state
        As for :func:`run_user_file`.
    tables_dir
        Also write the page tables there (in memory; lazily: :func:`score_user_file_dask`).
    lazy, chunk_rows, progress, n_null, report_cells
        Read the matrix lazily and compute on the current dask scheduler
        (:func:`score_user_file_lazy`): the same tables, and ``scored.zarr``/``scored.h5ad`` without the matrix.
    **options
        The fields of :class:`UserOptions`.
    """
    opts = UserOptions(**options)
    if lazy:
        return score_user_file_lazy(
            path,
            out_dir,
            signatures=signatures,
            method=method,
            random_state=random_state,
            chunk_rows=chunk_rows,
            progress=progress,
            n_null=n_null,
            report_cells=report_cells,
            **opts.as_kwargs(),
        )
    with tempfile.TemporaryDirectory() as no_validity:  # a user's rows are not labelled by any build's validity
        _, res = run_user_file(
            path,
            signatures=signatures,
            method=method,
            random_state=random_state,
            out_dir=no_validity,
            with_embedding=tables_dir is not None,
            **opts.as_kwargs(),
        )
    out = Path(out_dir)
    written = write_tables(res, out, tables=("celltype_scores", "coverage"), flat=True)
    written["scored"] = _write_scored(res.adata, out / "scored.h5ad")
    if tables_dir is not None:
        write_tables(res, tables_dir)
        write_class_table(tables_dir)
    return written


def read_scored_tables(scored: str | Path, tables_dir: str | Path) -> tuple[Dataset, DatasetResult]:
    """``(Dataset record, result)`` of a user's file scored by :func:`score_user_file` with ``tables_dir``:
    the object ``scored`` (``scored.h5ad``, or the ``report_cells.h5ad`` of a lazily scored file) and
    the tables written under ``tables_dir`` (:func:`sasp_atlas.atlas.read_tables`). What the report renders."""
    adata = ad.read_h5ad(scored)
    entry = adata.uns.get(DATASET_ENTRY_KEY) or adata.uns.get("report_subsample", {}).get("dataset_entry")
    if entry is None:
        raise InputError(
            f"{scored} was not written by sasp-atlas score (no uns['{DATASET_ENTRY_KEY}']); score the file again"
        )
    ds = Dataset(json.loads(entry))
    return ds, read_tables(tables_dir, ds.id, adata)


# --------------------------------------------------------------------------- beyond memory (sasp-atlas score --dask)
def score_user_file_lazy(
    path: str | Path,
    out_dir: str | Path,
    *,
    signatures: list[str] | None = None,
    method: str = DEFAULT_METHOD,
    random_state: int = 0,
    min_cells: int = DEFAULT_MIN_CELLS,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: bool = False,
    n_null: int = N_NULL,
    report_cells: int = 0,
    **options: Any,
) -> dict[str, Path]:
    """:func:`sasp_atlas.atlas.score_user_file` on a lazily read ``.zarr``/``.h5ad`` (see the module doc).

    ``options``: the fields of :class:`UserOptions` but ``min_cells``. ``report_cells > 0``
    also writes ``report_cells.h5ad``: at most that many cells, drawn by :func:`report_subsample`
    (every sample x cell type kept, seeded by ``random_state``), harmonised and in memory, for the
    report (:func:`score_user_file_dask` computes its tables). Returns ``{name: path}``.
    """
    if method in ALL_CELL_METHODS:
        raise InputError(
            f"--method {method} depends on all cells at once and cannot be computed chunk by chunk; "
            f"with --dask use one of {', '.join(DASK_METHODS)} (or score a subset in memory)"
        )
    sigs = list(signatures or DEFAULT_SIGNATURES)
    ds, adata = load_user_data(path, lazy=True, chunk_rows=chunk_rows, min_cells=min_cells, **options)
    check_signatures_present(adata, sigs)
    prov = adata.uns.get(PROVENANCE_KEY, {})
    # the statistics of the scores and of the null's random sets in one pass (their contexts reuse them)
    reduce_statistics(adata.X, method, null=True, progress=progress)
    table, _, _, _ = score_tables(
        adata,
        sigs,
        dataset_id=ds.id,
        cancer_type=prov.get("cancer_type", "unknown"),
        cancer_type_ontology_id=prov.get("cancer_type_ontology_id", ""),
        method=method,
        random_state=random_state,
        min_cells=min_cells,
        n_null=n_null,
        out_dir=out_dir,
        progress=progress,
    )
    cov = signature_coverage(adata, dataset_id=ds.id)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    as_zarr = Path(path).is_dir()
    written = {
        "celltype_scores": out / "celltype_scores.csv",
        "coverage": out / "coverage.csv",
        "scored": out / ("scored.zarr" if as_zarr else "scored.h5ad"),
    }
    tables = DatasetResult(ds.id, adata, table, cov, *[pd.DataFrame()] * 6)  # the two tables written here
    write_tables(tables, out, tables=("celltype_scores", "coverage"), flat=True)
    adata.uns[SCORES_KEY]["signature_ids"] = list(adata.obsm[SCORES_KEY].columns)
    scored = ad.AnnData(obs=adata.obs, var=adata.var, obsm={SCORES_KEY: adata.obsm[SCORES_KEY]}, uns=dict(adata.uns))
    scored.uns["matrix"] = f"not copied: the scored matrix is in {Path(path).name} ({prov.get('normalisation', '')})"
    if as_zarr:
        scored.write_zarr(written["scored"])
    else:
        scored.write_h5ad(written["scored"])
    if report_cells:
        written["report_cells"] = _write_report_cells(
            adata, ds, out / "report_cells.h5ad", max_cells=report_cells, random_state=random_state
        )
    return written


def score_user_file_dask(
    path: str | Path,
    out_dir: str | Path,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    memory_limit: str = "auto",
    report_cells: int = 0,
    on_connect: Callable[[int, str], None] | None = None,
    **score_options: Any,
) -> dict[str, Path]:
    """:func:`score_user_file` with ``lazy=True`` on a dask cluster: connect to ``scheduler`` (an address
    such as ``tcp://host:8786``) or start a LocalCluster of ``workers`` one-thread worker processes on
    127.0.0.1 (each limited to ``memory_limit``), closed at the end. ``report_cells``: cells of the
    report's subsample (0: none; below 0 an :class:`~sasp_atlas.data.InputError`); its tables are
    computed in this process after the cluster is closed, and written under ``score_options["tables_dir"]``
    (then ``report_cells`` must be at least 1). ``on_connect(n_workers, address)`` is called once
    connected (the command line prints it). ``score_options``: those of :func:`score_user_file`."""
    tables_dir = score_options.pop("tables_dir", None)  # the report's tables: computed after the cluster closes
    if report_cells < 0 or (tables_dir is not None and report_cells < 1):
        raise InputError(f"--report-cells must be at least 1, not {report_cells} (or pass --no-report)")
    dask, distributed = lazy_import("dask"), lazy_import("distributed")
    cluster = None
    if scheduler:
        client = distributed.Client(scheduler)
    else:
        worker_config = lazy_import("sasp_atlas.engines", "local_worker_config")()
        with dask.config.set(worker_config):  # one zarr decoding thread per 1-thread worker
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                memory_limit=memory_limit,
                host="127.0.0.1",
                dashboard_address=None,
            )
        client = distributed.Client(cluster)
    if on_connect is not None:
        on_connect(len(client.scheduler_info()["workers"]), client.scheduler.address)
    try:
        written = score_user_file(path, out_dir, lazy=True, report_cells=report_cells, **score_options)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if report_cells and tables_dir is not None:
        _, res = run_report_cells(
            written["report_cells"],
            signatures=score_options.get("signatures"),
            method=score_options.get("method", DEFAULT_METHOD),
            random_state=score_options.get("random_state", 0),
            min_cells=score_options.get("min_cells", DEFAULT_MIN_CELLS),
        )
        write_tables(res, tables_dir)
        write_class_table(tables_dir)
    return written


# --------------------------------------------------------------------------- the report of a lazily scored file
#: default cap on the cells of the report of a lazily scored file (``sasp-atlas score --dask --report-cells``)
REPORT_CELLS = 20_000


def report_subsample(groups: pd.Series | np.ndarray, max_cells: int, *, random_state: int = 0) -> np.ndarray:
    """Sorted row positions of a subsample of at most ``max_cells`` cells that keeps every group.

    Method: one cap ``c`` for all groups (here: sample x cell type), the largest with
    ``sum_g min(n_g, c) <= max_cells`` (water-filling); groups of at most ``c`` cells are kept whole,
    larger ones give ``c`` cells drawn without replacement by ``numpy.random.default_rng(random_state)``.
    So small cell types and small tumours keep all their cells and the per-tumour statistics of the
    report keep every tumour; a group is cut only where it is larger than every group kept whole.
    Every group keeps at least one cell, so with more groups than ``max_cells`` the result has one
    cell per group (more than ``max_cells``). ``max_cells >= len(groups)``: every cell.
    """
    codes, _ = pd.factorize(pd.Series(np.asarray(groups)), sort=True)
    n = len(codes)
    if max_cells >= n:
        return np.arange(n)
    sizes = np.bincount(codes)
    lo, hi = 1, int(sizes.max())  # the largest cap c with sum(min(sizes, c)) <= max_cells (at least 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if np.minimum(sizes, mid).sum() <= max_cells:
            lo = mid
        else:
            hi = mid - 1
    rng = np.random.default_rng(random_state)
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    keep = []
    for g, size in enumerate(sizes):
        members = order[starts[g] : starts[g + 1]]
        keep.append(members if size <= lo else rng.choice(members, size=lo, replace=False))
    return np.sort(np.concatenate(keep))


def _write_report_cells(adata: AnnData, ds: Dataset, out: Path, *, max_cells: int, random_state: int) -> Path:
    """The :func:`report_subsample` of the lazily read, harmonised ``adata`` read into memory (one
    pass over the chunks holding its cells) and written as ``out`` (``.h5ad``, float32 CSR ``X``)."""
    groups = adata.obs[SAMPLE_KEY].astype(str) + "\x1f" + adata.obs[CELL_TYPE_KEY].astype(str)
    idx = report_subsample(groups.to_numpy(), max_cells, random_state=random_state)
    edges = np.cumsum((0, *adata.X.chunks[0]))
    pieces = []  # each chunk's rows taken on its own worker; only the subsample reaches this process
    for i in range(adata.X.numblocks[0]):
        local = idx[(idx >= edges[i]) & (idx < edges[i + 1])] - edges[i]
        if len(local):
            pieces.append(adata.X.blocks[i][local])
    X = sp.vstack([sp.csr_matrix(p) for p in lazy_import("dask").compute(*pieces)], format="csr", dtype=np.float32)
    sub = AnnData(
        X=X,
        obs=adata.obs.iloc[idx].copy(),
        var=adata.var.copy(),
        uns={PROVENANCE_KEY: adata.uns.get(PROVENANCE_KEY, {})},
    )
    sub.uns["report_subsample"] = {
        "n_cells": int(len(idx)),
        "n_cells_total": int(adata.n_obs),
        "max_cells": int(max_cells),
        "random_state": int(random_state),
        "n_groups": int(groups.nunique()),
        "method": "every sample x cell type kept; one cap per group (water-filling), seeded draw above it",
        "dataset_entry": json.dumps(ds.entry),
    }
    sub.write_h5ad(out)
    return out


def read_report_cells(path: str | Path) -> tuple[Dataset, AnnData]:
    """``(Dataset record, harmonised AnnData)`` of a ``report_cells.h5ad`` written by :func:`score_user_file_lazy`."""
    adata = ad.read_h5ad(path)
    info = adata.uns.get("report_subsample")
    if info is None or "dataset_entry" not in info:
        raise InputError(
            f"{path} is not a report_cells.h5ad written by sasp-atlas score --dask (no "
            "uns['report_subsample']); score the file again"
        )
    return Dataset(json.loads(info["dataset_entry"])), adata


def run_report_cells(
    path: str | Path,
    *,
    signatures: list[str] | None = None,
    method: str = DEFAULT_METHOD,
    random_state: int = 0,
    out_dir: str | Path | None = None,
    **options: Any,
) -> tuple[Dataset, DatasetResult]:
    """:func:`sasp_atlas.atlas.run_dataset` on a ``report_cells.h5ad`` (:func:`read_report_cells`), with
    the display-only embedding; the report of ``sasp-atlas score --dask`` (nothing is written:
    :func:`sasp_atlas.atlas.write_tables` does). ``options``: the run's :class:`UserOptions` fields;
    the cells are already harmonised, so only ``min_cells`` is used."""
    sigs = list(signatures or DEFAULT_SIGNATURES)
    ds, adata = read_report_cells(path)
    check_signatures_present(adata, sigs)
    res = compute_dataset(
        ds.id,
        adata=adata,
        signatures=sigs,
        method=method,
        random_state=random_state,
        out_dir=out_dir,
        min_cells=options.get("min_cells", DEFAULT_MIN_CELLS),
    )
    return ds, res
