"""The validity statistic on constructed ground truth with known answers: per-unit AUROCs with score
intervals (perfect separation kept, never dropped), pooling over units and data sets, control classes
never pooled, the labels and their thresholds, and out-of-sample pooling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sasp_atlas.stats.effects import auroc_interval
from sasp_atlas.stats.validity import DETECTS_AUROC, pool_validity, signature_validity, unit_aurocs, validity_label


def _bulk():
    """5 strains x (3 senescent + 3 proliferating + 2 quiescent) samples. ``up`` separates perfectly in
    every strain, ``down`` is lower in senescence everywhere, ``flat`` carries no signal."""
    rows = []
    rng = np.random.default_rng(0)
    for s in range(5):
        for cond, n in (("senescent", 3), ("proliferating", 3), ("quiescent", 2)):
            for i in range(n):
                up = 10 + i if cond == "senescent" else i
                rows.append({"unit": f"strain{s}", "condition": cond, "up": up, "down": -up, "flat": rng.normal()})
    obs = pd.DataFrame(rows)
    return obs[["up", "down", "flat"]], obs[["unit", "condition"]]


def test_unit_aurocs_keep_perfect_separations_with_their_interval():
    scores, obs = _bulk()
    units = unit_aurocs(scores["up"], obs["condition"], obs["unit"])
    assert len(units) == 5 and (units["auroc"] == 1.0).all() and (units["design"] == "within units").all()
    lo, _ = auroc_interval(1.0, 3, 3)
    assert np.allclose(units["ci_low"], lo) and (units["ci_high"] == 1.0).all() and (units["var"] > 0).all()


def test_units_holding_one_condition_are_compared_as_units():
    # replicate samples of one condition each (the hepatocyte case): the replicates' means are the observations
    obs = pd.DataFrame(
        {"unit": ["A"] * 4 + ["B"] * 4 + ["C"] * 4 + ["D"] * 4, "condition": ["senescent"] * 8 + ["control"] * 8}
    )
    scores = np.r_[np.full(4, 3.0), np.full(4, 2.5), np.full(4, 1.0), np.full(4, 0.0)]
    units = unit_aurocs(scores, obs["condition"], obs["unit"], control="control")
    assert len(units) == 1 and units.iloc[0]["design"] == "units compared"
    assert (units.iloc[0]["n_senescent"], units.iloc[0]["n_control"], units.iloc[0]["auroc"]) == (2, 2, 1.0)
    assert units.iloc[0]["ci_low"] < 0.5  # two vs two replicates support little
    # such a design cannot conclude even at perfect separation: shown, but it never enters a label
    table = signature_validity(pd.DataFrame({"s": scores}), obs, benchmark="mice", method="mean", controls=("control",))
    row = table.iloc[0]
    assert row["auroc"] == 1.0 and not row["informative"] and row["label"] == "untested"
    assert "too few units to conclude" in row["flag"]


def test_signature_validity_labels_and_controls_never_pooled():
    scores, obs = _bulk()
    table = signature_validity(
        scores,
        obs,
        benchmark="toy_bulk",
        method="mean",
        controls=("proliferating", "quiescent"),
        coverage={"up": (10, 10), "down": (10, 10), "flat": (1, 10)},
        min_coverage_ok=lambda used, total: used / total >= 0.5,
        training_overlap={"up": True},
    )
    t = table.set_index(["signature", "control"])
    assert set(t.index.get_level_values("control")) == {"proliferating", "quiescent"}
    up = t.loc[("up", "proliferating")]
    assert up["n_units"] == 5 and up["auroc"] == 1.0 and up["ci_low"] < 1.0 and up["label"] == "detects"
    assert up["training_overlap"] and "not out of sample" in up["flag"] and "perfect separation in 5 of 5" in up["flag"]
    assert "normal quantiles" in up["ci_method"]  # 5 units: from SMALL_K on, normal quantiles
    down = t.loc[("down", "proliferating")]
    assert down["auroc"] == 0.0 and down["ci_high"] < 0.5 and down["label"] == "inverse"
    assert t.loc[("flat", "proliferating"), "label"] == "untested"  # 10 % of its genes


def test_validity_label_thresholds():
    assert validity_label(0.9, 0.6, 1.0) == "detects"
    assert validity_label(DETECTS_AUROC - 0.01, 0.55, 0.8) == "weak"
    assert validity_label(0.6, 0.45, 0.75) == "no signal"
    assert validity_label(0.2, 0.05, 0.45) == "inverse"
    assert validity_label(float("nan"), float("nan"), float("nan")) == "untested"


def test_pool_validity_out_of_sample():
    # an in vitro (proliferating) and an in vivo (untreated control) data set pool as "non-senescent";
    # a quiescent comparison never joins them
    rows = [
        {
            "signature": "s",
            "method": "m",
            "control": c,
            "benchmark": b,
            "n_units": 5,
            "auroc": a,
            "ci_low": lo,
            "ci_high": hi,
            "training_overlap": ov,
            "label": "detects",
        }
        for b, c, a, lo, hi, ov in (
            ("trained_on", "proliferating", 0.98, 0.9, 1.0, True),
            ("new", "control", 0.62, 0.52, 0.72, False),
            ("new", "quiescent", 0.4, 0.3, 0.5, False),
        )
    ]
    both = pool_validity(pd.DataFrame(rows)).set_index("control")
    assert set(both.index) == {"non-senescent", "quiescent"} and both.loc["quiescent", "n_benchmarks"] == 1
    assert "one data set" in both.loc["quiescent", "ci_method"]
    pooled = both.loc["non-senescent"]
    assert (
        pooled["n_benchmarks"] == 2 and pooled["training_overlap"] and pooled["overlapping_benchmarks"] == "trained_on"
    )
    assert pooled["n_benchmarks_out_of_sample"] == 1 and pooled["auroc_out_of_sample"] == pytest.approx(0.62)
    assert pooled["label"] == "weak" and pooled["label_basis"] == "out of sample"
    assert "t(1)" in pooled["ci_method"]  # two data sets: Knapp-Hartung with t(1)
    only = pool_validity(pd.DataFrame(rows[:1])).iloc[0]
    assert only["label"] == "detects" and only["label_basis"].startswith("training data only")


def test_score_association_within_tumours_pooled_on_fisher_z():
    """Constructed: in every tumour a signature tracks the reference exactly (rho 1 -> clipped), another
    is its mirror image (rho -1), a third is independent; pooled per cell type with the tumour as unit."""
    from scipy.stats import spearmanr

    from sasp_atlas.stats.association import sample_associations, score_association

    rng = np.random.default_rng(1)
    n = 40
    ref = rng.normal(size=3 * n)
    scores = pd.DataFrame({"same": 2 * ref + 1, "mirror": -ref, "noise": rng.normal(size=3 * n)})
    samples = np.repeat(["T1", "T2", "T3"], n)
    groups = np.tile(np.repeat(["CAF", "T cell"], n // 2), 3)
    per = sample_associations(scores, ref, groups, samples)
    assert len(per) == 3 * 2 * 3 and (per["n_cells"] == n // 2).all()
    one = per[(per["sample"] == "T2") & (per["cell_type"] == "CAF") & (per["signature"] == "noise")].iloc[0]
    m = (samples == "T2") & (groups == "CAF")
    assert one["rho"] == pytest.approx(spearmanr(scores["noise"][m], ref[m]).statistic, abs=1e-12)
    pooled = score_association(per).set_index(["cell_type", "signature"])
    assert pooled.loc[("CAF", "same"), "rho"] > 0.99 and pooled.loc[("CAF", "mirror"), "rho"] < -0.99
    noise = pooled.loc[("CAF", "noise")]
    assert noise["ci_low"] < noise["rho"] < noise["ci_high"] and noise["n_samples"] == 3
    assert "t(2)" in noise["ci_method"] and noise["evidence"] == "replicated (3 tumours)"
