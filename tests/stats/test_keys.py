"""One API: scores written under any ``key_added`` are read by every statistic with ``key=``; the
sample and cell-type columns are named by ``sample_key=`` / ``groupby=``; generic statistics need no
``dataset_id``; the score key is spelled once in the package."""

from __future__ import annotations

import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import PROJECT_ROOT
from pandas.testing import assert_frame_equal

from sasp_atlas import score
from sasp_atlas._constants import CELL_TYPE_KEY, SAMPLE_KEY, SCORES_KEY
from sasp_atlas.atlas.pipeline import score_tables, signature_coverage
from sasp_atlas.engines import celltype_null, method_concordance
from sasp_atlas.genes import coverage_table, sasp_classes
from sasp_atlas.stats import celltype_scores, gene_decomposition, sample_celltype_summary, sample_effects
from sasp_atlas.stats.composition import sample_class_composition, sasp_class_scores

SRC = PROJECT_ROOT / "src" / "sasp_atlas"


def _pair() -> tuple[ad.AnnData, ad.AnnData, dict[str, list[str]]]:
    """The same cells twice: with the default obs columns, and with only ``ct`` / ``patient``."""
    rng = np.random.default_rng(0)
    genes = list(dict.fromkeys(sasp_classes()["gene"].astype(str)))[:120] + [f"FILLER{i}" for i in range(80)]
    n = 240
    types = np.array(["A", "B", "C"])[rng.integers(0, 3, n)]
    patients = np.array(["P1", "P2", "P3", "P4"])[rng.integers(0, 4, n)]
    lam = np.full((n, len(genes)), 0.8)
    lam[types == "A", :20] *= 3.0
    X = sp.csr_matrix(np.log1p(rng.poisson(lam)).astype(np.float32))
    var = pd.DataFrame(index=genes)
    sigs = {"planted": genes[:20], "other": genes[40:70]}
    obs = pd.DataFrame(
        {"ct": pd.Categorical(types), "patient": pd.Categorical(patients), "cell_type_author": types},
        index=[f"c{i}" for i in range(n)],
    )
    uns = {"provenance": {"value_type": "raw_counts", "cancer_type": "toy"}}
    custom = ad.AnnData(X=X, obs=obs.copy(), var=var.copy(), uns={k: dict(v) for k, v in uns.items()})
    default = ad.AnnData(
        X=X.copy(),
        obs=obs.assign(**{CELL_TYPE_KEY: obs["ct"], SAMPLE_KEY: obs["patient"]}),
        var=var.copy(),
        uns={k: dict(v) for k, v in uns.items()},
    )
    score(default, sigs, method="expected")
    score(custom, sigs, method="expected", key_added="k")
    return default, custom, sigs


@pytest.fixture(scope="module")
def pair():
    return _pair()


def test_constants_name_the_defaults():
    assert (SCORES_KEY, SAMPLE_KEY, CELL_TYPE_KEY) == ("sasp_scores", "sample", "cell_type")


def test_key_added_then_every_statistic_with_key(pair):
    default, custom, sigs = pair
    assert SCORES_KEY not in custom.obsm and "k" in custom.obsm
    opts = {"groupby": "ct", "sample_key": "patient"}
    assert_frame_equal(celltype_scores(custom, key="k", **opts), celltype_scores(default))
    assert_frame_equal(sample_celltype_summary(custom, key="k", **opts), sample_celltype_summary(default))
    assert_frame_equal(coverage_table(custom, key="k"), coverage_table(default))
    assert_frame_equal(signature_coverage(custom, key="k"), signature_coverage(default))
    assert_frame_equal(
        gene_decomposition(custom, sigs["planted"], signature="planted", groupby="ct"),
        gene_decomposition(default, sigs["planted"], signature="planted"),
    )
    assert_frame_equal(
        sample_effects(
            custom.obsm["k"], custom.obs["ct"].astype(str).to_numpy(), custom.obs["patient"].astype(str).to_numpy()
        ),
        sample_effects(
            default.obsm[SCORES_KEY],
            default.obs[CELL_TYPE_KEY].astype(str).to_numpy(),
            default.obs[SAMPLE_KEY].astype(str).to_numpy(),
        ),
    )
    assert_frame_equal(sample_class_composition(custom, **opts), sample_class_composition(default))
    assert_frame_equal(sasp_class_scores(custom, **opts), sasp_class_scores(default))
    null_custom = celltype_null(custom, sigs, method="expected", groupby="ct", n_null=5)
    assert_frame_equal(
        null_custom.rename(columns={"ct": CELL_TYPE_KEY}), celltype_null(default, sigs, method="expected", n_null=5)
    )
    conc_custom = method_concordance(custom, sigs, methods=["expected", "mean"], groupby="ct")
    conc_default = method_concordance(default, sigs, methods=["expected", "mean"])
    assert_frame_equal(conc_custom.means.rename(columns={"ct": CELL_TYPE_KEY}), conc_default.means)
    top = celltype_scores(custom, key="k", **opts).set_index(["signature", "cell_type"])
    assert top.loc[("planted", "A"), "effect_size"] > 0.9  # the planted type is found under the custom names


def test_atlas_scoring_core_honours_the_keys():
    default, custom, sigs = _pair()
    common = {"dataset_id": "toy", "cancer_type": "toy", "n_null": 5, "mirror": None}
    t_custom, null_custom, eff_custom, _ = score_tables(
        custom, sigs, key="k2", groupby="ct", sample_key="patient", **common
    )
    t_default, null_default, eff_default, _ = score_tables(default, sigs, **common)
    assert "k2" in custom.obsm and SCORES_KEY not in custom.obsm
    assert_frame_equal(t_custom, t_default)
    assert_frame_equal(null_custom, null_default)
    assert_frame_equal(eff_custom, eff_default)


def test_generic_statistics_need_no_dataset_id(pair):
    default, _, sigs = pair
    for table, with_id in (
        (celltype_scores(default), celltype_scores(default, dataset_id="d")),
        (sample_celltype_summary(default), sample_celltype_summary(default, dataset_id="d")),
        (coverage_table(default), coverage_table(default, dataset_id="d")),
        (
            gene_decomposition(default, sigs["other"], signature="other"),
            gene_decomposition(default, sigs["other"], signature="other", dataset_id="d"),
        ),
        (sasp_class_scores(default), sasp_class_scores(default, dataset_id="d")),
        (sample_class_composition(default), sample_class_composition(default, dataset_id="d")),
    ):
        assert "dataset" not in table.columns
        assert list(with_id.columns) == ["dataset", *table.columns]
        assert (with_id["dataset"] == "d").all()
        assert_frame_equal(with_id.drop(columns="dataset"), table)
    empty = gene_decomposition(default, ["ABSENT"], signature="x")
    assert list(empty.columns) == [
        "signature",
        "cell_type",
        "gene",
        "mean_expression",
        "frac_expressing",
        "delta",
        "n_cells",
    ]


def test_cancer_type_defaults_to_the_provenance(pair):
    default, _, _ = pair
    t = celltype_scores(default)
    assert set(t["cancer_type"]) == {"toy"} and set(t["cancer_type_ontology_id"]) == {""}
    assert set(celltype_scores(default, cancer_type="other")["cancer_type"]) == {"other"}


def test_one_grouping_name():
    """``groupby`` as scanpy; ``group_by`` is gone from the package."""
    found = [f"{p.relative_to(SRC)}" for p in SRC.rglob("*.py") if re.search(r"\bgroup_by\b", p.read_text())]
    assert found == []


def test_the_score_key_is_spelled_once():
    """The literal score key appears once in the package: in the constants module."""
    hits = [
        (str(p.relative_to(SRC)), line)
        for p in sorted(SRC.rglob("*"))
        if p.is_file() and p.suffix in (".py", ".md", ".yaml", ".json", ".ipynb")
        for line in p.read_text().splitlines()
        if re.search(r"sasp_scores(?!\.csv)\b", line)
    ]
    assert hits == [("_constants.py", f'SCORES_KEY = "{SCORES_KEY}"')]
