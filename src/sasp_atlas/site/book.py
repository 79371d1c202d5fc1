"""Book rendering: papermill pages from the registry, then Jupyter Book 1.x.

Steps of :func:`build`: the atlas layer fetches every dataset of the profile (verified; for
``--profile full`` its pre-flight, :func:`sasp_atlas.atlas.build.preflight`, leaves out and reports the
datasets that cannot be reached or read) and sets the environment the page kernels inherit; the
dataset page template runs once per dataset into ``book/datasets/<id>.ipynb`` (2 workers); the atlas
layer then combines the tables once (:func:`sasp_atlas.atlas.build.collect_atlas_tables`) and the
Table 2, atlas and catalogue pages only read them; tidy the outputs (hide parameter cells, give each page
its own title); stop on the first failed notebook (a traceback is never published); write the Vega
bundle, figures and tables under ``_static/``; run ``jupyter-book build . -W``.

The build writes only into ignored output folders of the project (``results/``, ``_build/``,
``book/datasets/``, ``book/signatures/``, ``book/generated/``, the executed ``book/*.ipynb`` and
``_static/{figures,tables,vega}``). ``_toc.yml`` is static: its ``glob`` entries pick up the
generated pages, so a build never rewrites a tracked file.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ..atlas import DEFAULT_SIGNATURES
from ..atlas.build import (
    IncompleteBuildError,
    collect_atlas_tables,
    how_to_provide,
    preflight,
    use_build_environment,
)
from ..atlas.validity import run_validity
from ..engines import DEFAULT_METHOD
from ..genes import list_signatures
from ..sources import PROJECT_SKELETON, Dataset, list_datasets, load_resources, mirror_dir, project_file
from .charts import write_vega_bundle
from .figures import atlas_version, write_index
from .home import write_home_page
from .notebooks import NotebookFailed, execute_page
from .pages import family_page_markdown, reproduce_page_markdown
from .references import write_bibliography

__all__ = [
    "build",
    "publish",
    "preflight",
    "print_unavailable_report",
    "prepare_project",
    "run_dataset_page",
    "write_family_pages",
    "write_reproduce_page",
    "signature_families",
    "NotebookFailed",
    "IncompleteBuildError",
]

log = logging.getLogger(__name__)


#: folders of generated pages, matched by the ``glob`` entries of ``_toc.yml`` (ignored by git)
GENERATED_PAGE_DIRS = ("book/datasets", "book/signatures", "book/generated")


def prepare_project(root: str | Path) -> Path:
    """The book project folder ``root``: used as it is when it has a ``_config.yml`` (a checkout),
    otherwise filled with the hand-written pages and configuration the package carries
    (:data:`sasp_atlas.sources.PROJECT_SKELETON`), so ``sasp-atlas build --project DIR`` works from an
    installed wheel. Existing files are never overwritten. Returns the absolute path."""
    root = Path(root).resolve()
    if (root / "_config.yml").is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    for rel in PROJECT_SKELETON:
        target = root / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(project_file(rel), target)
    log.info("new book project in %s (pages and configuration copied from the package)", root)
    return root


def signature_families() -> list[str]:
    """Catalogue families in a stable order (one page each)."""
    return sorted(list_signatures()["family"].unique())


def write_family_pages(root: Path) -> list[Path]:
    """One markdown page per signature family under ``book/signatures/`` (generated, not committed)."""
    out = root / "book" / "signatures"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for family in signature_families():
        path = out / f"{family}.md"
        path.write_text(family_page_markdown(family))
        paths.append(path)
    return paths


def write_reproduce_page(datasets: list[Dataset], root: Path) -> Path:
    """``book/generated/reproduce.md``: commands, package versions, registry hashes of this build."""
    v = atlas_version()
    out = root / "book" / "generated" / "reproduce.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(reproduce_page_markdown(datasets, load_resources(), commit=v["commit"], version=v["version"]))
    return out


def publish(
    html_dir: str | Path = "_build/html",
    *,
    branch: str = "gh-pages",
    remote: str = "origin",
    push: bool = True,
    message: str | None = None,
    repo: str | Path = ".",
) -> None:
    """Commit the built site to ``branch`` with ghp-import (``-n``: adds ``.nojekyll`` so GitHub
    Pages serves ``_static/``), and push it to ``remote`` unless ``push=False``. All links are
    relative, so the site works under a project sub-path (checked by ``sasp-atlas check-site``).
    """
    if not (Path(html_dir) / "index.html").exists():
        raise FileNotFoundError(f"{html_dir} has no index.html: run `sasp-atlas build` first")
    v = atlas_version()
    cmd = [
        str(Path(sys.executable).with_name("ghp-import")),
        "-n",
        "-b",
        branch,
        "-m",
        message or f"Publish sasp-atlas {v['version']} ({v['commit']})",
    ]
    if push:
        cmd += ["-p", "-r", remote]
    proc = subprocess.run(cmd + [str(html_dir)], capture_output=True, text=True, cwd=repo)
    if proc.returncode != 0:
        raise RuntimeError(f"ghp-import failed: {proc.stderr.strip() or proc.stdout.strip()}")


def _stamp_footer(html_dir: Path) -> None:
    """Write the atlas version and git commit into every page footer (placeholder in _config.yml)."""
    v = atlas_version()
    stamp = f"version {v['version']}, commit {v['commit']}"
    for page in html_dir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        if "SASP_ATLAS_VERSION" in text:
            page.write_text(text.replace("SASP_ATLAS_VERSION", stamp), encoding="utf-8")


def run_dataset_page(dataset_id: str, title: str, params: dict, root: str) -> tuple[str, float]:
    """Execute the dataset template for one dataset (runs in a worker process)."""
    out = Path(root) / "book" / "datasets" / f"{dataset_id}.ipynb"
    try:
        secs = execute_page("dataset", out, {"dataset_id": dataset_id, **params}, cwd=root, title=title)
    except NotebookFailed as exc:
        raise NotebookFailed(f"dataset page {dataset_id!r}: {exc}") from None
    return dataset_id, secs


def print_unavailable_report(problems: list[dict], mirror: str | None, console=None, built: int | None = None) -> None:
    """A rich table: one row per dataset left out of the build, with how to provide it."""
    console = console or Console(stderr=True)
    mdir = mirror_dir(mirror)
    table = Table(title=f"datasets left out of this build ({len(problems)})", show_lines=True)
    for col in ("dataset", "cancer type", "status", "problem", "how to provide it"):
        table.add_column(col, overflow="fold")
    for p in problems:
        d = p["dataset"]
        problem = p["detail"] or ("missing: " + ", ".join(f["name"] for f in p["missing"]))
        table.add_row(d.id, d["cancer_type_short"], p["status"], problem, how_to_provide(p, mdir))
    console.print(table)
    console.print(
        f"Mirror layout: <mirror>/<dataset id>/<file name> (mirror now: {mdir or 'not set'}). "
        "File names and URLs: `sasp-atlas list --profile full`, data_registry.yaml."
        + (f" Pages were built for the {built} available dataset(s)." if built is not None else "")
    )


def build(
    *,
    profile: str = "core",
    mirror: str | None = None,
    signatures: list[str] | None = None,
    method: str = DEFAULT_METHOD,
    random_state: int = 0,
    workers: int = 2,
    root: str | Path = ".",
    book: bool = True,
    console=None,
    report: list | None = None,
    strict: bool = False,
) -> dict[str, float]:
    """Build the atlas (see the module doc) in the project folder ``root`` (default: the working
    directory; an empty folder gets the package's pages first, :func:`prepare_project`).
    Returns timings in seconds per step.

    Datasets the pre-flight leaves out (profile full) are reported in a table right away and again
    at the end; pass a list as ``report`` to receive those records instead of the closing table.
    ``strict`` (``build --strict``, the publishing workflow): every dataset of the profile must be
    available; otherwise :class:`IncompleteBuildError` is raised after the pre-flight, before any page
    runs, carrying the pre-flight's records (the caller prints the table of what to do).
    """
    root = prepare_project(root)
    use_build_environment(root, mirror)  # the page kernels inherit the mirror and the commit
    datasets = list_datasets(profile)
    sigs = list(signatures or DEFAULT_SIGNATURES)
    results = str((root / "results").resolve())
    shutil.rmtree(Path(results) / "figures", ignore_errors=True)  # the figure index lists this build's figures only
    for generated in GENERATED_PAGE_DIRS:  # the toc's globs must see this build's pages only
        shutil.rmtree(root / generated, ignore_errors=True)
    params = {"signatures": sigs, "method": method, "random_state": random_state, "results": results}
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task("fetch", total=len(datasets))
        # pre-flight: profile core stops on a missing file; other profiles leave such datasets out
        datasets, problems = preflight(
            datasets, profile=profile, mirror=mirror, advance=lambda: progress.advance(task), resolve_dir=Path(results)
        )
        if problems and strict:
            raise IncompleteBuildError(problems, profile)
        if problems:
            print_unavailable_report(problems, mirror, console)
        timings["fetch"] = time.perf_counter() - t0

        # before the pages: every table row and tooltip that shows a signature carries its validity label
        tv = time.perf_counter()
        run_validity(results, profile=profile, mirror=mirror)
        timings["validity"] = time.perf_counter() - tv

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
        task = progress.add_task("atlas, Table 2, validity and catalogue pages", total=5)
        collect_atlas_tables([d.id for d in datasets], results, random_state=random_state)  # the pages only read
        progress.advance(task)
        write_family_pages(root)
        pages = [
            ("table2", {"results": results}),
            ("catalogue", {"results": results}),
            ("validity", {"results": results, "method": params["method"]}),
            ("atlas", {k: params[k] for k in ("signatures", "method", "results")}),
        ]
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:  # four kernels, started in parallel
            futures = [
                pool.submit(execute_page, name, root / "book" / f"{name}.ipynb", page_params, cwd=root)
                for name, page_params in pages
            ]
            for fut in as_completed(futures):
                fut.result()  # re-raises NotebookFailed: the build stops here
                progress.advance(task)
        timings["atlas_catalogue_pages"] = time.perf_counter() - t2

    write_bibliography(root)
    write_home_page(
        root, results=results, signatures=list(params.get("signatures") or DEFAULT_SIGNATURES), method=params["method"]
    )
    write_reproduce_page(datasets, root)
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
    if problems and report is not None:
        report.extend(problems)
    elif problems:  # the build ends with the per-dataset report
        print_unavailable_report(problems, mirror, console, built=len(datasets))
    return timings
