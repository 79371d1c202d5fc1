"""Every script in ``benchmarks/`` runs at a tiny size (a smoke test, so none can rot unnoticed): each in a
fresh interpreter, as a user runs it, writing its JSON to a temporary folder; the test reads what it wrote.
The numbers themselves are not checked against targets (the cores are shared; the full-size runs in
``benchmarks/results/`` are the measurements). ``full_rehearsal.py`` is exercised by its own test."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from conftest import MIRROR, PROJECT_ROOT

BENCHMARKS = PROJECT_ROOT / "benchmarks"


def run_benchmark(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python benchmarks/<script> args...`` with this checkout's package first on the path."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT / "src"), os.environ.get("PYTHONPATH")])),
        "SASP_ATLAS_MIRROR": str(MIRROR),
    }
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        cwd=PROJECT_ROOT,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stderr[-4000:]}"
    return proc


def positive(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_pipeline_bench(tmp_path):
    out = tmp_path / "pipeline.json"
    run_benchmark(
        "pipeline_bench.py",
        *("--cells", "1500", "--genes", "2000", "--warmup-cells", "0", "--no-embedding"),
        *("--n-null", "20", "--compare-methods", "mean", "--json", str(out)),
    )
    rec = json.loads(out.read_text())
    assert (rec["cells"], rec["genes"], rec["warmup_cells"], rec["with_embedding"]) == (1500, 2000, 0, False)
    assert rec["n_null"] == 20 and rec["compare_methods"] == ["mean"]
    assert positive(rec["run_dataset_seconds"]) and positive(rec["run_dataset_cpu_seconds"])
    assert positive(rec["generate_seconds"]) and rec["nnz"] > 0
    assert rec["planted_type_found"] is True  # the planted signature tops its cell type


@pytest.mark.slow
def test_score_bench(tmp_path):
    out = tmp_path / "score.json"
    methods = ["floor", "sasp_atlas_expected"]
    run_benchmark(
        "score_bench.py",
        "--cells",
        "400",
        "--only",
        *methods,
        "--repeats",
        "1",
        "--cache-dir",
        str(tmp_path),
        "--json",
        str(out),
    )
    rec = json.loads(out.read_text())
    assert rec["cells"] == 400 and rec["nnz"] > 0 and positive(rec["matrix_mib"])
    assert set(rec["methods"]) == set(methods)
    for name in methods:
        row = rec["methods"][name]
        assert "error" not in row, row
        assert positive(row["seconds"]) and all(positive(t) for t in row["runs"]) and row["warmup_seconds"] >= 0
        assert math.isfinite(row["peak_extra_mib"])
    assert positive(rec["ratios"]["sasp_atlas_expected/floor"])


@pytest.mark.slow
def test_scale_bench(tmp_path):
    out = tmp_path / "scale.json"
    run_benchmark(
        "scale_bench.py",
        *("--cells", "1200", "--unique-cells", "1200", "--chunk-rows", "300", "--slice-cells", "600"),
        *("--worker-memory", str(1 << 30), "--cache-dir", str(tmp_path), "--json", str(out)),
    )
    rec = json.loads(out.read_text())
    assert rec["cells"] == 1200 and rec["genes"] > 0
    assert positive(rec["seconds"]) and positive(rec["seconds_1_worker"])
    assert positive(rec["in_memory_cells_per_second_per_core"]) and positive(rec["dask_cells_per_second_per_core"])
    assert rec["max_abs_diff"] <= 1e-6  # the dask engine equals the in-memory one on the slice
    assert rec["targets"]["max_abs_diff_le_1e-6"] and rec["targets"]["completes_with_workers_capped"]


@pytest.mark.slow
def test_read_floor(tmp_path):
    out = tmp_path / "read_floor.json"
    run_benchmark(
        "read_floor.py",
        *("--cells", "1200", "--unique-cells", "1200", "--chunk-rows", "300", "--chunks", "2"),
        *("--slice-cells", "600", "--cache-dir", str(tmp_path), "--json", str(out)),
    )
    rec = json.loads(out.read_text())
    assert rec["cells"] == 1200 and rec["signatures"] > 0 and rec["engine_cells"] == 600
    assert positive(rec["engine_seconds"]) and positive(rec["engine_seconds_per_chunk"])
    assert rec["stores"] and all(positive(s["read_seconds_per_chunk"]) for s in rec["stores"])


@pytest.mark.slow
def test_cli_scale(tmp_path):
    out = tmp_path / "cli.json"
    run_benchmark(
        "cli_scale.py",
        *("--cells", "1200", "--unique-cells", "1200", "--chunk-rows", "400", "--workers", "1"),
        *("--memory-limit", "1GiB", "--runs", "tables_only", "--cache-dir", str(tmp_path), "--json", str(out)),
    )
    rec = json.loads(out.read_text())
    assert rec["cells"] == 1200 and rec["workers"] == 1 and list(rec["runs"]) == ["tables_only"]
    run = rec["runs"]["tables_only"]
    assert positive(run["seconds"]) and run["peak_rss_bytes_largest_process"] > 0
    assert run["written"], "the command listed no files it wrote"


@pytest.mark.slow
def test_startup_bench(tmp_path):
    out = tmp_path / "startup.json"
    run_benchmark("startup_bench.py", "--runs", "1", "--no-warmup", "--out", str(out))
    rec = json.loads(out.read_text())
    assert rec["runs"] == 1
    assert set(rec["cases"]) == {
        "import scanpy",
        "import sasp_atlas",
        "from sasp_atlas import score, load_dataset, load_user_data",
        "sasp-atlas --help",
    }
    for case in rec["cases"].values():
        assert positive(case["median_s"]) and positive(case["median_cpu_s"])
    assert "scanpy" in rec["cases"]["import scanpy"]["heavy_modules_loaded"]
    assert rec["targets"]["importtime_extra_over_scanpy"]["median_s"] >= 0
