"""CELLxGENE-schema data: a core dataset (Wu 2021) written in the CELLxGENE layout — Ensembl ids with
``feature_name`` symbols, raw counts in ``raw.X``, ontology-coded cell types, donors, disease,
``is_primary_data`` — served over local HTTPS as a 'pinned on first download' registry entry:
pin -> fetch -> load -> the atlas pipeline; and the same file through ``sasp-atlas score`` with no options.

The fixture's donors and duplicate flags are made up (Wu's cells are from one tumour); they exist to
test that donors become samples and that non-primary cells are left out."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml
from conftest import MIRROR, REGISTRY_YAML, WU, registry_entry

from sasp_atlas.data import crosswalk, load_dataset
from sasp_atlas.sources import fetch, registry

CXG = "cxg_fixture_wu2021"
NAME = "cxg_fixture.h5ad"
DISEASE = "triple-negative breast carcinoma"


def _cellxgene_layout(wu: ad.AnnData) -> ad.AnnData:
    n, m = wu.shape
    counts = sp.csr_matrix(wu.layers["original"], dtype=np.float32)
    labels = {name: v["ontology_label"] for name, v in crosswalk()["cell_types"].items()}
    obs = pd.DataFrame(
        {
            "cell_type": [labels[c] for c in wu.obs["cell_type"].astype(str)],
            "cell_type_ontology_term_id": wu.obs["cell_type_ontology_id"].astype(str).to_numpy(),
            "donor_id": np.array(["D1", "D2", "D3"])[np.arange(n) % 3],
            "disease": np.where(np.arange(n) % 10 == 0, "normal", DISEASE),
            "tissue": "breast",
            "assay": "10x 3' v2",
            "is_primary_data": np.arange(n) % 7 != 0,  # every 7th cell is a duplicate from another collection
        },
        index=wu.obs_names,
    )
    var = pd.DataFrame(
        {"feature_name": list(map(str, wu.var_names))},
        index=pd.Index([f"ENSG{i:011d}" for i in range(m)], name="feature_id"),
    )
    raw = ad.AnnData(X=counts, obs=obs.copy(), var=pd.DataFrame(index=var.index))  # raw.var: ids only
    a = ad.AnnData(X=sp.csr_matrix(wu.X, dtype=np.float32), obs=obs, var=var)
    a.raw = raw
    a.uns["schema_version"] = "5.2.0"
    return a


@pytest.fixture
def cxg_file(wu, tmp_path) -> tuple:
    path = tmp_path / NAME
    _cellxgene_layout(wu).write_h5ad(path)
    return path, wu


def _registry(tmp_path, url: str):
    doc = yaml.safe_load(REGISTRY_YAML.read_text())
    wu = registry_entry(doc, WU)
    entry = {
        "id": CXG,
        "profile": "full",
        "title": "Wu 2021 CID4465 in the CELLxGENE layout (test fixture)",
        "species": "human",
        "cancer_type": wu["cancer_type"],
        "cancer_type_short": wu["cancer_type_short"],
        "cancer_type_ontology_id": wu["cancer_type_ontology_id"],
        "tissue": "breast",
        "technology": wu["technology"],
        "value_type": "raw_counts",
        "trust": "pinned on first download",
        "publication": wu["publication"],
        "license": wu["license"],
        "notes": "test fixture",
        "loader": {"name": "cellxgene", "options": {"obs_filter": {"disease": [DISEASE]}}},
        "columns": {
            "cell_type_author": "cell_type",
            "sample": "donor_id",
            "malignant": {"column": "cxg_malignant", "values": ["True"]},
        },
        "files": [{"name": NAME, "url": url, "note": "no hash published by the host"}],
        "expected": {"n_donors": 3},
    }
    doc["datasets"].append(entry)
    reg = tmp_path / "registry_cxg.yaml"
    reg.write_text(yaml.safe_dump(doc, sort_keys=False))
    return reg


@pytest.mark.slow
def test_cellxgene_entry_pin_fetch_load_and_pipeline(cxg_file, https_server, empty_cache, tmp_path, monkeypatch):
    from sasp_atlas.atlas import run_dataset

    path, wu = cxg_file
    (https_server["root"] / NAME).write_bytes(path.read_bytes())
    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    reg = _registry(tmp_path, f"{https_server['url']}/{NAME}")
    monkeypatch.setenv("SASP_ATLAS_REGISTRY", str(reg))
    (record,) = fetch.pin_dataset(CXG, registry=reg)
    assert record["status"] == "pinned on first download"
    assert registry.get_dataset(CXG).files[0]["sha256"] == fetch.file_sha256(path)

    adata = load_dataset(CXG)
    n = wu.n_obs
    keep = (np.arange(n) % 7 != 0) & (np.arange(n) % 10 != 0)  # primary data, the tumour's disease only
    assert adata.n_obs == int(keep.sum())
    assert set(adata.obs["sample"].astype(str)) == {"D1", "D2", "D3"}  # donors are the samples
    # counts from raw.X (integers), symbols from var feature_name, normalised by the registry's value type
    np.testing.assert_array_equal(
        adata.layers["original"].toarray(), wu.layers["original"][np.flatnonzero(keep)].toarray()
    )
    assert "IL6" in adata.var_names
    # Cell Ontology ids used directly: no crosswalk block for this dataset
    assert (
        adata.obs["cell_type_ontology_id"].astype(str) == wu.obs["cell_type_ontology_id"].astype(str)[keep].to_numpy()
    ).all()
    malignant = wu.obs["cell_type_ontology_id"].astype(str).to_numpy()[keep] == "CL:0001064"
    assert (adata.obs["malignant"].to_numpy() == malignant).all() and malignant.sum() > 0

    res = run_dataset(CXG, out_dir=tmp_path / "res", signatures=["senmayo"], with_embedding=False, n_null=50)
    fib = res.celltype_scores.set_index("cell_type").loc["fibroblast"]
    assert fib["n_samples"] == 3 and fib["evidence"] == "replicated (3 tumours)"


@pytest.mark.slow
def test_cellxgene_entry_renders_its_dataset_page(cxg_file, https_server, empty_cache, tmp_path, monkeypatch):
    """... and the dataset page template runs on it (the kernel reads the same registry and cache) and
    shows the trust level."""
    import nbformat

    from sasp_atlas.site.notebooks import execute_page

    path, _ = cxg_file
    (https_server["root"] / NAME).write_bytes(path.read_bytes())
    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    reg = _registry(tmp_path, f"{https_server['url']}/{NAME}")
    monkeypatch.setenv("SASP_ATLAS_REGISTRY", str(reg))
    monkeypatch.setenv(
        "SASP_ATLAS_RESOURCE_MIRROR", str(MIRROR.parent / "reference" / "raw")
    )  # the kernel's HGNC table
    fetch.pin_dataset(CXG, registry=reg)
    out = tmp_path / "book" / "datasets" / f"{CXG}.ipynb"
    execute_page(
        "dataset",
        out,
        {"dataset_id": CXG, "signatures": ["senmayo", "reactome_sasp"], "results": str(tmp_path / "results")},
        cwd=tmp_path,
        title="CELLxGENE fixture",
    )
    text = "\n".join(
        str(o.get("data", {}).get("text/markdown", ""))
        for c in nbformat.read(out, as_version=4).cells
        for o in c.get("outputs", [])
    )
    assert "pinned on first download" in text and (tmp_path / "results" / "tables" / "datasets" / CXG).is_dir()


def test_score_recognises_a_cellxgene_file_without_options(cxg_file, tmp_path):
    from sasp_atlas.data import load_user_data

    path, wu = cxg_file
    ds, adata = load_user_data(path)
    assert set(adata.obs["sample"].astype(str)) == {"D1", "D2", "D3"}
    assert adata.uns["provenance"]["value_type"] == "raw_counts"  # raw.X, not the normalised X
    assert adata.uns["provenance"]["keys"]["sample_key"] == "donor_id"
    assert "IL6" in adata.var_names and adata.n_obs == wu.n_obs
    assert any("CELLxGENE-schema file" in note for note in adata.uns["provenance"]["warnings"])
