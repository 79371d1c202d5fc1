"""The ``mean`` engine: the mean of the signature genes per cell, on real data and signed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from engine_cases import SIGNED, assert_close, quiet_scores, real_signatures, scores_of, signed_toy


@pytest.mark.parametrize("fixture", ["wu", "mgh"])
def test_mean_and_zmean_on_real_data(request, fixture):
    adata = request.getfixturevalue(fixture)
    sigs = real_signatures(adata)
    dense = adata.X.toarray().astype(np.float64)
    mu, sd = dense.mean(axis=0), dense.std(axis=0, ddof=1)
    z = np.divide(dense - mu, sd, out=np.zeros_like(dense), where=sd > 0)
    idx = {
        s: adata.var_names.get_indexer(pd.Index(g).intersection(adata.var_names, sort=False)) for s, g in sigs.items()
    }
    ref_mean = pd.DataFrame({s: dense[:, i].mean(axis=1) for s, i in idx.items()}, index=adata.obs_names)
    ref_z = pd.DataFrame({s: z[:, i].mean(axis=1) for s, i in idx.items()}, index=adata.obs_names)
    assert_close(scores_of(adata, sigs, "mean"), ref_mean, 1e-9)
    assert_close(scores_of(adata, sigs, "zmean"), ref_z, 1e-9)


# --------------------------------------------------------------------------- hand-computed values
def test_mean_is_up_mean_minus_down_mean_by_hand():
    # mean(A, B) - C per cell: (2+4)/2 - 1, (0+1)/2 - 3, (1+1)/2 - 0, (3+0)/2 - 1
    got = quiet_scores(signed_toy(), SIGNED, "mean")["s"].to_numpy()
    np.testing.assert_allclose(got, [2.0, -2.5, 1.0, 0.5], rtol=0, atol=1e-12)
