"""The atlas build's computations, before any page renders (``sasp-atlas build``; the site layer only
renders, :func:`sasp_atlas.site.book.build`): the environment the page kernels inherit
(:func:`use_build_environment`), every dataset fetched and checked (:func:`preflight`), and the
combined tables (:func:`collect_atlas_tables`: coverage, Table 2, the per-dataset tables concatenated
and the meta-analysis), which the atlas, Table 2 and catalogue pages only read.
"""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path

from ..data import load_dataset
from ..sources import (
    Dataset,
    DataUnavailableError,
    HashMismatchError,
    NotPinnedError,
    atlas_version,
    census_pin,
    fetch_file,
    file_hashes,
    get_dataset,
    is_census_entry,
    list_datasets,
    load_registry,
    mirror_dir,
    pin_registry_entries,
    registry_path,
)
from .pipeline import catalogue_coverage, collect_tables, load_datasets, run_table2

__all__ = [
    "IncompleteBuildError",
    "preflight",
    "how_to_provide",
    "unavailable_report_text",
    "use_mirror",
    "use_build_environment",
    "collect_atlas_tables",
    "run_profile_table2",
]

log = logging.getLogger(__name__)


def use_mirror(mirror: str | Path | None) -> None:
    """Point ``$SASP_ATLAS_MIRROR`` at ``mirror`` (resolved), so page kernels started from this process
    read the same files; ``None`` leaves the environment as it is."""
    if mirror:
        os.environ["SASP_ATLAS_MIRROR"] = str(Path(mirror).resolve())


def use_build_environment(root: str | Path, mirror: str | Path | None = None) -> None:
    """The environment every page kernel of one build inherits: the mirror (:func:`use_mirror`) and one
    git commit (``$SASP_ATLAS_COMMIT``) for every caption."""
    use_mirror(mirror)
    os.environ["SASP_ATLAS_COMMIT"] = atlas_version(root)["commit"]


class IncompleteBuildError(DataUnavailableError):
    """``build(strict=True)``: the pre-flight left datasets out; ``problems`` holds its records (one per dataset,
    as :func:`print_unavailable_report` takes them). Raised before any page runs."""

    def __init__(self, problems: list[dict], profile: str):
        self.problems = problems
        super().__init__(
            f"{len(problems)} dataset(s) of profile {profile!r} are not available (strict build): "
            + ", ".join(f"{p['dataset'].id} ({p['status']})" for p in problems)
        )


def preflight(
    datasets: list[Dataset], *, profile: str, mirror: str | None = None, advance=None, resolve_dir: Path | None = None
) -> tuple[list[Dataset], list[dict]]:
    """Fetch (and, for ``profile: full`` entries, read once) every dataset before any page runs.

    Profile ``core``: the first missing or corrupt file raises, as before. Other profiles: a
    dataset is left out and reported, and the build goes on with the others, when its files cannot
    be reached (:class:`~sasp_atlas.fetch.DataUnavailableError`) or are refused
    (:class:`~sasp_atlas.fetch.HashMismatchError`), or, for ``profile: full`` entries (whose loader
    options are partly documented guesses), when it cannot be converted or has author cell types
    missing from ``crosswalk.yaml``.
    With ``resolve_dir`` (the build's results folder), files verified by their git blob id only get
    their sha256 and size in a build-local registry copy first (see :func:`_resolve_unpinned`), so the
    read here fills the same converted-h5ad cache entry the page kernels use.
    Returns ``(available datasets, problems)``; ``problems`` has one record per left-out dataset.
    """
    strict = profile == "core"
    fetched, available, problems, paths = [], [], [], {}
    for d in datasets:
        missing, refused, unpinned = [], [], []
        if is_census_entry(d) and census_pin(d) is None:  # no file: its census subset is pinned, or never read
            problems.append(
                {
                    "dataset": d,
                    "status": "not pinned",
                    "missing": [],
                    "detail": "no census pin yet (trust level: pinned census subset)",
                }
            )
            if advance:
                advance()
            continue
        for f in d.files:
            try:
                paths[(d.id, f["name"])] = fetch_file(d, f, mirror=mirror)
            except DataUnavailableError:
                if strict:
                    raise
                missing.append(f)
            except HashMismatchError as exc:
                if strict:
                    raise
                refused.append(f"{f['name']}: {exc}")
            except NotPinnedError:
                if strict:
                    raise
                unpinned.append(f)
        if unpinned:
            problems.append(
                {
                    "dataset": d,
                    "status": "not pinned",
                    "missing": unpinned,
                    "detail": "no hash yet (trust level: pinned on first download)",
                }
            )
        elif missing or refused:
            problems.append(
                {
                    "dataset": d,
                    "status": "refused (hash mismatch)" if refused else "not reachable",
                    "missing": missing,
                    "detail": "; ".join(refused),
                }
            )
        else:
            fetched.append(d)
        if advance:
            advance()
    if not strict and resolve_dir is not None:
        fetched = _resolve_unpinned(fetched, paths, Path(resolve_dir))
    for d in fetched:
        if d["profile"] == "full" and not strict and (err := _read_check(d, mirror)):
            status = "not reachable" if is_census_entry(d) and err.startswith("DataUnavailableError") else "unreadable"
            problems.append({"dataset": d, "status": status, "missing": [], "detail": err})
        else:
            available.append(d)
    if problems and not available:
        raise DataUnavailableError(
            "no dataset of profile "
            + repr(profile)
            + " is available:\n"
            + unavailable_report_text(problems, mirror_dir(mirror))
        )
    return available, problems


def _read_check(d: Dataset, mirror: str | None) -> str | None:
    """Convert a full-profile dataset once and check its labels against the crosswalk; the error text or None."""
    try:
        adata = load_dataset(d.id, mirror=mirror)  # harmonises: unknown author labels raise here
    except Exception as exc:  # loader options of full entries are partly guesses: report, do not stop
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    del adata
    gc.collect()
    return None


def how_to_provide(problem: dict, mdir: Path | None) -> str:
    d = problem["dataset"]
    if is_census_entry(d) and problem["status"] == "not pinned":
        return (
            f"run `sasp-atlas registry pin {d.id}` once (reads its subset from the CELLxGENE Census release "
            f"{d['loader']['options']['census_version']} and records its cells, donors and sha256 in data_registry.yaml; "
            "needs internet or a Census copy in the mirror), then build again"
        )
    if is_census_entry(d) and problem["status"] == "not reachable":
        version = d["loader"]["options"]["census_version"]
        return (
            f"build with internet access, or put a copy of the Census release {version} at "
            f"{mdir or '<mirror>'}/cellxgene-census/{version}/soma (or set SASP_ATLAS_CENSUS_URI to one); the read is "
            "checked against the registry pin either way"
        )
    if problem["status"] == "not pinned":
        return (
            f"run `sasp-atlas registry pin {d.id}` once (downloads each file, records its sha256 and size in "
            "data_registry.yaml; needs internet or the files in the mirror), then build again"
        )
    if problem["status"] == "unreadable":
        return (
            "the loader options or labels are a documented guess (see the entry notes in data_registry.yaml): "
            "fix loader/columns there, or add the author labels to crosswalk.yaml"
        )
    if problem["missing"]:
        how = f"copy the missing file(s) into {mdir or '<mirror>'}/{d.id}/"
        if mdir is None:
            how += " and pass --mirror <mirror> (or set SASP_ATLAS_MIRROR)"
        return how + ", or build with internet access (verified by sha256 / git blob id either way)"
    return "replace the refused file(s) with the bytes from the registry URL"


def unavailable_report_text(problems: list[dict], mdir: Path | None) -> str:
    """Plain-text version of the pre-flight report (for error messages and logs)."""
    return "\n".join(
        f"- {p['dataset'].id} ({p['dataset']['cancer_type_short']}): {p['status']}"
        + (f" [{p['detail'] or 'missing: ' + ', '.join(f['name'] for f in p['missing'])}]")
        + f"; to provide it: {how_to_provide(p, mdir)}"
        for p in problems
    )


def _resolve_unpinned(datasets: list[Dataset], paths: dict[tuple[str, str], Path], results: Path) -> list[Dataset]:
    """Full-profile files verified by git blob id only have no sha256/size in the registry, which the
    pages show. Write a build-local registry copy (``results/registry.resolved.yaml``) with them
    filled in from the verified local files and point ``SASP_ATLAS_REGISTRY`` (inherited by the page
    kernels) at it. ``data_registry.yaml`` itself is never changed (``sasp-atlas registry pin`` does that).
    """
    pins = {}
    for d in datasets:
        for f in d.files:
            if not (f.get("sha256") and f.get("size")):
                path = paths[(d.id, f["name"])]  # verified by fetch_file in the pre-flight
                pins.setdefault(d.id, {})[f["name"]] = {"sha256": file_hashes(path)[0], "size": path.stat().st_size}
    if not pins:
        return datasets
    text = pin_registry_entries(registry_path().read_text(), pins)
    out = Path(results) / "registry.resolved.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    load_registry(out)  # validates
    os.environ["SASP_ATLAS_REGISTRY"] = str(out)
    log.info("blob-verified files of %s: sha256/size resolved in %s", sorted(pins), out)
    return [get_dataset(d.id) for d in datasets]


def collect_atlas_tables(dataset_ids: list[str], results: str | Path, *, random_state: int = 0) -> None:
    """After every dataset's tables, before the atlas, Table 2 and catalogue pages: load each dataset once
    for the catalogue coverage (:func:`sasp_atlas.atlas.catalogue_coverage`) and Table 2
    (:func:`sasp_atlas.atlas.run_table2`), then combine the tables and run the meta-analysis once
    (:func:`sasp_atlas.atlas.collect_tables`). The pages read what this writes."""
    adatas = load_datasets(dataset_ids)
    catalogue_coverage(dataset_ids, out_dir=results, adatas=adatas)
    run_table2(dataset_ids, out_dir=results, random_state=random_state, adatas=adatas)
    del adatas
    gc.collect()
    collect_tables(results, dataset_ids)


def run_profile_table2(profile: str, out_csv: str | Path, *, mirror: str | Path | None = None, random_state: int = 0):
    """``sasp-atlas table2``: :func:`sasp_atlas.atlas.run_table2` on every dataset of ``profile`` (read from
    ``mirror`` or the cache), written to ``out_csv``; the results folder is the one holding ``out_csv``
    (its ``tables/`` parent when ``out_csv`` is in a ``tables`` folder). Returns the checks."""
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    ids = [d.id for d in list_datasets(profile)]
    return run_table2(
        ids,
        out_dir=out.parent.parent if out.parent.name == "tables" else out.parent,
        random_state=random_state,
        adatas=load_datasets(ids, mirror=mirror),
        out_csv=out,
    )
