"""``engines.method_concordance``: per-group means of several methods and their rank agreement."""

from __future__ import annotations

import numpy as np
from engine_cases import SIGS

import sasp_atlas
from sasp_atlas import engines


def test_method_concordance(wu):
    a = wu.copy()
    means, conc = engines.method_concordance(a, SIGS, methods=["scanpy", "ucell", "mean"], groupby="cell_type_author")
    assert "sasp_scores" not in a.obsm  # scoring for comparison leaves adata alone
    groups = a.obs["cell_type_author"].nunique()
    assert len(means) == len(SIGS) * 3 * groups
    assert list(means.columns) == ["signature", "cell_type_author", "method", "mean", "rank", "n_cells"]
    # the per-group means are those of the scores sasp_atlas.score writes
    sasp_atlas.score(a, SIGS, method="ucell")
    by_group = a.obsm["sasp_scores"].groupby(a.obs["cell_type_author"].to_numpy()).mean()
    got = means[means["method"] == "ucell"].pivot(index="cell_type_author", columns="signature", values="mean")
    np.testing.assert_allclose(got.loc[by_group.index, SIGS].to_numpy(), by_group[SIGS].to_numpy(), atol=1e-12)
    assert len(conc) == len(SIGS) * 3
    assert conc[["spearman_groups", "spearman_cells"]].apply(lambda s: s.between(-1, 1)).all().all()
    assert (conc["n_groups"] == groups).all()
    # ranks within signature x method are 1..n
    assert (means.groupby(["signature", "method"])["rank"].min() == 1).all()
