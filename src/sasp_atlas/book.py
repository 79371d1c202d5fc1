"""Book orchestration: papermill pages from the registry, then Jupyter Book 1.x.

Steps of :func:`build`: fetch every dataset of the profile (verified), execute
``notebooks/dataset.ipynb`` once per dataset into ``book/datasets/<id>.ipynb`` (2 workers),
then ``notebooks/atlas.ipynb`` into ``book/atlas.ipynb``; tidy the outputs (hide parameter
cells, give each page its own title); stop on the first failed notebook (a traceback is never
published); write ``_toc.yml`` from the registry and the Vega bundle; run
``jupyter-book build . -W``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import yaml

from .registry import PROJECT_ROOT, Dataset, list_datasets

__all__ = ["toc", "write_toc", "run_dataset_page", "build", "NotebookFailed"]

log = logging.getLogger(__name__)


class NotebookFailed(RuntimeError):
    """A page notebook raised; the build stops and nothing is published."""


def signature_families() -> list[str]:
    """Catalogue families in a stable order (one page each)."""
    from .signatures import list_signatures

    return sorted(list_signatures()["family"].unique())


def toc(datasets: list[Dataset]) -> dict:
    """The ``_toc.yml`` structure: intro, atlas, catalogue (+ a page per family), datasets, about."""
    from .pages import FAMILY_TITLES

    return {
        "format": "jb-book",
        "root": "book/intro",
        "parts": [
            {"caption": "Atlas", "chapters": [{"file": "book/atlas", "title": "Across cancers"},
                                              {"file": "book/table2", "title": "Table 2 tested"}]},
            {"caption": "Signatures", "chapters": [
                {"file": "book/catalogue", "title": "Catalogue",
                 "sections": [{"file": f"book/signatures/{f}", "title": FAMILY_TITLES.get(f, f)}
                              for f in signature_families()]}]},
            {"caption": "Datasets", "chapters": [
                {"file": f"book/datasets/{d.id}", "title": f"{d['cancer_type_short']}: {d.id}"} for d in datasets]},
            {"caption": "About", "chapters": [{"file": "book/methods", "title": "Methods"},
                                              {"file": "book/cite", "title": "How to cite"}]},
        ],
    }


def write_family_pages(root: Path = PROJECT_ROOT) -> list[Path]:
    """One markdown page per signature family under ``book/signatures/`` (generated, not committed)."""
    from .pages import family_page_markdown

    out = root / "book" / "signatures"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for family in signature_families():
        path = out / f"{family}.md"
        path.write_text(family_page_markdown(family))
        paths.append(path)
    return paths


def _run_page(template: str, out: Path, params: dict, root: Path, title: str | None = None) -> None:
    import papermill as pm

    try:
        pm.execute_notebook(str(root / "notebooks" / template), str(out), parameters=params, kernel_name="python3",
                            cwd=str(root), progress_bar=False)
    except Exception as exc:
        raise NotebookFailed(f"{out.name} failed: {exc}".splitlines()[0]) from None
    _tidy(out, title)


def _stamp_footer(html_dir: Path) -> None:
    """Write the atlas version and git commit into every page footer (placeholder in _config.yml)."""
    from .figures import atlas_version

    v = atlas_version()
    stamp = f"version {v['version']}, commit {v['commit']}"
    for page in html_dir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        if "SASP_ATLAS_VERSION" in text:
            page.write_text(text.replace("SASP_ATLAS_VERSION", stamp), encoding="utf-8")


def write_toc(datasets: list[Dataset], root: Path = PROJECT_ROOT) -> Path:
    path = root / "_toc.yml"
    text = "# Generated from data_registry.yaml by `sasp-atlas build`; do not edit by hand.\n"
    text += yaml.safe_dump(toc(datasets), sort_keys=False)
    path.write_text(text)
    return path


def _tidy(path: Path, title: str | None) -> None:
    """Hide papermill's parameter cells, retitle the page, refuse notebooks that errored."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            tags.append("remove-cell")
        if cell.cell_type == "code":
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    raise NotebookFailed(f"{path}: a cell raised {out.get('ename')}: {out.get('evalue')}")
            cell["outputs"] = [o for o in cell.get("outputs", []) if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
    if title:
        first = next(c for c in nb.cells if c.cell_type == "markdown")
        first.source = f"# {title}"
    nbformat.write(nb, path)


def run_dataset_page(dataset_id: str, title: str, params: dict, root: str) -> tuple[str, float]:
    """Execute the dataset template for one dataset (runs in a worker process)."""
    import papermill as pm

    t0 = time.perf_counter()
    out = Path(root) / "book" / "datasets" / f"{dataset_id}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(str(Path(root) / "notebooks" / "dataset.ipynb"), str(out),
                            parameters={"dataset_id": dataset_id, **params}, kernel_name="python3",
                            cwd=root, progress_bar=False, log_output=False)
    except Exception as exc:
        raise NotebookFailed(f"dataset page {dataset_id!r} failed: {exc}".splitlines()[0]) from None
    _tidy(out, title)
    return dataset_id, time.perf_counter() - t0


def build(*, profile: str = "core", mirror: str | None = None, signatures: list[str] | None = None,
          method: str = "scanpy", random_state: int = 0, workers: int = 2, root: Path = PROJECT_ROOT,
          book: bool = True, console=None) -> dict[str, float]:
    """Build the atlas (see the module doc). Returns timings in seconds per step."""
    from rich.progress import Progress

    from .charts import write_vega_bundle
    from .fetch import fetch_dataset
    from .figures import atlas_version, write_index
    from .pipeline import DEFAULT_SIGNATURES, catalogue_coverage, run_table2

    if mirror:
        os.environ["SASP_ATLAS_MIRROR"] = str(Path(mirror).resolve())  # the page kernels inherit it
    os.environ["SASP_ATLAS_COMMIT"] = atlas_version()["commit"]  # one commit for every caption of this build
    datasets = list_datasets(profile)
    sigs = list(signatures or DEFAULT_SIGNATURES)
    results = str((root / "results").resolve())
    shutil.rmtree(Path(results) / "figures", ignore_errors=True)  # the figure index lists this build's figures only
    params = {"signatures": sigs, "method": method, "random_state": random_state, "results": results}
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task("fetch", total=len(datasets))
        for d in datasets:
            fetch_dataset(d, mirror=mirror)
            progress.advance(task)
        timings["fetch"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        task = progress.add_task("dataset pages", total=len(datasets))
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(run_dataset_page, d.id, d["title"], params, str(root)) for d in datasets]
            for fut in as_completed(futures):
                did, secs = fut.result()  # re-raises NotebookFailed: the build stops here
                timings[f"page:{did}"] = secs
                progress.advance(task)
        timings["dataset_pages"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        task = progress.add_task("atlas, Table 2 and catalogue pages", total=4)
        catalogue_coverage([d.id for d in datasets], out_dir=results)
        run_table2([d.id for d in datasets], out_dir=results, random_state=random_state)
        progress.advance(task)
        _run_page("table2.ipynb", root / "book" / "table2.ipynb", {"results": results}, root)
        progress.advance(task)
        _run_page("atlas.ipynb", root / "book" / "atlas.ipynb",
                  {k: params[k] for k in ("signatures", "method", "results")}, root)
        progress.advance(task)
        write_family_pages(root)
        _run_page("catalogue.ipynb", root / "book" / "catalogue.ipynb", {"results": results}, root)
        progress.advance(task)
        timings["atlas_catalogue_pages"] = time.perf_counter() - t2

    write_toc(datasets, root)
    write_vega_bundle(root / "_static")
    figures_dir = root / "_static" / "figures"
    shutil.rmtree(figures_dir, ignore_errors=True)
    shutil.copytree(Path(results) / "figures", figures_dir, ignore=shutil.ignore_patterns("*.json"))
    tables_dir = root / "_static" / "tables"
    shutil.rmtree(tables_dir, ignore_errors=True)
    tables_dir.mkdir(parents=True)
    for table in Path(results, "tables").glob("*.csv"):
        shutil.copy2(table, tables_dir / table.name)
    write_index(results)
    if book:
        t3 = time.perf_counter()
        shutil.rmtree(root / "_build", ignore_errors=True)  # no stale pages from earlier builds
        cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(root), "-W", "--keep-going"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError("jupyter-book build failed:\n" + proc.stdout[-4000:] + proc.stderr[-4000:])
        _stamp_footer(root / "_build" / "html")
        timings["jupyter_book"] = time.perf_counter() - t3
    timings["total"] = time.perf_counter() - t0
    return timings
