"""The full-profile rehearsal (benchmarks/full_rehearsal.py) at a tiny scale, as CI runs it: entries written in
their formats (a few dozen cells each), served over local HTTPS, `registry pin --all`, `build --profile full` and
`check-site` run in a fresh folder, exactly as a maintainer would.

CI runs two full entries (``--only ... --exact``): the GEO per-sample text pairs (24 files) and a CELLxGENE Census
subset (a local Census written by ``write_local_census``, pinned by ``registry pin --all``), about 4 minutes. Every
entry at once (``--scale 0.01`` without ``--only``) renders every dataset page: about 14 minutes on these 2 cores,
run by hand; the scale-1 record is ``benchmarks/results/full_rehearsal.json``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

SCRIPT = PROJECT_ROOT / "benchmarks" / "full_rehearsal.py"
KEYS = {"scale", "datasets_total", "datasets_built", "wall_seconds", "peak_rss_bytes", "disk_bytes", "per_dataset"}
#: one entry per path a maintainer's first run exercises that the core build does not: GEO pairs and the Census
SMOKE = ["vangalen2019_aml_geo", "oliver2024_gut_crc_cxg"]


def test_tiny_rehearsal_pins_builds_and_checks(tmp_path):
    for tool in ("openssl", "Rscript", "chromium"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    out = tmp_path / "rehearsal.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SASP_ATLAS_")}
    env["PYTHONPATH"] = str(PROJECT_ROOT / "src")
    if axe := os.environ.get("SASP_ATLAS_AXE"):
        env["SASP_ATLAS_AXE"] = axe
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--scale", "0.01", "--json", str(out), "--work", str(tmp_path / "work")]
        + ["--only", *SMOKE, "--exact"],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert KEYS <= set(result)
    assert result["scale"] == 0.01 and result["peak_rss_bytes"] > 0 and result["disk_bytes"] > 0
    full = [r for r in result["per_dataset"] if r["kind"] == "dataset" and r["profile"] == "full"]
    assert len(full) == result["datasets_total"] == len(SMOKE)
    assert all(r["status"] == "built" for r in full), full
    geo = next(r for r in full if r["loader"] == "text_matrix_samples")
    assert geo["pinned_files"] == "24/24"  # every per-sample file pinned by `registry pin --all`
    # the Census subset was pinned into the maintainer's registry copy (cells, donors, sha256) before the build
    registry = yaml.safe_load((tmp_path / "work" / "project" / "data_registry.yaml").read_text())
    census = next(d for d in registry["datasets"] if d["id"] == "oliver2024_gut_crc_cxg")
    pin = census["loader"]["options"]["pin"]
    assert pin["n_cells"] > 0 and len(pin["sha256"]) == 64
    assert all(r["status"] == "built" for r in result["per_dataset"] if r["profile"] == "core")
    assert set(result["ground_truth_built"].values()) == {"built"}
    assert result["datasets_built"] == sum(r["status"] == "built" for r in full)
    assert result["pages_rendered"] > result["datasets_built"]
    assert result["check_site"]["passed"], result["check_site"]
