"""Effect sizes and their pooling: Hanley-McNeil variances, the random-effects estimator against R
metafor, the permutation p against real permutations, BH q-values, evidence labels, and every
table the same for any seed (the meta-analysis: test_meta.py; Table 2: test_table2.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sasp_atlas.stats import bh_q, evidence_label, pool, sample_effects, stratified_permutation_p
from sasp_atlas.stats.effects import Z95, _newcombe_v, auroc_interval, auroc_variance

R_SCRIPT = Path(__file__).parent / "_r" / "metafor_pm.R"

#: fixed tables: heterogeneous AUROCs, homogeneous ones (tau^2 truncated at 0), and many small samples
TABLES = {
    "heterogeneous": ([0.62, 0.91, 0.55, 0.78, 0.70], [0.002, 0.004, 0.003, 0.0025, 0.005]),
    "homogeneous": ([0.60, 0.70, 0.65, 0.80], [0.01, 0.02, 0.015, 0.01]),
    "many": (list(np.linspace(0.45, 0.95, 12)), list(np.linspace(0.001, 0.02, 12))),
    # small k: three tumours separating perfectly (plain Knapp-Hartung: zero width), two and three tumours
    "perfect3": ([1.0, 1.0, 1.0], [0.00155, 0.0004, 0.0009]),
    "two": ([0.62, 0.81], [0.004, 0.006]),
    "three": ([0.55, 0.74, 0.93], [0.003, 0.002, 0.006]),
}


def test_newcombe_variance_is_hanley_mcneil_with_n_star():
    # with n1 = n0 = N* Newcombe's variance is Hanley & McNeil's (1982, eq. 2): A = 0.8, n1 = n0 = 25
    q1, q2 = 0.8 / 1.2, 2 * 0.64 / 1.8
    hanley_mcneil = (0.8 * 0.2 + 24 * (q1 - 0.64) + 24 * (q2 - 0.64)) / 625
    assert _newcombe_v(np.float64(0.8), 25.0, 25.0) == pytest.approx(hanley_mcneil, rel=1e-12)


def test_score_interval_solves_its_equation_and_keeps_width_at_the_edges():
    """Newcombe (2006) method 5: each bound solves (A - theta)^2 = z^2 V(theta); at A = 1 the interval
    is [lower, 1] with a lower bound below 1 set by the group sizes (MGH36 in the issue: 8 vs 33 cells,
    about 0.85), symmetric at A = 0, and inside [0, 1] everywhere."""
    a = np.array([1.0, 0.0, 0.5, 0.396, 0.8, 1.0])
    n1 = np.array([8, 8, 8, 8, 20, 400])
    n0 = np.array([33, 33, 33, 33, 30, 400])
    lo, hi = auroc_interval(a, n1, n0)
    assert lo[0] == pytest.approx(0.8457, abs=5e-4) and hi[0] == 1.0
    assert lo[1] == 0.0 and hi[1] == pytest.approx(1 - lo[0], abs=1e-12)
    assert ((lo >= 0) & (hi <= 1) & (hi - lo > 0)).all()
    for bound in (lo, hi):
        interior = (bound > 0) & (bound < 1)
        resid = (a - bound) ** 2 - Z95**2 * _newcombe_v(bound, n1, n0)
        assert np.abs(resid[interior]).max() < 1e-12
    assert lo[5] > 0.99  # 400 vs 400 at AUROC 1: a narrow but positive width
    # the variance that weighs a sample is the one its interval implies, never from a clip
    var = auroc_variance(a, n1, n0)
    assert np.allclose(var, ((hi - lo) / (2 * Z95)) ** 2) and (var > 0).all()
    # an AUROC of 0 never gets a smaller variance than an interior one of the same groups (the clip did)
    assert var[1] == pytest.approx(var[0]) and var[1] < var[3]
    # in large groups it tends to the Hanley-McNeil (Newcombe) variance at the estimate
    big = auroc_variance(0.7, 2000, 3000)
    assert big == pytest.approx(_newcombe_v(np.float64(0.7), 2000.0, 3000.0), rel=0.01)
    assert np.isnan(auroc_interval(np.nan, 5, 5)[0]) and np.isnan(auroc_interval(0.5, 5, 0)[1])


def test_pool_one_sample_is_wald_or_its_own_interval_and_none_is_nan():
    one = pool([0.7], [0.01])
    assert one["k"] == 1 and one["ci_low"] == pytest.approx(0.7 - 1.959964 * 0.1, abs=1e-6) and np.isnan(one["tau2"])
    assert np.isnan(pool([np.nan], [0.01])["estimate"]) and pool([], [])["k"] == 0
    assert pool([0.99], [0.01], bounds=(0, 1))["ci_high"] == 1.0
    lo, hi = auroc_interval(1.0, 8, 33)
    own = pool([1.0], auroc_variance(1.0, 8, 33)[None], intervals=([lo], [hi]), bounds=(0, 1))
    assert (own["ci_low"], own["ci_high"]) == (pytest.approx(float(lo)), 1.0)


def test_small_k_pool_never_has_zero_width_at_perfect_separation():
    v = auroc_variance([1.0, 1.0, 1.0], [8, 40, 30], [33, 760, 500])
    res = pool([1.0, 1.0, 1.0], v, bounds=(0, 1))
    assert res["estimate"] == 1.0 and res["ci_high"] == 1.0 and 0.5 < res["ci_low"] < 1.0
    assert "Knapp-Hartung (ad hoc)" in res["ci_method"] and "t(2)" in res["ci_method"]
    assert pool([1.0, 1.0, 1.0], v, small_k_test="knha")["ci_low"] == pytest.approx(1.0)  # why ad hoc is the default
    assert "normal" in pool(*TABLES["heterogeneous"])["ci_method"]  # k = 5: normal quantiles
    with pytest.raises(ValueError, match="small_k_test"):
        pool([0.5, 0.6], [0.01, 0.01], small_k_test="hksj")


def _metafor(tmp_path) -> pd.DataFrame:
    rows = [{"table": name, "yi": y, "vi": v} for name, (ys, vs) in TABLES.items() for y, v in zip(ys, vs)]
    data = tmp_path / "tables.csv"
    pd.DataFrame(rows).to_csv(data, index=False)
    proc = subprocess.run(["Rscript", str(R_SCRIPT), str(data)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "metafor" in proc.stderr:
        pytest.skip(f"R package metafor not installed (Debian r-cran-metafor): {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    return pd.read_csv(pd.io.common.StringIO(proc.stdout)).set_index("table")


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("Rscript") is None,
    reason="R not installed (Debian r-base-core, r-cran-metafor): .ci/run installs them for this comparison",
)
def test_pool_equals_metafor_paule_mandel_and_knapp_hartung(tmp_path):
    """Every table under normal intervals (metafor test = "z"), plain Knapp-Hartung ("knha") and its ad
    hoc form ("adhoc"), to 1e-6; and the default: ad hoc below SMALL_K samples, normal from SMALL_K on."""
    ref = _metafor(tmp_path)
    for name, (ys, vs) in TABLES.items():
        for test in ("z", "knha", "adhoc"):
            got = pool(ys, vs, small_k=0) if test == "z" else pool(ys, vs, small_k=10**6, small_k_test=test)
            want = ref[(ref.index == name) & (ref["test"] == test)].iloc[0]
            for key in ("estimate", "se", "ci_low", "ci_high", "tau2", "i2", "pi_low", "pi_high"):
                assert got[key] == pytest.approx(want[key], abs=1e-6), (name, test, key)
        default = pool(ys, vs)
        want = ref[(ref.index == name) & (ref["test"] == ("adhoc" if len(ys) < 5 else "z"))].iloc[0]
        assert default["ci_low"] == pytest.approx(want["ci_low"], abs=1e-6), name
    assert ref.loc[ref["test"] == "z"].loc["homogeneous", "tau2"] == 0  # truncated, like ours
    perfect = ref[ref.index == "perfect3"].set_index("test")
    assert perfect.loc["knha", "ci_low"] == perfect.loc["knha", "ci_high"]  # plain KH: zero width
    assert perfect.loc["adhoc", "ci_low"] < 1


def test_permutation_p_matches_real_permutations():
    """The normal approximation of the within-sample permutation distribution (exact mean and variance)
    agrees with 20,000 real permutations of the labels within each sample."""
    rng = np.random.default_rng(5)
    samples = np.repeat(["A", "B", "C"], [60, 80, 50])
    types = rng.choice(["x", "y", "z"], size=len(samples))
    values = rng.normal(0, 1, len(samples)) + 0.25 * (types == "x") + np.where(samples == "B", 1.0, 0.0)
    eff = sample_effects(pd.DataFrame({"s": values}), types, samples)
    x = eff[eff["cell_type"] == "x"]
    p = stratified_permutation_p(x["dev_sum"].to_numpy(), x["perm_var"].to_numpy())
    observed = x["dev_sum"].sum()
    hits = 0
    n_perm = 20_000
    groups = [np.flatnonzero(samples == s) for s in ("A", "B", "C")]
    for _ in range(n_perm):
        stat = 0.0
        for idx in groups:
            v = values[idx]
            lab = rng.permutation(types[idx])
            stat += v[lab == "x"].sum() - (lab == "x").sum() * v.mean()
        hits += stat >= observed
    assert p == pytest.approx(hits / n_perm, abs=0.01)


def test_bh_q_values():
    p = np.array([0.01, 0.04, 0.03, 0.2, np.nan])
    q = bh_q(p)
    # sorted p 0.01, 0.03, 0.04, 0.2 -> p m / rank = 0.04, 0.06, 0.0533, 0.2, then the running minimum from the top
    assert np.allclose(q[:4], [0.04, 0.16 / 3, 0.16 / 3, 0.2]) and np.isnan(q[4]) and (q[:4] >= p[:4]).all()


def test_evidence_labels():
    assert evidence_label(1) == "single tumour" and evidence_label(2) == "2 tumours"
    assert (
        evidence_label(3) == "replicated (3 tumours)" and evidence_label(1, unrecorded=True) == "samples not recorded"
    )


@pytest.mark.slow
def test_tables_do_not_move_with_the_seed(mgh, tmp_path):
    """Done-when of the statistics issue: evidence, p and q columns (and every interval) are identical
    for random_state 0 and 7 on real data; only the recorded seed differs."""
    from sasp_atlas.atlas import run_dataset

    a = run_dataset(
        "tirosh2016_oligodendroglioma_mgh53_mgh54",
        out_dir=tmp_path / "s0",
        with_embedding=False,
        random_state=0,
        signatures=["senmayo", "reactome_sasp"],
    ).celltype_scores
    b = run_dataset(
        "tirosh2016_oligodendroglioma_mgh53_mgh54",
        out_dir=tmp_path / "s7",
        with_embedding=False,
        random_state=7,
        signatures=["senmayo", "reactome_sasp"],
    ).celltype_scores
    assert (a["random_state"] == 0).all() and (b["random_state"] == 7).all()
    pd.testing.assert_frame_equal(a.drop(columns="random_state"), b.drop(columns="random_state"))
    assert {"evidence", "p_null", "q_null", "p_perm", "q_perm"} <= set(a.columns)
    nulled = a["p_null"].notna()  # hUSI (a model, not a gene set) has no random-gene-set null
    assert set(a.loc[~nulled, "signature"]) <= {"husi"} and nulled.any()
    assert (a.loc[nulled, "q_null"] >= a.loc[nulled, "p_null"]).all() and (a["q_perm"] >= a["p_perm"]).all()
    assert not a.loc[a["n_samples"] < 3, "evidence"].str.startswith("replicated").any()


def test_sample_effects_intervals_at_perfect_separation():
    """A type scoring above every other cell of its tumour: AUROC 1 with its score interval, and the
    balanced AUROC's interval the mean of the pairwise score intervals (its variance the implied one)."""
    values = np.r_[np.arange(10, 15), np.arange(0, 4), np.arange(4, 10)].astype(float)
    types = np.array(["x"] * 5 + ["y"] * 4 + ["z"] * 6)
    eff = sample_effects(pd.DataFrame({"s": values}), types, np.array(["S1"] * 15)).set_index("cell_type")
    x = eff.loc["x"]
    lo, hi = auroc_interval(1.0, 5, 10)
    assert x["auroc"] == 1.0 and x["auroc_ci_low"] == pytest.approx(float(lo)) and x["auroc_ci_high"] == 1.0
    pair_lo = auroc_interval([1.0, 1.0], [5, 5], [4, 6])[0]
    assert x["balanced_auroc"] == 1.0 and x["balanced_ci_low"] == pytest.approx(pair_lo.mean())
    assert x["balanced_var"] == pytest.approx(((1 - pair_lo.mean()) / (2 * Z95)) ** 2) and x["balanced_var"] > 0
    y = eff.loc["y"]
    assert y["auroc"] == 0.0 and y["auroc_ci_low"] == 0.0 and 0 < y["auroc_ci_high"] < 0.5
