"""The standalone report of ``sasp-atlas score``: the dataset page template executed on a user's
file and rendered as one offline HTML file (Vega bundle inlined)."""

from __future__ import annotations

import base64
import html
import shutil
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from markdown_it import MarkdownIt

from ..atlas import (
    DEFAULT_SIGNATURES,
    REPORT_CELLS,
    UserOptions,
    is_lazy_input,
    score_user_file,
    score_user_file_dask,
)
from ..atlas.build import use_mirror
from ..data import user_dataset_id
from ..engines import DEFAULT_METHOD
from ..sources import get_dataset, project_file
from .charts import write_vega_bundle
from .notebooks import NotebookFailed, execute_page

__all__ = ["score_and_report", "render_report", "render_page", "notebook_html", "clear_report", "REPORT_FILES"]


def score_and_report(
    path: str | Path,
    out_dir: str | Path,
    *,
    signatures: list[str] | None = None,
    method: str = DEFAULT_METHOD,
    random_state: int = 0,
    report: bool = True,
    dask: bool = False,
    dask_options: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Path]:
    """``sasp-atlas score``: score once (:func:`sasp_atlas.atlas.score_user_file`: ``celltype_scores.csv``,
    ``coverage.csv``, ``scored.h5ad`` and, with ``report``, every page table under ``report_files/``),
    then render the report from those files (:func:`render_report`: ``report.html``, figures in
    ``report_files/``). ``options``: the fields of :class:`sasp_atlas.atlas.UserOptions`. A file read
    lazily (``dask``, a ``.zarr`` store or a file over :data:`sasp_atlas.atlas.user.LAZY_BYTES`) is
    scored on a dask cluster (:func:`sasp_atlas.atlas.score_user_file_dask` with ``dask_options``:
    ``scheduler``, ``workers``, ``memory_limit``, ``chunk_rows``, ``progress``, ``report_cells``,
    ``on_connect``) and its report is computed on the ``report_cells`` subsample. Returns ``{name: path}``
    of the files written."""
    out = Path(out_dir)
    sigs = list(signatures or DEFAULT_SIGNATURES)
    opts = UserOptions(**options)
    tables_dir = out / REPORT_FILES if report else None
    clear_report(out)  # never leave an older report next to new tables
    common = dict(signatures=sigs, method=method, random_state=random_state, tables_dir=tables_dir, **opts.as_kwargs())
    lazy = is_lazy_input(path, dask=dask)
    if lazy:
        dask_options = {"report_cells": REPORT_CELLS, **(dask_options or {})}
        if not report:
            dask_options["report_cells"] = 0
        written = score_user_file_dask(path, out, **dask_options, **common)
    else:
        written = score_user_file(path, out, **common)
    if report:
        written["report"] = render_report(
            Path(path),
            out,
            scored=written["report_cells"] if lazy else written["scored"],
            signatures=sigs,
            method=method,
            random_state=random_state,
            title=f"SASP signature scores: {Path(path).name}",
            all_cells_table=out / "celltype_scores.csv" if lazy else None,
        )
    return written


#: the report's results folder next to ``report.html``: its figures and the tables it renders
REPORT_FILES = "report_files"


def clear_report(out: Path) -> None:
    """Remove ``out/report.html`` and ``out/report_files/`` of an earlier run."""
    (out / "report.html").unlink(missing_ok=True)
    shutil.rmtree(out / REPORT_FILES, ignore_errors=True)


def render_report(
    input_h5ad: Path,
    out: Path,
    *,
    scored: Path,
    signatures: list[str],
    method: str,
    random_state: int,
    title: str,
    template: str | Path = "dataset",
    all_cells_table: Path | None = None,
) -> Path:
    """Render ``out/report.html`` from a scored file: the dataset page template reads ``scored``
    (``scored.h5ad``, or the ``report_cells.h5ad`` of ``sasp-atlas score --dask``) and the tables
    :func:`sasp_atlas.atlas.score_user_file` wrote under ``out/report_files/tables/``, and computes nothing.

    The one papermill runner (:func:`sasp_atlas.site.notebooks.execute_page`) runs the dataset page
    template (parameters ``input_h5ad``, ``scored_h5ad``, ``signatures``, ``method``, ``random_state``,
    ``results=out/report_files``) in a temporary folder; a notebook with an error output raises
    :class:`~sasp_atlas.site.notebooks.NotebookFailed` and no report (and no traceback) is written.
    ``all_cells_table``: the ``celltype_scores.csv`` of all cells of a lazily scored file, which the
    report's banner compares with its subsample.
    """
    report = out / "report.html"
    results = out / REPORT_FILES
    report.unlink(missing_ok=True)  # never leave an older report next to new tables
    params = {
        "dataset_id": user_dataset_id(input_h5ad),
        "input_h5ad": str(Path(input_h5ad).resolve()),
        "scored_h5ad": str(Path(scored).resolve()),
        "signatures": signatures,
        "method": method,
        "random_state": random_state,
        "results": str(results.resolve()),
    }
    if all_cells_table is not None:
        params["all_cells_table"] = str(Path(all_cells_table).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(tmp) / "report.ipynb"
        try:
            execute_page(template, executed, params, cwd=tmp, title=title)
        except NotebookFailed as exc:
            raise NotebookFailed(f"the report notebook failed: {exc}") from None
        page = notebook_html(executed, title)
    report.write_text(page.replace('href="../../_static/figures/', f'href="{REPORT_FILES}/figures/'), encoding="utf-8")
    return report


def render_page(
    dataset_id: str,
    out_dir: str | Path,
    *,
    signatures: list[str] | None = None,
    method: str = DEFAULT_METHOD,
    random_state: int = 0,
    mirror: str | Path | None = None,
) -> dict[str, Path]:
    """``sasp-atlas page``: one registry dataset's page, executed locally as the build executes it.

    The dataset page template (``notebooks/dataset.py``) runs through the one papermill runner
    (:func:`sasp_atlas.site.notebooks.execute_page`) with the build's parameters (``dataset_id``,
    ``signatures``, ``method``, ``random_state``, ``results``); it leaves ``out_dir/<id>.ipynb`` (the
    executed notebook), ``out_dir/<id>.html`` (standalone, charts drawn offline, as
    :func:`render_report`) and the page's tables and figures in ``out_dir/<id>_files/``. The files
    come from ``mirror`` (which the page's kernel inherits: :func:`sasp_atlas.atlas.build.use_mirror`), else
    ``$SASP_ATLAS_MIRROR`` or the cache. Returns ``{name: path}``.
    """
    use_mirror(mirror)
    ds = get_dataset(dataset_id)  # an unknown id raises here, naming the registry's ids
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    notebook, page, results = out / f"{ds.id}.ipynb", out / f"{ds.id}.html", out / f"{ds.id}_files"
    page.unlink(missing_ok=True)
    params = {
        "dataset_id": ds.id,
        "signatures": list(signatures or DEFAULT_SIGNATURES),
        "method": method,
        "random_state": random_state,
        "results": str(results.resolve()),
    }
    try:
        execute_page("dataset", notebook, params, cwd=out.resolve(), title=ds["title"])
    except NotebookFailed as exc:
        raise NotebookFailed(f"dataset page {ds.id!r}: {exc} (the executed notebook is {notebook})") from None
    html_text = notebook_html(notebook, ds["title"])
    page.write_text(
        html_text.replace('href="../../_static/figures/', f'href="{results.name}/figures/'), encoding="utf-8"
    )
    return {"notebook": notebook, "html": page, "files": results}


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.5; }
table { border-collapse: collapse; font-size: .85em; margin: 1em 0; display: block; max-width: 100%; overflow-x: auto; }
main { overflow-wrap: anywhere; }
td, th { border: 1px solid #ccc; padding: .2em .5em; vertical-align: top; }
pre { background: #f6f6f6; padding: .5em; overflow-x: auto; }
.sasp-figure { font-size: .85em; color: #444; margin-bottom: 2em; }
"""


def _vega_bundle() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        js = write_vega_bundle(tmp).read_text(encoding="utf-8")
    return js.replace("</script", "<\\/script")


def _icon_link() -> str:
    """The site's icon inlined as a data URI: a standalone report links no file, and a page without an
    icon makes the browser request ``/favicon.ico`` (a console 404)."""
    svg = (Path(__file__).parent / "static" / "favicon.svg").read_bytes()
    return f'<link rel="icon" type="image/svg+xml" href="data:image/svg+xml;base64,{base64.b64encode(svg).decode()}">'


def notebook_html(notebook: str | Path, title: str) -> str:
    """A standalone HTML page of an executed notebook, honouring the ``remove-cell``/``remove-input``/
    ``remove-output`` tags; markdown rendered with markdown-it-py, HTML outputs as they are, the
    Vega bundle inlined once in the head (charts draw offline). An ``error`` output raises
    :class:`~sasp_atlas.site.notebooks.NotebookFailed`."""
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    nb = nbformat.read(str(notebook), as_version=4)
    body = []
    for cell in nb.cells:
        tags = set(cell.metadata.get("tags", []))
        if "remove-cell" in tags:
            continue
        if cell.cell_type == "markdown":
            body.append(md.render(cell.source))
            continue
        if cell.cell_type != "code":
            continue
        if "remove-input" not in tags:
            body.append(f"<pre><code>{html.escape(cell.source)}</code></pre>")
        for output in [] if "remove-output" in tags else cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "error":
                raise NotebookFailed(f"{notebook}: a cell raised {output.get('ename')}: {output.get('evalue')}")
            if kind == "stream":
                if output.get("name") == "stdout":
                    body.append(f"<pre>{html.escape(output.get('text', ''))}</pre>")
                continue
            data = output.get("data", {})

            def text(v):
                return "".join(v) if isinstance(v, list) else v

            if "text/html" in data:
                body.append(text(data["text/html"]))
            elif "text/markdown" in data:
                body.append(md.render(text(data["text/markdown"])))
            elif "image/svg+xml" in data:
                body.append(text(data["image/svg+xml"]))
            elif "image/png" in data:
                body.append(f'<img alt="" src="data:image/png;base64,{text(data["image/png"]).strip()}">')
            elif "text/plain" in data:
                body.append(f"<pre>{html.escape(text(data['text/plain']))}</pre>")
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{html.escape(title)}</title>\n'
        f"{_icon_link()}\n"
        f"<style>{_CSS}{project_file('_static/sasp.css').read_text(encoding='utf-8')}</style>\n<script>{_vega_bundle()}</script>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )
