"""The full profile: registry entries for the larger public datasets (pinned https URLs, every file
with a sha256 or a git blob id, facts as in remote_candidates.yaml), the `unverified:` section that is
never fetched, `sasp-atlas list --profile full`, `sasp-atlas registry pin` (offline message; the pin
logic against a local HTTPS server), and the build pre-flight that reports unreachable datasets and
goes on with the others."""

from __future__ import annotations

import copy
import difflib
import os
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ALL_DATASETS, MIRROR, REGISTRY_YAML, SOURCES_YAML, files_in
from conftest import registry_entry as _entry
from conftest import write_registry as _write

from sasp_atlas.sources import fetch, registry
from sasp_atlas.sources.fetch import DataUnavailableError, HashMismatchError
from sasp_atlas.sources.registry import RegistryError, load_registry

CANDIDATES_YAML = MIRROR / "remote_candidates.yaml"
TNBC1 = "gao2021_tnbc1_xclone"
PDAC = "moncada2020_pdac_card"


def full_entries() -> list[registry.Dataset]:
    return [d for d in load_registry(REGISTRY_YAML) if d["profile"] == "full"]


@pytest.fixture(scope="module")
def candidates() -> dict:
    if not CANDIDATES_YAML.is_file():
        pytest.skip(f"{CANDIDATES_YAML} not found")
    return {c["id"]: c for c in yaml.safe_load(CANDIDATES_YAML.read_text())["candidates"]}


# --------------------------------------------------------------------------- the registry entries
def test_at_least_ten_full_entries_covering_seven_cancer_types():
    full = full_entries()
    assert len(full) >= 10
    kinds = {d["cancer_type_ontology_id"] for d in registry.list_datasets("full")}
    assert len(kinds) >= 7
    shorts = {d["cancer_type_short"] for d in registry.list_datasets("full")}
    assert {"TNBC", "ODG", "HNSCC"} <= shorts
    assert {d.id for d in registry.list_datasets("core")} == set(ALL_DATASETS)  # core is unchanged


def test_full_files_are_https_and_carry_a_published_hash():
    """Every file has a published hash, except those of entries whose trust level says the host
    publishes none (pinned on first download), which say so in their note."""
    for d in full_entries():
        for f in d.files:
            assert f["url"].startswith("https://"), (d.id, f["url"])
            if registry.trust_level(d) == "pinned on first download":
                assert "registry pin" in f["note"] and not f.get("git_blob_sha1"), (d.id, f["name"])
                continue
            assert f.get("sha256") or f.get("git_blob_sha1"), (d.id, f["name"])
            assert f["url"].rsplit("/", 1)[1] == f["name"]
            if "sha256" not in f:
                assert "note" in f  # says why (not published) and how it is verified


def _labels_only() -> dict:
    """``sources.yaml: labels_only`` of the shared data: label files of larger datasets (matrices remote)."""
    if not SOURCES_YAML.is_file():
        return {}
    return {e["id"]: e for e in yaml.safe_load(SOURCES_YAML.read_text()).get("labels_only", [])}


def test_labels_only_entries_agree_with_the_shared_sources():
    """Entries taken from sources.yaml (labels_only) carry exactly its label-file URL, sha256, size and
    blob id, and the matrix blob id and commit named in its matrix_remote note."""
    labels_only = _labels_only()
    if not labels_only:
        pytest.skip(f"{SOURCES_YAML} not found")
    d = registry.get_dataset("lee2020_crc_smc_ecotyper")
    src = labels_only[d.id]
    label = next(f for f in d.files if f["name"] == Path(src["file"]).name)
    assert (label["url"], label["sha256"], label["size"], label["git_blob_sha1"]) == (
        src["raw_url"],
        src["sha256"],
        src["size"],
        src["git_blob_sha1"],
    )
    (matrix,) = [f for f in d.files if f is not label]
    assert matrix["git_blob_sha1"] in src["matrix_remote"] and Path(matrix["url"]).name in src["matrix_remote"]
    assert matrix["url"].rsplit("/", 2)[0] == src["raw_url"].rsplit("/", 2)[0]  # same repository commit
    assert d["expected"]["n_cells"] == 13780 and d["expected"]["n_donors"] == 23


def test_full_entries_agree_with_remote_candidates(candidates):
    """URLs, blob ids, sha256 and sizes are exactly those of remote_candidates.yaml."""
    for d in full_entries():
        if d.id not in candidates and d.id in _labels_only():
            continue  # checked against sources.yaml above
        if "found_in" in d.entry:  # not a remote candidate: says where it was found, read only once pinned
            assert "candidate" not in d.entry and registry.trust_level(d) == "pinned on first download", d.id
            continue
        cand = candidates[d.get("candidate", d.id)]
        by_url = {f["url"]: f for f in cand["files"]}
        if registry.is_census_entry(d):
            # read through the CELLxGENE Census, no file: the dataset version is the uuid of the candidate's h5ad URL
            (url,) = by_url
            assert d.files == [] and registry.trust_level(d) == "pinned census subset", d.id
            assert (
                url == f"https://datasets.cellxgene.cziscience.com/{d['loader']['options']['dataset_version_id']}.h5ad"
            )
            disease = d["loader"]["options"]["obs_value_filter"].split("'")[1]
            assert disease in cand["cancer_types"], d.id  # the label the candidate lists
            assert "Route: the CELLxGENE Census LTS release" in d["notes"] and "does not fit" in d["notes"], d.id
            assert d["publication"]["doi"] == cand["citation_doi"] or "DOI from" in d["notes"], d.id
            continue
        assert {f["url"] for f in d.files} == set(by_url), d.id
        for f in d.files:
            c = by_url[f["url"]]
            assert f.get("git_blob_sha1") == c["checksums"].get("git_blob_sha1"), (d.id, f["name"])
            assert f.get("sha256") == c["checksums"].get("sha256"), (d.id, f["name"])
            assert f.get("size") == c.get("size_bytes"), (d.id, f["name"])
        if cand.get("n_cells") and "expected" in d.entry and "n_cells" in d["expected"]:
            assert d["expected"]["n_cells"] == cand["n_cells"], d.id
        if cand["citation_doi"] is None:  # the candidate names none: the entry says where its DOI comes from
            assert "DOI from" in d["notes"], d.id
        else:
            assert d["publication"]["doi"] == cand["citation_doi"], d.id


def test_every_candidate_is_a_full_entry_or_unverified(candidates):
    full = {d.get("candidate", d.id) for d in full_entries() if "found_in" not in d.entry} - (
        set(_labels_only()) - set(candidates)
    )
    unverified = {u["id"] for u in registry.list_unverified()}
    assert full | unverified == set(candidates)
    assert not full & unverified


def test_unverified_entries_have_no_published_checksum_or_say_why(candidates):
    for u in registry.list_unverified():
        cand = candidates[u["id"]]
        urls = {f["url"] for f in cand["files"]}
        assert u["url"] in urls
        has_checksum = any(
            (f.get("checksums") or {}).get(k) for f in cand["files"] for k in ("sha256", "md5", "git_blob_sha1")
        )
        if has_checksum:  # listed for another reason, which the entry must state
            assert "publication" in u["reason"], u["id"]
        else:
            assert "checksum" in u["reason"] or "md5" in u["reason"], u["id"]


def test_unverified_are_never_datasets():
    ids = {u["id"] for u in registry.list_unverified()}
    assert len(ids) >= 10
    assert not ids & {d.id for d in registry.list_datasets("full")}
    for i in ids:
        with pytest.raises(KeyError):
            registry.get_dataset(i)
    assert registry.get_unverified("zuani2024_nsclc_ebi")["url"].startswith("ftp://")
    with pytest.raises(KeyError, match="no_such"):
        registry.get_unverified("no_such")


def test_crosswalk_blocks_are_registry_datasets():
    from sasp_atlas.data.harmonise import crosswalk as _crosswalk

    ids = {d.id for d in registry.list_datasets("full")}
    assert set(_crosswalk()["datasets"]) <= ids
    assert {"tirosh2016_melanoma_full", "filbin2018_h3k27m_glioma", PDAC, "neftel2019_gbm_infercna"} <= set(
        _crosswalk()["datasets"]
    )


# --------------------------------------------------------------------------- schema rules
def _doc() -> dict:
    return yaml.safe_load(REGISTRY_YAML.read_text())


def test_sha256_is_optional_when_a_blob_id_is_given(tmp_path):
    doc = _doc()
    del _entry(doc, ALL_DATASETS[0])["files"][0]["sha256"]  # core file, blob id only: valid
    assert load_registry(_write(doc, tmp_path))


def test_a_file_needs_sha256_or_blob_id(tmp_path):
    doc = _doc()
    f = _entry(doc, TNBC1)["files"][0]
    del f["git_blob_sha1"]
    with pytest.raises(RegistryError) as exc:
        load_registry(_write(doc, tmp_path))
    assert TNBC1 in str(exc.value) and "files" in str(exc.value)


def test_size_may_be_missing_for_full_files_only(tmp_path):
    doc = _doc()
    assert "size" not in _entry(doc, TNBC1)["files"][0]
    del _entry(doc, ALL_DATASETS[0])["files"][0]["size"]
    with pytest.raises(RegistryError) as exc:
        load_registry(_write(doc, tmp_path))
    assert ALL_DATASETS[0] in str(exc.value) and "size" in str(exc.value)


def test_unverified_schema(tmp_path):
    doc = _doc()
    doc["unverified"][0]["sha256"] = "0" * 64
    with pytest.raises(RegistryError, match="sha256"):
        load_registry(_write(doc, tmp_path))
    doc = _doc()
    doc["unverified"][0]["id"] = ALL_DATASETS[0]
    with pytest.raises(RegistryError, match="duplicated"):
        load_registry(_write(doc, tmp_path))
    doc = _doc()
    del doc["unverified"][0]["reason"]
    with pytest.raises(RegistryError, match="reason"):
        load_registry(_write(doc, tmp_path))


# --------------------------------------------------------------------------- sasp-atlas list
def test_cli_list_full_shows_every_entry(capsys, monkeypatch):
    from sasp_atlas.cli import main

    monkeypatch.setenv("COLUMNS", "400")
    assert main(["list", "--profile", "full"]) == 0
    out = capsys.readouterr()
    for d in registry.list_datasets("full"):
        assert d.id in out.out
    assert "5,789" in out.out and "unknown" in out.out  # cells from expected.n_cells, else unknown
    assert "unpinned" in out.out and "Moncada R" in out.out
    assert "never fetched" in out.err and "unverified_sources" in out.err


PAYLOAD = bytes(range(256)) * 40 + b"sasp-atlas pin test\n"
OLD_URL = (
    "https://raw.githubusercontent.com/Rongtingting/xclone-data/87914f4658cd702beff7992d26de1ecb3697fd5d/"
    "TNBC1_scRNA/TNBC1_RDR_adata_demo.h5ad"
)
OLD_BLOB = "f31f3e44f09cf453bd6c1a300e455743a8c0a937"
NAME = "TNBC1_RDR_adata_demo.h5ad"


def _blob(data: bytes) -> str:
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _registry_copy(tmp_path: Path, url: str, blob: str) -> Path:
    """The project registry (comments and all) with the TNBC1 file's URL and blob id replaced."""
    text = REGISTRY_YAML.read_text()
    assert text.count(OLD_URL) == 1 and text.count(OLD_BLOB) == 1
    p = tmp_path / "registry_copy.yaml"
    p.write_text(text.replace(OLD_URL, url).replace(OLD_BLOB, blob))
    return p


def test_blob_only_file_downloads_verified_over_https(https_server, empty_cache, monkeypatch):
    """Real pooch, real TLS: a blob-only file is downloaded, verified and moved into the cache."""
    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    (https_server["root"] / NAME).write_bytes(PAYLOAD)
    ds = registry.get_dataset(
        TNBC1, _registry_copy(Path(empty_cache.parent), f"{https_server['url']}/{NAME}", _blob(PAYLOAD))
    )
    p = fetch.fetch_file(ds, ds.files[0])
    assert p == empty_cache / TNBC1 / NAME and p.read_bytes() == PAYLOAD
    assert files_in(empty_cache) == [p]

    p.unlink()  # a wrong blob id: refused, nothing left in the cache
    bad = dict(ds.files[0], git_blob_sha1="f" * 40)
    with pytest.raises(HashMismatchError) as exc:
        fetch.fetch_file(ds, bad)
    assert "f" * 40 in str(exc.value) and _blob(PAYLOAD) in str(exc.value)
    assert files_in(empty_cache) == []


# --------------------------------------------------------------------------- sasp-atlas registry pin
def test_pin_writes_sha256_and_size_into_the_registry(https_server, empty_cache, tmp_path, monkeypatch):
    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    (https_server["root"] / NAME).write_bytes(PAYLOAD)
    reg = _registry_copy(tmp_path, f"{https_server['url']}/{NAME}", _blob(PAYLOAD))
    before = reg.read_text()

    records = fetch.pin_dataset(TNBC1, registry=reg)
    sha = fetch.hashlib.sha256(PAYLOAD).hexdigest()
    assert records == [
        {"name": NAME, "status": "pinned (verified by the published git blob id)", "sha256": sha, "size": len(PAYLOAD)}
    ]
    assert https_server["requests"] == [f"/{NAME}"]
    after = reg.read_text()
    # a targeted edit: two lines added, the note replaced, everything else (comments too) unchanged
    diff = [ln for ln in difflib.ndiff(before.splitlines(), after.splitlines()) if ln[:1] in "+-"]
    assert [ln[:1] for ln in diff] == ["+", "+", "-", "+"]
    assert diff[0][2:].strip() == f"sha256: {sha}" and diff[1][2:].strip() == f"size: {len(PAYLOAD)}"
    assert diff[2][2:] == '        note: "size and sha256 not published (>= 4 MiB); verified by git blob id"'
    assert diff[3][2:].strip().startswith('note: "sha256 and size recorded by `sasp-atlas registry pin`')
    f = registry.get_dataset(TNBC1, reg).files[0]
    assert (f["sha256"], f["size"], f["git_blob_sha1"]) == (sha, len(PAYLOAD), _blob(PAYLOAD))
    assert (empty_cache / TNBC1 / NAME).read_bytes() == PAYLOAD  # downloaded once, kept in the cache

    # pinned files are not downloaded again
    again = fetch.pin_dataset(TNBC1, registry=reg)
    assert again[0]["status"] == "already pinned" and https_server["requests"] == [f"/{NAME}"]
    assert reg.read_text() == after


def test_pin_refuses_a_wrong_blob_id(https_server, empty_cache, tmp_path, monkeypatch):
    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    (https_server["root"] / NAME).write_bytes(PAYLOAD)
    reg = _registry_copy(tmp_path, f"{https_server['url']}/{NAME}", "e" * 40)
    before = reg.read_text()
    with pytest.raises(HashMismatchError) as exc:
        fetch.pin_dataset(TNBC1, registry=reg)
    assert "e" * 40 in str(exc.value) and _blob(PAYLOAD) in str(exc.value)
    assert reg.read_text() == before and files_in(empty_cache) == []


def test_pin_from_a_mirror_needs_no_network(empty_cache, tmp_path, no_network):
    mirror = tmp_path / "mirror"
    (mirror / TNBC1).mkdir(parents=True)
    (mirror / TNBC1 / NAME).write_bytes(PAYLOAD)
    reg = _registry_copy(tmp_path, "https://127.0.0.1:9/" + NAME, _blob(PAYLOAD))
    records = fetch.pin_dataset(TNBC1, registry=reg, mirror=mirror)
    assert records[0]["size"] == len(PAYLOAD) and no_network == []
    assert registry.get_dataset(TNBC1, reg).files[0]["sha256"] == fetch.hashlib.sha256(PAYLOAD).hexdigest()


def test_pin_offline_is_a_clear_data_unavailable_error(empty_cache, tmp_path, monkeypatch, capsys):
    """No network (here: a closed local port, refused at once) and no mirror: a clear message."""
    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    reg = _registry_copy(tmp_path, "https://127.0.0.1:9/" + NAME, _blob(PAYLOAD))
    before = reg.read_text()
    with pytest.raises(DataUnavailableError) as exc:
        fetch.pin_dataset(TNBC1, registry=reg)
    msg = str(exc.value)
    assert "registry pin gao2021_tnbc1_xclone" in msg and "needs internet access" in msg
    assert f"--mirror DIR with {TNBC1}/<file name>" in msg and NAME in msg
    assert reg.read_text() == before and files_in(empty_cache) == []

    from sasp_atlas.cli import main

    assert main(["registry", "pin", TNBC1, "--registry", str(reg)]) == 1
    assert "needs internet access" in capsys.readouterr().err


def test_cli_registry_pin(https_server, empty_cache, tmp_path, monkeypatch, capsys):
    from sasp_atlas.cli import main

    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    monkeypatch.setenv("COLUMNS", "300")
    (https_server["root"] / NAME).write_bytes(PAYLOAD)
    reg = _registry_copy(tmp_path, f"{https_server['url']}/{NAME}", _blob(PAYLOAD))
    assert main(["registry", "pin", TNBC1, "--registry", str(reg)]) == 0
    out = capsys.readouterr()
    assert fetch.hashlib.sha256(PAYLOAD).hexdigest() in out.out and "pinned" in out.err


def test_pin_registry_text_keeps_everything_else():
    text = REGISTRY_YAML.read_text()
    pins = {"bt771.rda": {"sha256": "a" * 64, "size": 5}, "refCells.rda": {"sha256": "b" * 64, "size": 7}}
    new = fetch.pin_registry_text(text, "neftel2019_gbm_infercna", pins)
    doc = yaml.safe_load(new)
    registry.validate_registry(doc)
    files = {f["name"]: f for f in _entry(doc, "neftel2019_gbm_infercna")["files"]}
    assert (files["bt771.rda"]["sha256"], files["bt771.rda"]["size"]) == ("a" * 64, 5)
    assert (files["refCells.rda"]["sha256"], files["refCells.rda"]["size"]) == ("b" * 64, 7)  # replaced in place
    assert "sha256" not in files["mgh125.rda"]
    old_doc = yaml.safe_load(text)
    assert [d for d in doc["datasets"] if d["id"] != "neftel2019_gbm_infercna"] == [
        d for d in old_doc["datasets"] if d["id"] != "neftel2019_gbm_infercna"
    ]
    assert len(new.splitlines()) == len(text.splitlines()) + 2  # bt771 gained two lines; refCells replaced two
    with pytest.raises(KeyError, match="no_such_dataset"):
        fetch.pin_registry_text(text, "no_such_dataset", pins)
    with pytest.raises(KeyError, match="nope.rda"):
        fetch.pin_registry_text(text, "neftel2019_gbm_infercna", {"nope.rda": {"sha256": "c" * 64, "size": 1}})


# --------------------------------------------------------------------------- build pre-flight
def test_preflight_full_offline_reports_and_keeps_the_core(mirror, empty_cache, no_network):
    from sasp_atlas.atlas.build import preflight
    from sasp_atlas.site.book import print_unavailable_report

    available, problems = preflight(registry.list_datasets("full"), profile="full")
    assert [d.id for d in available] == list(ALL_DATASETS)
    assert {p["dataset"].id for p in problems} == {d.id for d in full_entries()}
    unpinned = {d.id for d in full_entries() if registry.trust_level(d) == "pinned on first download"} | {
        d.id for d in full_entries() if registry.is_census_entry(d) and registry.census_pin(d) is None
    }
    assert unpinned and all(
        p["status"] == ("not pinned" if p["dataset"].id in unpinned else "not reachable") for p in problems
    )
    # every unreachable file was tried once at its registry URL, never an unverified source, never an unpinned one
    tried = set(no_network)
    assert tried == {
        f["url"]
        for d in full_entries()
        if d.id not in unpinned
        for f in d.files
        if not (mirror / d.id / f["name"]).exists()
    }
    unverified_urls = {u["url"] for u in registry.list_unverified()}
    assert not tried & unverified_urls
    assert files_in(empty_cache) == []

    buf = StringIO()
    from rich.console import Console

    print_unavailable_report(problems, None, Console(file=buf, width=400), built=len(available))
    report = buf.getvalue()
    for d in full_entries():
        assert d.id in report
    assert f"copy the missing file(s) into {mirror}/{PDAC}/" in report  # the mirror layout, real mirror path
    assert "missing: sc_count.RData" in report
    for d in unpinned:  # the end-of-build table says how to pin them
        assert f"run `sasp-atlas registry pin {d}`" in report
    assert f"Pages were built for the {len(ALL_DATASETS)} available dataset(s)" in report


def test_preflight_core_still_stops_on_a_missing_dataset(empty_cache, tmp_path, no_network):
    from sasp_atlas.atlas.build import preflight

    with pytest.raises(DataUnavailableError):
        preflight(registry.list_datasets("core"), profile="core", mirror=tmp_path / "empty")


def test_preflight_with_nothing_available_raises_with_the_report(empty_cache, tmp_path, no_network):
    from sasp_atlas.atlas.build import preflight

    with pytest.raises(DataUnavailableError) as exc:
        preflight(full_entries(), profile="full", mirror=tmp_path / "empty")
    msg = str(exc.value)
    assert "no dataset of profile 'full' is available" in msg and f"{tmp_path / 'empty'}/{TNBC1}/" in msg
    assert f"missing: {NAME}" in msg


@pytest.fixture
def full_mirror(mirror, tmp_path, monkeypatch, empty_cache):
    """A mirror with the core datasets, a CARD-layout PDAC dataset and a TNBC1-like h5ad built here,
    and a registry copy whose PDAC/TNBC1 files carry these files' blob ids (no sha256, no size)."""
    import anndata as ad
    import rdata

    root = tmp_path / "mirror"
    root.mkdir()
    for d in ALL_DATASETS:
        (root / d).symlink_to(mirror / d)
    rng = np.random.default_rng(3)
    genes = ["IL6", "CXCL8", "CCL2", "MMP1", "SERPINE1", "TIMP1", "CDKN1A", "VIM", "KRT19", "PTPRC", "ACTB", "GAPDH"]
    labels = [
        "Cancer_clone_A",
        "Cancer_clone_B",
        "Ductal_terminal_ductal_like",
        "Fibroblasts",
        "Macrophages_A",
        "T_cells_&_NK_cells",
        "Endothelial_cells",
        "RBCs",
    ]
    cells = [f"Cell{i + 1}" for i in range(64)]
    counts = rng.poisson(2.0, (len(genes), len(cells))).astype(np.float64)
    (root / PDAC).mkdir()
    # dense genes x cells matrix with dimnames (the reader also takes a dgCMatrix, see test_readers.py)
    from rdata.conversion.to_r import DEFAULT_CLASS_MAP, build_r_object
    from rdata.parser import RObjectType

    class M:
        pass

    def dense(m, conv):
        attrs = conv.convert_to_r_attributes(
            {"dim": np.array(counts.shape, dtype=np.int32), "dimnames": [np.array(genes), np.array(cells)]}
        )
        return build_r_object(RObjectType.REAL, value=np.ravel(counts, order="F"), attributes=attrs)

    rdata.write_rda(root / PDAC / "sc_count.RData", {"sc_count": M()}, constructor_dict={**DEFAULT_CLASS_MAP, M: dense})
    meta = pd.DataFrame(
        {
            "cellID": cells,
            "cellType": [labels[i % len(labels)] for i in range(len(cells))],
            "sampleInfo": ["sample1"] * 32 + ["sample2"] * 32,
        },
        index=cells,
    )
    rdata.write_rda(root / PDAC / "sc_meta.RData", {"sc_meta": meta})
    (root / TNBC1).mkdir()
    a = ad.AnnData(
        rng.poisson(1.0, (20, len(genes))).astype(np.float32),
        obs=pd.DataFrame({"cluster": ["1"] * 20}, index=[f"b{i}" for i in range(20)]),
        var=pd.DataFrame(index=genes),
    )
    a.write_h5ad(root / TNBC1 / NAME)  # no 'cluster.pred' column: the documented guess fails here

    doc = yaml.safe_load(REGISTRY_YAML.read_text())
    for did in (PDAC, TNBC1):
        for f in _entry(doc, did)["files"]:
            f.pop("sha256", None)
            f.pop("size", None)
            f["git_blob_sha1"] = fetch.git_blob_sha1(root / did / f["name"])
    reg = tmp_path / "registry_full_test.yaml"
    reg.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv("SASP_ATLAS_REGISTRY", str(reg))
    if (MIRROR.parent / "reference" / "raw").is_dir():
        monkeypatch.setenv("SASP_ATLAS_RESOURCE_MIRROR", str(MIRROR.parent / "reference" / "raw"))
    return root


@pytest.mark.slow
def test_preflight_builds_what_it_has(full_mirror, tmp_path, no_network, empty_cache):
    """Available full datasets go on (read once, labels checked against the crosswalk); a full
    dataset whose documented-guess loader options do not fit the file is reported, not fatal."""
    from sasp_atlas.atlas.build import preflight
    from sasp_atlas.data.load import _cache_key, load_dataset
    from sasp_atlas.site import pages

    results = tmp_path / "results"
    available, problems = preflight(
        registry.list_datasets("full"), profile="full", mirror=full_mirror, resolve_dir=results
    )
    assert [d.id for d in available] == [*ALL_DATASETS, PDAC]
    status = {p["dataset"].id: p for p in problems}
    assert status[TNBC1]["status"] == "unreadable" and "cluster.pred" in status[TNBC1]["detail"]
    assert all(p["status"] in ("not reachable", "not pinned") for i, p in status.items() if i != TNBC1)

    # the pages need sha256 and size: a build-local registry copy got them from the verified files
    assert os.environ["SASP_ATLAS_REGISTRY"] == str(results / "registry.resolved.yaml")
    pdac = next(d for d in available if d.id == PDAC)
    assert pdac.entry == registry.get_dataset(PDAC).entry
    for f in pdac.files:
        assert f["sha256"] == fetch.file_sha256(full_mirror / PDAC / f["name"])
        assert f["size"] == (full_mirror / PDAC / f["name"]).stat().st_size
    assert "sc_count.RData" in pages.provenance_markdown(pdac, "raw counts -> ...")
    assert registry.get_dataset(ALL_DATASETS[0]).entry == copy.deepcopy(
        next(d for d in load_registry(REGISTRY_YAML) if d.id == ALL_DATASETS[0]).entry
    )
    # the pre-flight read filled the cache entry the page kernels will look up
    assert (empty_cache / PDAC / f"converted-{_cache_key(pdac)}.h5ad").is_file()

    attempts = len(no_network)  # the unreachable datasets were tried once each, above
    adata = load_dataset(PDAC, mirror=full_mirror)
    assert adata.n_obs == 64 and set(adata.obs["sample"]) == {"sample1", "sample2"}
    assert adata.obs["malignant"].sum() == 16  # Cancer_clone_A/B (prefix rule)
    assert adata.uns["provenance"]["files"]["sc_meta.RData"]["sha256"] == pdac.files[1]["sha256"]
    assert len(no_network) == attempts  # served from the converted cache, no download


@pytest.mark.slow
def test_a_blob_only_dataset_loads_without_a_resolved_registry(full_mirror, no_network):
    """load_dataset on an entry whose files have a blob id only (cache key and provenance use it)."""
    from sasp_atlas.data.load import load_dataset

    adata = load_dataset(PDAC, mirror=full_mirror)
    files = adata.uns["provenance"]["files"]
    assert set(files) == {"sc_count.RData", "sc_meta.RData"}
    assert files["sc_meta.RData"]["git_blob_sha1"] == fetch.git_blob_sha1(full_mirror / PDAC / "sc_meta.RData")
    assert "sha256" not in files["sc_meta.RData"] and no_network == []


def test_cli_build_ends_with_the_report(monkeypatch, capsys):
    """`sasp-atlas build --profile full`: the table of left-out datasets is the last thing printed."""
    from sasp_atlas.cli import main
    from sasp_atlas.site import book  # the CLI loads build from here when the command runs

    def fake_build(*, report=None, **kwargs):
        assert kwargs["profile"] == "full" and report == []
        report.append(
            {
                "dataset": registry.get_dataset(PDAC),
                "status": "not reachable",
                "missing": registry.get_dataset(PDAC).files,
                "detail": "",
            }
        )
        return {"page:wu2021_breast_tnbc_cid4465": 1.0, "total": 2.0}

    monkeypatch.setattr(book, "build", fake_build)
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["build", "--profile", "full", "--mirror", "/nowhere", "--no-book"]) == 0
    err = capsys.readouterr().err
    assert err.index("atlas built") < err.index("datasets left out of this build (1)")
    assert "copy the missing file(s) into /nowhere/moncada2020_pdac_card/" in err
    assert err.rstrip().endswith("Pages were built for the 1 available dataset(s).")


# --------------------------------------------------------------------------- trust level: pinned on first download
def _first_download_registry(tmp_path: Path, url: str) -> Path:
    """A registry copy where TNBC1 is an entry whose host publishes no hash (trust: pinned on first download)."""
    doc = yaml.safe_load(REGISTRY_YAML.read_text())
    entry = _entry(doc, TNBC1)
    entry["trust"] = "pinned on first download"
    (f,) = entry["files"]
    for key in ("sha256", "size", "git_blob_sha1"):
        f.pop(key, None)
    f["url"] = url
    f["note"] = "no hash published by the host: run sasp-atlas registry pin"
    reg = tmp_path / "registry_first_download.yaml"
    reg.write_text(yaml.safe_dump(doc, sort_keys=False))
    return reg


def test_pinned_on_first_download_entry_lifecycle(https_server, empty_cache, tmp_path, monkeypatch):
    """Unpinned: never read, skipped by the full pre-flight with the command that fixes it. `registry pin`
    downloads once and records sha256, size, date and URL. Later: a different file at that URL is refused
    by name and never cached."""
    from sasp_atlas.atlas.build import how_to_provide, preflight

    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    url = f"{https_server['url']}/{NAME}"
    (https_server["root"] / NAME).write_bytes(PAYLOAD)
    reg = _first_download_registry(tmp_path, url)
    monkeypatch.setenv("SASP_ATLAS_REGISTRY", str(reg))
    ds = registry.get_dataset(TNBC1)
    assert registry.trust_level(ds) == "pinned on first download"
    with pytest.raises(fetch.NotPinnedError, match=f"sasp-atlas registry pin {TNBC1}"):
        fetch.fetch_file(ds, ds.files[0])
    assert https_server["requests"] == [] and files_in(empty_cache) == []

    with pytest.raises(fetch.DataUnavailableError, match="not pinned"):
        preflight([ds], profile="full", mirror=None)  # nothing else available: the report is the error
    problem = {"dataset": ds, "status": "not pinned", "missing": ds.files, "detail": ""}
    assert f"sasp-atlas registry pin {TNBC1}" in how_to_provide(problem, None)

    records = fetch.pin_dataset(TNBC1, registry=reg)
    sha = fetch.hashlib.sha256(PAYLOAD).hexdigest()
    assert records == [{"name": NAME, "status": "pinned on first download", "sha256": sha, "size": len(PAYLOAD)}]
    f = registry.get_dataset(TNBC1, reg).files[0]
    assert (f["sha256"], f["size"]) == (sha, len(PAYLOAD))
    assert f["note"].startswith("pinned on first download") and url in f["note"] and "20" in f["note"]
    assert fetch.fetch_file(registry.get_dataset(TNBC1, reg), f).read_bytes() == PAYLOAD

    # the host changes the file behind the same URL: refused, nothing cached
    for p in files_in(empty_cache):
        p.unlink()
    (https_server["root"] / NAME).write_bytes(PAYLOAD + b"changed")
    with pytest.raises(HashMismatchError, match=sha):
        fetch.fetch_file(registry.get_dataset(TNBC1, reg), f)
    assert files_in(empty_cache) == []
