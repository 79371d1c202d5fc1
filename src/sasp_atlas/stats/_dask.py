"""Per-patient statistics of a dask-backed AnnData, without the whole matrix in one place.

* :func:`pseudobulk_dask`: per (sample, cell type) gene sums and cell counts, one reduction over the
  row chunks (:func:`sasp_atlas.engines._dask.group_gene_sums_dask`, float64), shaped like
  ``scanpy.get.aggregate(adata, by=[...], func="sum")`` (obs = the observed combinations with their
  labels and ``n_cells``, ``layers["sum"]``). scanpy 1.11's ``aggregate`` has no dask dispatch, so
  it is used in memory only (the tests compare the two).
* :func:`sample_celltype_means_dask`: per (sample, cell type) mean score of a lazy cells x
  signatures score array (per-chunk group sums, summed in chunk order).
* :func:`sample_effects_dask`: :func:`sasp_atlas.stats.sample_effects` (means, AUROC and its
  variance, balanced AUROC, permutation statistics) with one task per sample: each task gathers
  only its sample's scores (cells x signatures), so no process holds all cells' scores; the
  result is the in-memory table, row for row (samples in sorted order, as there).

Their outputs feed :func:`sasp_atlas.stats.celltype_scores` and the rest of the statistics layer
exactly as in-memory inputs do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
from anndata import AnnData

from ..engines._dask import group_gene_sums_dask
from .effects import sample_effects

__all__ = ["pseudobulk_dask", "sample_celltype_means_dask", "sample_effects_dask"]


def _combination_codes(obs: pd.DataFrame, by: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Integer code of each cell's combination of ``by`` (-1 where a label is missing) and the observed
    combinations (sorted by their labels' categories, as ``sc.get.aggregate``)."""
    frame = pd.DataFrame({k: pd.Categorical(obs[k]).remove_unused_categories() for k in by}, index=obs.index)
    missing = frame.isna().any(axis=1).to_numpy()
    keys = frame[~missing].drop_duplicates().sort_values(list(by)).reset_index(drop=True)
    lookup = pd.MultiIndex.from_frame(keys.astype(str))
    codes = np.full(len(frame), -1, dtype=np.int64)
    codes[~missing] = lookup.get_indexer(pd.MultiIndex.from_frame(frame[~missing].astype(str)))
    return codes, keys


def pseudobulk_dask(adata: AnnData, by: Sequence[str] = ("sample", "cell_type"), *, layer: str | None = None,
                    compute_kwargs: Mapping[str, Any] | None = None) -> AnnData:
    """Gene sums per combination of ``by`` (pseudobulk) of a dask-backed ``X`` (or ``layer``).

    Returns an AnnData: obs = the observed combinations (columns ``by`` and ``n_cells``, index
    ``"label1_label2"`` as ``sc.get.aggregate``), var = ``adata.var``, ``layers["sum"]`` float64
    dense (combinations x genes). Cells with a missing label are left out.
    """
    by = list(by)
    X = adata.layers[layer] if layer else adata.X
    codes, keys = _combination_codes(adata.obs, by)
    sums = group_gene_sums_dask(X, codes, len(keys), compute_kwargs=compute_kwargs)
    obs = keys.copy()
    obs["n_cells"] = np.bincount(codes[codes >= 0], minlength=len(keys))
    obs.index = pd.Index(["_".join(map(str, row)) for row in keys.itertuples(index=False)])
    return AnnData(X=None, obs=obs, var=adata.var.copy(), layers={"sum": sums})


def _group_score_sums(block, codes_block, n_groups: int):
    codes = np.asarray(codes_block).ravel()
    keep = codes >= 0
    out = np.zeros((n_groups, block.shape[1]))
    np.add.at(out, codes[keep], np.asarray(block)[keep])
    return out[None]


def sample_celltype_means_dask(scores, obs: pd.DataFrame, *, columns: Sequence[str] | None = None,
                               by: Sequence[str] = ("sample", "cell_type"),
                               compute_kwargs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Mean score per combination of ``by`` of a lazy cells x signatures array (tidy: ``by...,
    signature, mean, n_cells``), from per-chunk group sums."""
    codes, keys = _combination_codes(obs, list(by))
    n_groups = len(keys)
    c = da.from_array(codes[:, None], chunks=(scores.chunks[0], 1))
    parts = da.map_blocks(_group_score_sums, scores, c, n_groups, dtype=np.float64, new_axis=2,
                          chunks=((1,) * scores.numblocks[0], (n_groups,), (int(scores.shape[1]),)),
                          meta=np.empty((0, 0, 0)))
    sums = parts.sum(axis=0).compute(**dict(compute_kwargs or {}))
    counts = np.bincount(codes[codes >= 0], minlength=n_groups)
    columns = list(columns) if columns is not None else [f"score{k}" for k in range(scores.shape[1])]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None]
    rows = []
    for j, sig in enumerate(columns):
        frame = keys.copy()
        frame["signature"], frame["mean"], frame["n_cells"] = sig, means[:, j], counts
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def sample_effects_dask(scores, groups: np.ndarray, samples: np.ndarray, *, columns: Sequence[str] | None = None,
                        compute_kwargs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """:func:`sasp_atlas.stats.sample_effects` of a lazy cells x signatures score array (or DataFrame),
    one task per sample (each gathers only its own cells' scores); equal to the in-memory table."""
    groups = np.asarray(groups).astype(str)
    samples = np.asarray(samples).astype(str)
    if isinstance(scores, pd.DataFrame):
        columns = list(scores.columns) if columns is None else columns
        scores = da.from_array(scores.to_numpy(dtype=np.float64), chunks=(max(1, len(scores) // 8 or 1), -1))
    columns = list(columns) if columns is not None else [f"score{k}" for k in range(scores.shape[1])]

    def one(values, g, s):
        return sample_effects(pd.DataFrame(values, columns=columns), g, s)

    tasks = []
    for sample in sorted(pd.unique(samples)):
        rows = np.flatnonzero(samples == sample)
        tasks.append(dask.delayed(one)(scores[rows], groups[rows], samples[rows]))
    parts = dask.compute(*tasks, **dict(compute_kwargs or {}))
    return pd.concat(parts, ignore_index=True) if parts else sample_effects(pd.DataFrame(columns=columns), groups,
                                                                           samples)
