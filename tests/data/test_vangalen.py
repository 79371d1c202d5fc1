"""The van Galen 2019 AML entry (GEO per-sample files, pinned on first download): its loader
(``text_matrix_samples``), crosswalk and review cancer type, on format-faithful files made here.

The real files stay remote. The fixture writes what the public GSE116256 loaders read: per patient a
gzipped ``.dem.txt.gz`` (genes x cells, first column ``Gene``, integer UMI counts) and an
``.anno.txt.gz`` (``Cell``, ``PredictionRF2``, ``PredictionRefined`` malignant/normal, ``CellType``
with ``-like`` for malignant classes), under the registry's own file names, served over local HTTPS:
pin -> fetch -> load. Counts are Wu 2021's (real UMI counts); the labels are assigned by the test."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml
from conftest import REGISTRY_YAML, registry_entry

from sasp_atlas.data import InputError, crosswalk, in_review_cancer_type, load_dataset, review_cancer_types
from sasp_atlas.data.readers import READERS
from sasp_atlas.sources import fetch, registry

AML = "vangalen2019_aml_geo"
LABELS = ["HSC-like", "Prog-like", "Mono-like", "Mono", "T", "CTL", "NK", "B", "Plasma", "cDC", "earlyEry", "ProMono"]


def _entry() -> dict:
    return registry_entry(yaml.safe_load(REGISTRY_YAML.read_text()), AML)


def _write_sample(
    root, files: dict, counts: np.ndarray, genes: list[str], cells: list[str], labels: list[str], unlabelled: int = 0
) -> None:
    dem = pd.DataFrame(counts.T.astype(int), index=pd.Index(genes, name="Gene"), columns=cells)
    with gzip.open(root / files["matrix"], "wt") as fh:
        dem.to_csv(fh, sep="\t")
    kept = cells[unlabelled:]  # the first `unlabelled` cells have no annotation row
    anno = pd.DataFrame(
        {
            "Cell": kept,
            "NumberOfReads": 1000,
            "PredictionRF2": labels[unlabelled:],
            "PredictionRefined": ["malignant" if lab.endswith("-like") else "normal" for lab in labels[unlabelled:]],
            "CellType": labels[unlabelled:],
        }
    )
    with gzip.open(root / files["labels"], "wt") as fh:
        anno.to_csv(fh, sep="\t", index=False)


@pytest.fixture
def aml_files(wu, tmp_path):
    """Three patients of 150 cells from Wu's counts; patient 2 lacks the last 5 genes; 3 unlabelled cells."""
    entry = _entry()
    samples = dict(list(entry["loader"]["options"]["samples"].items())[:3])
    counts = wu.layers["original"][:450].toarray()
    genes = [str(g) for g in wu.var_names]
    root = tmp_path / "served"
    root.mkdir()
    truth = {}
    for k, (sample, files) in enumerate(samples.items()):
        block = counts[150 * k : 150 * (k + 1)]
        g = genes if k != 1 else genes[:-5]
        block = block if k != 1 else block[:, :-5]
        cells = [f"{sample}-D0_{i:04d}" for i in range(150)]
        labels = [LABELS[i % len(LABELS)] for i in range(150)]
        _write_sample(root, files, block, g, cells, labels, unlabelled=3 if k == 0 else 0)
        truth[sample] = (block, g, cells, labels)
    return root, samples, truth


def _registry(tmp_path, https_url: str, samples: dict):
    doc = yaml.safe_load(REGISTRY_YAML.read_text())
    entry = registry_entry(doc, AML)
    entry["loader"]["options"]["samples"] = samples
    names = {v for files in samples.values() for v in files.values()}
    entry["files"] = [dict(f, url=f"{https_url}/{f['name']}") for f in entry["files"] if f["name"] in names]
    reg = tmp_path / "registry_aml.yaml"
    reg.write_text(yaml.safe_dump(doc, sort_keys=False))
    return reg


@pytest.mark.slow
def test_reader_joins_patients_on_the_gene_union(aml_files):
    root, samples, truth = aml_files
    paths = {p.name: p for p in root.iterdir()}
    X, genes, cells, obs = READERS["text_matrix_samples"](paths, {**_entry()["loader"]["options"], "samples": samples})
    first, second, third = samples
    assert len(cells) == 450 - 3 and X.shape == (447, len(truth[first][1]))
    assert cells[0] == f"{first}:{truth[first][2][3]}"  # sample-prefixed ids, unlabelled cells dropped
    assert list(obs["sample"].unique()) == [first, second, third]
    assert genes == truth[first][1]  # union in first-seen order
    # patient 2 has no rows for the last 5 genes: zeros there, its other values exactly as written
    rows2 = np.flatnonzero(obs["sample"].to_numpy() == second)
    assert X[rows2][:, -5:].nnz == 0
    np.testing.assert_array_equal(X[rows2][:, :-5].toarray(), truth[second][0])
    rows1 = np.flatnonzero(obs["sample"].to_numpy() == first)
    np.testing.assert_array_equal(X[rows1].toarray(), truth[first][0][3:])
    assert (obs["PredictionRefined"] == "malignant").sum() == sum(
        lab.endswith("-like") for s in truth.values() for lab in s[3]
    ) - sum(lab.endswith("-like") for lab in truth[first][3][:3])


def test_reader_keeps_the_first_row_of_a_repeated_gene(tmp_path):
    dem = "Gene\tc1\tc2\nIL6\t1\t2\nIL6\t5\t5\nCXCL8\t0\t3\n"
    (tmp_path / "m.txt").write_text(dem)
    (tmp_path / "a.txt").write_text("Cell\tCellType\nc1\tMono\nc2\tT\n")
    with pytest.warns(Warning, match="repeat a gene symbol"):
        X, genes, cells, obs = READERS["text_matrix_samples"](
            {"m.txt": tmp_path / "m.txt", "a.txt": tmp_path / "a.txt"},
            {"labels_header": True, "cell_column": "Cell", "samples": {"P1": {"matrix": "m.txt", "labels": "a.txt"}}},
        )
    assert genes == ["IL6", "CXCL8"] and X.toarray().tolist() == [[1, 0], [2, 3]]
    assert cells == ["P1:c1", "P1:c2"] and obs["CellType"].tolist() == ["Mono", "T"]


def test_reader_needs_samples():
    with pytest.raises(ValueError, match="samples"):
        READERS["text_matrix_samples"]({}, {})


@pytest.mark.slow
def test_entry_pin_fetch_load(aml_files, https_server, empty_cache, tmp_path, monkeypatch):
    root, samples, truth = aml_files
    for p in root.iterdir():
        (https_server["root"] / p.name).write_bytes(p.read_bytes())
    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    reg = _registry(tmp_path, https_server["url"], samples)
    monkeypatch.setenv("SASP_ATLAS_REGISTRY", str(reg))
    records = fetch.pin_dataset(AML, registry=reg)
    assert len(records) == 6 and all(r["status"] == "pinned on first download" for r in records)
    adata = load_dataset(AML)
    assert adata.n_obs == 447
    assert adata.obs["sample"].nunique() == 3  # one diagnosis sample per patient: patients are the units
    # malignant = the authors' PredictionRefined; their -like classes are exactly those cells
    like = adata.obs["cell_type_author"].astype(str).str.endswith("-like").to_numpy()
    assert (adata.obs["malignant"].to_numpy() == like).all()
    assert (adata.obs["cell_type"].astype(str)[like] == "Malignant cell").all()
    mapped = adata.obs[~like].groupby("cell_type_author", observed=True)["cell_type"].first().astype(str).to_dict()
    assert mapped == {
        "Mono": "Monocyte",
        "T": "T cell",
        "CTL": "T cell",
        "NK": "NK cell",
        "B": "B cell",
        "Plasma": "Plasma cell",
        "cDC": "Dendritic cell",
        "earlyEry": "Erythroid cell",
        "ProMono": "Haematopoietic progenitor",
    }
    assert adata.uns["provenance"]["cancer_type_ontology_id"] == "MONDO:0018874"
    np.testing.assert_array_equal(adata.layers["original"][:5].toarray(), truth[next(iter(samples))][0][3:8])


@pytest.mark.slow
def test_non_integer_counts_are_refused_by_name(aml_files, https_server, empty_cache, tmp_path, monkeypatch):
    """A file declared as raw counts that holds normalised values is refused, naming the value type."""
    root, samples, truth = aml_files
    first = next(iter(samples))
    block, genes, cells, labels = truth[first]
    _write_sample(root, samples[first], block, genes, cells, labels, unlabelled=3)
    dem = pd.read_csv(root / samples[first]["matrix"], sep="\t", index_col=0)
    with gzip.open(root / samples[first]["matrix"], "wt") as fh:
        np.log1p(dem).to_csv(fh, sep="\t")
    for p in root.iterdir():
        (https_server["root"] / p.name).write_bytes(p.read_bytes())
    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    reg = _registry(tmp_path, https_server["url"], samples)
    monkeypatch.setenv("SASP_ATLAS_REGISTRY", str(reg))
    fetch.pin_dataset(AML, registry=reg)
    with pytest.raises(InputError, match="raw_counts|integer"):
        load_dataset(AML)


def test_registry_entry_records_its_sources():
    d = registry.get_dataset(AML)
    assert registry.trust_level(d) == "pinned on first download"
    assert d["expected"]["n_donors"] == 12 == len(d["loader"]["options"]["samples"])
    assert len(d.files) == 24 and all(
        f["url"].startswith("https://ftp.ncbi.nlm.nih.gov/geo/samples/GSM3587") for f in d.files
    )
    for sample, files in d["loader"]["options"]["samples"].items():
        assert files["matrix"].endswith(f"_{sample}-D0.dem.txt.gz") and files["labels"].endswith(
            f"_{sample}-D0.anno.txt.gz"
        )
        for name in files.values():
            gsm = name.split("_")[0]
            (f,) = [f for f in d.files if f["name"] == name]
            assert f["url"].endswith(f"/{gsm[:7]}nnn/{gsm}/suppl/{name}")
    assert "found_in" in d.entry and d["publication"]["doi"] == "10.1016/j.cell.2019.01.031"
    assert set(crosswalk()["datasets"][AML].values()) <= set(crosswalk()["cell_types"])


# --------------------------------------------------------------------------- the review's cancer types
def test_review_cancer_types_follow_mondo():
    assert review_cancer_types("MONDO:0018874", include_any=False) == ["Blood cancer"]
    assert review_cancer_types("MONDO:0005061", include_any=False) == ["Lung cancer"]
    assert review_cancer_types("MONDO:0001056", include_any=False) == []  # gastric is not oesophageal
    assert review_cancer_types(None) == ["Malignant tumor"]
    assert in_review_cancer_type(["Blood cancer"], "MONDO:0018874")
    assert not in_review_cancer_type(["Multiple myeloma"], "MONDO:0018874")
    assert in_review_cancer_type(["Malignant tumor"], "MONDO:0005494")  # row 8: any cancer


def test_full_profile_covers_the_review_cancer_types():
    """`sasp-atlas list --profile full`: the review's cancer types that have a registry dataset."""
    covered = {
        t
        for d in registry.list_datasets("full")
        for t in review_cancer_types(d.get("cancer_type_ontology_id"), include_any=False)
    }
    assert covered == {
        "Colorectal cancer",
        "Hepatocellular carcinoma",
        "Lung cancer",
        "Pancreatic ductal adenocarcinoma",
        "Blood cancer",
    }
    assert {"MONDO:0001056", "MONDO:0008170"} <= {d["cancer_type_ontology_id"] for d in registry.list_datasets("full")}


def test_review_cancer_type_ids_are_mondo_descendants():
    """Every accepted id is the review's term or a Mondo descendant; every `broader` id an ancestor."""
    parser = pytest.importorskip("cellxgene_ontology_guide.ontology_parser").OntologyParser()
    for name, rule in crosswalk()["review_cancer_types"].items():
        term = rule["mondo"]
        assert parser.get_term_label(term), name
        for mondo in rule.get("accepts") or []:
            assert mondo == term or term in parser.get_term_ancestors(mondo), (name, mondo)
        for mondo in rule.get("broader") or []:
            assert mondo in parser.get_term_ancestors(term), (name, mondo)
            assert rule.get("note"), name
    for d in registry.list_datasets("full"):
        assert parser.get_term_label(d["cancer_type_ontology_id"]), d.id


@pytest.mark.slow
def test_sparse_counts_stay_integers(aml_files):
    root, samples, _ = aml_files
    X, *_ = READERS["text_matrix_samples"](
        {p.name: p for p in root.iterdir()}, {**_entry()["loader"]["options"], "samples": samples}
    )
    assert sp.issparse(X) and np.array_equal(X.data, np.round(X.data))
