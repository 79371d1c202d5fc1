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
files once and writes their sha256 and size into the registry YAML.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from datetime import date
from pathlib import Path

import pooch
import yaml

from .registry import Dataset, RegistryError, get_dataset, get_ground_truth, get_resource, registry_path, validate_registry

__all__ = ["NotPinnedError", "HashMismatchError", "DataUnavailableError", "cache_dir", "mirror_dir", "resource_mirror_dir", "fetch_dataset",
           "fetch_resource", "file_sha256", "git_blob_sha1", "file_hashes", "verify_file", "pin_dataset", "pin_registry_text"]

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


def fetch_file(dataset: Dataset, file_entry: dict, *, mirror: str | os.PathLike | None = None,
               progress: bool = False, mirror_candidate: Path | None = None, first_download: bool = False) -> Path:
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
                "size); until then it is never read")
        return _first_download(url, cache_dir() / dataset.id, name, progress)
    kinds = " + ".join(k for k, v in (("sha256", expected), ("git blob id", blob)) if v)
    cached = cache_dir() / dataset.id / name
    if cached.exists():
        bad = _mismatches(cached, file_entry)
        if not bad:
            log.info("cached  %s/%s (%s)", dataset.id, name, cached)
            return cached
        log.warning("cached %s is not the registry's file (%s); deleting it and fetching again", cached,
                    "; ".join(f"{kind} expected {want}, actual {got}" for kind, want, got in bad))
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
            path = pooch.retrieve(url, known_hash=f"sha256:{expected}", fname=name,
                                  path=cache_dir() / dataset.id, progressbar=progress, **extra)
        else:
            path = _download_blob_verified(url, cache_dir() / dataset.id, name, blob, progress)
    except HashMismatchError as exc:
        raise HashMismatchError(f"download of {url} for dataset {dataset.id!r}: {exc}") from exc
    except ValueError as exc:  # pooch: hash mismatch (the temporary download is deleted)
        raise HashMismatchError(f"download of {url} for dataset {dataset.id!r}: {exc}") from exc
    except Exception as exc:  # network errors of every kind
        hint = ("set SASP_ATLAS_MIRROR (or pass --mirror DIR) to a folder holding "
                f"{dataset.id}/{name}" if mdir is None else
                f"the mirror {mdir} has no {dataset.id}/{name}; add it there")
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
                raise HashMismatchError(f"git blob sha1 of the download is {actual}, but the registry expects {self.blob}")
        return result


def _first_download(url: str, folder: Path, name: str, progress: bool = False) -> Path:
    """The first download of a file nobody publishes a hash for: to a temporary name, then moved
    atomically into the cache (an interrupted download leaves nothing); its sha256 is pinned next."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    final.unlink(missing_ok=True)  # never keep an earlier, unpinned copy
    try:
        tmp = Path(pooch.retrieve(url, known_hash=None, fname=f".{name}.{uuid.uuid4().hex}.part", path=folder,
                                  progressbar=progress))
    except Exception as exc:  # network errors of every kind
        raise DataUnavailableError(f"first download of {name!r} from {url} failed ({type(exc).__name__}: {exc})") from exc
    os.replace(tmp, final)  # same folder: atomic
    return final


def _download_blob_verified(url: str, folder: Path, name: str, blob: str, progress: bool = False) -> Path:
    """Download with ``known_hash=None`` to a temporary name, verify the git blob id, move atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(pooch.retrieve(url, known_hash=None, fname=f".{name}.{uuid.uuid4().hex}.part", path=folder,
                              progressbar=progress))
    try:
        actual = git_blob_sha1(tmp)
        if actual != blob:
            raise HashMismatchError(f"git blob sha1 of the download is {actual}, but the registry expects {blob}; "
                                    "the download was deleted")
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


def fetch_dataset(dataset_id: str | Dataset, *, mirror: str | os.PathLike | None = None,
                  progress: bool = False) -> dict[str, Path]:
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
_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][A-Za-z0-9_]*):")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _block_end(lines: list[str], start: int, item_indent: int) -> int:
    """Index after the YAML list item starting at ``start`` (a ``- key:`` line indented ``item_indent``)."""
    for j in range(start + 1, len(lines)):
        if _is_content(lines[j]) and _indent(lines[j]) <= item_indent:
            return j
    return len(lines)


def _scalar(value: str) -> str:
    return value.split(" #", 1)[0].strip().strip("\"'")


def pin_registry_text(text: str, dataset_id: str, pins: dict[str, dict]) -> str:
    """Write ``sha256`` and ``size`` of the files in ``pins`` (``{file name: {"sha256", "size"[, "note"]}}``)
    into the entry ``dataset_id`` of a registry YAML *text*, changing nothing else.

    A targeted line edit (comments, order and quoting elsewhere are kept): in each file item an
    existing ``sha256:``/``size:`` line is replaced, otherwise the two lines are inserted after its
    ``url:`` line; an existing ``note:`` line of the item is replaced by the pin's ``note`` if given.
    """
    lines = text.splitlines(keepends=True)
    tops = [i for i, ln in enumerate(lines) if re.match(r"^(datasets|ground_truth):\s*(#.*)?$", ln)]
    if not tops:
        raise ValueError("the registry has no top-level 'datasets:' list")
    start = None
    for top in tops:
        for i in range(top + 1, len(lines)):
            if _is_content(lines[i]) and _indent(lines[i]) == 0 and not lines[i].startswith("-"):
                break  # next top-level key (a "- " at column 0 is an item of an unindented sequence)
            m = re.match(r"^(\s*)- id:\s*(.+?)\s*$", lines[i])
            if m and _scalar(m.group(2)) == dataset_id:
                start = i
                break
        if start is not None:
            break
    if start is None:
        raise KeyError(f"dataset {dataset_id!r} not found under 'datasets:' or 'ground_truth:' in the registry text")
    end = _block_end(lines, start, _indent(lines[start]))

    todo = dict(pins)
    i = start
    while i < end:
        m = re.match(r"^(\s*)- name:\s*(.+?)\s*$", lines[i])
        if not (m and _scalar(m.group(2)) in todo):
            i += 1
            continue
        name, dash = _scalar(m.group(2)), len(m.group(1))
        pad = " " * (dash + 2)
        item_end = _block_end(lines, i, dash)
        keys = {}
        for j in range(i, item_end):
            km = _KEY.match(lines[j].replace("- ", "  ", 1) if j == i else lines[j])
            if km and len(km.group("indent")) == dash + 2:
                keys[km.group("key")] = j
        if "url" not in keys:
            raise ValueError(f"file {name!r} of {dataset_id!r} has no url: line")
        eol = "\n"
        new = {"sha256": f"{pad}sha256: {todo[name]['sha256']}{eol}", "size": f"{pad}size: {int(todo[name]['size'])}{eol}"}
        if todo[name].get("note") is not None and "note" in keys:
            lines[keys["note"]] = f"{pad}note: {_yaml_str(todo[name]['note'])}{eol}"
        inserts = []
        for key in ("sha256", "size"):
            if key in keys:
                lines[keys[key]] = new[key]
            else:
                inserts.append(new[key])
        if inserts:
            at = max(keys[k] for k in ("url", "sha256", "size") if k in keys) + 1
            lines[at:at] = inserts
            end += len(inserts)
            item_end += len(inserts)
        del todo[name]
        i = item_end
    if todo:
        raise KeyError(f"dataset {dataset_id!r} has no file(s) {sorted(todo)} in the registry text")
    return "".join(lines)


def _yaml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pin_dataset(dataset_id: str, *, registry: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None,
                progress: bool = False) -> list[dict]:
    """Download each file of a registry entry once, verify it, and write its sha256 and size into the registry.

    Maintainer command behind ``sasp-atlas registry pin ID``. Files that have both ``sha256`` and
    ``size`` already are left alone. The others are fetched like any registry file (cache, then the
    mirror, then the URL; see :func:`fetch_file`), so they are verified by every hash the entry
    gives (for ``profile: full`` files: the git blob id) before their sha256 and size are computed
    and written into the entry with :func:`pin_registry_text`; the edited text is validated against
    the schema before it atomically replaces the registry file. The downloaded files stay in the
    cache, so the next ``fetch``/``build`` does not download them again.

    Returns one record per file (``name``, ``status``, ``sha256``, ``size``). Without network (and
    without the files in the mirror) this raises :class:`DataUnavailableError` saying so.
    """
    path = Path(registry) if registry else registry_path()
    ds = _entry(dataset_id, path)  # ground-truth entries are pinned the same way
    records, pins = [], {}
    for f in ds.files:
        if f.get("sha256") and f.get("size"):
            records.append({"name": f["name"], "status": "already pinned", "sha256": f["sha256"], "size": f["size"]})
            continue
        first = not (f.get("sha256") or f.get("git_blob_sha1"))
        try:
            local = fetch_file(ds, f, mirror=mirror, progress=progress, first_download=first)
        except DataUnavailableError as exc:
            raise DataUnavailableError(
                f"registry pin {dataset_id}: {exc} Pinning downloads every unpinned file once, so it needs "
                f"internet access (or the files in a mirror: --mirror DIR with {dataset_id}/<file name>)."
            ) from exc
        sha, _ = file_hashes(local)
        size = local.stat().st_size
        if first:
            pins[f["name"]] = {"sha256": sha, "size": size,
                               "note": f"pinned on first download: sha256 and size recorded by `sasp-atlas registry pin` on "
                                       f"{date.today().isoformat()} from {f['url']} (the host publishes no hash)"}
            records.append({"name": f["name"], "status": "pinned on first download", "sha256": sha, "size": size})
            continue
        verified = "the published sha256" if f.get("sha256") else "the published git blob id"
        pins[f["name"]] = {"sha256": sha, "size": size,
                           "note": f"sha256 and size recorded by `sasp-atlas registry pin` on {date.today().isoformat()} "
                                   f"from a download verified by {verified}"}
        records.append({"name": f["name"], "status": f"pinned (verified by {verified})", "sha256": sha, "size": size})
    if pins:
        text = pin_registry_text(path.read_text(), dataset_id, pins)
        doc = yaml.safe_load(text)
        validate_registry(doc)
        entry = next(d for d in doc["datasets"] + doc.get("ground_truth", []) if d["id"] == dataset_id)
        for f in entry["files"]:
            if f["name"] in pins and (f.get("sha256"), f.get("size")) != (pins[f["name"]]["sha256"], pins[f["name"]]["size"]):
                raise RegistryError(f"registry pin {dataset_id}: the edited text does not hold the new hash of {f['name']}")
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        log.info("pinned %d file(s) of %s in %s", len(pins), dataset_id, path)
    return records
