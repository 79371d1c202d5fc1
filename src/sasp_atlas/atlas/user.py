"""A user's ``.h5ad`` through the atlas pipeline (``sasp-atlas score``).

The file is read and checked by :func:`sasp_atlas.data.load_user_data` (the same harmoniser,
duplicate-gene policy and matrix checks as registry data) and scored and summarised by
:func:`sasp_atlas.atlas.run_dataset`, exactly like a registry dataset. A file larger than memory
(``lazy=True``, ``sasp-atlas score --dask``) takes :func:`score_user_file_lazy`: the same tables
from a dask array of row chunks.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import anndata as ad
from anndata import AnnData

from ..data import DEFAULT_MIN_CELLS, InputError, load_user_data
from ..data.lazy import DEFAULT_CHUNK_ROWS
from ..data.validate import examples
from ..engines import DEFAULT_METHOD, score
from ..engines._dask import ALL_CELL_METHODS, DASK_METHODS, celltype_null_dask
from ..genes import coverage_table, present_genes, resolve_signatures
from ..sources import Dataset
from ..stats import add_q_values, celltype_scores, sample_effects
from .pipeline import DEFAULT_SIGNATURES, N_NULL, NULL_SEED, DatasetResult, run_dataset

__all__ = ["run_user_file", "score_user_file", "score_user_file_lazy", "check_signatures_present", "USER_OUTPUTS"]

#: the files :func:`score_user_file` writes (``report.html`` is added by :mod:`sasp_atlas.site.report`)
USER_OUTPUTS = ("celltype_scores.csv", "coverage.csv", "scored.h5ad")


def check_signatures_present(adata: AnnData, signatures: list[str]) -> None:
    """Refuse signatures none of whose genes are in ``adata`` (:class:`~sasp_atlas.data.InputError` naming them)."""
    empty = [s for s, genes in resolve_signatures(signatures).items() if not present_genes(genes, adata.var_names)[0]]
    if len(empty) == len(signatures):
        raise InputError(f"no gene of any signature ({', '.join(signatures)}) is in the data; var_names begin "
                         f"{examples(list(adata.var_names[:5]))}: are they gene symbols of the right species?")
    if empty:
        raise InputError(f"signature(s) {', '.join(empty)} have no gene in the data; choose others with --signatures "
                         "(signatures=...)")


def run_user_file(path: str | Path, *, signatures: list[str] | None = None, method: str = DEFAULT_METHOD,
                  random_state: int = 0, out_dir: str | Path | None = None, with_embedding: bool = True,
                  **options: Any) -> tuple[Dataset, DatasetResult]:
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
    res = run_dataset(ds.id, adata=adata, signatures=sigs, method=method, random_state=random_state, out_dir=out_dir,
                      with_embedding=with_embedding, min_cells=options.get("min_cells", DEFAULT_MIN_CELLS))
    return ds, res


def score_user_file(path: str | Path, out_dir: str | Path, *, cell_type_key: str | None = None,
                    sample_key: str | None = None, signatures: list[str] | None = None, method: str = DEFAULT_METHOD,
                    species: str = "human", random_state: int = 0, malignant_key: str | None = None,
                    cancer_type: str = "unknown", min_cells: int = DEFAULT_MIN_CELLS, layer: str | None = None,
                    gene_symbols_key: str | None = None, lazy: bool = False, **lazy_options: Any) -> dict[str, Path]:
    """Score a user's ``.h5ad`` and write the results to ``out_dir``.

    Loads with :func:`sasp_atlas.data.load_user_data` (same keyword options), scores and summarises
    with :func:`sasp_atlas.atlas.run_dataset` (no embedding) and writes exactly:

    * ``celltype_scores.csv`` — the atlas table (:data:`sasp_atlas.stats.CELLTYPE_COLUMNS`; the
      ``random_state`` column records the seed), ``flag`` using ``min_cells``;
    * ``coverage.csv`` — signature genes present / rescued / missing (:func:`sasp_atlas.genes.coverage_table`);
    * ``scored.h5ad`` — the harmonised object with ``obsm["sasp_scores"]`` (cells x signatures) and
      ``uns["sasp_scores"]`` (method, parameters including ``random_state``, genes used per signature).

    The HTML report is the site layer's job (:func:`sasp_atlas.site.report.render_report`; the
    ``sasp-atlas score`` command writes both). Returns ``{name: path}`` of the files written.

    Parameters
    ----------
    path
        The user's ``.h5ad``.
    out_dir
        Output folder (created).
    cell_type_key, sample_key, species, malignant_key, cancer_type, min_cells, layer, gene_symbols_key
        As for :func:`sasp_atlas.data.load_user_data`.
    signatures, method, random_state
        As for :func:`run_user_file`.
    lazy, **lazy_options
        Read the matrix lazily and compute on the current dask scheduler
        (:func:`score_user_file_lazy`, options ``chunk_rows``, ``progress``,
        ``n_null``): the same tables, and ``scored.zarr``/``scored.h5ad`` without the matrix.
    """
    out = Path(out_dir)
    options = {"cell_type_key": cell_type_key, "sample_key": sample_key, "species": species,
               "malignant_key": malignant_key, "cancer_type": cancer_type, "min_cells": min_cells, "layer": layer,
               "gene_symbols_key": gene_symbols_key}
    if lazy:
        return score_user_file_lazy(path, out_dir, signatures=signatures, method=method, random_state=random_state,
                                    **options, **lazy_options)
    with tempfile.TemporaryDirectory() as tmp:
        _, res = run_user_file(path, signatures=signatures, method=method, random_state=random_state, out_dir=tmp,
                               with_embedding=False, **options)
    out.mkdir(parents=True, exist_ok=True)
    written = {"celltype_scores": out / "celltype_scores.csv", "coverage": out / "coverage.csv",
               "scored": out / "scored.h5ad"}
    res.celltype_scores.to_csv(written["celltype_scores"], index=False, float_format="%.6g")
    res.coverage.to_csv(written["coverage"], index=False)
    res.adata.uns["sasp_scores"]["signature_ids"] = list(res.adata.obsm["sasp_scores"].columns)
    res.adata.write_h5ad(written["scored"])
    return written


# --------------------------------------------------------------------------- beyond memory (sasp-atlas score --dask)
def score_user_file_lazy(path: str | Path, out_dir: str | Path, *, signatures: list[str] | None = None,
                         method: str = DEFAULT_METHOD, random_state: int = 0, min_cells: int = DEFAULT_MIN_CELLS,
                         chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool = False, n_null: int = N_NULL,
                         **options: Any) -> dict[str, Path]:
    """:func:`sasp_atlas.atlas.score_user_file` on a lazily read ``.zarr``/``.h5ad`` (see the module doc).

    ``options``: ``cell_type_key``, ``sample_key``, ``species``, ``malignant_key``, ``cancer_type``,
    ``layer``, ``gene_symbols_key`` of :func:`sasp_atlas.data.load_user_data`. Returns ``{name: path}``.
    """
    if method in ALL_CELL_METHODS:
        raise InputError(f"--method {method} depends on all cells at once and cannot be computed chunk by chunk; "
                         f"with --dask use one of {', '.join(DASK_METHODS)} (or score a subset in memory)")
    sigs = list(signatures or DEFAULT_SIGNATURES)
    ds, adata = load_user_data(path, lazy=True, chunk_rows=chunk_rows, min_cells=min_cells, **options)
    check_signatures_present(adata, sigs)
    prov = adata.uns.get("provenance", {})
    score(adata, sigs, method=method, random_state=random_state, progress=progress)
    effects = sample_effects(adata.obsm["sasp_scores"], adata.obs["cell_type"].astype(str).to_numpy(),
                             adata.obs["sample"].astype(str).to_numpy())
    table = celltype_scores(adata, dataset_id=ds.id, cancer_type=prov.get("cancer_type", "unknown"),
                            cancer_type_ontology_id=prov.get("cancer_type_ontology_id", ""),
                            random_state=random_state, min_cells=min_cells, effects=effects)
    null = celltype_null_dask(adata, sigs, method=method, n_null=n_null, seed=NULL_SEED, random_state=random_state)
    table = table.merge(null[["signature", "cell_type", "null_mean", "null_sd", "z", "empirical_p"]]
                        .rename(columns={"z": "null_z", "empirical_p": "p_null"}), on=["signature", "cell_type"],
                        how="left")
    table["n_null"] = n_null
    table = add_q_values(table)
    cov = coverage_table(adata, dataset_id=ds.id)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    as_zarr = Path(path).is_dir()
    written = {"celltype_scores": out / "celltype_scores.csv", "coverage": out / "coverage.csv",
               "scored": out / ("scored.zarr" if as_zarr else "scored.h5ad")}
    table.to_csv(written["celltype_scores"], index=False, float_format="%.6g")
    cov.to_csv(written["coverage"], index=False)
    adata.uns["sasp_scores"]["signature_ids"] = list(adata.obsm["sasp_scores"].columns)
    scored = ad.AnnData(obs=adata.obs, var=adata.var, obsm={"sasp_scores": adata.obsm["sasp_scores"]},
                        uns=dict(adata.uns))
    scored.uns["matrix"] = f"not copied: the scored matrix is in {Path(path).name} ({prov.get('normalisation', '')})"
    if as_zarr:
        scored.write_zarr(written["scored"])
    else:
        scored.write_h5ad(written["scored"])
    return written
