"""Invariances every scoring method must have, checked on many small random matrices (hypothesis).

Written against the public ``sasp_atlas.score``; every method of ``sasp_atlas.engines.list_methods()``
is tried (only ``scanpy`` where the engine registry is not there).

* permuting the cells permutes the scores (values on a 1/4 grid, so float32 gene sums, and with
  them scanpy's expression bins, do not depend on the cell order);
* the order of the signatures changes nothing;
* rank methods (ucell, aucell): the order of the genes changes nothing, and a gene that is zero in
  every cell and in no signature changes nothing. For aucell the gene order is only irrelevant
  without ties: like decoupler it breaks ties by a seeded random order *of gene positions*;
* normalisation: multiplying one cell's raw counts by a constant leaves every normalised score
  unchanged (``sasp_atlas.io.normalise``, raw counts path). By a power of two the normalised matrix
  is bit-identical, so all methods agree exactly; by any other integer it agrees to rounding, so
  the rank methods (within-cell order) agree exactly and mean/zmean to 1e-6 (scanpy's bins could
  flip on a rounding difference and are not compared);
* the number of numba threads changes nothing (beyond float64 rounding).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anndata as ad
import numba
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.extra.numpy import arrays

import sasp_atlas
from sasp_atlas.data.load import normalise

try:
    from sasp_atlas.engines import list_methods

    METHODS = list(list_methods()["name"])
except ImportError:  # engines not there yet: the default method only
    METHODS = ["scanpy"]
RANK_METHODS = [m for m in ("ucell", "aucell") if m in METHODS]

# no example database, and hypothesis's own files outside the project tree
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "sasp-atlas-hypothesis")
SETTINGS = settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True, scope="module")
def one_numba_thread():
    """The kernels' thread hand-off costs ~10 ms a call, far more than these tiny matrices take; run them on one
    thread here (:func:`test_thread_count_changes_nothing` compares with the default)."""
    default = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield default
    finally:
        numba.set_num_threads(default)


def method_params(adata: ad.AnnData, method: str) -> dict:
    """``husi`` correlates expression with model weights: a weight for every gene (ties included), fixed per name."""
    if method != "husi":
        return {}
    names = pd.Index(adata.var_names.astype(str))
    return {"weights": pd.Series([float((int(n.lstrip("G")) * 7) % 5) for n in names], index=names)}


def scores(adata: ad.AnnData, signatures: dict, method: str) -> pd.DataFrame:
    try:
        sasp_atlas.score(adata, signatures, method=method, **method_params(adata, method))
    except RuntimeError as exc:  # scanpy (and its engine) refuse a matrix whose expression bins hold no control gene
        if "no control genes" in str(exc):
            reject()
        raise
    return adata.obsm["sasp_scores"].copy()


def anndata(X: np.ndarray) -> ad.AnnData:
    n, g = X.shape
    return ad.AnnData(
        sp.csr_matrix(X.astype(np.float32)),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(index=[f"G{j}" for j in range(g)]),
    )


@st.composite
def matrices(draw, *, min_genes: int = 16, ties: bool = True):
    """A cells x genes matrix and 1-4 signatures of at most a quarter of the genes each.

    ``ties=True``: sparse counts 1..8 (on a 1/4 grid), many zeros and ties; every cell and every
    gene has a non-zero value. ``ties=False``: distinct positive values everywhere (no tie and no
    zero in any cell; drawn from a hypothesis-chosen seed).
    """
    n = draw(st.integers(4, 20))
    g = draw(st.integers(min_genes, 32))
    if ties:
        counts = draw(arrays(np.int64, (n, g), elements=st.integers(1, 7), fill=st.just(0)))
        # every cell and every gene detected at least once (aucell needs n_up > 1 detected genes, scanpy control genes)
        counts[np.arange(n), np.arange(n) % g] += 1
        counts[np.arange(g) % n, np.arange(g)] += 1
        X = counts / 4.0
    else:
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        X = rng.permuted(np.tile(np.arange(1, g + 1, dtype=np.float64), (n, 1)), axis=1) * rng.uniform(0.5, 2.0, (n, 1))
    k = draw(st.integers(1, 4))
    sigs = {
        f"sig{s}": [
            f"G{j}" for j in draw(st.lists(st.integers(0, g - 1), min_size=1, max_size=max(1, g // 4), unique=True))
        ]
        for s in range(k)
    }
    return X, sigs


@pytest.mark.parametrize("method", METHODS)
@SETTINGS
@given(data=st.data(), perm_seed=st.integers(0, 2**32 - 1))
def test_permuting_cells_permutes_scores(method, data, perm_seed):
    # gsva, like Bioconductor GSVA, adds each gene's kernel-CDF terms in cell order, and genes whose CDFs
    # tie exactly are ordered by the sums' last bit, which the cell order changes (GSVA in R moves by up to
    # 0.17 on such tie-heavy matrices, and the engine with it): tie-free matrices for gsva
    X, sigs = data.draw(matrices(ties=method != "gsva"))
    adata = anndata(X)
    perm = np.random.default_rng(perm_seed).permutation(adata.n_obs)
    ref = scores(adata, sigs, method)
    got = scores(adata[perm].copy(), sigs, method)
    assert list(got.index) == list(adata.obs_names[perm])
    np.testing.assert_allclose(got.loc[ref.index].to_numpy(), ref.to_numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
@SETTINGS
@given(data=matrices(), order_seed=st.integers(0, 2**32 - 1))
def test_reordering_signatures_changes_nothing(method, data, order_seed):
    X, sigs = data
    adata = anndata(X)
    ref = scores(adata, sigs, method)
    names = list(sigs)
    shuffled = {name: sigs[name] for name in np.random.default_rng(order_seed).permutation(names)}
    got = scores(adata, shuffled, method)
    assert list(got.columns) == list(shuffled)
    pd.testing.assert_frame_equal(got[names], ref)


def _gene_permutation_case(method: str):
    # ucell averages tied ranks, so any data; aucell orders ties by gene position, so no ties
    return matrices(ties=method != "aucell")


@pytest.mark.parametrize("method", RANK_METHODS)
@SETTINGS
@given(data=st.data())
def test_rank_methods_ignore_the_gene_order(method, data):
    X, sigs = data.draw(_gene_permutation_case(method))
    adata = anndata(X)
    ref = scores(adata, sigs, method)
    perm = data.draw(st.permutations(range(adata.n_vars)))
    got = scores(adata[:, list(perm)].copy(), sigs, method)
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", RANK_METHODS)
@SETTINGS
@given(data=matrices(), where=st.integers(0, 40))
def test_rank_methods_ignore_a_gene_that_is_zero_everywhere(method, data, where):
    X, sigs = data
    ref = scores(anndata(X), sigs, method)
    pos = where % (X.shape[1] + 1)
    wider = anndata(np.insert(X, pos, 0.0, axis=1))
    wider.var_names = [f"G{j}" for j in range(X.shape[1])][:pos] + ["ZERO"] + [f"G{j}" for j in range(X.shape[1])][pos:]
    got = scores(wider, sigs, method)
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=0, atol=1e-12)


def _normalised(counts: np.ndarray) -> ad.AnnData:
    adata = anndata(counts)
    normalise(adata, "raw_counts")
    return adata


@pytest.mark.parametrize("method", METHODS)
@SETTINGS
@given(data=matrices(), cell=st.integers(0, 23), power=st.integers(1, 6))
def test_scaling_a_cell_by_a_power_of_two_changes_no_normalised_score(method, data, cell, power):
    X, sigs = data
    counts = X * 4  # integer counts
    i = cell % counts.shape[0]
    scaled = counts.copy()
    scaled[i] *= 2**power
    a, b = _normalised(counts), _normalised(scaled)
    np.testing.assert_array_equal(a.X.toarray(), b.X.toarray())
    pd.testing.assert_frame_equal(scores(b, sigs, method), scores(a, sigs, method))


@pytest.mark.parametrize(
    "method", [m for m in METHODS if m not in ("scanpy", "expected", "seurat")]
)  # bins move with rounding
@SETTINGS
@given(data=matrices(), cell=st.integers(0, 23), factor=st.integers(3, 50))
def test_scaling_a_cell_by_any_integer_changes_no_normalised_score(method, data, cell, factor):
    X, sigs = data
    counts = X * 4
    i = cell % counts.shape[0]
    scaled = counts.copy()
    scaled[i] *= factor
    a, b = _normalised(counts), _normalised(scaled)
    np.testing.assert_allclose(b.X.toarray(), a.X.toarray(), rtol=1e-6)
    tol = 0 if method in RANK_METHODS else 1e-6
    np.testing.assert_allclose(
        scores(b, sigs, method).to_numpy(), scores(a, sigs, method).to_numpy(), rtol=tol, atol=tol
    )


@pytest.mark.parametrize("method", METHODS)
@settings(SETTINGS, max_examples=8)
@given(data=matrices())
def test_thread_count_changes_nothing(method, data, one_numba_thread):
    X, sigs = data
    adata = anndata(X)
    single = scores(adata, sigs, method)
    numba.set_num_threads(max(2, one_numba_thread) if numba.config.NUMBA_NUM_THREADS >= 2 else 1)
    try:
        threaded = scores(adata, sigs, method)
    finally:
        numba.set_num_threads(1)
    np.testing.assert_allclose(threaded.to_numpy(), single.to_numpy(), rtol=0, atol=1e-12)
