"""Known answers on the committed synthetic toy dataset (``tests/_data/toy.h5ad``, made by ``tests/make_toy.py``).

The toy has 300 cells x 800 genes of raw counts, 4 cell types x 3 patients, and two planted answers:
Fibroblast cells overexpress the SenMayo genes (``var["senmayo"]``) and every cell type its markers
(``var["marker_of"]``). Tests that pass gene sets as ``{name: genes}`` run without ``../shared`` (no HGNC
table, no mirror, no network); tests that use catalogue signature ids or the user-file pipeline need the
HGNC table from ``../shared/reference/raw`` and are skipped without it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
from conftest import SHARED, TESTS_DIR

import sasp_atlas
from sasp_atlas.stats import auroc

TOY = TESTS_DIR / "_data" / "toy.h5ad"
MAKE_TOY = TESTS_DIR / "make_toy.py"
REFERENCE_RAW = SHARED / "reference" / "raw"
CELL_TYPES = ["Fibroblast", "T cell", "Macrophage", "Epithelial"]
PATIENTS = ["P1", "P2", "P3"]
# gene-set engines; husi scores its own model's weighted genes (tests/engines/test_husi.py), not a gene set
METHODS = [m for m in sasp_atlas.list_methods()["name"] if m != "husi"]


@pytest.fixture(scope="module")
def toy_raw() -> ad.AnnData:
    """The committed toy file as written (raw counts)."""
    if not TOY.is_file():
        pytest.fail(f"{TOY} is missing: run `python tests/make_toy.py` and commit it")
    return ad.read_h5ad(TOY)


@pytest.fixture(scope="module")
def toy_log(toy_raw) -> ad.AnnData:
    """The toy, library-size normalised (1e4) and log1p-transformed, as the engines expect."""
    a = toy_raw.copy()
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    return a


@pytest.fixture
def offline(monkeypatch, tmp_path, no_network):
    """No ../shared, an empty cache and no network: anything reaching for the HGNC table fails loudly."""
    monkeypatch.setenv("SASP_ATLAS_MIRROR", str(tmp_path / "no_mirror" / "data"))
    monkeypatch.setenv("SASP_ATLAS_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.delenv("SASP_ATLAS_RESOURCE_MIRROR", raising=False)
    return no_network


@pytest.fixture(scope="module")
def hgnc_reference() -> Path:
    """The HGNC symbol table's mirror folder; catalogue signature ids and user files need it."""
    if not REFERENCE_RAW.is_dir():
        pytest.skip(
            f"{REFERENCE_RAW} not found: catalogue signature ids and user-file scoring need the HGNC "
            "symbol table (resource hgnc_symbols) from the shared reference mirror"
        )
    return REFERENCE_RAW


def _by_type(adata: ad.AnnData, name: str) -> pd.Series:
    """Mean score of ``name`` per annotated cell type, highest first."""
    s = adata.obsm["sasp_scores"][name]
    return s.groupby(adata.obs["annotation"].to_numpy()).mean().sort_values(ascending=False)


# --------------------------------------------------------------------------- the file itself (no ../shared)
def test_toy_file_layout(toy_raw):
    a = toy_raw
    assert a.shape == (300, 800)
    assert sp.issparse(a.X) and a.X.format == "csr" and a.X.dtype == np.float32
    values = a.X.data
    assert values.min() >= 1 and np.array_equal(values, np.round(values)), "raw integer counts"
    assert (np.asarray(a.X.sum(axis=1)).ravel() > 0).all(), "no empty cell"
    assert a.var_names.is_unique and all(g == g.upper() or "orf" in g for g in a.var_names), "human symbols"
    assert TOY.stat().st_size < 1_000_000
    # every patient has every cell type; malignant cells are a subset of Epithelial in every patient
    counts = pd.crosstab(a.obs["annotation"], a.obs["patient"])
    assert sorted(counts.index) == sorted(CELL_TYPES) and list(counts.columns) == PATIENTS
    assert (counts.to_numpy() >= 10).all()
    mal = a.obs["malignant"].to_numpy(bool)
    assert mal.dtype == bool and mal.any()
    assert set(a.obs.loc[mal, "annotation"]) == {"Epithelial"}
    assert set(a.obs.loc[mal, "patient"]) == set(PATIENTS)
    # the planted answers are recorded in var
    assert int(a.var["senmayo"].sum()) == 125
    assert set(a.var["marker_of"]) - {""} == set(CELL_TYPES)
    assert not (a.var["senmayo"] & (a.var["marker_of"] != "")).any()


# --------------------------------------------------------------------------- explicit gene sets (no ../shared)
@pytest.mark.parametrize("method", METHODS)
def test_senmayo_genes_rank_fibroblast_first(toy_log, method, offline):
    """Every engine puts Fibroblast first for the planted SenMayo genes, clearly (AUROC vs other cells > 0.8)."""
    genes = list(toy_log.var_names[toy_log.var["senmayo"].to_numpy(bool)])
    scored = sasp_atlas.score(toy_log, {"toy_senmayo": genes}, method=method, copy=True)
    assert scored.uns["sasp_scores"]["method"] == method
    assert set(scored.uns["sasp_scores"]["signatures"]["toy_senmayo"]["genes_used"]) == set(genes)
    means = _by_type(scored, "toy_senmayo")
    assert means.index[0] == "Fibroblast", f"{method}: {means.round(3).to_dict()}"
    s = scored.obsm["sasp_scores"]["toy_senmayo"].to_numpy()
    fib = scored.obs["annotation"].to_numpy() == "Fibroblast"
    assert auroc(s[fib], s[~fib]) > 0.8, method
    assert offline == [], "scoring explicit gene sets must not download anything"


@pytest.mark.parametrize("method", METHODS)
def test_markers_rank_their_cell_type_first(toy_log, method, offline):
    """One pass over the cells scores four marker sets; each ranks its own cell type first."""
    marker_of = toy_log.var["marker_of"].astype(str)
    sets = {ct: list(marker_of.index[marker_of == ct]) for ct in CELL_TYPES}
    scored = sasp_atlas.score(toy_log, sets, method=method, copy=True)
    assert list(scored.obsm["sasp_scores"].columns) == CELL_TYPES
    for ct in CELL_TYPES:
        assert _by_type(scored, ct).index[0] == ct, (method, ct, _by_type(scored, ct).round(3).to_dict())
    assert offline == []


def test_score_leaves_matrix_alone_and_is_seeded(toy_log, offline):
    """The scanpy engine with the same seed gives the same scores; X is never modified."""
    before = toy_log.X.copy()
    genes = list(toy_log.var_names[toy_log.var["senmayo"].to_numpy(bool)])
    a = sasp_atlas.score(toy_log, {"s": genes}, method="scanpy", random_state=7, copy=True)
    b = sasp_atlas.score(toy_log, {"s": genes}, method="scanpy", random_state=7, copy=True)
    np.testing.assert_array_equal(a.obsm["sasp_scores"]["s"], b.obsm["sasp_scores"]["s"])
    assert a.uns["sasp_scores"]["params"]["random_state"] == 7
    assert (toy_log.X != before).nnz == 0


# --------------------------------------------------------------------------- catalogue ids / user files (HGNC)
def test_toy_has_every_default_signature_gene(toy_raw, hgnc_reference):
    from sasp_atlas.atlas import DEFAULT_SIGNATURES

    for sig in DEFAULT_SIGNATURES:
        missing = set(sasp_atlas.get_signature(sig)) - set(toy_raw.var_names)
        assert not missing, (sig, sorted(missing))
    assert set(sasp_atlas.get_signature("senmayo")) == set(toy_raw.var_names[toy_raw.var["senmayo"].to_numpy(bool)])


def test_make_toy_reproduces_the_committed_file(toy_raw, tmp_path, hgnc_reference):
    """``tests/make_toy.py`` is deterministic and the committed file is what it writes today."""
    spec = importlib.util.spec_from_file_location("make_toy", MAKE_TOY)
    make_toy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_toy)
    fresh = make_toy.make(tmp_path / "toy.h5ad")
    again = ad.read_h5ad(tmp_path / "toy.h5ad")
    for new in (fresh, again):
        assert list(new.var_names) == list(toy_raw.var_names)
        assert list(new.obs_names) == list(toy_raw.obs_names)
        assert (new.X != toy_raw.X).nnz == 0, "regenerated counts differ: rerun tests/make_toy.py and commit"
        pd.testing.assert_frame_equal(new.obs, toy_raw.obs)
        pd.testing.assert_frame_equal(new.var, toy_raw.var)


@pytest.mark.slow
def test_score_user_file_on_toy(tmp_path, hgnc_reference):
    """The user-file pipeline: per-sample intervals over the 3 patients, full coverage, the planted answer."""
    from sasp_atlas.atlas import DEFAULT_SIGNATURES, USER_OUTPUTS, score_user_file

    out = tmp_path / "out"
    written = score_user_file(TOY, out, cell_type_key="annotation", sample_key="patient", malignant_key="malignant")
    assert sorted(p.name for p in out.iterdir()) == sorted(USER_OUTPUTS)
    assert {p.name for p in written.values()} == set(USER_OUTPUTS)

    table = pd.read_csv(out / "celltype_scores.csv")
    assert set(table["cell_type"]) == set(CELL_TYPES)
    # the toy's synthetic genes hold none of the hUSI model's: only the signatures
    assert set(table["signature"]) == set(DEFAULT_SIGNATURES) | ({"husi"} & set(table["signature"]))
    assert len(table) == len(CELL_TYPES) * table["signature"].nunique()
    assert (table["n_samples"] == 3).all()
    assert (table["ci_unit"] == "samples (random effects)").all() and (
        table["evidence"] == "replicated (3 tumours)"
    ).all()
    assert (table.loc[table["signature"] != "husi", "method"] == "expected").all()  # the seed-free default
    assert (table["ci_low"] <= table["mean"]).all() and (table["mean"] <= table["ci_high"]).all()
    flags = table.loc[table["signature"] != "husi", "flag"].fillna("")  # hUSI: few of its model genes in the toy
    # >= 10 cells, 3 samples, full coverage: the only flag is a planted perfect separation, said in words
    perfect = flags.str.startswith("perfect separation in ")
    assert flags[~perfect].eq("").all() and flags[perfect].str.contains("lowest per-tumour bound").all()
    assert table.groupby("cell_type")["n_cells"].first().to_dict() == {
        "Fibroblast": 60,
        "T cell": 90,
        "Macrophage": 60,
        "Epithelial": 90,
    }
    senmayo = table[table["signature"] == "senmayo"].set_index("cell_type")
    assert senmayo.loc["Fibroblast", "effect_size"] > 0.8
    assert senmayo["effect_size"].idxmax() == "Fibroblast"
    assert senmayo["mean"].idxmax() == "Fibroblast"
    assert senmayo.loc["Fibroblast", "effect_ci_low"] > 0.5

    cov = pd.read_csv(out / "coverage.csv")
    assert set(cov["signature"]) == set(DEFAULT_SIGNATURES)
    assert (cov["n_present"] == cov["n_genes"]).all() and (cov["coverage"] == 1.0).all()

    scored = ad.read_h5ad(out / "scored.h5ad")
    assert scored.shape == (300, 800)
    assert list(scored.obsm["sasp_scores"].columns) == [*DEFAULT_SIGNATURES, "husi"]
    assert list(scored.uns["sasp_scores"]["signature_ids"]) == [*DEFAULT_SIGNATURES, "husi"]
    assert scored.uns["provenance"]["value_type"] == "raw_counts"
    assert scored.obs["malignant"].sum() == 60
    assert set(scored.obs.loc[scored.obs["malignant"].to_numpy(bool), "cell_type"]) == {"Epithelial"}
    assert sorted(scored.obs["sample"].unique()) == PATIENTS
