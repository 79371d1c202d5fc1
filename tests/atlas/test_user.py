"""Bring your own data: a user's .h5ad is validated, harmonised and scored; every bad input is
refused (InputError) or handled by a documented rule (InputWarning) with a message naming it.
Each test here backs a row of book/bad_inputs.md."""

from __future__ import annotations

import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

from sasp_atlas import genes, stats
from sasp_atlas.atlas import score_user_file
from sasp_atlas.data import InputError, InputWarning, load_user_data
from sasp_atlas.data import user as data_user
from sasp_atlas.data import validate as data_validate
from sasp_atlas.genes.signatures import get_signature
from sasp_atlas.site import figures, pages
from sasp_atlas.sources.fetch import file_sha256

SIGS = ["senmayo", "fridman_senescence_up"]


def user_adata(n_per_type=(40, 40, 4), *, seed: int = 0, n_fillers: int = 150) -> ad.AnnData:
    """Raw counts (CSR float32) of the two signatures' genes plus fillers; obs ``annotation`` and ``patient``.

    Cell types: Fibroblast (SenMayo genes 3x higher), T cell, and a rare type below 10 cells.
    """
    rng = np.random.default_rng(seed)
    genes = list(dict.fromkeys(get_signature("senmayo") + get_signature("fridman_senescence_up")))
    genes += [f"FILLER{i}" for i in range(n_fillers)]
    types = np.repeat(["Fibroblast", "T cell", "Rare"], n_per_type)
    lam = np.outer(rng.uniform(0.5, 1.5, len(types)), rng.gamma(0.6, 2.0, len(genes)))
    lam[np.ix_(types == "Fibroblast", np.isin(genes, get_signature("senmayo")))] *= 3
    counts = rng.poisson(lam).astype(np.float32)
    counts[:, 0] += 1  # no empty cell
    obs = pd.DataFrame(
        {"annotation": types, "patient": [f"P{i % 3 + 1}" for i in range(len(types))]},
        index=[f"cell{i}" for i in range(len(types))],
    )
    return ad.AnnData(sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=genes))


def write(adata: ad.AnnData, tmp_path, name: str = "user.h5ad"):
    path = tmp_path / name
    adata.write_h5ad(path)
    return path


def load(path, **kw):
    kw = {"cell_type_key": "annotation", "sample_key": "patient", "min_cells": 3, **kw}
    return load_user_data(path, **kw)


def refused(path, **kw) -> str:
    with pytest.raises(InputError) as exc:
        load(path, **kw)
    return str(exc.value)


# --------------------------------------------------------------------------- value types
def test_raw_counts_are_detected_and_normalised(tmp_path):
    raw = user_adata()
    path = write(raw, tmp_path, "My Tumour-01.h5ad")
    ds, adata = load(path, cancer_type="melanoma")
    expected = raw.copy()
    sc.pp.normalize_total(expected, target_sum=1e4)
    sc.pp.log1p(expected)
    assert sp.issparse(adata.X) and adata.X.format == "csr" and adata.X.dtype == np.float32
    np.testing.assert_allclose(adata.X.toarray(), expected.X.toarray(), rtol=1e-6)
    prov = adata.uns["provenance"]
    assert prov["value_type"] == "raw_counts" and "every value is an integer" in prov["value_type_detected"]
    assert prov["normalisation"].startswith("raw counts -> normalize_total")
    assert prov["file"] == "My Tumour-01.h5ad" and prov["sha256"] == file_sha256(path)
    assert prov["cancer_type"] == "melanoma"
    # the Dataset record the pages use
    assert ds.id == "my_tumour_01" and re.fullmatch(r"[a-z0-9][a-z0-9_]*", ds.id)
    assert ds["publication"] == {"citation": "User-provided data: My Tumour-01.h5ad", "doi": "", "accession": ""}
    assert ds["tissue"] == "user data" and ds["technology"] == "unknown" and ds["license"] == "user data"
    (f,) = ds.files
    assert f == {
        "name": path.name,
        "url": f"file://{path.resolve()}",
        "sha256": file_sha256(path),
        "size": path.stat().st_size,
    }
    # harmonised obs: the user's label is the cell type (no crosswalk)
    obs = adata.obs
    assert (obs["cell_type"].astype(str) == raw.obs["annotation"]).all()
    assert (obs["cell_type_author"].astype(str) == raw.obs["annotation"]).all()
    assert (obs["sample"].astype(str) == raw.obs["patient"]).all()
    assert set(obs["lineage"].astype(str)) == {""} and set(obs["cell_type_ontology_id"].astype(str)) == {""}
    assert obs["malignant"].dtype == bool and not obs["malignant"].any()


def test_log_normalised_values_are_used_as_they_are(tmp_path):
    a = user_adata()
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    _, adata = load(write(a, tmp_path))
    np.testing.assert_array_equal(adata.X.toarray(), a.X.toarray())
    assert adata.uns["provenance"]["value_type"] == "log_normalised"
    assert "used as they are" in adata.uns["provenance"]["normalisation"]


def test_linear_scale_non_integer_values_are_refused(tmp_path):
    a = user_adata()
    sc.pp.normalize_total(a, target_sum=1e6)  # CPM, not logged
    msg = refused(write(a, tmp_path))
    assert "not integers" in msg and "TPM/CPM" in msg and "--value-type tpm" in msg


def _tpm_user_file(winterhoff, tmp_path):
    """The real Fluidigm C1 ovarian data (2 patients) as a user would have it: linear TPM in X."""
    X = winterhoff.X.toarray() if sp.issparse(winterhoff.X) else np.asarray(winterhoff.X)
    tpm = (np.expm1(X * np.log(2)) * 10).astype(np.float32)  # un-log log2(TPM/10 + 1)
    obs = pd.DataFrame(
        {
            "annotation": winterhoff.obs["cell_type"].astype(str).to_numpy(),
            "patient": winterhoff.obs["sample"].astype(str).to_numpy(),
        },
        index=winterhoff.obs_names,
    )
    return write(
        ad.AnnData(sp.csr_matrix(tpm), obs=obs, var=pd.DataFrame(index=winterhoff.var_names)),
        tmp_path,
        "ovarian_tpm.h5ad",
    )


def test_tpm_values_are_named_with_value_type(winterhoff, tmp_path):
    """A real TPM file is refused undeclared (the message names --value-type tpm) and read as the
    registry reads TPM when declared: the same log2(TPM/10 + 1) values as the registry entry."""
    path = _tpm_user_file(winterhoff, tmp_path)
    assert "--value-type tpm" in refused(path)
    ds, adata = load(path, value_type="tpm")
    prov = adata.uns["provenance"]
    assert prov["value_type"] == "tpm" and "declared" in prov["value_type_detected"]
    assert "log2(TPM/10+1)" in prov["normalisation"]
    ref = winterhoff[:, adata.var_names]
    ref_X = ref.X.toarray() if sp.issparse(ref.X) else np.asarray(ref.X)
    np.testing.assert_allclose(adata.X.toarray(), ref_X, rtol=1e-4, atol=1e-4)
    assert "--value-type raw_counts" in refused(path, value_type="raw_counts")
    assert "not log-transformed" in refused(path, value_type="log_normalised")


def test_a_users_file_has_its_own_trust_and_says_an_unknown_cancer_type(tmp_path):
    path = write(user_adata(), tmp_path)
    ds, _ = load(path)
    md = pages.provenance_markdown(ds, "raw counts -> ...")
    assert f"Trust level: **your file, sha256 `{file_sha256(path)}`**" in md and "published" not in md
    assert "a cancer type not given (pass --cancer-type)" in md
    celltype = pd.DataFrame({"cell_type": ["T cell"], "n_cells": [10], "n_samples": [2]})
    assert "of a cancer type not given (pass --cancer-type)" in pages.dataset_motivation(ds, celltype)
    ds, _ = load(path, cancer_type="ovarian cancer")
    assert "10 cells (2 tumours) of ovarian cancer" in pages.dataset_motivation(ds, celltype)


def test_negative_values_are_refused_and_the_counts_layer_works(tmp_path):
    a = user_adata()
    a.layers["counts"] = a.X.copy()
    sc.pp.log1p(a)
    sc.pp.scale(a)  # z-scored X: what scores must never see
    path = write(a, tmp_path)
    msg = refused(path)
    assert "negative value(s)" in msg and "not z-scored" in msg
    assert "log-normalised layer or the raw counts" in msg and "'counts'" in msg and "--layer" in msg
    _, adata = load(path, layer="counts")
    assert adata.uns["provenance"]["value_type"] == "raw_counts"
    assert adata.uns["provenance"]["keys"]["layer"] == "counts"
    assert "layer 'nope' not found" in refused(path, layer="nope")


def test_nan_and_inf_are_refused_naming_count_and_where(tmp_path):
    a = user_adata()
    X = a.X.toarray()
    X[3, 5], X[7, 5], X[9, 2] = np.nan, np.nan, np.inf
    a.X = sp.csr_matrix(X)
    msg = refused(write(a, tmp_path))
    assert "3 non-finite value(s) (2 NaN, 1 infinite)" in msg
    assert "in 3 cell(s) and 2 gene(s)" in msg
    for cell in ("cell3", "cell7", "cell9"):
        assert cell in msg
    for gene in (a.var_names[5], a.var_names[2]):
        assert gene in msg
    assert "Scores need finite values" in msg


def test_all_zero_matrix_is_refused(tmp_path):
    a = user_adata()
    a.X = sp.csr_matrix(a.shape, dtype=np.float32)
    assert "no non-zero value" in refused(write(a, tmp_path))


@pytest.mark.parametrize("layout", ["dense", "csc", "backed-dense", "backed-sparse"])
def test_dense_sparse_and_backed_files_give_the_same_object(tmp_path, layout):
    a = user_adata()
    _, ref = load(write(a, tmp_path, "ref.h5ad"))
    b = a.copy()
    if layout in ("dense", "backed-dense"):
        b.X = a.X.toarray()
    elif layout == "csc":
        b.X = sp.csc_matrix(a.X)
    _, got = load(write(b, tmp_path, "other.h5ad"), backed=layout.startswith("backed"))
    assert sp.issparse(got.X) and got.X.format == "csr"
    np.testing.assert_array_equal(got.X.toarray(), ref.X.toarray())
    pd.testing.assert_frame_equal(got.obs, ref.obs)
    assert list(got.var_names) == list(ref.var_names)


def test_large_files_are_read_in_blocks(tmp_path, monkeypatch):
    """Above BACKED_BYTES the file is opened backed and read block by block (a dense X is never whole)."""
    a = user_adata()
    a.X = a.X.toarray()
    path = write(a, tmp_path)
    _, ref = load(path, backed=False)
    monkeypatch.setattr(data_user, "BACKED_BYTES", 1)
    monkeypatch.setattr(data_validate, "BLOCK_BYTES", 4 * a.n_vars * 7)  # 7 rows per block
    opened = []
    real = ad.read_h5ad
    monkeypatch.setattr(data_user.ad, "read_h5ad", lambda p, **kw: opened.append(kw) or real(p, **kw))
    _, got = load(path)
    assert opened == [{"backed": "r"}]
    np.testing.assert_array_equal(got.X.toarray(), ref.X.toarray())


# --------------------------------------------------------------------------- genes
def test_ensembl_ids_use_a_symbol_column(tmp_path):
    a = user_adata()
    symbols = list(a.var_names)
    a.var["feature_name"] = symbols
    a.var_names = [f"ENSG{i:011d}" for i in range(a.n_vars)]
    _, adata = load(write(a, tmp_path))
    assert list(adata.var_names[:20]) == symbols[:20]
    assert list(adata.var["feature_id"][:3]) == ["ENSG00000000000", "ENSG00000000001", "ENSG00000000002"]
    assert adata.uns["provenance"]["keys"]["gene_symbols"] == "var['feature_name']"


def test_ensembl_ids_without_a_symbol_column_are_refused(tmp_path):
    a = user_adata()
    a.var["gene_ids"] = [f"ENSG{i:011d}" for i in range(a.n_vars)]
    a.var["highly_variable"] = False
    a.var_names = list(a.var["gene_ids"])
    path = write(a, tmp_path)
    msg = refused(path)
    assert "var_names are Ensembl ids" in msg and "no gene symbol column" in msg
    assert "['gene_ids', 'highly_variable']" in msg and "--gene-symbols-key" in msg
    assert "'nope' (gene_symbols_key) not found" in refused(path, gene_symbols_key="nope")


def test_duplicated_symbols_keep_the_first_column_and_warn(tmp_path):
    a = user_adata()
    names = list(a.var_names)
    names[10] = names[11] = names[3]  # three columns named like column 3
    names[20] = names[21]  # column 20 now comes first for the symbol of column 21
    a.var_names = names
    with pytest.warns(InputWarning, match=r"3 column\(s\) repeat a gene symbol: the first column of each") as rec:
        _, adata = load(write(a, tmp_path))
    msg = next(str(w.message) for w in rec if "repeat" in str(w.message))
    assert f"{names[3]} (3 columns)" in msg and f"{names[21]} (2 columns)" in msg
    kept = [i for i in range(a.n_vars) if i not in (10, 11, 21)]
    assert list(adata.var["feature_id"]) == [names[i] for i in kept]
    expected = ad.AnnData(a.X[:, kept].copy())
    sc.pp.normalize_total(expected, target_sum=1e4)
    sc.pp.log1p(expected)
    np.testing.assert_allclose(adata.X.toarray(), expected.X.toarray(), rtol=1e-6)


def test_mouse_symbols_with_species_human_are_refused(tmp_path):
    a = user_adata()
    a.var_names = [g.capitalize() for g in a.var_names]  # Il6, Cxcl1, ...
    msg = refused(write(a, tmp_path))
    assert "look like mouse symbols" in msg and "--species mouse" in msg


def test_human_symbols_with_species_mouse_are_refused(tmp_path):
    msg = refused(write(user_adata(), tmp_path), species="mouse")
    assert "look like human symbols" in msg and "--species human" in msg


def test_ensembl_species_mismatch_is_refused(tmp_path):
    a = user_adata()
    a.var["feature_name"] = list(a.var_names)
    a.var_names = [f"ENSMUSG{i:011d}" for i in range(a.n_vars)]
    msg = refused(write(a, tmp_path))
    assert "mouse Ensembl ids (ENSMUSG00000000000" in msg and "--species mouse" in msg


def test_mouse_data_are_mapped_to_human_orthologs(tmp_path):
    a = user_adata()
    names = [g.capitalize() for g in a.var_names]
    names[-2:] = ["Ccl21a", "Ccl21b"]  # two mouse genes, one human ortholog (CCL21): the first column is kept
    a.var_names = names
    with pytest.warns(InputWarning) as rec:
        _, adata = load(write(a, tmp_path), species="mouse")
    messages = [str(w.message) for w in rec]
    assert any(m.startswith("mouse -> human (HCOP): ") for m in messages)
    assert any(
        m.startswith("1 column(s) repeat a gene symbol after mapping mouse genes to human orthologs")
        and "CCL21 (2 columns)" in m
        for m in messages
    )
    assert adata.var.loc["CCL21", "mouse_symbol"] == "Ccl21a"
    assert {"IL6", "CXCL1", "CCL2"} <= set(adata.var_names)
    assert adata.var.loc["IL6", "mouse_symbol"] == "Il6"
    assert adata.uns["provenance"]["orthologs"]["n_mapped"] > 100
    assert "Filler1" in adata.var_names  # unmapped genes keep their mouse symbol


def test_unknown_species_is_refused(tmp_path):
    assert "species must be 'human' or 'mouse'" in refused(write(user_adata(), tmp_path), species="rat")


# --------------------------------------------------------------------------- obs
def test_missing_obs_keys_list_the_available_columns(tmp_path):
    path = write(user_adata(), tmp_path)
    for kw, what in [
        ({"cell_type_key": "celltype"}, "cell_type_key 'celltype'"),
        ({"sample_key": "donor"}, "sample_key 'donor'"),
        ({"malignant_key": "is_tumour"}, "malignant_key 'is_tumour'"),
    ]:
        msg = refused(path, **kw)
        assert f"{what} is not an obs column" in msg and "['annotation', 'patient']" in msg


def test_cell_type_key_defaults_to_a_cell_type_column(tmp_path):
    a = user_adata()
    msg = refused(write(a, tmp_path), cell_type_key=None)
    assert "no cell_type_key given" in msg and "--cell-type-key" in msg
    a.obs["cell_type"] = a.obs["annotation"]
    _, adata = load(write(a, tmp_path, "ct.h5ad"), cell_type_key=None)
    assert adata.uns["provenance"]["keys"]["cell_type_key"] == "cell_type"


def test_ontology_ids_are_taken_from_cellxgene_column(tmp_path):
    a = user_adata()
    a.obs["cell_type_ontology_term_id"] = a.obs["annotation"].map(
        {"Fibroblast": "CL:0000057", "T cell": "CL:0000084", "Rare": "CL:0000000"}
    )
    _, adata = load(write(a, tmp_path))
    assert adata.obs.loc["cell0", "cell_type_ontology_id"] == "CL:0000057"


def test_no_sample_key_gives_one_pseudo_sample_and_a_warning(tmp_path):
    with pytest.warns(InputWarning, match="no sample_key: all cells form one pseudo-sample 'user:unrecorded'"):
        _, adata = load(write(user_adata(), tmp_path), sample_key=None)
    assert set(adata.obs["sample"]) == {"user:unrecorded"}


def test_missing_labels_form_an_unlabelled_type(tmp_path):
    a = user_adata()
    a.obs["annotation"] = a.obs["annotation"].astype(object)
    a.obs.iloc[:5, 0] = np.nan
    with pytest.warns(InputWarning, match=r"5 cell\(s\) have no label in obs\['annotation'\]"):
        _, adata = load(write(a, tmp_path))
    assert (adata.obs["cell_type"] == "unlabelled").sum() == 5


def test_malignant_key(tmp_path):
    a = user_adata()
    a.obs["tumour"] = a.obs["annotation"].eq("Fibroblast").map({True: "yes", False: "no"})
    a.obs["bad"] = "maybe"
    path = write(a, tmp_path)
    _, adata = load(path, malignant_key="tumour")
    assert adata.obs["malignant"].sum() == 40
    assert "must be boolean" in refused(path, malignant_key="bad") and "maybe" in refused(path, malignant_key="bad")


@pytest.mark.slow
def test_small_cell_types_are_warned_and_flagged_not_refused(tmp_path):
    path = write(user_adata(), tmp_path)
    with pytest.warns(InputWarning, match=r"1 cell type\(s\) have fewer than 10 cells: 'Rare' \(4\)"):
        _, adata = load(path, min_cells=10)
    assert adata.uns["provenance"]["small_cell_types"] == ["Rare"]
    out = score_user_file(path, tmp_path / "out", cell_type_key="annotation", sample_key="patient", signatures=SIGS)
    table = pd.read_csv(out["celltype_scores"], keep_default_na=False)
    rare = table[table["cell_type"] == "Rare"]
    assert rare["flag"].str.startswith("fewer than 10 cells").all()
    assert not table.loc[table["cell_type"] != "Rare", "flag"].str.contains("cells;").any()
    out3 = score_user_file(
        path, tmp_path / "out3", cell_type_key="annotation", sample_key="patient", signatures=SIGS, min_cells=3
    )
    assert (
        not pd.read_csv(out3["celltype_scores"], keep_default_na=False)["flag"].str.contains("fewer than 3 cells").any()
    )


# --------------------------------------------------------------------------- files
def test_missing_and_foreign_files(tmp_path):
    assert "does not exist" in refused(tmp_path / "nope.h5ad")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    assert "not an .h5ad file" in refused(tmp_path / "data.csv")
    (tmp_path / "broken.h5ad").write_bytes(b"not hdf5 at all")
    assert "cannot read broken.h5ad as .h5ad" in refused(tmp_path / "broken.h5ad")


# --------------------------------------------------------------------------- scoring
@pytest.mark.slow
def test_score_user_file_writes_exactly_the_tables_and_the_scored_object(tmp_path):
    path = write(user_adata(), tmp_path)
    out = tmp_path / "out"
    written = score_user_file(
        path, out, cell_type_key="annotation", sample_key="patient", signatures=SIGS, random_state=3
    )
    assert sorted(p.name for p in out.iterdir()) == ["celltype_scores.csv", "coverage.csv", "scored.h5ad"]
    assert set(written) == {"celltype_scores", "coverage", "scored"}
    table = pd.read_csv(written["celltype_scores"])
    assert list(table.columns) == stats.CELLTYPE_COLUMNS + getattr(stats, "NULL_JOIN_COLUMNS", []) + ["validity"]
    # every signature and the hUSI senescence index (a row like a signature, its own method)
    assert set(table["signature"]) == {*SIGS, "husi"} and set(table["cell_type"]) == {"Fibroblast", "T cell", "Rare"}
    assert (table.loc[table["signature"] == "husi", "method"] == "husi").all()
    assert (table["validity"] == "not assessed").all()  # no validity table beside a user's run
    assert (table["random_state"] == 3).all() and (table["dataset"] == "user").all()
    fib = table[(table["cell_type"] == "Fibroblast") & (table["signature"] == "senmayo")].iloc[0]
    assert fib["effect_size"] > 0.9  # the constructed SenMayo excess is found
    cov = pd.read_csv(written["coverage"])
    assert list(cov.columns) == genes.COVERAGE_COLUMNS and (cov["coverage"] == 1).all()
    scored = ad.read_h5ad(written["scored"])
    assert list(scored.obsm["sasp_scores"].columns) == [*SIGS, "husi"]
    assert list(scored.uns["sasp_scores"]["signature_ids"]) == [*SIGS, "husi"]
    assert scored.uns["sasp_scores"]["params"]["random_state"] == 3
    assert scored.uns["provenance"]["sha256"] == file_sha256(path)


def test_low_coverage_is_flagged_and_a_signature_without_genes_refused(tmp_path):
    a = user_adata()
    senmayo = set(get_signature("senmayo"))
    keep = [g for g in a.var_names if g not in senmayo] + sorted(senmayo & set(a.var_names))[:3]
    path = write(a[:, keep].copy(), tmp_path)
    written = score_user_file(path, tmp_path / "out", cell_type_key="annotation", sample_key="patient", signatures=SIGS)
    cov = pd.read_csv(written["coverage"]).set_index("signature")
    assert cov.loc["senmayo", "low_coverage"] and cov.loc["senmayo", "flag"] == genes.LOW_COVERAGE_FLAG
    assert not cov.loc["fridman_senescence_up", "low_coverage"]
    table = pd.read_csv(written["celltype_scores"], keep_default_na=False)
    assert table.loc[table["signature"] == "senmayo", "flag"].str.contains(genes.LOW_COVERAGE_FLAG).all()

    none = [g for g in a.var_names if g not in senmayo]
    path = write(a[:, none].copy(), tmp_path, "none.h5ad")
    with pytest.raises(InputError, match="signature\\(s\\) senmayo have no gene in the data"):
        score_user_file(path, tmp_path / "out2", cell_type_key="annotation", sample_key="patient", signatures=SIGS)


# --------------------------------------------------------------------------- pages without a DOI
def test_pages_and_captions_cope_with_an_empty_doi(tmp_path):
    ds, _ = load(write(user_adata(), tmp_path))
    md = pages.provenance_markdown(ds, "raw counts -> ...")
    assert "doi:" not in md and "doi.org" not in md
    assert "User-provided data: user.h5ad." in md and f"user.h5ad (`file://{(tmp_path / 'user.h5ad').resolve()}`)" in md
    (source,) = figures._dataset_sources([ds])
    assert "doi:" not in source and source.startswith("user: User-provided data: user.h5ad. Files: file://")
    bib = figures._bibtex("fig-user-heatmap", "Heatmap", [ds], ["senmayo"])
    assert "data: User-provided data: user.h5ad" in bib and "data: doi:;" not in bib
