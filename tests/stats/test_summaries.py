"""Statistics with known answers: a planted high cell type, samples as the unit, honest
single-sample intervals and evidence labels, AUROC and gene decomposition (the Table 2 verdicts: test_table2.py)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sasp_atlas.stats import (
    CELLTYPE_COLUMNS,
    auroc,
    celltype_scores,
    gene_decomposition,
    sample_celltype_summary,
)


def _scored(values, cell_types, samples, *, sig="planted", n_genes=10, n_used=10):
    """An AnnData holding given per-cell scores (as if scored) with cell types and samples."""
    n = len(values)
    a = ad.AnnData(
        X=sp.csr_matrix((n, 3), dtype=np.float32),
        obs=pd.DataFrame(
            {"cell_type": cell_types, "sample": samples, "cell_type_author": cell_types},
            index=[f"c{i}" for i in range(n)],
        ),
    )
    a.obsm["sasp_scores"] = pd.DataFrame({sig: np.asarray(values, float)}, index=a.obs_names)
    a.uns["sasp_scores"] = {
        "method": "scanpy",
        "signatures": {sig: {"genes_used": [f"g{i}" for i in range(n_used)], "genes_missing": [], "n_genes": n_genes}},
    }
    return a


def test_auroc_known_values():
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert auroc(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.5  # ties count 1/2
    assert auroc(np.array([2.0]), np.array([1.0, 3.0])) == 0.5
    assert np.isnan(auroc(np.array([]), np.array([1.0])))


def test_planted_high_cell_type_is_found_with_samples_as_unit():
    rng = np.random.default_rng(0)
    values, types, samples = [], [], []
    for s in range(4):
        for ct, shift in (("hot", 1.0), ("cold", 0.0), ("other", 0.0)):
            values += list(rng.normal(shift, 0.3, 30))
            types += [ct] * 30
            samples += [f"S{s}"] * 30
    t = celltype_scores(_scored(values, types, samples), dataset_id="d", cancer_type="c").set_index("cell_type")
    assert list(t.columns) == [c for c in CELLTYPE_COLUMNS if c != "cell_type"]
    hot, cold = t.loc["hot"], t.loc["cold"]
    assert hot["n_samples"] == 4 and hot["n_cells"] == 120 and hot["ci_unit"] == "samples (random effects)"
    assert hot["evidence"] == "replicated (4 tumours)"
    assert hot["effect_ci_low"] > 0.9 and cold["effect_ci_high"] < 0.5
    # cold vs hot ~ 0 and cold vs other ~ 0.5, weighted equally: ~ 0.25 whatever the types' sizes
    assert hot["balanced_ci_low"] > 0.9 and 0.15 < cold["balanced_effect"] < 0.35
    assert hot["ci_low"] < hot["mean"] < hot["ci_high"] and hot["ci_low"] > cold["ci_high"]
    assert hot["p_perm"] < 1e-10 and cold["p_perm"] > 0.5
    # equal sample sizes and no heterogeneity: the pooled mean is close to the mean of the four sample means
    vals = np.asarray(values)
    sample_means = [vals[(np.asarray(types) == "hot") & (np.asarray(samples) == f"S{s}")].mean() for s in range(4)]
    assert hot["mean"] == pytest.approx(np.mean(sample_means), abs=0.02)


def test_one_sample_interval_is_over_cells_and_flagged():
    rng = np.random.default_rng(1)
    values = list(rng.normal(1, 0.3, 40)) + list(rng.normal(0, 0.3, 40))
    t = celltype_scores(
        _scored(values, ["hot"] * 40 + ["cold"] * 40, ["S0"] * 80), dataset_id="d", cancer_type="c"
    ).set_index("cell_type")
    assert t.loc["hot", "ci_unit"] == "cells (single sample)" and t.loc["hot", "n_samples"] == 1
    assert t.loc["hot", "evidence"] == "single tumour" and pd.isna(t.loc["hot", "tau2"])
    assert t.loc["hot", "effect_ci_low"] > 0.9


def test_two_samples_versus_one_sample_give_different_units_not_more_confidence():
    """Doubling cells inside one sample must not narrow a between-sample interval: the unit is the sample."""
    rng = np.random.default_rng(2)
    # two samples whose 'hot' means disagree strongly: the between-sample interval must be wide
    vals = (
        list(rng.normal(2.0, 0.1, 200))
        + list(rng.normal(0, 0.1, 200))
        + list(rng.normal(0.2, 0.1, 200))
        + list(rng.normal(0, 0.1, 200))
    )
    types = (["hot"] * 200 + ["rest"] * 200) * 2
    samples = ["A"] * 400 + ["B"] * 400
    two = (
        celltype_scores(_scored(vals, types, samples), dataset_id="d", cancer_type="c")
        .set_index("cell_type")
        .loc["hot"]
    )
    assert two["ci_unit"] == "samples (random effects)" and two["n_samples"] == 2 and two["evidence"] == "2 tumours"
    assert two["ci_high"] - two["ci_low"] > 1.0  # spans the two sample means (0.2 .. 2.0), not +-0.01 of 400 cells
    pooled_cells = np.asarray(vals)[np.asarray(types) == "hot"]
    naive_se = pooled_cells.std() / np.sqrt(len(pooled_cells))
    assert two["ci_high"] - two["ci_low"] > 20 * naive_se


def test_unrecorded_samples_are_labelled_and_undefined_effects_not_counted():
    """A dataset without sample ids is one pseudo-sample ('samples not recorded'); a sample where the
    type is alone (no other cells: AUROC undefined) does not count in n_samples."""
    rng = np.random.default_rng(3)
    vals = list(rng.normal(1, 0.2, 20)) + list(rng.normal(0, 0.2, 20))
    t = celltype_scores(
        _scored(vals, ["hot"] * 20 + ["rest"] * 20, ["d:unrecorded"] * 40), dataset_id="d", cancer_type="c"
    ).set_index("cell_type")
    assert t.loc["hot", "evidence"] == "samples not recorded" and t.loc["hot", "n_samples"] == 1
    vals = list(rng.normal(1, 0.2, 30)) + list(rng.normal(0, 0.2, 30)) + list(rng.normal(1, 0.2, 10))
    types = ["hot"] * 30 + ["rest"] * 30 + ["hot"] * 10
    samples = ["A"] * 60 + ["B"] * 10  # in B only hot cells: no comparison possible
    t = celltype_scores(_scored(vals, types, samples), dataset_id="d", cancer_type="c").set_index("cell_type")
    assert t.loc["hot", "n_samples"] == 1 and t.loc["hot", "evidence"] == "single tumour"


def test_q_values_are_bh_and_never_below_p():
    from sasp_atlas.stats import add_q_values

    table = pd.DataFrame({"p_null": [0.001, 0.01, 0.02, 0.5, np.nan], "p_perm": [0.04, 0.03, 0.2, 0.9, 0.01]})
    q = add_q_values(table)
    assert (q["q_null"].dropna() >= q["p_null"].dropna()).all() and (q["q_perm"] >= q["p_perm"]).all()
    assert q["q_null"].iloc[0] == pytest.approx(0.004) and np.isnan(q["q_null"].iloc[4])  # 0.001 * 4 / 1


def test_low_coverage_and_few_cells_are_flagged():
    values = list(np.linspace(0, 1, 5)) + list(np.linspace(0, 1, 50))
    t = celltype_scores(
        _scored(values, ["tiny"] * 5 + ["big"] * 50, ["S0"] * 55, n_genes=20, n_used=4), dataset_id="d", cancer_type="c"
    ).set_index("cell_type")
    assert "fewer than 10 cells" in t.loc["tiny", "flag"]
    assert "low coverage" in t.loc["big", "flag"] and bool(t.loc["big", "low_coverage"])


def test_sample_summary_has_one_row_per_sample_cell_type_signature():
    values = [1.0, 2.0, 3.0, 0.0, 5.0, 6.0]
    a = _scored(values, ["x", "x", "y", "y", "x", "y"], ["A", "A", "A", "A", "B", "B"])
    s = sample_celltype_summary(a, dataset_id="d").set_index(["sample", "cell_type"])
    assert s.loc[("A", "x"), "n_cells"] == 2 and s.loc[("A", "x"), "mean"] == 1.5
    assert s.loc[("A", "x"), "auroc_vs_rest"] == 0.5  # x = {1, 2} vs y = {3, 0}: 2 of 4 pairs
    assert s.loc[("B", "y"), "auroc_vs_rest"] == 1.0


def test_gene_decomposition_known_means():
    X = sp.csr_matrix(np.array([[2.0, 0.0, 1.0], [4.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32))
    a = ad.AnnData(
        X=X,
        obs=pd.DataFrame({"cell_type": ["a", "a", "b", "b"]}, index=list("wxyz")),
        var=pd.DataFrame(index=["IL6", "CXCL8", "MMP1"]),
    )
    g = gene_decomposition(a, ["IL6", "CXCL8", "ABSENT"], dataset_id="d", signature="s").set_index(
        ["cell_type", "gene"]
    )
    assert set(g.index.get_level_values("gene")) == {"IL6", "CXCL8"}
    assert g.loc[("a", "IL6"), "mean_expression"] == 3.0 and g.loc[("a", "IL6"), "frac_expressing"] == 1.0
    assert g.loc[("a", "IL6"), "delta"] == 3.0 and g.loc[("b", "CXCL8"), "delta"] == 2.0
    assert g.loc[("a", "CXCL8"), "frac_expressing"] == 0.0
