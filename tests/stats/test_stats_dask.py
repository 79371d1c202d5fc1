"""Per-patient statistics of a dask-backed AnnData (``sasp_atlas.stats._dask``) equal the in-memory ones."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

import sasp_atlas
from sasp_atlas.stats import sample_effects
from sasp_atlas.stats._dask import (
    pseudobulk_dask,
    sample_celltype_means_dask,
    sample_effects_dask,
)

SIGS = ["senmayo", "fridman_senescence_up", "reactome_sasp"]


@pytest.fixture(scope="module")
def scored(mgh):
    adata = sasp_atlas.score(mgh, SIGS, method="expected", copy=True)
    lazy = ad.AnnData(X=da.from_array(sp.csr_matrix(mgh.X), chunks=(600, -1), asarray=False), obs=mgh.obs.copy(),
                      var=mgh.var[[]].copy())
    return adata, lazy


def test_pseudobulk_equals_scanpy_aggregate(scored):
    adata, lazy = scored
    got = pseudobulk_dask(lazy, ["sample", "cell_type"], compute_kwargs={"scheduler": "threads"})
    want = sc.get.aggregate(adata, by=["sample", "cell_type"], func="sum")
    assert len(got) == len(want) > 3
    want_sum = np.asarray(want.layers["sum"].todense() if sp.issparse(want.layers["sum"]) else want.layers["sum"])
    order = want.obs_names.get_indexer(got.obs_names)
    assert (order >= 0).all()
    np.testing.assert_allclose(got.layers["sum"], want_sum[order], rtol=1e-5, atol=1e-3)
    counts = adata.obs.groupby(["sample", "cell_type"], observed=True).size()
    for (s, c), n in counts.items():
        assert int(got.obs.loc[(got.obs["sample"] == s) & (got.obs["cell_type"] == c), "n_cells"].iloc[0]) == n
    # the linear score is a pseudobulk quantity: group means of 'mean' from the sums equal the cells' means
    genes = adata.uns["sasp_scores"]["signatures"]["senmayo"]["genes_used"]
    mean_scores = sasp_atlas.score(adata, {"m": genes}, method="mean", copy=True).obsm["sasp_scores"]["m"]
    idx = adata.var_names.get_indexer(genes)
    from_sums = got.layers["sum"][:, idx].sum(axis=1) / len(idx) / got.obs["n_cells"].to_numpy()
    by_cells = mean_scores.groupby([adata.obs["sample"], adata.obs["cell_type"]], observed=True).mean()
    np.testing.assert_allclose(from_sums, by_cells.loc[list(zip(got.obs["sample"], got.obs["cell_type"]))].to_numpy(),
                               rtol=1e-9)


def test_sample_celltype_means_and_effects_equal_in_memory(scored):
    adata, _ = scored
    scores = adata.obsm["sasp_scores"]
    lazy_scores = da.from_array(scores.to_numpy(), chunks=(700, -1))
    means = sample_celltype_means_dask(lazy_scores, adata.obs, columns=list(scores.columns),
                                       compute_kwargs={"scheduler": "threads"})
    ref = scores.groupby([adata.obs["sample"], adata.obs["cell_type"]], observed=True).mean()
    for row in means.itertuples():
        assert row.mean == pytest.approx(ref.loc[(row.sample, row.cell_type), row.signature], rel=1e-12)
    groups = adata.obs["cell_type"].astype(str).to_numpy()
    samples = adata.obs["sample"].astype(str).to_numpy()
    want = sample_effects(scores, groups, samples)
    got = sample_effects_dask(lazy_scores, groups, samples, columns=list(scores.columns),
                              compute_kwargs={"scheduler": "threads"})
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)
    assert want["auroc"].notna().any()
