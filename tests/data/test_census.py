"""The CELLxGENE Census route (sasp_atlas.data.census), offline: a small Census-shaped SOMA collection written
with write_local_census (2 dataset versions, primary and non-primary cells, two diseases) stands in for the
public release, in the mirror layout <mirror>/cellxgene-census/<version>/soma or through SASP_ATLAS_CENSUS_URI."""

from __future__ import annotations

import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml
from conftest import MIRROR, REGISTRY_YAML

pytest.importorskip("cellxgene_census")
pytest.importorskip("tiledbsoma")

from sasp_atlas.data import census as cz  # noqa: E402
from sasp_atlas.sources import DataUnavailableError, NotPinnedError, fetch, registry  # noqa: E402

VERSION = "2025-01-30"
LUAD = "sikkema2023_hlca_luad_cxg"  # a real registry entry: its dataset version and filter are used as they are
HLCA_VERSION = "dbb5ad81-1713-4aee-8257-396fbabe7c6e"
OTHER_VERSION = "8377b008-13bf-45aa-9d5b-0680a997d76d"
GENES = {  # Ensembl id -> symbol (feature_name)
    "ENSG00000136244": "IL6",
    "ENSG00000169429": "CXCL8",
    "ENSG00000124882": "EREG",
    "ENSG00000105329": "TGFB1",
    "ENSG00000111640": "GAPDH",
    "ENSG00000075624": "ACTB",
    "ENSG00000125968": "ID1",
    "ENSG00000147889": "CDKN2A",
}
CELL_TYPES = [("malignant cell", "CL:0001064"), ("T cell", "CL:0000084"), ("macrophage", "CL:0000235")]


def _dataset(n: int, diseases: list[str], genes: list[str], seed: int, dataset_id: str | None = None) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    types = [CELL_TYPES[i % 3] for i in range(n)]
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical([t[0] for t in types]),
            "cell_type_ontology_term_id": [t[1] for t in types],
            "donor_id": [f"donor{seed}_{i % 4}" for i in range(n)],
            "disease": [diseases[i % len(diseases)] for i in range(n)],
            "tissue": "lung",
            "is_primary_data": [i % 5 != 0 for i in range(n)],  # every fifth cell is a duplicate
        },
        index=[f"cell{i}" for i in range(n)],
    )
    if dataset_id:
        obs["dataset_id"] = dataset_id
    counts = rng.poisson(3.0, size=(n, len(genes))).astype(np.float32)
    var = pd.DataFrame(
        {"feature_name": [GENES[g] for g in genes]}, index=pd.Index(genes, name="feature_id")
    )  # named, as CELLxGENE h5ads have it
    return ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=var)


@pytest.fixture(scope="module")
def inputs() -> dict[str, ad.AnnData]:
    return {
        HLCA_VERSION: _dataset(240, ["lung adenocarcinoma", "normal"], list(GENES)[:6], 1, "hlca-stable-id"),
        OTHER_VERSION: _dataset(150, ["lung adenocarcinoma", "ovarian cancer"], list(GENES)[3:], 2),
    }


@pytest.fixture(scope="module")
def census_mirror(tmp_path_factory, inputs) -> Path:
    """A mirror folder holding only a local Census copy of release VERSION."""
    mirror = tmp_path_factory.mktemp("census_mirror")
    cz.write_local_census(inputs, mirror / "cellxgene-census" / VERSION / "soma", VERSION)
    return mirror


@pytest.fixture
def use_mirror(census_mirror, monkeypatch) -> Path:
    monkeypatch.delenv(fetch.CENSUS_URI_ENV, raising=False)
    monkeypatch.setenv("SASP_ATLAS_MIRROR", str(census_mirror))
    return census_mirror


def _options(**extra) -> dict:
    return {
        "census_version": VERSION,
        "dataset_version_id": HLCA_VERSION,
        "obs_value_filter": "disease == 'lung adenocarcinoma'",
        **extra,
    }


def _expected(adata: ad.AnnData, disease: str = "lung adenocarcinoma") -> ad.AnnData:
    keep = adata.obs["is_primary_data"].to_numpy() & (adata.obs["disease"] == disease).to_numpy()
    return adata[keep]


def _read(options: dict):
    return cz.read_cellxgene_census({}, options)


def test_reads_only_primary_cells_of_the_filtered_disease_of_that_dataset(use_mirror, inputs):
    pin = cz.census_subset_pin(_options())
    X, genes, cells, obs = _read(_options(pin=pin))
    want = _expected(inputs[HLCA_VERSION])
    assert X.shape == (want.n_obs, len(set(GENES))) and isinstance(X, sp.csr_matrix) and X.dtype == np.float32
    assert len(cells) == len(set(cells)) == want.n_obs and list(obs.index) == cells
    assert set(obs["disease"]) == {"lung adenocarcinoma"}
    assert set(obs["donor_id"]) == set(want.obs["donor_id"])  # no donor of the other dataset
    # symbols from feature_name; counts equal what was written (the other dataset's genes are zero here)
    assert genes == list(GENES.values())
    dense = pd.DataFrame(X.toarray(), columns=genes)
    written = pd.DataFrame(want.X.toarray(), columns=list(want.var["feature_name"]))
    np.testing.assert_array_equal(dense[written.columns].to_numpy(), written.to_numpy())
    assert not dense[[g for g in genes if g not in written.columns]].to_numpy().any()
    assert list(obs["cell_type"]) == list(want.obs["cell_type"].astype(str))
    assert pin["n_cells"] == want.n_obs and pin["n_donors"] == want.obs["donor_id"].nunique()


def test_cxg_malignant_is_the_h5ad_readers_rule(use_mirror):
    _, _, _, obs = _read(_options(pin=cz.census_subset_pin(_options())))
    assert set(obs.columns) == {*cz.OBS_COLUMNS, "cxg_malignant"}
    malignant = obs["cell_type_ontology_term_id"] == "CL:0001064"
    assert (obs["cxg_malignant"] == np.where(malignant, "True", "False")).all()
    assert malignant.any() and not malignant.all()


def test_second_dataset_and_other_disease(use_mirror, inputs):
    options = _options(dataset_version_id=OTHER_VERSION, obs_value_filter="disease == 'ovarian cancer'")
    X, genes, cells, obs = _read({**options, "pin": cz.census_subset_pin(options)})
    want = _expected(inputs[OTHER_VERSION], "ovarian cancer")
    assert len(cells) == want.n_obs and set(obs["disease"]) == {"ovarian cancer"}


def test_unknown_dataset_version_is_a_named_error(use_mirror):
    with pytest.raises(cz.CensusDatasetError, match=f"release {VERSION} .*does not hold dataset version 0000"):
        cz.census_subset_pin(_options(dataset_version_id="00000000-0000-0000-0000-000000000000"))


def test_a_filter_keeping_no_cell_is_a_named_error(use_mirror):
    with pytest.raises(cz.CensusDatasetError, match="obs_value_filter"):
        cz.census_subset_pin(_options(obs_value_filter="disease == 'melanoma'"))


def test_unpinned_is_refused_and_a_changed_subset_is_refused(use_mirror):
    with pytest.raises(NotPinnedError, match="registry pin"):
        _read(_options())
    pin = cz.census_subset_pin(_options())
    with pytest.raises(cz.CensusPinMismatchError, match="sha256"):
        _read(_options(pin={**pin, "sha256": "0" * 64}))
    # another subset (both diseases) against this pin: refused, naming the cell count
    with pytest.raises(cz.CensusPinMismatchError, match="n_cells"):
        _read(_options(obs_value_filter="disease != 'x'", pin=pin))


def test_census_uri_env_overrides_the_mirror(census_mirror, tmp_path, monkeypatch):
    copy = tmp_path / "elsewhere"
    shutil.copytree(census_mirror / "cellxgene-census" / VERSION / "soma", copy)
    monkeypatch.setenv("SASP_ATLAS_MIRROR", str(tmp_path / "no_mirror"))
    monkeypatch.setenv(fetch.CENSUS_URI_ENV, str(copy))
    uri, how = fetch.census_location(VERSION)
    assert uri == str(copy) and "SASP_ATLAS_CENSUS_URI" in how
    assert cz.census_subset_pin(_options())["n_cells"] > 0
    monkeypatch.delenv(fetch.CENSUS_URI_ENV)
    assert fetch.census_location(VERSION)[0] is None  # no copy: the public release


def test_write_local_census_refuses_an_existing_folder(tmp_path, inputs):
    (tmp_path / "soma").mkdir()
    with pytest.raises(FileExistsError):
        cz.write_local_census(inputs, tmp_path / "soma", VERSION)


# --------------------------------------------------------------------------- registry: pin and load_dataset
@pytest.fixture
def census_registry(tmp_path, monkeypatch, use_mirror, empty_cache) -> Path:
    """A copy of the real registry text (comments and all) as the active registry; the HGNC table is read from
    the shared reference folder, since the data mirror is the census-only one."""
    monkeypatch.setenv("SASP_ATLAS_RESOURCE_MIRROR", str(MIRROR.parent / "reference" / "raw"))
    path = tmp_path / "data_registry.yaml"
    path.write_text(REGISTRY_YAML.read_text())
    monkeypatch.setenv("SASP_ATLAS_REGISTRY", str(path))
    return path


def test_pin_writes_the_subset_into_the_registry_and_keeps_the_rest(census_registry, inputs):
    before = census_registry.read_text()
    record = cz.pin_census_dataset(LUAD, registry=census_registry)
    assert record["status"] == "pinned" and record["entry"] == LUAD
    after = census_registry.read_text()
    pin = registry.census_pin(registry.get_dataset(LUAD, census_registry))
    assert pin["n_cells"] == record["size"] and pin["sha256"] == record["sha256"]
    assert pin["n_donors"] == _expected(inputs[HLCA_VERSION]).obs["donor_id"].nunique() == 2
    assert f"CELLxGENE Census release {VERSION}" in pin["note"]
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert [line.split(":")[0].strip() for line in added] == ["pin", "n_cells", "n_donors", "sha256", "note"]
    assert before.splitlines()[0] == after.splitlines()[0] and before.count("\n#") == after.count("\n#")
    # pinning again verifies and leaves the file alone
    assert cz.pin_census_dataset(LUAD, registry=census_registry)["status"] == "already pinned"
    assert census_registry.read_text() == after


def test_pin_refuses_a_changed_subset(census_registry):
    doc = yaml.safe_load(census_registry.read_text())
    entry = next(d for d in doc["datasets"] if d["id"] == LUAD)
    entry["loader"]["options"]["pin"] = {"n_cells": 1, "n_donors": 1, "sha256": "a" * 64}
    census_registry.write_text(yaml.safe_dump(doc, sort_keys=False))
    text = census_registry.read_text()
    with pytest.raises(cz.CensusPinMismatchError, match="left as it was"):
        cz.pin_census_dataset(LUAD, registry=census_registry)
    assert census_registry.read_text() == text


def test_pin_all_pins_reachable_entries_and_reports_the_others(census_registry):
    records = {r["entry"]: r for r in cz.pin_census_all(registry=census_registry)}
    census_ids = {d.id for d in registry.list_datasets("full", census_registry) if registry.is_census_entry(d)}
    assert set(records) == census_ids
    assert records[LUAD]["status"] == "pinned"
    # the local copy holds neither the gut atlas version nor liver cells of the TME atlas: reported, not raised
    assert records["oliver2024_gut_crc_cxg"]["status"] == "failed"
    assert "does not hold dataset version" in records["oliver2024_gut_crc_cxg"]["how"]
    assert records["guimaraes2024_tme_liver_cxg"]["status"] == "failed"
    assert records["guimaraes2024_tme_ovarian_cxg"]["status"] == "pinned"
    assert records["oliver2024_gut_crc_cxg"]["retry"] == "sasp-atlas registry pin oliver2024_gut_crc_cxg"


def test_load_dataset_end_to_end(census_registry, inputs):
    from sasp_atlas.data import load_dataset

    with pytest.raises(NotPinnedError, match="registry pin"):
        load_dataset(LUAD, use_cache=False)
    cz.pin_census_dataset(LUAD, registry=census_registry)
    adata = load_dataset(LUAD, use_cache=False)
    want = _expected(inputs[HLCA_VERSION])
    assert adata.n_obs == want.n_obs
    assert adata.obs["malignant"].sum() == (want.obs["cell_type_ontology_term_id"] == "CL:0001064").sum()
    assert set(adata.obs["sample"]) == set(want.obs["donor_id"])
    assert {"IL6", "CXCL8", "CDKN2A"} <= set(adata.var_names)
    prov = adata.uns["provenance"]
    assert prov["census"]["census_version"] == VERSION and prov["census"]["n_cells"] == want.n_obs
    assert prov["files"] == {}
    # the converted cache is keyed by the pin: a second load reads it without the Census
    again = load_dataset(LUAD)
    assert again.n_obs == adata.n_obs


def test_cli_registry_pin_of_a_census_entry(census_registry, capsys, monkeypatch):
    from sasp_atlas.cli import main

    monkeypatch.setenv("COLUMNS", "300")
    assert main(["registry", "pin", LUAD, "--registry", str(census_registry)]) == 0
    out = capsys.readouterr()
    assert "census subset" in out.out and "pinned" in out.out and "Traceback" not in out.err
    assert registry.census_pin(registry.get_dataset(LUAD, census_registry))["n_cells"] > 0


def test_preflight_reports_unpinned_and_unreachable_census_entries(census_registry, monkeypatch):
    from sasp_atlas.atlas.build import preflight

    # nothing else to build: preflight raises with its report (the build's end-of-run table has the same rows)
    ds = registry.get_dataset(LUAD, census_registry)
    with pytest.raises(DataUnavailableError, match=f"not pinned.*run `sasp-atlas registry pin {LUAD}`"):
        preflight([ds], profile="full")

    cz.pin_census_dataset(LUAD, registry=census_registry)
    pinned = registry.get_dataset(LUAD, census_registry)
    monkeypatch.setenv(fetch.CENSUS_URI_ENV, str(census_registry.parent / "no_census_here"))
    with pytest.raises(DataUnavailableError, match=f"not reachable.*cellxgene-census/{VERSION}/soma"):
        preflight([pinned], profile="full")

    monkeypatch.delenv(fetch.CENSUS_URI_ENV)  # the mirror's copy again: the entry is read and kept
    available, problems = preflight([pinned], profile="full")
    assert [d.id for d in available] == [LUAD] and problems == []
