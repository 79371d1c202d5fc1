"""The ``expected`` engine: scanpy's control-gene score with the control draw replaced by its expectation."""

from __future__ import annotations

import numpy as np
from engine_cases import scores_of

from sasp_atlas import get_signature


# --------------------------------------------------------------------------- the seed-free score
def test_expected_is_the_mean_of_scanpy_over_seeds(mgh):
    """`expected` replaces scanpy's control draw by its expectation: the mean of scanpy's score over 60
    seeds lies within Monte-Carlo error of it, cell by cell, and `expected` itself ignores the seed."""
    sigs = {"senmayo": get_signature("senmayo")}
    a = mgh.copy()
    exp0 = scores_of(a, sigs, "expected", random_state=0)["senmayo"].to_numpy()
    exp9 = scores_of(a, sigs, "expected", random_state=9)["senmayo"].to_numpy()
    np.testing.assert_array_equal(exp0, exp9)
    draws = np.array([scores_of(a, sigs, "scanpy", random_state=s)["senmayo"].to_numpy() for s in range(60)])
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    z = (draws.mean(axis=0) - exp0) / np.maximum(se, 1e-12)
    assert np.abs(z).max() < 5 and np.mean(np.abs(z) < 1.96) > 0.9
    # the control-gene correction is real: expected differs from the plain mean of the signature genes
    assert not np.allclose(exp0, scores_of(a, sigs, "mean")["senmayo"].to_numpy())
