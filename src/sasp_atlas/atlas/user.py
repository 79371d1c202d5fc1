"""A user's ``.h5ad`` through the atlas pipeline (``sasp-atlas score``).

The file is read and checked by :func:`sasp_atlas.data.load_user_data` (the same harmoniser,
duplicate-gene policy and matrix checks as registry data) and scored and summarised by
:func:`sasp_atlas.atlas.run_dataset`, exactly like a registry dataset.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from anndata import AnnData

from ..data import DEFAULT_MIN_CELLS, InputError, load_user_data
from ..data.validate import examples
from ..engines import DEFAULT_METHOD
from ..genes import present_genes, resolve_signatures
from ..sources import Dataset
from .pipeline import DEFAULT_SIGNATURES, DatasetResult, run_dataset

__all__ = ["run_user_file", "score_user_file", "check_signatures_present", "USER_OUTPUTS"]

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
                    gene_symbols_key: str | None = None) -> dict[str, Path]:
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
    """
    out = Path(out_dir)
    options = {"cell_type_key": cell_type_key, "sample_key": sample_key, "species": species,
               "malignant_key": malignant_key, "cancer_type": cancer_type, "min_cells": min_cells, "layer": layer,
               "gene_symbols_key": gene_symbols_key}
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
