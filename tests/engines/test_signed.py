"""Signed signatures (issue 26, item 2): every engine scores a set with a direction per gene from its up and
down parts, in the same pass as the other sets; hand-computed values on a constructed matrix, pyucell's
signed form, scanpy's score of each part, the dask path, the null and the Hernandez-Segura set on the
Marthandan ground truth. Unsigned sets are scored exactly as before."""

from __future__ import annotations

import warnings

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import sasp_atlas
from sasp_atlas.data import InputError
from sasp_atlas.engines import METHODS, celltype_null, list_methods, method_concordance
from sasp_atlas.genes import SignedGeneSet, get_signed_signature, match_signatures

HS = "hernandez_segura2017_core_senescence"

# 4 cells x 6 genes. Up genes A, B; down gene C.
X_TOY = np.array([[2, 4, 1, 0, 3, 0], [0, 1, 3, 2, 0, 1], [1, 1, 0, 1, 1, 5], [3, 0, 1, 0, 0, 2]], dtype=np.float32)
SIGNED = {"s": {"A": 1, "B": 1, "C": -1}}


def _toy(sparse: bool = True) -> ad.AnnData:
    X = sp.csr_matrix(X_TOY) if sparse else X_TOY.copy()
    return ad.AnnData(X=X, obs=pd.DataFrame(index=[f"c{i}" for i in range(4)]), var=pd.DataFrame(index=list("ABCDEF")))


def _scores(adata, sigs, method, **kw) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sasp_atlas.score(adata, sigs, method=method, copy=True, **kw).obsm["sasp_scores"]


def _synthetic(n_cells=600, n_genes=400, seed=0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    mu = np.exp(rng.normal(-1.5, 1.5, n_genes))
    counts = rng.negative_binomial(2, 2 / (2 + mu[None, :] * rng.lognormal(0, 0.4, (n_cells, 1))))
    X = sp.csr_matrix(np.log1p(counts / counts.sum(1, keepdims=True).clip(1) * 1e4).astype(np.float32))
    return ad.AnnData(
        X=X,
        var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]),
        obs=pd.DataFrame(
            {"cell_type": pd.Categorical(rng.choice(["T", "B", "M"], n_cells))}, index=[f"c{i}" for i in range(n_cells)]
        ),
    )


def _synthetic_signed(adata, seed=1) -> dict:
    rng = np.random.default_rng(seed)
    genes = adata.var_names[rng.choice(adata.n_vars, 40, replace=False)]
    return {
        "sig": {g: (1 if k < 25 else -1) for k, g in enumerate(genes)},
        "plain": list(adata.var_names[rng.choice(adata.n_vars, 30, replace=False)]),
    }


# --------------------------------------------------------------------------- hand-computed values
def test_mean_is_up_mean_minus_down_mean_by_hand():
    # mean(A, B) - C per cell: (2+4)/2 - 1, (0+1)/2 - 3, (1+1)/2 - 0, (3+0)/2 - 1
    got = _scores(_toy(), SIGNED, "mean")["s"].to_numpy()
    np.testing.assert_allclose(got, [2.0, -2.5, 1.0, 0.5], rtol=0, atol=1e-12)


def test_zmean_by_hand():
    # gene means 1.5, 1.5, 1.25; SDs (ddof=1) sqrt(5/3), sqrt(3), sqrt(19/12)
    zA = np.array([0.5, -1.5, -0.5, 1.5]) / np.sqrt(5 / 3)
    zB = np.array([2.5, -0.5, -0.5, -1.5]) / np.sqrt(3)
    zC = np.array([-0.25, 1.75, -1.25, -0.25]) / np.sqrt(19 / 12)
    got = _scores(_toy(), SIGNED, "zmean")["s"].to_numpy()
    np.testing.assert_allclose(got, (zA + zB) / 2 - zC, rtol=0, atol=1e-12)
    assert abs(got[0] - 1.1140169) < 1e-6  # (0.38730 + 1.44338) / 2 + 0.19868


@pytest.mark.parametrize("method", ["expected", "scanpy"])
def test_control_gene_scores_by_hand(method):
    """n_bins=2: gene means D .75 < E 1 < C 1.25 < A = B 1.5 < F 2 rank 1, 2, 3, 4, 4, 6; // 6 puts F alone in bin 1.
    ctrl_size=50 takes every other gene of bin 0: the up part's controls are C, D, E, the down part's A, B, D, E.
    score = [mean(A,B) - mean(C,D,E)] - [C - mean(A,B,D,E)]:
    c0 (3 - 4/3) - (1 - 9/4) = 35/12; c1 (1/2 - 5/3) - (3 - 3/4) = -41/12; c2 (1 - 2/3) - (0 - 1) = 4/3;
    c3 (3/2 - 1/3) - (1 - 3/4) = 11/12."""
    a = _toy()
    sasp_atlas.score(a, SIGNED, method=method, n_bins=2, ctrl_size=50)
    np.testing.assert_allclose(
        a.obsm["sasp_scores"]["s"].to_numpy(),
        [35 / 12, -41 / 12, 4 / 3, 11 / 12],
        rtol=0,
        atol=1e-6 if method == "scanpy" else 1e-12,
    )
    info = a.uns["sasp_scores"]["signatures"]["s"]
    assert (info["n_control_genes_up"], info["n_control_genes_down"], info["n_control_genes"]) == (3, 4, 7)


def test_ucell_signed_by_hand():
    """max_rank=4; non-zero genes ranked decreasing (ties averaged), zeros and ranks > 4 at 4.
    U = 1 - (sum of ranks - l(l+1)/2) / (l max_rank - l(l+1)/2).
    c0: B 1, E 2, A 3, C 4 -> U(up) = 1 - (4 - 3)/5 = 0.8, U(down) = 1 - 3/3 = 0 -> 0.8
    c1: C 1, D 2, B = F 3.5, A 4 -> U(up) = 1 - 4.5/5 = 0.1, U(down) = 1 -> max(0, -0.9) = 0
    c2: F 1, A = B = D = E 3.5, C 4 -> U(up) = 1 - 4/5 = 0.2, U(down) = 0 -> 0.2
    c3: A 1, F 2, C 3, B 4 -> U(up) = 1 - 2/5 = 0.6, U(down) = 1 - 2/3 = 1/3 -> 0.6 - 1/3 (w_neg 0.5: 0.6 - 1/6)."""
    got = _scores(_toy(), SIGNED, "ucell", max_rank=4)["s"].to_numpy()
    np.testing.assert_allclose(got, [0.8, 0.0, 0.2, 0.6 - 1 / 3], rtol=0, atol=1e-12)
    half = _scores(_toy(), SIGNED, "ucell", max_rank=4, w_neg=0.5)["s"].to_numpy()
    np.testing.assert_allclose(half, [0.8, 0.0, 0.2, 0.6 - 1 / 6], rtol=0, atol=1e-12)


def test_aucell_signed_by_hand():
    """n_up=3, ties in gene order (random_state=None); AUC = sum_{r <= 3} (3 - r) / max_auc with
    max_auc 3 (up: m = 2) and 2 (down: m = 1).
    c0: B 1, E 2, A 3, C 4 -> up (2 + 0)/3, down 0 -> 2/3; c1: C 1, D 2, B 3 -> up 0, down 2/2 -> -1;
    c2: F 1, A 2, B 3, ..., C 6 -> up 1/3, down 0 -> 1/3; c3: A 1, F 2, C 3 -> up 2/3, down 0 -> 2/3."""
    got = _scores(_toy(), SIGNED, "aucell", n_up=3, random_state=None)["s"].to_numpy()
    np.testing.assert_allclose(got, [2 / 3, -1.0, 1 / 3, 2 / 3], rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", [m for m in METHODS if m not in ("husi", "ucell")])
def test_signed_score_is_the_difference_of_its_parts_scored_together(method):
    """Every method but ucell (own form) and husi (refused): the column is score(up) - score(down), the
    parts scored as sets of their own in the same call, bit for bit."""
    a = _synthetic()
    sigs = _synthetic_signed(a)
    d = sigs["sig"]
    parts = {
        "sig[up]": [g for g, s in d.items() if s > 0],
        "sig[down]": [g for g, s in d.items() if s < 0],
        "plain": sigs["plain"],
    }
    got = _scores(a, sigs, method)
    ref = _scores(a, parts, method)
    np.testing.assert_array_equal(got["sig"].to_numpy(), (ref["sig[up]"] - ref["sig[down]"]).to_numpy())
    np.testing.assert_array_equal(got["plain"].to_numpy(), ref["plain"].to_numpy())


def test_scanpy_signed_equals_scanpy_score_genes_of_each_part():
    sc = pytest.importorskip("scanpy")
    a = _synthetic()
    d = _synthetic_signed(a)["sig"]
    got = _scores(a, {"sig": d}, "scanpy", random_state=0)["sig"].to_numpy()
    want = np.zeros(a.n_obs)
    for sign in (1, -1):
        b = a.copy()
        sc.tl.score_genes(b, [g for g, s in d.items() if s == sign], random_state=0, score_name="part")
        want += sign * b.obs["part"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("w_neg", [1.0, 0.5])
@pytest.mark.parametrize("missing_genes", ["impute", "skip"])
def test_ucell_signed_equals_pyucell(w_neg, missing_genes):
    """pyucell's own signed form: genes suffixed + / -, max(0, U(up) - w_neg U(down)); a missing gene per part."""
    pyucell = pytest.importorskip("pyucell")
    a = _synthetic()
    d = dict(_synthetic_signed(a)["sig"])
    d["NOT_A_GENE_UP"], d["NOT_A_GENE_DOWN"] = 1, -1
    got = _scores(a, {"sig": d}, "ucell", max_rank=100, w_neg=w_neg, missing_genes=missing_genes)["sig"].to_numpy()
    b = a.copy()
    pyucell.compute_ucell_scores(
        b,
        {"sig": [g + ("+" if s > 0 else "-") for g, s in d.items()]},
        max_rank=100,
        w_neg=w_neg,
        missing_genes=missing_genes,
        n_jobs=1,
    )
    want = b.obs["sig_UCell"].to_numpy()
    assert (want == 0).any() and (want > 0).any()  # the clip at 0 is exercised
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


# --------------------------------------------------------------------------- unsigned unchanged, uns, errors
@pytest.mark.parametrize("method", [m for m in METHODS if m not in ("husi", "ssgsea")])
def test_unsigned_columns_are_unchanged_by_a_signed_set(method):
    """Without a signed set the method's own plan runs (the code path of unsigned scoring is untouched). With
    one, an unsigned column is the same score: bit for bit for rank methods; for the linear control-gene
    scores to rounding (the weight table holds every part, so sums may run in another order; they do the
    same when any other set is added). ssgsea is left out: its normalisation spans every set scored
    together (a documented property of GSVA's ssgsea)."""
    a = _synthetic()
    sigs = _synthetic_signed(a)
    alone = _scores(a, {"plain": sigs["plain"]}, method)
    mixed = _scores(a, sigs, method)
    if method in ("expected", "scanpy", "seurat"):
        np.testing.assert_allclose(mixed["plain"].to_numpy(), alone["plain"].to_numpy(), rtol=0, atol=1e-14)
    else:
        np.testing.assert_array_equal(mixed["plain"].to_numpy(), alone["plain"].to_numpy())


def test_catalogue_signed_set_is_scored_signed_with_its_coverage(wu):
    d = get_signed_signature(HS)
    a = sasp_atlas.score(wu, [HS, "senmayo"], method="expected", copy=True)
    info = a.uns["sasp_scores"]["signatures"][HS]
    up = [g for g, s in d.items() if s > 0]
    down = [g for g, s in d.items() if s < 0]
    assert info["signed"] and info["n_genes_up"] == len(up) == 32 and info["n_genes_down"] == len(down) == 23
    assert info["genes_up_used"] == [g for g in up if g in wu.var_names]
    assert info["genes_down_used"] == [g for g in down if g in wu.var_names]
    assert info["genes_used"] == info["genes_up_used"] + info["genes_down_used"]
    assert info["n_genes"] == 55 and info["coverage"] == len(info["genes_used"]) / 55
    assert info["coverage_up"] == len(info["genes_up_used"]) / 32
    parts = sasp_atlas.score(
        wu,
        {"u": [g for g in up if g in wu.var_names], "d": [g for g in down if g in wu.var_names]},
        method="expected",
        copy=True,
    )
    p = parts.obsm["sasp_scores"]
    np.testing.assert_allclose(a.obsm["sasp_scores"][HS].to_numpy(), (p["u"] - p["d"]).to_numpy(), rtol=0, atol=1e-14)
    assert "signed" not in a.uns["sasp_scores"]["signatures"]["senmayo"]


def test_match_signatures_splits_catalogue_and_user_sets():
    var = pd.Index(list("ABCDEF"))
    got = match_signatures({"s": {"A": 1, "C": -1, "Z": -1}, "u": ["A", "B"]}, var)
    assert isinstance(got[0], SignedGeneSet) and not isinstance(got[1], SignedGeneSet)
    assert list(got[0].up.used) == ["A"] and list(got[0].down.used) == ["C"] and list(got[0].down.missing) == ["Z"]
    assert got[0].n_genes == 3 and list(got[0].used) == ["A", "C"]


def test_signed_errors_name_the_problem():
    a = _toy()
    with pytest.raises(ValueError, match=r"'s'.*down genes is in the data"):
        sasp_atlas.score(a, {"s": {"A": 1, "Z": -1}}, method="mean")
    with pytest.raises(ValueError, match="no down genes"):
        sasp_atlas.score(a, {"s": {"A": 1, "B": 1}}, method="mean")
    with pytest.raises(ValueError, match=r"\+1 \(up\) or -1"):
        sasp_atlas.score(a, {"s": {"A": 1, "C": 0}}, method="mean")
    with pytest.raises(InputError, match="husi.*does not score signed signatures"):
        sasp_atlas.score(a, SIGNED, method="husi")
    assert "signed" not in a.uns.get("sasp_scores", {})  # nothing written
    methods = list_methods().set_index("name")["signed"]
    assert methods["ucell"].startswith("max(0,") and methods["mean"] == "score(up) - score(down)"
    assert methods.isna()["husi"]


# --------------------------------------------------------------------------- dask, null, concordance
@pytest.mark.parametrize("method", ["expected", "ucell"])
def test_signed_dask_equals_in_memory_bit_for_bit(method):
    a = _synthetic()
    sigs = _synthetic_signed(a)
    ref = _scores(a, sigs, method)
    lazy = ad.AnnData(X=da.from_array(a.X, chunks=(150, -1), asarray=False), obs=a.obs.copy(), var=a.var[[]].copy())
    sasp_atlas.score(lazy, sigs, method=method, compute_kwargs={"scheduler": "synchronous"})
    assert lazy.uns["sasp_scores"]["params"]["n_chunks"] == 4
    np.testing.assert_array_equal(lazy.obsm["sasp_scores"].to_numpy(), ref.to_numpy())
    null_mem = celltype_null(a, sigs, method=method, n_null=10)
    null_dask = celltype_null(lazy, sigs, method=method, n_null=10, compute_kwargs={"scheduler": "synchronous"})
    pd.testing.assert_frame_equal(null_dask, null_mem, check_exact=False, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["expected", "mean", "ucell"])
def test_signed_null_observed_is_the_group_mean_and_random_sets_are_signed(method):
    a = _synthetic()
    sigs = _synthetic_signed(a)
    table = celltype_null(a, sigs, method=method, n_null=20)
    means = _scores(a, sigs, method).groupby(a.obs["cell_type"].to_numpy()).mean()
    obs = table.set_index(["signature", "cell_type"])["observed_mean"]
    for ct in means.index:
        assert abs(obs[("sig", ct)] - means.loc[ct, "sig"]) < 1e-12
    assert table.loc[table["signature"] == "sig", "null_sd"].gt(0).all()
    if method == "ucell":  # signed random sets are clipped at 0 as the signature is
        assert table.loc[table["signature"] == "sig", "null_mean"].ge(0).all()


def test_signed_null_refused_by_husi():
    a = _synthetic()
    with pytest.raises(InputError, match="does not score signed signatures"):
        celltype_null(a, {"sig": _synthetic_signed(a)["sig"]}, method="husi", n_null=2)


def test_expected_null_fast_path_equals_the_scored_random_sets():
    """The expected null's signed random sets: up and down parts drawn per part from the signature's generator
    (up first); their per-type means from gene means equal scoring the parts and taking up minus down."""
    from sasp_atlas.engines import MatrixContext
    from sasp_atlas.engines import null as null_module

    a = _synthetic()
    sigs = {"sig": _synthetic_signed(a)["sig"]}
    table = celltype_null(a, sigs, method="expected", n_null=15).set_index("cell_type")
    rng = null_module._signature_rng(0, "sig")
    matched = match_signatures(sigs, pd.Index(a.var_names))[0]
    gene_means = MatrixContext(a.X).scanpy_gene_means
    ups, downs = (null_module.draw_null_sets(gene_means, p.idx, n_null=15, n_bins=25, rng=rng) for p in matched.parts)
    parts = {}
    for j, (u, d) in enumerate(zip(ups, downs, strict=True)):
        parts[f"r{j}[up]"], parts[f"r{j}[down]"] = list(a.var_names[u]), list(a.var_names[d])
    scored = _scores(a, parts, "expected").groupby(a.obs["cell_type"].to_numpy()).mean()
    diffs = np.column_stack([scored[f"r{j}[up]"] - scored[f"r{j}[down]"] for j in range(15)])
    np.testing.assert_allclose(table.loc[scored.index, "null_mean"].to_numpy(), diffs.mean(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        table.loc[scored.index, "null_sd"].to_numpy(), diffs.std(axis=1, ddof=1), rtol=0, atol=1e-12
    )


def test_concordance_scores_signed_sets_signed():
    a = _synthetic()
    sigs = _synthetic_signed(a)
    conc = method_concordance(a, sigs, methods=("expected", "mean"))
    m = conc.means[(conc.means["signature"] == "sig") & (conc.means["method"] == "mean")].set_index("cell_type")
    want = _scores(a, sigs, "mean").groupby(a.obs["cell_type"].to_numpy()).mean()["sig"]
    np.testing.assert_allclose(m.loc[want.index, "mean"].to_numpy(), want.to_numpy(), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- the Hernandez-Segura set on ground truth
#: per-strain AUROC senescent vs proliferating of the signed Hernandez-Segura set on Marthandan 2016 (computed
#: when signed scoring was added; the issue hoped for >= 0.9 in every strain: HFF and IMR90 fall short)
MARTHANDAN_AUROC = {
    "expected": {"BJ": 1.0, "HFF": 0.75, "IMR90": 2 / 3, "MRC5": 1.0, "WI-38": 1.0},
    "ucell": {"BJ": 1.0, "HFF": 0.75, "IMR90": 4 / 9, "MRC5": 1.0, "WI-38": 1.0},
}


def _strain_aurocs(adata, scores: pd.Series) -> dict[str, float]:
    from scipy.stats import mannwhitneyu

    out = {}
    for unit, obs in adata.obs.groupby("unit", observed=True):
        s = scores[obs.index]
        sen, pro = s[obs["condition"] == "senescent"], s[obs["condition"] == "proliferating"]
        out[str(unit)] = float(mannwhitneyu(sen, pro).statistic / (len(sen) * len(pro)))
    return out


@pytest.fixture(scope="module")
def marthandan(mirror):
    if not (mirror / "marthandan2016_replicative_bulk").exists():
        pytest.skip("marthandan2016_replicative_bulk not in the shared data mirror")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sasp_atlas.load_ground_truth("marthandan2016_replicative_bulk")


@pytest.mark.parametrize("method", ["expected", "ucell"])
def test_hernandez_segura_signed_on_marthandan_strains(marthandan, method):
    a = sasp_atlas.score(marthandan, [HS], method=method, copy=True)
    info = a.uns["sasp_scores"]["signatures"][HS]
    assert (len(info["genes_up_used"]), len(info["genes_down_used"])) == (30, 22)
    got = _strain_aurocs(a, a.obsm["sasp_scores"][HS])
    assert got == pytest.approx(MARTHANDAN_AUROC[method], abs=1e-12)


@pytest.mark.xfail(
    strict=True,
    reason="issue 26 hoped for AUROC >= 0.9 in every Marthandan strain; the signed "
    "Hernandez-Segura set (expected) gives HFF 0.75 and IMR90 0.67",
)
def test_hernandez_segura_signed_detects_senescence_in_every_strain(marthandan):
    a = sasp_atlas.score(marthandan, [HS], method="expected", copy=True)
    assert min(_strain_aurocs(a, a.obsm["sasp_scores"][HS]).values()) >= 0.9
