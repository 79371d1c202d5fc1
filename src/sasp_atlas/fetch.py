"""Fetch registry files: local mirror first, then a hash-verified pooch download.

Order for each file of a dataset:

1. the cache (``$SASP_ATLAS_CACHE`` or pooch's OS cache) — used only if its sha256 matches;
   a cached file whose hash does not match is deleted (never served) and fetched again;
2. the mirror (``--mirror DIR`` or ``$SASP_ATLAS_MIRROR``), laid out as ``DIR/<dataset id>/<file>``:
   verified against the registry sha256 and used in place (it is never copied, so a bad mirror
   file cannot reach the cache);
3. the public URL, through :func:`pooch.retrieve`, which downloads to a temporary file and moves
   it into the cache only when the sha256 matches (an interrupted or corrupt download leaves nothing).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pooch

from .registry import Dataset, get_dataset

__all__ = ["HashMismatchError", "DataUnavailableError", "cache_dir", "mirror_dir", "resource_mirror_dir", "fetch_dataset", "fetch_resource", "file_sha256"]

log = logging.getLogger(__name__)


class HashMismatchError(RuntimeError):
    """A file's sha256 differs from the registry; the message gives both hashes."""


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


def _check(path: Path, expected: str, what: str) -> None:
    actual = file_sha256(path)
    if actual != expected:
        raise HashMismatchError(
            f"{what} {path} has sha256 {actual}, but the registry expects {expected}. "
            "The file is corrupt or a different version; it was not used. Replace it with the "
            "file from the registry URL (or remove it to download again)."
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
               progress: bool = False, mirror_candidate: Path | None = None) -> Path:
    """Return a local, sha256-verified path for one registry file (see the module doc).

    ``mirror_candidate`` overrides the mirror location (used for reference resources).
    """
    name, expected, url = file_entry["name"], file_entry["sha256"], file_entry["url"]
    cached = cache_dir() / dataset.id / name
    if cached.exists():
        if file_sha256(cached) == expected:
            log.info("cached  %s/%s (%s)", dataset.id, name, cached)
            return cached
        log.warning("cached %s has the wrong sha256; deleting it and fetching again", cached)
        cached.unlink()

    mdir = mirror_dir(mirror)
    candidate = mirror_candidate if mirror_candidate is not None else (mdir / dataset.id / name if mdir else None)
    if candidate is not None:
        if candidate.exists():
            _check(candidate, expected, "mirror file")
            log.info("mirror  %s/%s (%s, sha256 verified)", dataset.id, name, candidate)
            return candidate
        log.warning("mirror has no %s; trying the public URL", candidate)

    log.info("download %s/%s from %s", dataset.id, name, url)
    try:
        path = pooch.retrieve(url, known_hash=f"sha256:{expected}", fname=name,
                              path=cache_dir() / dataset.id, progressbar=progress)
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


def fetch_dataset(dataset_id: str | Dataset, *, mirror: str | os.PathLike | None = None,
                  progress: bool = False) -> dict[str, Path]:
    """Fetch every file of a dataset; returns ``{file name: verified local path}``."""
    ds = dataset_id if isinstance(dataset_id, Dataset) else get_dataset(dataset_id)
    return {f["name"]: fetch_file(ds, f, mirror=mirror, progress=progress) for f in ds.files}


def fetch_resource(resource_id: str, *, mirror: str | os.PathLike | None = None) -> dict[str, Path]:
    """Fetch a reference resource's files (``{file name: verified path}``); see :func:`resource_mirror_dir`."""
    from .registry import get_resource

    res = get_resource(resource_id)
    rdir = resource_mirror_dir(mirror)
    return {f["name"]: fetch_file(res, f, mirror=mirror, mirror_candidate=(rdir / f["name"]) if rdir else None)
            for f in res.files}
