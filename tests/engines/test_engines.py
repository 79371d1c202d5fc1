"""Every scoring engine equals its reference implementation, on real data and on constructed
matrices that exercise the corner cases (ties, zeros, negative values, undetected genes, empty
cells); plus the invariants any per-cell score must have."""

from __future__ import annotations

import tracemalloc

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import sasp_atlas
from sasp_atlas import engines, get_signature
from sasp_atlas.engines import _driver

TOL = 1e-6
SIGS = ["senmayo", "fridman_senescence_up"]
ALL_METHODS = ["expected", "scanpy", "aucell", "ucell", "mean", "zmean", "seurat"]


# --------------------------------------------------------------------------- references
def ucell_reference(adata, signatures: dict[str, list[str]], **kw) -> pd.DataFrame:
    pyucell = pytest.importorskip("pyucell")  # the reference only: the invariant tests below run without it
    b = adata.copy()
    pyucell.compute_ucell_scores(b, signatures, n_jobs=1, **kw)
    return pd.DataFrame({s: b.obs[f"{s}_UCell"].to_numpy(np.float64) for s in signatures}, index=b.obs_names)


def aucell_reference(adata, signatures: dict[str, list[str]], **kw) -> pd.DataFrame:
    """``dc.mt.aucell`` with no set pruning (tmin=0); rows: the cells decoupler keeps."""
    decoupler = pytest.importorskip("decoupler")
    var = set(adata.var_names)
    net = pd.DataFrame(
        [(s, g) for s, genes in signatures.items() for g in dict.fromkeys(genes) if g in var],
        columns=["source", "target"],
    )
    b = adata.copy()
    res = decoupler.mt.aucell(b, net, tmin=0, **kw)
    return (b if res is None else res).obsm["score_aucell"]


def dedup(signatures: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: list(dict.fromkeys(v)) for k, v in signatures.items()}


def scores_of(adata, signatures, method, **kw) -> pd.DataFrame:
    a = adata.copy()
    sasp_atlas.score(a, signatures, method=method, **kw)
    return a.obsm["sasp_scores"]


def assert_close(got: pd.DataFrame, ref: pd.DataFrame, tol: float = TOL):
    got = got.loc[ref.index, list(ref.columns)]
    assert np.isfinite(got.to_numpy()).all()
    diff = np.abs(got.to_numpy() - ref.to_numpy(dtype=np.float64))
    worst = diff.max(axis=0)
    assert (worst <= tol).all(), f"max |score - reference| per signature: {dict(zip(ref.columns, worst))}"
    assert (ref.std(axis=0) > 0).any()  # not trivially equal


def real_signatures(adata) -> dict[str, list[str]]:
    sigs = {s: get_signature(s) for s in SIGS}
    sigs["custom"] = ["IL6", "CXCL8", "SERPINE1", "CDKN1A", "MMP3", "NOT_A_REAL_GENE"]
    return dedup(sigs)


# --------------------------------------------------------------------------- real data
@pytest.mark.parametrize("fixture", ["wu", "mgh"])
@pytest.mark.parametrize("kw", [{}, {"max_rank": 400}, {"missing_genes": "skip"}])
def test_ucell_equals_pyucell_on_real_data(request, fixture, kw):
    adata = request.getfixturevalue(fixture)
    sigs = real_signatures(adata)
    assert_close(scores_of(adata, sigs, "ucell", **kw), ucell_reference(adata, sigs, **kw))


@pytest.mark.parametrize("fixture", ["wu", "mgh"])
@pytest.mark.parametrize("n_up", [None, 60])
def test_aucell_equals_decoupler_on_real_data(request, fixture, n_up):
    adata = request.getfixturevalue(fixture)
    sigs = real_signatures(adata)
    kw = {} if n_up is None else {"n_up": n_up}
    assert_close(scores_of(adata, sigs, "aucell", **kw), aucell_reference(adata, sigs, **kw))


def test_aucell_default_n_up_is_decoupler_s(wu):
    a = wu.copy()
    sasp_atlas.score(a, SIGS, method="aucell")
    n_detected = int((wu.X.getnnz(axis=0) > 0).sum())
    assert a.uns["sasp_scores"]["params"]["n_up"] == int(np.ceil(0.05 * n_detected))
    info = a.uns["sasp_scores"]["signatures"]["senmayo"]
    assert set(info["genes_undetected"]) <= set(info["genes_used"])


@pytest.mark.parametrize("fixture", ["wu", "mgh"])
def test_mean_and_zmean_on_real_data(request, fixture):
    adata = request.getfixturevalue(fixture)
    sigs = real_signatures(adata)
    dense = adata.X.toarray().astype(np.float64)
    mu, sd = dense.mean(axis=0), dense.std(axis=0, ddof=1)
    z = np.divide(dense - mu, sd, out=np.zeros_like(dense), where=sd > 0)
    idx = {
        s: adata.var_names.get_indexer(pd.Index(g).intersection(adata.var_names, sort=False)) for s, g in sigs.items()
    }
    ref_mean = pd.DataFrame({s: dense[:, i].mean(axis=1) for s, i in idx.items()}, index=adata.obs_names)
    ref_z = pd.DataFrame({s: z[:, i].mean(axis=1) for s, i in idx.items()}, index=adata.obs_names)
    assert_close(scores_of(adata, sigs, "mean"), ref_mean, 1e-9)
    assert_close(scores_of(adata, sigs, "zmean"), ref_z, 1e-9)


def test_zmean_equals_scanpy_scale_then_mean(mgh):
    import scanpy as sc

    sigs = real_signatures(mgh)
    b = ad.AnnData(mgh.X.toarray().astype(np.float64), obs=mgh.obs[[]], var=mgh.var[[]])
    sc.pp.scale(b)
    ref = pd.DataFrame(
        {s: b[:, pd.Index(g).intersection(b.var_names, sort=False)].X.mean(axis=1) for s, g in sigs.items()},
        index=b.obs_names,
    )
    assert_close(scores_of(mgh, sigs, "zmean"), ref, 1e-9)


def test_top_level_score_is_the_engine_driver(wu):
    a, b = wu.copy(), wu.copy()
    sasp_atlas.score(a, SIGS, random_state=2)
    engines.score(b, SIGS, method="scanpy", random_state=2)
    pd.testing.assert_frame_equal(a.obsm["sasp_scores"], b.obsm["sasp_scores"])


# --------------------------------------------------------------------------- constructed data
def constructed(
    seed: int = 0,
    n_cells: int = 150,
    n_genes: int = 400,
    *,
    integer: bool = True,
    negative: bool = False,
    explicit_zeros: bool = False,
    empty_cell: bool = False,
    dtype=np.float32,
) -> ad.AnnData:
    """Sparse matrix with the corner cases of real data.

    Integer-valued entries give large tie groups within a cell; the first 10 genes are never
    detected; some cells have fewer non-zeros than the AUCell cut-off (their zeros are ranked).
    """
    rng = np.random.default_rng(seed)
    density = rng.uniform(0.02, 0.6, size=(n_cells, 1))  # sparse and dense cells
    mask = rng.random((n_cells, n_genes)) < density
    vals = (
        rng.integers(1, 6, size=(n_cells, n_genes)).astype(np.float64)
        if integer
        else rng.gamma(2.0, 1.0, size=(n_cells, n_genes))
    )
    if negative:
        vals = np.where(rng.random((n_cells, n_genes)) < 0.2, -vals, vals)
    M = (vals * mask).astype(dtype)
    M[:, :10] = 0
    if empty_cell:
        M[3] = 0
    X = sp.csr_matrix(M)
    if explicit_zeros:  # stored entries whose value is 0 (some tools leave them)
        X.data[rng.random(X.nnz) < 0.05] = 0
    return ad.AnnData(
        X,
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n_cells)]),
        var=pd.DataFrame(index=[f"G{g}" for g in range(n_genes)]),
    )


def constructed_signatures(adata, seed: int = 1) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    names = list(adata.var_names)
    sigs = {
        f"s{k}": [names[i] for i in rng.choice(len(names), size, replace=False)]
        for k, size in enumerate([5, 12, 40, 120])
    }
    sigs["with_undetected"] = names[:3] + names[20:30]
    sigs["with_missing"] = names[50:60] + ["NOPE1", "NOPE2"]
    return sigs


CASES = {
    "integer ties": {},
    "continuous": {"integer": False},
    "negative values": {"negative": True},
    "explicit zeros": {"explicit_zeros": True},
    "float64": {"dtype": np.float64},
    "empty cell": {"empty_cell": True},
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kw", [{}, {"max_rank": 50}, {"max_rank": 7, "missing_genes": "skip"}])
def test_ucell_equals_pyucell_constructed(case, kw):
    adata = constructed(**CASES[case])
    sigs = constructed_signatures(adata)
    assert_close(scores_of(adata, sigs, "ucell", **kw), ucell_reference(adata, sigs, **kw))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("n_up", [None, 3, 90, 390])
def test_aucell_equals_decoupler_constructed(case, n_up):
    adata = constructed(**CASES[case])
    sigs = constructed_signatures(adata)
    kw = {} if n_up is None else {"n_up": n_up}
    assert_close(scores_of(adata, sigs, "aucell", **kw), aucell_reference(adata, sigs, **kw))


def test_aucell_tie_seed_matters_only_through_ties():
    """Without ties (continuous values, every gene non-zero) the tie-break order is irrelevant."""
    rng = np.random.default_rng(3)
    X = sp.csr_matrix(rng.gamma(2.0, 1.0, size=(60, 200)).astype(np.float64))
    adata = ad.AnnData(X, var=pd.DataFrame(index=[f"G{g}" for g in range(200)]))
    sigs = constructed_signatures(adata)
    sigs.pop("with_missing")
    a = scores_of(adata, sigs, "aucell", random_state=0)
    b = scores_of(adata, sigs, "aucell", random_state=None)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    tied = constructed()  # integer values: ties everywhere
    s = constructed_signatures(tied)
    assert not np.allclose(
        scores_of(tied, s, "aucell", random_state=0).to_numpy(), scores_of(tied, s, "aucell", random_state=5).to_numpy()
    )


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


# --------------------------------------------------------------------------- invariants
def exact_sum_matrix(seed: int = 4) -> ad.AnnData:
    """Values on a 1/8 grid: gene sums are exact in float32, so gene means (and scanpy's bins) do
    not depend on the order of the cells."""
    adata = constructed(seed, integer=False)
    adata.X.data = np.round(adata.X.data * 8) / 8
    adata.X.eliminate_zeros()
    return adata


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


# --------------------------------------------------------------------------- registry + driver
def test_list_methods():
    table = engines.list_methods()
    # ssgsea and gsva stay out of ALL_METHODS: ssgsea normalises by the range over every set scored together
    # and gsva holds a column copy of the matrix, so the per-set and memory properties above do not apply;
    # husi scores model genes against model weights (tests/engines/test_husi.py)
    assert list(table["name"]) == ALL_METHODS + ["ssgsea", "gsva", "husi"]
    assert {"name", "description", "value_range", "reference", "assumptions", "kind", "params"} <= set(table.columns)
    refs = table.set_index("name")["reference"]
    assert refs["aucell"].endswith("10.1038/nmeth.4463")
    assert refs["ucell"].endswith("10.1016/j.csbj.2021.06.043")
    assert refs["scanpy"].endswith("10.1126/science.aad0501") and refs["expected"] == refs["scanpy"]
    assert refs["husi"].endswith("10.1038/s43587-025-00886-2")
    assert table["description"].str.len().gt(10).all() and table["assumptions"].str.len().gt(10).all()


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


def test_method_concordance(wu):
    a = wu.copy()
    means, conc = engines.method_concordance(a, SIGS, methods=["scanpy", "ucell", "mean"], groupby="cell_type_author")
    assert "sasp_scores" not in a.obsm  # scoring for comparison leaves adata alone
    groups = a.obs["cell_type_author"].nunique()
    assert len(means) == len(SIGS) * 3 * groups
    assert list(means.columns) == ["signature", "cell_type_author", "method", "mean", "rank", "n_cells"]
    # the per-group means are those of the scores sasp_atlas.score writes
    sasp_atlas.score(a, SIGS, method="ucell")
    by_group = a.obsm["sasp_scores"].groupby(a.obs["cell_type_author"].to_numpy()).mean()
    got = means[means["method"] == "ucell"].pivot(index="cell_type_author", columns="signature", values="mean")
    np.testing.assert_allclose(got.loc[by_group.index, SIGS].to_numpy(), by_group[SIGS].to_numpy(), atol=1e-12)
    assert len(conc) == len(SIGS) * 3
    assert conc[["spearman_groups", "spearman_cells"]].apply(lambda s: s.between(-1, 1)).all().all()
    assert (conc["n_groups"] == groups).all()
    # ranks within signature x method are 1..n
    assert (means.groupby(["signature", "method"])["rank"].min() == 1).all()


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


# --------------------------------------------------------------------------- the seed-free score
def test_expected_is_the_mean_of_scanpy_over_seeds(mgh):
    """`expected` replaces scanpy's control draw by its expectation: the mean of scanpy's score over 60
    seeds lies within Monte-Carlo error of it, cell by cell, and `expected` itself ignores the seed."""
    sigs = {"senmayo": get_signature("senmayo")}
    a = mgh.copy()
    exp0 = scores_of(a, sigs, "expected", random_state=0)["senmayo"].to_numpy()
    exp9 = scores_of(a, sigs, "expected", random_state=9)["senmayo"].to_numpy()
    np.testing.assert_array_equal(exp0, exp9)
    draws = np.array([scores_of(a, sigs, "scanpy", random_state=s)["senmayo"].to_numpy() for s in range(60)])
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    z = (draws.mean(axis=0) - exp0) / np.maximum(se, 1e-12)
    assert np.abs(z).max() < 5 and np.mean(np.abs(z) < 1.96) > 0.9
    # the control-gene correction is real: expected differs from the plain mean of the signature genes
    assert not np.allclose(exp0, scores_of(a, sigs, "mean")["senmayo"].to_numpy())
