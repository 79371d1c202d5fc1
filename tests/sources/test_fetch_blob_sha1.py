"""Git blob id verification, on the real mirrored core files: a registry entry copy whose sha256 is
removed still verifies by its blob id (sources.yaml's value, already in data_registry.yaml); a wrong
blob id is refused; with both hashes both are checked (mirror, cache and downloads)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pooch
import pytest
from conftest import ALL_DATASETS, TIROSH, WU, files_in, source_file

from sasp_atlas.sources import fetch
from sasp_atlas.sources.fetch import HashMismatchError
from sasp_atlas.sources.registry import Dataset, get_dataset

CORE_FILES = [(d, f["name"]) for d in ALL_DATASETS for f in get_dataset(d).files]
WRONG_BLOB = "0123456789abcdef0123456789abcdef01234567"


def _copy(dataset_id: str, *, drop_sha256: bool = False, blob: str | None = None, name: str | None = None) -> Dataset:
    """A copy of a real registry entry, optionally without sha256 and/or with another blob id for one file."""
    entry = copy.deepcopy(get_dataset(dataset_id).entry)
    for f in entry["files"]:
        if name is None or f["name"] == name:
            if drop_sha256:
                del f["sha256"]
            if blob is not None:
                f["git_blob_sha1"] = blob
    return Dataset(entry)


def _file(ds: Dataset, name: str) -> dict:
    return next(f for f in ds.files if f["name"] == name)


@pytest.mark.parametrize("dataset_id,name", CORE_FILES)
def test_file_hashes_of_real_files_match_sources_yaml(mirror, sources, dataset_id, name):
    sha, blob = fetch.file_hashes(mirror / dataset_id / name)
    src = source_file(sources, dataset_id, name)
    assert (sha, blob) == (src["sha256"], src["git_blob_sha1"])
    assert (sha, blob) == (
        fetch.file_sha256(mirror / dataset_id / name),
        fetch.git_blob_sha1(mirror / dataset_id / name),
    )
    assert _file(get_dataset(dataset_id), name)["git_blob_sha1"] == blob  # the registry carries it already


@pytest.mark.parametrize("dataset_id,name", CORE_FILES)
def test_mirror_file_verifies_by_blob_id_without_sha256(mirror, empty_cache, no_network, dataset_id, name):
    ds = _copy(dataset_id, drop_sha256=True)
    f = _file(ds, name)
    assert "sha256" not in f and f["git_blob_sha1"]
    assert fetch.fetch_file(ds, f) == mirror / dataset_id / name
    assert no_network == [] and files_in(empty_cache) == []


@pytest.mark.parametrize("dataset_id,name", CORE_FILES)
def test_wrong_blob_id_is_refused(mirror, empty_cache, no_network, dataset_id, name):
    ds = _copy(dataset_id, drop_sha256=True, blob=WRONG_BLOB, name=name)
    f = _file(ds, name)
    with pytest.raises(HashMismatchError) as exc:
        fetch.fetch_file(ds, f)
    msg = str(exc.value)
    actual = fetch.git_blob_sha1(mirror / dataset_id / name)
    assert WRONG_BLOB in msg and actual in msg and "git blob sha1" in msg and name in msg
    assert no_network == [] and files_in(empty_cache) == []


def test_both_hashes_are_checked_when_both_are_given(mirror, empty_cache, no_network):
    # right sha256, wrong blob id: refused
    ds = _copy(TIROSH, blob=WRONG_BLOB)
    f = ds.files[-1]
    with pytest.raises(HashMismatchError, match=WRONG_BLOB):
        fetch.fetch_file(ds, f)
    # right blob id, wrong sha256: refused, naming the sha256
    entry = copy.deepcopy(get_dataset(TIROSH).entry)
    entry["files"][-1]["sha256"] = "0" * 64
    with pytest.raises(HashMismatchError) as exc:
        fetch.fetch_file(Dataset(entry), entry["files"][-1])
    assert "0" * 64 in str(exc.value) and "sha256" in str(exc.value)
    # both right: served
    real = get_dataset(TIROSH)
    assert fetch.fetch_file(real, real.files[-1]) == mirror / TIROSH / real.files[-1]["name"]


def test_cache_is_verified_by_blob_id(mirror, empty_cache, no_network, monkeypatch):
    ds = _copy(TIROSH, drop_sha256=True)
    f = ds.files[-1]
    cached = empty_cache / TIROSH / f["name"]
    cached.parent.mkdir(parents=True)
    shutil.copyfile(mirror / TIROSH / f["name"], cached)
    monkeypatch.delenv("SASP_ATLAS_MIRROR")
    assert fetch.fetch_file(ds, f) == cached  # good cache file used without the mirror or a download

    cached.write_bytes(b"not the file\n")
    monkeypatch.setenv("SASP_ATLAS_MIRROR", str(mirror))
    assert fetch.fetch_file(ds, f) == mirror / TIROSH / f["name"]  # garbage deleted, mirror used
    assert not cached.exists()


# --------------------------------------------------------------------------- downloads
def _fake_pooch(monkeypatch, payload: bytes, seen: list):
    """pooch.retrieve stand-in: writes ``payload`` to ``path/fname`` like a finished download."""

    def retrieve(url, known_hash=None, fname=None, path=None, progressbar=False, **kwargs):
        seen.append({"url": url, "known_hash": known_hash, "fname": fname, "path": Path(path)})
        out = Path(path) / fname
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(payload)
        return str(out)

    monkeypatch.setattr(pooch, "retrieve", retrieve)


def test_blob_only_download_is_verified_then_moved_into_the_cache(mirror, empty_cache, monkeypatch):
    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    ds = _copy(WU, drop_sha256=True)
    f = ds.files[0]
    seen = []
    _fake_pooch(monkeypatch, (mirror / WU / f["name"]).read_bytes(), seen)
    p = fetch.fetch_file(ds, f)
    assert p == empty_cache / WU / f["name"]
    assert fetch.git_blob_sha1(p) == f["git_blob_sha1"]
    # downloaded with known_hash=None under a temporary name in the same folder, then moved
    assert len(seen) == 1 and seen[0]["known_hash"] is None and seen[0]["url"] == f["url"]
    assert seen[0]["fname"] != f["name"] and seen[0]["fname"].endswith(".part") and seen[0]["path"] == empty_cache / WU
    assert files_in(empty_cache) == [p]


def test_blob_only_download_with_wrong_bytes_is_deleted(empty_cache, monkeypatch):
    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    ds = _copy(WU, drop_sha256=True)
    f = ds.files[0]
    payload = b"a different version of the file\n"
    _fake_pooch(monkeypatch, payload, [])
    with pytest.raises(HashMismatchError) as exc:
        fetch.fetch_file(ds, f)
    msg = str(exc.value)
    actual = fetch.hashlib.sha1(b"blob %d\0" % len(payload) + payload).hexdigest()
    assert f["git_blob_sha1"] in msg and actual in msg and WU in msg
    assert files_in(empty_cache) == []  # neither the temporary nor the final name is left


def test_download_with_both_hashes_also_checks_the_blob_id(mirror, tmp_path, monkeypatch):
    """With a sha256, pooch verifies it; the downloader passed along checks the blob id of the
    temporary file before pooch moves it into the cache."""
    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    seen = {}

    def retrieve(url, known_hash=None, fname=None, path=None, progressbar=False, downloader=None, **kwargs):
        seen.update(known_hash=known_hash, downloader=downloader)
        raise ConnectionError("offline (test)")

    monkeypatch.setattr(pooch, "retrieve", retrieve)
    ds = get_dataset(TIROSH)
    f = ds.files[-1]
    with pytest.raises(fetch.DataUnavailableError):
        fetch.fetch_file(ds, f)
    assert seen["known_hash"] == f"sha256:{f['sha256']}"
    dl = seen["downloader"]
    assert isinstance(dl, fetch._BlobCheckingDownloader) and dl.blob == f["git_blob_sha1"]

    # the downloader itself: right bytes pass, wrong bytes raise before pooch could move them
    class Inner:
        def __init__(self, payload):
            self.payload = payload

        def __call__(self, url, output_file, pooch_obj, check_only=False):
            Path(output_file).write_bytes(self.payload)

    out = tmp_path / "tmp_download"
    dl.inner = Inner((mirror / TIROSH / f["name"]).read_bytes())
    dl(f["url"], str(out), None)  # the real bytes pass
    dl.inner = Inner(b"corrupt\n")
    with pytest.raises(HashMismatchError, match=f["git_blob_sha1"]):
        dl(f["url"], str(out), None)
