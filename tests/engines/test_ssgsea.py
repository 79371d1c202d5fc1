"""The ``ssgsea`` engine (Barbie et al. 2009, as GSVA 1.46 computes it): its normalisation is the range of
all scores. Its equality with GSVA's ssgsea in R is checked with gsva's in ``test_gsva.py`` (one R run).
"""

from __future__ import annotations

import math

import numpy as np
from test_gsva import python_scores, small  # noqa: F401  (a fixture; engine_cases.py says why no conftest.py)

import sasp_atlas


def test_ssgsea_normalisation_is_the_range_of_all_scores(small):  # noqa: F811  (the fixture imported above)
    adata, sets = small
    raw, _ = python_scores(adata, sets, "ssgsea", ssgsea_norm=False)
    a = adata.copy()
    sasp_atlas.score(a, sets, method="ssgsea")
    rng_ = raw.to_numpy().max() - raw.to_numpy().min()
    assert math.isclose(a.uns["sasp_scores"]["params"]["norm_range"], rng_)
    np.testing.assert_allclose(a.obsm["sasp_scores"].to_numpy(), raw.to_numpy() / rng_, rtol=1e-15)
    # unnormalised scores are per cell: scoring half the cells gives the same values
    half, _ = python_scores(adata[:20].copy(), sets, "ssgsea", ssgsea_norm=False)
    np.testing.assert_array_equal(half.to_numpy(), raw.iloc[:20].to_numpy())
