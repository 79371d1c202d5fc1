"""One dataset through the atlas: load -> harmonise -> score -> embed -> tables.

The dataset notebook calls :func:`run_dataset`; the CLI and tests call it too, so every number
on a page is produced by this tested code path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from anndata import AnnData

from .io import load_dataset
from .registry import get_dataset
from .scoring import score
from .stats import celltype_scores, coverage_table, harmonise_cell_types

__all__ = ["DatasetResult", "run_dataset", "embed", "DEFAULT_SIGNATURES", "results_dir"]

log = logging.getLogger(__name__)

DEFAULT_SIGNATURES = ["senmayo", "fridman_senescence_up"]


def results_dir(base: str | Path | None = None) -> Path:
    """``base`` or ``results/`` under the current working directory."""
    return Path(base) if base else Path("results")


@dataclass
class DatasetResult:
    dataset_id: str
    adata: AnnData
    celltype_scores: pd.DataFrame
    coverage: pd.DataFrame
    cell_scores: pd.DataFrame


def embed(adata: AnnData, *, random_state: int = 0, n_top_genes: int = 2000, n_pcs: int = 30) -> None:
    """UMAP embedding for display only (never used for statistics).

    Highly variable genes (Seurat flavour on log-normalised ``X``), PCA (``n_pcs``), a 15-nearest
    neighbour graph and UMAP (McInnes et al. 2018, arXiv:1802.03426), all seeded with
    ``random_state``. Writes ``obsm["X_pca"]``, ``obsm["X_umap"]``; ``X`` is unchanged.
    """
    import scanpy as sc

    n_top = min(n_top_genes, adata.n_vars - 1)
    sc.pp.highly_variable_genes(adata, n_top_genes=n_top)
    sc.pp.pca(adata, n_comps=min(n_pcs, adata.n_obs - 1, n_top - 1), mask_var="highly_variable", random_state=random_state)
    sc.pp.neighbors(adata, random_state=random_state)
    sc.tl.umap(adata, random_state=random_state)
    adata.uns["embedding"] = {"method": "HVG(seurat) -> PCA -> kNN(15) -> UMAP", "random_state": random_state,
                              "n_top_genes": n_top, "n_pcs": int(adata.obsm["X_pca"].shape[1])}


def run_dataset(dataset_id: str, *, signatures: list[str] | None = None, method: str = "scanpy",
                random_state: int = 0, out_dir: str | Path | None = None, mirror: str | None = None,
                with_embedding: bool = True) -> DatasetResult:
    """Load, score and summarise one registry dataset; write its tables under ``out_dir``.

    Files written (``out_dir`` defaults to ``results/``):
    ``tables/datasets/<id>/celltype_scores.csv``, ``coverage.csv`` and ``cell_scores.csv.gz``
    (per-cell scores with cell type, sample and UMAP coordinates).
    """
    ds = get_dataset(dataset_id)
    sigs = list(signatures or DEFAULT_SIGNATURES)
    adata = load_dataset(dataset_id, mirror=mirror)
    harmonise_cell_types(adata, dataset_id)
    score(adata, sigs, method=method, random_state=random_state)
    if with_embedding:
        embed(adata, random_state=random_state)
    table = celltype_scores(adata, dataset_id=dataset_id, cancer_type=ds["cancer_type"])
    cov = coverage_table(adata, dataset_id=dataset_id)
    cells = adata.obsm["sasp_scores"].copy()
    for col in ("cell_type", "lineage", "cell_type_author", "sample", "malignant"):
        cells[col] = adata.obs[col].to_numpy()
    if "X_umap" in adata.obsm:
        cells["umap_1"], cells["umap_2"] = adata.obsm["X_umap"][:, 0], adata.obsm["X_umap"][:, 1]
    cells.index.name = "cell"
    out = results_dir(out_dir) / "tables" / "datasets" / dataset_id
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "celltype_scores.csv", index=False, float_format="%.6g")
    cov.to_csv(out / "coverage.csv", index=False)
    cells.to_csv(out / "cell_scores.csv.gz", float_format="%.6g")
    log.info("%s: %d cells scored for %d signatures -> %s", dataset_id, adata.n_obs, len(sigs), out)
    return DatasetResult(dataset_id, adata, table, cov, cells)


def collect_tables(out_dir: str | Path | None = None, dataset_ids: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Concatenate the per-dataset tables into ``tables/celltype_scores.csv`` and ``tables/coverage.csv``."""
    base = results_dir(out_dir) / "tables"
    ids = dataset_ids or sorted(p.name for p in (base / "datasets").iterdir() if p.is_dir())
    out = {}
    for name in ("celltype_scores", "coverage"):
        frames = [pd.read_csv(base / "datasets" / i / f"{name}.csv") for i in ids]
        df = pd.concat(frames, ignore_index=True)
        df.to_csv(base / f"{name}.csv", index=False, float_format="%.6g")
        out[name] = df
    return out
