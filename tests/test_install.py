"""The package installs as a wheel and runs outside the checkout.

A fresh virtual environment gets a regular (not editable) ``pip install --no-deps`` of the project; the
dependencies are reused from the test interpreter's environment through a ``.pth`` line (a ``.pth`` line
only appends a path: the editable finder and ``.pth`` files of that environment are *not* run, so the
checkout's ``src/`` never becomes importable). From an empty working directory the installed
``sasp-atlas`` command then lists the registry and scores the toy dataset with its HTML report, reading
its registry and page template from the wheel's ``sasp_atlas/_project/`` copies.

Needs the network once (pip fetches the build backend, hatchling, into its isolated build environment)
and ``../shared`` for ``score`` (the HGNC symbol table); skipped with a reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
from conftest import MIRROR, PROJECT_ROOT, SHARED, TESTS_DIR, WU

pytestmark = pytest.mark.slow

TOY = TESTS_DIR / "_data" / "toy.h5ad"
TIMEOUT = 1200  # seconds per command (a cold papermill kernel plus numba compilation for UMAP)


def _run(cmd: list, *, cwd: Path, env: dict, timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    t0 = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    print(f"$ {' '.join(map(str, cmd))}  [exit {proc.returncode}, {time.perf_counter() - t0:.1f} s]")
    return proc


def _ok(proc: subprocess.CompletedProcess, what: str) -> str:
    assert proc.returncode == 0, (
        f"{what} failed with exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-5000:]}"
        f"\n--- stderr ---\n{proc.stderr[-10000:]}"
    )
    return proc.stdout


def _clean_env(cache: Path) -> dict:
    """The shared mirror, a private cache and nothing of the checkout or of an activated environment.

    The new venv is *not* activated (PATH unchanged): its commands are called by absolute path, and
    papermill's ``python3`` kernel still runs the new venv's interpreter because jupyter_client replaces a
    kernel spec's ``python`` with the calling process's ``sys.executable`` (checked below)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE")
        and not k.startswith(("SASP_ATLAS_", "PIP_", "JUPYTER_"))
    }
    env.update(
        SASP_ATLAS_MIRROR=str(MIRROR),
        SASP_ATLAS_CACHE=str(cache),
        COLUMNS="200",  # COLUMNS: rich tables unfolded
        PYTHONNOUSERSITE="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """A new venv with the project installed from the checkout as a wheel; returns its paths and environment."""
    root = tmp_path_factory.mktemp("install")
    venv = root / "venv"
    env = _clean_env(root / "cache")
    _ok(_run([sys.executable, "-m", "venv", venv], cwd=root, env=env), "python -m venv")
    python = venv / "bin" / "python"
    site = Path(
        _ok(
            _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root, env=env),
            "locating site-packages",
        ).strip()
    )
    # reuse the test environment's dependencies (appended after the new venv's own site-packages)
    (site / "_reuse_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    proc = _run([python, "-m", "pip", "install", "--no-deps", "--no-input", PROJECT_ROOT], cwd=root, env=env)
    if proc.returncode != 0 and any(
        s in proc.stderr
        for s in ("No matching distribution found for hatchling", "Failed to establish a new connection")
    ):
        pytest.skip(f"pip could not fetch the build backend (no network?):\n{proc.stderr[-2000:]}")
    _ok(proc, "pip install --no-deps <project>")
    work = root / "work"  # an empty working directory, far from the checkout
    work.mkdir()
    return {
        "root": root,
        "venv": venv,
        "python": python,
        "site": site.resolve(),
        "env": env,
        "work": work,
        "cli": venv / "bin" / "sasp-atlas",
    }


def test_installed_package_is_the_wheel(installed):
    """The new venv imports the installed copy, not the checkout, and finds its project files in the wheel."""
    probe = (
        "import json, sys, sasp_atlas\n"
        "from sasp_atlas.sources import project_file, paths\n"
        "from jupyter_client import KernelManager\n"
        "kernel = KernelManager(kernel_name='python3').format_kernel_cmd()\n"
        "print(json.dumps({'file': sasp_atlas.__file__, 'version': sasp_atlas.__version__,\n"
        "  'template': str(project_file('notebooks/dataset.py')),\n"
        "  'registry': str(project_file('data_registry.yaml')), 'checkout': str(paths.CHECKOUT_DIR),\n"
        "  'kernel': kernel, 'sys_path': sys.path}))\n"
    )
    info = json.loads(
        _ok(
            _run([installed["python"], "-c", probe], cwd=installed["work"], env=installed["env"]),
            "probing the installed package",
        )
    )
    package = installed["site"] / "sasp_atlas"
    assert Path(info["file"]).resolve() == package / "__init__.py", info["file"]
    src = str(PROJECT_ROOT / "src")
    assert not any(str(p).startswith(src) for p in info["sys_path"]), info["sys_path"]
    assert info["checkout"] == "None"
    assert Path(info["template"]).resolve() == package / "_project" / "notebooks" / "dataset.py"
    assert Path(info["registry"]).resolve() == package / "_project" / "data_registry.yaml"
    assert Path(info["template"]).read_text() == (PROJECT_ROOT / "notebooks" / "dataset.py").read_text()
    assert info["version"] != "0+unknown"
    # the command papermill's `python3` kernel is started with: the new venv's interpreter, so the report
    # notebook imports this installed copy too
    assert info["kernel"][0] == str(installed["python"]), info["kernel"]


def test_installed_cli_lists_datasets(installed):
    out = _ok(_run([installed["cli"], "list"], cwd=installed["work"], env=installed["env"]), "sasp-atlas list")
    assert WU in out


def test_installed_cli_scores_the_toy(installed):
    if not (SHARED / "reference" / "raw").is_dir():
        pytest.skip(f"{SHARED / 'reference' / 'raw'} not found: scoring needs the HGNC symbol table")
    work = installed["work"] / "score"
    work.mkdir()
    shutil.copy(TOY, work / "toy.h5ad")
    cmd = [
        installed["cli"],
        "score",
        "toy.h5ad",
        "--out",
        "out",
        "--cell-type-key",
        "annotation",
        "--sample-key",
        "patient",
    ]
    stdout = _ok(_run(cmd, cwd=work, env=installed["env"]), "sasp-atlas score")
    out = work / "out"
    for name in ("celltype_scores.csv", "coverage.csv", "scored.h5ad", "report.html"):
        assert (out / name).is_file(), f"{name} not written; stdout:\n{stdout}"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "toy.h5ad" in html and "Traceback" not in html
    # nothing was written next to the checkout or into the working directory besides the inputs and outputs
    assert sorted(p.name for p in work.iterdir()) == ["out", "toy.h5ad"]
