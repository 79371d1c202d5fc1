"""``sasp-atlas score --dask`` end to end: the same tables and scores as the in-memory path, through a
real dask cluster (``--scheduler`` of a module-scoped LocalCluster on 127.0.0.1)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sasp_atlas.cli import main

# slow: the module starts a LocalCluster of 2 worker processes (~35 s CPU in all, measured) and two tests render the report
pytestmark = pytest.mark.slow

SIGS = ["senmayo", "fridman_senescence_up"]


@pytest.fixture(scope="module")
def scheduler():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, memory_limit="2GiB"
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def user_data(wu, tmp_path_factory):
    """1,500 Wu cells as a user would bring them: raw counts, author labels, two patients (.h5ad and .zarr)."""
    sub = wu[:1500]
    user = ad.AnnData(
        X=sp.csr_matrix(sub.layers["original"]),
        obs=pd.DataFrame(
            {
                "ct": sub.obs["cell_type_author"].astype(str).to_numpy(),
                "patient": np.where(np.arange(sub.n_obs) % 3 == 0, "p1", "p2"),
            },
            index=sub.obs_names,
        ),
        var=pd.DataFrame(index=sub.var_names),
    )
    folder = tmp_path_factory.mktemp("user")
    user.write_h5ad(folder / "cells.h5ad")
    user.write_zarr(folder / "cells.zarr")
    return folder


def _run(args, out) -> int:
    return main(
        [
            "score",
            *map(str, args),
            "--out",
            str(out),
            "--no-report",
            "--cell-type-key",
            "ct",
            "--sample-key",
            "patient",
            "--signatures",
            *SIGS,
        ]
    )


@pytest.fixture(scope="module")
def in_memory(user_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("memory")
    assert _run([user_data / "cells.h5ad"], out) == 0
    return out


@pytest.mark.parametrize("name", ["cells.h5ad", "cells.zarr"])
def test_score_dask_equals_in_memory(scheduler, user_data, in_memory, tmp_path, name):
    rc = _run([user_data / name, "--dask", "--scheduler", scheduler, "--chunk-rows", "400", "--no-progress"], tmp_path)
    assert rc == 0
    want = pd.read_csv(in_memory / "celltype_scores.csv")
    got = pd.read_csv(tmp_path / "celltype_scores.csv")
    assert list(got.columns) == list(want.columns) and len(got) == len(want) > 10
    num = want.select_dtypes("number").columns
    np.testing.assert_allclose(
        got[num].to_numpy(float), want[num].to_numpy(float), rtol=1e-5, atol=1e-6, equal_nan=True
    )
    text = [c for c in want.columns if c not in num]
    pd.testing.assert_frame_equal(got[text].fillna(""), want[text].fillna(""))
    gene_sets = got["signature"] != "husi"  # hUSI is a model: no random-gene-set null
    assert got.loc[gene_sets, "null_mean"].notna().all() and got["effect_size"].notna().any()
    assert (got["signature"] == "husi").any()  # the senescence index is scored on dask too
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "coverage.csv"), pd.read_csv(in_memory / "coverage.csv"))

    scored_name = "scored.zarr" if name.endswith(".zarr") else "scored.h5ad"
    scored = ad.read_zarr(tmp_path / scored_name) if name.endswith(".zarr") else ad.read_h5ad(tmp_path / scored_name)
    ref = ad.read_h5ad(in_memory / "scored.h5ad")
    assert scored.X is None and scored.uns["sasp_scores"]["params"]["backend"] == "dask"
    np.testing.assert_allclose(
        scored.obsm["sasp_scores"].to_numpy(), ref.obsm["sasp_scores"].to_numpy(), rtol=0, atol=1e-6
    )
    assert (scored.obs["cell_type"] == ref.obs["cell_type"]).all()


def test_score_dask_refuses_a_whole_matrix_method(scheduler, user_data, tmp_path, capsys):
    rc = _run(
        [user_data / "cells.zarr", "--dask", "--scheduler", scheduler, "--method", "gsva", "--no-progress"], tmp_path
    )
    assert rc == 2
    assert "gsva" in capsys.readouterr().err
    assert not (tmp_path / "celltype_scores.csv").exists()


@pytest.fixture(scope="module")
def user_data_raw(wu, tmp_path_factory):
    """The same cells as a CELLxGENE-style file: log-normalised X, raw counts in raw.X."""
    sub = wu[:1500]
    counts = sp.csr_matrix(sub.layers["original"])
    lognorm = sp.csr_matrix(np.log1p(counts.multiply(1e4 / np.asarray(counts.sum(axis=1)))), dtype=np.float32)
    user = ad.AnnData(
        X=lognorm,
        obs=pd.DataFrame(
            {
                "ct": sub.obs["cell_type_author"].astype(str).to_numpy(),
                "patient": np.where(np.arange(sub.n_obs) % 3 == 0, "p1", "p2"),
            },
            index=sub.obs_names,
        ),
        var=pd.DataFrame(index=sub.var_names),
    )
    user.raw = ad.AnnData(X=counts, var=pd.DataFrame(index=sub.var_names))
    folder = tmp_path_factory.mktemp("user_raw")
    user.write_h5ad(folder / "cells.h5ad")
    user.write_zarr(folder / "cells.zarr")
    return folder


@pytest.mark.parametrize("name", ["cells.h5ad", "cells.zarr"])
def test_score_dask_reads_raw_lazily(scheduler, user_data_raw, in_memory, tmp_path, name):
    """``--layer raw`` on dask scores raw.X, read lazily: the tables equal the in-memory run on the
    counts themselves (same cells, same counts, same normalisation)."""
    rc = _run(
        [
            user_data_raw / name,
            "--layer",
            "raw",
            "--dask",
            "--scheduler",
            scheduler,
            "--chunk-rows",
            "400",
            "--no-progress",
        ],
        tmp_path,
    )
    assert rc == 0
    want = pd.read_csv(in_memory / "celltype_scores.csv")
    got = pd.read_csv(tmp_path / "celltype_scores.csv")
    num = want.select_dtypes("number").columns
    np.testing.assert_allclose(
        got[num].to_numpy(float), want[num].to_numpy(float), rtol=1e-5, atol=1e-6, equal_nan=True
    )
    scored = (
        ad.read_zarr(tmp_path / "scored.zarr") if name.endswith(".zarr") else ad.read_h5ad(tmp_path / "scored.h5ad")
    )
    ref = ad.read_h5ad(in_memory / "scored.h5ad")
    np.testing.assert_allclose(
        scored.obsm["sasp_scores"].to_numpy(), ref.obsm["sasp_scores"].to_numpy(), rtol=0, atol=1e-6
    )


def test_lazy_raw_asked_for_but_absent_is_named(user_data):
    from sasp_atlas.data import InputError
    from sasp_atlas.data.lazy import read_lazy

    with pytest.raises(InputError, match="has no raw"):
        read_lazy(user_data / "cells.zarr", raw=True)
    assert read_lazy(user_data / "cells.zarr").raw is None


# --------------------------------------------------------------------------- the report of a lazily scored file
def _report_tables(out):
    return next((out / "report_files" / "tables" / "datasets").iterdir())


def test_score_dask_report_on_all_cells_equals_the_tables(scheduler, user_data, tmp_path):
    """With ``--report-cells`` above the file's cells, the report's own tables (computed in memory on
    report_cells.h5ad) equal the dask path's all-cell tables, and its banner says all cells were used."""
    rc = main(
        [
            "score",
            str(user_data / "cells.zarr"),
            "--out",
            str(tmp_path),
            "--cell-type-key",
            "ct",
            "--sample-key",
            "patient",
            "--signatures",
            *SIGS,
            "--dask",
            "--scheduler",
            scheduler,
            "--chunk-rows",
            "400",
            "--no-progress",
            "--report-cells",
            "5000",
        ]
    )
    assert rc == 0
    cells = ad.read_h5ad(tmp_path / "report_cells.h5ad")
    assert cells.n_obs == 1500 and cells.uns["report_subsample"]["n_cells_total"] == 1500
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "This report uses all 1,500 cells" in html and "--dask" in html
    want = pd.read_csv(tmp_path / "celltype_scores.csv")
    got = pd.read_csv(_report_tables(tmp_path) / "celltype_scores.csv")
    key = ["signature", "cell_type"]
    got, want = got.sort_values(key).reset_index(drop=True), want.sort_values(key).reset_index(drop=True)
    assert len(got) == len(want) > 10
    for col in ("mean", "median", "effect_size", "balanced_effect", "n_cells", "n_samples", "null_mean", "p_null"):
        np.testing.assert_allclose(
            got[col].to_numpy(float), want[col].to_numpy(float), rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=col
        )


def test_score_dask_report_on_a_subsample(scheduler, user_data, tmp_path):
    """``--report-cells 600``: at most 600 cells, every sample x cell type kept, the banner gives the
    counts and the distance to the all-cell means."""
    rc = main(
        [
            "score",
            str(user_data / "cells.h5ad"),
            "--out",
            str(tmp_path),
            "--cell-type-key",
            "ct",
            "--sample-key",
            "patient",
            "--signatures",
            *SIGS,
            "--dask",
            "--scheduler",
            scheduler,
            "--chunk-rows",
            "400",
            "--no-progress",
            "--report-cells",
            "600",
        ]
    )
    assert rc == 0
    cells = ad.read_h5ad(tmp_path / "report_cells.h5ad")
    scored = ad.read_h5ad(tmp_path / "scored.h5ad")
    assert 500 < cells.n_obs <= 600 and cells.obs_names.isin(scored.obs_names).all()
    pairs = lambda obs: set(zip(obs["sample"].astype(str), obs["cell_type"].astype(str)))  # noqa: E731
    assert pairs(cells.obs) == pairs(scored.obs)
    # the subsample's rows are the file's rows: same values as the scored cells' source
    full = ad.read_h5ad(user_data / "cells.h5ad")
    counts = full[cells.obs_names].X
    lib = np.asarray(counts.sum(axis=1)).ravel()
    np.testing.assert_allclose(
        cells.X.toarray(), np.log1p(counts.toarray() * (1e4 / lib)[:, None]), rtol=1e-5, atol=1e-5
    )
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert f"This report is drawn from {cells.n_obs:,} of 1,500 cells" in html
    assert "differ by at most" in html


def test_score_dask_report_cells_must_be_positive(user_data, tmp_path, capsys):
    rc = main(
        [
            "score",
            str(user_data / "cells.zarr"),
            "--out",
            str(tmp_path),
            "--cell-type-key",
            "ct",
            "--dask",
            "--report-cells",
            "0",
        ]
    )
    assert rc == 2 and "--report-cells must be at least 1" in capsys.readouterr().err
