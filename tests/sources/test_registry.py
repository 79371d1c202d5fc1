"""The data registry: the real file validates and agrees with the mirror's sources.yaml;
malformed entries are RegistryErrors that name the entry and the field."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from conftest import ALL_DATASETS, REGISTRY_YAML, WU, source_file
from conftest import registry_entry as _entry
from conftest import write_registry as _write

from sasp_atlas.sources import registry
from sasp_atlas.sources.registry import RegistryError, load_registry

PINNED_RAW_URL = re.compile(r"^https://raw\.githubusercontent\.com/[^/\s]+/[^/\s]+/([0-9a-f]{40})/\S+$")


# --------------------------------------------------------------------------- the real registry
def test_real_registry_validates():
    entries = load_registry(REGISTRY_YAML)
    assert len(entries) >= 1
    assert all(isinstance(d, registry.Dataset) for d in entries)
    # validate_registry on the raw document also passes (no exception)
    registry.validate_registry(yaml.safe_load(REGISTRY_YAML.read_text()))


def test_default_registry_is_the_project_file():
    assert registry.registry_path() == REGISTRY_YAML
    assert [d.id for d in registry.load_registry()] == [d.id for d in load_registry(REGISTRY_YAML)]


def _core():
    """The core entries: the ones mirrored in shared/data (profile full entries are tested in test_full_profile.py)."""
    return [d for d in load_registry(REGISTRY_YAML) if d["profile"] == "core"]


def test_ids_equal_sources_yaml(sources):
    ids = [d.id for d in _core()]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(sources)
    assert set(ids) == set(ALL_DATASETS)


def test_files_match_sources_yaml(sources):
    for ds in _core():
        src_names = sorted(Path(f["path"]).name for f in sources[ds.id]["files"])
        assert sorted(f["name"] for f in ds.files) == src_names, ds.id
        for f in ds.files:
            s = source_file(sources, ds.id, f["name"])
            assert f["sha256"] == s["sha256"], (ds.id, f["name"])
            assert f["size"] == s["size_bytes"], (ds.id, f["name"])
            assert f["git_blob_sha1"] == s["git_blob_sha1"], (ds.id, f["name"])
            assert f["url"] == s["raw_url"], (ds.id, f["name"])


def test_expected_shapes_match_sources_yaml(sources):
    for ds in _core():
        if "verified" not in sources[ds.id]:  # small_cancer_extra: shape set by the loader's drops (test_winterhoff.py)
            continue
        assert ds["expected"]["n_cells"] == sources[ds.id]["verified"]["n_cells"], ds.id
        assert ds["expected"]["n_genes"] == sources[ds.id]["verified"]["n_genes"], ds.id


def test_urls_are_https_and_pinned_to_a_commit():
    for ds in load_registry(REGISTRY_YAML):
        for f in ds.files:
            assert f["url"].startswith("https://"), f["url"]
            if registry.trust_level(ds) == "pinned on first download":
                # a versioned dataset URL (e.g. CELLxGENE's dataset-version ids): the content is pinned by the
                # sha256 that `registry pin` records, not by a commit in the URL
                assert "registry pin" in f["note"], ds.id
            else:
                m = PINNED_RAW_URL.match(f["url"])
                assert m, f"{ds.id}/{f['name']}: URL not pinned to a 40-hex commit: {f['url']}"
            # the URL ends with the file's name (the raw file, not a folder or a branch)
            assert f["url"].rsplit("/", 1)[1] == f["name"]


def test_get_dataset_and_list_datasets():
    ds = registry.get_dataset(WU)
    assert ds.id == WU and ds["value_type"] == "raw_counts"
    core = registry.list_datasets("core")
    assert {d.id for d in core} == set(ALL_DATASETS)
    assert len(registry.list_datasets("full")) == len(load_registry(REGISTRY_YAML))


def test_unknown_dataset_id_lists_known_ids():
    with pytest.raises(KeyError) as exc:
        registry.get_dataset("no_such_dataset")
    msg = str(exc.value)
    assert "no_such_dataset" in msg
    for i in ALL_DATASETS:
        assert i in msg


def test_missing_registry_file(tmp_path):
    with pytest.raises(RegistryError, match="not found"):
        load_registry(tmp_path / "nope.yaml")


def test_invalid_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("datasets: [unclosed\n")
    with pytest.raises(RegistryError, match="not valid YAML"):
        load_registry(p)


# --------------------------------------------------------------------------- malformed entries
def _raises(doc: dict, tmp_path: Path) -> str:
    with pytest.raises(RegistryError) as exc:
        load_registry(_write(doc, tmp_path))
    return str(exc.value)


def test_unmodified_copy_loads(registry_doc, tmp_path):
    # the baseline of every malformation test below: the unchanged copy is valid
    entries = load_registry(_write(copy.deepcopy(registry_doc), tmp_path))
    assert [d.id for d in entries] == [d["id"] for d in registry_doc["datasets"]]


def test_unknown_key_in_entry(registry_doc, tmp_path):
    doc = copy.deepcopy(registry_doc)
    _entry(doc, WU)["colour"] = "blue"
    msg = _raises(doc, tmp_path)
    assert WU in msg and "colour" in msg


def test_unknown_key_in_file_entry(registry_doc, tmp_path):
    doc = copy.deepcopy(registry_doc)
    _entry(doc, WU)["files"][0]["md5"] = "0" * 32
    msg = _raises(doc, tmp_path)
    assert WU in msg and "md5" in msg and "files" in msg


def test_missing_files(registry_doc, tmp_path):
    doc = copy.deepcopy(registry_doc)
    del _entry(doc, WU)["files"]
    msg = _raises(doc, tmp_path)
    assert WU in msg and "files" in msg


def test_missing_required_field_of_second_entry(registry_doc, tmp_path):
    doc = copy.deepcopy(registry_doc)
    other = doc["datasets"][1]
    del other["value_type"]
    msg = _raises(doc, tmp_path)
    assert other["id"] in msg and "value_type" in msg


@pytest.mark.parametrize(
    "bad", ["0" * 63, "G" * 64, "5F719B65EDD292429FF69AA1A648252508298069002337C785E9688F8AF150FA", ""]
)
def test_bad_sha256(registry_doc, tmp_path, bad):
    doc = copy.deepcopy(registry_doc)
    _entry(doc, WU)["files"][0]["sha256"] = bad
    msg = _raises(doc, tmp_path)
    assert WU in msg and "sha256" in msg


@pytest.mark.parametrize(
    "url",
    [
        "http://raw.githubusercontent.com/omnideconv/spacedeconv/3c3317a5fd861ed4d42bb096f58a5634b0a16899/data/single_cell_data_2.RData",
        "ftp://example.org/single_cell_data_2.RData",
        "file:///tmp/single_cell_data_2.RData",
    ],
)
def test_non_https_url(registry_doc, tmp_path, url):
    doc = copy.deepcopy(registry_doc)
    _entry(doc, WU)["files"][0]["url"] = url
    msg = _raises(doc, tmp_path)
    assert WU in msg and "url" in msg


@pytest.mark.parametrize("name", ["data/single_cell_data_2.RData", "../escape.RData", "..", "/etc/passwd", "a/../b"])
def test_file_name_with_path_parts(registry_doc, tmp_path, name):
    doc = copy.deepcopy(registry_doc)
    _entry(doc, WU)["files"][0]["name"] = name
    msg = _raises(doc, tmp_path)
    assert WU in msg and "name" in msg


def test_duplicated_ids(registry_doc, tmp_path):
    doc = copy.deepcopy(registry_doc)
    doc["datasets"].append(copy.deepcopy(_entry(doc, WU)))
    msg = _raises(doc, tmp_path)
    assert WU in msg and "id" in msg and "duplicated" in msg


def test_duplicated_file_names(registry_doc, tmp_path):
    doc = copy.deepcopy(registry_doc)
    files = _entry(doc, WU)["files"]
    files.append(copy.deepcopy(files[0]))
    msg = _raises(doc, tmp_path)
    assert WU in msg and "files" in msg


def test_bad_enum_value(registry_doc, tmp_path):
    doc = copy.deepcopy(registry_doc)
    _entry(doc, WU)["value_type"] = "cpm"
    msg = _raises(doc, tmp_path)
    assert WU in msg and "value_type" in msg


def test_unknown_top_level_key(registry_doc, tmp_path):
    doc = copy.deepcopy(registry_doc)
    doc["extra"] = 1
    msg = _raises(doc, tmp_path)
    assert "extra" in msg


def test_top_level_not_a_mapping(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(RegistryError):
        load_registry(p)
