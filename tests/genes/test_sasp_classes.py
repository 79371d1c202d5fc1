"""The SASP class table: every SASP gene of SenMayo, the Basisty core SASP and Reactome "SASP" has exactly
one class with a source; known anchors land where the rules say; the member evidence is what the
sources say; a broken table is refused with a named error."""

from __future__ import annotations

import warnings

import pytest
import yaml

from sasp_atlas import genes
from sasp_atlas.genes import (
    SASP_CLASS_COLUMNS,
    SASP_SET_COLUMNS,
    UNCLASSIFIED,
    SaspClassError,
    classify_symbols,
    get_signature,
    hgnc_table,
    sasp_class_definitions,
    sasp_classes,
)
from sasp_atlas.genes.sasp_classes import CLASS_FILE
from sasp_atlas.genes.signatures import SignatureResolutionWarning

#: output column -> reference file in shared/reference/genesets for the same set
REFERENCE_FILES = {
    "in_senmayo": "senmayo_human.yaml",
    "in_basisty_core": "basisty2020_core_sasp_fibroblast.yaml",
    "in_basisty_core_fibroblast_epithelial": "basisty2020_core_sasp_fibroblast_epithelial.yaml",
    "in_reactome_sasp": "reactome_sasp.yaml",
}


@pytest.fixture(scope="module")
def table():
    return sasp_classes()


@pytest.fixture(scope="module")
def doc():
    return yaml.safe_load(CLASS_FILE.read_text())


def _set_genes() -> dict[str, set[str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SignatureResolutionWarning)
        return {col: set(get_signature(sig)) for col, sig in SASP_SET_COLUMNS.items()}


def test_every_sasp_gene_has_exactly_one_row_with_class_and_source(table):
    assert list(table.columns) == SASP_CLASS_COLUMNS
    sets = _set_genes()
    union = set().union(*sets.values())
    assert table["gene"].is_unique
    assert set(table["gene"]) == union
    known = set(sasp_class_definitions()["sasp_class"])
    assert set(table["sasp_class"]) <= known
    assert (table["source"].str.strip() != "").all()
    assert table["table_version"].nunique() == 1 and table["table_version"].iloc[0] != ""
    for col, members in sets.items():
        assert set(table.loc[table[col], "gene"]) == members, col
    # classified genes carry the rule that put them there; unclassified ones none
    assert (table.loc[table["sasp_class"] != UNCLASSIFIED, "rule"] != "").all()
    assert (table.loc[table["sasp_class"] == UNCLASSIFIED, "rule"] == "").all()


def test_set_columns_match_the_verified_reference_sets(table, genesets_dir):
    by_gene = table.set_index("gene")
    for col, filename in REFERENCE_FILES.items():
        ref = {str(g) for g in yaml.safe_load((genesets_dir / filename).read_text())["genes"]}
        assert ref <= set(by_gene.index), f"{filename}: genes without a class row {sorted(ref - set(by_gene.index))}"
        assert set(by_gene.index[by_gene[col]]) == ref, col


def test_basisty_epithelial_core_is_within_the_fibroblast_core(table):
    assert not (table["in_basisty_core_fibroblast_epithelial"] & ~table["in_basisty_core"]).any()


@pytest.mark.parametrize(
    "gene, cls",
    [
        ("IL6", "interleukins"),
        ("IL1A", "interleukins"),
        ("CXCL8", "cxc_chemokines"),
        ("CXCL1", "cxc_chemokines"),
        ("CCL2", "cc_chemokines"),
        ("CCL3L1", "cc_chemokines"),
        ("MMP3", "mmps"),
        ("MMP14", "mmps"),
        ("TIMP1", "timps_serpins"),
        ("SERPINE1", "timps_serpins"),
        ("IGFBP3", "igfbps"),
        ("IGFBP7", "igfbps"),
        ("VEGFA", "growth_factors"),
        ("AREG", "growth_factors"),
        ("EREG", "growth_factors"),
        ("PGF", "growth_factors"),
        ("HGF", "growth_factors"),
        ("GDF15", "growth_factors"),
        ("TNF", "tnf_superfamily"),
        ("FAS", "tnf_superfamily"),
        ("TNFRSF1A", "tnf_superfamily"),
        ("TNFRSF11B", "tnf_superfamily"),
        ("FN1", "ecm_other_secreted"),
        ("CSF2", "ecm_other_secreted"),
        ("IL6ST", UNCLASSIFIED),
        ("CXCR2", UNCLASSIFIED),
        ("PIGF", UNCLASSIFIED),
        ("GAPDH", UNCLASSIFIED),
        ("H2AX", UNCLASSIFIED),
        ("CDKN2A", UNCLASSIFIED),
    ],
)
def test_anchor_genes(table, gene, cls):
    assert table.set_index("gene").at[gene, "sasp_class"] == cls


def test_sources_name_the_rule_honestly(table):
    by_gene = table.set_index("gene")
    assert "IL<n>" in by_gene.at["IL6", "source"] and "not an HGNC gene-group file" in by_gene.at["IL6", "source"]
    assert "TNFSF2" in by_gene.at["TNF", "source"] and "TNFRSF6" in by_gene.at["FAS", "source"]
    assert "Core matrisome / ECM Glycoproteins" in by_gene.at["FN1", "source"]
    assert "State 'Secreted'" in by_gene.at["MIF", "source"]
    assert "Classification 'Growth factor'" in by_gene.at["KITLG", "source"]
    # no row claims HGNC gene-group membership: no gene-group file is read
    assert not table["source"].str.contains("HGNC gene group", case=False).any()
    # IGFBPs also sit in the core matrisome: the table shows the second match instead of hiding it
    assert "ecm_other_secreted:naba_core_matrisome" in by_gene.at["IGFBP3", "also_matches"]


def test_documented_decisions_hold(table, doc):
    by_gene = table.set_index("gene")
    checked = 0
    for decision in doc["decisions"]:
        for gene in decision["genes"]:
            if decision["class"] is None:
                assert gene not in by_gene.index, f"{gene}: decision says it is in none of the sets"
            else:
                assert by_gene.at[gene, "sasp_class"] == decision["class"], gene
                checked += 1
    assert checked >= 30


def test_previous_symbol_evidence_is_in_the_hgnc_table(doc, mirror):
    hgnc = hgnc_table()
    pairs = set(zip(hgnc["symbol"], hgnc["approved"]))
    rules = {r["id"]: r for c in doc["classes"] for r in c["rules"]}
    for rule_id in ("tnf_previous_symbol", "cxcl_previous_symbol"):
        for gene, alias in rules[rule_id]["members"].items():
            assert (alias, gene) in pairs, f"{rule_id}: {alias} is not an HGNC previous/alias symbol of {gene}"


def test_senmayo_growth_factor_members_are_the_supplement_classification(doc, genesets_dir):
    ref = yaml.safe_load((genesets_dir / "senmayo_human.yaml").read_text())["categories"]
    from_supplement = {g: c["classification"] for g, c in ref.items() if c["classification"] == "Growth factor"}
    rule = next(r for c in doc["classes"] for r in c["rules"] if r["id"] == "senmayo_growth_factor")
    assert rule["members"] == from_supplement


def test_rules_avoid_known_symbol_pitfalls():
    got = classify_symbols(
        [
            "PGLYRP1",
            "BTF3P11",
            "FGF12",
            "FGF19",
            "IL1RN",
            "ILK",
            "IL17RA",
            "CCL3P1",
            "PF4",
            "PPBP",
            "CCN2",
            "IGFBPL1",
            "TNFSF13B",
            "LTA",
        ]
    ).set_index("gene")["sasp_class"]
    # aliases TNFSF3L / TNFRSF11B of a non-TNF gene and a pseudogene are not TNF superfamily
    assert got["PGLYRP1"] == UNCLASSIFIED and got["BTF3P11"] == UNCLASSIFIED
    assert got["FGF12"] == UNCLASSIFIED and got["FGF19"] == "growth_factors"  # FGF11-14 are intracellular
    assert {got["IL1RN"], got["ILK"], got["IL17RA"]} == {UNCLASSIFIED}
    assert got["CCL3P1"] == UNCLASSIFIED and got["IGFBPL1"] == UNCLASSIFIED
    assert got["PF4"] == got["PPBP"] == "cxc_chemokines"
    assert got["CCN2"] == "growth_factors"
    assert got["TNFSF13B"] == got["LTA"] == "tnf_superfamily"


def test_class_definitions_order_and_export():
    defs = sasp_class_definitions()
    assert list(defs["sasp_class"]) == [
        "interleukins",
        "cxc_chemokines",
        "cc_chemokines",
        "mmps",
        "timps_serpins",
        "igfbps",
        "growth_factors",
        "tnf_superfamily",
        "ecm_other_secreted",
        UNCLASSIFIED,
    ]
    assert list(defs["class_order"]) == list(range(len(defs)))
    assert genes.sasp_classes is sasp_classes and "sasp_classes" in genes.__all__


def _write(tmp_path, doc) -> str:
    path = tmp_path / "classes.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def test_unknown_class_is_refused(tmp_path, doc):
    bad = dict(doc, genes=[dict(g, **({"class": "cytokines"} if g["gene"] == "IL6" else {})) for g in doc["genes"]])
    with pytest.raises(SaspClassError, match=r"unknown class for IL6 \('cytokines'\)"):
        sasp_classes(path=_write(tmp_path, bad))


def test_duplicated_gene_is_refused(tmp_path, doc):
    il6 = next(g for g in doc["genes"] if g["gene"] == "IL6")
    with pytest.raises(SaspClassError, match=r"listed more than once: \['IL6'\]"):
        sasp_classes(path=_write(tmp_path, dict(doc, genes=doc["genes"] + [il6])))


def test_row_disagreeing_with_the_rules_is_refused(tmp_path, doc):
    rows = [
        dict(g, **({"class": "interleukins", "rule": "il_symbol"} if g["gene"] == "IL6ST" else {}))
        for g in doc["genes"]
    ]
    with pytest.raises(SaspClassError, match="IL6ST: file says interleukins"):
        sasp_classes(path=_write(tmp_path, dict(doc, genes=rows)))


def test_missing_sasp_gene_is_refused(tmp_path, doc):
    rows = [g for g in doc["genes"] if g["gene"] != "CXCL8"]
    with pytest.raises(SaspClassError, match=r"missing genes \['CXCL8'\]"):
        sasp_classes(path=_write(tmp_path, dict(doc, genes=rows)))


def test_class_defined_twice_is_refused(tmp_path, doc):
    with pytest.raises(SaspClassError, match=r"defined twice: \['mmps'\]"):
        sasp_classes(path=_write(tmp_path, dict(doc, classes=doc["classes"] + [doc["classes"][3]])))
