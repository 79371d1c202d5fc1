"""Fetch registry files: local mirror first, then a hash-verified pooch download.

Order for each file of a dataset:

1. the cache (``$SASP_ATLAS_CACHE`` or pooch's OS cache) — used only if its hashes match;
   a cached file whose hash does not match is deleted (never served) and fetched again;
2. the mirror (``--mirror DIR`` or ``$SASP_ATLAS_MIRROR``), laid out as ``DIR/<dataset id>/<file>``
   (``DIR/<mirror_id>/<file>`` for a file whose entry names another folder):
   verified against the registry hashes and used in place (it is never copied, so a bad mirror
   file cannot reach the cache);
3. the public URL, through :func:`pooch.retrieve`, which downloads to a temporary file and moves
   it into the cache only when the sha256 matches (an interrupted or corrupt download leaves nothing).

"The registry hashes" are the file's ``sha256`` and/or ``git_blob_sha1`` (git's object id,
``sha1(b"blob <size>\\0" + bytes)``, published by GitHub for every file of a commit): every hash
the entry gives is checked, both when both are given (one read computes both). A file with only a
blob id (``profile: full`` files whose sha256 was never published) is downloaded with
``known_hash=None`` under a temporary name, its blob id is checked, and only then is it moved
(atomically) into the cache; on a mismatch it is deleted and :class:`HashMismatchError` names the
expected and the actual blob id. :func:`pin_dataset` (``sasp-atlas registry pin ID``) downloads such
files once and writes their sha256 and size into the registry YAML; :func:`pin_all` (``--all``) does it
for every unpinned file of the full profile.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import uuid
from datetime import date
from pathlib import Path

import pooch
import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import CommentMark
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.tokens import CommentToken

from .registry import (
    CENSUS_LOADER,
    Dataset,
    RegistryError,
    get_dataset,
    get_ground_truth,
    get_resource,
    list_datasets,
    list_ground_truth,
    load_resources,
    registry_path,
    validate_registry,
)

__all__ = [
    "NotPinnedError",
    "HashMismatchError",
    "DataUnavailableError",
    "cache_dir",
    "mirror_dir",
    "resource_mirror_dir",
    "fetch_dataset",
    "fetch_resource",
    "file_sha256",
    "git_blob_sha1",
    "file_hashes",
    "verify_file",
    "pin_dataset",
    "pin_all",
    "pin_candidates",
    "pin_registry_entries",
    "pin_registry_text",
    "census_location",
    "pin_census_entry",
    "CENSUS_URI_ENV",
]

log = logging.getLogger(__name__)


class HashMismatchError(RuntimeError):
    """A file's sha256 or git blob id differs from the registry; the message gives both values."""


class NotPinnedError(RuntimeError):
    """A file of a 'pinned on first download' entry has no hash yet: ``sasp-atlas registry pin ID`` first."""


class DataUnavailableError(RuntimeError):
    """A file could not be found in the mirror, the cache, or downloaded."""


def cache_dir() -> Path:
    """``$SASP_ATLAS_CACHE`` or pooch's per-user cache folder for ``sasp-atlas``."""
    env = os.environ.get("SASP_ATLAS_CACHE")
    return Path(env) if env else Path(pooch.os_cache("sasp-atlas"))


def mirror_dir(mirror: str | os.PathLike | None = None) -> Path | None:
    """The local mirror: the explicit argument, else ``$SASP_ATLAS_MIRROR``, else ``None``."""
    m = mirror if mirror is not None else os.environ.get("SASP_ATLAS_MIRROR")
    return Path(m).expanduser() if m else None


#: environment variable naming a CELLxGENE Census copy (a SOMA collection URI) that overrides every other location
CENSUS_URI_ENV = "SASP_ATLAS_CENSUS_URI"


def census_location(census_version: str, mirror: str | os.PathLike | None = None) -> tuple[str | None, str]:
    """Where the CELLxGENE Census of ``census_version`` is read from: ``(uri or None, how)``.

    The same order as the files (a local copy before the network):

    1. ``$SASP_ATLAS_CENSUS_URI`` (any SOMA collection URI, local or ``s3://``), whatever the version;
    2. the mirror (``--mirror DIR`` or ``$SASP_ATLAS_MIRROR``) laid out as
       ``DIR/cellxgene-census/<census_version>/soma`` (written e.g. by
       :func:`sasp_atlas.data.census.write_local_census`), when that folder exists;
    3. ``None``: the public release, ``cellxgene_census.open_soma(census_version=...)`` (needs internet).

    ``how`` says which, for the log and error messages.
    """
    env = os.environ.get(CENSUS_URI_ENV)
    if env:
        return env, f"${CENSUS_URI_ENV} ({env})"
    mdir = mirror_dir(mirror)
    if mdir is not None:
        local = mdir / "cellxgene-census" / census_version / "soma"
        if local.is_dir():
            return str(local), f"mirror {local}"
    return None, f"the public CELLxGENE Census, release {census_version}"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def git_blob_sha1(path: str | os.PathLike) -> str:
    """Git's object id of a file: ``sha1(b"blob <size>\\0" + bytes)``."""
    p = Path(path)
    h = hashlib.sha1(b"blob %d\0" % p.stat().st_size)
    with open(p, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def file_hashes(path: str | os.PathLike, chunk: int = 1 << 20) -> tuple[str, str]:
    """``(sha256, git blob sha1)`` of a file, both computed in one read."""
    p = Path(path)
    sha, blob = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % p.stat().st_size)
    with open(p, "rb") as fh:
        while block := fh.read(chunk):
            sha.update(block)
            blob.update(block)
    return sha.hexdigest(), blob.hexdigest()


def _mismatches(path: Path, file_entry: dict) -> list[tuple[str, str, str]]:
    """``[(hash kind, expected, actual)]`` for every registry hash of ``file_entry`` that ``path`` fails."""
    want_sha, want_blob = file_entry.get("sha256"), file_entry.get("git_blob_sha1")
    if not (want_sha or want_blob):
        raise ValueError(f"file {file_entry.get('name')!r} has neither sha256 nor git_blob_sha1 in the registry")
    if want_sha and want_blob:
        sha, blob = file_hashes(path)
    elif want_sha:
        sha, blob = file_sha256(path), None
    else:
        sha, blob = None, git_blob_sha1(path)
    out = []
    if want_sha and sha != want_sha:
        out.append(("sha256", want_sha, sha))
    if want_blob and blob != want_blob:
        out.append(("git blob sha1", want_blob, blob))
    return out


def verify_file(path: str | os.PathLike, file_entry: dict, what: str = "file") -> None:
    """Check ``path`` against every hash the registry gives (sha256 and/or git blob id).

    Raises :class:`HashMismatchError` naming each failing hash with its expected and actual value.
    """
    path = Path(path)
    bad = _mismatches(path, file_entry)
    if bad:
        detail = "; ".join(f"{kind} {actual}, but the registry expects {expected}" for kind, expected, actual in bad)
        raise HashMismatchError(
            f"{what} {path} has {detail}. The file is corrupt or a different version; it was not used. "
            "Replace it with the file from the registry URL (or remove it to download again)."
        )


def resource_mirror_dir(mirror: str | os.PathLike | None = None) -> Path | None:
    """Mirror of reference resources: ``$SASP_ATLAS_RESOURCE_MIRROR``, else ``<data mirror>/../reference/raw``."""
    env = os.environ.get("SASP_ATLAS_RESOURCE_MIRROR")
    if env:
        return Path(env).expanduser()
    data = mirror_dir(mirror)
    if data is not None and (data.parent / "reference" / "raw").is_dir():
        return data.parent / "reference" / "raw"
    return None


def fetch_file(
    dataset: Dataset,
    file_entry: dict,
    *,
    mirror: str | os.PathLike | None = None,
    progress: bool = False,
    mirror_candidate: Path | None = None,
    first_download: bool = False,
) -> Path:
    """Return a local, hash-verified path for one registry file (see the module doc).

    ``mirror_candidate`` overrides the mirror location (used for reference resources). A file with
    no hash at all (an entry of trust level ``pinned on first download`` not pinned yet) is refused
    with :class:`NotPinnedError`, unless ``first_download`` (only :func:`pin_dataset` passes it):
    then it is downloaded from its URL to a temporary name and moved into the cache, to be pinned.
    """
    name, url = file_entry["name"], file_entry["url"]
    expected, blob = file_entry.get("sha256"), file_entry.get("git_blob_sha1")
    if not (expected or blob):
        if not first_download:
            raise NotPinnedError(
                f"file {name!r} of dataset {dataset.id!r} has no hash yet (trust level: pinned on first download): "
                f"run `sasp-atlas registry pin {dataset.id}` once (it downloads the file and records its sha256 and "
                "size); until then it is never read"
            )
        return _first_download(url, cache_dir() / dataset.id, name, progress)
    kinds = " + ".join(k for k, v in (("sha256", expected), ("git blob id", blob)) if v)
    cached = cache_dir() / dataset.id / name
    if cached.exists():
        bad = _mismatches(cached, file_entry)
        if not bad:
            log.info("cached  %s/%s (%s)", dataset.id, name, cached)
            return cached
        log.warning(
            "cached %s is not the registry's file (%s); deleting it and fetching again",
            cached,
            "; ".join(f"{kind} expected {want}, actual {got}" for kind, want, got in bad),
        )
        cached.unlink()

    mdir = mirror_dir(mirror)
    folder = file_entry.get("mirror_id", dataset.id)  # a file shared by two entries sits under one of them
    candidate = mirror_candidate if mirror_candidate is not None else (mdir / folder / name if mdir else None)
    if candidate is not None:
        if candidate.exists():
            verify_file(candidate, file_entry, "mirror file")
            log.info("mirror  %s/%s (%s, %s verified)", dataset.id, name, candidate, kinds)
            return candidate
        log.warning("mirror has no %s; trying the public URL", candidate)

    log.info("download %s/%s from %s", dataset.id, name, url)
    try:
        if expected:
            extra = {"downloader": _BlobCheckingDownloader(blob, progress)} if blob else {}
            path = pooch.retrieve(
                url,
                known_hash=f"sha256:{expected}",
                fname=name,
                path=cache_dir() / dataset.id,
                progressbar=progress,
                **extra,
            )
        else:
            path = _download_blob_verified(url, cache_dir() / dataset.id, name, blob, progress)
    except HashMismatchError as exc:
        raise HashMismatchError(f"download of {url} for dataset {dataset.id!r}: {exc}") from exc
    except ValueError as exc:  # pooch: hash mismatch (the temporary download is deleted)
        raise HashMismatchError(f"download of {url} for dataset {dataset.id!r}: {exc}") from exc
    except Exception as exc:  # network errors of every kind
        hint = (
            f"set SASP_ATLAS_MIRROR (or pass --mirror DIR) to a folder holding {dataset.id}/{name}"
            if mdir is None
            else f"the mirror {mdir} has no {dataset.id}/{name}; add it there"
        )
        raise DataUnavailableError(
            f"cannot fetch {name!r} of dataset {dataset.id!r}: download from {url} failed "
            f"({type(exc).__name__}: {exc}). No network? Then {hint}."
        ) from exc
    return Path(path)


class _BlobCheckingDownloader:
    """pooch downloader that also checks the git blob id of the temporary file, before pooch checks
    the sha256 and moves it into the cache (so a file with both hashes is verified by both)."""

    def __init__(self, blob: str, progress: bool = False):
        self.blob, self.inner = blob, pooch.HTTPDownloader(progressbar=progress)

    def __call__(self, url, output_file, pooch_obj, check_only=False):
        result = self.inner(url, output_file, pooch_obj, check_only=check_only)
        if not check_only:
            actual = git_blob_sha1(output_file)
            if actual != self.blob:
                raise HashMismatchError(
                    f"git blob sha1 of the download is {actual}, but the registry expects {self.blob}"
                )
        return result


def _first_download(url: str, folder: Path, name: str, progress: bool = False) -> Path:
    """The first download of a file nobody publishes a hash for: to a temporary name, then moved
    atomically into the cache (an interrupted download leaves nothing); its sha256 is pinned next."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    final.unlink(missing_ok=True)  # never keep an earlier, unpinned copy
    try:
        tmp = Path(
            pooch.retrieve(
                url, known_hash=None, fname=f".{name}.{uuid.uuid4().hex}.part", path=folder, progressbar=progress
            )
        )
    except Exception as exc:  # network errors of every kind
        raise DataUnavailableError(
            f"first download of {name!r} from {url} failed ({type(exc).__name__}: {exc})"
        ) from exc
    os.replace(tmp, final)  # same folder: atomic
    return final


def _download_blob_verified(url: str, folder: Path, name: str, blob: str, progress: bool = False) -> Path:
    """Download with ``known_hash=None`` to a temporary name, verify the git blob id, move atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(
        pooch.retrieve(
            url, known_hash=None, fname=f".{name}.{uuid.uuid4().hex}.part", path=folder, progressbar=progress
        )
    )
    try:
        actual = git_blob_sha1(tmp)
        if actual != blob:
            raise HashMismatchError(
                f"git blob sha1 of the download is {actual}, but the registry expects {blob}; the download was deleted"
            )
        final = folder / name
        os.replace(tmp, final)  # same folder: atomic
    finally:
        tmp.unlink(missing_ok=True)
    return final


def _entry(entry_id: str, path) -> Dataset:
    """A dataset entry, else a ground-truth entry of that id (the dataset's KeyError when neither)."""
    try:
        return get_dataset(entry_id, path)
    except KeyError as exc:
        try:
            return get_ground_truth(entry_id, path)
        except KeyError:
            raise exc from None


def fetch_dataset(
    dataset_id: str | Dataset, *, mirror: str | os.PathLike | None = None, progress: bool = False
) -> dict[str, Path]:
    """Fetch every file of a dataset (or a ground-truth entry); returns ``{file name: verified local path}``."""
    if isinstance(dataset_id, Dataset):
        ds = dataset_id
    else:
        ds = _entry(dataset_id, None)
    return {f["name"]: fetch_file(ds, f, mirror=mirror, progress=progress) for f in ds.files}


def fetch_resource(resource_id: str, *, mirror: str | os.PathLike | None = None) -> dict[str, Path]:
    """Fetch a reference resource's files (``{file name: verified path}``).

    Mirror: the resource mirror (:func:`resource_mirror_dir`) if it holds the file, else the data
    mirror laid out as for datasets, ``<mirror>/<resource id>/<file>`` (e.g. the hUSI model in
    ``husi2025_senescence_index/``); either is verified against the registry hashes.
    """
    res = get_resource(resource_id)
    rdir = resource_mirror_dir(mirror)

    def candidate(f: dict) -> Path | None:
        found = rdir / f["name"] if rdir else None
        return found if found is not None and found.exists() else None  # None: fetch_file tries the data mirror

    return {f["name"]: fetch_file(res, f, mirror=mirror, mirror_candidate=candidate(f)) for f in res.files}


# --------------------------------------------------------------------------- registry pin
#: the registry's sections whose entries have files to pin
PIN_SECTIONS = ("datasets", "ground_truth", "resources")


class _NullAsNull(RoundTripRepresenter):
    """Writes ``None`` as ``null`` (the registry's spelling), not as an empty value."""


_NullAsNull.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))


def _round_trip_yaml(text: str = "") -> YAML:
    """ruamel.yaml in round-trip mode, set up so that an unchanged registry is written back byte for byte:
    comments, key order, quoting and flow lists kept, long lines never folded, the text's indentation of
    list items (``data_registry.yaml``: the dash 2 spaces in; a PyYAML dump: at the parent key's column)."""
    rt = YAML(typ="rt")
    rt.Representer = _NullAsNull
    rt.preserve_quotes = True
    rt.width = 1 << 20
    dash = re.search(r"^datasets:[^\n]*\n(?:[ \t]*(?:#[^\n]*)?\n)*( *)- ", text, re.M)
    offset = len(dash.group(1)) if dash else 2
    rt.indent(mapping=2, sequence=offset + 2, offset=offset)
    return rt


def _move_trailing_comment(item: CommentedMap, before: str, after: str) -> None:
    """Keys inserted after ``before`` must not end up below the comment lines that follow it (ruamel keeps a
    key's end-of-line comment and every comment or blank line up to the next key in one token): the end-of-line
    part stays on ``before``, the lines after it move to ``after``, the last inserted key."""
    slot = item.ca.items.get(before)
    token = slot[2] if slot and len(slot) > 2 else None
    if token is None or "\n" not in token.value:
        return
    head, tail = token.value.split("\n", 1)
    if not tail:
        return
    if head.strip():
        token.value = head + "\n"
    else:
        slot[2] = None
    item.ca.items.setdefault(after, [None, None, None, None])[2] = CommentToken("\n" + tail, CommentMark(0), None)


def _insert_after(item: CommentedMap, before: str, key: str, value) -> None:
    """Insert ``key: value`` right after ``before``; comment lines that followed ``before`` follow ``key``."""
    item.insert(list(item).index(before) + 1, key, value)
    _move_trailing_comment(item, before, key)


def _pin_file_item(item: CommentedMap, pin: dict) -> None:
    """Write one pin (``sha256``, ``size``, optional ``note``) into a file item: an existing key keeps its
    place, a new ``sha256``/``size`` goes after ``url`` (or after the existing one of the two), a new
    ``note`` after ``size``."""
    if "url" not in item:
        raise ValueError(f"file {item.get('name')!r} has no url")
    values = {"sha256": pin["sha256"], "size": int(pin["size"])}
    if pin.get("note") is not None:
        values["note"] = DoubleQuotedScalarString(pin["note"])
    for key, value in values.items():
        if key in item:
            item[key] = value
        else:
            before = (
                "size"
                if key == "note"
                else max(("url", "sha256", "size"), key=lambda k: list(item).index(k) if k in item else -1)
            )
            _insert_after(item, before, key, value)


class _RegistryEdit:
    """A registry YAML text parsed once in round-trip mode; :meth:`pin` writes pins into it, :meth:`text`
    gives it back (only the pinned fields changed)."""

    def __init__(self, text: str):
        self.yaml = _round_trip_yaml(text)
        self.doc = self.yaml.load(text)
        if not isinstance(self.doc, CommentedMap) or "datasets" not in self.doc:
            raise ValueError("the registry has no top-level 'datasets:' list")

    def pin(self, pins: dict[str, dict[str, dict]]) -> None:
        entries = {e["id"]: e for section in PIN_SECTIONS for e in (self.doc.get(section) or [])}
        for entry_id, file_pins in pins.items():
            if entry_id not in entries:
                raise KeyError(
                    f"entry {entry_id!r} not found under {', '.join(s + ':' for s in PIN_SECTIONS)} in the "
                    "registry text"
                )
            items = {f["name"]: f for f in entries[entry_id].get("files") or []}
            if unknown := sorted(set(file_pins) - set(items)):
                raise KeyError(f"entry {entry_id!r} has no file(s) {unknown} in the registry text")
            for name, pin in file_pins.items():
                _pin_file_item(items[name], pin)

    def pin_census(self, entry_id: str, pin: dict) -> None:
        """Write a census subset pin (``n_cells``, ``n_donors``, ``sha256``, ``note``) as ``loader.options.pin``
        of the census entry ``entry_id`` (replacing an earlier pin in place)."""
        entries = {e["id"]: e for e in self.doc.get("datasets") or []}
        if entry_id not in entries:
            raise KeyError(f"dataset entry {entry_id!r} not found under datasets: in the registry text")
        loader = entries[entry_id]["loader"]
        if loader.get("name") != CENSUS_LOADER:
            raise ValueError(f"entry {entry_id!r} is not read through the CELLxGENE Census (loader {CENSUS_LOADER})")
        value = CommentedMap()
        for key in ("n_cells", "n_donors"):
            value[key] = int(pin[key])
        value["sha256"] = pin["sha256"]
        if pin.get("note"):
            value["note"] = DoubleQuotedScalarString(pin["note"])
        options = loader["options"]
        if "pin" in options:
            options["pin"] = value
        else:
            options.insert(len(options), "pin", value)

    def text(self) -> str:
        out = io.StringIO()
        self.yaml.dump(self.doc, out)
        return out.getvalue()

    def save(self, path: Path, pins: dict[str, dict[str, dict]]) -> None:
        """Write the text to ``path`` after checking it: valid against the schema and holding every new hash of
        ``pins``; a temporary file atomically replaces the registry."""
        text = self.text()
        doc = yaml.safe_load(text)
        validate_registry(doc)
        entries = {e["id"]: e for section in PIN_SECTIONS for e in (doc.get(section) or [])}
        for entry_id, file_pins in pins.items():
            for f in entries[entry_id]["files"]:
                if f["name"] in file_pins and (f.get("sha256"), f.get("size")) != (
                    file_pins[f["name"]]["sha256"],
                    file_pins[f["name"]]["size"],
                ):
                    raise RegistryError(
                        f"registry pin {entry_id}: the edited text does not hold the new hash of {f['name']}"
                    )
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)


def pin_census_entry(entry_id: str, pin: dict, *, registry: str | os.PathLike | None = None) -> None:
    """Write the pin of a CELLxGENE Census entry (``{"n_cells", "n_donors", "sha256"[, "note"]}``, computed by
    :func:`sasp_atlas.data.census.census_subset_pin`) into ``loader.options.pin`` of the registry file.

    The same round-trip edit as file pins (comments, order and quoting kept); the edited text is validated
    against the schema and checked to hold the new pin before it atomically replaces the registry.
    """
    path = Path(registry) if registry else registry_path()
    edit = _RegistryEdit(path.read_text())
    edit.pin_census(entry_id, pin)
    text = edit.text()
    doc = yaml.safe_load(text)
    validate_registry(doc)
    written = next(e for e in doc["datasets"] if e["id"] == entry_id)["loader"]["options"]["pin"]
    if any(written[k] != pin[k] for k in ("n_cells", "n_donors", "sha256")):
        raise RegistryError(f"registry pin {entry_id}: the edited text does not hold the new census pin")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    log.info("pinned the census subset of %s in %s", entry_id, path)


def pin_registry_entries(text: str, pins: dict[str, dict[str, dict]]) -> str:
    """Write pins into a registry YAML *text*: ``{entry id: {file name: {"sha256", "size"[, "note"]}}}``
    for entries of ``datasets:``, ``ground_truth:`` or ``resources:``.

    A round-trip edit with ruamel.yaml: only the pinned fields change; comments, key order, quoting and
    the layout of every other line are kept (an unchanged registry is written back byte for byte). In a
    file item an existing ``sha256``/``size``/``note`` is replaced in place; missing ``sha256`` and ``size``
    are inserted after ``url``, a missing ``note`` after ``size``.
    """
    edit = _RegistryEdit(text)
    edit.pin(pins)
    return edit.text()


def pin_registry_text(text: str, dataset_id: str, pins: dict[str, dict]) -> str:
    """Write ``sha256`` and ``size`` (and ``note``, if given) of the files in ``pins``
    (``{file name: {"sha256", "size"[, "note"]}}``) into the entry ``dataset_id`` of a registry YAML *text*,
    changing nothing else (see :func:`pin_registry_entries`)."""
    return pin_registry_entries(text, {dataset_id: pins})


def _pinnable(entry_id: str, path) -> Dataset:
    """A dataset, ground-truth or resource entry of that id (the dataset's KeyError when none)."""
    try:
        return _entry(entry_id, path)
    except KeyError as exc:
        try:
            return get_resource(entry_id, path)
        except KeyError:
            raise exc from None


def _is_pinned(f: dict) -> bool:
    return bool(f.get("sha256") and f.get("size"))


def _pin_one(ds: Dataset, f: dict, *, mirror, progress: bool) -> tuple[dict, dict]:
    """Fetch one unpinned file (verified by every hash the entry gives), hash it; ``(record, pin)``.

    Raises what :func:`fetch_file` raises: :class:`HashMismatchError` when the bytes differ from a
    published hash or an existing pin (the file is refused and not cached), :class:`DataUnavailableError`."""
    first = not (f.get("sha256") or f.get("git_blob_sha1"))
    local = fetch_file(ds, f, mirror=mirror, progress=progress, first_download=first)
    sha, _ = file_hashes(local)
    size = local.stat().st_size
    if f.get("size") and int(f["size"]) != size:
        if local.is_relative_to(cache_dir()):
            local.unlink()
        raise HashMismatchError(
            f"{f['name']} of {ds.id!r} has {size} bytes, but the registry records {f['size']}; it was not used"
        )
    today = date.today().isoformat()
    if first:
        status = "pinned on first download"
        note = (
            f"pinned on first download: sha256 and size recorded by `sasp-atlas registry pin` on {today} from "
            f"{f['url']} (the host publishes no hash)"
        )
    else:
        verified = "the published sha256" if f.get("sha256") else "the published git blob id"
        status = f"pinned (verified by {verified})"
        note = (
            f"sha256 and size recorded by `sasp-atlas registry pin` on {today} from {f['url']}, verified by {verified}"
        )
    return (
        {"name": f["name"], "status": status, "sha256": sha, "size": size},
        {"sha256": sha, "size": size, "note": note, "path": local},
    )


def pin_dataset(
    dataset_id: str,
    *,
    registry: str | os.PathLike | None = None,
    mirror: str | os.PathLike | None = None,
    progress: bool = False,
) -> list[dict]:
    """Download each file of a registry entry once, verify it, and write its sha256 and size into the registry.

    Maintainer command behind ``sasp-atlas registry pin ID`` (datasets, ground-truth entries and
    resources). Files that have both ``sha256`` and ``size`` already are left alone. The others are
    fetched like any registry file (cache, then the mirror, then the URL; see :func:`fetch_file`), so
    they are verified by every hash the entry gives (for ``profile: full`` files: the git blob id)
    before their sha256 and size, with the date and URL in the ``note``, are written into the entry
    (:func:`pin_registry_entries`, a round-trip edit that keeps comments and order); the edited text is
    validated against the schema before it atomically replaces the registry file. The downloaded files
    stay in the cache, so the next ``fetch``/``build`` does not download them again.

    Returns one record per file (``name``, ``status``, ``sha256``, ``size``). Without network (and
    without the files in the mirror) this raises :class:`DataUnavailableError` saying so; a file that
    differs from its published hash raises :class:`HashMismatchError` and nothing is written.
    """
    path = Path(registry) if registry else registry_path()
    ds = _pinnable(dataset_id, path)
    records, pins = [], {}
    for f in ds.files:
        if _is_pinned(f):
            records.append({"name": f["name"], "status": "already pinned", "sha256": f["sha256"], "size": f["size"]})
            continue
        try:
            record, pin = _pin_one(ds, f, mirror=mirror, progress=progress)
        except DataUnavailableError as exc:
            raise DataUnavailableError(
                f"registry pin {dataset_id}: {exc} Pinning downloads every unpinned file once, so it needs "
                f"internet access (or the files in a mirror: --mirror DIR with {dataset_id}/<file name>)."
            ) from exc
        records.append(record)
        pins[f["name"]] = {k: pin[k] for k in ("sha256", "size", "note")}
    if pins:
        edit = _RegistryEdit(path.read_text())
        edit.pin({dataset_id: pins})
        edit.save(path, {dataset_id: pins})
        log.info("pinned %d file(s) of %s in %s", len(pins), dataset_id, path)
    return records


def pin_candidates(registry: str | os.PathLike | None = None) -> list[tuple[str, Dataset]]:
    """What ``registry pin --all`` goes through: ``(kind, entry)`` for every dataset and ground-truth entry of
    the full profile (the core included) and every resource, in registry order."""
    path = Path(registry) if registry else registry_path()
    return (
        [("dataset", d) for d in list_datasets("full", path)]
        + [("ground truth", g) for g in list_ground_truth("full", path)]
        + [("resource", r) for r in load_resources(path)]
    )


def pin_all(
    *,
    registry: str | os.PathLike | None = None,
    mirror: str | os.PathLike | None = None,
    progress: bool = False,
    on_file=None,
) -> list[dict]:
    """Pin every unpinned file of the full profile: ``sasp-atlas registry pin --all`` (maintainers).

    Goes through :func:`pin_candidates` and pins each file without ``sha256`` and ``size`` as
    :func:`pin_dataset` does (verified by its published git blob id or sha256 where there is one; pinned on
    first download where the host publishes no hash). Unlike :func:`pin_dataset` it does not stop at a
    failure: an unreachable file and a file whose bytes differ from its published hash or an existing pin
    (refused, never cached, the registry line left as it was) are recorded with the reason, and the others
    are pinned. The registry is rewritten after each entry (an interrupted run keeps what it pinned). A file
    that several entries share (same URL) is downloaded once: the later entries get the same pin and a hard
    link in their cache folder.

    ``on_file(index, total, entry_id, file_name)`` is called before each file that needs pinning (progress).
    Returns one record per file: ``entry``, ``kind``, ``name``, ``url``, ``status`` (``pinned``, ``already
    pinned`` or ``failed``), ``how`` (what verified it, or why it failed), ``sha256``, ``size``, ``retry``
    (the command to retry a failed file, else ``None``).
    """
    path = Path(registry) if registry else registry_path()
    candidates = pin_candidates(path)
    todo = sum(not _is_pinned(f) for _, e in candidates for f in e.files)
    records, seen, index, edit = [], {}, 0, None
    for kind, entry in candidates:
        pins = {}
        for f in entry.files:
            base = {"entry": entry.id, "kind": kind, "name": f["name"], "url": f["url"], "retry": None}
            if _is_pinned(f):
                records.append(
                    {
                        **base,
                        "status": "already pinned",
                        "how": "sha256 and size in the registry",
                        "sha256": f["sha256"],
                        "size": f["size"],
                    }
                )
                continue
            index += 1
            if on_file is not None:
                on_file(index, todo, entry.id, f["name"])
            try:
                if f["url"] in seen and _same_hashes(seen[f["url"]][0], f):
                    record, pin = _reuse_pin(entry, f, *seen[f["url"]])
                else:
                    record, pin = _pin_one(entry, f, mirror=mirror, progress=progress)
                    seen[f["url"]] = (f, pin, record)
            except (DataUnavailableError, HashMismatchError, OSError) as exc:
                why = {HashMismatchError: "refused", DataUnavailableError: "unreachable"}
                reason = f"{why.get(type(exc), type(exc).__name__)}: {exc}"
                records.append(
                    {
                        **base,
                        "status": "failed",
                        "how": reason,
                        "sha256": None,
                        "size": None,
                        "retry": f"sasp-atlas registry pin {entry.id}",
                    }
                )
                continue
            pins[f["name"]] = {k: pin[k] for k in ("sha256", "size", "note")}
            records.append(
                {**base, "status": "pinned", "how": record["status"], "sha256": pin["sha256"], "size": pin["size"]}
            )
        if pins:  # written after each entry: an interrupted run keeps what it pinned
            edit = edit or _RegistryEdit(path.read_text())
            edit.pin({entry.id: pins})
            edit.save(path, {entry.id: pins})
            log.info("pinned %d file(s) of %s in %s", len(pins), entry.id, path)
    return records


def _same_hashes(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in ("sha256", "git_blob_sha1", "size"))


def _reuse_pin(entry: Dataset, f: dict, first_f: dict, pin: dict, record: dict) -> tuple[dict, dict]:
    """The pin of a file another entry shares (same URL and hashes), already downloaded in this run; a hard
    link puts it in this entry's cache folder too (skipped where links are not possible)."""
    target = cache_dir() / entry.id / f["name"]
    if pin["path"].is_relative_to(cache_dir()) and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(pin["path"], target)
        except OSError:
            log.info("could not link %s into %s (the build downloads it again)", pin["path"], target)
    return dict(record), pin
