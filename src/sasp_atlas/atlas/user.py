"""A user's ``.h5ad`` through the atlas pipeline (``sasp-atlas score``).

The file is read and checked by :func:`sasp_atlas.data.load_user_data` (the same harmoniser,
duplicate-gene policy and matrix checks as registry data) and scored and summarised by
:func:`sasp_atlas.atlas.run_dataset`, exactly like a registry dataset. A file larger than memory
(``lazy=True``, ``sasp-atlas score --dask``) takes :func:`score_user_file_lazy`: the same tables
from a dask array of row chunks.
"""

from __future__ import annotations

import json
import tempfile
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
from .pipeline import DEFAULT_SIGNATURES, N_NULL, DatasetResult, run_dataset, score_tables, signature_coverage

__all__ = [
    "run_user_file",
    "score_user_file",
    "score_user_file_lazy",
    "check_signatures_present",
    "USER_OUTPUTS",
    "report_subsample",
    "read_report_cells",
    "run_report_cells",
    "REPORT_CELLS",
]

#: the files :func:`score_user_file` writes (``report.html`` is added by :mod:`sasp_atlas.site.report`)
USER_OUTPUTS = ("celltype_scores.csv", "coverage.csv", "scored.h5ad")


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
    """Load a user's file (``options``: the keywords of :func:`sasp_atlas.data.load_user_data`) and run
    :func:`sasp_atlas.atlas.run_dataset` on it; returns ``(Dataset record, result)``.

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
        Results folder of :func:`~sasp_atlas.atlas.run_dataset`.
    with_embedding
        Compute the display-only UMAP.
    **options
        ``cell_type_key``, ``sample_key``, ``species``, ``malignant_key``, ``cancer_type``, ``min_cells``,
        ``layer``, ``gene_symbols_key``, ``backed`` (see :func:`sasp_atlas.data.load_user_data`).
    """
    sigs = list(signatures or DEFAULT_SIGNATURES)
    ds, adata = load_user_data(path, **options)
    check_signatures_present(adata, sigs)
    res = run_dataset(
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


def score_user_file(
    path: str | Path,
    out_dir: str | Path,
    *,
    cell_type_key: str | None = None,
    sample_key: str | None = None,
    signatures: list[str] | None = None,
    method: str = DEFAULT_METHOD,
    species: str = "human",
    random_state: int = 0,
    malignant_key: str | None = None,
    cancer_type: str = "unknown",
    min_cells: int = DEFAULT_MIN_CELLS,
    layer: str | None = None,
    gene_symbols_key: str | None = None,
    lazy: bool = False,
    value_type: str | None = None,
    **lazy_options: Any,
) -> dict[str, Path]:
    """Score a user's ``.h5ad`` and write the results to ``out_dir``.

    Loads with :func:`sasp_atlas.data.load_user_data` (same keyword options), scores and summarises
    with :func:`sasp_atlas.atlas.run_dataset` (no embedding) and writes exactly:

    * ``celltype_scores.csv`` — the atlas table (:data:`sasp_atlas.stats.CELLTYPE_COLUMNS`; the
      ``random_state`` column records the seed), ``flag`` using ``min_cells``;
    * ``coverage.csv`` — signature genes present / rescued / missing (:func:`sasp_atlas.genes.coverage_table`);
    * ``scored.h5ad`` — the harmonised object with ``obsm[SCORES_KEY]`` (cells x signatures;
      :data:`sasp_atlas._constants.SCORES_KEY`) and ``uns[SCORES_KEY]`` (method, parameters including ``random_state``, genes used per signature).

    The HTML report is the site layer's job (:func:`sasp_atlas.site.report.render_report`; the
    ``sasp-atlas score`` command writes both). Returns ``{name: path}`` of the files written.

    Parameters
    ----------
    path
        The user's ``.h5ad``.
    out_dir
        Output folder (created).
    cell_type_key, sample_key, species, malignant_key, cancer_type, min_cells, layer, gene_symbols_key, value_type
        As for :func:`sasp_atlas.data.load_user_data`.
    signatures, method, random_state
        As for :func:`run_user_file`.
    lazy, **lazy_options
        Read the matrix lazily and compute on the current dask scheduler
        (:func:`score_user_file_lazy`, options ``chunk_rows``, ``progress``,
        ``n_null``): the same tables, and ``scored.zarr``/``scored.h5ad`` without the matrix.
    """
    out = Path(out_dir)
    options = {
        "cell_type_key": cell_type_key,
        "sample_key": sample_key,
        "species": species,
        "malignant_key": malignant_key,
        "cancer_type": cancer_type,
        "min_cells": min_cells,
        "layer": layer,
        "gene_symbols_key": gene_symbols_key,
        "value_type": value_type,
    }
    if lazy:
        return score_user_file_lazy(
            path, out_dir, signatures=signatures, method=method, random_state=random_state, **options, **lazy_options
        )
    with tempfile.TemporaryDirectory() as tmp:
        _, res = run_user_file(
            path,
            signatures=signatures,
            method=method,
            random_state=random_state,
            out_dir=tmp,
            with_embedding=False,
            **options,
        )
    out.mkdir(parents=True, exist_ok=True)
    written = {
        "celltype_scores": out / "celltype_scores.csv",
        "coverage": out / "coverage.csv",
        "scored": out / "scored.h5ad",
    }
    res.celltype_scores.to_csv(written["celltype_scores"], index=False, float_format="%.6g")
    res.coverage.to_csv(written["coverage"], index=False)
    res.adata.uns[SCORES_KEY]["signature_ids"] = list(res.adata.obsm[SCORES_KEY].columns)
    res.adata.write_h5ad(written["scored"])
    return written


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

    ``options``: ``cell_type_key``, ``sample_key``, ``species``, ``malignant_key``, ``cancer_type``,
    ``layer``, ``gene_symbols_key`` of :func:`sasp_atlas.data.load_user_data`. ``report_cells > 0``
    also writes ``report_cells.h5ad``: at most that many cells, drawn by :func:`report_subsample`
    (every sample x cell type kept, seeded by ``random_state``), harmonised and in memory, for the
    report (:func:`run_report_cells`). Returns ``{name: path}``.
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
    table.to_csv(written["celltype_scores"], index=False, float_format="%.6g")
    cov.to_csv(written["coverage"], index=False)
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
    the display-only embedding; the report of ``sasp-atlas score --dask``. ``options``: the run's
    :func:`~sasp_atlas.data.load_user_data` options, as for :func:`run_user_file`; the cells are
    already harmonised, so only ``min_cells`` is used."""
    sigs = list(signatures or DEFAULT_SIGNATURES)
    ds, adata = read_report_cells(path)
    check_signatures_present(adata, sigs)
    res = run_dataset(
        ds.id,
        adata=adata,
        signatures=sigs,
        method=method,
        random_state=random_state,
        out_dir=out_dir,
        min_cells=options.get("min_cells", DEFAULT_MIN_CELLS),
    )
    return ds, res
