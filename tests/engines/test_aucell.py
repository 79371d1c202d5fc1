"""The ``aucell`` engine equals decoupler's ``mt.aucell`` (AUCell, Aibar et al. 2017) on real data and on
constructed matrices; its tie-breaking seed and signed form."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from engine_cases import (
    CASES,
    SIGNED,
    SIGS,
    assert_close,
    constructed,
    constructed_signatures,
    quiet_scores,
    real_signatures,
    scores_of,
    signed_toy,
)

import sasp_atlas


def aucell_reference(adata, signatures: dict[str, list[str]], **kw) -> pd.DataFrame:
    """``dc.mt.aucell`` with no set pruning (tmin=0); rows: the cells decoupler keeps."""
    decoupler = pytest.importorskip("decoupler")
    var = set(adata.var_names)
    net = pd.DataFrame(
        [(s, g) for s, genes in signatures.items() for g in dict.fromkeys(genes) if g in var],
        columns=["source", "target"],
    )
    b = adata.copy()
    res = decoupler.mt.aucell(b, net, tmin=0, **kw)
    return (b if res is None else res).obsm["score_aucell"]


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["wu", "mgh"])
@pytest.mark.parametrize("n_up", [None, 60])
def test_aucell_equals_decoupler_on_real_data(request, fixture, n_up):
    adata = request.getfixturevalue(fixture)
    sigs = real_signatures(adata)
    kw = {} if n_up is None else {"n_up": n_up}
    assert_close(scores_of(adata, sigs, "aucell", **kw), aucell_reference(adata, sigs, **kw))


def test_aucell_default_n_up_is_decoupler_s(wu):
    a = wu.copy()
    sasp_atlas.score(a, SIGS, method="aucell")
    n_detected = int((wu.X.getnnz(axis=0) > 0).sum())
    assert a.uns["sasp_scores"]["params"]["n_up"] == int(np.ceil(0.05 * n_detected))
    info = a.uns["sasp_scores"]["signatures"]["senmayo"]
    assert set(info["genes_undetected"]) <= set(info["genes_used"])


@pytest.mark.parametrize("case", list(CASES))
# the fast lane compares every corner case at decoupler's default n_up; the other cut-offs run with the slow tests
@pytest.mark.parametrize("n_up", [None, *(pytest.param(n, marks=pytest.mark.slow) for n in (3, 90, 390))])
def test_aucell_equals_decoupler_constructed(case, n_up):
    adata = constructed(**CASES[case])
    sigs = constructed_signatures(adata)
    kw = {} if n_up is None else {"n_up": n_up}
    assert_close(scores_of(adata, sigs, "aucell", **kw), aucell_reference(adata, sigs, **kw))


def test_aucell_tie_seed_matters_only_through_ties():
    """Without ties (continuous values, every gene non-zero) the tie-break order is irrelevant."""
    rng = np.random.default_rng(3)
    X = sp.csr_matrix(rng.gamma(2.0, 1.0, size=(60, 200)).astype(np.float64))
    adata = ad.AnnData(X, var=pd.DataFrame(index=[f"G{g}" for g in range(200)]))
    sigs = constructed_signatures(adata)
    sigs.pop("with_missing")
    a = scores_of(adata, sigs, "aucell", random_state=0)
    b = scores_of(adata, sigs, "aucell", random_state=None)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    tied = constructed()  # integer values: ties everywhere
    s = constructed_signatures(tied)
    assert not np.allclose(
        scores_of(tied, s, "aucell", random_state=0).to_numpy(), scores_of(tied, s, "aucell", random_state=5).to_numpy()
    )


def test_aucell_signed_by_hand():
    """n_up=3, ties in gene order (random_state=None); AUC = sum_{r <= 3} (3 - r) / max_auc with
    max_auc 3 (up: m = 2) and 2 (down: m = 1).
    c0: B 1, E 2, A 3, C 4 -> up (2 + 0)/3, down 0 -> 2/3; c1: C 1, D 2, B 3 -> up 0, down 2/2 -> -1;
    c2: F 1, A 2, B 3, ..., C 6 -> up 1/3, down 0 -> 1/3; c3: A 1, F 2, C 3 -> up 2/3, down 0 -> 2/3."""
    got = quiet_scores(signed_toy(), SIGNED, "aucell", n_up=3, random_state=None)["s"].to_numpy()
    np.testing.assert_allclose(got, [2 / 3, -1.0, 1 / 3, 2 / 3], rtol=0, atol=1e-12)
