"""The shared driver (``engines._driver``): the invariants any per-cell score must have, for every method, on
constructed matrices with the corner cases (dense, CSC and CSR input, row blocks, cell and signature order,
the output contract, memory), its errors, and its group means. Each engine's equality with its reference
implementation is in ``test_<method>.py``."""

from __future__ import annotations

import tracemalloc

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from engine_cases import (
    ALL_METHODS,
    SIGS,
    constructed,
    constructed_signatures,
    exact_sum_matrix,
    scores_of,
)

import sasp_atlas
from sasp_atlas import engines
from sasp_atlas.engines import _driver


def test_top_level_score_is_the_engine_driver(wu):
    a, b = wu.copy(), wu.copy()
    sasp_atlas.score(a, SIGS, random_state=2)
    engines.score(b, SIGS, method="scanpy", random_state=2)
    pd.testing.assert_frame_equal(a.obsm["sasp_scores"], b.obsm["sasp_scores"])


@pytest.mark.parametrize("method", ALL_METHODS)
def test_dense_csc_and_csr_give_the_same_scores(method):
    adata = constructed(integer=False)
    sigs = constructed_signatures(adata)
    ref = scores_of(adata, sigs, method)
    for X in (adata.X.toarray(), sp.csc_matrix(adata.X)):
        b = ad.AnnData(X, obs=adata.obs, var=adata.var)
        np.testing.assert_allclose(scores_of(b, sigs, method).to_numpy(), ref.to_numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_dense_input_in_many_row_blocks(method, monkeypatch):
    adata = constructed(integer=False)
    sigs = constructed_signatures(adata)
    ref = scores_of(adata, sigs, method)
    monkeypatch.setattr(_driver, "CHUNK_BYTES", 7 * adata.n_vars * 4)  # 7 rows per block
    b = ad.AnnData(adata.X.toarray(), obs=adata.obs, var=adata.var)
    np.testing.assert_allclose(scores_of(b, sigs, method).to_numpy(), ref.to_numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_permuting_cells_permutes_scores(method):
    adata = exact_sum_matrix()
    sigs = constructed_signatures(adata)
    perm = np.random.default_rng(0).permutation(adata.n_obs)
    ref = scores_of(adata, sigs, method)
    got = scores_of(adata[perm].copy(), sigs, method)
    assert list(got.index) == list(adata.obs_names[perm])
    np.testing.assert_allclose(got.loc[ref.index].to_numpy(), ref.to_numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_reordering_signatures_changes_nothing(method):
    adata = constructed(integer=False)
    sigs = constructed_signatures(adata)
    ref = scores_of(adata, sigs, method)
    rev = dict(reversed(list(sigs.items())))
    got = scores_of(adata, rev, method)
    assert list(got.columns) == list(rev)
    # equal up to float64 rounding: the linear kernel may share the sum of common genes between sets
    np.testing.assert_allclose(got[list(sigs)].to_numpy(), ref.to_numpy(), rtol=0, atol=1e-12)
    alone = scores_of(adata, {"s2": sigs["s2"]}, method)  # and other signatures do not matter
    np.testing.assert_allclose(alone["s2"].to_numpy(), ref["s2"].to_numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_output_contract_and_X_untouched(method):
    adata = constructed(explicit_zeros=True)
    sigs = constructed_signatures(adata)
    X = adata.X
    snap = (X.data.copy(), X.indices.copy(), X.indptr.copy())
    sasp_atlas.score(adata, sigs, method=method)
    assert adata.X is X
    assert all(np.array_equal(a, b) for a, b in zip((X.data, X.indices, X.indptr), snap))
    scores = adata.obsm["sasp_scores"]
    assert list(scores.columns) == list(sigs) and list(scores.index) == list(adata.obs_names)
    assert scores.dtypes.eq(np.float64).all()
    uns = adata.uns["sasp_scores"]
    assert uns["method"] == method and uns["params"]["layer"] == "X"
    for name, genes in sigs.items():
        info = uns["signatures"][name]
        assert {"genes_used", "genes_missing", "n_genes", "n_control_genes", "coverage", "low_coverage"} <= set(info)
        assert set(info["genes_used"]) | set(info["genes_missing"]) == set(genes)
        assert info["n_genes"] == len(set(genes))
        assert (info["n_control_genes"] > 0) == (method in ("scanpy", "expected", "seurat"))  # control-gene scores
    lo, hi = engines.list_methods().set_index("name").loc[method, "value_range"]
    assert ((scores >= lo) & (scores <= hi)).all().all()


@pytest.mark.parametrize("method", ALL_METHODS)
def test_memory_stays_small(method):
    """Python-side peak allocation while scoring stays below 0.3x the matrix (kernels use
    per-thread scratch of a row's size and never copy X); 40k cells x 2k genes, 5% non-zero."""
    rng = np.random.default_rng(0)
    X = sp.random(40_000, 2_000, density=0.05, format="csr", dtype=np.float32, random_state=rng)
    X.data = np.log1p(np.ceil(X.data * 5)).astype(np.float32)
    a = ad.AnnData(X, var=pd.DataFrame(index=[f"G{g}" for g in range(2_000)]))
    sigs = {f"s{k}": [f"G{g}" for g in rng.choice(2_000, 50, replace=False)] for k in range(5)}
    sasp_atlas.score(a[:100].copy(), sigs, method=method)  # compile / load kernels
    matrix_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    tracemalloc.start()
    try:
        sasp_atlas.score(a, sigs, method=method)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.3 * matrix_bytes, f"peak {peak} bytes vs matrix {matrix_bytes}"


def test_unknown_method_and_parameter():
    adata = constructed()
    sigs = constructed_signatures(adata)
    with pytest.raises(ValueError, match="no_such_method"):
        sasp_atlas.score(adata, sigs, method="no_such_method")
    with pytest.raises(TypeError, match="n_up"):
        sasp_atlas.score(adata, sigs, method="ucell", n_up=10)
    with pytest.raises(ValueError, match="missing_genes"):
        sasp_atlas.score(adata, sigs, method="ucell", missing_genes="drop")
    with pytest.raises(ValueError, match="n_up"):
        sasp_atlas.score(adata, sigs, method="aucell", n_up=1)
    assert "sasp_scores" not in adata.obsm


class _Opaque(engines.Plan):
    """A linear plan hidden from the driver's fast path."""

    def __init__(self, plan):
        self.plan, self.n_sets, self.set_info, self.params = plan, plan.n_sets, plan.set_info, plan.params

    def compute(self, *args):
        self.plan.compute(*args)


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("dense", [False, True])
def test_group_means_fast_path_and_chunks_agree(method, dense, monkeypatch):
    adata = constructed(integer=False)
    X = adata.X.toarray() if dense else adata.X
    ctx = _driver.MatrixContext(X)
    sets = sasp_atlas.genes.match_gene_sets(constructed_signatures(adata), pd.Index(adata.var_names))
    plan = _driver.build_plan(engines.get_method(method), ctx, sets, random_state=0, params={})
    codes = np.random.default_rng(0).integers(-1, 4, adata.n_obs)  # -1: cells in no group
    cells = _driver.compute_scores(ctx, plan)
    expected = np.vstack([cells[codes == c].mean(axis=0) for c in range(4)])
    fast, counts = _driver.group_means(ctx, plan, codes, 4)
    monkeypatch.setattr(_driver, "CHUNK_BYTES", 8 * plan.n_sets * 9)  # 9 cells per chunk
    chunked, _ = _driver.group_means(ctx, _Opaque(plan), codes, 4)
    np.testing.assert_allclose(fast, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(chunked, expected, rtol=0, atol=1e-12)
    assert counts.tolist() == [int((codes == c).sum()) for c in range(4)]
