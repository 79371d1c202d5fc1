"""The house: layers that import only downward (import-linter), imports at module top, and one
definition of each thing registry data and user data share."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT

SRC = PROJECT_ROOT / "src" / "sasp_atlas"
MODULES = sorted(SRC.rglob("*.py"))


@pytest.mark.slow
def test_layers_contract_is_kept():
    """`lint-imports` with the layers contract of pyproject.toml (sources < ... < cli)."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    proc = subprocess.run([exe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_the_contract_covers_every_module():
    """Every module of the package lives in one of the contract's layers (only the root __init__,
    the package's public face, sits above them)."""
    cfg = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    (contract,) = cfg["tool"]["importlinter"]["contracts"]
    layers = contract["layers"]
    assert len(layers) >= 6
    for path in MODULES:
        dotted = ".".join(("sasp_atlas", *path.relative_to(SRC).with_suffix("").parts))
        if dotted == "sasp_atlas.__init__":
            continue
        assert any(dotted == layer or dotted.startswith(layer + ".") for layer in layers), dotted


def _function_imports(tree: ast.AST):
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    yield node


def test_imports_sit_at_module_top():
    """No import inside a function: the real dependencies are visible at the top of each module."""
    found = []
    for path in MODULES:
        for node in _function_imports(ast.parse(path.read_text())):
            found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert found == []


def _definitions(name: str) -> list[str]:
    out = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
                out.append(str(path.relative_to(SRC)))
    return out


@pytest.mark.parametrize("name, home", [
    ("harmonise_obs", "data/harmonise.py"),          # the one harmoniser (obs columns)
    ("harmonise_cell_types", "data/harmonise.py"),   # ... and cell types
    ("dedupe_genes", "data/validate.py"),            # the one duplicate-gene policy
    ("scan_matrix", "data/validate.py"),             # the one matrix check
    ("execute_page", "site/notebooks.py"),           # the one papermill runner
    ("match_gene_sets", "genes/matching.py"),        # the one gene matcher
    ("NotebookFailed", "site/notebooks.py"),
])
def test_one_definition_each(name, home):
    assert _definitions(name) == [home]


def test_papermill_is_called_in_one_place():
    calls = [str(p.relative_to(SRC)) for p in MODULES if "execute_notebook(" in p.read_text()]
    assert calls == ["site/notebooks.py"]
