"""Same input, same seed -> byte-identical tables: for a registry dataset through
pipeline.run_dataset and for a user's file through score_user_file, within one process and in a
fresh interpreter with another hash seed (set and dict orders must never leak into the output).
The seed is recorded in every output."""

from __future__ import annotations

import dataclasses
import gzip
import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import MGH, TESTS_DIR
from test_user import SIGS, user_adata, write

from sasp_atlas.atlas import score_user_file
from sasp_atlas.atlas.pipeline import TABLE_FILES, DatasetResult, read_tables, run_dataset, write_tables
from sasp_atlas.data import InputError


def _tables(folder: Path) -> dict[str, bytes]:
    """Every table written under ``folder`` (gzip payloads decompressed: their header holds a timestamp)."""
    out = {}
    for p in sorted(folder.rglob("*.csv*")):
        data = p.read_bytes()
        out[str(p.relative_to(folder))] = gzip.decompress(data) if p.suffix == ".gz" else data
    return out


@pytest.mark.slow
def test_run_dataset_twice_gives_byte_identical_tables(mgh, tmp_path):
    a = run_dataset(MGH, out_dir=tmp_path / "a", with_embedding=False, random_state=0)
    b = run_dataset(MGH, out_dir=tmp_path / "b", with_embedding=False, random_state=0)
    ta, tb = _tables(tmp_path / "a"), _tables(tmp_path / "b")
    folder = f"tables/datasets/{MGH}"
    assert {f"{folder}/celltype_scores.csv", f"{folder}/coverage.csv"} <= set(ta)
    assert ta.keys() == tb.keys()
    for name in ta:
        assert ta[name] == tb[name], name
    assert (a.celltype_scores["random_state"] == 0).all()
    assert (
        a.adata.uns["sasp_scores"]["params"]["random_state"]
        == 0
        == b.adata.uns["sasp_scores"]["params"]["random_state"]
    )


@pytest.mark.slow
def test_the_seed_is_recorded_and_moves_only_scanpys_single_draw(mgh, tmp_path):
    """The seed is written into every table; the atlas's default score and statistics do not depend on it,
    scanpy's single control draw (method="scanpy") does."""
    seeded = run_dataset(MGH, out_dir=tmp_path / "s7", with_embedding=False, random_state=7, signatures=["senmayo"])
    table = pd.read_csv(tmp_path / "s7" / "tables" / "datasets" / MGH / "celltype_scores.csv")
    assert (table["random_state"] == 7).all()
    assert seeded.adata.uns["sasp_scores"]["params"]["random_state"] == 7
    other = run_dataset(MGH, out_dir=tmp_path / "s0", with_embedding=False, random_state=0, signatures=["senmayo"])
    assert seeded.celltype_scores["ci_low"].equals(other.celltype_scores["ci_low"])
    s1 = run_dataset(
        MGH,
        out_dir=tmp_path / "k1",
        with_embedding=False,
        random_state=1,
        signatures=["senmayo"],
        method="scanpy",
        n_null=10,
    )
    s0 = run_dataset(
        MGH,
        out_dir=tmp_path / "k0",
        with_embedding=False,
        random_state=0,
        signatures=["senmayo"],
        method="scanpy",
        n_null=10,
    )
    assert not s1.cell_scores["senmayo"].equals(s0.cell_scores["senmayo"])


_SCORE_AGAIN = """
import sys
from sasp_atlas.atlas import score_user_file
score_user_file(sys.argv[1], sys.argv[2], cell_type_key="annotation", sample_key="patient",
                signatures=sys.argv[3].split(","), random_state=5)
"""


@pytest.mark.slow
def test_score_user_file_is_byte_identical_in_a_fresh_interpreter(tmp_path):
    """The second run is another process with another hash seed."""
    path = write(user_adata(), tmp_path)
    kw = dict(cell_type_key="annotation", sample_key="patient", signatures=SIGS, random_state=5)
    score_user_file(path, tmp_path / "one", **kw)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run(
        [sys.executable, "-c", _SCORE_AGAIN, str(path), str(tmp_path / "fresh"), ",".join(SIGS)],
        check=True,
        env=env,
        cwd=TESTS_DIR,
        capture_output=True,
        timeout=300,
    )
    for name in ("celltype_scores.csv", "coverage.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes(), name
    assert (pd.read_csv(tmp_path / "one" / "celltype_scores.csv")["random_state"] == 5).all()
    scored = ad.read_h5ad(tmp_path / "one" / "scored.h5ad")
    assert scored.uns["sasp_scores"]["params"]["random_state"] == 5
    fresh = ad.read_h5ad(tmp_path / "fresh" / "scored.h5ad")
    pd.testing.assert_frame_equal(scored.obsm["sasp_scores"], fresh.obsm["sasp_scores"])


@pytest.mark.slow  # over 5 s on 2 cores (subprocesses / real data)
def test_method_sensitivity_compares_every_engine_and_names_what_it_left_out(mgh, monkeypatch):
    """The comparison covers the R-checked engines too; GSVA, quadratic in cells, is left out above its cost
    budget and the page sentence names it; ``gsva_kernel_terms`` is sum_g nnz_g^2."""
    import numpy as np
    import scipy.sparse as sp

    from sasp_atlas.atlas import COMPARED_METHODS, pipeline
    from sasp_atlas.engines import gsva_kernel_terms
    from sasp_atlas.site import pages

    assert {"seurat", "ssgsea", "gsva"} <= set(COMPARED_METHODS)
    X = sp.csr_matrix(np.array([[1.0, 0, 2], [0, 0, 3], [4, 0, 5]]))
    assert gsva_kernel_terms(X) == 2**2 + 0 + 3**2 == gsva_kernel_terms(X.toarray()) == gsva_kernel_terms(X.tocsc())
    terms = gsva_kernel_terms(mgh.X)
    kept, skipped = pipeline.affordable_methods(mgh, COMPARED_METHODS)
    assert kept == list(COMPARED_METHODS) and not skipped  # MGH53/54 (1,600 cells) is within the budget
    monkeypatch.setattr(pipeline, "GSVA_MAX_KERNEL_TERMS", terms - 1)
    kept, skipped = pipeline.affordable_methods(mgh, COMPARED_METHODS)
    assert "gsva" not in kept and set(skipped) == {"gsva"} and f"{terms:.2g}" in skipped["gsva"]
    means = pd.DataFrame({"method": [m for m in kept for _ in range(2)]})
    text = pages.methods_compared_markdown(means, COMPARED_METHODS)
    assert f"by {len(kept)} engines" in text and "Seurat's AddModuleScore (`seurat`)" in text
    assert "Left out here: `gsva`" in text and "square of the number of cells" in text
    full = pages.methods_compared_markdown(pd.DataFrame({"method": list(COMPARED_METHODS)}), COMPARED_METHODS)
    assert "Left out" not in full and f"by {len(COMPARED_METHODS)} engines" in full


_EMBED_SCRIPT = """
import sys, numpy as np, scipy.sparse as sp, anndata as ad
from sasp_atlas.atlas import pipeline
if sys.argv[1] == "off":
    pipeline.cache_umap_kernels = lambda: 0
else:
    assert pipeline.cache_umap_kernels() > 20
rng = np.random.default_rng(3)
a = ad.AnnData(sp.csr_matrix(np.log1p(rng.poisson(0.4, (150, 400)).astype(np.float32))))
pipeline.embed(a, random_state=0)
np.save(sys.argv[2], a.obsm["X_umap"])
"""


@pytest.mark.slow
def test_caching_umaps_kernels_leaves_the_embedding_unchanged(tmp_path):
    """The embedding with umap-learn's kernels loaded from numba's disk cache (written by an earlier process)
    equals the one compiled afresh, to the bit."""
    script = tmp_path / "embed.py"
    script.write_text(_EMBED_SCRIPT)
    coords = {}
    for mode in ("on", "on", "off"):  # the first 'on' may compile and write the cache; the second loads it
        out = tmp_path / f"{mode}.npy"
        subprocess.run([sys.executable, str(script), mode, str(out)], check=True, capture_output=True)
        coords[mode] = np.load(out)
    assert coords["on"].shape == (150, 2) and np.isfinite(coords["on"]).all()
    np.testing.assert_array_equal(coords["on"], coords["off"])


# --------------------------------------------------------------------------- the value type of a given AnnData
def _unrecorded(n: int = 200, seed: int = 0) -> ad.AnnData:
    """Log-normalised cells as a user builds them (scanpy normalize_total + log1p), no value type recorded."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(150)]
    types = np.array(["A", "B"])[rng.integers(0, 2, n)]
    X = rng.poisson(1.0, (n, len(genes))).astype(np.float32)
    X = np.log1p(X / np.maximum(X.sum(axis=1, keepdims=True), 1) * 1e4)
    obs = pd.DataFrame(
        {
            "cell_type": types,
            "cell_type_author": types,
            "lineage": "",
            "malignant": False,
            "sample": np.array(["S1", "S2"])[rng.integers(0, 2, n)],
        },
        index=[f"c{i}" for i in range(n)],
    )
    return ad.AnnData(
        X=X,
        obs=obs,
        var=pd.DataFrame(index=genes),
        uns={"provenance": {"cancer_type": "synthetic", "cancer_type_ontology_id": ""}},
    )


def test_run_dataset_refuses_an_unknown_log_base_and_names_the_fix(tmp_path):
    adata = _unrecorded()
    with pytest.raises(InputError, match=r'value_type="raw_counts"') as err:
        run_dataset("u", adata=adata, signatures={"s": ["G1", "G2", "G3"]}, out_dir=tmp_path, with_embedding=False)
    assert "log2_tpm10_plus1" in str(err.value)
    with pytest.raises(InputError, match="not a known value type"):
        run_dataset("u", adata=adata, signatures={"s": ["G1"]}, out_dir=tmp_path, value_type="log1p_cp10k")
    recorded = _unrecorded()
    recorded.uns["provenance"]["value_type"] = "tpm"
    with pytest.raises(InputError, match="contradicts"):
        run_dataset("u", adata=recorded, signatures={"s": ["G1"]}, out_dir=tmp_path, value_type="raw_counts")


@pytest.mark.slow
def test_run_dataset_takes_the_value_type_as_an_argument(tmp_path):
    adata = _unrecorded()
    res = run_dataset(
        "u",
        adata=adata,
        signatures={"s": [f"G{i}" for i in range(10)]},
        out_dir=tmp_path,
        with_embedding=False,
        value_type="raw_counts",
        n_null=5,
        compare_methods=("expected",),
    )
    assert adata.uns["provenance"]["value_type"] == "raw_counts"
    assert set(res.celltype_scores["cell_type"]) == {"A", "B"}
    assert (tmp_path / "tables" / "datasets" / "u" / "sasp_class_scores.csv").exists()


def _small_result() -> DatasetResult:
    cells = pd.DataFrame({"senmayo": [0.1, 0.2], "cell_type": ["B", "T"], "lineage": ["", ""]}, index=["c1", "c2"])
    cells.index.name = "cell"
    table = pd.DataFrame(
        {"signature": ["senmayo", "husi"], "mean": [0.123456789, 0.5], "null_mean": [0.1, np.nan], "caveat": ["", "x"]}
    )
    empty = pd.DataFrame(columns=["ligand", "n_samples_found"])
    empty.attrs["skipped"] = "one tumour only"
    tables = {name: table for name in TABLE_FILES}
    tables |= {"cell_scores": cells, "sasp_communication": empty, "sasp_sender_split": empty}
    return DatasetResult("d1", ad.AnnData(np.zeros((2, 1))), **tables)


def test_write_tables_then_read_tables_gives_the_tables_back(tmp_path):
    """The one writer and its reader: every table of TABLE_FILES, 6 significant digits, empty text cells
    as "", empty numbers NaN, and the reason a table was not computed."""
    res = _small_result()
    written = write_tables(res, tmp_path)
    assert set(written) == set(TABLE_FILES)
    assert all(p.parent == tmp_path / "tables" / "datasets" / "d1" for p in written.values())
    back = read_tables(tmp_path, "d1", res.adata)
    got = back.celltype_scores
    assert got["mean"].tolist() == [0.123457, 0.5] and np.isnan(got["null_mean"][1])
    assert got["caveat"].tolist() == ["", "x"]
    assert back.cell_scores["lineage"].tolist() == ["", ""] and back.cell_scores.index.name == "cell"
    assert back.sasp_communication.attrs["skipped"] == back.sasp_sender_split.attrs["skipped"] == "one tumour only"
    assert "skipped" not in back.null.attrs
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.null = got
    flat = write_tables(res, tmp_path / "flat", tables=("celltype_scores", "coverage"), flat=True)
    assert sorted(p.name for p in flat.values()) == ["celltype_scores.csv", "coverage.csv"]
