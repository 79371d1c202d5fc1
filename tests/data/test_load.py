"""Loading the real datasets into harmonised AnnData objects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import ALL_DATASETS, MGH, PURAM, TIROSH, WU, source_file

import sasp_atlas
import sasp_atlas.data.load as sio
from sasp_atlas.sources.registry import get_dataset


def _dense(m) -> np.ndarray:
    return m.toarray() if sp.issparse(m) else np.asarray(m)


# --------------------------------------------------------------------------- shapes + obs
@pytest.mark.parametrize("dataset_id", ALL_DATASETS)
def test_shape_matches_sources(datasets, sources, dataset_id):
    a = datasets[dataset_id]
    # small_cancer_extra records have no verified shape: the registry's expected block (set from the
    # loader's documented drops, tested literally in test_winterhoff.py) stands in
    v = sources[dataset_id].get("verified") or get_dataset(dataset_id)["expected"]
    assert a.shape == (v["n_cells"], v["n_genes"])
    assert a.obs_names.is_unique and a.var_names.is_unique
    assert a.var_names.name == "gene_symbol" or a.var.index.name == "gene_symbol"


def test_wu_shape_literal(wu):
    assert wu.shape == (1564, 29733)


@pytest.mark.parametrize("dataset_id", ALL_DATASETS)
def test_harmonised_obs_columns(datasets, dataset_id):
    obs = datasets[dataset_id].obs
    for col in ("cell_type_author", "cell_type_fine", "sample", "malignant"):
        assert col in obs, col
    assert obs["malignant"].dtype == bool
    assert not obs["cell_type_author"].isna().any()
    assert not obs["sample"].isna().any()


@pytest.mark.parametrize("dataset_id", ALL_DATASETS)
def test_load_dataset_returns_harmonised_cell_types(datasets, dataset_id):
    """The Python API user gets obs["cell_type"] with Cell Ontology ids straight from load_dataset
    (the crosswalk applied; malignant cells are "Malignant cell", CL:0001064)."""
    from sasp_atlas.data import crosswalk

    obs = datasets[dataset_id].obs
    vocab = crosswalk()["cell_types"]
    assert set(obs["cell_type"].astype(str)) <= set(vocab)
    for ct, onto in zip(obs["cell_type"].astype(str), obs["cell_type_ontology_id"].astype(str)):
        assert vocab[ct]["ontology_id"] == onto and onto.startswith("CL:")
    assert (obs.loc[obs["malignant"], "cell_type"] == "Malignant cell").all()
    table = crosswalk()["datasets"][dataset_id]
    benign = obs[~obs["malignant"]]
    assert (benign["cell_type"].astype(str) == benign["cell_type_author"].astype(str).map(table)).all()


@pytest.mark.parametrize("dataset_id", [WU, MGH, TIROSH, PURAM])
def test_cell_type_counts_match_sources(datasets, sources, dataset_id):
    counts = datasets[dataset_id].obs["cell_type_author"].astype(str).value_counts().to_dict()
    assert counts == sources[dataset_id]["verified"]["cell_type_counts"]


def test_wu_malignant(wu):
    assert int(wu.obs["malignant"].sum()) == 124
    # exactly the author's "Cancer Epithelial" cells
    assert (wu.obs["malignant"] == (wu.obs["cell_type_author"] == "Cancer Epithelial")).all()
    assert set(wu.obs["sample"].astype(str)) == {"CID4465"}


def test_wu_fine_cell_types(wu, sources):
    fine = wu.obs["cell_type_fine"].astype(str).value_counts().to_dict()
    assert fine == sources[WU]["verified"]["celltype_minor_counts"]


def test_mgh_samples_and_malignant(mgh, sources):
    samples = mgh.obs["sample"].astype(str).value_counts().to_dict()
    assert samples == {"MGH53": 800, "MGH54": 800}
    assert samples == sources[MGH]["verified"]["cells_per_patient"]
    assert int(mgh.obs["malignant"].sum()) == 674 + 762
    malignant_labels = set(mgh.obs.loc[mgh.obs["malignant"], "cell_type_author"].astype(str))
    assert malignant_labels == {"malignant_MGH53", "malignant_MGH54"}
    # every malignant cell's label names its own sample
    m = mgh.obs[mgh.obs["malignant"]]
    assert (m["cell_type_author"].astype(str) == "malignant_" + m["sample"].astype(str)).all()


def test_tirosh_samples(tirosh, sources):
    samples = tirosh.obs["sample"].astype(str).value_counts().to_dict()
    expected = {
        ("MGH" + k if k.isdigit() else k): v for k, v in sources[TIROSH]["verified"]["cells_per_patient"].items()
    }
    assert samples == expected
    assert int(tirosh.obs["malignant"].sum()) == 142


def test_puram_has_no_malignant_cells(puram, sources):
    assert int(puram.obs["malignant"].sum()) == 0 == sources[PURAM]["verified"]["malignant_cells"]
    assert puram.obs["sample"].nunique() == 1


# --------------------------------------------------------------------------- values
def test_wu_original_layer_is_raw_counts(wu):
    orig = wu.layers["original"]
    data = orig.data if sp.issparse(orig) else np.asarray(orig)
    assert data.size > 0
    assert np.array_equal(data, np.round(data))
    assert data.min() >= 0
    sums = np.asarray(orig.sum(axis=1)).ravel()
    np.testing.assert_array_equal(sums, wu.obs["nCount_RNA"].to_numpy(dtype=np.float64))


def test_wu_X_is_log1p_normalize_total(wu):
    X = wu.X
    assert sp.issparse(X) and X.format == "csr" and X.dtype == np.float32
    # every cell sums to 1e4 after undoing log1p
    row_sums = np.asarray(np.expm1(X.astype(np.float64)).sum(axis=1)).ravel()
    np.testing.assert_allclose(row_sums, 1e4, rtol=1e-4)
    # and the values equal log1p(counts / total * 1e4), computed here independently
    cells = [0, 1, 17, 500, 1563]
    counts = _dense(wu.layers["original"][cells]).astype(np.float64)
    expected = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)
    np.testing.assert_allclose(_dense(X[cells]), expected, rtol=1e-5, atol=1e-6)
    # zeros stay zeros (sparsity pattern preserved)
    assert X.nnz == wu.layers["original"].nnz


@pytest.mark.parametrize("dataset_id", [MGH, PURAM])
def test_log2_tpm_datasets_keep_released_values(datasets, sources, dataset_id):
    a = datasets[dataset_id]
    assert get_dataset(dataset_id)["value_type"] == "log2_tpm10_plus1"
    X, orig = a.X, a.layers["original"]
    assert X.shape == orig.shape
    assert (X != orig).nnz == 0
    # log2(TPM/10 + 1) scale: non-negative, non-integer, bounded like the released data
    assert X.data.min() >= 0 and X.data.max() < 20
    assert not np.array_equal(X.data, np.round(X.data))


def test_tpm_like_dataset_is_log2_plus1(tirosh):
    orig = _dense(tirosh.layers["original"]).astype(np.float64)
    np.testing.assert_allclose(_dense(tirosh.X), np.log2(orig + 1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dataset_id", ALL_DATASETS)
def test_X_is_float32_csr_finite(datasets, dataset_id):
    X = datasets[dataset_id].X
    assert sp.issparse(X) and X.format == "csr" and X.dtype == np.float32
    assert np.isfinite(X.data).all() and X.data.min() >= 0
    assert "log1p" not in datasets[dataset_id].uns


# --------------------------------------------------------------------------- provenance
@pytest.mark.parametrize("dataset_id", ALL_DATASETS)
def test_provenance(datasets, sources, dataset_id):
    prov = datasets[dataset_id].uns["provenance"]
    src = sources[dataset_id]
    assert prov["dataset_id"] == dataset_id
    assert prov["doi"] == src["publication"]["doi"]
    assert prov["value_type"] == get_dataset(dataset_id)["value_type"]
    assert prov["normalisation"]
    assert set(prov["files"]) == {f["name"] for f in get_dataset(dataset_id).files}
    for name, rec in prov["files"].items():
        s = source_file(sources, dataset_id, name)
        assert rec["url"] == s["raw_url"]
        assert rec["sha256"] == s["sha256"]


# --------------------------------------------------------------------------- h5ad cache
def test_second_load_uses_h5ad_cache_without_fetching(wu, monkeypatch):
    def no_fetch(*args, **kwargs):
        raise AssertionError("fetch_dataset was called although the converted h5ad is cached")

    monkeypatch.setattr(sio, "fetch_dataset", no_fetch)
    again = sasp_atlas.load_dataset(WU)
    assert again is not wu
    assert again.shape == wu.shape
    assert sp.issparse(again.X) and again.X.dtype == np.float32
    assert (again.X != wu.X).nnz == 0
    assert (again.layers["original"] != wu.layers["original"]).nnz == 0
    assert list(again.obs_names) == list(wu.obs_names)
    assert list(again.var_names) == list(wu.var_names)
    assert again.obs["malignant"].dtype == bool
    pd.testing.assert_series_equal(again.obs["cell_type_author"], wu.obs["cell_type_author"])
    assert again.uns["provenance"]["doi"] == wu.uns["provenance"]["doi"]
    assert again.uns["provenance"]["files"] == wu.uns["provenance"]["files"]


def test_use_cache_false_fetches_again(wu, monkeypatch):
    """The counterpart of the test above: the monkeypatch really intercepts fetching."""

    def no_fetch(*args, **kwargs):
        raise RuntimeError("fetch called")

    monkeypatch.setattr(sio, "fetch_dataset", no_fetch)
    with pytest.raises(RuntimeError, match="fetch called"):
        sasp_atlas.load_dataset(WU, use_cache=False)


def test_h5ad_cache_file_location(wu):
    from sasp_atlas.sources.fetch import cache_dir

    key = sio._cache_key(get_dataset(WU))
    assert (cache_dir() / WU / f"converted-{key}.h5ad").is_file()
    assert not list((cache_dir() / WU).glob("*.tmp"))


# --------------------------------------------------------------------------- normalise()
def test_normalise_rejects_bad_input():
    import anndata as ad

    neg = ad.AnnData(X=np.array([[1.0, -1.0], [0.0, 2.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="negative"):
        sio.normalise(neg, "log2_tpm10_plus1")
    nan = ad.AnnData(X=np.array([[1.0, np.nan], [0.0, 2.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        sio.normalise(nan, "raw_counts")
    frac = ad.AnnData(X=np.array([[1.5, 0.0], [0.0, 2.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="not integers"):
        sio.normalise(frac, "raw_counts")
    ok = ad.AnnData(X=np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="unknown value_type"):
        sio.normalise(ok, "cpm")
