"""``husi`` (hUSI, Nature Aging 2025, doi:10.1038/s43587-025-00886-2) equals the authors' ``cal_hUSI``.

The reference is ``cal_hUSI`` of the authors' ``sc/hUSI.py`` (WJPina/HUSI, Apache-2.0), re-implemented
here line for line (the file imports rpy2 at module level, so it is not imported): the model genes
present (``set(w.index) & set(var_names)``), the dense matrix of them, and per cell
``w.Weight[genes].corr(exp.iloc[row], method="spearman")``. Its last step ``minmax(score)`` is applied
to ``np.asarray(score)``: as written it subtracts a float from a Python list (a ``TypeError``), so the
array is the evident intent. Compared: all cells of Wu 2021 CID4465 (log1p CP10k), the 39 bulk
samples of Marthandan 2016 (log1p of the released values), and constructed sparse matrices with
ties, stored zeros, all-zero, constant and negative rows and NaN.
"""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numba
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import sasp_atlas
from sasp_atlas.data import InputError
from sasp_atlas.engines import _husi, husi_minmax, husi_scores, husi_sse_split, load_husi_model
from sasp_atlas.sources import HashMismatchError

pytestmark = pytest.mark.filterwarnings(
    "ignore::scipy.stats.ConstantInputWarning"
)  # the pandas reference on constant rows

MODEL_CSV = "husi2025_senescence_index/SenOCLR_features.csv"
TOL = 1e-10


# --------------------------------------------------------------------------- the authors' code, re-implemented
def authors_minmax(x):
    x = np.asarray(x)
    return (x - min(x)) / (max(x) - min(x))


def cal_hUSI_rho(adata, w: pd.DataFrame) -> np.ndarray:
    """``cal_hUSI`` of ``sc/hUSI.py`` without its min-max step: the per-cell Spearman rho."""
    genes = set(w.index) & set(adata.var_names)
    try:
        exp = adata[:, list(genes)].X.todense()
    except AttributeError:
        exp = adata[:, list(genes)].X
    exp = pd.DataFrame(exp, index=adata.obs_names, columns=list(genes))
    score = []
    for row in range(len(exp)):
        score.append(w.Weight[list(genes)].corr(exp.iloc[row], method="spearman"))
    return np.asarray(score, dtype=np.float64)


def authors_sse(scores: pd.Series) -> pd.Series:
    """``SSE_hUSI`` of ``sc/hUSI.py``, verbatim but for the message branch."""
    th = None
    min_sse = None
    for i in scores:
        low = scores[scores <= i]
        high = scores[scores > i]
        sse = np.sum((low - np.mean(low)) ** 2) + np.sum((high - np.mean(high)) ** 2)
        if th is None and min_sse is None:
            th = i
            min_sse = sse
        elif sse < min_sse:
            th = i
            min_sse = sse
    senclass = np.where(scores <= th, 0, 1)
    return pd.Series(senclass, index=scores.index)


@pytest.fixture(scope="module")
def model_table(mirror) -> pd.DataFrame:
    return pd.read_csv(mirror / MODEL_CSV, index_col=0)  # as cal_hUSI reads it


@pytest.fixture(scope="module")
def marthandan(mirror) -> ad.AnnData:
    rdata = pytest.importorskip("rdata")
    counts = rdata.read_rda(mirror / "marthandan2016_replicative_bulk" / "counts_example.rda")["counts_example"]
    X = np.log1p(counts.to_numpy(dtype=np.float64).T)  # samples x genes
    return ad.AnnData(
        X=X, obs=pd.DataFrame(index=counts.columns.astype(str)), var=pd.DataFrame(index=counts.index.astype(str))
    )


# --------------------------------------------------------------------------- real data
@pytest.mark.slow
def test_equals_cal_husi_on_every_wu_cell(wu, model_table):
    got = husi_scores(wu)
    want = cal_hUSI_rho(wu, model_table)
    assert len(got) == wu.n_obs == 1564 and (got.index == wu.obs_names).all() and got.name == "husi"
    assert np.isfinite(want).all()
    diff = np.abs(got.to_numpy() - want).max()
    assert diff <= TOL, diff
    assert got.attrs["genes_used"] == len(set(model_table.index) & set(wu.var_names))
    assert got.attrs["n_model_genes"] == 13346 and not got.attrs["low_coverage"]
    assert got.attrs["coverage"] == pytest.approx(got.attrs["genes_used"] / 13346)
    np.testing.assert_allclose(husi_scores(wu, husi_scale="minmax").to_numpy(), authors_minmax(want), rtol=0, atol=TOL)


@pytest.mark.slow
@pytest.mark.parametrize("dense", [True, False])
def test_equals_cal_husi_on_the_marthandan_bulk_samples(marthandan, model_table, dense):
    adata = marthandan if dense else ad.AnnData(sp.csr_matrix(marthandan.X), obs=marthandan.obs, var=marthandan.var)
    got = husi_scores(adata)
    want = cal_hUSI_rho(marthandan, model_table)
    assert len(got) == 39 and np.isfinite(want).all()
    diff = np.abs(got.to_numpy() - want).max()
    assert diff <= TOL, diff


def test_score_method_husi_records_the_model(wu, model_table):
    out = sasp_atlas.score(wu, {"husi": list(model_table.index)}, method="husi", copy=True)
    info = out.uns["sasp_scores"]
    assert info["method"] == "husi"
    assert info["params"]["model_sha256"] == "ed5e7e6796f902b40e57abee8c5396142e1cffdb60e26f22375d9dc306116ad1"
    assert info["params"]["model_url"].startswith("https://raw.githubusercontent.com/WJPina/HUSI/b46437b5ef81f6d3ed")
    assert info["signatures"]["husi"]["n_genes"] == 13346
    np.testing.assert_array_equal(out.obsm["sasp_scores"]["husi"].to_numpy(), husi_scores(wu).to_numpy())


def test_dask_backed_matrix_gives_the_same_scores(wu):
    lazy = ad.AnnData(X=da.from_array(wu.X, chunks=(400, -1), asarray=False), obs=wu.obs[[]], var=wu.var[[]])
    got = husi_scores(lazy)
    np.testing.assert_allclose(got.to_numpy(), husi_scores(wu).to_numpy(), rtol=0, atol=1e-15)


# --------------------------------------------------------------------------- constructed data
def _pandas_rho(X: np.ndarray, weights: pd.Series, var_names) -> np.ndarray:
    exp = pd.DataFrame(X, columns=list(var_names))
    genes = [g for g in var_names if g in weights.index]
    return np.array([weights[genes].corr(exp.loc[i, genes], method="spearman") for i in range(len(exp))])


def _constructed(seed: int = 0):
    """Counts on a 1/4 grid (many ties), with special rows: all zero, constant, one non-zero, negative values,
    stored zeros; weights with ties; some genes without a weight."""
    rng = np.random.default_rng(seed)
    n, g = 40, 30
    X = rng.integers(0, 5, (n, g)) * (rng.random((n, g)) < 0.4) / 4.0
    X[0] = 0.0  # all zero: no correlation (NaN, as pandas)
    X[1] = 0.75  # constant: NaN
    X[2] = 0.0
    X[2, 5] = 1.0  # one non-zero
    X[3, :10] = -rng.integers(1, 3, 10) / 2.0  # negative values rank below the zeros
    X[4] = rng.permutation(g) + 1.0  # no zero, no tie
    var_names = [f"G{j}" for j in range(g)]
    weights = pd.Series(np.round(rng.normal(size=g - 4), 1), index=var_names[2:-2])  # ties; G0, G1, G28, G29 unweighted
    return X, var_names, weights


def _csr_with_stored_zeros(X: np.ndarray) -> sp.csr_matrix:
    """CSR of ``X`` where some zeros are stored explicitly (they are zeros for the score all the same)."""
    M = sp.csr_matrix(X)
    rows, cols = np.nonzero((X == 0)[:, ::7])
    extra = sp.csr_matrix((np.zeros(len(rows)), (rows, cols * 7)), shape=X.shape)
    S = sp.csr_matrix(
        (
            np.concatenate([M.data, extra.data]),
            (
                np.concatenate([np.repeat(np.arange(X.shape[0]), np.diff(M.indptr)), rows]),
                np.concatenate([M.indices, cols * 7]),
            ),
        ),
        shape=X.shape,
    )
    S.sum_duplicates()
    return S


@pytest.mark.parametrize("form", ["csr", "stored_zeros", "dense", "csc"])
def test_constructed_matrix_equals_pandas(form):
    X, var_names, weights = _constructed()
    mat = {
        "csr": sp.csr_matrix(X),
        "stored_zeros": _csr_with_stored_zeros(X),
        "dense": X.astype(np.float32),
        "csc": sp.csc_matrix(X),
    }[form]
    if form == "stored_zeros":
        assert (mat.data == 0).sum() > 0
    adata = ad.AnnData(
        mat, obs=pd.DataFrame(index=[f"c{i}" for i in range(X.shape[0])]), var=pd.DataFrame(index=var_names)
    )
    sasp_atlas.score(adata, {"model": list(weights.index)}, method="husi", weights=weights)
    got = adata.obsm["sasp_scores"]["model"].to_numpy()
    want = _pandas_rho(X, weights, var_names)
    assert np.isnan(got[[0, 1]]).all() and np.isnan(want[[0, 1]]).all()  # all-zero and constant rows: NaN
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)  # NaN where pandas gives NaN


def test_nan_values_are_dropped_pairs_as_in_pandas():
    X, var_names, weights = _constructed(1)
    X[5, 7] = np.nan
    X[6, [3, 4, 9]] = np.nan
    adata = ad.AnnData(sp.csr_matrix(X), var=pd.DataFrame(index=var_names))
    sasp_atlas.score(adata, {"model": list(weights.index)}, method="husi", weights=weights)
    np.testing.assert_allclose(
        adata.obsm["sasp_scores"]["model"].to_numpy(), _pandas_rho(X, weights, var_names), rtol=0, atol=TOL
    )


def test_random_sparse_matrices_many_genes_and_threads():
    rng = np.random.default_rng(7)
    n, g = 300, 400
    counts = rng.negative_binomial(1, 0.6, (n, g)) * (rng.random((n, g)) < 0.3)
    X = np.log1p(counts / np.maximum(counts.sum(1, keepdims=True), 1) * 1e4).astype(np.float32)
    var_names = [f"G{j}" for j in range(g)]
    weights = pd.Series(rng.normal(size=g - 50), index=rng.permutation(var_names)[: g - 50])
    adata = ad.AnnData(sp.csr_matrix(X), var=pd.DataFrame(index=var_names))
    want = _pandas_rho(X.astype(np.float64), weights, var_names)
    default = numba.get_num_threads()
    for threads in {1, default}:
        numba.set_num_threads(threads)
        try:
            sasp_atlas.score(adata, {"m": list(weights.index)}, method="husi", weights=weights)
        finally:
            numba.set_num_threads(default)
        np.testing.assert_allclose(adata.obsm["sasp_scores"]["m"].to_numpy(), want, rtol=0, atol=TOL)


def test_row_blocks_give_the_same_scores():
    """The plan over any CSR row range (what the dask path hands it) gives the rows' scores."""
    X, var_names, weights = _constructed(2)
    M = sp.csr_matrix(X)
    adata = ad.AnnData(M, var=pd.DataFrame(index=var_names))
    ctx = sasp_atlas.engines.MatrixContext(M)
    from sasp_atlas.genes import match_gene_sets

    plan = _husi.prepare(
        ctx, match_gene_sets({"m": list(weights.index)}, adata.var_names), random_state=None, weights=weights
    )
    whole = np.zeros((X.shape[0], 1))
    plan.compute(M.indptr, M.indices, M.data, 0, X.shape[0], whole)
    for a, b in ((0, 7), (7, 8), (8, 40)):
        part = np.zeros((b - a, 1))
        plan.compute(M.indptr, M.indices, M.data, a, b, part)
        np.testing.assert_array_equal(part, whole[a:b])


def test_gene_without_a_weight_and_bad_options_are_refused():
    X, var_names, weights = _constructed()
    adata = ad.AnnData(sp.csr_matrix(X), var=pd.DataFrame(index=var_names))
    with pytest.raises(InputError, match="no weight"):
        sasp_atlas.score(adata, {"s": ["G0", "G5"]}, method="husi", weights=weights)
    with pytest.raises(InputError, match="more than once"):
        sasp_atlas.score(adata, {"s": ["G5"]}, method="husi", weights=pd.concat([weights, weights]))
    with pytest.raises(InputError, match="finite"):
        sasp_atlas.score(adata, {"s": ["G5"]}, method="husi", weights=weights.where(weights.index != "G5"))
    with pytest.raises(InputError, match="husi_scale"):
        husi_scores(adata, husi_scale="zscore")


# --------------------------------------------------------------------------- the authors' transforms
def test_minmax_is_the_authors():
    x = pd.Series([0.1, -0.2, 0.3, 0.3, 0.05], index=list("abcde"))
    np.testing.assert_allclose(husi_minmax(x).to_numpy(), authors_minmax(x.to_numpy()), rtol=0, atol=1e-15)
    assert husi_minmax(x).tolist() == pytest.approx([0.6, 0.0, 1.0, 1.0, 0.5])
    with_nan = husi_minmax(pd.Series([0.2, np.nan, 0.4]))
    assert with_nan.iloc[0] == 0 and np.isnan(with_nan.iloc[1]) and with_nan.iloc[2] == 1
    assert husi_minmax(pd.Series([0.3, 0.3])).isna().all()  # no range


@pytest.mark.parametrize("seed", range(6))
def test_sse_split_is_the_authors(seed):
    rng = np.random.default_rng(seed)
    if seed == 0:  # two clear groups
        values = np.concatenate([rng.normal(-0.1, 0.02, 30), rng.normal(0.2, 0.03, 12)])
    elif seed == 1:  # heavy ties
        values = rng.integers(0, 6, 50) / 10.0
    elif seed == 2:  # three values only
        values = np.array([0.1, 0.1, 0.5, 0.5, 0.5, 0.9])
    else:
        values = rng.normal(size=int(rng.integers(5, 200)))
    scores = pd.Series(rng.permutation(values), index=[f"c{i}" for i in range(len(values))])
    got = husi_sse_split(scores)
    want = authors_sse(scores)
    assert (got.index == scores.index).all()
    np.testing.assert_array_equal(got.to_numpy(dtype=np.int64), want.to_numpy())


def test_sse_split_on_two_groups_and_nan():
    scores = pd.Series([0.01, 0.02, 0.03, 0.5, 0.52, np.nan], index=list("abcdef"))
    got = husi_sse_split(scores)
    assert got.iloc[:5].tolist() == [0, 0, 0, 1, 1] and got.isna().tolist() == [False] * 5 + [True]
    assert husi_sse_split(pd.Series([np.nan, np.nan])).isna().all()
    assert husi_sse_split(pd.Series([0.3])).tolist() == [0]  # one cell: the authors' threshold is the cell itself


# --------------------------------------------------------------------------- the model resource
def test_model_is_fetched_and_verified(model_table):
    w = load_husi_model()
    assert len(w) == 13346 and w.index.is_unique and w.dtype == np.float64
    pd.testing.assert_series_equal(w, model_table["Weight"].rename("weight"))


def test_a_corrupt_mirror_copy_is_refused(tmp_path, empty_cache, no_network, monkeypatch, mirror):
    bad = tmp_path / "mirror" / "husi2025_senescence_index"
    bad.mkdir(parents=True)
    text = (mirror / MODEL_CSV).read_text().replace("0.035764584", "0.035764585")
    (bad / "SenOCLR_features.csv").write_text(text)
    monkeypatch.setenv("SASP_ATLAS_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.delenv("SASP_ATLAS_RESOURCE_MIRROR", raising=False)
    with pytest.raises(HashMismatchError, match="sha256"):
        load_husi_model()
    assert no_network == []  # refused, not replaced by a download
