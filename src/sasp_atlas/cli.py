"""The ``sasp-atlas`` command line: ``list``, ``fetch``, ``build``, ``check-site``."""

from __future__ import annotations

import argparse
import logging
import sys

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

console = Console(stderr=True)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])
    logging.getLogger("sasp_atlas").setLevel(logging.INFO)


def cmd_list(args) -> int:
    from .registry import list_datasets

    table = Table(title=f"datasets (profile {args.profile})")
    for col in ("id", "cancer type", "value type", "files", "MiB", "citation"):
        table.add_column(col)
    for d in list_datasets(args.profile):
        size = sum(f["size"] for f in d.files) / 2**20
        table.add_row(d.id, d["cancer_type"], d["value_type"], str(len(d.files)), f"{size:.1f}",
                      d["publication"]["citation"][:60] + "…")
    Console().print(table)
    return 0


def cmd_fetch(args) -> int:
    from .fetch import fetch_dataset

    paths = fetch_dataset(args.dataset_id, mirror=args.mirror, progress=True)
    for name, path in paths.items():
        print(f"{name}\t{path}")
    return 0


def cmd_build(args) -> int:
    from .book import build

    timings = build(profile=args.profile, mirror=args.mirror, signatures=args.signatures, method=args.method,
                    workers=args.workers, book=not args.no_book, console=console)
    for k, v in timings.items():
        console.print(f"{k:>40}: {v:7.1f} s")
    console.print("[green]atlas built[/green]: tables in results/tables, site in _build/html")
    return 0


def cmd_check_site(args) -> int:
    from .sitecheck import check_site

    report = check_site(args.html_dir, screenshot=args.screenshot)
    for page in report["pages"]:
        status = "ok" if page["ok"] else "FAIL"
        console.print(f"{status:>4} {page['page']}: {page['drawn']}/{page['charts']} charts drawn"
                      + (f"; off-host requests: {page['external']}" if page["external"] else ""))
    console.print(f"{report['n_pages']} pages, {report['n_charts']} charts, {'all drawn' if report['ok'] else 'FAILURES'}")
    return 0 if report["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sasp-atlas", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every fetch and cache step")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registry datasets")
    p.add_argument("--profile", default="core", choices=["core", "full"])
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("fetch", help="fetch (and verify) one dataset's files")
    p.add_argument("dataset_id")
    p.add_argument("--mirror", help="local mirror folder (<mirror>/<dataset id>/<file>); default $SASP_ATLAS_MIRROR")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("build", help="fetch -> load -> score -> papermill pages -> Jupyter Book")
    p.add_argument("--profile", default="core", choices=["core", "full"])
    p.add_argument("--mirror", help="local mirror folder; default $SASP_ATLAS_MIRROR")
    p.add_argument("--signatures", nargs="+", help="signature ids (default: senmayo fridman_senescence_up)")
    p.add_argument("--method", default="scanpy")
    p.add_argument("--workers", type=int, default=2, help="parallel dataset pages")
    p.add_argument("--no-book", action="store_true", help="stop before jupyter-book build")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("check-site", help="check in headless Chromium that every chart of the built site draws")
    p.add_argument("html_dir", nargs="?", default="_build/html")
    p.add_argument("--screenshot", help="write a PNG screenshot of the atlas page here")
    p.set_defaults(func=cmd_check_site)

    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except (KeyError, ValueError, RuntimeError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
