"""The house: layers that import only downward (import-linter), imports at module top, and one
definition of each thing registry data and user data share."""

from __future__ import annotations

import ast
import os
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
    the package's public face, and ``_lazy``, the documented lazy-import helper every layer may use,
    sit outside them)."""
    cfg = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    (contract,) = cfg["tool"]["importlinter"]["contracts"]
    layers = contract["layers"]
    assert len(layers) >= 6
    for path in MODULES:
        dotted = ".".join(("sasp_atlas", *path.relative_to(SRC).with_suffix("").parts))
        if dotted in ("sasp_atlas.__init__", "sasp_atlas._lazy"):
            continue
        assert any(dotted == layer or dotted.startswith(layer + ".") for layer in layers), dotted


def _function_imports(tree: ast.AST):
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    yield node


def test_imports_sit_at_module_top():
    """No import statement inside a function: the real dependencies are visible at the top of each
    module. The one exception is a call of the documented helper, ``lazy_import("dask.array")``
    (``sasp_atlas/_lazy.py``), for heavy optional dependencies and the command line's layers."""
    found = []
    for path in MODULES:
        for node in _function_imports(ast.parse(path.read_text())):
            found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert found == []


#: modules that may call importlib.import_module themselves: the helper, and the pipeline's switch of
#: umap-learn's numba cache (it walks modules by name; it imports nothing the module top could)
IMPORT_MODULE_CALLERS = {"_lazy.py", "atlas/pipeline.py"}


def test_lazy_imports_go_through_the_one_helper():
    """Deferred imports use ``sasp_atlas._lazy.lazy_import`` (no ``importlib.import_module`` or
    ``__import__`` elsewhere), and the helper itself imports only the standard library."""
    callers = set()
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name.endswith("import_module") or name == "__import__":
                    callers.add(str(path.relative_to(SRC)))
    assert callers <= IMPORT_MODULE_CALLERS, callers - IMPORT_MODULE_CALLERS
    tree = ast.parse((SRC / "_lazy.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


#: imported at module top nowhere in the package: loaded where used, through lazy_import
HEAVY_OPTIONAL = ("dask", "distributed", "liana", "papermill", "jsonschema", "cellxgene_census", "tiledbsoma")
#: the dask-only engine module (loaded through lazy_import when a dask array is scored) may import dask
HEAVY_HOMES = {"engines/_dask.py": {"dask", "distributed"}}


def test_heavy_optional_dependencies_are_not_imported_at_module_top():
    found = []
    for path in MODULES:
        rel = str(path.relative_to(SRC))
        for node in ast.parse(path.read_text()).body:
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                root = name.split(".")[0]
                if root in HEAVY_OPTIONAL and root not in HEAVY_HOMES.get(rel, ()):
                    found.append(f"{rel}:{node.lineno} {name}")
    assert found == []


def test_the_command_line_starts_without_the_package():
    """``sasp-atlas --help`` (and ``import sasp_atlas``) load neither scanpy nor numba nor dask."""
    code = (
        "import sys, contextlib, io\nimport sasp_atlas\nfrom sasp_atlas.cli import build_parser\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    build_parser().parse_args(['--help'])\n"
        "print(sorted(m for m in ('scanpy', 'numba', 'dask', 'distributed', 'anndata', 'jsonschema') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(SRC.parent)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def _definitions(name: str) -> list[str]:
    out = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
                out.append(str(path.relative_to(SRC)))
    return out


@pytest.mark.parametrize(
    "name, home",
    [
        ("harmonise_obs", "data/harmonise.py"),  # the one harmoniser (obs columns)
        ("harmonise_cell_types", "data/harmonise.py"),  # ... and cell types
        ("dedupe_genes", "data/validate.py"),  # the one duplicate-gene policy
        ("scan_matrix", "data/validate.py"),  # the one matrix check
        ("execute_page", "site/notebooks.py"),  # the one papermill runner
        ("match_gene_sets", "genes/matching.py"),  # the one gene matcher
        ("NotebookFailed", "site/notebooks.py"),
    ],
)
def test_one_definition_each(name, home):
    assert _definitions(name) == [home]


def test_papermill_is_called_in_one_place():
    calls = [str(p.relative_to(SRC)) for p in MODULES if "execute_notebook(" in p.read_text()]
    assert calls == ["site/notebooks.py"]
