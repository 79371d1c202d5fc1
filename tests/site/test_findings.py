"""Findings that say exactly what the tables say (issue 25, items 5-7): every sentence generated for the
landing page is checked against the meta-analysis table it comes from, on a table that reproduces the
faults of the first build (perfect separation read as certainty, low coverage unsaid, a reference file
without malignant cells or patients counted as a tumour, a breast "Myeloid cell" counted as a
macrophage, one cohort counted twice in Table 2); and p-values are shown with a display floor."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from sasp_atlas.genes import LOW_COVERAGE_FLAG
from sasp_atlas.site import charts, home, pages

OLIGO, OLIGO_FULL, WU, HNSCC = (
    "tirosh2016_oligodendroglioma",
    "tirosh2016_oligodendroglioma_mgh53_mgh54",
    "wu2021_breast_tnbc_cid4465",
    "puram2017_hnscc_chetah_ref",
)
GSE70630, GSE176078, GSE103322 = "GEO GSE70630", "GEO GSE176078", "GEO GSE103322"
CANCER = {
    OLIGO: "oligodendroglioma",
    WU: "triple-negative breast cancer",
    HNSCC: "head and neck squamous cell carcinoma",
}
TERMS = {
    "Macrophage": "CL:0000235",
    "Myeloid cell": "CL:0000763",
    "Oligodendrocyte": "CL:0000128",
    "Malignant cell": "CL:0001064",
    "Fibroblast (CAF)": "CL:0000057",
    "T cell": "CL:0000084",
}


def _row(
    signature,
    dataset,
    cell_type,
    estimate,
    lo,
    hi,
    *,
    k_tumours,
    k_unrecorded=0,
    k_perfect=0,
    min_low=None,
    max_high=None,
    coverage=0.95,
    no_malignant="",
) -> dict:
    datasets = f"{OLIGO}; {OLIGO_FULL}" if dataset == OLIGO else dataset
    cohort = {OLIGO: GSE70630, WU: GSE176078, HNSCC: GSE103322}[dataset]
    k = k_tumours + k_unrecorded
    low = coverage < 0.5
    flags = [LOW_COVERAGE_FLAG] if low else []
    if k_perfect:
        flags.append(f"perfect separation in {k_perfect} of {k} tumours (lowest per-tumour bound {min_low:.2f})")
    if no_malignant:
        flags.append(f"comparison group has no malignant cells ({no_malignant})")
    if k_unrecorded and not k_tumours:
        flags.append("samples not recorded")
    evidence = (
        "samples not recorded"
        if not k_tumours
        else "single tumour"
        if k_tumours == 1
        else f"replicated ({k_tumours} tumours, 1 cohort)"
        if k_tumours >= 3
        else f"{k_tumours} tumours (1 cohort)"
    )
    return {
        "cancer_type": CANCER[dataset],
        "cell_type": cell_type,
        "cell_type_ontology_id": TERMS[cell_type],
        "signature": signature,
        "measure": "composition-balanced AUROC",
        "k_samples": k,
        "k_tumours": k_tumours,
        "k_unrecorded": k_unrecorded,
        "k_datasets": 2 if dataset == OLIGO else 1,
        "datasets": datasets,
        "k_cohorts": 1,
        "cohorts": cohort,
        "estimate": estimate,
        "se": 0.02,
        "ci_low": lo,
        "ci_high": hi,
        "pi_low": lo,
        "pi_high": hi,
        "tau2": 0.0,
        "i2": 0.0,
        "ci_method": "Paule-Mandel + Knapp-Hartung (ad hoc), t(k-1)"
        if k > 1
        else "one tumour: Newcombe score interval",
        "k_perfect": k_perfect,
        "min_unit_ci_low": lo if min_low is None else min_low,
        "max_unit_ci_high": hi if max_high is None else max_high,
        "coverage": coverage,
        "low_coverage": low,
        "no_malignant_datasets": no_malignant,
        "evidence": evidence,
        "flag": "; ".join(flags),
    }


def faulty_meta() -> pd.DataFrame:
    """The first build's faults: oligodendroglioma macrophages separate perfectly in 3 of 3 tumours
    (lowest per-tumour bound 0.85); SenMayo at 46-47 % coverage on Wu and the HNSCC reference; the HNSCC
    reference records no patients and holds no malignant cells; Wu's myeloid cells are "Myeloid cell"
    (CL:0000763), not macrophages."""
    rows = []
    for sig, cov_wu, cov_hn in (("senmayo", 0.46, 0.47), ("reactome_sasp", 0.9, 0.9)):
        rows += [
            _row(sig, OLIGO, "Macrophage", 0.999, 0.93, 1.0, k_tumours=3, k_perfect=3, min_low=0.85),
            _row(sig, OLIGO, "Oligodendrocyte", 0.374, 0.327, 0.421, k_tumours=3),
            _row(sig, OLIGO, "Malignant cell", 0.45, 0.40, 0.52, k_tumours=3),
            _row(sig, WU, "Fibroblast (CAF)", 0.78, 0.74, 0.82, k_tumours=1, coverage=cov_wu),
            _row(sig, WU, "Myeloid cell", 0.72, 0.66, 0.78, k_tumours=1, coverage=cov_wu),
            _row(sig, WU, "T cell", 0.41, 0.36, 0.46, k_tumours=1, coverage=cov_wu),
            _row(
                sig,
                HNSCC,
                "Fibroblast (CAF)",
                0.83,
                0.70,
                0.93,
                k_tumours=0,
                k_unrecorded=1,
                coverage=cov_hn,
                no_malignant=HNSCC,
            ),
            _row(
                sig,
                HNSCC,
                "Macrophage",
                0.66,
                0.55,
                0.77,
                k_tumours=0,
                k_unrecorded=1,
                coverage=cov_hn,
                no_malignant=HNSCC,
            ),
            _row(
                sig, HNSCC, "T cell", 0.21, 0.12, 0.30, k_tumours=0, k_unrecorded=1, coverage=cov_hn, no_malignant=HNSCC
            ),
        ]
    return pd.DataFrame(rows)


def faulty_checks() -> pd.DataFrame:
    """Table 2 checks with row 7 on both copies of GSE70630 and row 8 on Wu barely detected."""
    base = {"table2_cancer_types": "", "cancer_type_matches": False, "ci_unit": "samples (random effects)"}
    rows = [
        {
            **base,
            "row": 7,
            "table2_cell_type": "Myeloid cells",
            "dataset": OLIGO,
            "cohort": GSE70630,
            "n_cells_dataset": 184,
            "effect_size": 0.62,
            "ci_low": 0.40,
            "ci_high": 0.80,
            "verdict": "inconclusive",
        },
        {
            **base,
            "row": 7,
            "table2_cell_type": "Myeloid cells",
            "dataset": OLIGO_FULL,
            "cohort": GSE70630,
            "n_cells_dataset": 1600,
            "effect_size": 0.71,
            "ci_low": 0.62,
            "ci_high": 0.80,
            "verdict": "supported in another cancer type",
        },
        {
            **base,
            "row": 7,
            "table2_cell_type": "Myeloid cells",
            "dataset": WU,
            "cohort": GSE176078,
            "n_cells_dataset": 1564,
            "effect_size": 0.66,
            "ci_low": 0.60,
            "ci_high": 0.72,
            "verdict": "supported in another cancer type",
        },
        {
            **base,
            "row": 8,
            "table2_cell_type": "T cells",
            "dataset": WU,
            "cohort": GSE176078,
            "n_cells_dataset": 1564,
            "cancer_type_matches": True,
            "effect_size": 0.31,
            "ci_low": 0.25,
            "ci_high": 0.37,
            "verdict": "inconclusive: genes barely detected",
        },
        {
            **base,
            "row": 8,
            "table2_cell_type": "T cells",
            "dataset": HNSCC,
            "cohort": GSE103322,
            "n_cells_dataset": 180,
            "cancer_type_matches": True,
            "effect_size": 0.55,
            "ci_low": 0.45,
            "ci_high": 0.65,
            "verdict": "inconclusive",
        },
        {
            **base,
            "row": 3,
            "table2_cell_type": "Liver hepatocytes",
            "dataset": WU,
            "cohort": GSE176078,
            "n_cells_dataset": 1564,
            "effect_size": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "verdict": "not testable: cell type absent",
        },
    ]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- reading a sentence back
def _quoted_estimates(text: str) -> list[tuple[str, str]]:
    """Every "(balanced AUROC ...)" of a finding: the words before it (subject) and its content
    (nested parentheses kept)."""
    out = []
    for m in re.finditer(r"\(balanced AUROC ", text):
        depth, end = 0, m.start()
        for end in range(m.start(), len(text)):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            if depth == 0:
                break
        before = re.split(r"(?:: |; )", text[: m.start()])[-1].strip()
        out.append((before, text[m.start() + 1 : end]))
    return out


def _row_of(meta: pd.DataFrame, subject: str, signature: str) -> pd.Series:
    """The table row a finding's subject names ("Macrophage in oligodendroglioma", "T cell in X scores
    below the other cells of its tumours for senmayo")."""
    hits = [
        r
        for _, r in meta[meta["signature"] == signature].iterrows()
        if subject.startswith(f"{r.cell_type} in {r.cancer_type}")
    ]
    assert len(hits) == 1, subject
    return hits[0]


def _expected_scope(r) -> str:
    """The scope a row must be quoted with, written out independently of pages.evidence_scope."""
    t, u, c = int(r.k_tumours), int(r.k_unrecorded), int(r.k_cohorts)
    files = f"{u} file{'s' * (u != 1)} whose patients are not recorded"
    if t == 0:
        return files
    tumours = f"{t} tumour{'s' * (t != 1)}"
    if u == 0:
        return tumours if t == 1 else f"{tumours}, {c} cohort{'s' * (c != 1)}"
    return f"{tumours} and {files}, {c} cohort{'s' * (c != 1)}"


def _check_quote(content: str, r: pd.Series) -> None:
    """One quoted estimate against its row: the numbers at the precision shown, the scope, and every
    caveat the row needs said (and none it does not)."""
    prefix = f"balanced AUROC {r.estimate:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}], "
    assert content.startswith(prefix), content
    assert content[len(prefix) :].split(";")[0] == _expected_scope(r), content
    if r.k_tumours == 0:  # a file that records no patients is never a tumour
        assert not re.search(r"\d+ tumours?\b", content), content
    assert (LOW_COVERAGE_FLAG in content) == bool(r.low_coverage), content
    if r.low_coverage:
        assert f"{LOW_COVERAGE_FLAG} (gene coverage {r.coverage:.0%})" in content
    assert ("perfect separation" in content) == (r.k_perfect > 0), content
    if r.k_perfect:
        assert f"perfect separation in {int(r.k_perfect)} of {int(r.k_samples)} tumours" in content
        assert f"lowest per-tumour lower bound {r.min_unit_ci_low:.2f}" in content
    assert ("no malignant cells" in content) == bool(r.no_malignant_datasets), content
    for d in pages._split(r.no_malignant_datasets):
        assert d in content


@pytest.fixture
def meta() -> pd.DataFrame:
    return faulty_meta()


def test_every_quoted_estimate_matches_its_row(meta):
    for sig in ("senmayo", "reactome_sasp"):
        found = pages.key_findings(meta, faulty_checks(), signature=sig)
        quotes = [q for f in found for q in _quoted_estimates(f)]
        assert len(quotes) == 4  # 3 cancer types' highest + the lowest
        for subject, content in quotes:
            _check_quote(content, _row_of(meta, subject, sig))
        # ... and the rows quoted are the ones the sentence says: the top of each cancer type, the lowest
        m = meta[meta.signature == sig]
        top = m.loc[m.groupby("cancer_type")["estimate"].idxmax()]
        assert [_row_of(meta, s, sig).name for s, _ in _quoted_estimates(found[0])] == list(
            top.sort_values("estimate", ascending=False).index
        )  # highest first
        lowest = m[m.ci_high < 0.5].sort_values("estimate").iloc[0]
        (line,) = [f for f in found if f.startswith("**Lowest**")]
        assert _row_of(meta, _quoted_estimates(line)[0][0].removeprefix("**Lowest**: "), sig).name == lowest.name


def test_highest_names_the_balanced_auroc_and_says_perfect_separation_in_words(meta):
    first = pages.key_findings(meta, None, signature="senmayo")[0]
    assert "balanced AUROC" in first and "AUROC 1.00 [1.00, 1.00]" not in first
    assert (
        "Macrophage in oligodendroglioma (balanced AUROC 1.00 [0.93, 1.00], 3 tumours, 1 cohort; perfect "
        "separation in 3 of 3 tumours, lowest per-tumour lower bound 0.85)"
    ) in first
    # the HNSCC reference: no tumour counted, its comparison group named, its coverage said
    assert (
        "Fibroblast (CAF) in head and neck squamous cell carcinoma (balanced AUROC 0.83 [0.70, 0.93], 1 file "
        f"whose patients are not recorded; {LOW_COVERAGE_FLAG} (gene coverage 47%); the comparison group has no "
        f"malignant cells ({HNSCC}))"
    ) in first
    assert "other cells of the same tumours" not in first


def test_lowest_says_its_flags(meta):
    (lowest,) = [f for f in pages.key_findings(meta, None, signature="senmayo") if f.startswith("**Lowest**")]
    assert lowest.startswith("**Lowest**: T cell in head and neck squamous cell carcinoma")
    assert LOW_COVERAGE_FLAG in lowest and "1 file whose patients are not recorded" in lowest


def test_cell_types_are_counted_across_cancers_only_within_one_ontology_term(meta):
    found = pages.key_findings(meta, None, signature="reactome_sasp")
    (across,) = [f for f in found if "reaches a balanced AUROC of at least" in f]
    # Macrophage (CL:0000235) is high in oligodendroglioma and HNSCC; Wu's "Myeloid cell" (CL:0000763) is not it
    assert across.startswith("**Macrophage** (CL:0000235)") and "Myeloid cell" not in across
    high = meta[
        (meta.signature == "reactome_sasp")
        & (meta.cell_type_ontology_id == "CL:0000235")
        & (meta.estimate >= pages.FINDING_EFFECT)
        & (meta.ci_low > 0.5)
    ]
    measured = meta[(meta.signature == "reactome_sasp") & (meta.cell_type_ontology_id == "CL:0000235")]
    assert f"in {high.cancer_type.nunique()} of the {measured.cancer_type.nunique()} cancer types" in across
    cohorts = {c for cs in high.cohorts for c in cs.split(";")}
    assert (
        f"({int(high.k_tumours.sum())} tumours and {int(high.k_unrecorded.sum())} file whose patients are not "
        f"recorded, {len(cohorts)} cohorts)"
    ) in across
    assert f"In {HNSCC} the comparison group has no malignant cells." in across


def test_low_coverage_estimates_are_not_counted_as_high_and_that_is_said(meta):
    found = pages.key_findings(meta, None, signature="senmayo")
    (across,) = [f for f in found if "balanced AUROC of" in f and "**Highest" not in f and "**Lowest" not in f]
    flagged = meta[
        (meta.signature == "senmayo")
        & meta.low_coverage
        & (meta.estimate >= pages.FINDING_EFFECT)
        & (meta.ci_low > 0.5)
    ]
    assert f"{len(flagged)} estimates that reach it but carry the flag {LOW_COVERAGE_FLAG} are not counted" in across
    assert "Fibroblast (CAF)" not in across.split("(")[0]


def test_evidence_counts_named_tumours_and_cohorts(meta):
    (evidence,) = [f for f in pages.key_findings(meta, None, signature="senmayo") if f.startswith("**Evidence**")]
    n3 = int((meta.k_tumours >= 3).sum())
    n_cohorts = int(((meta.k_tumours >= 3) & (meta.k_cohorts >= 2)).sum())
    assert evidence.startswith(
        f"**Evidence**: {n3} of {len(meta)} cancer type x cell type x signature estimates "
        f"rest on at least 3 named tumours, {n_cohorts} of them on more than one cohort"
    )
    assert f"{int(meta.low_coverage.sum())} of {len(meta)} are flagged {LOW_COVERAGE_FLAG}" in evidence


def test_table2_counts_row_by_cohort_keeping_the_fuller_copy(meta):
    checks = faulty_checks()
    one = pages.table2_one_copy(checks)
    assert set(one.loc[one.row == 7, "dataset"]) == {OLIGO_FULL, WU}  # the 1,600-cell file, not the 184-cell one
    testable = one[one.effect_size.notna()]
    assert len(testable) == checks[checks.effect_size.notna()].drop_duplicates(["row", "cohort"]).shape[0] == 4
    (t2,) = [f for f in pages.key_findings(meta, checks, signature="senmayo") if "Table 2" in f]
    own = testable[testable.cancer_type_matches]
    assert f"{len(testable)} row x cohort pairs are testable here" in t2 and f"{len(own)} of them" in t2
    assert "1 inconclusive: genes barely detected" in t2
    scope = pages.table2_scope_markdown(checks)
    assert "4 row x cohort pairs are testable" in scope and f"{OLIGO} shares a study with a fuller file" in scope
    takeaways = pages.table2_takeaways(checks)
    assert takeaways[0].startswith("4 of 5 row x cohort pairs are testable")
    assert any(f"row 8 in {WU}" in t and "fewer than 10%" in t for t in takeaways)


def test_findings_refuse_an_old_table_without_the_new_columns(meta):
    with pytest.raises(ValueError, match="k_tumours"):
        pages.key_findings(meta.drop(columns=["k_tumours"]), None)


def test_evidence_scope_words():
    assert pages.evidence_scope(1, 1) == "1 tumour"
    assert pages.evidence_scope(3, 1) == "3 tumours, 1 cohort"
    assert pages.evidence_scope(6, 2) == "6 tumours, 2 cohorts"
    assert pages.evidence_scope(0, 1, 1) == "1 file whose patients are not recorded"
    assert pages.evidence_scope(3, 2, 1) == "3 tumours and 1 file whose patients are not recorded, 2 cohorts"


# --------------------------------------------------------------------------- the landing page's count
def _samples() -> pd.DataFrame:
    per = {
        OLIGO: ["MGH36", "MGH53", "MGH54", "MGH93", "MGH97"],
        OLIGO_FULL: ["MGH53", "MGH54"],
        WU: ["CID4465"],
        HNSCC: [f"{HNSCC}:unrecorded"],
    }
    return pd.DataFrame(
        [
            {"dataset": d, "sample": s, "cell_type": ct}
            for d, ss in per.items()
            for s in ss
            for ct in ("Macrophage", "T cell")
        ]
    )


def test_tumour_count_dedupes_copies_and_leaves_unrecorded_files_out():
    cohorts = {OLIGO: GSE70630, OLIGO_FULL: GSE70630, WU: GSE176078, HNSCC: GSE103322}
    counts = home.tumour_counts(_samples(), cohorts)
    assert counts == {"n_tumours": 6, "n_cohorts": 3, "unrecorded": [HNSCC]}
    line = home.count_line(4, counts, 3)
    assert line.startswith("4 datasets from 3 cohorts: 6 named tumours")
    assert f"1 file whose patients are not recorded ({HNSCC}; not counted as tumours)" in line


def test_home_page_counts_and_findings(meta, tmp_path):
    text = home.home_markdown(
        meta,
        faulty_checks(),
        signatures=["senmayo", "reactome_sasp"],
        method="expected",
        results=tmp_path,
        samples=_samples(),
    )
    assert "6 named tumours" in text and "at least" not in text.split("## Key findings")[0]
    findings = text.split("## Key findings")[1]
    assert "balanced AUROC" in findings and "perfect separation in 3 of 3 tumours" in findings


# --------------------------------------------------------------------------- the map and the p floor
def test_map_fades_and_marks_low_coverage_and_counts_named_tumours(meta):
    spec = charts.sasp_map_chart(meta, signature_list=["senmayo", "reactome_sasp"], default="senmayo").to_dict()
    rect, text = spec["layer"]
    assert "datum.low_coverage" in json.dumps(rect["encoding"]["color"])
    assert "datum.replicated" in json.dumps(rect["encoding"]["opacity"])
    tips = {t.get("field") for t in rect["encoding"]["tooltip"]}
    assert {"coverage", "flag", "k_cohorts", "k_unrecorded", "n_tumours"} <= tips
    data = pd.DataFrame(spec["datasets"][spec["data"]["name"]])
    hn = data[data.cancer_type == CANCER[HNSCC]]
    assert set(hn["count_label"]) == {charts.NOT_RECORDED_MARK} and not hn["replicated"].any()
    assert set(data.loc[data.cancer_type == "oligodendroglioma", "count_label"]) == {"3"}
    assert text["encoding"]["text"]["field"] == "count_label"


def test_replicated_squares_rest_on_named_tumours(meta):
    mixed = meta.iloc[[0]].assign(k_samples=3, k_tumours=2, k_unrecorded=1)
    data = pd.DataFrame(charts.sasp_map_chart(mixed, signature_list=["senmayo"]).to_dict()["datasets"].popitem()[1])
    assert not data["replicated"].any() and data["count_label"].tolist() == ["2"]


def test_format_p_floors_the_display_only():
    assert pages.P_FLOOR == 1e-16
    assert pages.format_p(3e-259) == "< 1e-16"
    assert pages.format_p(1e-16) == "1e-16"
    assert pages.format_p(0.003123) == "0.0031"
    assert pages.format_p(np.nan) == "—" and pages.format_p(None) == "—"
    assert pages.format_p(1e-5, floor=1e-3) == "< 1e-3"
    assert pages.p_phrase("q", 3e-259) == "q < 1e-16" and pages.p_phrase("q", 0.02) == "q = 0.02"


def test_tooltips_show_floored_p_and_the_csv_keeps_it():
    table = pd.DataFrame(
        {
            "dataset": WU,
            "cancer_type": CANCER[WU],
            "cell_type": ["a", "b"],
            "lineage": "immune",
            "signature": "senmayo",
            "mean": [0.1, 0.2],
            "ci_low": 0.0,
            "ci_high": 0.3,
            "ci_unit": "cells",
            "effect_size": [0.9, 0.4],
            "n_cells": 50,
            "n_samples": 1,
            "evidence": "single tumour",
            "q_perm": [3e-259, 0.2],
            "q_null": 0.01,
            "coverage": 0.46,
            "low_coverage": True,
            "caveat": "",
            "flag": LOW_COVERAGE_FLAG,
        }
    )
    for chart in (charts.ranking_chart(table, signature="senmayo"), charts.atlas_heatmap(table, signature="senmayo")):
        spec = chart.to_dict()
        data = pd.DataFrame(spec["datasets"].popitem()[1])
        assert data["q_perm_shown"].tolist() == ["< 1e-16", "0.2"] and data["q_perm"].iloc[0] == 3e-259
        assert "q_perm_shown" in json.dumps(spec) and '"flag"' in json.dumps(spec)
    assert table["q_perm"].iloc[0] == 3e-259  # the caller's table is untouched


def test_dataset_takeaways_say_the_flag_the_comparison_and_the_floor():
    table = pd.DataFrame(
        {
            "cell_type": ["Fibroblast (CAF)", "T cell"],
            "signature": "senmayo",
            "effect_size": [0.9, 0.3],
            "q_perm": [3e-259, 0.5],
            "coverage": 0.47,
            "low_coverage": True,
            "n_samples": 1,
            "evidence": "samples not recorded",
        }
    )
    top, _, scope = pages.dataset_takeaways(table, ["senmayo"])
    assert (
        "**senmayo** is highest in Fibroblast (CAF): AUROC 0.90 against the other cells of this file, which holds "
        f"no malignant cells, within-file q < 1e-16 (samples not recorded; {LOW_COVERAGE_FLAG} (gene coverage "
        "47%))."
    ) == top
    assert "counts as no tumour" in scope


def test_dataset_takeaways_of_a_tumour_with_malignant_cells():
    table = pd.DataFrame(
        {
            "cell_type": ["Fibroblast (CAF)", "Malignant cell"],
            "signature": "senmayo",
            "effect_size": [0.9, 0.3],
            "q_perm": [0.004, 0.5],
            "coverage": 0.9,
            "low_coverage": False,
            "n_samples": 1,
            "evidence": "single tumour",
        }
    )
    top, high, scope = pages.dataset_takeaways(table, ["senmayo"])
    assert top == (
        "**senmayo** is highest in Fibroblast (CAF): AUROC 0.90 against the other cells of the same tumour, "
        "within-tumour q = 0.004 (single tumour)."
    )
    assert high.startswith("1 of 2 cell type x signature scores are higher than the rest of their tumour")
    assert scope.startswith("Every number here rests on one tumour")


def test_a_flagged_signature_says_so_in_its_figure_caption():
    cov = pd.DataFrame(
        {
            "dataset": [WU, HNSCC, OLIGO],
            "signature": "senmayo",
            "coverage": [0.46, 0.472, 0.95],
            "low_coverage": [True, True, False],
        }
    )
    assert pages.coverage_caption(cov, "senmayo") == (
        "Low coverage: score not comparable in 2 of 3 datasets (46% of the signature's genes measured)."
    )
    assert pages.coverage_caption(cov[cov.dataset == HNSCC], "senmayo") == (
        "Low coverage: score not comparable (47% of the signature's genes measured)."
    )
    assert pages.coverage_caption(cov[cov.dataset == OLIGO], "senmayo") == ""
    assert pages.coverage_caption(None, "senmayo") == ""
    assert pages.coverage_caption(cov, "senmayo", datasets=[OLIGO]) == ""


def test_dataset_motivation_counts_no_tumour_in_a_file_without_patients():
    from sasp_atlas.sources import get_dataset

    table = pd.DataFrame(
        {"cell_type": ["T cell", "B cell"], "n_cells": [60, 20], "n_samples": 1, "evidence": "samples not recorded"}
    )
    text = pages.dataset_motivation(get_dataset(HNSCC), table)
    assert text.startswith("80 cells (patients not recorded) of head and neck") and "tumour)" not in text
    assert "(1 tumour)" in pages.dataset_motivation(get_dataset(WU), table.assign(evidence="single tumour"))
