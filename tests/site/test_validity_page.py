"""The validity labels where a signature is shown: the map's menu ordered by validity and opening on the
best-validated SASP set, the findings' validity sentence equal to the table, the validity table's order
and reasons, the forest figure, and the Table 2 rows' label column."""

from __future__ import annotations

import pandas as pd
import pytest

from sasp_atlas.site import charts, home, pages, policy

POOLED = pd.DataFrame(
    [
        {
            "signature": s,
            "method": m,
            "control": "non-senescent",
            "n_benchmarks": 2,
            "benchmarks": "a; b",
            "n_units": 9,
            "auroc": a,
            "ci_low": lo,
            "ci_high": hi,
            "label": lab,
            "label_basis": "out of sample",
            "overlapping_benchmarks": "",
            "auroc_out_of_sample": a,
            "ci_low_out_of_sample": lo,
            "ci_high_out_of_sample": hi,
            "training_overlap": False,
            "tau2": 0.0,
            "ci_method": "x",
        }
        for s, m, a, lo, hi, lab in (
            ("senmayo", "expected", 0.55, 0.40, 0.70, "no signal"),
            ("senmayo_secreted", "expected", 0.81, 0.66, 0.93, "detects"),
            ("reactome_sasp", "expected", 0.20, 0.05, 0.35, "inverse"),
            ("fridman_senescence_up", "expected", 0.97, 0.88, 1.0, "detects"),
            ("senmayo", "ucell", 0.9, 0.8, 1.0, "detects"),
        )
    ]
)


def _meta(signatures):
    return pd.DataFrame([{"signature": s, "cancer_type": "x", "cell_type": "y"} for s in signatures])


def test_map_menu_ordered_by_validity_and_opens_on_the_best_validated_sasp_set():
    sigs = ["senmayo", "reactome_sasp", "fridman_senescence_up", "senmayo_secreted"]
    menu = home.home_signatures(_meta(sigs), sigs, POOLED, method="expected")
    # the best-validated SASP set first (fridman is better validated but is not a SASP set), then by validity
    assert menu == ["senmayo_secreted", "fridman_senescence_up", "senmayo", "reactome_sasp"]
    assert menu[0] in policy.SASP_SIGNATURES
    # without a validity table: the headline SenMayo first, the build's order otherwise
    assert home.home_signatures(_meta(sigs), sigs) == [
        "senmayo",
        "reactome_sasp",
        "fridman_senescence_up",
        "senmayo_secreted",
    ]


def test_validity_phrase_says_what_the_table_says():
    text = pages.validity_phrase("senmayo_secreted", POOLED, method="expected")
    r = POOLED.iloc[1]
    assert f"**{r.label}**" in text and f"{r.auroc:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]" in text
    assert "2 data sets, 9 units" in text and "out of sample" in text
    assert "**detects**" in pages.validity_phrase("senmayo", POOLED, method="ucell")
    untested = POOLED.assign(label="untested", auroc=float("nan"))
    assert "**untested**" in pages.validity_phrase("senmayo", untested, method="expected")
    assert pages.validity_phrase("senmayo", None, method="expected") == ""


def test_validity_table_order_and_reasons():
    text = pages.validity_table_markdown(POOLED, method="expected")
    lines = [line for line in text.splitlines() if line.startswith("| ") and "**" in line]
    assert [line.split(" | ")[0].strip("| ") for line in lines] == [
        "fridman_senescence_up",
        "senmayo_secreted",
        "senmayo",
        "reactome_sasp",
    ]
    reactome = next(line for line in lines if line.startswith("| reactome_sasp"))
    assert "histone genes" in reactome  # the reason where known
    takeaways = pages.validity_takeaways(POOLED, method="expected")
    assert takeaways[0].startswith("With the expected engine, of 4 signatures: 2 detects, 0 weak, 1 no signal")
    assert "reactome_sasp" in takeaways[1]


def test_forest_chart_and_table2_column():
    units = pd.DataFrame(
        {
            "signature": ["senmayo"] * 2,
            "benchmark": ["a", "b"],
            "unit": ["u1", "all units"],
            "auroc": [0.5, 0.6],
            "ci_low": [0.2, 0.3],
            "ci_high": [0.8, 0.9],
            "n_senescent": [3, 2],
            "n_control": [3, 2],
            "design": ["within units", "units compared"],
        }
    )
    spec = charts.validity_forest(units, POOLED[POOLED["method"] == "expected"]).to_dict()
    assert spec["title"] == "Which signatures detect senescence?" and len(spec["layer"]) == 4
    checks = pd.DataFrame(
        [
            {
                "row": 1,
                "table2_cell_type": "T",
                "dataset": "d",
                "cancer_type": "c",
                "cancer_type_matches": True,
                "cell_type": "T cell",
                "ontology_match": "",
                "n_cells": 5,
                "evidence": "single tumour",
                "n_present": 5,
                "n_genes": 6,
                "effect_size": 0.6,
                "ci_low": 0.5,
                "ci_high": 0.7,
                "identity_genes_removed": "",
                "identity_adjusted_effect": 0.6,
                "identity_adjusted_ci_low": 0.5,
                "identity_adjusted_ci_high": 0.7,
                "verdict": "inconclusive",
                "detection": "A 50%",
                "validity": "no signal",
            }
        ]
    )
    table = pages.table2_checks_markdown(checks)
    assert "row's genes detect senescence?" in table.splitlines()[0] and "| no signal |" in table


@pytest.mark.parametrize("label", ["detects", "weak", "no signal", "untested", "inverse"])
def test_every_label_has_a_rank_and_a_colour(label):
    assert pages.validity_rank(label) < len(pages.VALIDITY_ORDER) and label in charts.VALIDITY_COLOURS


def test_husi_is_in_the_map_menu_with_its_own_validity():
    sigs = ["senmayo", "reactome_sasp"]
    husi = POOLED.iloc[[0]].assign(
        signature="husi", method="husi", auroc=0.98, ci_low=0.88, ci_high=1.0, label="detects"
    )
    menu = home.home_signatures(_meta([*sigs, "husi"]), [*sigs, "husi"], pd.concat([POOLED, husi]), method="expected")
    assert menu[0] in policy.SASP_SIGNATURES and menu[1] == "husi"  # opens on a SASP set; hUSI ordered by validity
