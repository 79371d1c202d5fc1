"""The ``ucell`` engine equals pyucell (UCell, Andreatta & Carmona 2021) on real data, on constructed
matrices with the corner cases, and in its signed form; hand-computed values on a toy matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from engine_cases import (
    CASES,
    SIGNED,
    assert_close,
    constructed,
    constructed_signatures,
    quiet_scores,
    real_signatures,
    scores_of,
    signed_synthetic,
    signed_synthetic_sets,
    signed_toy,
)


# --------------------------------------------------------------------------- references
def ucell_reference(adata, signatures: dict[str, list[str]], **kw) -> pd.DataFrame:
    pyucell = pytest.importorskip("pyucell")  # the reference only: the invariant tests below run without it
    b = adata.copy()
    pyucell.compute_ucell_scores(b, signatures, n_jobs=1, **kw)
    return pd.DataFrame({s: b.obs[f"{s}_UCell"].to_numpy(np.float64) for s in signatures}, index=b.obs_names)


# --------------------------------------------------------------------------- real data
@pytest.mark.parametrize("fixture", ["wu", "mgh"])
@pytest.mark.parametrize("kw", [{}, {"max_rank": 400}, {"missing_genes": "skip"}])
def test_ucell_equals_pyucell_on_real_data(request, fixture, kw):
    adata = request.getfixturevalue(fixture)
    sigs = real_signatures(adata)
    assert_close(scores_of(adata, sigs, "ucell", **kw), ucell_reference(adata, sigs, **kw))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kw", [{}, {"max_rank": 50}, {"max_rank": 7, "missing_genes": "skip"}])
def test_ucell_equals_pyucell_constructed(case, kw):
    adata = constructed(**CASES[case])
    sigs = constructed_signatures(adata)
    assert_close(scores_of(adata, sigs, "ucell", **kw), ucell_reference(adata, sigs, **kw))


def test_ucell_signed_by_hand():
    """max_rank=4; non-zero genes ranked decreasing (ties averaged), zeros and ranks > 4 at 4.
    U = 1 - (sum of ranks - l(l+1)/2) / (l max_rank - l(l+1)/2).
    c0: B 1, E 2, A 3, C 4 -> U(up) = 1 - (4 - 3)/5 = 0.8, U(down) = 1 - 3/3 = 0 -> 0.8
    c1: C 1, D 2, B = F 3.5, A 4 -> U(up) = 1 - 4.5/5 = 0.1, U(down) = 1 -> max(0, -0.9) = 0
    c2: F 1, A = B = D = E 3.5, C 4 -> U(up) = 1 - 4/5 = 0.2, U(down) = 0 -> 0.2
    c3: A 1, F 2, C 3, B 4 -> U(up) = 1 - 2/5 = 0.6, U(down) = 1 - 2/3 = 1/3 -> 0.6 - 1/3 (w_neg 0.5: 0.6 - 1/6)."""
    got = quiet_scores(signed_toy(), SIGNED, "ucell", max_rank=4)["s"].to_numpy()
    np.testing.assert_allclose(got, [0.8, 0.0, 0.2, 0.6 - 1 / 3], rtol=0, atol=1e-12)
    half = quiet_scores(signed_toy(), SIGNED, "ucell", max_rank=4, w_neg=0.5)["s"].to_numpy()
    np.testing.assert_allclose(half, [0.8, 0.0, 0.2, 0.6 - 1 / 6], rtol=0, atol=1e-12)


@pytest.mark.parametrize("w_neg", [1.0, 0.5])
@pytest.mark.parametrize("missing_genes", ["impute", "skip"])
def test_ucell_signed_equals_pyucell(w_neg, missing_genes):
    """pyucell's own signed form: genes suffixed + / -, max(0, U(up) - w_neg U(down)); a missing gene per part."""
    pyucell = pytest.importorskip("pyucell")
    a = signed_synthetic()
    d = dict(signed_synthetic_sets(a)["sig"])
    d["NOT_A_GENE_UP"], d["NOT_A_GENE_DOWN"] = 1, -1
    got = quiet_scores(a, {"sig": d}, "ucell", max_rank=100, w_neg=w_neg, missing_genes=missing_genes)["sig"].to_numpy()
    b = a.copy()
    pyucell.compute_ucell_scores(
        b,
        {"sig": [g + ("+" if s > 0 else "-") for g, s in d.items()]},
        max_rank=100,
        w_neg=w_neg,
        missing_genes=missing_genes,
        n_jobs=1,
    )
    want = b.obs["sig_UCell"].to_numpy()
    assert (want == 0).any() and (want > 0).any()  # the clip at 0 is exercised
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
