"""Fetching when things go wrong, with the real pooch over a real (local) HTTP server.

tests/test_fetch.py checks the mirror/cache order with pooch replaced by stubs; here downloads go
through pooch and requests to a server on 127.0.0.1 that can cut a transfer half-way or send the
wrong bytes, and every bad input must leave the cache clean and say what to do. Registry cases
not in tests/test_registry.py are at the end.
"""

from __future__ import annotations

import copy
import hashlib
import http.server
import logging
import os
import socket
import threading
from pathlib import Path

import pooch
import pytest
import yaml
from conftest import MGH, TIROSH, WU

from sasp_atlas.sources import fetch
from sasp_atlas.sources.fetch import DataUnavailableError, HashMismatchError
from sasp_atlas.sources.registry import Dataset, RegistryError, get_dataset, get_resource, load_registry

PAYLOAD = bytes(range(256)) * 800  # 204,800 bytes
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
PAYLOAD_BLOB = hashlib.sha1(b"blob %d\0" % len(PAYLOAD) + PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """``/good/<f>``: the payload; ``/cut/<f>``: half of it, then the connection is closed although
    the header promised the whole; ``/wrong/<f>``: the right length with other bytes."""

    requests: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (http.server API)
        type(self).requests.append(self.path)
        kind = self.path.split("/")[1]
        body = PAYLOAD[::-1] if kind == "wrong" else PAYLOAD
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if kind == "cut":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def empty_cache(empty_cache, monkeypatch) -> Path:
    """conftest's empty cache, and no mirror either: only the local test server can provide files."""
    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    return empty_cache


def _dataset(url: str, *, hashes: str = "sha256") -> Dataset:
    """A one-file entry served by the local server (the registry would refuse http://, fetch_file does not check)."""
    f = {"name": "payload.bin", "url": url, "size": len(PAYLOAD)}
    if "sha256" in hashes:
        f["sha256"] = PAYLOAD_SHA
    if "blob" in hashes:
        f["git_blob_sha1"] = PAYLOAD_BLOB
    return Dataset({"id": "robust_test", "files": [f]})


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


HASH_KINDS = ["sha256", "sha256+blob", "blob"]


# --------------------------------------------------------------------------- downloads
@pytest.mark.parametrize("hashes", HASH_KINDS)
def test_download_lands_in_the_cache_and_is_served_from_it(server, empty_cache, hashes):
    base, requests = server
    ds = _dataset(f"{base}/good/payload.bin", hashes=hashes)
    path = fetch.fetch_file(ds, ds.files[0])
    assert path == empty_cache / "robust_test" / "payload.bin" and path.read_bytes() == PAYLOAD
    assert _files(empty_cache) == [path]  # no temporary file left beside it
    assert fetch.fetch_file(ds, ds.files[0]) == path
    assert len(requests) == 1  # the second call did not touch the network


@pytest.mark.parametrize("hashes", HASH_KINDS)
def test_interrupted_download_leaves_no_partial_file(server, empty_cache, hashes):
    base, _ = server
    ds = _dataset(f"{base}/cut/payload.bin", hashes=hashes)
    with pytest.raises(DataUnavailableError) as exc:
        fetch.fetch_file(ds, ds.files[0])
    msg = str(exc.value)
    assert "'robust_test'" in msg and "payload.bin" in msg and "SASP_ATLAS_MIRROR" in msg
    assert _files(empty_cache) == []  # neither the half file nor pooch's temporary one
    good = _dataset(f"{base}/good/payload.bin", hashes=hashes)  # and a later, complete download works
    assert fetch.fetch_file(good, good.files[0]).read_bytes() == PAYLOAD


def test_download_failing_while_writing_removes_the_temporary_file(empty_cache, monkeypatch):
    """pooch's downloader writes half the file, then the connection dies (not a requests error)."""
    seen = []

    def half_then_die(self, url, output_file, pooch_obj, check_only=False):
        seen.append(Path(output_file))
        Path(output_file).write_bytes(PAYLOAD[: len(PAYLOAD) // 2])
        raise ConnectionResetError("connection reset by peer (test)")

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", half_then_die)
    ds = _dataset("https://example.org/payload.bin")
    with pytest.raises(DataUnavailableError, match="ConnectionResetError"):
        fetch.fetch_file(ds, ds.files[0])
    assert seen and seen[0].parent == empty_cache / "robust_test"  # it was written in the cache folder ...
    assert not seen[0].exists() and _files(empty_cache) == []  # ... and removed


@pytest.mark.parametrize("hashes", HASH_KINDS)
def test_download_with_wrong_bytes_is_refused_naming_both_hashes(server, empty_cache, hashes):
    base, _ = server
    ds = _dataset(f"{base}/wrong/payload.bin", hashes=hashes)
    with pytest.raises(HashMismatchError) as exc:
        fetch.fetch_file(ds, ds.files[0])
    msg = str(exc.value)
    wrong = PAYLOAD[::-1]
    if "sha256" in hashes and "blob" not in hashes:
        assert PAYLOAD_SHA in msg and hashlib.sha256(wrong).hexdigest() in msg
    else:
        assert PAYLOAD_BLOB in msg and hashlib.sha1(b"blob %d\0" % len(wrong) + wrong).hexdigest() in msg
    assert "robust_test" in msg
    assert _files(empty_cache) == []


def test_connection_refused_names_the_dataset_and_the_fix(empty_cache):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ds = _dataset(f"http://127.0.0.1:{port}/payload.bin")
    with pytest.raises(DataUnavailableError) as exc:
        fetch.fetch_file(ds, ds.files[0])
    msg = str(exc.value)
    assert "'robust_test'" in msg and "No network?" in msg
    assert "set SASP_ATLAS_MIRROR (or pass --mirror DIR) to a folder holding robust_test/payload.bin" in msg
    assert _files(empty_cache) == []


# --------------------------------------------------------------------------- corrupt mirror and cache
def _small_file(dataset_id: str = TIROSH) -> dict:
    return min(get_dataset(dataset_id).files, key=lambda f: f["size"])


def test_truncated_mirror_file_is_refused_and_never_cached(mirror, tmp_path, empty_cache, no_network):
    """A mirror file cut short (an interrupted copy) is refused with both sha256s; nothing is copied."""
    f = _small_file()
    root = tmp_path / "mirror"
    (root / TIROSH).mkdir(parents=True)
    data = (mirror / TIROSH / f["name"]).read_bytes()
    (root / TIROSH / f["name"]).write_bytes(data[: len(data) // 2])
    with pytest.raises(HashMismatchError) as exc:
        fetch.fetch_file(get_dataset(TIROSH), f, mirror=root)
    msg = str(exc.value)
    assert f["sha256"] in msg and hashlib.sha256(data[: len(data) // 2]).hexdigest() in msg
    assert "mirror file" in msg and "it was not used" in msg
    assert _files(empty_cache) == [] and no_network == []


def test_corrupt_cache_and_corrupt_mirror(mirror, tmp_path, empty_cache, no_network, caplog):
    """The bad cache file is deleted (never served), the bad mirror file refused naming both hashes,
    and neither ends up in the cache."""
    f = _small_file()
    cached = empty_cache / TIROSH / f["name"]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"stale partial file")
    root = tmp_path / "mirror"
    (root / TIROSH).mkdir(parents=True)
    (root / TIROSH / f["name"]).write_bytes(b"a different version of the file")
    with caplog.at_level(logging.WARNING, logger="sasp_atlas.sources.fetch"), pytest.raises(HashMismatchError) as exc:
        fetch.fetch_file(get_dataset(TIROSH), f, mirror=root)
    assert f["sha256"] in str(exc.value)
    assert hashlib.sha256(b"a different version of the file").hexdigest() in str(exc.value)
    assert not cached.exists() and _files(empty_cache) == []
    assert any(str(cached) in r.getMessage() and "deleting it" in r.getMessage() for r in caplog.records)


def test_corrupt_cache_no_mirror_no_network(empty_cache, no_network):
    f = _small_file()
    cached = empty_cache / TIROSH / f["name"]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"half a file")
    with pytest.raises(DataUnavailableError) as exc:
        fetch.fetch_file(get_dataset(TIROSH), f)
    assert TIROSH in str(exc.value) and not cached.exists()
    assert no_network == [f["url"]]


def test_following_the_no_network_message_works(mirror, tmp_path, empty_cache, no_network, monkeypatch):
    """The message says which folder layout to create; doing exactly that makes the fetch succeed."""
    with pytest.raises(DataUnavailableError) as exc:
        fetch.fetch_dataset(MGH)
    msg = str(exc.value)
    assert MGH in msg and "SASP_ATLAS_MIRROR" in msg
    wanted = msg.split("to a folder holding ")[1].rstrip(".")
    assert wanted == f"{MGH}/{get_dataset(MGH).files[0]['name']}"
    root = tmp_path / "my_mirror"
    for f in get_dataset(MGH).files:
        (root / MGH).mkdir(parents=True, exist_ok=True)
        os.symlink(mirror / MGH / f["name"], root / MGH / f["name"])
    monkeypatch.setenv("SASP_ATLAS_MIRROR", str(root))
    paths = fetch.fetch_dataset(MGH)
    assert all(p.parent == root / MGH for p in paths.values()) and _files(empty_cache) == []


def test_resource_without_mirror_or_network_names_it(empty_cache, no_network, monkeypatch):
    monkeypatch.delenv("SASP_ATLAS_RESOURCE_MIRROR", raising=False)
    (f,) = get_resource("hgnc_symbols").files
    with pytest.raises(DataUnavailableError) as exc:
        fetch.fetch_resource("hgnc_symbols")
    msg = str(exc.value)
    assert "'hgnc_symbols'" in msg and f["name"] in msg and "SASP_ATLAS_MIRROR" in msg
    assert _files(empty_cache) == []


def test_cli_fetch_without_network_is_an_error_not_a_traceback(empty_cache, no_network, capsys):
    from sasp_atlas.cli import main

    assert main(["fetch", WU]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: cannot fetch") and WU in err and "SASP_ATLAS_MIRROR" in err


# --------------------------------------------------------------------------- registry entries
def _raises(doc: dict, tmp_path: Path) -> str:
    p = tmp_path / "registry.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(RegistryError) as exc:
        load_registry(p)
    return str(exc.value)


def _last(doc: dict) -> dict:
    return doc["datasets"][-1]


def _last_with_files(doc: dict) -> dict:
    """The last entry that lists files (census entries list none: they read a pinned subset)."""
    return [d for d in doc["datasets"] if d.get("files")][-1]


@pytest.mark.parametrize(
    "field, value",
    [
        ("url", "https://example.org/a file.RData"),  # whitespace
        ("url", "HTTPS://example.org/a.RData"),
        ("url", "//example.org/a.RData"),  # scheme-relative
        ("name", "sub\\file.RData"),  # Windows separator
        ("name", "file name.RData"),
        ("name", ""),
    ],
)
def test_malformed_file_fields_of_the_last_entry(registry_doc, tmp_path, field, value):
    doc = copy.deepcopy(registry_doc)
    _last_with_files(doc)["files"][0][field] = value
    msg = _raises(doc, tmp_path)
    assert f"dataset entry {_last_with_files(doc)['id']!r}" in msg and f"files.0.{field}" in msg


@pytest.mark.parametrize("section", ["publication", "loader", "columns"])
def test_unknown_key_in_a_nested_section(registry_doc, tmp_path, section):
    doc = copy.deepcopy(registry_doc)
    _last(doc)[section]["colour"] = "blue"
    msg = _raises(doc, tmp_path)
    assert f"dataset entry {_last(doc)['id']!r}" in msg and "'colour'" in msg and section in msg


@pytest.mark.parametrize("field, value", [("url", "http://example.org/hgnc.rda"), ("name", "../hgnc.rda")])
def test_bad_resource_entry_names_the_resource(registry_doc, tmp_path, field, value):
    doc = copy.deepcopy(registry_doc)
    res = doc["resources"][0]
    res["files"][0][field] = value
    msg = _raises(doc, tmp_path)
    assert repr(res["id"]) in msg and field in msg
