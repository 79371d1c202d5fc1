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


def toc(datasets: list[Dataset]) -> dict:
    """The ``_toc.yml`` structure: intro, atlas, one page per dataset, methods."""
    return {
        "format": "jb-book",
        "root": "book/intro",
        "parts": [
            {"caption": "Atlas", "chapters": [{"file": "book/atlas", "title": "Across cancers"}]},
            {"caption": "Datasets", "chapters": [
                {"file": f"book/datasets/{d.id}", "title": f"{d['cancer_type_short']}: {d.id}"} for d in datasets]},
            {"caption": "About", "chapters": [{"file": "book/methods", "title": "Methods"}]},
        ],
    }


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
    import papermill as pm
    from rich.progress import Progress

    from .charts import write_vega_bundle
    from .fetch import fetch_dataset
    from .pipeline import DEFAULT_SIGNATURES

    if mirror:
        os.environ["SASP_ATLAS_MIRROR"] = str(Path(mirror).resolve())  # the page kernels inherit it
    datasets = list_datasets(profile)
    sigs = list(signatures or DEFAULT_SIGNATURES)
    results = str((root / "results").resolve())
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
        task = progress.add_task("atlas page", total=1)
        atlas_out = root / "book" / "atlas.ipynb"
        try:
            pm.execute_notebook(str(root / "notebooks" / "atlas.ipynb"), str(atlas_out),
                                parameters={k: params[k] for k in ("signatures", "method", "results")},
                                kernel_name="python3", cwd=str(root), progress_bar=False)
        except Exception as exc:
            raise NotebookFailed(f"atlas page failed: {exc}".splitlines()[0]) from None
        _tidy(atlas_out, None)
        progress.advance(task)
        timings["atlas_page"] = time.perf_counter() - t2

    write_toc(datasets, root)
    write_vega_bundle(root / "_static")
    if book:
        t3 = time.perf_counter()
        shutil.rmtree(root / "_build", ignore_errors=True)  # no stale pages from earlier builds
        cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(root), "-W", "--keep-going"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError("jupyter-book build failed:\n" + proc.stdout[-4000:] + proc.stderr[-4000:])
        timings["jupyter_book"] = time.perf_counter() - t3
    timings["total"] = time.perf_counter() - t0
    return timings
