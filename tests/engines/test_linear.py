"""The weight tables of the linear kernel (``engines._linear``) equal the matrix product ``X @ W``, and the
choice between them follows the shape of ``W``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from engine_cases import constructed


@pytest.mark.parametrize("n_sets", [6, 300])  # 300 sets = 600 parts: above the decomposition limit
@pytest.mark.parametrize("scaled", [False, True])
def test_code_table_equals_matrix_product(n_sets, scaled):
    """Heavily overlapping sets with two weights each (scanpy's shape), coded through shared bases."""
    from sasp_atlas.engines._linear import CodeTable

    adata = constructed(integer=False)
    rng = np.random.default_rng(2)
    core = rng.choice(adata.n_vars, 150, replace=False)
    cols = []
    for _ in range(n_sets):
        sig = rng.choice(adata.n_vars, 20, replace=False)
        ctrl = np.setdiff1d(np.union1d(core[rng.random(150) < 0.9], rng.choice(adata.n_vars, 10)), sig)
        col = np.zeros(adata.n_vars)
        col[sig], col[ctrl] = 1 / len(sig), -1 / len(ctrl)
        cols.append(col)
    W = np.column_stack(cols)
    scale = rng.uniform(0.5, 2.0, adata.n_vars) if scaled else None
    table = CodeTable(sp.csr_matrix(W), scale)
    out = np.zeros((adata.n_obs, n_sets))
    table.add_into(adata.X.indptr, adata.X.indices, adata.X.data, 0, adata.n_obs, out)
    dense = adata.X.toarray().astype(np.float64) * (1.0 if scale is None else scale)
    np.testing.assert_allclose(out, dense @ W, rtol=0, atol=1e-12)
    if n_sets == 6:
        assert len(table.lk_code) < 0.7 * np.count_nonzero(W)  # shared genes are stored once


@pytest.mark.parametrize("tile", [1, 7, 4096])
@pytest.mark.parametrize("sort_indices", [True, False])
def test_dense_row_table_equals_matrix_product(tile, sort_indices, monkeypatch):
    """Dense rows, tiled over genes, add every stored value once, sorted rows or not, whatever the tile."""
    from sasp_atlas.engines._linear import DenseRowTable

    adata = constructed(integer=False)
    rng = np.random.default_rng(5)
    X = adata.X.copy()
    if not sort_indices:  # reverse each row's stored order: a valid CSR with unsorted indices
        for i in range(X.shape[0]):
            lo, hi = X.indptr[i], X.indptr[i + 1]
            X.indices[lo:hi], X.data[lo:hi] = X.indices[lo:hi][::-1].copy(), X.data[lo:hi][::-1].copy()
        X.has_sorted_indices = False
    W = np.where(rng.random((adata.n_vars, 9)) < 0.4, rng.normal(size=(adata.n_vars, 9)), 0.0)
    W[: adata.n_vars // 5] = 0.0  # genes in no set
    scale = rng.uniform(0.5, 2.0, adata.n_vars)
    monkeypatch.setattr(DenseRowTable, "TILE_GENES", tile)
    monkeypatch.setattr(DenseRowTable, "ROWS_PER_BLOCK", 3)
    table = DenseRowTable(sp.csr_matrix(W), scale)
    out = np.zeros((adata.n_obs - 2, 9))
    table.add_into(X.indptr, X.indices, X.data, 1, adata.n_obs - 1, out)  # rows 1..n-2 only
    expected = (X.toarray().astype(np.float64) * scale) @ W
    np.testing.assert_allclose(out, expected[1:-1], rtol=0, atol=1e-12)


def test_linear_table_choice_follows_the_shape_of_w():
    """Codes for small disjoint sets (mean's shape); classes where genes share their rows of ``W``
    (control pools shared between sets, scanpy's shape); dense rows for per-signature control sets (each
    gene in many sets with a row of its own, Seurat's shape). The choice reads ``W`` only."""
    from sasp_atlas.engines._linear import ClassTable, CodeTable, DenseRowTable, linear_table

    rng = np.random.default_rng(3)
    n_genes, n_sets = 5000, 30
    own = np.zeros((n_genes, n_sets))
    for k in range(n_sets):  # each set's own random third of the genes
        own[rng.choice(n_genes, n_genes // 3, replace=False), k] = -1.0 / (n_genes // 3)
    shared = np.zeros((n_genes, n_sets))
    pools = rng.permutation(n_genes)[:4000].reshape(8, 500)  # 8 shared pools (scanpy: a bin's drawn controls)
    for k in range(n_sets):  # each set: the pools of 4 of the 8 bins, plus its own 20 signature genes
        ctrl = pools[rng.choice(8, 4, replace=False)].ravel()
        shared[ctrl, k] = -1.0 / len(ctrl)
        shared[rng.choice(np.setdiff1d(np.arange(n_genes), pools), 20, replace=False), k] = 1.0 / 20
    small = np.zeros((n_genes, n_sets))
    for k in range(n_sets):
        small[rng.choice(n_genes, 20, replace=False), k] = 1.0 / 20
    assert isinstance(linear_table(sp.csr_matrix(own)), DenseRowTable)
    assert isinstance(linear_table(sp.csr_matrix(shared)), ClassTable)
    assert isinstance(linear_table(sp.csr_matrix(small)), CodeTable)
    assert isinstance(linear_table(sp.csr_matrix(np.tile(own, (1, 10)))), CodeTable)  # 300 sets: too wide


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("every_gene_in_a_set", [False, True])
def test_class_table_equals_matrix_product(scaled, every_gene_in_a_set):
    """Genes with identical rows of ``W`` summed once per class, then spread with the class's weights."""
    from sasp_atlas.engines._linear import ClassTable

    adata = constructed(integer=False)
    rng = np.random.default_rng(8)
    bins = rng.integers(0, 4, adata.n_vars)  # 4 weight patterns, as expected's expression bins
    patterns = rng.normal(size=(4, 7))
    W = patterns[bins]
    if not every_gene_in_a_set:
        W[rng.random(adata.n_vars) < 0.3] = 0.0
    W[:3] = rng.normal(size=(3, 7))  # three genes with rows of their own
    scale = rng.uniform(0.5, 2.0, adata.n_vars) if scaled else None
    table = ClassTable(sp.csr_matrix(W), scale)
    assert len(table.T) == 8  # 4 patterns + 3 own rows + the (possibly empty) class of genes in no set
    out = np.zeros((adata.n_obs, 7))
    table.add_into(adata.X.indptr, adata.X.indices, adata.X.data, 0, adata.n_obs, out)
    dense = adata.X.toarray().astype(np.float64) * (1.0 if scale is None else scale)
    np.testing.assert_allclose(out, dense @ W, rtol=0, atol=1e-12)
