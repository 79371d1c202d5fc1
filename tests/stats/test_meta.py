"""The cross-dataset meta-analysis (``stats.meta``): on constructed tables, shared tumours counted once
whatever the cell type, and perfect separation, coverage and unrecorded samples flagged; on the real
oligodendroglioma entries, one copy per tumour (MGH53 and MGH54 from the fuller file for every cell type),
perfect separation said in words with a lower bound below 1, and two subsets of one study counted as one
cohort."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sasp_atlas.atlas import collect_tables, run_dataset
from sasp_atlas.stats import meta_analysis
from sasp_atlas.stats.effects import auroc_interval, auroc_variance
from sasp_atlas.stats.meta import dedupe_overlapping_samples

ODG = ["tirosh2016_oligodendroglioma_mgh53_mgh54", "tirosh2016_oligodendroglioma"]
SIGNATURES = ["senmayo", "tang_senescence_tp53_targets_up"]


@pytest.fixture(scope="module")
def odg_tables(mgh, tirosh, tmp_path_factory):
    out = tmp_path_factory.mktemp("odg")
    for dataset_id, adata in (
        ("tirosh2016_oligodendroglioma_mgh53_mgh54", mgh),
        ("tirosh2016_oligodendroglioma", tirosh),
    ):
        run_dataset(
            dataset_id,
            adata=adata.copy(),
            signatures=SIGNATURES,
            out_dir=out,
            with_embedding=False,
            n_null=20,
            compare_methods=(),
        )
    return collect_tables(out, ODG)


@pytest.mark.slow
def test_mgh53_mgh54_come_from_the_fuller_file_for_every_cell_type(odg_tables):
    samples = odg_tables["sample_celltype_scores"]
    totals = samples[samples["signature"] == "senmayo"].groupby(["sample", "dataset"])["n_cells"].sum()
    for tumour in ("MGH53", "MGH54"):
        assert (
            totals.loc[(tumour, "tirosh2016_oligodendroglioma_mgh53_mgh54")]
            > totals.loc[(tumour, "tirosh2016_oligodendroglioma")]
        )
    meta = odg_tables["meta_analysis"]
    oligo = meta[meta["cell_type"] == "Oligodendrocyte"].set_index("signature")
    # the downsampled copy's oligodendrocytes (the issue: 6 vs 6 cells, AUROC 0 against 5 macrophages) are gone
    assert (oligo["datasets"] == "tirosh2016_oligodendroglioma_mgh53_mgh54").all()
    assert oligo.loc["senmayo", "estimate"] == pytest.approx(0.373, abs=0.01)
    # every pooled row counts each tumour once: never more units than distinct tumours of the two files
    n_tumours = samples.loc[~samples["sample"].str.endswith(":unrecorded"), "sample"].nunique()
    assert (meta["k_samples"] <= n_tumours).all()


@pytest.mark.slow
def test_perfect_separation_reads_as_such_and_one_study_is_one_cohort(odg_tables):
    meta = odg_tables["meta_analysis"]
    row = meta[(meta["cell_type"] == "Macrophage") & (meta["signature"] == "senmayo")].iloc[0]
    assert row["estimate"] == 1.0 and row["ci_low"] < 1.0 and row["ci_high"] == 1.0
    assert row["k_perfect"] == row["k_samples"] == 3 and row["min_unit_ci_low"] < 0.9
    assert f"perfect separation in 3 of 3 tumours (lowest per-tumour bound {row['min_unit_ci_low']:.2f})" in row["flag"]
    assert "Knapp-Hartung (ad hoc) with t(2)" in row["ci_method"]
    # SenMayo at 46 % coverage here: the flag travels with the pooled row
    assert row["low_coverage"] and "low coverage: score not comparable" in row["flag"]
    # two subsets of GEO GSE70630: one cohort, never "across"
    assert (meta["k_cohorts"] == 1).all() and (meta["cohorts"] == "GEO GSE70630").all()
    assert not meta["evidence"].str.contains("across").any()
    edge = meta["estimate"].isin([0.0, 1.0])
    assert (meta.loc[edge, "ci_high"] > meta.loc[edge, "ci_low"]).all()
    assert np.isfinite(meta["ci_low"]).all()
    assert isinstance(odg_tables["celltype_scores"], pd.DataFrame)


def test_meta_analysis_counts_shared_tumours_once():
    rows = []
    for dataset, samples in (("a", ["S1", "S2"]), ("b", ["S2", "S3", "S4"]), ("c", ["T1"])):
        for s in samples:
            rows.append(
                {
                    "dataset": dataset,
                    "sample": s,
                    "cell_type": "Macrophage",
                    "signature": "senmayo",
                    "n_cells": 100 if dataset == "b" else 10,
                    "balanced_auroc": 0.8,
                    "balanced_var": 0.001,
                }
            )
    samples = pd.DataFrame(rows)
    cancers = {"a": "glioma", "b": "glioma", "c": "breast"}
    one_study = {"a": "GEO GSE1", "b": "GEO GSE1", "c": "GEO GSE2"}
    meta = meta_analysis(samples, cancers, {"a": ["b"], "b": ["a"]}, cohorts=one_study).set_index("cancer_type")
    glioma = meta.loc["glioma"]
    assert glioma["k_samples"] == 4 and glioma["k_tumours"] == 4 and glioma["k_datasets"] == 2  # S2 once (from b)
    # two subsets of one study are one cohort: replicated, never "across" anything
    assert glioma["k_cohorts"] == 1 and glioma["evidence"] == "replicated (4 tumours, 1 cohort)"
    assert "Knapp-Hartung (ad hoc) with t(3)" in glioma["ci_method"] and glioma["ci_high"] > glioma["ci_low"]
    assert meta.loc["breast", "evidence"] == "single tumour"
    two_studies = meta_analysis(samples, cancers, {"a": ["b"], "b": ["a"]}).set_index("cancer_type")
    assert two_studies.loc["glioma", "evidence"] == "replicated across cohorts (4 tumours, 2 cohorts)"
    # without a declared overlap the same sample id in two datasets counts twice
    assert meta_analysis(samples, cancers).set_index("cancer_type").loc["glioma", "k_samples"] == 5


def test_one_copy_per_tumour_never_depends_on_the_cell_type():
    """The issue's MGH54 case: the 11-cell copy has 6 oligodendrocytes, the 800-cell copy 6 too (a tie
    for that type) but many more macrophages: every row of MGH54 comes from the fuller file."""
    rows = []
    for dataset, counts, auc in (
        ("small", {"Oligodendrocyte": 6, "Macrophage": 5}, 0.0),
        ("full", {"Oligodendrocyte": 6, "Macrophage": 300, "Malignant cell": 494}, 0.4),
    ):
        for ct, n in counts.items():
            for sig in ("senmayo", "tang"):
                rows.append(
                    {
                        "dataset": dataset,
                        "sample": "MGH54",
                        "cell_type": ct,
                        "signature": sig,
                        "n_cells": n,
                        "balanced_auroc": auc,
                        "balanced_var": 0.01,
                    }
                )
    samples = pd.DataFrame(rows)
    kept = dedupe_overlapping_samples(samples, {"small": ["full"], "full": ["small"]})
    assert set(kept["dataset"]) == {"full"} and len(kept) == 6
    # a tie over all cell types goes to the dataset id that sorts first, for every row alike
    tie = samples.assign(n_cells=5)
    assert set(dedupe_overlapping_samples(tie, {"small": ["full"], "full": ["small"]})["dataset"]) == {"full"}


def test_meta_analysis_flags_perfect_separation_coverage_and_unrecorded_samples():
    var = auroc_variance([1.0, 1.0, 1.0], [8, 40, 30], [33, 760, 500])
    lo, hi = auroc_interval([1.0, 1.0, 1.0], [8, 40, 30], [33, 760, 500])
    rows = [
        {
            "dataset": d,
            "sample": s,
            "cell_type": "Macrophage",
            "signature": "senmayo",
            "n_cells": 30,
            "balanced_auroc": 1.0,
            "balanced_var": var[i],
            "balanced_ci_low": lo[i],
            "balanced_ci_high": hi[i],
        }
        for i, (d, s) in enumerate((("x", "MGH36"), ("x", "MGH53"), ("y", "MGH60")))
    ]
    rows.append(
        {
            "dataset": "ref",
            "sample": "ref:unrecorded",
            "cell_type": "Macrophage",
            "signature": "senmayo",
            "n_cells": 20,
            "balanced_auroc": 0.9,
            "balanced_var": 0.003,
            "balanced_ci_low": 0.8,
            "balanced_ci_high": 0.97,
        }
    )
    celltype = pd.DataFrame(
        [
            {
                "dataset": d,
                "cell_type": ct,
                "cell_type_ontology_id": cl,
                "signature": "senmayo",
                "n_genes_used": used,
                "n_genes": 118,
            }
            for d, ct, cl, used in (
                ("x", "Macrophage", "CL:0000235", 55),
                ("x", "Malignant cell", "CL:0001064", 55),
                ("y", "Macrophage", "CL:0000235", 100),
                ("y", "Malignant cell", "CL:0001064", 100),
                ("ref", "Macrophage", "CL:0000235", 100),
            )
        ]
    )
    meta = meta_analysis(
        pd.DataFrame(rows),
        {"x": "ODG", "y": "ODG", "ref": "HNSCC"},
        celltype=celltype,
        cohorts={"x": "GSE1", "y": "GSE1", "ref": "GSE9"},
    ).set_index("cancer_type")
    odg = meta.loc["ODG"]
    assert odg["estimate"] == 1.0 and odg["ci_high"] == 1.0 and odg["ci_low"] < 1.0  # never zero width
    assert odg["k_perfect"] == 3 and 0.8 < odg["min_unit_ci_low"] < 0.9
    assert f"perfect separation in 3 of 3 tumours (lowest per-tumour bound {odg['min_unit_ci_low']:.2f})" in odg["flag"]
    assert odg["low_coverage"] and odg["coverage"] == pytest.approx(55 / 118) and "low coverage" in odg["flag"]
    assert odg["cell_type_ontology_id"] == "CL:0000235" and odg["no_malignant_datasets"] == ""
    ref = meta.loc["HNSCC"]
    assert ref["k_tumours"] == 0 and ref["k_unrecorded"] == 1 and ref["evidence"] == "samples not recorded"
    assert "comparison group has no malignant cells (ref)" in ref["flag"] and ref["no_malignant_datasets"] == "ref"
    assert ref["ci_high"] > ref["ci_low"]
