"""Shared fixtures: a session-wide mirror/cache environment and the real datasets.

* ``SASP_ATLAS_MIRROR`` points at the shared data folder next to the project
  (``<project>/../shared/data``); it is read in place and never copied into the project.
* ``SASP_ATLAS_CACHE`` points at a pytest temporary folder for the whole session, so the
  user's cache is never read or written.
* Tests that need the mirror (or the reference gene sets) are skipped with a clear reason if
  the folder does not exist.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import ssl
import subprocess
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import yaml

TESTS_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
MIRROR = SHARED / "data"
SOURCES_YAML = MIRROR / "sources.yaml"
GENESETS = SHARED / "reference" / "genesets"
REGISTRY_YAML = PROJECT_ROOT / "data_registry.yaml"

WU = "wu2021_breast_tnbc_cid4465"
MGH = "tirosh2016_oligodendroglioma_mgh53_mgh54"
TIROSH = "tirosh2016_oligodendroglioma"
PURAM = "puram2017_hnscc_chetah_ref"
WINTERHOFF = "winterhoff2017_hgsoc_c1"
ALL_DATASETS = (WU, MGH, TIROSH, PURAM, WINTERHOFF)

_ENV_KEYS = ("SASP_ATLAS_MIRROR", "SASP_ATLAS_CACHE", "SASP_ATLAS_REGISTRY")


@pytest.fixture(scope="session", autouse=True)
def atlas_env(tmp_path_factory):
    """Point the package at the shared mirror and a session-private cache; restore afterwards."""
    saved = {k: os.environ.get(k) for k in _ENV_KEYS}
    cache = tmp_path_factory.mktemp("sasp_atlas_cache")
    os.environ["SASP_ATLAS_MIRROR"] = str(MIRROR)
    os.environ["SASP_ATLAS_CACHE"] = str(cache)
    os.environ.pop("SASP_ATLAS_REGISTRY", None)  # always test the project's own registry
    try:
        yield {"mirror": MIRROR, "cache": cache}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def mirror(atlas_env) -> Path:
    """The shared data mirror; skips the test if it is not there."""
    if not MIRROR.is_dir():
        pytest.skip(f"shared data mirror not found at {MIRROR} (needed for real-data tests)")
    return MIRROR


@pytest.fixture(scope="session")
def sources(mirror) -> dict:
    """``sources.yaml`` of the mirror as ``{dataset id: entry}``: its ``datasets`` plus its
    ``small_cancer_extra`` entries in the same shape (see :func:`_extra_source`)."""
    if not SOURCES_YAML.is_file():
        pytest.skip(f"{SOURCES_YAML} not found (needed to check the registry against the mirror)")
    doc = yaml.safe_load(SOURCES_YAML.read_text())
    return {d["id"]: d for d in doc["datasets"]} | {
        d["id"]: _extra_source(d) for d in doc.get("small_cancer_extra") or []
    }


def _extra_source(d: dict) -> dict:
    """A ``small_cancer_extra`` record in the shape of a ``datasets`` record: each file's ``raw_url``
    from the repository, commit and path, ``size_bytes``, the DOI read from the publication text.
    These records carry no ``verified`` shape block (the registry's ``expected`` is tested instead)."""
    doi = re.search(r"doi:(\S+?)[\s,;)]", d["publication"] + " ")
    files = [
        {
            **f,
            "raw_url": f"https://raw.githubusercontent.com/{d['source_repo']}/{d['commit']}/{f['path']}",
            "size_bytes": f["size"],
        }
        for f in d["files"]
    ]
    return {**d, "publication": {"doi": doi.group(1) if doi else None}, "files": files}


@pytest.fixture(scope="session")
def genesets_dir() -> Path:
    if not GENESETS.is_dir():
        pytest.skip(f"reference gene sets not found at {GENESETS}")
    return GENESETS


@pytest.fixture(scope="session")
def registry_doc() -> dict:
    """The raw parsed project registry (tests deep-copy it before changing anything)."""
    return yaml.safe_load(REGISTRY_YAML.read_text())


def source_file(sources: dict, dataset_id: str, name: str) -> dict:
    """The sources.yaml record of file ``name`` of ``dataset_id``."""
    for f in sources[dataset_id]["files"]:
        if Path(f["path"]).name == name:
            return f
    raise AssertionError(f"sources.yaml has no file {name!r} for {dataset_id!r}")


def _load(dataset_id: str):
    import sasp_atlas

    return sasp_atlas.load_dataset(dataset_id)


@pytest.fixture(scope="session")
def wu(mirror):
    return _load(WU)


@pytest.fixture(scope="session")
def mgh(mirror):
    return _load(MGH)


@pytest.fixture(scope="session")
def tirosh(mirror):
    return _load(TIROSH)


@pytest.fixture(scope="session")
def puram(mirror):
    return _load(PURAM)


@pytest.fixture(scope="session")
def winterhoff(mirror):
    return _load(WINTERHOFF)


@pytest.fixture(scope="session")
def datasets(wu, mgh, tirosh, puram, winterhoff) -> dict:
    return {WU: wu, MGH: mgh, TIROSH: tirosh, PURAM: puram, WINTERHOFF: winterhoff}


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    """A fresh, empty cache folder for one test (the session cache is restored afterwards)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("SASP_ATLAS_CACHE", str(cache))
    return cache


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt fails like a machine without network; records the attempted URLs."""
    import pooch

    calls = []

    def retrieve(url, *args, **kwargs):
        calls.append(url)
        raise ConnectionError(f"network is unreachable (test): {url}")

    monkeypatch.setattr(pooch, "retrieve", retrieve)
    return calls


def files_in(folder: Path) -> list[Path]:
    """Every file below ``folder``."""
    return [p for p in folder.rglob("*") if p.is_file()]


def write_registry(doc: dict, tmp_path: Path) -> Path:
    """Write a (modified) registry document to ``tmp_path/registry.yaml``."""
    p = tmp_path / "registry.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def registry_entry(doc: dict, dataset_id: str) -> dict:
    """The dataset entry ``dataset_id`` of a registry document (to modify in place)."""
    return next(d for d in doc["datasets"] if d["id"] == dataset_id)


# --------------------------------------------------------------------------- R files written with rdata
class RMatrix:
    """An R dense numeric matrix to write (``values`` genes x cells, with dimnames)."""

    def __init__(self, values, rownames, colnames):
        self.values, self.rownames, self.colnames = values, rownames, colnames


class DgCMatrix:
    """An R ``dgCMatrix`` to write (any matrix-like ``values``, stored column-compressed)."""

    def __init__(self, values, rownames, colnames):
        self.csc, self.rownames, self.colnames = sp.csc_matrix(values), rownames, colnames


@pytest.fixture
def write_rda(monkeypatch):
    """``write_rda(path, {name: object})`` with rdata's writer, extended for the two R matrix classes.

    A dense matrix is a REAL vector with ``dim`` and ``dimnames``; a ``dgCMatrix`` is an S4 object
    (serialised as an S4SXP header followed by its attribute pairlist: i, p, Dim, Dimnames, x,
    factors, class), which rdata can read but not yet write, so the unparser learns that one type.
    """
    rdata = pytest.importorskip("rdata")
    from rdata.conversion.to_r import DEFAULT_CLASS_MAP, build_r_object
    from rdata.parser import RObjectType
    from rdata.unparser._unparser import Unparser, pack_r_object_info

    original = Unparser.unparse_r_object

    def unparse(self, obj):
        if obj.info.type == RObjectType.S4:
            self.unparse_int(pack_r_object_info(obj.info))
            self.unparse_r_object(obj.attributes)
            return None
        return original(self, obj)

    monkeypatch.setattr(Unparser, "unparse_r_object", unparse)

    def dense(m, conv):
        attrs = conv.convert_to_r_attributes(
            {"dim": np.array(m.values.shape, dtype=np.int32), "dimnames": [np.array(m.rownames), np.array(m.colnames)]}
        )
        return build_r_object(RObjectType.REAL, value=np.ravel(m.values.astype(float), order="F"), attributes=attrs)

    def dgc(m, conv):
        c = m.csc
        attrs = conv.convert_to_r_attributes(
            {
                "i": c.indices.astype(np.int32),
                "p": c.indptr.astype(np.int32),
                "Dim": np.array(c.shape, dtype=np.int32),
                "Dimnames": [np.array(m.rownames), np.array(m.colnames)],
                "x": c.data.astype(float),
                "factors": [],
                "class": np.array(["dgCMatrix"]),
            }
        )
        return build_r_object(RObjectType.S4, is_object=True, attributes=attrs)

    cmap = {**DEFAULT_CLASS_MAP, RMatrix: dense, DgCMatrix: dgc}

    def write(path, objects):
        rdata.write_rda(path, objects, constructor_dict=cmap)
        return path

    return write


# --------------------------------------------------------------------------- a local HTTPS server
@pytest.fixture
def https_server(tmp_path_factory, monkeypatch):
    """Serve a folder over https://127.0.0.1:<port>/ with a throw-away self-signed certificate that
    requests (and so pooch) trusts through REQUESTS_CA_BUNDLE; records the requested paths."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not available to make a test certificate")
    root = tmp_path_factory.mktemp("served")
    certs = tmp_path_factory.mktemp("certs")
    cert, key = certs / "cert.pem", certs / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    requests_seen = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requests_seen.append(self.path)
            return super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    try:
        yield {"root": root, "url": f"https://127.0.0.1:{server.server_address[1]}", "requests": requests_seen}
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def float32_flip() -> sp.csr_matrix:
    """Two genes that scipy's float32 row-order sums rank the other way round from the exact sums:
    gene 0 = 4000 x 0.1f, gene 1 one value between gene 0's float32 sum and its exact sum."""
    n = 4000
    tenth = np.float32(0.1)
    f32 = np.float32(0)
    for _ in range(n):
        f32 = np.float32(f32 + tenth)
    exact = n * np.float64(tenth)
    between = np.float32((np.float64(f32) + exact) / 2)
    assert min(f32, exact) < between < max(f32, exact)
    rows = np.concatenate([np.arange(n), [0]])
    cols = np.concatenate([np.zeros(n, int), [1]])
    vals = np.concatenate([np.full(n, tenth), [between]]).astype(np.float32)
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, 2))
