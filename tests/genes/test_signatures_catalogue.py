"""The whole signature catalogue (``signature_sets/*.yaml``) against the verified reference gene sets.

Every catalogued set is compared gene for gene (as sets, and by size) with the reference file and element it
was curated from (:data:`REFERENCE`, plus the SenePy hubs, whose ids are derived from the reference hub keys).
Differences are allowed only where the file documents them:

* ``published_symbols`` (approved -> as published): a previous symbol updated to the current HGNC symbol that
  the reference's own HGNC check records (MSigDB, CellAge, Gavish sets), a protein group split or a previous
  symbol mapped by the reference (Basisty), or a printed name mapped by the reference (review Table 2);
* entries the reference could not resolve (Table 2: KDNA3), which must be named in ``curation_notes``.

The structural checks (fields, ids, date-like symbols, ``list_signatures``) need no reference and always run;
the comparisons are skipped when ``shared/reference/genesets`` is absent (``genesets_dir`` fixture).

Sets with no copy in ``shared/reference/genesets`` are compared with the machine-readable source file they were
read from, in the shared data mirror (:data:`MIRROR_REFERENCE`): the signed Hernandez-Segura 2017 signature, genes
and per-gene directions, against markeR's ``genesets_example.rda``.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

import pytest
import yaml
from conftest import MIRROR

from sasp_atlas import get_signature, list_signatures
from sasp_atlas.genes import derived_from, get_signed_signature, is_signed
from sasp_atlas.genes.signatures import _check_record, signature_record
from sasp_atlas.sources.fetch import file_hashes

REQUIRED = ("id", "name", "family", "species", "description", "genes", "source", "license", "curation_notes")
SOURCE_KEYS = ("citation", "doi", "pmid", "table", "url")
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")

# Excel-mangled symbols: date serials (44443), bare numbers, and dates such as 1-Mar, Sep-04, 2019-09-02, 9/2/2019.
_MONTH = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*"
DATE_LIKE = re.compile(
    rf"^\d+([.,]\d+)?$|^\d{{1,2}}[-/ ]{_MONTH}([-/ ]\d{{2,4}})?$|^{_MONTH}[-/ ]\d{{1,4}}$"
    r"|^\d{4}-\d{1,2}-\d{1,2}|^\d{1,2}/\d{1,2}/\d{2,4}$",
    re.IGNORECASE,
)

# catalogue id -> (reference file in shared/reference/genesets, path to the gene list inside it).
# A path element "state=<S>" selects the genes whose SenMayo category state is <S>.
REFERENCE: dict[str, tuple[str, tuple]] = {
    "senmayo": ("senmayo_human.yaml", ("genes",)),
    "senmayo_secreted": ("senmayo_human.yaml", ("state=Secreted",)),
    "senmayo_transmembrane": ("senmayo_human.yaml", ("state=Transmembrane",)),
    "senmayo_intracellular": ("senmayo_human.yaml", ("state=Intracellular",)),
    "senmayo_mouse": ("senmayo_mouse.yaml", ("genes",)),
    "reactome_sasp": ("reactome_sasp.yaml", ("genes",)),
    "reactome_cellular_senescence": ("reactome_cellular_senescence.yaml", ("genes",)),
    "fridman_senescence_up": ("fridman_senescence_up.yaml", ("genes",)),
    "fridman_senescence_dn": ("fridman_senescence_dn.yaml", ("genes",)),
    "kamminga_senescence": ("kamminga_senescence.yaml", ("genes",)),
    "chicas_rb1_targets_senescent": ("chicas_rb1_targets_senescent.yaml", ("genes",)),
    "tang_senescence_tp53_targets_up": ("tang_senescence_tp53_targets_up.yaml", ("genes",)),
    "cellage_induce": ("cellage_build3.yaml", ("genes", "induces")),
    "cellage_inhibit": ("cellage_build3.yaml", ("genes", "inhibits")),
    "deepscence_core_up": ("deepscence_coregs.yaml", ("genes", "up")),
    "deepscence_core_down": ("deepscence_coregs.yaml", ("genes", "down")),
    "basisty2020_core_sasp_fibroblast": ("basisty2020_core_sasp_fibroblast.yaml", ("genes",)),
    "basisty2020_core_sasp_fibroblast_epithelial": ("basisty2020_core_sasp_fibroblast_epithelial.yaml", ("genes",)),
    **{
        sid: ("gavish2023_malignant_mps.yaml", ("genes", label))
        for sid, label in {
            "gavish_mp5_stress": "MP5 Stress",
            "gavish_mp6_hypoxia": "MP6 Hypoxia",
            "gavish_mp7_stress_in_vitro": "MP7 Stress (in vitro)",
            "gavish_mp9_unfolded_protein_response": "MP9 Unfolded protein response",
            "gavish_mp12_emt_i": "MP12 EMT-I",
            "gavish_mp13_emt_ii": "MP13 EMT-II",
            "gavish_mp14_emt_iii": "MP14 EMT-III",
            "gavish_mp15_emt_iv": "MP15 EMT IV",
            "gavish_mp16_mes_glioma": "MP16 MES (glioma)",
            "gavish_mp17_interferon_mhc_ii_i": "MP17 Interferon/MHC-II (I)",
            "gavish_mp18_interferon_mhc_ii_ii": "MP18 Interferon/MHC-II (II)",
            "gavish_mp19_epithelial_senescence": "MP19 Epithelial Senescence",
            "gavish_mp22_secreted_i": "MP22 Secreted I",
            "gavish_mp23_secreted_ii": "MP23 Secreted II",
            "gavish_mp39_metal_response": "MP39 Metal-response",
        }.items()
    },
    # review Table 2: one set per row (1-based row number = index + 1), genes = the reference's HGNC mapping
    **{
        f"table2_{ct}": ("table2_review.yaml", ("rows", i, "hgnc_symbols"))
        for i, ct in enumerate(
            [
                "plasma_cells",
                "epithelial_colon_cells",
                "liver_hepatocytes",
                "lung_epithelial_cells",
                "epithelial_cells_of_pancreatic_duct",
                "fibroblasts",
                "myeloid_cells",
                "t_cells",
            ]
        )
    },
}
SENEPY_FILE = "senepy_human_hubs.yaml"
# catalogue id -> (file in the shared data mirror, R object, list element) for sets without a reference gene-set file
MIRROR_REFERENCE = {
    "hernandez_segura2017_core_senescence": (
        "marthandan2016_replicative_bulk/genesets_example.rda",
        "genesets_example",
        "HernandezSegura",
    ),
}

# how each family's published_symbols are justified by the reference
_HGNC_UPDATED = {"msigdb_senescence", "reactome", "cellage", "gavish2023_mps", "senmayo", "deepscence"}

# licence phrase each family must state (as the reference README / files state them)
LICENCE_PHRASE = {
    "senmayo": "CC BY 4.0",
    "msigdb_senescence": "CC BY 4.0",
    "reactome": "CC0",
    "cellage": "No licence statement",
    "gavish2023_mps": "MIT",
    "deepscence": "MIT",
    "senepy_human_hubs": "MIT",
    "table2_review": "CC BY-NC-SA 3.0",
    "basisty2020": "CC BY 4.0",
    "hernandez_segura2017": "MIT",
}

# sets that must not be scored as a plain (up) expression signature
MUST_HAVE_SCORING_NOTE = {
    "reactome_sasp",
    "cellage_induce",
    "cellage_inhibit",
    "fridman_senescence_dn",
    "deepscence_core_down",
    "basisty2020_core_sasp_fibroblast",
    "basisty2020_core_sasp_fibroblast_epithelial",
    "hernandez_segura2017_core_senescence",
}
DOWN_SETS = {"fridman_senescence_dn", "cellage_inhibit", "deepscence_core_down"}


# ------------------------------------------------------------------------------------------------ helpers
def _files() -> dict[str, dict]:
    folder = resources.files("sasp_atlas.genes").joinpath("signature_sets")
    return {
        p.name: yaml.safe_load(p.read_text())
        for p in sorted(folder.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".yaml")
    }


FILES = _files()
RECORDS = {rec["id"]: rec for rec in FILES.values()}
CATALOGUE_IDS = sorted(RECORDS)
REFERENCE_IDS = [sid for sid in CATALOGUE_IDS if sid not in MIRROR_REFERENCE]


@cache
def _ref_doc(genesets_dir: Path, filename: str) -> dict:
    return yaml.safe_load((genesets_dir / filename).read_text())


def _snake(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def senepy_id(hub: dict) -> str:
    """Catalogue id of a SenePy hub: ``senepy_hub_<tissue>_<cell type>_<hub number>``."""
    return f"senepy_hub_{_snake(hub['tissue'])}_{_snake(hub['cell_type'])}_{hub['hub']}"


def _senepy_hubs(genesets_dir: Path) -> dict[str, dict]:
    return {senepy_id(h): h for h in _ref_doc(genesets_dir, SENEPY_FILE)["hubs"]}


def reference_of(genesets_dir: Path, sid: str) -> tuple[dict, list[str]]:
    """(reference document, reference gene list) a catalogued set was curated from."""
    if sid.startswith("senepy_hub_"):
        hubs = _senepy_hubs(genesets_dir)
        assert sid in hubs, f"{sid}: no SenePy reference hub with this id"
        return _ref_doc(genesets_dir, SENEPY_FILE), [str(g) for g in hubs[sid]["genes"]]
    assert sid in REFERENCE, f"{sid}: not mapped to a reference in REFERENCE"
    filename, path = REFERENCE[sid]
    doc = _ref_doc(genesets_dir, filename)
    node = doc
    for step in path:
        if isinstance(step, str) and step.startswith("state="):
            node = [g for g in doc["genes"] if doc["categories"][g]["state"] == step.split("=", 1)[1]]
        else:
            node = node[step]
    return doc, [str(g) for g in node]


def _notes(rec: dict) -> str:
    return "\n".join(rec.get("curation_notes") or [])


def _hgnc_current(doc: dict) -> dict[str, list[str]]:
    return {
        f["symbol"]: list(f.get("current") or [])
        for f in (doc.get("hgnc_check") or {}).get("flags", [])
        if f["status"].startswith("not approved")
    }


# ------------------------------------------------------------------------------------------------ structure
def test_regex_catches_excel_dates():
    for bad in ("44443", "44808", "1-Mar", "01-Sep", "Sep-04", "MAR-1", "2019-09-02", "9/2/2019", "1.5"):
        assert DATE_LIKE.search(bad), bad
    for ok in (
        "SEPTIN4",
        "MARCHF1",
        "MARCH1",
        "SEPT4",
        "H3-3A",
        "DEC1",
        "C15orf48",
        "AC011043.1",
        "H2BC12L",
        "4931428F04Rik",
        "IL6",
    ):
        assert not DATE_LIKE.search(ok), ok


@pytest.mark.parametrize("filename", sorted(FILES))
def test_file_fields_and_id(filename):
    rec = FILES[filename]
    missing = [k for k in REQUIRED if k not in rec]
    assert not missing, f"{filename}: missing {missing}"
    assert rec["id"] == filename[: -len(".yaml")], "id must equal the file name"
    assert SNAKE.match(rec["id"]), f"id {rec['id']!r} is not snake_case"
    assert SNAKE.match(rec["family"]), f"family {rec['family']!r} is not snake_case"
    assert rec["species"] in {"human", "mouse"}
    for key in ("name", "description", "license"):
        assert isinstance(rec[key], str) and rec[key].strip(), key
    assert isinstance(rec["source"], dict)
    for key in SOURCE_KEYS:
        assert key in rec["source"], f"source.{key} missing (use null when unknown)"
    assert rec["source"]["citation"] and rec["source"]["url"]
    if rec["source"]["pmid"] is not None:
        assert re.fullmatch(r"\d+", str(rec["source"]["pmid"]))
    if rec["source"]["doi"] is not None:
        assert str(rec["source"]["doi"]).startswith("10.")
    notes = rec["curation_notes"]
    assert isinstance(notes, list) and notes and all(isinstance(n, str) and n.strip() for n in notes)
    genes = rec["genes"]
    assert isinstance(genes, list) and genes
    assert all(isinstance(g, str) and g and g == g.strip() and " " not in g for g in genes)
    assert len(genes) == len(set(genes)), "duplicated genes"
    assert set(rec.get("categories") or {}) <= set(genes)
    assert set(rec.get("published_symbols") or {}) <= set(genes)
    if "scoring_note" in rec:
        assert isinstance(rec["scoring_note"], str) and rec["scoring_note"].strip()
    if "direction" in rec:
        assert rec["direction"] in {"up", "down"}
    if "directions" in rec:
        assert set(rec["directions"]) == set(genes) and set(rec["directions"].values()) <= {1, -1}
        assert "SIGNED" in rec.get("scoring_note", ""), "a signed set says so in its scoring_note"


@pytest.mark.parametrize("sid", CATALOGUE_IDS)
def test_no_date_like_symbols(sid):
    rec = RECORDS[sid]
    bad = [g for g in rec["genes"] if DATE_LIKE.search(g)]
    assert not bad, f"{sid}: Excel-mangled / date-like symbols in genes: {bad}"
    bad_pub = [p for p in (rec.get("published_symbols") or {}).values() if DATE_LIKE.search(str(p))]
    assert not bad_pub, bad_pub


def test_list_signatures_reports_every_file():
    """``list_signatures`` reports each file's record as it is (the ids themselves are checked against the
    reference in :func:`test_catalogue_ids_are_the_ones_the_reference_defines`)."""
    df = list_signatures()
    assert sorted(df["id"]) == CATALOGUE_IDS
    by_id = df.set_index("id")
    for sid, rec in RECORDS.items():
        assert by_id.loc[sid, "n_genes"] == len(rec["genes"]), sid
        assert signature_record(sid)["genes"] == rec["genes"]
    fam = df.set_index("id")["family"].to_dict()
    assert all(fam[sid] == rec["family"] for sid, rec in RECORDS.items())


def test_contract_ids_present():
    expected = set(REFERENCE)
    assert expected <= set(CATALOGUE_IDS), sorted(expected - set(CATALOGUE_IDS))
    unmapped = [
        sid
        for sid in CATALOGUE_IDS
        if sid not in REFERENCE and sid not in MIRROR_REFERENCE and not sid.startswith("senepy_hub_")
    ]
    assert not unmapped, f"catalogued sets without a reference mapping: {unmapped}"


def test_licences_and_scoring_notes():
    for sid, rec in RECORDS.items():
        phrase = LICENCE_PHRASE.get(rec["family"])
        assert phrase is not None, f"{sid}: family {rec['family']!r} has no licence expectation"
        assert phrase in rec["license"], f"{sid}: licence should state {phrase!r}"
    for sid in MUST_HAVE_SCORING_NOTE:
        assert RECORDS[sid].get("scoring_note"), f"{sid} needs a scoring_note"
    for sid in DOWN_SETS:
        assert RECORDS[sid].get("direction") == "down", sid
        assert "LOW" in RECORDS[sid]["scoring_note"], sid
    assert "histone" in RECORDS["reactome_sasp"]["scoring_note"].lower()
    for sid, rec in RECORDS.items():
        if rec["family"] in {"table2_review", "senepy_human_hubs"}:
            assert rec.get("scoring_note"), sid


def test_senmayo_subsets_partition_senmayo():
    subsets = [RECORDS[f"senmayo_{s}"]["genes"] for s in ("secreted", "transmembrane", "intracellular")]
    assert [len(s) for s in subsets] == [83, 20, 22]
    union = [g for s in subsets for g in s]
    assert len(union) == len(set(union)) and set(union) == set(RECORDS["senmayo"]["genes"])
    cats = RECORDS["senmayo"]["categories"]
    for state, genes in zip(("secreted", "transmembrane", "intracellular"), subsets):
        assert {g for g, c in cats.items() if c == state} == set(genes)
    assert {sid for sid, rec in RECORDS.items() if rec["species"] == "mouse"} == {"senmayo_mouse"}


def test_cellage_sets_are_separate_and_unclear_left_out():
    induce, inhibit = set(RECORDS["cellage_induce"]["genes"]), set(RECORDS["cellage_inhibit"]["genes"])
    assert not induce & inhibit
    for sid in ("cellage_induce", "cellage_inhibit"):
        assert "unclear" in _notes(RECORDS[sid])


def test_gavish_programs():
    gav = {sid: rec for sid, rec in RECORDS.items() if rec["family"] == "gavish2023_mps"}
    assert "gavish_mp19_epithelial_senescence" in gav
    for sid, rec in gav.items():
        assert re.fullmatch(r"gavish_mp\d+_[a-z0-9_]+", sid)
        assert sid.startswith(f"gavish_mp{rec['gavish']['mp']}_")
        assert len(rec["genes"]) == 50
        assert "44443" in _notes(rec), "MP28 date serials must be recorded in curation_notes"
    assert not any(rec["gavish"]["mp"] == 28 for rec in gav.values())


def test_table2_has_eight_rows():
    t2 = {sid: rec for sid, rec in RECORDS.items() if rec["family"] == "table2_review"}
    assert len(t2) == 8
    assert sorted(rec["table2"]["row"] for rec in t2.values()) == list(range(1, 9))
    for sid, rec in t2.items():
        assert sid.startswith("table2_")
        assert sid == "table2_" + _snake(rec["table2"]["cell_type"])
        assert isinstance(rec["table2"]["cancer_types"], list) and rec["table2"]["cancer_types"]
        assert rec["source"]["doi"] == "10.14348/molcells.2022.0036"
    plasma, myeloid, tcells = RECORDS["table2_plasma_cells"], RECORDS["table2_myeloid_cells"], RECORDS["table2_t_cells"]
    assert "KDNA3" not in plasma["genes"] and "KDNA3" in _notes(plasma)
    assert not {"KCNA3", "KPNA3"} & set(plasma["genes"]), "KDNA3 must not be guessed"
    assert "CCL2" in myeloid["genes"] and "MCP-1" in _notes(myeloid) and len(myeloid["genes"]) == 6
    assert "SPP1" in tcells["genes"] and "CXXC1" not in tcells["genes"] and "CXXC1" in _notes(tcells)


# ------------------------------------------------------------------------------------------------ vs reference
def test_every_senepy_hub_is_catalogued(genesets_dir):
    hubs = _senepy_hubs(genesets_dir)
    assert len(hubs) == _ref_doc(genesets_dir, SENEPY_FILE)["n_hubs"] == 64
    ours = {sid for sid, rec in RECORDS.items() if rec["family"] == "senepy_human_hubs"}
    assert ours == set(hubs)
    for sid in ours:
        rec = RECORDS[sid]
        h = hubs[sid]
        assert (rec["senepy"]["tissue"], rec["senepy"]["cell_type"], rec["senepy"]["hub"]) == (
            h["tissue"],
            h["cell_type"],
            h["hub"],
        )
        assert "predate current HGNC" in _notes(rec)


def test_table2_rows_match_reference(genesets_dir):
    doc = _ref_doc(genesets_dir, "table2_review.yaml")
    assert len(doc["rows"]) == 8
    for i, row in enumerate(doc["rows"], start=1):
        rec = RECORDS["table2_" + _snake(row["cell_type"])]
        assert rec["table2"]["row"] == i
        assert rec["table2"]["cell_type"] == row["cell_type"]
        assert rec["table2"]["cancer_types"] == [row["cancer_type"]]
        seen: set[str] = set()
        for e in row["entries"]:
            if not e["hgnc"]:  # unresolved in the reference: must be dropped and documented
                assert e["published"] not in rec["genes"] and e["published"] in _notes(rec), e["published"]
            elif set(e["hgnc"]) <= seen:  # printed twice under two names (MCP-1 = CCL2): documented
                assert e["published"] in _notes(rec), e["published"]
            seen |= set(e["hgnc"])
        assert set(rec["genes"]) == seen and len(rec["genes"]) == len(seen)


def _gavish_id(label: str) -> str:
    """Catalogue id of a Gavish 2023 meta-program from its reference label (``MP19 Epithelial Senescence``)."""
    number, name = re.fullmatch(r"MP(\d+)\s+(.+)", label).groups()
    return f"gavish_mp{number}_{_snake(name)}"


def test_catalogue_ids_are_the_ones_the_reference_defines(genesets_dir):
    """The catalogue's ids (as ``list_signatures`` reports them) against ids derived from the reference
    content, not from our own files: the SenMayo categories, the Gavish MPs the reference flags as relevant,
    the Table 2 rows, the CellAge and DeepScence directions and the SenePy hubs; the single-set reference
    files by their file names; plus the set read from the data mirror."""
    senmayo = _ref_doc(genesets_dir, "senmayo_human.yaml")
    states = {c["state"] for c in senmayo["categories"].values()}
    expected = {"senmayo", "senmayo_mouse", *(f"senmayo_{_snake(st)}" for st in states)}
    expected |= {
        _gavish_id(label) for label in _ref_doc(genesets_dir, "gavish2023_malignant_mps.yaml")["relevant_programs"]
    }
    expected |= {"table2_" + _snake(row["cell_type"]) for row in _ref_doc(genesets_dir, "table2_review.yaml")["rows"]}
    expected |= {
        f"cellage_{d.removesuffix('s')}"
        for d in _ref_doc(genesets_dir, "cellage_build3.yaml")["genes"]
        if d != "unclear"
    }
    expected |= {f"deepscence_core_{d}" for d in _ref_doc(genesets_dir, "deepscence_coregs.yaml")["genes"]}
    expected |= set(_senepy_hubs(genesets_dir))
    expected |= {
        "reactome_sasp",
        "reactome_cellular_senescence",
        "fridman_senescence_up",
        "fridman_senescence_dn",
        "kamminga_senescence",
        "chicas_rb1_targets_senescent",
        "tang_senescence_tp53_targets_up",
        "basisty2020_core_sasp_fibroblast",
        "basisty2020_core_sasp_fibroblast_epithelial",
    }
    for sid in expected & set(REFERENCE):  # each id names the reference file (and element) its genes are compared with
        assert (genesets_dir / REFERENCE[sid][0]).is_file(), sid
    expected |= set(MIRROR_REFERENCE)
    listed = set(list_signatures()["id"])
    assert listed == expected, (
        f"catalogued but not in the reference: {sorted(listed - expected)}; "
        f"in the reference but not catalogued: {sorted(expected - listed)}"
    )
    assert set(REFERENCE) | set(MIRROR_REFERENCE) | set(_senepy_hubs(genesets_dir)) == expected


@pytest.mark.parametrize("sid", REFERENCE_IDS)
def test_genes_equal_reference(genesets_dir, sid):
    rec = RECORDS[sid]
    doc, ref = reference_of(genesets_dir, sid)
    published = rec.get("published_symbols") or {}
    to_current = {p: a for a, p in published.items()}
    expected = [to_current.get(g, g) for g in ref]
    genes = rec["genes"]
    assert set(genes) == set(expected), (
        f"only in catalogue: {sorted(set(genes) - set(expected))}; "
        f"only in reference: {sorted(set(expected) - set(genes))}"
    )
    assert len(genes) == len(set(expected))
    if sid.startswith("senepy_hub_"):
        assert len(genes) == _senepy_hubs(genesets_dir)[sid]["n_genes"]
    elif REFERENCE[sid][1] == ("genes",) and isinstance(doc.get("n_genes"), int):
        assert len(genes) == doc["n_genes"]


@pytest.mark.parametrize("sid", [s for s in CATALOGUE_IDS if RECORDS[s].get("published_symbols")])
def test_published_symbols_are_documented(genesets_dir, sid):
    rec = RECORDS[sid]
    doc, ref = reference_of(genesets_dir, sid)
    notes = _notes(rec)
    for approved, printed in rec["published_symbols"].items():
        if rec["family"] == "table2_review":
            row = doc["rows"][rec["table2"]["row"] - 1]
            assert any(e["published"] == printed and approved in e["hgnc"] for e in row["entries"]), (approved, printed)
        elif rec["family"] == "basisty2020":
            assert printed in doc["published_symbols"], printed
            assert approved in printed.split(";") or doc["symbol_mapping"].get(printed) == approved
        else:
            assert rec["family"] in _HGNC_UPDATED
            assert printed in ref, f"{printed} is not in the reference list"
            assert _hgnc_current(doc).get(printed) == [approved], (
                f"{printed} -> {approved} is not the single current symbol recorded by the reference HGNC check"
            )
            assert printed in notes and approved in notes, f"{printed} -> {approved} not explained in curation_notes"


@pytest.mark.parametrize("sid", REFERENCE_IDS)
def test_citation_ids_match_reference(genesets_dir, sid):
    rec = RECORDS[sid]
    doc, _ = reference_of(genesets_dir, sid)
    src = doc.get("source") or {}
    ref_doi = src.get("doi")
    ref_pmid = src.get("pmid")
    assert rec["source"]["doi"] == ref_doi, f"doi {rec['source']['doi']!r} != reference {ref_doi!r}"
    assert (None if rec["source"]["pmid"] is None else str(rec["source"]["pmid"])) == (
        None if ref_pmid is None else str(ref_pmid)
    )
    if ref_doi is None:
        assert re.search(r"\bDOI\b", _notes(rec)), "a null DOI must be explained in curation_notes"


def test_reference_date_serials_not_catalogued(genesets_dir):
    doc = _ref_doc(genesets_dir, "gavish2023_malignant_mps.yaml")
    serials = {str(g) for genes in doc["genes"].values() for g in genes if DATE_LIKE.search(str(g))}
    assert serials == {"44443", "44447"}
    all_genes = {g for rec in RECORDS.values() for g in rec["genes"]}
    assert not serials & all_genes


# ------------------------------------------------------------------------------------------------ signed sets
def _mirror_set(sid: str) -> tuple[list[str], dict[str, int], Path]:
    """(genes, directions, path) of a set in its mirror source file (skips when the mirror is absent)."""
    import warnings

    import rdata

    rel, obj, element = MIRROR_REFERENCE[sid]
    path = MIRROR / rel
    if not path.is_file():
        pytest.skip(f"{path} not found (shared data mirror)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = rdata.read_rda(path)[obj][element]
    genes = [str(g) for g in table["gene"]]
    return genes, {str(g): int(d) for g, d in zip(table["gene"], table["enrichment"])}, path


@pytest.mark.parametrize("sid", sorted(MIRROR_REFERENCE))
def test_signed_set_equals_its_source_file(sid):
    """Genes (in order) and per-gene directions equal the pinned source file, whose hashes are the ones recorded."""
    genes, directions, path = _mirror_set(sid)
    rec = RECORDS[sid]
    assert rec["genes"] == genes
    assert rec["directions"] == directions
    sha, blob = file_hashes(path)
    assert (sha, blob, path.stat().st_size) == (
        rec["source_file"]["sha256"],
        rec["source_file"]["git_blob_sha1"],
        rec["source_file"]["size"],
    )
    assert (
        rec["source_file"]["commit"] in rec["source_file"]["url"]
        and rec["source_file"]["path"] in rec["source_file"]["url"]
    )


def test_hernandez_segura_signature():
    sid = "hernandez_segura2017_core_senescence"
    rec = RECORDS[sid]
    assert len(rec["genes"]) == 55
    assert (
        sum(d == 1 for d in rec["directions"].values()) == 32 and sum(d == -1 for d in rec["directions"].values()) == 23
    )
    assert rec["source"]["doi"] == "10.1016/j.cub.2017.07.033" and rec["source"]["pmid"] == "28844647"
    assert "Curr Biol" in rec["source"]["citation"] and "2652" in rec["source"]["citation"]
    assert is_signed(sid) and not is_signed("senmayo")
    signed = get_signed_signature(sid)
    assert list(signed) == get_signature(sid) == rec["genes"]  # all approved HGNC symbols: nothing renamed
    assert signed == rec["directions"]
    assert derived_from(sid) == (["E-MTAB-5403"], False)
    assert derived_from("senmayo") == ([], False)
    df = list_signatures().set_index("id")
    assert df.loc[sid, "signed"] and not df.loc["senmayo", "signed"]
    assert df.loc[sid, "derived_from"] == "E-MTAB-5403"
    with pytest.raises(ValueError, match="no per-gene directions"):
        get_signed_signature("senmayo")


def test_reference_folder_has_no_other_copy(genesets_dir):
    """If the shared reference gene sets ever carry this signature, it must agree with ours."""
    for path in genesets_dir.glob("*.yaml"):
        doc = _ref_doc(genesets_dir, path.name)
        if "hernandez" in str(doc.get("id", "")).lower() or "hernandez" in path.name.lower():
            assert set(doc["genes"]) == set(RECORDS["hernandez_segura2017_core_senescence"]["genes"])


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r["directions"].pop("ACADVL"), "every gene"),
        (lambda r: r["directions"].update(ACADVL=2), r"\+1 \(up in senescence\) or -1"),
        (lambda r: r["directions"].update(ACADVL=True), r"\+1 \(up in senescence\) or -1"),
        (lambda r: r.update(derived_from=["not an accession"]), "list of accessions"),
    ],
)
def test_malformed_directions_are_refused(change, message):
    rec = yaml.safe_load(yaml.safe_dump(RECORDS["hernandez_segura2017_core_senescence"]))
    change(rec)
    with pytest.raises(ValueError, match=message):
        _check_record(rec, "x.yaml")
