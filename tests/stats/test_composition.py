"""SASP class composition with known answers: exact class scores and shares on constructed data, shares
that sum to 1 per cell type (per sample and pooled), scale-free shares across log bases, the patient as
the unit, and the table on real data."""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.stats import t as student_t

from sasp_atlas.genes import UNCLASSIFIED, sasp_classes
from sasp_atlas.stats.composition import (
    CLASS_SCORE_COLUMNS,
    NO_GENES_FLAG,
    SAMPLE_COMPOSITION_COLUMNS,
    sample_class_composition,
    sasp_class_scores,
)

# IL6 (interleukins), CXCL8 (CXC chemokines), MMP3 + MMP1 (MMPs), GAPDH (unclassified), ACTB2X (no SASP gene)
GENES = ["IL6", "CXCL8", "MMP3", "MMP1", "GAPDH", "ACTB2X"]


@pytest.fixture(scope="module")
def classes():
    return sasp_classes()


def _adata(linear: np.ndarray, cell_types, samples, *, value_type="raw_counts") -> ad.AnnData:
    """Cells x GENES with the given linear expression, log-encoded like the loader does for ``value_type``."""
    X = np.log1p(linear) if value_type == "raw_counts" else np.log2(linear + 1)
    obs = pd.DataFrame({"cell_type": cell_types, "sample": samples}, index=[f"c{i}" for i in range(len(linear))])
    a = ad.AnnData(X=sp.csr_matrix(X.astype(np.float32)), obs=obs, var=pd.DataFrame(index=GENES))
    a.uns["provenance"] = {"value_type": value_type, "cancer_type": "test cancer"}
    return a


def _known() -> tuple[np.ndarray, list[str], list[str]]:
    """Two samples; cell type A makes IL6 and CXCL8, type B MMP3; GAPDH everywhere (unclassified)."""
    rows, types, samples = [], [], []
    for s, scale in (("s1", 1.0), ("s2", 3.0)):
        for _ in range(4):
            rows.append([2.0 * scale, 6.0 * scale, 0.0, 0.0, 50.0, 7.0])
            types.append("A")
            samples.append(s)
        for _ in range(5):
            rows.append([0.0, 1.0, 4.0 * scale, 0.0, 50.0, 7.0])
            types.append("B")
            samples.append(s)
    return np.array(rows), types, samples


def test_constructed_shares_and_scores_are_exact(classes):
    linear, types, samples = _known()
    a = _adata(linear, types, samples)
    raw = sample_class_composition(a, classes=classes, dataset_id="toy")
    assert list(raw.columns) == SAMPLE_COMPOSITION_COLUMNS
    ps = raw.set_index(["sample", "cell_type", "sasp_class"])
    # type A, sample s2: IL6 = 6, CXCL8 = 18, MMP3 = 0 -> shares 6/24, 18/24, 0
    assert ps.at[("s2", "A", "interleukins"), "share"] == pytest.approx(6 / 24, abs=1e-6)
    assert ps.at[("s2", "A", "cxc_chemokines"), "share"] == pytest.approx(18 / 24, abs=1e-6)
    assert ps.at[("s2", "A", "mmps"), "share"] == 0.0
    # type B, sample s1: CXCL8 = 1, MMP3 = 4 -> 1/5, 4/5
    assert ps.at[("s1", "B", "mmps"), "share"] == pytest.approx(4 / 5, abs=1e-6)
    # class score: mean over present class genes of log1p; MMP class = (log1p(MMP3) + log1p(0)) / 2
    assert ps.at[("s2", "B", "mmps"), "class_score"] == pytest.approx(math.log1p(12.0) / 2, abs=1e-6)
    assert ps.at[("s1", "A", "interleukins"), "class_score"] == pytest.approx(math.log1p(2.0), abs=1e-6)
    assert ps.at[("s1", "A", "interleukins"), "class_expression"] == pytest.approx(2.0, abs=1e-5)
    # every cell of a type has the same class fraction: the delta-method variance of the share is 0
    assert ps.at[("s1", "A", "interleukins"), "share_var"] == pytest.approx(0.0, abs=1e-12)
    # A has all the IL6 of its tumour: AUROC 1 against B (balanced) and the rest
    assert ps.at[("s1", "A", "interleukins"), "balanced_auroc"] == 1.0
    assert ps.at[("s1", "B", "mmps"), "auroc"] == 1.0
    # genes: the class table's counts, present ones from the data
    assert ps.at[("s1", "A", "mmps"), "n_genes_present"] == 2
    assert ps.at[("s1", "A", "mmps"), "n_genes_class"] == int((classes["sasp_class"] == "mmps").sum())
    assert np.isnan(ps.at[("s1", "A", "igfbps"), "share"])  # no IGFBP in the data: no share


def test_shares_sum_to_one_per_sample_and_pooled(classes):
    linear, types, samples = _known()
    a = _adata(linear, types, samples)
    ps = sample_class_composition(a, classes=classes, dataset_id="toy")
    np.testing.assert_allclose(ps.groupby(["sample", "cell_type"])["share"].sum(), 1.0, atol=1e-12)
    pooled = sasp_class_scores(a, classes=classes, dataset_id="toy", per_sample=ps)
    assert list(pooled.columns) == CLASS_SCORE_COLUMNS
    np.testing.assert_allclose(pooled.groupby("cell_type")["share"].sum(), 1.0, atol=1e-12)


def test_pooled_share_is_the_equal_weight_mean_with_a_t_interval(classes):
    rng = np.random.default_rng(1)
    linear, types, samples = _known()
    linear = linear * rng.uniform(0.5, 1.5, size=linear.shape)  # shares now differ between the tumours
    a = _adata(linear, types, samples)
    ps = sample_class_composition(a, classes=classes, dataset_id="toy")
    row = sasp_class_scores(a, classes=classes, dataset_id="toy", per_sample=ps).set_index(["cell_type", "sasp_class"])
    per = ps[(ps["cell_type"] == "A") & (ps["sasp_class"] == "interleukins")]["share"].to_numpy()
    r = row.loc[("A", "interleukins")]
    assert r["share"] == pytest.approx(per.mean())
    half = student_t.ppf(0.975, 1) * per.std(ddof=1) / np.sqrt(2)
    assert r["share_ci_low"] == pytest.approx(max(per.mean() - half, 0.0))
    assert r["share_ci_high"] == pytest.approx(min(per.mean() + half, 1.0))
    assert r["ci_unit"] == "samples" and r["n_samples"] == 2 and r["evidence"] == "2 tumours"
    assert r["n_cells"] == 8 and r["cancer_type"] == "test cancer"
    assert r["balanced_effect"] == 1.0 and r["effect_n_samples"] == 2


def test_single_tumour_interval_is_over_cells(classes):
    linear, types, samples = _known()
    one = np.array(samples) == "s1"
    rng = np.random.default_rng(2)
    lin = linear[one] * rng.uniform(0.5, 1.5, size=linear[one].shape)
    a = _adata(lin, list(np.array(types)[one]), list(np.array(samples)[one]))
    ps = sample_class_composition(a, classes=classes, dataset_id="toy")
    r = sasp_class_scores(a, classes=classes, dataset_id="toy", per_sample=ps).set_index(["cell_type", "sasp_class"])
    e = ps.set_index(["cell_type", "sasp_class"]).loc[("A", "cxc_chemokines")]
    # delta-method variance of a ratio of means, written out
    cells = a[a.obs["cell_type"] == "A"]
    num = lin[np.asarray(a.obs["cell_type"] == "A"), 1]
    den = lin[np.asarray(a.obs["cell_type"] == "A")][:, [0, 1, 2, 3]].sum(axis=1)
    ratio = num.sum() / den.sum()
    var = ((num - ratio * den) ** 2).sum() / (len(num) * (len(num) - 1)) / den.mean() ** 2
    assert cells.n_obs == 4 and e["share_var"] == pytest.approx(var, rel=1e-5)
    row = r.loc[("A", "cxc_chemokines")]
    assert row["share_ci_low"] == pytest.approx(max(ratio - 1.96 * math.sqrt(var), 0), rel=1e-5)
    assert row["ci_unit"] == "cells (single sample)" and row["evidence"] == "single tumour"


def test_shares_do_not_depend_on_the_log_base(classes):
    linear, types, samples = _known()
    natural = sample_class_composition(_adata(linear, types, samples), classes=classes, dataset_id="toy")
    log2 = sample_class_composition(
        _adata(linear, types, samples, value_type="log2_tpm10_plus1"), classes=classes, dataset_id="toy"
    )
    np.testing.assert_allclose(natural["share"], log2["share"], atol=1e-6)
    np.testing.assert_allclose(natural["balanced_auroc"], log2["balanced_auroc"])  # ranks: scale-free
    assert not np.allclose(natural["class_score"].fillna(0), log2["class_score"].fillna(0))  # log scale differs


def test_unclassified_genes_enter_the_shares_only_on_request(classes):
    linear, types, samples = _known()
    a = _adata(linear, types, samples)
    ps = sample_class_composition(a, classes=classes, dataset_id="toy", include_unclassified=True)
    ps = ps.set_index(["sample", "cell_type", "sasp_class"])
    # type A, s1: IL6 2, CXCL8 6, GAPDH 50 -> 2/58, 6/58, 50/58
    assert ps.at[("s1", "A", "interleukins"), "share"] == pytest.approx(2 / 58, abs=1e-6)
    assert ps.at[("s1", "A", UNCLASSIFIED), "share"] == pytest.approx(50 / 58, abs=1e-6)
    default = sample_class_composition(a, classes=classes, dataset_id="toy")
    assert UNCLASSIFIED not in set(default["sasp_class"])


def test_gene_sets_restrict_the_genes(classes):
    linear, types, samples = _known()
    a = _adata(linear, types, samples)
    ps = sample_class_composition(a, classes=classes, dataset_id="toy", gene_sets=["in_reactome_sasp"])
    # Reactome "SASP" holds IL1A, IL6 (interleukins), CXCL8 and IGFBP7 among the classified genes
    assert set(ps["sasp_class"]) == {"interleukins", "cxc_chemokines", "igfbps"}
    assert (ps.loc[ps["sasp_class"] == "interleukins", "n_genes_class"] == 2).all()
    with pytest.raises(ValueError, match="gene_sets must name SASP set columns"):
        sample_class_composition(a, classes=classes, dataset_id="toy", gene_sets=["senmayo"])


def test_flags_and_bad_inputs(classes):
    linear, types, samples = _known()
    a = _adata(linear, types, samples)
    pooled = sasp_class_scores(a, classes=classes, dataset_id="toy").set_index(["cell_type", "sasp_class"])
    assert NO_GENES_FLAG in pooled.at[("A", "igfbps"), "flag"]
    assert "fewer than 10 cells" in pooled.at[("A", "mmps"), "flag"]
    del a.uns["provenance"]
    with pytest.raises(ValueError, match="pass log_base=np.e"):
        sample_class_composition(a, classes=classes, dataset_id="toy")
    same = sample_class_composition(a, classes=classes, dataset_id="toy", log_base=math.e)
    assert same["share"].notna().any()
    with pytest.raises(ValueError, match="no column 'patient'"):
        sample_class_composition(a, classes=classes, dataset_id="toy", log_base=math.e, sample_key="patient")


def test_wu_table_is_finite_with_evidence(wu, classes):
    table = sasp_class_scores(wu, classes=classes, dataset_id="wu2021_breast_tnbc_cid4465")
    assert list(table.columns) == CLASS_SCORE_COLUMNS
    assert set(table["cell_type"]) == set(wu.obs["cell_type"].astype(str))
    assert set(table["sasp_class"]) == set(classes["sasp_class"]) - {UNCLASSIFIED}
    for col in ("class_score", "share", "share_ci_low", "share_ci_high", "balanced_effect", "class_expression"):
        assert np.isfinite(table[col]).all(), col
    np.testing.assert_allclose(table.groupby("cell_type")["share"].sum(), 1.0, atol=1e-9)
    assert ((table["share_ci_low"] <= table["share"]) & (table["share"] <= table["share_ci_high"])).all()
    assert set(table["evidence"]) == {"single tumour"} and set(table["ci_unit"]) == {"cells (single sample)"}
    assert (table["n_genes_present"] <= table["n_genes_class"]).all() and (table["n_genes_present"] > 0).all()
    assert table["score_unit"].iloc[0] == "mean natural log1p of counts per 10,000"
    # cancer-associated fibroblasts make the TIMP/serpin and ECM classes above the other cell types
    caf = table[table["cell_type"] == "Fibroblast (CAF)"].set_index("sasp_class")
    assert caf.at["timps_serpins", "balanced_effect"] > 0.6 and caf.at["ecm_other_secreted", "balanced_effect"] > 0.6


def test_two_tumour_dataset_pools_samples(mgh, classes):
    ps = sample_class_composition(mgh, classes=classes, dataset_id="mgh")
    np.testing.assert_allclose(ps.groupby(["sample", "cell_type"])["share"].sum(), 1.0, atol=1e-9)
    table = sasp_class_scores(mgh, classes=classes, dataset_id="mgh", per_sample=ps)
    np.testing.assert_allclose(table.groupby("cell_type")["share"].sum(), 1.0, atol=1e-9)
    assert mgh.obs["sample"].nunique() == 2
    both = table[table["n_samples"] == 2]
    assert len(both) and set(both["evidence"]) == {"2 tumours"} and set(both["ci_unit"]) == {"samples"}
    assert table["score_unit"].iloc[0] == "mean log2(TPM/10 + 1)"
