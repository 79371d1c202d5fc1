"""The dask registration of the driver (``sasp_atlas.engines._dask``) equals the in-memory engines,
through a real ``LocalCluster`` (2 worker processes on 127.0.0.1), and refuses damaged chunks by name."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import sasp_atlas
from sasp_atlas.engines import (
    ALL_CELL_METHODS,
    DASK_METHODS,
    CorruptChunkError,
    DaskMatrixContext,
    MatrixContext,
    celltype_null,
    load_husi_model,
    matrix_context,
    read_lazy,
)

SIGS = ["senmayo", "fridman_senescence_up", "reactome_sasp", "kamminga_senescence"]


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit="2GiB",
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def _dask_twin(adata, chunk_rows: int, layer: str | None = None) -> ad.AnnData:
    X = adata.layers[layer] if layer else adata.X
    lazy = da.from_array(sp.csr_matrix(X), chunks=(chunk_rows, -1), asarray=False)
    out = ad.AnnData(X=lazy, obs=adata.obs[[]].copy(), var=adata.var[[]].copy())
    return out


def _synthetic(n_cells=3000, n_genes=800, seed=0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    mu = np.exp(rng.normal(-1.5, 1.5, n_genes))
    counts = rng.negative_binomial(2, 2 / (2 + mu[None, :] * rng.lognormal(0, 0.4, (n_cells, 1))))
    X = sp.csr_matrix(np.log1p(counts / counts.sum(1, keepdims=True).clip(1) * 1e4).astype(np.float32))
    return ad.AnnData(
        X=X,
        var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n_cells)]),
    )


def _synthetic_sets(adata, seed=1) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    return {
        f"s{k}": list(adata.var_names[rng.choice(adata.n_vars, n, replace=False)])
        for k, n in enumerate((5, 20, 60, 150))
    }


def _assert_twins(adata, sigs, method, chunk_rows, **kw):
    ref = sasp_atlas.score(adata, sigs, method=method, copy=True, **kw)
    lazy = _dask_twin(adata, chunk_rows)
    sasp_atlas.score(lazy, sigs, method=method, **kw)  # the one driver, with the dask context
    assert lazy.uns["sasp_scores"]["params"]["backend"] == "dask"
    got, want = lazy.obsm["sasp_scores"], ref.obsm["sasp_scores"]
    assert list(got.columns) == list(want.columns) and (got.index == want.index).all()
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=1e-6)
    # husi: a cell with none of a small set's genes expressed has no correlation (NaN, as pandas)
    assert np.isfinite(got.to_numpy()).all() or method in ("aucell", "husi")
    for name, info in ref.uns["sasp_scores"]["signatures"].items():  # same control genes, coverage, facts
        assert lazy.uns["sasp_scores"]["signatures"][name] == info
    return got


@pytest.mark.parametrize("method", DASK_METHODS)
@pytest.mark.parametrize("fixture", ["wu", "mgh"])
def test_dask_engine_equals_in_memory_on_core_data(client, request, fixture, method):
    adata = request.getfixturevalue(fixture)
    sigs = {"husi": list(load_husi_model().index)} if method == "husi" else SIGS  # husi scores its model's genes
    got = _assert_twins(adata, sigs, method, chunk_rows=700)
    assert got.std().min() > 0  # real scores, not a constant


@pytest.mark.parametrize("method", DASK_METHODS)
def test_dask_engine_equals_in_memory_on_synthetic_data(client, method):
    adata = _synthetic()
    sigs = _synthetic_sets(adata)
    # husi: weights for the synthetic genes (ties included)
    kw = {"weights": pd.Series(np.arange(adata.n_vars) % 97 / 97.0, index=adata.var_names)} if method == "husi" else {}
    # uneven chunks (the last one short) and a seed other than the default
    _assert_twins(adata, sigs, method, chunk_rows=437, random_state=3, **kw)


def test_gene_statistics_equal_in_memory_bit_for_bit(client, wu):
    """The bins are decided by ranks of the gene means: the reduction must give the in-memory values
    exactly, for any chunking."""
    mem = MatrixContext(wu.X)
    for rows in (333, 1000, wu.n_obs):
        ctx = DaskMatrixContext(_dask_twin(wu, rows).X)
        np.testing.assert_array_equal(ctx.scanpy_gene_means, mem.scanpy_gene_means)
        np.testing.assert_array_equal(ctx.exact_gene_means, mem.exact_gene_means)
        np.testing.assert_array_equal(ctx.seurat_gene_averages, mem.seurat_gene_averages)
        np.testing.assert_array_equal(ctx.column_nnz, mem.column_nnz)
        for a, b in zip(ctx.gene_mean_sd, mem.gene_mean_sd):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_float32_sum_order_decides_ranks_and_is_kept(client, float32_flip):
    """A constructed case where float64 sums rank two genes the other way round from scipy's float32
    sums (the in-memory gene means, scanpy's bins): the dask means keep the in-memory order; the
    exact means (``expected``'s bins) equal in memory and on dask too."""
    X = float32_flip
    n = X.shape[0]
    mem = MatrixContext(X).scanpy_gene_means
    f64 = np.asarray(X.astype(np.float64).sum(axis=0)).ravel() / n
    assert np.argsort(mem)[0] != np.argsort(f64)[0]  # the two summations disagree on the order
    lazy = DaskMatrixContext(da.from_array(X, chunks=(999, -1), asarray=False))
    np.testing.assert_array_equal(lazy.scanpy_gene_means, mem)
    np.testing.assert_array_equal(lazy.exact_gene_means, MatrixContext(X).exact_gene_means)


@pytest.mark.parametrize("method", ALL_CELL_METHODS)
def test_all_cell_methods_are_refused_by_name(method):
    adata = _synthetic(200, 300)
    lazy = _dask_twin(adata, 50)
    with pytest.raises(ValueError, match=f"{method}.*all cells"):
        sasp_atlas.score(lazy, _synthetic_sets(adata), method=method)
    lazy.obs["cell_type"] = "A"
    with pytest.raises(ValueError, match=f"{method}.*all cells"):
        celltype_null(lazy, _synthetic_sets(adata), method=method, n_null=2)


def test_matrix_context_dispatches_on_the_array_type():
    X = _synthetic(200, 300).X
    assert type(matrix_context(X)) is MatrixContext
    assert type(matrix_context(X.toarray())) is MatrixContext
    assert type(matrix_context(da.from_array(X, chunks=(50, -1), asarray=False))) is DaskMatrixContext


def _write_chunked_zarr(adata, path, chunk=4096, indptr_chunk=None):
    """An anndata zarr store (format 2, not consolidated) whose X arrays have ``chunk`` entries per chunk file."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
    ad.io.write_elem(root, "obs", adata.obs)
    ad.io.write_elem(root, "var", adata.var)
    X = root.create_group("X")
    X.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": list(adata.shape)})
    X.create_array("data", data=adata.X.data, chunks=(chunk,))
    X.create_array("indices", data=adata.X.indices, chunks=(chunk,))
    X.create_array("indptr", data=adata.X.indptr.astype(np.int64), chunks=(indptr_chunk or chunk,))
    return path


def test_read_lazy_zarr_and_h5ad_score_as_in_memory(client, tmp_path):
    adata = _synthetic(1500, 400)
    sigs = _synthetic_sets(adata)
    ref = sasp_atlas.score(adata, sigs, method="expected", copy=True).obsm["sasp_scores"]
    for path in (_write_chunked_zarr(adata, tmp_path / "x.zarr"), tmp_path / "x.h5ad"):
        if path.suffix == ".h5ad":
            adata.write_h5ad(path)
        lazy = read_lazy(path, chunk_rows=400)
        assert isinstance(lazy.X, da.Array) and lazy.X.numblocks == (4, 1)
        sasp_atlas.score(lazy, sigs, method="expected")
        np.testing.assert_allclose(lazy.obsm["sasp_scores"].to_numpy(), ref.to_numpy(), rtol=0, atol=1e-6)


def test_truncated_zarr_chunk_is_a_named_error(client, tmp_path):
    adata = _synthetic(1500, 400)
    path = _write_chunked_zarr(adata, tmp_path / "bad.zarr")
    chunk = path / "X" / "data" / "1"
    assert chunk.is_file()
    chunk.write_bytes(chunk.read_bytes()[:100])  # a truncated chunk file
    lazy = read_lazy(path, chunk_rows=400)
    with pytest.raises(CorruptChunkError, match=r"X/data/1.*write it again"):
        sasp_atlas.score(lazy, _synthetic_sets(adata), method="mean")


def test_nan_in_a_chunk_is_a_named_error_not_a_silent_nan(client, tmp_path):
    adata = _synthetic(1500, 400)
    adata.X.data[adata.X.indptr[900]] = np.nan  # a value in row 900: the third chunk of 400 rows
    path = _write_chunked_zarr(adata, tmp_path / "nan.zarr")
    lazy = read_lazy(path, chunk_rows=400)
    with pytest.raises(CorruptChunkError, match=r"rows 800:1200.*NaN"):
        sasp_atlas.score(lazy, _synthetic_sets(adata), method="ucell")


def test_missing_chunk_file_is_a_named_error(client, tmp_path):
    """zarr reads a missing chunk as its fill value (0): the row pointers then go backwards, which is caught."""
    adata = _synthetic(1500, 400)
    _write_chunked_zarr(adata, tmp_path / "gone.zarr", indptr_chunk=500)
    (tmp_path / "gone.zarr" / "X" / "indptr" / "2").unlink()
    lazy = read_lazy(tmp_path / "gone.zarr", chunk_rows=400)
    with pytest.raises(CorruptChunkError, match="impossible row pointers"):
        sasp_atlas.score(lazy, _synthetic_sets(adata), method="mean")


@pytest.mark.parametrize("method", ["expected", "scanpy", "zmean", "ucell"])
def test_celltype_null_dask_equals_in_memory(client, mgh, method):
    """The null of the atlas tables (same random sets, same group means) from pseudobulk gene sums
    (linear methods) or per-chunk score sums (ucell)."""
    lazy = _dask_twin(mgh, 900)
    lazy.obs["cell_type"] = mgh.obs["cell_type"].to_numpy()
    want = celltype_null(mgh, SIGS[:2], method=method, n_null=25, seed=3)
    got = celltype_null(lazy, SIGS[:2], method=method, n_null=25, seed=3)
    assert list(got.columns) == list(want.columns) and len(got) == len(want) > 4
    num = want.select_dtypes("number").columns
    np.testing.assert_allclose(got[num].to_numpy(float), want[num].to_numpy(float), rtol=1e-9, atol=1e-9)
    assert (got["signature"] == want["signature"]).all() and (got["cell_type"] == want["cell_type"]).all()
    assert got["null_sd"].gt(0).all()


def test_pseudobulk_gene_sums_equal_in_memory_and_scanpy_aggregate(client, mgh):
    """The dask context's per-group gene sums (the null's pseudobulk) equal the in-memory context's and
    ``scanpy.get.aggregate(..., func="sum")`` per (sample, cell type)."""
    sc = pytest.importorskip("scanpy")
    groups = mgh.obs["sample"].astype(str) + "_" + mgh.obs["cell_type"].astype(str)
    codes, labels = pd.factorize(groups, sort=True)
    mem = MatrixContext(mgh.X).group_gene_sums(codes, len(labels))
    got = DaskMatrixContext(_dask_twin(mgh, 600).X).group_gene_sums(codes, len(labels))
    np.testing.assert_allclose(got, mem, rtol=1e-12, atol=1e-9)
    want = sc.get.aggregate(mgh, by=["sample", "cell_type"], func="sum")
    want_sum = want.layers["sum"].toarray() if sp.issparse(want.layers["sum"]) else np.asarray(want.layers["sum"])
    order = want.obs_names.get_indexer(pd.Index(labels))
    assert (order >= 0).all() and len(labels) > 3
    np.testing.assert_allclose(got, want_sum[order], rtol=1e-5, atol=1e-3)


@pytest.mark.slow
def test_a_new_method_module_runs_in_memory_and_on_dask(monkeypatch):
    """A method is a ``MethodMeta``, a ``prepare(ctx, gene_sets, *, random_state, ...)`` returning a
    ``Plan`` and a registry line: the one driver then scores it, and its null, in memory and on a
    dask array alike (its statistic declared, or read when first needed)."""
    from types import SimpleNamespace

    from sasp_atlas.engines import MethodMeta, _registry
    from sasp_atlas.engines._base import LinearPlan

    def prepare(ctx, gene_sets, *, random_state, shift):
        means = ctx.scanpy_gene_means
        W = sp.lil_matrix((ctx.n_vars, len(gene_sets)))
        for k, gs in enumerate(gene_sets):
            W[gs.idx, k] = 1.0 / len(gs.idx)
        offset = np.array([shift - means[gs.idx].mean() for gs in gene_sets])
        return LinearPlan(W, offset, params={"shift": shift})

    for declared in ((), ("scanpy_gene_means",)):
        meta = MethodMeta(
            name="centred_mean",
            description="toy",
            value_range=(-np.inf, np.inf),
            reference="",
            assumptions="",
            kind="linear",
            defaults={"shift": 0.5},
            gene_statistics=declared,
        )
        monkeypatch.setitem(_registry._REGISTRY, "centred_mean", SimpleNamespace(META=meta, prepare=prepare))
        adata = _synthetic(600, 300)
        adata.obs["cell_type"] = np.where(np.arange(adata.n_obs) % 3 == 0, "A", "B")
        sigs = _synthetic_sets(adata)
        ref = sasp_atlas.score(adata, sigs, method="centred_mean", copy=True)
        lazy = _dask_twin(adata, 170)
        lazy.obs["cell_type"] = adata.obs["cell_type"].to_numpy()
        sasp_atlas.score(lazy, sigs, method="centred_mean", compute_kwargs={"scheduler": "synchronous"})
        np.testing.assert_allclose(
            lazy.obsm["sasp_scores"].to_numpy(), ref.obsm["sasp_scores"].to_numpy(), rtol=0, atol=1e-12
        )
        assert lazy.uns["sasp_scores"]["params"]["shift"] == 0.5
        want = celltype_null(adata, sigs, method="centred_mean", n_null=5, seed=1)
        got = celltype_null(
            lazy, sigs, method="centred_mean", n_null=5, seed=1, compute_kwargs={"scheduler": "synchronous"}
        )
        num = want.select_dtypes("number").columns
        np.testing.assert_allclose(got[num].to_numpy(float), want[num].to_numpy(float), rtol=1e-9, atol=1e-9)
