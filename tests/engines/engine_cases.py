"""What the engine test files share: constructed matrices with the corner cases of real data, signed toy
sets, scoring shortcuts and the comparison with a reference.

A plain module rather than a ``conftest.py`` in this folder: the test files import the constants of
``tests/conftest.py`` as ``conftest``, which a second ``conftest.py`` (no ``__init__.py`` here) would shadow.
"""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

import sasp_atlas
from sasp_atlas import get_signature

TOL = 1e-6
SIGS = ["senmayo", "fridman_senescence_up"]
ALL_METHODS = ["expected", "scanpy", "aucell", "ucell", "mean", "zmean", "seurat"]


def dedup(signatures: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: list(dict.fromkeys(v)) for k, v in signatures.items()}


def scores_of(adata, signatures, method, **kw) -> pd.DataFrame:
    a = adata.copy()
    sasp_atlas.score(a, signatures, method=method, **kw)
    return a.obsm["sasp_scores"]


def assert_close(got: pd.DataFrame, ref: pd.DataFrame, tol: float = TOL):
    got = got.loc[ref.index, list(ref.columns)]
    assert np.isfinite(got.to_numpy()).all()
    diff = np.abs(got.to_numpy() - ref.to_numpy(dtype=np.float64))
    worst = diff.max(axis=0)
    assert (worst <= tol).all(), f"max |score - reference| per signature: {dict(zip(ref.columns, worst))}"
    assert (ref.std(axis=0) > 0).any()  # not trivially equal


def real_signatures(adata) -> dict[str, list[str]]:
    sigs = {s: get_signature(s) for s in SIGS}
    sigs["custom"] = ["IL6", "CXCL8", "SERPINE1", "CDKN1A", "MMP3", "NOT_A_REAL_GENE"]
    return dedup(sigs)


# --------------------------------------------------------------------------- constructed data
def constructed(
    seed: int = 0,
    n_cells: int = 150,
    n_genes: int = 400,
    *,
    integer: bool = True,
    negative: bool = False,
    explicit_zeros: bool = False,
    empty_cell: bool = False,
    dtype=np.float32,
) -> ad.AnnData:
    """Sparse matrix with the corner cases of real data.

    Integer-valued entries give large tie groups within a cell; the first 10 genes are never
    detected; some cells have fewer non-zeros than the AUCell cut-off (their zeros are ranked).
    """
    rng = np.random.default_rng(seed)
    density = rng.uniform(0.02, 0.6, size=(n_cells, 1))  # sparse and dense cells
    mask = rng.random((n_cells, n_genes)) < density
    vals = (
        rng.integers(1, 6, size=(n_cells, n_genes)).astype(np.float64)
        if integer
        else rng.gamma(2.0, 1.0, size=(n_cells, n_genes))
    )
    if negative:
        vals = np.where(rng.random((n_cells, n_genes)) < 0.2, -vals, vals)
    M = (vals * mask).astype(dtype)
    M[:, :10] = 0
    if empty_cell:
        M[3] = 0
    X = sp.csr_matrix(M)
    if explicit_zeros:  # stored entries whose value is 0 (some tools leave them)
        X.data[rng.random(X.nnz) < 0.05] = 0
    return ad.AnnData(
        X,
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n_cells)]),
        var=pd.DataFrame(index=[f"G{g}" for g in range(n_genes)]),
    )


def constructed_signatures(adata, seed: int = 1) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    names = list(adata.var_names)
    sigs = {
        f"s{k}": [names[i] for i in rng.choice(len(names), size, replace=False)]
        for k, size in enumerate([5, 12, 40, 120])
    }
    sigs["with_undetected"] = names[:3] + names[20:30]
    sigs["with_missing"] = names[50:60] + ["NOPE1", "NOPE2"]
    return sigs


CASES = {
    "integer ties": {},
    "continuous": {"integer": False},
    "negative values": {"negative": True},
    "explicit zeros": {"explicit_zeros": True},
    "float64": {"dtype": np.float64},
    "empty cell": {"empty_cell": True},
}


def exact_sum_matrix(seed: int = 4) -> ad.AnnData:
    """Values on a 1/8 grid: gene sums are exact in float32, so gene means (and scanpy's bins) do
    not depend on the order of the cells."""
    adata = constructed(seed, integer=False)
    adata.X.data = np.round(adata.X.data * 8) / 8
    adata.X.eliminate_zeros()
    return adata


# 4 cells x 6 genes. Up genes A, B; down gene C.
X_TOY = np.array([[2, 4, 1, 0, 3, 0], [0, 1, 3, 2, 0, 1], [1, 1, 0, 1, 1, 5], [3, 0, 1, 0, 0, 2]], dtype=np.float32)
SIGNED = {"s": {"A": 1, "B": 1, "C": -1}}


def signed_toy(sparse: bool = True) -> ad.AnnData:
    X = sp.csr_matrix(X_TOY) if sparse else X_TOY.copy()
    return ad.AnnData(X=X, obs=pd.DataFrame(index=[f"c{i}" for i in range(4)]), var=pd.DataFrame(index=list("ABCDEF")))


def quiet_scores(adata, sigs, method, **kw) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sasp_atlas.score(adata, sigs, method=method, copy=True, **kw).obsm["sasp_scores"]


def signed_synthetic(n_cells=600, n_genes=400, seed=0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    mu = np.exp(rng.normal(-1.5, 1.5, n_genes))
    counts = rng.negative_binomial(2, 2 / (2 + mu[None, :] * rng.lognormal(0, 0.4, (n_cells, 1))))
    X = sp.csr_matrix(np.log1p(counts / counts.sum(1, keepdims=True).clip(1) * 1e4).astype(np.float32))
    return ad.AnnData(
        X=X,
        var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]),
        obs=pd.DataFrame(
            {"cell_type": pd.Categorical(rng.choice(["T", "B", "M"], n_cells))}, index=[f"c{i}" for i in range(n_cells)]
        ),
    )


def signed_synthetic_sets(adata, seed=1) -> dict:
    rng = np.random.default_rng(seed)
    genes = adata.var_names[rng.choice(adata.n_vars, 40, replace=False)]
    return {
        "sig": {g: (1 if k < 25 else -1) for k, g in enumerate(genes)},
        "plain": list(adata.var_names[rng.choice(adata.n_vars, 30, replace=False)]),
    }
