"""Fetching: mirror and cache files are sha256-verified; corrupt files are never served;
no mirror and no network is a clear DataUnavailableError."""

from __future__ import annotations

import shutil
from pathlib import Path

import pooch
import pytest
from conftest import ALL_DATASETS, TIROSH, WU, files_in, source_file

from sasp_atlas.sources import fetch
from sasp_atlas.sources.fetch import DataUnavailableError, HashMismatchError
from sasp_atlas.sources.registry import get_dataset, list_datasets


def _flip_bytes(path: Path, offset: int = 100, n: int = 8) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, min(offset + n, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------- hash helpers
def test_file_sha256_and_git_blob_sha1_known_values(tmp_path):
    p = tmp_path / "hello.txt"
    p.write_bytes(b"hello\n")
    assert fetch.file_sha256(p) == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    # `git hash-object` of b"hello\n"
    assert fetch.git_blob_sha1(p) == "ce013625030ba8dba906f756967f9e9ca394464a"
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert fetch.git_blob_sha1(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_file_sha256_is_chunk_independent(tmp_path):
    p = tmp_path / "blob"
    p.write_bytes(bytes(range(256)) * 1000)
    assert fetch.file_sha256(p) == fetch.file_sha256(p, chunk=7) == fetch.file_sha256(p, chunk=1 << 20)


# --------------------------------------------------------------------------- real datasets
@pytest.mark.parametrize("dataset_id", ALL_DATASETS)
def test_fetch_core_dataset_verified(mirror, sources, dataset_id, no_network):
    assert dataset_id in {d.id for d in list_datasets("core")}
    ds = get_dataset(dataset_id)
    paths = fetch.fetch_dataset(dataset_id)
    assert set(paths) == {f["name"] for f in ds.files}
    for f in ds.files:
        p = paths[f["name"]]
        assert p.is_file()
        src = source_file(sources, dataset_id, f["name"])
        assert fetch.file_sha256(p) == f["sha256"] == src["sha256"]
        assert fetch.git_blob_sha1(p) == src["git_blob_sha1"]
        assert p.stat().st_size == src["size_bytes"]
    assert no_network == []  # the mirror served everything; nothing was downloaded


def test_mirror_files_are_used_in_place(mirror, empty_cache, no_network):
    paths = fetch.fetch_dataset(TIROSH)
    for name, p in paths.items():
        assert p == mirror / TIROSH / name
    assert files_in(empty_cache) == []  # never copied into the cache


def test_explicit_mirror_argument_overrides_env(mirror, tmp_path, empty_cache, monkeypatch, no_network):
    monkeypatch.setenv("SASP_ATLAS_MIRROR", str(tmp_path / "does_not_exist"))
    paths = fetch.fetch_dataset(TIROSH, mirror=mirror)
    assert all(p.parent == mirror / TIROSH for p in paths.values())


@pytest.fixture
def corrupt_mirror(mirror, tmp_path) -> tuple[Path, str, str]:
    """A copy of one small dataset's mirror folder with one file's bytes flipped."""
    root = tmp_path / "mirror"
    shutil.copytree(mirror / TIROSH, root / TIROSH)
    ds = get_dataset(TIROSH)
    name = ds.files[-1]["name"]  # the annotations file; the matrix before it stays intact
    _flip_bytes(root / TIROSH / name)
    return root, name, fetch.file_sha256(root / TIROSH / name)


def test_corrupt_mirror_raises_hash_mismatch(corrupt_mirror, empty_cache, no_network):
    root, name, actual = corrupt_mirror
    expected = next(f["sha256"] for f in get_dataset(TIROSH).files if f["name"] == name)
    assert actual != expected
    with pytest.raises(HashMismatchError) as exc:
        fetch.fetch_dataset(TIROSH, mirror=root)
    msg = str(exc.value)
    assert expected in msg and actual in msg
    assert name in msg
    # nothing reached the cache: not the corrupt file, and not a download attempt either
    assert not (empty_cache / TIROSH / name).exists()
    assert files_in(empty_cache) == []
    assert no_network == []


def test_corrupt_cache_file_is_not_served(mirror, empty_cache, no_network):
    ds = get_dataset(TIROSH)
    f = ds.files[-1]
    cached = empty_cache / TIROSH / f["name"]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"garbage, not the real file\n" * 10)
    garbage_sha = fetch.file_sha256(cached)
    assert garbage_sha != f["sha256"]

    paths = fetch.fetch_dataset(TIROSH)
    p = paths[f["name"]]
    assert fetch.file_sha256(p) == f["sha256"]
    assert p.read_bytes() == (mirror / TIROSH / f["name"]).read_bytes()
    # the garbage is gone (deleted, or replaced by verified bytes); it can never be served again
    assert not cached.exists() or fetch.file_sha256(cached) == f["sha256"]
    assert no_network == []


def test_valid_cache_file_is_preferred(mirror, empty_cache, no_network, monkeypatch):
    ds = get_dataset(TIROSH)
    f = ds.files[-1]
    cached = empty_cache / TIROSH / f["name"]
    cached.parent.mkdir(parents=True)
    shutil.copyfile(mirror / TIROSH / f["name"], cached)
    monkeypatch.delenv("SASP_ATLAS_MIRROR")
    assert fetch.fetch_file(ds, f) == cached


def test_no_mirror_no_network(empty_cache, monkeypatch, no_network):
    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    assert fetch.mirror_dir() is None
    with pytest.raises(DataUnavailableError) as exc:
        fetch.fetch_dataset(WU)
    msg = str(exc.value)
    assert "SASP_ATLAS_MIRROR" in msg
    assert WU in msg
    assert no_network == [get_dataset(WU).files[0]["url"]]
    assert files_in(empty_cache) == []


def test_mirror_without_the_file_and_no_network(tmp_path, empty_cache, no_network):
    empty_mirror = tmp_path / "empty_mirror"
    empty_mirror.mkdir()
    with pytest.raises(DataUnavailableError) as exc:
        fetch.fetch_dataset(WU, mirror=empty_mirror)
    msg = str(exc.value)
    assert WU in msg and str(empty_mirror) in msg


def test_download_hash_mismatch_is_hash_mismatch_error(empty_cache, monkeypatch):
    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)

    def retrieve(url, known_hash=None, **kwargs):
        raise ValueError(f"SHA256 hash of downloaded file (abc) does not match the known hash: expected {known_hash}")

    monkeypatch.setattr(pooch, "retrieve", retrieve)
    with pytest.raises(HashMismatchError) as exc:
        fetch.fetch_dataset(WU)
    assert WU in str(exc.value)


def test_download_is_hash_pinned_into_the_cache(empty_cache, monkeypatch, tmp_path):
    """Without a mirror, pooch is asked for the registry sha256 and the dataset's cache folder."""
    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    seen = {}

    def retrieve(url, known_hash=None, fname=None, path=None, **kwargs):
        seen.update(url=url, known_hash=known_hash, fname=fname, path=Path(path))
        out = Path(path) / fname
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"pretend")
        return str(out)

    monkeypatch.setattr(pooch, "retrieve", retrieve)
    ds = get_dataset(WU)
    f = ds.files[0]
    p = fetch.fetch_file(ds, f)
    assert seen == {
        "url": f["url"],
        "known_hash": f"sha256:{f['sha256']}",
        "fname": f["name"],
        "path": empty_cache / WU,
    }
    assert p == empty_cache / WU / f["name"]


def test_cache_and_mirror_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SASP_ATLAS_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("SASP_ATLAS_MIRROR", str(tmp_path / "m"))
    assert fetch.cache_dir() == tmp_path / "c"
    assert fetch.mirror_dir() == tmp_path / "m"
    assert fetch.mirror_dir(tmp_path / "x") == tmp_path / "x"
