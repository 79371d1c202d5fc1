"""Order-independent gene means (``MatrixContext.exact_gene_means``, the bins of ``expected``):
known answers, invariance to row order, chunking and threads, and refusal of values they cannot
represent."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

import sasp_atlas
from sasp_atlas.engines import MatrixContext
from sasp_atlas.engines._linear import add_exact, exact_column_sums, exact_means
from sasp_atlas.engines._scanpy import expression_bins


def _fsum_means(X: sp.csr_matrix) -> np.ndarray:
    """Correctly rounded column sums (math.fsum) of the float64 values, over the row count."""
    C = X.tocsc()
    return (
        np.array([math.fsum(C.data[C.indptr[g] : C.indptr[g + 1]].astype(np.float64)) for g in range(X.shape[1])])
        / X.shape[0]
    )


def test_exact_means_are_the_correctly_rounded_sums():
    """Values on the 2**-40 grid (float32 log-expression >= 2**-16 is) sum exactly: the means equal
    math.fsum's correctly rounded sums divided by n, gene by gene."""
    rng = np.random.default_rng(0)
    X = sp.random(2000, 300, density=0.2, format="csr", random_state=1, dtype=np.float32)
    X.data = np.log1p(X.data * 1e3).astype(np.float32) + np.float32(2.0**-15)
    got = MatrixContext(X).exact_gene_means
    np.testing.assert_array_equal(got, _fsum_means(X))
    X.data = -X.data * np.float32(rng.choice([1, 3]))  # negative values too
    np.testing.assert_array_equal(MatrixContext(X).exact_gene_means, _fsum_means(X))


def test_exact_means_do_not_depend_on_order_chunking_or_threads(float32_flip):
    X = float32_flip
    n, g = X.shape
    whole = exact_means(exact_column_sums(X.indptr, X.indices, X.data, 0, n, g), n)
    rev = X[::-1].tocsr()
    assert np.array_equal(exact_means(exact_column_sums(rev.indptr, rev.indices, rev.data, 0, n, g), n), whole)
    parts = (np.zeros(g, np.int64), np.zeros(g, np.int64), 0)
    for r0 in range(0, n, 333):  # uneven chunks, added in reverse order
        parts = add_exact(exact_column_sums(X.indptr, X.indices, X.data, r0, min(r0 + 333, n), g), parts)
    assert np.array_equal(exact_means(parts, n), whole)
    threaded = exact_column_sums(X.indptr, X.indices, X.data, 0, n, g, n_threads=2)
    assert np.array_equal(exact_means(threaded, n), whole)
    assert np.array_equal(MatrixContext(X.toarray()).exact_gene_means, whole)  # dense input, row blocks
    # scipy's float32 row-order sums (scanpy's bins) rank the two genes the other way round; the exact
    # means rank them as the exact sums do, and so do expected's bins
    assert np.argsort(MatrixContext(X).scanpy_gene_means)[0] != np.argsort(whole)[0]
    np.testing.assert_array_equal(np.argsort(whole), np.argsort(_fsum_means(X)))
    assert list(expression_bins(whole, 2)) == list(expression_bins(_fsum_means(X), 2))


@pytest.mark.parametrize("bad", [np.nan, np.inf, 2.0**22])
def test_values_the_grid_cannot_hold_are_refused(bad):
    X = sp.csr_matrix(np.array([[1.0, bad], [0.5, 0.0]], dtype=np.float64))
    with pytest.raises(ValueError, match="1 values that are not finite.*normalise the data"):
        _ = MatrixContext(X).exact_gene_means


def test_expected_bins_follow_the_exact_means_and_equal_scanpys_on_core_data(wu):
    """On Wu, scanpy's float32 means and the exact ones put every gene in the same bin, so the
    expected score is unchanged by the switch; the two sets of means differ by float32 rounding."""
    ctx = MatrixContext(wu.X)
    exact, f32 = ctx.exact_gene_means, ctx.scanpy_gene_means
    assert 0 < np.max(np.abs(exact - f32) / np.maximum(exact, 1e-30)) < 1e-5
    np.testing.assert_array_equal(expression_bins(exact, 25), expression_bins(f32, 25))
    a = sasp_atlas.score(wu, ["senmayo"], method="expected", copy=True)
    assert np.isfinite(a.obsm["sasp_scores"]["senmayo"]).all()


def test_large_values_and_duplicate_entries_do_not_overflow():
    """Values just under the 2**22 limit, three entries per row in the same column (non-canonical
    CSR): the int64 accumulators are flushed before they can overflow."""
    n = 5000
    data = np.full(3 * n, 4.0e6)
    X = sp.csr_matrix((data, np.zeros(3 * n, dtype=np.int32), np.arange(0, 3 * n + 1, 3)), shape=(n, 2))
    assert not X.has_canonical_format
    np.testing.assert_array_equal(exact_means(exact_column_sums(X.indptr, X.indices, X.data, 0, n, 2), n), [1.2e7, 0.0])
