"""The expression-matched random-gene-set null: planted signal is found, random sets are not."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import sasp_atlas
from sasp_atlas.engines._scanpy import expression_bins
from sasp_atlas.engines.null import NULL_COLUMNS, celltype_null, draw_null_sets

N_GENES = 600
PLANTED = [f"G{g}" for g in range(100, 130)]


def planted_data(seed: int = 0, n_per_type: int = 120) -> ad.AnnData:
    """Three cell types of log-normalised NB-like counts; genes G100-G129 are 4x higher in type "A"."""
    rng = np.random.default_rng(seed)
    gene_means = np.exp(rng.normal(-1.0, 1.2, N_GENES))
    types = np.repeat(["A", "B", "C"], n_per_type)
    mu = np.tile(gene_means, (len(types), 1)) * rng.lognormal(0, 0.3, (len(types), 1))
    mu[np.ix_(types == "A", np.arange(100, 130))] *= 4.0
    counts = rng.poisson(rng.gamma(2.0, mu / 2.0))
    X = counts / counts.sum(axis=1, keepdims=True) * 1e4
    X = sp.csr_matrix(np.log1p(X).astype(np.float32))
    obs = pd.DataFrame({"cell_type": pd.Categorical(types)}, index=[f"c{i}" for i in range(len(types))])
    return ad.AnnData(X, obs=obs, var=pd.DataFrame(index=[f"G{g}" for g in range(N_GENES)]))


@pytest.fixture(scope="module")
def planted():
    return planted_data()


def random_signatures(n: int, size: int = 30, seed: int = 5) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    genes = [g for g in range(N_GENES) if not 100 <= g < 130]
    return {f"random{k}": [f"G{g}" for g in rng.choice(genes, size, replace=False)] for k in range(n)}


@pytest.mark.parametrize("method", ["scanpy", "ucell", "aucell", "zmean"])
def test_planted_signature_is_high_only_where_planted(planted, method):
    res = celltype_null(planted, {"planted": PLANTED}, method=method, n_null=99)
    assert list(res.columns) == ["signature", "cell_type"] + NULL_COLUMNS[1:]
    by_type = res.set_index("cell_type")
    assert by_type.loc["A", "empirical_p"] == pytest.approx(1 / 100)  # above every random set
    assert by_type.loc["A", "z"] > 5
    assert (by_type.loc[["B", "C"], "empirical_p"] > 0.05).all()
    assert by_type["n_cells"].tolist() == [120, 120, 120]


def test_random_sets_are_not_significant(planted):
    """Random gene sets: p-values spread over (0, 1], few below 0.05."""
    res = celltype_null(planted, random_signatures(20), n_null=49)
    p = res["empirical_p"].to_numpy()
    assert len(p) == 60 and ((p > 0) & (p <= 1)).all()
    assert (p < 0.05).mean() <= 0.15
    assert 0.3 < p.mean() < 0.7
    assert np.histogram(p, bins=4, range=(0, 1))[0].min() >= 5  # roughly uniform
    assert res["z"].abs().median() < 1.5


def test_observed_mean_is_the_engine_score(planted):
    res = celltype_null(planted, {"planted": PLANTED}, method="ucell", n_null=5)
    a = planted.copy()
    sasp_atlas.score(a, {"planted": PLANTED}, method="ucell")
    expected = a.obsm["sasp_scores"]["planted"].groupby(a.obs["cell_type"].to_numpy()).mean()
    np.testing.assert_allclose(res.set_index("cell_type")["observed_mean"].loc[expected.index], expected, atol=1e-12)


def test_null_distribution_is_the_score_of_the_drawn_sets(planted):
    """The null values equal scoring the drawn random sets one by one with sasp_atlas.score."""
    res = celltype_null(planted, {"planted": PLANTED}, method="scanpy", n_null=4, seed=7)
    from sasp_atlas.engines._driver import MatrixContext
    from sasp_atlas.engines.null import _signature_rng

    means = MatrixContext(planted.X).scanpy_gene_means
    idx = planted.var_names.get_indexer(PLANTED)
    sets = draw_null_sets(means, idx, n_null=4, rng=_signature_rng(7, "planted"))
    a = planted.copy()
    sasp_atlas.score(a, {f"n{j}": list(planted.var_names[s]) for j, s in enumerate(sets)}, method="scanpy")
    per_type = a.obsm["sasp_scores"].groupby(a.obs["cell_type"].to_numpy()).mean()
    got = res.set_index("cell_type")
    np.testing.assert_allclose(got.loc[per_type.index, "null_mean"], per_type.mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(got.loc[per_type.index, "null_sd"], per_type.std(axis=1, ddof=1), atol=1e-12)


def test_null_sets_match_the_expression_bins(planted):
    from sasp_atlas.engines._driver import MatrixContext

    means = MatrixContext(planted.X).scanpy_gene_means
    bins = expression_bins(means, 25)
    idx = planted.var_names.get_indexer(PLANTED)
    sets = draw_null_sets(means, idx, n_null=30, rng=np.random.default_rng(0))
    want = np.sort(bins[idx])
    for s in sets:
        assert len(s) == len(set(s)) == len(idx)
        np.testing.assert_array_equal(np.sort(bins[s]), want)
        assert not set(s) & set(idx)  # bins here are large enough to avoid the signature's own genes
    assert len({tuple(sorted(s)) for s in sets}) == 30


def test_seeded_recorded_and_independent_of_other_signatures(planted):
    sigs = {"planted": PLANTED, **random_signatures(2)}
    a = celltype_null(planted, sigs, n_null=20, seed=3)
    b = celltype_null(planted, dict(reversed(list(sigs.items()))), n_null=20, seed=3)
    c = celltype_null(planted, {"planted": PLANTED}, n_null=20, seed=3)
    d = celltype_null(planted, {"planted": PLANTED}, n_null=20, seed=4)
    key = ["signature", "cell_type"]
    pd.testing.assert_frame_equal(a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True))
    pd.testing.assert_frame_equal(a[a["signature"] == "planted"].reset_index(drop=True), c)
    assert not np.allclose(c["null_mean"], d["null_mean"])
    assert a.attrs["seed"] == 3 and a.attrs["n_null"] == 20 and a.attrs["method"] == "scanpy"


def test_errors(planted):
    with pytest.raises(KeyError, match="no_such_column"):
        celltype_null(planted, {"planted": PLANTED}, groupby="no_such_column", n_null=2)
    with pytest.raises(ValueError, match="n_null"):
        celltype_null(planted, {"planted": PLANTED}, n_null=0)
    with pytest.raises(ValueError, match="ghost"):
        celltype_null(planted, {"ghost": ["NOPE"]}, n_null=2)
