"""The ``sasp-atlas`` command line: ``list``, ``fetch``, ``build``, ``page``, ``check-site``, ``score``."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import os
import re
import sys
import warnings
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from ._lazy import lazy_import

console = Console(stderr=True)
#: defaults shown in --help without importing the layers that define them (a test checks they agree:
#: ``engines.DEFAULT_METHOD`` and ``atlas.REPORT_CELLS``)
DEFAULT_METHOD = "expected"
REPORT_CELLS = 20_000
#: the value types ``score --value-type`` accepts: how the registry's loader reads each (``data.load.normalise``)
VALUE_TYPES = ("log_normalised", "raw_counts", "tpm", "tpm_like", "log2_tpm10_plus1")


def _api(module: str, *names: str):
    """The command implementations, loaded when a command runs (``--help`` needs neither scanpy nor
    numba): ``lazy_import`` of ``sasp_atlas.<module>``, one name or a tuple of names."""
    values = tuple(lazy_import(f"sasp_atlas.{module}", n) for n in names)
    return values[0] if len(values) == 1 else values


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    logging.getLogger("sasp_atlas").setLevel(logging.INFO)


LIST_COLUMNS = (
    "id",
    "cancer type",
    "review's type",
    "trust",
    "donors",
    "value type",
    "cells",
    "files",
    "MiB",
    "citation",
)


def _donors(d) -> str:
    """The registry's donor count: ``expected.n_donors``, else the count its title or tissue states
    ("2 patients"), else "not recorded" for an entry without a sample column, else "unknown"."""
    if n := (d.get("expected") or {}).get("n_donors"):
        return str(n)
    if n := ((d["loader"].get("options") or {}).get("pin") or {}).get("n_donors"):  # a census entry's pin
        return str(n)
    for text in (d.get("title") or "", d.get("tissue") or ""):
        if m := re.search(r"\b(\d[\d,]*) (?:patients|donors|tumours|individuals)\b", str(text)):
            return m.group(1)
    if (d.get("columns") or {}).get("sample", "") is None:
        return "not recorded"
    return "unknown"


def _list_rows(profile: str) -> list[dict]:
    list_datasets, trust_level, census_pin, is_census_entry = _api(
        "sources", "list_datasets", "trust_level", "census_pin", "is_census_entry"
    )
    review_cancer_types = _api("data.harmonise", "review_cancer_types")
    rows = []
    for d in list_datasets(profile):
        known = [f["size"] for f in d.files if "size" in f]  # full-profile files may wait for `registry pin`
        size = (
            "none: read from the CELLxGENE Census"
            if is_census_entry(d)
            else f"{sum(known) / 2**20:.1f}"
            if len(known) == len(d.files)
            else f">= {sum(known) / 2**20:.1f} ({len(d.files) - len(known)} file(s) unpinned)"
        )
        cells = (d.get("expected") or {}).get("n_cells") or (census_pin(d) or {}).get("n_cells")
        review = review_cancer_types(d.get("cancer_type_ontology_id"), include_any=False)
        rows.append(
            dict(
                zip(
                    LIST_COLUMNS,
                    (
                        d.id,
                        d["cancer_type"],
                        "; ".join(review) or "—",
                        trust_level(d),
                        _donors(d),
                        d["value_type"],
                        f"{cells:,}" if cells else "unknown",
                        str(len(d.files)),
                        size,
                        d["publication"]["citation"],
                    ),
                )
            )
        )
    return rows


def _plain_table(rows: list[dict], columns=LIST_COLUMNS) -> str:
    """Left-aligned columns separated by two spaces, never wrapped (``sasp-atlas list | less -S``)."""
    widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip()]
    lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns).rstrip() for r in rows]
    return "\n".join(lines)


def cmd_list(args) -> int:
    rows = _list_rows(args.profile)
    fmt = args.format or ("rich" if sys.stdout.isatty() else "table")
    if fmt == "json":
        print(json.dumps(rows, indent=1, ensure_ascii=False))
    elif fmt == "tsv":
        writer = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
        writer.writerow(LIST_COLUMNS)
        writer.writerows([r[c] for c in LIST_COLUMNS] for r in rows)
    elif fmt == "table":
        print(_plain_table(rows))
    else:  # a terminal: rich's table, ids folded rather than cut
        table = Table(title=f"datasets (profile {args.profile})")
        table.add_column("id", overflow="fold")
        for col in LIST_COLUMNS[1:]:
            table.add_column(col)
        for r in rows:
            table.add_row(*(r[c] if c != "citation" else r[c][:60] + "…" for c in LIST_COLUMNS))
        Console().print(table)
    if args.profile == "full" and (n := len(_api("sources", "list_unverified")())):
        console.print(
            f"{n} candidate sources without a published checksum are never fetched: see book/unverified_sources.md"
        )
    return 0


def cmd_fetch(args) -> int:
    fetch_dataset = _api("sources", "fetch_dataset")
    paths = fetch_dataset(args.dataset_id, mirror=args.mirror, progress=True)
    for name, path in paths.items():
        print(f"{name}\t{path}")
    return 0


def cmd_registry_pin(args) -> int:
    if args.all == bool(args.dataset_id):
        console.print("[red]error:[/red] give an entry id (`sasp-atlas registry pin ID`) or --all, not both")
        return 2
    if args.all:
        return _registry_pin_all(args)
    get_dataset, is_census_entry, pin_dataset, registry_path = _api(
        "sources", "get_dataset", "is_census_entry", "pin_dataset", "registry_path"
    )
    try:
        census_entry = is_census_entry(get_dataset(args.dataset_id, args.registry))
    except KeyError:
        census_entry = False  # a ground-truth entry or a resource: pin_dataset finds it (or names the known ids)
    if census_entry:  # no file: the subset read from the pinned Census release is pinned
        r = _api("data", "pin_census_dataset")(args.dataset_id, registry=args.registry, mirror=args.mirror)
        table = Table(title=f"registry pin {args.dataset_id}")
        for col in ("census subset", "status", "cells, donors", "sha256"):
            table.add_column(col)
        table.add_row(r["name"], r["status"], escape(r["how"]), r["sha256"])
        Console().print(table)
        console.print(f"[green]pinned[/green] {args.dataset_id} in {args.registry or registry_path()}")
        return 0
    pin_dataset, registry_path = _api("sources", "pin_dataset", "registry_path")
    records = pin_dataset(args.dataset_id, registry=args.registry, mirror=args.mirror, progress=True)
    table = Table(title=f"registry pin {args.dataset_id}")
    for col in ("file", "status", "sha256", "bytes"):
        table.add_column(col)
    for r in records:
        table.add_row(r["name"], r["status"], r["sha256"], f"{r['size']:,}")
    Console().print(table)
    console.print(f"[green]pinned[/green] {args.dataset_id} in {args.registry or registry_path()}")
    return 0


def _registry_pin_all(args) -> int:
    """``registry pin --all``: every unpinned full-profile file, then one table; exit 1 if any failed."""
    pin_all, registry_path = _api("sources", "pin_all", "registry_path")
    registry = args.registry or registry_path()

    def announce(i, n, entry_id, name):
        console.print(escape(f"[{i}/{n}] {entry_id}/{name}"), soft_wrap=True)

    records = pin_all(registry=registry, mirror=args.mirror, progress=True, on_file=announce)

    def announce_census(i, n, entry_id):
        console.print(escape(f"[census {i}/{n}] {entry_id}"), soft_wrap=True)

    # entries read through the CELLxGENE Census have no file: their subset is read and pinned (data layer)
    records += _api("data", "pin_census_all")(registry=registry, mirror=args.mirror, on_entry=announce_census)
    table = Table(title=f"registry pin --all ({registry})", show_lines=True)
    for col in ("entry", "kind", "file", "status", "verified by / why it failed", "sha256", "bytes", "to retry"):
        table.add_column(col, overflow="fold")
    for r in records:
        status = {"pinned": "[green]pinned[/green]", "failed": "[red]failed[/red]"}.get(r["status"], r["status"])
        table.add_row(
            r["entry"],
            r["kind"],
            r["name"],
            status,
            escape(r["how"]),
            r["sha256"] or "—",
            f"{r['size']:,}" if r["size"] else "—",
            r["retry"] or "",
        )
    Console().print(table)
    counts = {s: sum(r["status"] == s for r in records) for s in ("pinned", "already pinned", "failed")}
    summary = f"{counts['pinned']} file(s) pinned, {counts['already pinned']} already pinned, {counts['failed']} failed"
    if counts["failed"]:
        console.print(
            f"[red]{summary}[/red]: pinned files are written into {registry}; retry each failed entry with "
            "the command in its row once its host is reachable (or its files are in the mirror, --mirror DIR "
            "with <entry id>/<file name>; a Census copy: <mirror>/cellxgene-census/<version>/soma or "
            "SASP_ATLAS_CENSUS_URI). A refused file differs from its published hash or pin: it was not "
            "used and its registry line was not changed.",
            soft_wrap=True,
        )
        return 1
    console.print(f"[green]{summary}[/green] in {registry}: commit the registry.", soft_wrap=True)
    return 0


def cmd_build(args) -> int:
    IncompleteBuildError, build, print_unavailable_report = _api(
        "site.book", "IncompleteBuildError", "build", "print_unavailable_report"
    )
    left_out: list[dict] = []  # profile full: datasets the pre-flight could not reach or read
    root = Path(args.project)
    try:
        timings = build(
            profile=args.profile,
            mirror=args.mirror,
            signatures=args.signatures,
            method=args.method,
            random_state=args.random_state,
            workers=args.workers,
            book=not args.no_book,
            console=console,
            report=left_out,
            root=root,
            strict=args.strict,
        )
    except IncompleteBuildError as exc:  # --strict: the table of what to do, then a non-zero exit
        print_unavailable_report(exc.problems, args.mirror, console)
        console.print(
            f"[red]build --strict stopped[/red]: {len(exc.problems)} dataset(s) of profile {args.profile} "
            "are not available, so no page was built. Provide each as its row says (maintainers: "
            "`sasp-atlas registry pin --all` with internet, then commit data_registry.yaml), or build "
            "without --strict to publish the available datasets only.",
            soft_wrap=True,
        )
        return 1
    for k, v in timings.items():
        console.print(f"{k:>40}: {v:7.1f} s")
    console.print(
        f"[green]atlas built[/green]: tables in {root / 'results' / 'tables'}, site in {root / '_build' / 'html'}"
    )
    if left_out:  # the build ends with the per-dataset report
        print_unavailable_report(left_out, args.mirror, console, built=sum(k.startswith("page:") for k in timings))
    return 0


def cmd_page(args) -> int:
    render_page = _api("site.report", "render_page")
    written = render_page(
        args.dataset_id,
        args.out,
        signatures=args.signatures,
        method=args.method,
        random_state=args.random_state,
        mirror=args.mirror,
    )
    for name, path in written.items():
        print(f"{name}\t{path}")
    console.print(
        f"[green]page[/green] {args.dataset_id}: open {written['html']} in a browser, or the notebook in "
        "JupyterLab; to change the parameters, open notebooks/dataset.py there (jupytext) and edit its "
        "parameters cell",
        soft_wrap=True,
    )
    return 0


def cmd_table2(args) -> int:
    run_profile_table2 = _api("atlas.build", "run_profile_table2")
    checks = run_profile_table2(args.profile, args.out, mirror=args.mirror, random_state=args.random_state)
    counts = checks["verdict"].value_counts()
    for verdict, n in counts.items():
        console.print(f"{n:>4}  {verdict}")
    console.print(f"[green]Table 2[/green]: {len(checks)} row x dataset checks -> {args.out}")
    return 0


def cmd_validity(args) -> int:
    run_validity = _api("atlas.validity", "run_validity")
    tables = run_validity(args.out, profile=args.profile, mirror=args.mirror)
    pooled = tables["signature_validity_pooled"]
    rows = pooled[(pooled["method"] == "expected") & (pooled["control"] == "non-senescent")]
    for label, n in rows["label"].value_counts().items():
        console.print(f"{n:>4}  {label}")
    console.print(
        f"[green]validity[/green]: {len(tables['signature_validity'])} rows -> "
        f"{Path(args.out) / 'tables' / 'signature_validity.csv'} and signature_validity_pooled.csv"
    )
    return 0


def cmd_check_site(args) -> int:
    check_site = _api("site.sitecheck", "check_site")
    report = check_site(
        args.html_dir,
        screenshot=args.screenshot,
        screenshots_dir=args.screenshots,
        budget_ms=args.budget_ms,
        axe_js=args.axe,
    )
    console.print(
        escape(f"accessibility: axe-core {report['axe']['version']} default rules ({report['axe']['path']})"),
        soft_wrap=True,
    )
    widths = " and ".join(f"{w} px" for w in report["widths"])
    for page in report["pages"]:
        status = "ok" if page["ok"] else "FAIL"
        console.print(
            escape(
                f"{status:>4} {page['page']}: {page['drawn']}/{page['charts']} charts drawn, "
                f"{page['downloads'] - len(page['broken_downloads'])}/{page['downloads']} downloads and "
                f"{page['internal_links'] - len(page['broken_links'])}/{page['internal_links']} internal "
                f"links resolve ({page['seconds']} s in the browser)"
            ),
            soft_wrap=True,
        )
        if page["ok"]:
            continue
        problems = []
        if page["drawn"] < page["charts"] or page["errors"]:
            problems.append(f"charts drawn per width {page['drawn_by_width']}, chart errors {page['errors']}")
        if page.get("icon") is False:
            problems.append(
                'no <link rel="icon">: the browser asks the server root for /favicon.ico, a 404 in the '
                "console (give the book an icon: html.favicon)"
            )
        problems += [f"broken download: {u}" for u in page["broken_downloads"]]
        problems += [f"broken link: {u}" for u in page["broken_links"]]
        problems += [f"off-host request: {u}" for u in page["external"]]
        for width, ids in page["overflow"].items():
            problems += [
                f"overflows the content column at {width} px by {page['overflow_px'][width][i]} px: chart {i}"
                for i in ids
            ]
        problems += [
            f"page scrolls sideways at {w} px by {px} px"
            + (f" (widest: {page['hscroll_by'][w]})" if page["hscroll_by"].get(w) else "")
            for w, px in page["hscroll"].items()
            if px > 1
        ]
        problems += [f"console error {m}" for m in page["console_errors"]]
        problems += [
            f"axe {v['rule']} ({v['impact']}, {v['nodes']} nodes at {'/'.join(map(str, v['widths']))} px, "
            f"e.g. {v['target']}): {v['help']}"
            for v in page["axe"]
        ]
        for problem in problems:
            console.print(escape(f"       - {problem}"), soft_wrap=True)
    console.print(
        f"{report['n_pages']} pages at {widths}, {report['n_charts']} charts, {report['n_downloads']} downloads, "
        f"{report['n_internal_links']} internal and {report['n_external_links']} external links (not fetched) "
        f"in {report['seconds']} s: "
        + (
            "all drawn, fitting and resolving, no console errors or serious axe violations, nothing off 127.0.0.1"
            if report["ok"]
            else f"FAILURES ({sum(not p['ok'] for p in report['pages'])} pages; {report['n_overflowing']} overflowing "
            f"charts, {report['n_broken_links']} broken links, {report['n_console_errors']} console errors, "
            f"{report['n_axe']} axe violations)"
        ),
        soft_wrap=True,
    )
    for shot in report["screenshots"]:
        console.print(escape(f"screenshot: {shot}"), soft_wrap=True)
    return 0 if report["ok"] else 1


def cmd_publish(args) -> int:
    _api("site.book", "publish")(branch=args.branch, remote=args.remote, push=not args.no_push)
    console.print(
        f"[green]published[/green] _build/html to branch {args.branch}"
        + ("" if args.no_push else f" and pushed to {args.remote}")
    )
    return 0


def _user_options(args) -> dict:
    """The fields of :class:`sasp_atlas.atlas.UserOptions` (the one definition of the options that describe
    a user's file) as given on the ``score`` command line; each field is an option of the same name."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(_api("atlas.user", "UserOptions"))}


def cmd_score(args) -> int:
    InputError, InputWarning = _api("data", "InputError", "InputWarning")
    score_and_report = _api("site.report", "score_and_report")

    def connected(n_workers, address):
        console.print(f"dask: {n_workers} worker(s) at {address}")

    dask_options = {
        "scheduler": args.scheduler,
        "workers": args.workers,
        "memory_limit": args.memory_limit,
        "chunk_rows": args.chunk_rows,
        "progress": not args.no_progress,
        "report_cells": args.report_cells,
        "on_connect": connected,
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputWarning)
        try:
            written = score_and_report(
                args.input,
                args.out,
                signatures=args.signatures,
                method=args.method,
                report=not args.no_report,
                dask=args.dask,
                dask_options=dask_options,
                **_user_options(args),
            )
        except InputError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}")
            return 2
        finally:
            for w in caught:
                if issubclass(w.category, InputWarning):
                    console.print(f"[yellow]warning:[/yellow] {escape(str(w.message))}")
    for name, path in written.items():
        print(f"{name}\t{path}")
    return 0


class _Version(argparse.Action):
    """``--version``: the package version and, in a git checkout, the commit (computed only when asked)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"sasp-atlas {lazy_import('sasp_atlas.sources.paths', 'atlas_package_version')()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The ``sasp-atlas`` argument parser: every command and option (the workflow test reads it too)."""
    parser = argparse.ArgumentParser(prog="sasp-atlas", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every fetch and cache step")
    parser.add_argument("--version", action=_Version, help="print the package version (and git commit in a checkout)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registry datasets")
    p.add_argument("--profile", default="core", choices=["core", "full"])
    p.add_argument(
        "--format",
        choices=["table", "tsv", "json"],
        help="table: plain columns, never wrapped (the default when standard output is not a terminal); "
        "tsv; json. Default in a terminal: a boxed table",
    )
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("fetch", help="fetch (and verify) one dataset's files")
    p.add_argument("dataset_id")
    p.add_argument("--mirror", help="local mirror folder (<mirror>/<dataset id>/<file>); default $SASP_ATLAS_MIRROR")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("build", help="fetch -> load -> score -> papermill pages -> Jupyter Book")
    p.add_argument("--profile", default="core", choices=["core", "full"])
    p.add_argument("--mirror", help="local mirror folder; default $SASP_ATLAS_MIRROR")
    p.add_argument(
        "--signatures",
        nargs="+",
        help="signature ids (default: the atlas page set, sasp_atlas.atlas.DEFAULT_SIGNATURES)",
    )
    p.add_argument(
        "--method", default=DEFAULT_METHOD, help="scoring engine (default: the seed-free control-gene score)"
    )
    p.add_argument("--random-state", type=int, default=0, help="seed of the scanpy method and the display embedding")
    p.add_argument("--workers", type=int, default=2, help="parallel dataset pages")
    p.add_argument("--no-book", action="store_true", help="stop before jupyter-book build")
    p.add_argument(
        "--project",
        default=".",
        help="book project folder (default: the working directory; an empty "
        "folder gets the package's pages and configuration)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="every dataset of the profile must be available: otherwise print the table of what to do and "
        "exit 1 before any page is built (the publishing workflow uses it)",
    )
    p.set_defaults(func=cmd_build)

    p = sub.add_parser(
        "page",
        help="execute one registry dataset's page locally, as the build does: leaves "
        "OUT/<id>.ipynb, OUT/<id>.html and OUT/<id>_files/",
    )
    p.add_argument("dataset_id", help="a registry dataset id (sasp-atlas list --profile full)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--signatures", nargs="+", help="signature ids (default: the atlas page set)")
    p.add_argument("--method", default=DEFAULT_METHOD, help="scoring engine (default: %(default)s)")
    p.add_argument("--random-state", type=int, default=0, help="seed of the scanpy method and the display embedding")
    p.add_argument("--mirror", help="local mirror folder; default $SASP_ATLAS_MIRROR")
    p.set_defaults(func=cmd_page)

    p = sub.add_parser("table2", help="test the review's Table 2 on the registry datasets (no site build)")
    p.add_argument("--profile", default="core", choices=["core", "full"])
    p.add_argument("--mirror", help="local mirror folder; default $SASP_ATLAS_MIRROR")
    p.add_argument("--random-state", type=int, default=0, help="recorded only: Table 2 is seed-free")
    p.add_argument("--out", default="results/tables/table2_checks.csv", help="CSV to write")
    p.set_defaults(func=cmd_table2)

    p = sub.add_parser(
        "validity",
        help="does each signature detect senescence? score every catalogue signature "
        "and hUSI on the registry's ground truth (no site build)",
    )
    p.add_argument("--profile", default="core", choices=["core", "full"])
    p.add_argument("--mirror", help="local mirror folder; default $SASP_ATLAS_MIRROR")
    p.add_argument("--out", default="results", help="results folder (tables go to OUT/tables)")
    p.set_defaults(func=cmd_validity)

    p = sub.add_parser(
        "check-site",
        help="check the built site in headless Chromium at 1400 and 390 px: charts draw "
        "and fit, links resolve, no console errors or serious axe violations",
    )
    p.add_argument("html_dir", nargs="?", default="_build/html")
    p.add_argument("--screenshot", help="write a PNG screenshot of the atlas page (1400 px, full page) here")
    p.add_argument(
        "--screenshots",
        metavar="DIR",
        help="write full-page screenshots of the landing page at each width here (landing-<width>.png)",
    )
    p.add_argument("--budget-ms", type=int, default=15000, help="how long to wait for a page's charts to draw")
    p.add_argument(
        "--axe",
        metavar="PATH",
        help="axe-core script to inject (default $SASP_ATLAS_AXE, else node_modules/axe-core/axe.min.js in "
        "the current folder or the checkout: `npm ci` installs the version package-lock.json pins)",
    )
    p.set_defaults(func=cmd_check_site)

    p = sub.add_parser("publish", help="commit _build/html to a gh-pages branch (ghp-import -n) and push it")
    p.add_argument("--branch", default="gh-pages")
    p.add_argument("--remote", default="origin")
    p.add_argument("--no-push", action="store_true", help="only commit to the branch")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("score", help="score your own .h5ad: tables, scored .h5ad and an offline HTML report")
    p.add_argument(
        "input", help="an .h5ad file or anndata .zarr store, cells x genes (raw counts or log-normalised; not scaled)"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--cell-type-key", help="obs column of cell-type labels (default: 'cell_type' if present)")
    p.add_argument("--sample-key", help="obs column of samples/patients (default: one pseudo-sample)")
    p.add_argument("--malignant-key", help="obs column of booleans marking malignant cells")
    p.add_argument("--signatures", nargs="+", help="signature ids (default: the atlas page set)")
    p.add_argument("--method", default=DEFAULT_METHOD)
    p.add_argument("--species", default="human", choices=["human", "mouse"])
    p.add_argument("--cancer-type", default="unknown", help="your data's cancer type, for the tables and report")
    p.add_argument(
        "--value-type",
        choices=VALUE_TYPES,
        help="what the values are (default: detected; integers are raw counts, non-integers on a log scale are "
        "log-normalised). Linear values must be named: tpm (full-scale TPM, e.g. Smart-seq or "
        "Fluidigm C1), tpm_like (TPM/10 scale); log2_tpm10_plus1 is kept as it is. "
        "Normalised as the registry's loader does",
    )
    p.add_argument("--min-cells", type=int, default=10, help="flag cell types with fewer cells")
    p.add_argument("--layer", help="score adata.layers[LAYER] ('raw': adata.raw) instead of X")
    p.add_argument("--gene-symbols-key", help="var column of gene symbols when var_names are Ensembl ids")
    p.add_argument("--no-report", action="store_true", help="tables and scored .h5ad only")
    g = p.add_argument_group("beyond memory (dask; also used for a .zarr input or a file over 4 GiB)")
    g.add_argument("--dask", action="store_true", help="read the matrix lazily and compute on a dask cluster")
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="connect to this dask scheduler (tcp://host:8786) instead of starting a LocalCluster",
    )
    g.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (1 thread each)")
    g.add_argument("--memory-limit", default="auto", help="memory limit per LocalCluster worker (e.g. 4GiB)")
    g.add_argument("--chunk-rows", type=int, default=10_000, help="cells per chunk")
    g.add_argument(
        "--report-cells",
        type=int,
        default=REPORT_CELLS,
        metavar="N",
        help="the report is computed in memory on at most N cells, every sample x cell type kept "
        f"(report_cells.h5ad; the tables use all cells; default {REPORT_CELLS:,})",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("registry", help="maintain data_registry.yaml")
    rsub = p.add_subparsers(dest="registry_command", required=True)
    q = rsub.add_parser(
        "pin",
        help="download each unpinned file of an entry (or, with --all, of the full profile) "
        "once, verify its published hash, write its sha256, size, date and URL into the "
        "registry; for an entry read through the CELLxGENE Census, read its subset and record its cells, "
        "donors and sha256 (needs internet or --mirror)",
    )
    q.add_argument("dataset_id", nargs="?", help="a dataset, ground-truth or resource id")
    q.add_argument(
        "--all",
        action="store_true",
        help="every unpinned file of the full profile (datasets, ground truth, resources) and every census "
        "subset; ends with a table "
        "of what was pinned, already pinned and failed (exit 1 if anything failed)",
    )
    q.add_argument("--mirror", help="local mirror folder (<mirror>/<dataset id>/<file>); default $SASP_ATLAS_MIRROR")
    q.add_argument(
        "--registry", help="registry YAML to edit; default $SASP_ATLAS_REGISTRY or the project's data_registry.yaml"
    )
    q.set_defaults(func=cmd_registry_pin)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except BrokenPipeError:  # `sasp-atlas list | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (KeyError, ValueError, RuntimeError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
