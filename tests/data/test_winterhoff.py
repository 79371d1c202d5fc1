"""winterhoff2017_hgsoc_c1, the core's high-grade serous ovarian cancer entry: the se_rds reader on the
real mirror files (bulk column dropped by name, unlabelled cells left out, carriage-return labels, the
NA rule), the ``tpm`` value type, the crosswalk, and the core's four cancer types."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import MIRROR, WINTERHOFF

from sasp_atlas.data import InputError
from sasp_atlas.data.load import normalise
from sasp_atlas.data.readers import READERS, _apply_na_rule, _label_table
from sasp_atlas.sources import get_dataset, list_datasets


def _dense(m) -> np.ndarray:
    return m.toarray() if sp.issparse(m) else np.asarray(m)


def _paths() -> dict:
    return {f["name"]: MIRROR / WINTERHOFF / f["name"] for f in get_dataset(WINTERHOFF).files}


# --------------------------------------------------------------------------- cells, labels, patients
def test_kept_cells_labels_and_patients(winterhoff):
    obs = winterhoff.obs
    assert winterhoff.shape == (66, 17193)
    exp = get_dataset(WINTERHOFF)["expected"]
    assert winterhoff.shape == (exp["n_cells"], exp["n_genes"]) and obs["sample"].nunique() == exp["n_donors"] == 2
    assert obs["cell_type_author"].astype(str).value_counts().to_dict() == {"Epithelial": 37, "Stroma": 29}
    by_patient = obs.groupby(["sample", "cell_type_author"], observed=True).size().to_dict()
    assert by_patient == {
        ("X1", "Epithelial"): 17,
        ("X1", "Stroma"): 10,
        ("X2", "Epithelial"): 20,
        ("X2", "Stroma"): 19,
    }
    assert "Bulk_2" not in winterhoff.obs_names
    assert all(c.startswith(("X1_C", "X2_C")) for c in winterhoff.obs_names)
    assert "X1_C15" in winterhoff.obs_names  # labelled "1_C15" in the label file


def test_label_file_has_carriage_return_line_endings_and_is_parsed():
    path = MIRROR / WINTERHOFF / "scRNAseq_celltypes.txt"
    raw = path.read_bytes()
    assert b"\r" in raw and b"\n" not in raw  # old Mac line endings
    table = _label_table(path, {"labels_header": True, "cell_column": "Cell"})
    assert len(table) == 66 and list(table.columns) == ["Call"]
    assert table.loc["1_C15", "Call"] == "Stroma"


def test_reader_drops_the_bulk_column_and_the_unlabelled_cells_and_logs_them(caplog):
    opts = get_dataset(WINTERHOFF)["loader"]["options"]
    with caplog.at_level("WARNING"):
        X, genes, cells, obs = READERS["se_rds"](_paths(), opts)
    assert X.shape == (66, 17193) and len(genes) == 17193 and len(cells) == 66
    text = caplog.text
    assert "dropped by name (drop_columns): Bulk_2" in text
    assert "26 of 92 cells have no label" in text
    assert "459 of 17652 genes are NA in every kept cell" in text
    prov = obs.attrs["reader_provenance"]
    assert prov["columns_dropped_by_name"] == "Bulk_2" and prov["n_unlabelled_cells_dropped"] == 26
    assert prov["n_genes_dropped_all_na"] == 459 and prov["n_na_values"] == 459 * 66


def test_reader_refuses_a_drop_column_that_is_not_there():
    opts = {**get_dataset(WINTERHOFF)["loader"]["options"], "drop_columns": ["Bulk_1"]}
    with pytest.raises(ValueError, match="Bulk_1"):
        READERS["se_rds"](_paths(), opts)


def test_reader_refuses_the_na_by_default():
    opts = {k: v for k, v in get_dataset(WINTERHOFF)["loader"]["options"].items() if k != "na"}
    with pytest.raises(InputError, match=r"30,294 NA values in 459 genes .*na: drop_genes_na_in_every_cell"):
        READERS["se_rds"](_paths(), opts)


# --------------------------------------------------------------------------- the NA rule
def test_na_rule_on_constructed_matrices():
    genes = ["A", "B", "C"]
    whole = np.array([[1.0, 2.0], [np.nan, np.nan], [0.0, 3.0]])
    with pytest.raises(InputError, match="2 NA values in 1 genes"):
        _apply_na_rule(whole, genes, "refuse", "m")
    M, kept, summary = _apply_na_rule(whole, genes, "drop_genes_na_in_every_cell", "m")
    assert kept == ["A", "C"] and M.shape == (2, 2) and not np.isnan(M).any()
    assert summary["n_genes_dropped_all_na"] == 1 and summary["genes_dropped_all_na"] == "B"
    scattered = np.array([[1.0, np.nan], [np.nan, np.nan], [0.0, 3.0]])  # A measured in one cell only
    with pytest.raises(InputError, match=r"1 genes are NA in some cells .*\(e\.g\. A\).*never imputes"):
        _apply_na_rule(scattered, genes, "drop_genes_na_in_every_cell", "m")
    with pytest.raises(InputError, match="expected one of refuse, drop_genes_na_in_every_cell"):
        _apply_na_rule(whole, genes, "impute_zero", "m")
    clean = np.ones((3, 2))
    assert _apply_na_rule(clean, genes, "refuse", "m")[1] == genes


def test_dropped_genes_are_named_in_provenance_and_absent(winterhoff):
    prov = winterhoff.uns["provenance"]["reader"]
    dropped = prov["genes_dropped_all_na"].split(";")
    assert len(dropped) == prov["n_genes_dropped_all_na"] == 459
    assert not set(dropped) & set(winterhoff.var["symbol_original"])
    assert prov["na_rule"] == "drop_genes_na_in_every_cell"
    assert np.isfinite(_dense(winterhoff.layers["original"])).all()


# --------------------------------------------------------------------------- value type tpm
def test_value_type_is_tpm_normalised_to_log2_tpm10_plus1(winterhoff):
    assert get_dataset(WINTERHOFF)["value_type"] == "tpm" == winterhoff.uns["provenance"]["value_type"]
    orig = _dense(winterhoff.layers["original"]).astype(np.float64)
    sums = orig.sum(axis=1)
    assert sums.max() <= 1e6 and np.median(sums) > 1e5  # full-scale TPM of a gene subset, not TPM/10
    np.testing.assert_allclose(_dense(winterhoff.X), np.log2(orig / 10 + 1), rtol=1e-5, atol=1e-5)
    assert winterhoff.X.dtype == np.float32 and winterhoff.X.format == "csr"
    assert "log2(TPM/10+1)" in winterhoff.uns["provenance"]["normalisation"]


def _adata(values) -> ad.AnnData:
    return ad.AnnData(X=sp.csr_matrix(np.asarray(values, dtype=np.float32)))


@pytest.mark.parametrize(
    "values,match",
    [
        ([[5, 0, 200_000], [1, 2, 300_000]], "integer"),
        ([[1.5, 2.5, 3.5], [0.5, 1.5, 2.5]], "log-transformed"),
        ([[600_000.5, 500_000.5, 0.5], [1.5, 2.5, 3.5]], "sum above"),
        ([[40_000.5, 20_000.5, 0.5], [30_000.5, 10.5, 0.5]], "TPM/10"),
    ],
)
def test_tpm_refuses_other_scales_by_name(values, match):
    with pytest.raises(InputError, match=match):
        normalise(_adata(values), "tpm")


def test_tpm_is_log2_of_tpm_over_10_plus_1():
    values = np.array([[400_000.5, 100_000.25, 0.0], [250_000.75, 0.0, 500_000.5]])
    a = _adata(values)
    out = normalise(a, "tpm")
    np.testing.assert_allclose(_dense(a.X), np.log2(values / 10 + 1), rtol=1e-5)
    assert out["value_type"] == "tpm" and "log1p" not in a.uns


# --------------------------------------------------------------------------- harmonisation + core
def test_harmonised_cell_types(winterhoff):
    obs = winterhoff.obs
    assert (obs["malignant"] == (obs["cell_type_author"] == "Epithelial")).all()
    table = obs[["cell_type_author", "cell_type", "cell_type_ontology_id", "lineage"]].astype(str).drop_duplicates()
    rows = {r.cell_type_author: (r.cell_type, r.cell_type_ontology_id, r.lineage) for r in table.itertuples()}
    assert rows == {
        "Epithelial": ("Malignant cell", "CL:0001064", "malignant"),
        "Stroma": ("Stromal cell", "CL:0000499", "stromal"),
    }
    assert set(obs["sample"].astype(str)) == {"X1", "X2"}


def test_core_has_four_cancer_types():
    core = list_datasets("core")
    types = {d["cancer_type"] for d in core}
    assert len(types) == 4 and "high-grade serous ovarian carcinoma" in types
    assert len({d["cancer_type_ontology_id"] for d in core}) == 4
    assert get_dataset(WINTERHOFF)["cancer_type_ontology_id"] == "MONDO:0005211"  # ovarian serous adenocarcinoma
