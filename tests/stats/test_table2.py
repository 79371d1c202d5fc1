"""Table 2 verdicts need detected genes (issue 25, item 7): a row whose every gene is detected in fewer
than MIN_DETECTION of the tested cells is "inconclusive: genes barely detected", whatever its effect;
subsets of one study share a cohort, and the fuller file is told by its size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

from sasp_atlas.genes import get_signature
from sasp_atlas.stats import VERDICTS
from sasp_atlas.stats.table2 import BARELY_DETECTED, MIN_DETECTION, table2_checks

T_CELL_ROW, FIBROBLAST_ROW = 8, 6
TYPES = {"T cell": "CL:0000084", "Macrophage": "CL:0000235", "Fibroblast (CAF)": "CL:0000057"}


def _tumours(t_cell_detection: float, *, seed: int = 0) -> AnnData:
    """Three tumours of 40 T cells, 40 macrophages and 40 CAFs. Row 8's genes (T cells) are expressed by
    the other cells and in ``t_cell_detection`` of the T cells; row 6's genes (fibroblasts) by the CAFs;
    300 background genes everywhere (the control-gene pool)."""
    rng = np.random.default_rng(seed)
    t_genes, f_genes = get_signature("table2_t_cells"), get_signature("table2_fibroblasts")
    genes = list(dict.fromkeys(t_genes + f_genes)) + [f"BG{i}" for i in range(300)]
    cell_types = np.repeat(list(TYPES), 40)
    obs = pd.concat([pd.DataFrame({"cell_type": cell_types, "sample": f"P{i}"}) for i in range(3)], ignore_index=True)
    obs["cell_type_ontology_id"] = obs["cell_type"].map(TYPES)
    obs.index = [f"c{i}" for i in range(len(obs))]
    X = np.zeros((len(obs), len(genes)))
    bg = np.array([g.startswith("BG") for g in genes])
    X[:, bg] = np.log1p(rng.poisson(rng.uniform(0.2, 5, bg.sum()), (len(obs), bg.sum())))
    for j, g in enumerate(genes):
        if g in t_genes:
            others = obs["cell_type"].ne("T cell").to_numpy()
            X[others, j] = np.log1p(rng.poisson(3, others.sum()))
            t_cell = np.flatnonzero(obs["cell_type"].eq("T cell").to_numpy())
            on = t_cell[rng.random(t_cell.size) < t_cell_detection]
            X[on, j] = np.log1p(rng.poisson(3, on.size) + 1)
        if g in f_genes and g not in t_genes:
            caf = obs["cell_type"].eq("Fibroblast (CAF)").to_numpy()
            X[caf, j] = np.log1p(rng.poisson(4, caf.sum()) + 1)
    adata = AnnData(X=sp.csr_matrix(X), obs=obs, var=pd.DataFrame(index=genes))
    adata.uns["provenance"] = {
        "cancer_type": "triple-negative breast cancer",
        "cancer_type_ontology_id": "MONDO:0005494",
        "accession": "GEO GSE0",
        "doi": "",
    }
    return adata


@pytest.fixture(scope="module")
def checks() -> pd.DataFrame:
    return table2_checks({"barely": _tumours(0.03), "detected": _tumours(0.30)}).set_index(["row", "dataset"])


def test_barely_detected_genes_give_no_verdict(checks):
    barely = checks.loc[(T_CELL_ROW, "barely")]
    # the effect alone would say "contradicted": the T cells score below the other cells
    assert barely["ci_high"] < 0.5
    assert barely["max_detection"] < MIN_DETECTION and barely["verdict"] == BARELY_DETECTED
    shares = [int(item.split()[1].rstrip("%")) for item in barely["detection"].split(", ")]
    assert max(shares) == round(100 * barely["max_detection"]) and max(shares) < 100 * MIN_DETECTION


def test_detected_genes_keep_the_effect_verdict(checks):
    detected = checks.loc[(T_CELL_ROW, "detected")]
    assert detected["max_detection"] >= MIN_DETECTION and detected["verdict"] == "contradicted"
    caf = checks.loc[(FIBROBLAST_ROW, "barely")]
    assert caf["max_detection"] == 1.0 and caf["verdict"] == "supported in another cancer type"


def test_cohort_and_file_size_are_recorded(checks):
    assert set(checks["verdict"]) <= set(VERDICTS) and BARELY_DETECTED in VERDICTS
    assert set(checks["cohort"]) == {"GEO GSE0"} and set(checks["n_cells_dataset"]) == {360}
