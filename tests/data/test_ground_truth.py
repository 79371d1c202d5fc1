"""Ground truth in the registry (issue 26, item 1): labelled senescence data, their own kind of entry.

* The two core entries load from the REAL mirror files: Marthandan 2016 (39 bulk samples x 11,526 genes,
  5 strains, 18 senescent / 21 proliferating, ``cpm_like`` values) and Chan 2024 (500 mouse hepatocytes,
  D12_A 117 / D12_B 215 / mV_A 48 / mV_B 120, Seurat v5 ``.rds`` read without R, HCOP orthologs).
* Values are on the atlas's log1p-CP10k scale; a value type that does not fit is refused by name.
* A malformed ground-truth entry is a RegistryError naming entry and field; ground-truth entries are
  never listed as tumour datasets.
* The two full entries (Teo 2019 10x, Casella 2019 GEO counts) are checked on their real label file
  (Teo) and with small FORMAT-FAITHFUL files written here (10x-era GEO text matrix; GEO NCBI counts,
  annotation and series matrix), loaded offline through the registry as the real files would be.
"""

from __future__ import annotations

import copy
import gzip
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import MIRROR, REGISTRY_YAML, write_registry

from sasp_atlas import list_datasets, load_ground_truth
from sasp_atlas.data import InputError, normalise
from sasp_atlas.data.ground_truth import CONDITIONS, ground_truth_accessions, ground_truth_obs, training_overlap
from sasp_atlas.data.readers import _label_table
from sasp_atlas.sources import get_dataset, get_ground_truth, list_ground_truth
from sasp_atlas.sources.fetch import git_blob_sha1, pin_registry_text
from sasp_atlas.sources.registry import RegistryError, validate_registry

MARTHANDAN = "marthandan2016_replicative_bulk"
CHAN = "chan2024_hepatocyte_ois_toy"
TEO = "teo2019_imr90_ois_10x"
CASELLA = "casella2019_multi_inducer_bulk"
TEO_LABELS = MIRROR / "husi2025_senescence_index" / "GSE115301_Growing_Sen_10x_metadata.txt.gz"
RESOURCES = MIRROR.parent / "reference" / "raw"
GENES = [
    "IL6",
    "CXCL8",
    "CCL2",
    "MMP1",
    "SERPINE1",
    "TIMP1",
    "CDKN1A",
    "CDKN2A",
    "IL1B",
    "VEGFA",
    "LMNB1",
    "MKI67",
    "TOP2A",
    "COL1A1",
    "FN1",
    "VIM",
    "ACTB",
    "GAPDH",
    "GLB1",
    "TP53",
]


def _doc() -> dict:
    return yaml.safe_load(REGISTRY_YAML.read_text())


def _gt(doc: dict, gt_id: str) -> dict:
    return next(g for g in doc["ground_truth"] if g["id"] == gt_id)


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (shared data mirror, section 'Senescence ground truth')")
    return path


@pytest.fixture(scope="module")
def marthandan(mirror):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_ground_truth(MARTHANDAN)


@pytest.fixture(scope="module")
def chan(mirror):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_ground_truth(CHAN)


# --------------------------------------------------------------------------- core entries, real files
def test_marthandan_real_files(marthandan):
    a = marthandan
    assert a.shape == (39, 11526)
    assert a.obs["condition"].value_counts().to_dict() == {
        "proliferating": 21,
        "senescent": 18,
        "quiescent": 0,
        "control": 0,
    }
    assert a.obs["unit"].nunique() == 5
    assert sorted(a.obs["unit"].unique()) == ["BJ", "HFF", "IMR90", "MRC5", "WI-38"]
    gt = a.uns["ground_truth"]
    assert (gt["positive_class"], list(gt["negative_classes"]), gt["unit_name"], gt["n_units"]) == (
        "senescent",
        ["proliferating"],
        "strain",
        5,
    )
    assert (gt["species"], gt["assay"], gt["value_type"], gt["truth"]) == ("human", "bulk", "cpm_like", "per_sample")
    assert "replicative" in gt["inducer"] and list(gt["training_overlap"]) == ["husi"]
    # per strain: both classes present (the unit of replication carries its own comparison)
    per_unit = a.obs.groupby("unit", observed=True)["condition"].agg(lambda c: set(c.astype(str)))
    assert all(s == {"senescent", "proliferating"} for s in per_unit)


def test_marthandan_strains_equal_the_shared_transcription(marthandan):
    """The registry's strain per sample (columns_by_id) equals shared/data's strains.csv, sample for sample."""
    strains = pd.read_csv(_need(MIRROR / MARTHANDAN / "strains.csv"), dtype=str).set_index("sampleID")
    assert strains.shape[0] == 39
    got = marthandan.obs["unit"]
    assert got.to_dict() == strains.loc[got.index, "strain"].to_dict()
    assert marthandan.obs["condition_author"].to_dict() == strains.loc[got.index, "condition"].to_dict()


def test_marthandan_values_are_cpm_like_and_normalised(marthandan):
    """The value-type decision, from the numbers: linear (not log), never integer, per-sample sums 0.74-0.93 million;
    X = log1p of the values rescaled to 1e4 per sample (the atlas's scale for counts)."""
    original = marthandan.layers["original"].toarray().astype(np.float64)
    sums = original.sum(axis=1)
    assert 738_000 < sums.min() < 738_300 and 931_500 < sums.max() < 931_800
    assert original.min() > 1.6 and original.max() > 27_000
    assert np.mean(original == np.round(original)) < 0.01  # float32: only some large values land on integers
    expected = np.log1p(original / sums[:, None] * 1e4)
    np.testing.assert_allclose(marthandan.X.toarray(), expected, rtol=1e-5, atol=1e-6)
    assert "log1p" in marthandan.uns["provenance"]["normalisation"]


def test_chan_real_file(chan):
    a = chan
    assert a.n_obs == 500
    assert a.obs["condition_author"].value_counts().to_dict() == {"D12_B": 215, "mV_B": 120, "D12_A": 117, "mV_A": 48}
    assert a.obs["condition"].value_counts()[["senescent", "control"]].tolist() == [332, 168]
    assert a.obs["unit"].nunique() == 4
    gt = a.uns["ground_truth"]
    assert (gt["species"], gt["assay"], gt["truth"], gt["unit_name"]) == (
        "mouse",
        "single-cell",
        "condition",
        "replicate sample",
    )
    assert "not per-cell truth" in gt["truth_note"]
    m = a.uns["provenance"]["ortholog_mapping"]
    assert m["n_mouse_genes"] == 15766
    assert m["n_mapped"] + m["n_unmapped"] == 15766
    assert m["n_human_genes"] == a.n_vars == m["n_mapped"] - m["n_dropped_as_duplicates"]
    assert a.n_vars > 12_000  # most mouse genes have a usable human ortholog
    assert {"IL6", "CDKN1A", "CDKN2A", "ALB"} <= set(a.var_names)
    assert a.var.loc["CDKN1A", "symbol_mouse"] == "Cdkn1a"


def test_chan_counts_and_library_size(chan, mirror):
    """Raw integer counts kept as released; X is log1p CP10k over ALL mouse genes (before the ortholog subset)."""
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = rdata.read_rds(mirror / CHAN / "TOY_DATA_Chan_et_al_2024.rds")
    total = obj.__dict__["meta.data"]["nCount_RNA"].astype(float)
    original = chan.layers["original"]
    assert np.array_equal(original.data, np.round(original.data))
    cp10k = np.expm1(chan.X.toarray().astype(np.float64))
    lib = total.loc[chan.obs_names].to_numpy()
    np.testing.assert_allclose(cp10k * lib[:, None] / 1e4, original.toarray(), rtol=1e-4, atol=1e-3)


def test_core_entries_meet_their_expected_counts(marthandan, chan):
    """The registry's ``expected`` block of each core entry is what loads from the mirror."""
    for a in (marthandan, chan):
        exp = get_ground_truth(a.uns["ground_truth"]["id"])["expected"]
        assert a.n_obs == exp["n_obs"]
        assert a.obs["unit"].nunique() == exp["n_units"]
        if "n_genes" in exp:
            assert a.n_vars == exp["n_genes"]
        counts = a.obs["condition"].value_counts()
        assert {c: int(counts.get(c, 0)) for c in exp["classes"]} == exp["classes"]
        assert int(counts.sum()) == sum(exp["classes"].values())


# --------------------------------------------------------------------------- value types refused by name
def _bulk(values: np.ndarray) -> ad.AnnData:
    return ad.AnnData(
        X=values.astype(np.float32),
        obs=pd.DataFrame(index=[f"s{i}" for i in range(values.shape[0])]),
        var=pd.DataFrame(index=[f"G{j}" for j in range(values.shape[1])]),
    )


def test_cpm_like_refuses_what_does_not_fit():
    rng = np.random.default_rng(0)
    cpm = rng.gamma(0.5, 1.0, (4, 300))
    cpm = cpm / cpm.sum(axis=1, keepdims=True) * 850_000  # a filtered CPM matrix
    normalise(_bulk(cpm), "cpm_like")  # fits
    with pytest.raises(InputError, match="log-transformed"):
        normalise(_bulk(np.log2(cpm + 1)), "cpm_like")
    with pytest.raises(InputError, match="raw counts"):
        normalise(_bulk(np.round(cpm)), "cpm_like")
    with pytest.raises(InputError, match="sum outside"):
        normalise(_bulk(cpm * 3), "cpm_like")  # TPM/FPKM of another total
    with pytest.raises(InputError, match="not integers"):
        normalise(_bulk(cpm), "raw_counts")


def test_marthandan_declared_log_or_counts_is_refused(mirror, tmp_path, monkeypatch, empty_cache):
    """The real matrix declared as raw counts is refused by name (it is not integer)."""
    doc = _doc()
    _gt(doc, MARTHANDAN)["value_type"] = "raw_counts"
    monkeypatch.setenv("SASP_ATLAS_REGISTRY", str(write_registry(doc, tmp_path)))
    with pytest.raises(InputError, match="raw_counts but the values are not integers"):
        load_ground_truth(MARTHANDAN)


# --------------------------------------------------------------------------- schema and kind
def test_registry_lists_ground_truth_apart():
    gt_ids = {g.id for g in list_ground_truth()}
    assert {MARTHANDAN, CHAN, TEO, CASELLA} <= gt_ids
    assert {g.id for g in list_ground_truth("core")} == {MARTHANDAN, CHAN}
    assert not gt_ids & {d.id for d in list_datasets()}, "ground-truth entries must not be tumour datasets"
    assert not gt_ids & {d.id for d in list_datasets("core")}
    with pytest.raises(KeyError, match="unknown dataset id"):
        get_dataset(MARTHANDAN)
    with pytest.raises(KeyError, match="tumour dataset"):
        get_ground_truth(list_datasets("core")[0].id)
    for g in list_ground_truth():
        assert g["labels"]["senescent"], g.id


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda g: g.pop("unit"), r"ground-truth entry 'marthandan2016_replicative_bulk'.*unit"),
        (lambda g: g.update(cancer_type="none"), r"unknown key\(s\) \['cancer_type'\]"),
        (lambda g: g["labels"].update(quiescent=["Proliferative"]), r"more than one class"),
        (lambda g: g["labels"].pop("proliferating"), r"ground-truth entry 'marthandan2016_replicative_bulk'.*labels"),
        (lambda g: g["labels"].update(truth="yes"), r"labels.truth"),
        (lambda g: g.update(assay="spatial"), r"assay"),
        (lambda g: g.update(value_type="log_cpm"), r"value_type"),
    ],
)
def test_malformed_ground_truth_entry_is_refused(change, message):
    doc = copy.deepcopy(_doc())
    change(_gt(doc, MARTHANDAN))
    with pytest.raises(RegistryError, match=message):
        validate_registry(doc)


def test_ground_truth_id_may_not_repeat_a_dataset_id():
    doc = copy.deepcopy(_doc())
    _gt(doc, MARTHANDAN)["id"] = doc["datasets"][0]["id"]
    with pytest.raises(RegistryError, match="duplicated dataset id"):
        validate_registry(doc)


def test_unmatched_label_is_refused_by_name():
    obs = pd.DataFrame(
        {"Condition": ["Senescent", "Quiescent", "Proliferative"], "strain": ["A", "A", "A"]}, index=["a", "b", "c"]
    )
    with pytest.raises(InputError, match=r"\['Quiescent'\].*fit no class"):
        ground_truth_obs(obs, _gt(_doc(), MARTHANDAN))
    entry = copy.deepcopy(_gt(_doc(), MARTHANDAN))
    entry["labels"]["quiescent"] = ["Quiescent"]
    out, keep, summary = ground_truth_obs(obs, entry)
    assert list(out["condition"].astype(str)) == ["senescent", "quiescent", "proliferating"]
    assert summary["n_per_class"] == {"senescent": 1, "quiescent": 1, "proliferating": 1, "control": 0}


def test_pin_writes_into_a_ground_truth_entry():
    text = REGISTRY_YAML.read_text()
    pinned = pin_registry_text(text, TEO, {"GSE115301_Growing_Sen_10x_count.txt.gz": {"sha256": "a" * 64, "size": 123}})
    doc = yaml.safe_load(pinned)
    validate_registry(doc)
    f = next(f for f in _gt(doc, TEO)["files"] if f["name"] == "GSE115301_Growing_Sen_10x_count.txt.gz")
    assert (f["sha256"], f["size"]) == ("a" * 64, 123)
    assert _gt(doc, MARTHANDAN) == _gt(yaml.safe_load(text), MARTHANDAN)


# --------------------------------------------------------------------------- full entries
def _teo_table() -> pd.DataFrame:
    options = get_ground_truth(TEO)["loader"]["options"]
    return _label_table(_need(TEO_LABELS), options)


def test_teo_real_label_file():
    """The real GSE115301 label file (hUSI copy, pinned): 480 cells, RIS 240 / Growing 207 / GFP 33; GFP cells are
    their own control class; the unit is the 10x library (Condition1), one condition per library."""
    table = _teo_table()
    assert table.shape[0] == 480 and table.index.is_unique
    assert table["Condition2"].value_counts().to_dict() == {"RIS": 240, "Growing": 207, "GFP": 33}
    out, keep, summary = ground_truth_obs(table, get_ground_truth(TEO))
    assert keep.all()
    assert summary["n_per_class"] == {"senescent": 240, "quiescent": 0, "proliferating": 207, "control": 33}
    assert out["unit"].value_counts().to_dict() == {"Senescence1": 273, "Growing1": 116, "Growing2": 91}
    assert set(out.loc[out["condition"] == "control", "unit"]) == {"Senescence1"}
    suffix = pd.Series(out.index.str.split("-").str[1], index=out.index)
    assert (
        out.groupby("unit")["unit"].size().to_dict()
        == suffix.map({"1": "Senescence1", "3": "Growing1", "4": "Growing2"}).value_counts().to_dict()
    )
    assert get_ground_truth(TEO)["expected"]["classes"] == {"senescent": 240, "proliferating": 207, "control": 33}


@pytest.fixture
def gt_mirror(tmp_path, monkeypatch, empty_cache, no_network):
    """A temporary mirror and a registry copy whose constructed files carry their git blob ids."""
    if not RESOURCES.is_dir():
        pytest.skip(f"reference resources not found at {RESOURCES} (HGNC table for symbol resolution)")
    root = tmp_path / "mirror"
    root.mkdir()
    monkeypatch.setenv("SASP_ATLAS_MIRROR", str(root))
    monkeypatch.setenv("SASP_ATLAS_RESOURCE_MIRROR", str(RESOURCES))

    def build(gt_id: str, written: list[str], links: dict[str, Path] | None = None) -> Path:
        doc = _doc()
        entry = _gt(doc, gt_id)
        for f in entry["files"]:
            if f["name"] in written:
                f["git_blob_sha1"] = git_blob_sha1(root / gt_id / f["name"])
        for folder_file, real in (links or {}).items():
            target = root / folder_file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(real)
        monkeypatch.setenv("SASP_ATLAS_REGISTRY", str(write_registry(doc, tmp_path)))
        return root

    return root, build


@pytest.mark.parametrize("corner", [None, ""])
def test_teo_loads_offline_from_a_format_faithful_count_file(gt_mirror, corner):
    """GEO's GSE115301 count file layout (tab-separated genes x cells, gzipped; R write.table header of the barcodes
    without a corner cell, which the public scripts' fread(...) %>% column_to_rownames('V1') implies, or with an empty
    one): real barcodes in another order plus 5 unlabelled ones (dropped), 20 real symbols."""
    root, build = gt_mirror
    table = _teo_table()
    rng = np.random.default_rng(3)
    cells = list(table.index[rng.permutation(len(table))]) + [f"TTTTTTTTTTTTTT{i:02d}-2" for i in range(5)]
    counts = rng.poisson(1.5, (len(GENES), len(cells))).astype(int)
    counts[GENES.index("ACTB")] += 5
    name = "GSE115301_Growing_Sen_10x_count.txt.gz"
    (root / TEO).mkdir()
    with gzip.open(root / TEO / name, "wt") as fh:
        fh.write("\t".join(([corner] if corner is not None else []) + cells) + "\n")
        for g, row in zip(GENES, counts):
            fh.write(g + "\t" + "\t".join(map(str, row)) + "\n")
    build(TEO, [name], {f"husi2025_senescence_index/{TEO_LABELS.name}": TEO_LABELS})
    a = load_ground_truth(TEO)
    assert a.n_obs == 480 and list(a.var_names) == GENES
    assert a.obs["condition"].value_counts()[["senescent", "proliferating", "control"]].tolist() == [240, 207, 33]
    assert a.uns["ground_truth"]["n_units"] == 3 and a.uns["ground_truth"]["truth"] == "condition"
    written = pd.DataFrame(counts.T, index=cells, columns=GENES)
    np.testing.assert_array_equal(a.layers["original"].toarray(), written.loc[a.obs_names].to_numpy())
    lib = written.loc[a.obs_names].sum(axis=1).to_numpy()[:, None]
    np.testing.assert_allclose(a.X.toarray(), np.log1p(written.loc[a.obs_names].to_numpy() / lib * 1e4), rtol=1e-5)


def _series_matrix(gsms: list[str], titles: list[str]) -> str:
    q = lambda xs: "\t".join(f'"{x}"' for x in xs)  # noqa: E731
    return "\n".join(
        [
            '!Series_title\t"Transcriptome signature of cellular senescence"',
            '!Series_geo_accession\t"GSE130727"',
            f"!Sample_title\t{q(titles)}",
            f"!Sample_geo_accession\t{q(gsms)}",
            f"!Sample_source_name_ch1\t{q(['fibroblast'] * len(gsms))}",
            f"!Sample_characteristics_ch1\t{q(['cell line: x'] * len(gsms))}",
            "!series_matrix_table_begin",
            '"ID_REF"\t' + q(gsms),
            "!series_matrix_table_end",
            "",
        ]
    )


def test_casella_loads_offline_from_format_faithful_geo_files(gt_mirror):
    """GEO's NCBI-generated count layout (GeneID rows, GSM columns, integer counts), its annotation table (GeneID ->
    Symbol, more columns) and a series matrix: senescent by the title rule, quiescent its own class, the rest control,
    the unit the cell line named in the title."""
    root, build = gt_mirror
    titles = [
        "WI-38 IR (+) rep1",
        "WI-38 IR (-) rep1",
        "WI-38 HRAS rep1",
        "WI-38 EV rep1",
        "IMR-90 PDL52 rep1",
        "IMR-90 PDL24 rep1",
        "HUVEC IR (+) rep1",
        "HUVEC IR (-) rep1",
        "HAEC quiescent rep1",
        "WI38 Replicative Exhaustion",
    ]
    gsms = [f"GSM37500{i:02d}" for i in range(len(titles))]
    gene_ids = [str(3569 + i) for i in range(len(GENES))] + ["999999"]
    rng = np.random.default_rng(5)
    counts = rng.poisson(50, (len(gene_ids), len(gsms)))
    folder = root / CASELLA
    folder.mkdir()
    opts = get_ground_truth(CASELLA)["loader"]["options"]
    with gzip.open(folder / opts["counts"], "wt") as fh:
        fh.write("GeneID\t" + "\t".join(gsms) + "\n")
        for g, row in zip(gene_ids, counts):
            fh.write(g + "\t" + "\t".join(map(str, row)) + "\n")
    with gzip.open(folder / opts["annotation"], "wt") as fh:
        fh.write("GeneID\tSymbol\tDescription\tGeneType\n")
        for g, s in zip(gene_ids, GENES):
            fh.write(f"{g}\t{s}\tsome gene\tprotein-coding\n")
    with gzip.open(folder / opts["series_matrix"], "wt") as fh:
        fh.write(_series_matrix(gsms, titles))
    build(CASELLA, [opts["counts"], opts["annotation"], opts["series_matrix"]])
    a = load_ground_truth(CASELLA)
    assert a.n_obs == 10 and list(a.var_names) == GENES + ["GeneID:999999"]
    cond = dict(zip(a.obs["title"], a.obs["condition"].astype(str)))
    assert [t for t, c in cond.items() if c == "senescent"] == [
        "WI-38 IR (+) rep1",
        "WI-38 HRAS rep1",
        "IMR-90 PDL52 rep1",
        "HUVEC IR (+) rep1",
        "WI38 Replicative Exhaustion",
    ]
    assert cond["HAEC quiescent rep1"] == "quiescent"
    assert {cond[t] for t in ("WI-38 IR (-) rep1", "WI-38 EV rep1", "IMR-90 PDL24 rep1", "HUVEC IR (-) rep1")} == {
        "control"
    }
    assert set(a.obs["unit"]) == {"WI-38", "WI38", "IMR-90", "HUVEC", "HAEC"}
    assert list(a.uns["ground_truth"]["negative_classes"]) == ["quiescent", "control"]
    np.testing.assert_array_equal(a.layers["original"].toarray(), counts.T[[gsms.index(g) for g in a.obs_names]])


def test_conditions_are_the_documented_classes():
    assert CONDITIONS == ("senescent", "quiescent", "proliferating", "control")


def test_training_overlap_flags():
    """hUSI was trained on Marthandan (GSE63577) and Casella (GSE130727) runs; a signature whose source names its data
    sets only partly (Hernandez-Segura: E-MTAB-5403, list incomplete) is 'unknown', never 'independent'."""
    assert ground_truth_accessions(MARTHANDAN) == ["GSE63577"]
    assert training_overlap("husi", MARTHANDAN) is True
    assert training_overlap("husi", CASELLA) is True
    assert training_overlap("husi", TEO) is False
    assert training_overlap("hernandez_segura2017_core_senescence", MARTHANDAN) is None
    assert training_overlap("senmayo", MARTHANDAN) is None  # the source names no data set
    husi_runs = pd.read_csv(
        _need(MIRROR / "husi2025_senescence_index" / "trainSet_meta843.csv"),
        encoding="latin-1",
        usecols=["Data_id", "Study_name"],
        dtype=str,
    )
    studies = set(husi_runs["Study_name"])
    for g in list_ground_truth():
        listed = bool(set(ground_truth_accessions(g.id)) & studies)
        assert ("husi" in (g.get("training_overlap") or [])) == listed, g.id
