"""The ``scanpy`` engine (the default of ``sasp_atlas.score``) equals ``scanpy.tl.score_genes``, signature by
signature, through the shared driver; and its signed form equals score_genes of each part."""

from __future__ import annotations

import gc
import tracemalloc

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
from engine_cases import quiet_scores, signed_synthetic, signed_synthetic_sets

import sasp_atlas
from sasp_atlas import get_signature

SIGS = ["senmayo", "fridman_senescence_up"]
TOL = 1e-6


def scanpy_reference(adata: ad.AnnData, genes, random_state: int = 0, layer: str | None = None, **kw) -> np.ndarray:
    """``scanpy.tl.score_genes`` on a copy (so the object under test is untouched)."""
    b = adata.copy()
    sc.tl.score_genes(b, list(genes), random_state=random_state, score_name="_ref", layer=layer, **kw)
    return b.obs["_ref"].to_numpy(dtype=np.float64)


def assert_matches_scanpy(adata, signatures: dict[str, list[str]], random_state: int = 0, layer=None, **kw):
    scores = adata.obsm["sasp_scores"]
    assert list(scores.columns) == list(signatures)
    assert list(scores.index) == list(adata.obs_names)
    for name, genes in signatures.items():
        ref = scanpy_reference(adata, genes, random_state, layer=layer, **kw)
        got = scores[name].to_numpy()
        assert np.isfinite(got).all()
        diff = np.max(np.abs(got - ref))
        assert diff <= TOL, f"{name}: max |score - scanpy| = {diff:.3g}"
        # not trivially equal: the scores vary between cells
        assert np.std(ref) > 0


def _snapshot(X):
    if sp.issparse(X):
        return X.format, X.data.copy(), X.indices.copy(), X.indptr.copy()
    return "dense", np.array(X, copy=True)


def _same(X, snap) -> bool:
    if snap[0] == "dense":
        return np.array_equal(np.asarray(X), snap[1])
    return (
        X.format == snap[0]
        and np.array_equal(X.data, snap[1])
        and np.array_equal(X.indices, snap[2])
        and np.array_equal(X.indptr, snap[3])
    )


# --------------------------------------------------------------------------- real data
@pytest.mark.parametrize("fixture, random_state", [("wu", 0), ("wu", 3), ("mgh", 0), ("mgh", 3)])
def test_equals_scanpy_on_real_data(request, fixture, random_state):
    adata = request.getfixturevalue(fixture).copy()
    sasp_atlas.score(adata, SIGS, random_state=random_state)
    assert_matches_scanpy(adata, {s: get_signature(s) for s in SIGS}, random_state)
    assert adata.uns["sasp_scores"]["params"]["random_state"] == random_state
    assert adata.uns["sasp_scores"]["method"] == "scanpy"


def test_random_state_changes_controls(wu):
    a, b = wu.copy(), wu.copy()
    sasp_atlas.score(a, SIGS, random_state=0)
    sasp_atlas.score(b, SIGS, random_state=3)
    assert not np.allclose(a.obsm["sasp_scores"].to_numpy(), b.obsm["sasp_scores"].to_numpy())


@pytest.mark.parametrize("fixture", ["wu", "mgh"])
def test_genes_used_are_the_present_signature_genes(request, fixture):
    adata = request.getfixturevalue(fixture).copy()
    sasp_atlas.score(adata, SIGS, random_state=0)
    info = adata.uns["sasp_scores"]["signatures"]
    var = set(adata.var_names)
    for s in SIGS:
        genes = get_signature(s)
        used, missing = info[s]["genes_used"], info[s]["genes_missing"]
        assert set(used) == set(genes) & var
        assert len(used) == len(set(used))
        assert set(missing) == set(genes) - var
        assert info[s]["n_genes"] == len(genes)
        assert info[s]["n_control_genes"] > 0
        assert not set(used) & set(missing)


def test_wu_known_missing_genes(wu):
    """Wu has the full transcriptome: only a few symbol renames are absent."""
    a = wu.copy()
    sasp_atlas.score(a, SIGS, random_state=0)
    info = a.uns["sasp_scores"]["signatures"]
    assert len(info["senmayo"]["genes_used"]) >= 120
    assert len(info["fridman_senescence_up"]["genes_used"]) >= 70


def test_custom_mapping_on_real_data(wu):
    a = wu.copy()
    genes = ["IL6", "CXCL8", "SERPINE1", "CDKN1A", "MMP3", "NOT_A_REAL_GENE"]
    sasp_atlas.score(a, {"custom": genes}, random_state=0)
    assert list(a.obsm["sasp_scores"].columns) == ["custom"]
    assert_matches_scanpy(a, {"custom": genes}, 0)
    info = a.uns["sasp_scores"]["signatures"]["custom"]
    assert set(info["genes_used"]) == set(genes) - {"NOT_A_REAL_GENE"}
    assert info["genes_missing"] == ["NOT_A_REAL_GENE"]


def test_X_not_modified_and_not_copied(wu):
    a = wu.copy()
    X = a.X
    snap = _snapshot(X)
    layers_before, obsm_before, uns_before = set(a.layers), set(a.obsm), set(a.uns)
    sasp_atlas.score(a, SIGS, random_state=0)  # also compiles/loads the numba kernel
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        sasp_atlas.score(a, SIGS, random_state=1)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert a.X is X
    assert _same(a.X, snap)
    assert set(a.layers) == layers_before
    assert set(a.obsm) == obsm_before | {"sasp_scores"}
    assert set(a.uns) == uns_before | {"sasp_scores"}
    assert a.obsm["sasp_scores"].shape == (a.n_obs, len(SIGS))
    # nothing the size of X is kept anywhere in the results
    big = [k for k, v in _arrays(a.uns["sasp_scores"]) if np.size(v) >= a.n_obs]
    assert big == []
    assert retained < X.data.nbytes / 4, f"scoring retained {retained} bytes (X.data is {X.data.nbytes})"


def _arrays(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _arrays(v, f"{prefix}{k}.")
    elif isinstance(obj, (np.ndarray, pd.DataFrame, pd.Series)) or sp.issparse(obj):
        yield prefix, obj
    elif isinstance(obj, (list, tuple)):
        yield prefix, np.asarray(obj, dtype=object)


# --------------------------------------------------------------------------- constructed data
def _small(dense: bool = False, fmt: str = "csr", seed: int = 7) -> tuple[ad.AnnData, dict[str, list[str]]]:
    rng = np.random.default_rng(seed)
    n_cells, n_genes = 200, 300
    mask = rng.random((n_cells, n_genes)) < 0.2
    values = np.log1p(rng.gamma(2.0, 2.0, size=(n_cells, n_genes)) * rng.random(n_genes) * 5)
    M = (values * mask).astype(np.float32)
    M[:, :12] = 0  # a block of all-zero genes: tied means, as in real data
    names = [f"G{i}" for i in range(n_genes)]
    X = M if dense else sp.csr_matrix(M) if fmt == "csr" else sp.csc_matrix(M)
    adata = ad.AnnData(X=X, obs=pd.DataFrame(index=[f"c{i}" for i in range(n_cells)]), var=pd.DataFrame(index=names))
    pick = rng.choice(n_genes, 60, replace=False)
    sigs = {
        "alpha": [names[i] for i in pick[:25]] + ["MISSING1"],
        "beta": [names[i] for i in pick[15:45]],  # overlaps alpha: a gene in two signatures
        "gamma": [names[i] for i in pick[45:]] + [names[0], names[1]] + [names[i] for i in pick[45:48]],  # duplicates
    }
    return adata, sigs


@pytest.mark.parametrize("random_state", [0, 3, 12345])
def test_small_sparse_equals_scanpy(random_state):
    adata, sigs = _small()
    assert sp.issparse(adata.X) and adata.X.dtype == np.float32
    sasp_atlas.score(adata, sigs, random_state=random_state)
    assert_matches_scanpy(adata, sigs, random_state)
    assert adata.uns["sasp_scores"]["signatures"]["alpha"]["genes_missing"] == ["MISSING1"]
    gamma_used = adata.uns["sasp_scores"]["signatures"]["gamma"]["genes_used"]
    assert len(gamma_used) == len(set(gamma_used)) == len(set(sigs["gamma"]))


@pytest.mark.parametrize("random_state", [0, 3])
def test_small_dense_equals_scanpy(random_state):
    adata, sigs = _small(dense=True)
    assert isinstance(adata.X, np.ndarray)
    snap = _snapshot(adata.X)
    sasp_atlas.score(adata, sigs, random_state=random_state)
    assert _same(adata.X, snap)
    assert_matches_scanpy(adata, sigs, random_state)


def test_dense_and_sparse_give_the_same_scores():
    a, sigs = _small(dense=False)
    b, _ = _small(dense=True)
    sasp_atlas.score(a, sigs)
    sasp_atlas.score(b, sigs)
    np.testing.assert_allclose(a.obsm["sasp_scores"].to_numpy(), b.obsm["sasp_scores"].to_numpy(), atol=1e-6)


def test_small_csc_equals_scanpy_and_is_not_modified():
    adata, sigs = _small(fmt="csc")
    X = adata.X
    snap = _snapshot(X)
    sasp_atlas.score(adata, sigs, random_state=0)
    assert adata.X is X and adata.X.format == "csc" and _same(adata.X, snap)
    assert_matches_scanpy(adata, sigs, 0)


def test_small_sparse_X_not_modified():
    adata, sigs = _small()
    X = adata.X
    snap = _snapshot(X)
    sasp_atlas.score(adata, sigs, random_state=0)
    assert adata.X is X and _same(adata.X, snap)


def test_layer_is_scored_instead_of_X():
    adata, sigs = _small()
    adata.layers["lognorm"] = adata.X.copy()
    adata.X = adata.X.multiply(adata.X).tocsr()  # a different matrix in X
    sasp_atlas.score(adata, sigs, random_state=0, layer="lognorm")
    assert adata.uns["sasp_scores"]["params"]["layer"] == "lognorm"
    assert_matches_scanpy(adata, sigs, 0, layer="lognorm")
    # and it differs from scoring X
    ref_x = scanpy_reference(adata, sigs["alpha"], 0)
    assert not np.allclose(adata.obsm["sasp_scores"]["alpha"].to_numpy(), ref_x)


@pytest.mark.parametrize("ctrl_size, n_bins", [(10, 25), (50, 10)])
def test_small_other_parameters_equal_scanpy(ctrl_size, n_bins):
    adata, sigs = _small(seed=11)
    sasp_atlas.score(adata, sigs, random_state=0, ctrl_size=ctrl_size, n_bins=n_bins)
    assert_matches_scanpy(adata, sigs, 0, ctrl_size=ctrl_size, n_bins=n_bins)


# --------------------------------------------------------------------------- errors + inputs
def test_all_genes_absent_raises_naming_the_signature():
    adata, sigs = _small()
    with pytest.raises(ValueError, match="ghost"):
        sasp_atlas.score(adata, {**sigs, "ghost": ["NOPE1", "NOPE2"]})
    assert "sasp_scores" not in adata.obsm  # nothing half-written


def test_catalogue_signature_absent_from_data_raises():
    adata, _ = _small()  # var_names G0..G299: no catalogue gene is present
    with pytest.raises(ValueError, match="senmayo"):
        sasp_atlas.score(adata, ["senmayo"])


def test_single_id_string_and_unknown_id(wu):
    a = wu.copy()
    sasp_atlas.score(a, "senmayo", random_state=0)
    assert list(a.obsm["sasp_scores"].columns) == ["senmayo"]
    with pytest.raises(KeyError, match="no_such_signature"):
        sasp_atlas.score(a, ["no_such_signature"])


def test_unknown_method():
    adata, sigs = _small()
    with pytest.raises(ValueError, match="method"):
        sasp_atlas.score(adata, sigs, method="no_such_method")


def test_scanpy_signed_equals_scanpy_score_genes_of_each_part():
    sc = pytest.importorskip("scanpy")
    a = signed_synthetic()
    d = signed_synthetic_sets(a)["sig"]
    got = quiet_scores(a, {"sig": d}, "scanpy", random_state=0)["sig"].to_numpy()
    want = np.zeros(a.n_obs)
    for sign in (1, -1):
        b = a.copy()
        sc.tl.score_genes(b, [g for g, s in d.items() if s == sign], random_state=0, score_name="part")
        want += sign * b.obs["part"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
