"""Gene statistics of a dask matrix are reduced once per run: the fold takes the exact sums along
(one read), contexts of the same array share what was reduced, and a file written again is a new
array (its store stamp is in the name), never served stale statistics."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import sasp_atlas
from sasp_atlas.data import lazy as lazy_io
from sasp_atlas.engines import DaskMatrixContext, MatrixContext, celltype_null, read_lazy, reduce_statistics

SYNC = {"scheduler": "synchronous"}


def _synthetic(n_cells=1200, n_genes=500, seed=0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    mu = np.exp(rng.normal(-1.5, 1.5, n_genes))
    counts = rng.negative_binomial(2, 2 / (2 + mu[None, :] * rng.lognormal(0, 0.4, (n_cells, 1))))
    X = sp.csr_matrix(np.log1p(counts / counts.sum(1, keepdims=True).clip(1) * 1e4).astype(np.float32))
    obs = pd.DataFrame(
        {"cell_type": np.where(np.arange(n_cells) % 3 == 0, "A", "B")}, index=[f"c{i}" for i in range(n_cells)]
    )
    return ad.AnnData(X=X, var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]), obs=obs)


def _sets(adata, seed=1) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    return {f"s{k}": list(adata.var_names[rng.choice(adata.n_vars, n, replace=False)]) for k, n in enumerate((10, 40))}


def test_fold_takes_the_exact_sums_along(float32_flip):
    """One reduce of ``f32`` + ``exact`` (the fold carries the exact sums) gives the same exact means,
    bit for bit, as the parallel per-chunk tasks and as in memory; the fold's float32 sums stay scipy's."""
    X = float32_flip
    fused = DaskMatrixContext(da.from_array(X, chunks=(701, -1), asarray=False), compute_kwargs=SYNC)
    fused.reduce(("f32", "exact"))
    alone = DaskMatrixContext(da.from_array(X, chunks=(999, -1), asarray=False), compute_kwargs=SYNC)
    alone.reduce(("exact",))
    np.testing.assert_array_equal(fused.exact_gene_means, alone.exact_gene_means)
    np.testing.assert_array_equal(fused.exact_gene_means, MatrixContext(X).exact_gene_means)
    np.testing.assert_array_equal(fused.scanpy_gene_means, MatrixContext(X).scanpy_gene_means)


@pytest.fixture
def store(tmp_path):
    adata = _synthetic()
    path = tmp_path / "cells.zarr"
    adata.write_zarr(path)
    return adata, path


def test_a_run_reads_each_chunk_once_for_its_statistics(store, monkeypatch):
    """``reduce_statistics`` then the scores then the null (``expected``): the statistics pass, the
    scores and the null's pseudobulk read every chunk once each; the score and null contexts reuse
    the reduced statistics (without reuse, the null would fold and sum the chunks again)."""
    adata, path = store
    reads = []
    real = lazy_io._read_rows
    monkeypatch.setattr(lazy_io, "_read_rows", lambda *a: reads.append(a[3]) or real(*a))
    lazy = read_lazy(path, chunk_rows=300)
    n_chunks = lazy.X.numblocks[0]
    sigs = _sets(adata)
    reduce_statistics(lazy.X, "expected", null=True, compute_kwargs=SYNC)
    assert len(reads) == n_chunks == 4
    sasp_atlas.score(lazy, sigs, method="expected", compute_kwargs=SYNC)
    assert len(reads) == 2 * n_chunks
    null = celltype_null(lazy, sigs, method="expected", n_null=20, seed=3, compute_kwargs=SYNC)
    assert len(reads) == 3 * n_chunks
    # and the results are the in-memory ones
    ref = sasp_atlas.score(adata, sigs, method="expected", copy=True).obsm["sasp_scores"]
    np.testing.assert_allclose(lazy.obsm["sasp_scores"].to_numpy(), ref.to_numpy(), rtol=0, atol=1e-12)
    want = sasp_atlas.engines.celltype_null(adata, sigs, method="expected", n_null=20, seed=3)
    num = want.select_dtypes("number").columns
    np.testing.assert_allclose(null[num].to_numpy(float), want[num].to_numpy(float), rtol=1e-9, atol=1e-9)


def test_a_file_written_again_is_a_new_array(store):
    """The store stamp (sizes and modification times) is in the dask name: the same file read twice
    has one name (statistics reused), the file written again with other values a new one, and its
    scores are the new values' scores, not the old statistics'."""
    adata, path = store
    sigs = _sets(adata)
    first = read_lazy(path, chunk_rows=300)
    assert read_lazy(path, chunk_rows=300).X.name == first.X.name
    sasp_atlas.score(first, sigs, method="expected", compute_kwargs=SYNC)

    changed = adata.copy()
    changed.X = changed.X.tocsc()
    changed.X[:, :100] = changed.X[:, :100] * 3  # other gene means, so other bins
    changed.X = sp.csr_matrix(changed.X)
    changed.write_zarr(path)
    second = read_lazy(path, chunk_rows=300)
    assert second.X.name != first.X.name
    sasp_atlas.score(second, sigs, method="expected", compute_kwargs=SYNC)
    ref = sasp_atlas.score(changed, sigs, method="expected", copy=True).obsm["sasp_scores"]
    np.testing.assert_allclose(second.obsm["sasp_scores"].to_numpy(), ref.to_numpy(), rtol=0, atol=1e-12)
    assert not np.allclose(second.obsm["sasp_scores"].to_numpy(), first.obsm["sasp_scores"].to_numpy())
