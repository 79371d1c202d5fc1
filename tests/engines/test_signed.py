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
from engine_cases import (
    SIGNED,
    quiet_scores,
    signed_synthetic,
    signed_synthetic_sets,
    signed_toy,
)

import sasp_atlas
from sasp_atlas.data import InputError
from sasp_atlas.engines import METHODS, celltype_null, list_methods, method_concordance
from sasp_atlas.genes import SignedGeneSet, get_signed_signature, match_signatures

HS = "hernandez_segura2017_core_senescence"


@pytest.mark.parametrize("method", ["expected", "scanpy"])
def test_control_gene_scores_by_hand(method):
    """n_bins=2: gene means D .75 < E 1 < C 1.25 < A = B 1.5 < F 2 rank 1, 2, 3, 4, 4, 6; // 6 puts F alone in bin 1.
    ctrl_size=50 takes every other gene of bin 0: the up part's controls are C, D, E, the down part's A, B, D, E.
    score = [mean(A,B) - mean(C,D,E)] - [C - mean(A,B,D,E)]:
    c0 (3 - 4/3) - (1 - 9/4) = 35/12; c1 (1/2 - 5/3) - (3 - 3/4) = -41/12; c2 (1 - 2/3) - (0 - 1) = 4/3;
    c3 (3/2 - 1/3) - (1 - 3/4) = 11/12."""
    a = signed_toy()
    sasp_atlas.score(a, SIGNED, method=method, n_bins=2, ctrl_size=50)
    np.testing.assert_allclose(
        a.obsm["sasp_scores"]["s"].to_numpy(),
        [35 / 12, -41 / 12, 4 / 3, 11 / 12],
        rtol=0,
        atol=1e-6 if method == "scanpy" else 1e-12,
    )
    info = a.uns["sasp_scores"]["signatures"]["s"]
    assert (info["n_control_genes_up"], info["n_control_genes_down"], info["n_control_genes"]) == (3, 4, 7)


@pytest.mark.parametrize("method", [m for m in METHODS if m not in ("husi", "ucell")])
def test_signed_score_is_the_difference_of_its_parts_scored_together(method):
    """Every method but ucell (own form) and husi (refused): the column is score(up) - score(down), the
    parts scored as sets of their own in the same call, bit for bit."""
    a = signed_synthetic()
    sigs = signed_synthetic_sets(a)
    d = sigs["sig"]
    parts = {
        "sig[up]": [g for g, s in d.items() if s > 0],
        "sig[down]": [g for g, s in d.items() if s < 0],
        "plain": sigs["plain"],
    }
    got = quiet_scores(a, sigs, method)
    ref = quiet_scores(a, parts, method)
    np.testing.assert_array_equal(got["sig"].to_numpy(), (ref["sig[up]"] - ref["sig[down]"]).to_numpy())
    np.testing.assert_array_equal(got["plain"].to_numpy(), ref["plain"].to_numpy())


# --------------------------------------------------------------------------- unsigned unchanged, uns, errors
@pytest.mark.parametrize("method", [m for m in METHODS if m not in ("husi", "ssgsea")])
def test_unsigned_columns_are_unchanged_by_a_signed_set(method):
    """Without a signed set the method's own plan runs (the code path of unsigned scoring is untouched). With
    one, an unsigned column is the same score: bit for bit for rank methods; for the linear control-gene
    scores to rounding (the weight table holds every part, so sums may run in another order; they do the
    same when any other set is added). ssgsea is left out: its normalisation spans every set scored
    together (a documented property of GSVA's ssgsea)."""
    a = signed_synthetic()
    sigs = signed_synthetic_sets(a)
    alone = quiet_scores(a, {"plain": sigs["plain"]}, method)
    mixed = quiet_scores(a, sigs, method)
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
    a = signed_toy()
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
    a = signed_synthetic()
    sigs = signed_synthetic_sets(a)
    ref = quiet_scores(a, sigs, method)
    lazy = ad.AnnData(X=da.from_array(a.X, chunks=(150, -1), asarray=False), obs=a.obs.copy(), var=a.var[[]].copy())
    sasp_atlas.score(lazy, sigs, method=method, compute_kwargs={"scheduler": "synchronous"})
    assert lazy.uns["sasp_scores"]["params"]["n_chunks"] == 4
    np.testing.assert_array_equal(lazy.obsm["sasp_scores"].to_numpy(), ref.to_numpy())
    null_mem = celltype_null(a, sigs, method=method, n_null=10)
    null_dask = celltype_null(lazy, sigs, method=method, n_null=10, compute_kwargs={"scheduler": "synchronous"})
    pd.testing.assert_frame_equal(null_dask, null_mem, check_exact=False, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["expected", "mean", "ucell"])
def test_signed_null_observed_is_the_group_mean_and_random_sets_are_signed(method):
    a = signed_synthetic()
    sigs = signed_synthetic_sets(a)
    table = celltype_null(a, sigs, method=method, n_null=20)
    means = quiet_scores(a, sigs, method).groupby(a.obs["cell_type"].to_numpy()).mean()
    obs = table.set_index(["signature", "cell_type"])["observed_mean"]
    for ct in means.index:
        assert abs(obs[("sig", ct)] - means.loc[ct, "sig"]) < 1e-12
    assert table.loc[table["signature"] == "sig", "null_sd"].gt(0).all()
    if method == "ucell":  # signed random sets are clipped at 0 as the signature is
        assert table.loc[table["signature"] == "sig", "null_mean"].ge(0).all()


def test_signed_null_refused_by_husi():
    a = signed_synthetic()
    with pytest.raises(InputError, match="does not score signed signatures"):
        celltype_null(a, {"sig": signed_synthetic_sets(a)["sig"]}, method="husi", n_null=2)


def test_expected_null_fast_path_equals_the_scored_random_sets():
    """The expected null's signed random sets: up and down parts drawn per part from the signature's generator
    (up first); their per-type means from gene means equal scoring the parts and taking up minus down."""
    from sasp_atlas.engines import MatrixContext
    from sasp_atlas.engines import null as null_module

    a = signed_synthetic()
    sigs = {"sig": signed_synthetic_sets(a)["sig"]}
    table = celltype_null(a, sigs, method="expected", n_null=15).set_index("cell_type")
    rng = null_module._signature_rng(0, "sig")
    matched = match_signatures(sigs, pd.Index(a.var_names))[0]
    gene_means = MatrixContext(a.X).scanpy_gene_means
    ups, downs = (null_module.draw_null_sets(gene_means, p.idx, n_null=15, n_bins=25, rng=rng) for p in matched.parts)
    parts = {}
    for j, (u, d) in enumerate(zip(ups, downs, strict=True)):
        parts[f"r{j}[up]"], parts[f"r{j}[down]"] = list(a.var_names[u]), list(a.var_names[d])
    scored = quiet_scores(a, parts, "expected").groupby(a.obs["cell_type"].to_numpy()).mean()
    diffs = np.column_stack([scored[f"r{j}[up]"] - scored[f"r{j}[down]"] for j in range(15)])
    np.testing.assert_allclose(table.loc[scored.index, "null_mean"].to_numpy(), diffs.mean(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        table.loc[scored.index, "null_sd"].to_numpy(), diffs.std(axis=1, ddof=1), rtol=0, atol=1e-12
    )


def test_concordance_scores_signed_sets_signed():
    a = signed_synthetic()
    sigs = signed_synthetic_sets(a)
    conc = method_concordance(a, sigs, methods=("expected", "mean"))
    m = conc.means[(conc.means["signature"] == "sig") & (conc.means["method"] == "mean")].set_index("cell_type")
    want = quiet_scores(a, sigs, "mean").groupby(a.obs["cell_type"].to_numpy()).mean()["sig"]
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
