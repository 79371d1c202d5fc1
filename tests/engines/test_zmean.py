"""The ``zmean`` engine: scanpy's ``pp.scale`` then the mean of the signature genes; signed by hand."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
from engine_cases import SIGNED, assert_close, quiet_scores, real_signatures, scores_of, signed_toy


def test_zmean_equals_scanpy_scale_then_mean(mgh):
    import scanpy as sc

    sigs = real_signatures(mgh)
    b = ad.AnnData(mgh.X.toarray().astype(np.float64), obs=mgh.obs[[]], var=mgh.var[[]])
    sc.pp.scale(b)
    ref = pd.DataFrame(
        {s: b[:, pd.Index(g).intersection(b.var_names, sort=False)].X.mean(axis=1) for s, g in sigs.items()},
        index=b.obs_names,
    )
    assert_close(scores_of(mgh, sigs, "zmean"), ref, 1e-9)


def test_zmean_by_hand():
    # gene means 1.5, 1.5, 1.25; SDs (ddof=1) sqrt(5/3), sqrt(3), sqrt(19/12)
    zA = np.array([0.5, -1.5, -0.5, 1.5]) / np.sqrt(5 / 3)
    zB = np.array([2.5, -0.5, -0.5, -1.5]) / np.sqrt(3)
    zC = np.array([-0.25, 1.75, -1.25, -0.25]) / np.sqrt(19 / 12)
    got = quiet_scores(signed_toy(), SIGNED, "zmean")["s"].to_numpy()
    np.testing.assert_allclose(got, (zA + zB) / 2 - zC, rtol=0, atol=1e-12)
    assert abs(got[0] - 1.1140169) < 1e-6  # (0.38730 + 1.44338) / 2 + 0.19868
