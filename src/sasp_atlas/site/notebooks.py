"""The one papermill runner: page templates (jupytext percent-format ``notebooks/*.py``) paired
into notebooks, executed, and tidied for publication.

Templates are text in the repository (reviewable diffs, linted like code); at run time
:func:`template_notebook` reads one with jupytext into a notebook, :func:`execute_page` writes it
next to its output, runs it with papermill and :func:`tidy` hides the parameter cells, sets the
page title and refuses a notebook that raised (a traceback is never published).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jupytext
import nbformat

from .._lazy import lazy_import
from ..sources import project_file

__all__ = ["NotebookFailed", "TEMPLATES", "template_path", "template_notebook", "execute_page", "tidy"]

#: the page templates under ``notebooks/`` (jupytext percent format)
TEMPLATES = ("dataset", "atlas", "table2", "catalogue", "validity")


#: the kernel's own log stops at errors: ipykernel's start-up warning "Kernel is running over TCP without
#: encryption" (a local kernel on 127.0.0.1 that papermill starts and stops) would otherwise reach the
#: terminal of every `sasp-atlas score` and `page`. Warnings raised by a cell (about the data) are cell
#: outputs, not the kernel's log, and are unaffected.
KERNEL_ARGUMENTS = ("--IPKernelApp.log_level=ERROR",)


class NotebookFailed(RuntimeError):
    """A page notebook raised; the build stops and nothing is published."""


def template_path(name: str) -> Path:
    """``notebooks/<name>.py`` of the installed package or the checkout."""
    if name not in TEMPLATES:
        raise ValueError(f"unknown page template {name!r}; available: {', '.join(TEMPLATES)}")
    return project_file(f"notebooks/{name}.py")


def template_notebook(template: str | Path) -> nbformat.NotebookNode:
    """A page template as a notebook: a name of :data:`TEMPLATES`, or the path of any jupytext-readable
    template (``.py`` percent format, ``.md``, ``.ipynb``). Cell tags such as ``parameters`` are kept."""
    path = Path(template) if isinstance(template, Path) or Path(str(template)).suffix else template_path(template)
    return jupytext.read(path)


def tidy(path: Path, title: str | None) -> None:
    """Hide papermill's parameter cells, retitle the page, drop stderr, refuse notebooks that errored."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            tags.append("remove-cell")
        if cell.cell_type == "code":
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    raise NotebookFailed(f"{path}: a cell raised {out.get('ename')}: {out.get('evalue')}")
            cell["outputs"] = [
                o
                for o in cell.get("outputs", [])
                if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
            ]
    if title:
        first = next(c for c in nb.cells if c.cell_type == "markdown")
        first.source = f"# {title}"
    nbformat.write(nb, path)


def execute_page(
    template: str | Path, out: str | Path, params: dict[str, Any], *, cwd: str | Path, title: str | None = None
) -> float:
    """Execute template ``template`` with ``params`` into ``out`` (an ``.ipynb``), tidied; seconds taken.

    The paired notebook is written to ``out`` first and executed in place; a failing cell raises
    :class:`NotebookFailed` with the first line of the error (the output notebook is left for
    inspection, but no page is built from it).
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(template_notebook(template), out)
    try:
        lazy_import("papermill").execute_notebook(
            str(out),
            str(out),
            parameters=params,
            kernel_name="python3",
            cwd=str(cwd),
            progress_bar=False,
            log_output=False,
            extra_arguments=list(KERNEL_ARGUMENTS),
        )
    except Exception as exc:  # papermill wraps every kernel error; keep the first line, not the traceback
        raise NotebookFailed(f"{out.name} failed: {exc}".splitlines()[0]) from None
    tidy(out, title)
    return time.perf_counter() - t0
