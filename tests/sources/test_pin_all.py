"""`sasp-atlas registry pin --all` over a local HTTPS server, and the round-trip registry edit both
`pin ID` and `pin --all` use (ruamel.yaml: comments, key order and quoting of untouched lines kept).

The served registry is the project's own (comments and all) with every unpinned file's URL pointed at
the local server; blob-only files get the blob id of the bytes served for them, except one that is
served changed bytes (refused) and one with a sha256 but no size that is served other bytes (refused,
never overwritten); some files are not served at all (unreachable, reported with the command to retry).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import re

import pytest
import yaml
from conftest import REGISTRY_YAML, files_in

from sasp_atlas.sources import fetch, registry

PINNED_KEYS = ("sha256:", "size:", "note:")


def _blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _changed_lines(before: str, after: str) -> list[str]:
    return [ln for ln in difflib.ndiff(before.splitlines(), after.splitlines()) if ln[:1] in "+-"]


def _only_pinned_fields_changed(before: str, after: str) -> None:
    """Every added or removed line is a sha256/size/note line; every other line, comments included, is kept
    in its order."""
    changed = _changed_lines(before, after)
    assert all(ln[2:].strip().startswith(PINNED_KEYS) for ln in changed), [
        ln for ln in changed if not ln[2:].strip().startswith(PINNED_KEYS)
    ]
    kept = [ln for ln in before.splitlines() if not ln.strip().startswith(PINNED_KEYS)]
    assert kept == [ln for ln in after.splitlines() if not ln.strip().startswith(PINNED_KEYS)]


def _unpinned(doc: dict) -> list[tuple[str, dict]]:
    return [
        (e["id"], f)
        for section in fetch.PIN_SECTIONS
        for e in doc.get(section) or []
        for f in e.get("files", [])
        if not (f.get("sha256") and f.get("size"))
    ]


# --------------------------------------------------------------------------- the round-trip edit
def test_an_unchanged_registry_is_written_back_byte_for_byte():
    text = REGISTRY_YAML.read_text()
    assert fetch.pin_registry_entries(text, {}) == text


def test_pinning_every_unpinned_file_changes_only_the_pinned_fields():
    """The whole project registry: every unpinned file of every section pinned at once; the diff is the pinned
    fields only, the result validates and holds the new values, the other entries are equal."""
    text = REGISTRY_YAML.read_text()
    doc = yaml.safe_load(text)
    pins: dict = {}
    for i, (entry_id, f) in enumerate(_unpinned(doc)):
        pins.setdefault(entry_id, {})[f["name"]] = {
            "sha256": f"{i:064x}".replace("0", "a"),
            "size": i + 1,
            "note": f'pinned "{entry_id}" on 2026-12-07 from {f["url"]}',
        }
    assert len(pins) >= 10
    new = fetch.pin_registry_entries(text, pins)
    _only_pinned_fields_changed(text, new)
    new_doc = yaml.safe_load(new)
    registry.validate_registry(new_doc)
    entries = {e["id"]: e for section in fetch.PIN_SECTIONS for e in new_doc.get(section) or []}
    for entry_id, file_pins in pins.items():
        for f in entries[entry_id]["files"]:
            if f["name"] in file_pins:
                want = file_pins[f["name"]]
                assert (f["sha256"], f["size"], f["note"]) == (want["sha256"], want["size"], want["note"])
                keys = list(f)
                assert keys.index("sha256") == keys.index("url") + 1 and keys.index("size") == keys.index("sha256") + 1
    untouched = [e for e in doc["datasets"] if e["id"] not in pins]
    assert untouched and untouched == [e for e in new_doc["datasets"] if e["id"] not in pins]


def test_a_registry_in_pyyaml_layout_keeps_its_layout():
    """List items at their parent key's column (how yaml.safe_dump writes them, e.g. test registries): the
    same diff-only-the-pinned-fields edit."""
    text = yaml.safe_dump(yaml.safe_load(REGISTRY_YAML.read_text()), sort_keys=False, width=1 << 20)
    assert "\ndatasets:\n- id: " in text
    entry_id, f = _unpinned(yaml.safe_load(text))[0]
    new = fetch.pin_registry_text(text, entry_id, {f["name"]: {"sha256": "d" * 64, "size": 9, "note": "pinned"}})
    _only_pinned_fields_changed(text, new)
    assert len(_changed_lines(text, new)) == 4  # sha256 and size added, the note replaced


BEFORE = """\
# head
schema_version: 1
datasets:
  - id: x
    tags: [a, "b"]
    files:
      - name: f
        url: https://x/f  # eol

  # next entry
  - id: y
    files:
      - name: g
        url: 'https://x/g'
        sha256: aaaa  # keep me
        note: old note

# end
"""

AFTER = """\
# head
schema_version: 1
datasets:
  - id: x
    tags: [a, "b"]
    files:
      - name: f
        url: https://x/f  # eol
        sha256: {b}
        size: 3

  # next entry
  - id: y
    files:
      - name: g
        url: 'https://x/g'
        sha256: {c} # keep me
        size: 4
        note: "new note"

# end
"""


def test_comments_after_the_last_key_stay_below_the_inserted_keys():
    """ruamel keeps the comment lines after a key with that key: inserted keys go above them, the end-of-line
    comment stays on its line, an existing key keeps its place and its comment, flow lists and quotes stay."""
    new = fetch.pin_registry_entries(
        BEFORE,
        {"x": {"f": {"sha256": "b" * 64, "size": 3}}, "y": {"g": {"sha256": "c" * 64, "size": 4, "note": "new note"}}},
    )
    assert new == AFTER.format(b="b" * 64, c="c" * 64)


def test_unknown_entry_or_file_is_a_key_error():
    text = REGISTRY_YAML.read_text()
    with pytest.raises(KeyError, match="no_such_entry"):
        fetch.pin_registry_entries(text, {"no_such_entry": {"x": {"sha256": "a" * 64, "size": 1}}})
    with pytest.raises(KeyError, match="nope.rda"):
        fetch.pin_registry_text(text, "neftel2019_gbm_infercna", {"nope.rda": {"sha256": "a" * 64, "size": 1}})


# --------------------------------------------------------------------------- pin --all over local HTTPS
def _as_never_pinned(text: str) -> str:
    """The registry as before any `registry pin`: files whose sha256 and size a maintainer's pin recorded (their
    note says so) lose them again, so this test keeps its subject once the real registry is pinned."""
    edit = fetch._RegistryEdit(text)
    for section in fetch.PIN_SECTIONS:
        for entry in edit.doc.get(section) or []:
            for f in entry["files"]:
                if "recorded by `sasp-atlas registry pin`" in f.get("note", ""):
                    f.pop("sha256", None)
                    f.pop("size", None)
    return edit.text()


def _with_a_shared_file(text: str) -> str:
    """The registry with one unpinned file that two entries share (same URL), if it has none: the CELLxGENE h5ad that two
    entries shared moved to the Census route (no file), so a copy of one never-pinned ground-truth file goes into a
    second entry of that trust level, keeping the "downloaded once" path under test."""
    edit = fetch._RegistryEdit(text)
    files = [f for s in fetch.PIN_SECTIONS for e in edit.doc.get(s) or [] for f in e["files"]]
    files = [f for f in files if not (f.get("sha256") and f.get("size"))]
    if any(sum(g["url"] == f["url"] for g in files) > 1 for f in files):
        return text
    source = next(g for g in edit.doc["ground_truth"] if g["id"] == "teo2019_imr90_ois_10x")
    item = next(f for f in source["files"] if not (f.get("sha256") or f.get("git_blob_sha1")))
    target = next(d for d in edit.doc["datasets"] if d["id"] == "vangalen2019_aml_geo")
    target["files"].append(copy.deepcopy(item))
    return edit.text()


@pytest.fixture
def served(https_server, tmp_path, empty_cache, monkeypatch):
    """The project registry with every unpinned file at the local server (see the module doc); returns the
    registry path, the original text, the served payloads and the planned outcome per (entry, file)."""
    monkeypatch.delenv("SASP_ATLAS_MIRROR", raising=False)
    monkeypatch.delenv("SASP_ATLAS_RESOURCE_MIRROR", raising=False)
    text = _with_a_shared_file(_as_never_pinned(REGISTRY_YAML.read_text()))
    doc = yaml.safe_load(text)
    unpinned = _unpinned(doc)
    urls = sorted({f["url"] for _, f in unpinned})
    names = {f["url"]: f["name"] for _, f in unpinned}  # some URLs end in a query string: served under the file name
    local = {url: f"{https_server['url']}/{i}/{names[url]}" for i, url in enumerate(urls)}
    blob_only = [(e, f) for e, f in unpinned if f.get("git_blob_sha1") and not f.get("sha256")]
    first = [(e, f) for e, f in unpinned if not (f.get("git_blob_sha1") or f.get("sha256"))]
    shared = [u for u in urls if sum(f["url"] == u for _, f in unpinned) > 1]
    assert len(blob_only) >= 3 and len(first) >= 3 and shared  # the registry has all three kinds

    changed, unreachable = blob_only[0], blob_only[1]
    sha_no_size = next((e, f) for e, f in first if f["url"] not in shared)
    gone_first = next((e, f) for e, f in reversed(first) if f["url"] not in shared and (e, f) != sha_no_size)
    plan, payloads = {}, {}
    for e, f in unpinned:
        payload = f"{e}/{f['name']}\n".encode() * 50
        if f["url"] in shared:
            payload = f"shared {f['url']}\n".encode() * 50
        payloads[(e, f["name"])] = payload
        plan[(e, f["name"])] = "pinned"
        served_bytes = payload
        if (e, f) == changed:
            served_bytes = payload + b"changed upstream"
            plan[(e, f["name"])] = "refused"
        if (e, f) == sha_no_size:
            served_bytes = payload + b"not the pinned bytes"
            plan[(e, f["name"])] = "refused"
        if (e, f) in (unreachable, gone_first):
            plan[(e, f["name"])] = "unreachable"
            continue
        target = https_server["root"] / local[f["url"]].split("/", 3)[3]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(served_bytes)

    new = text
    for url in urls:
        assert new.count(f"url: {url}\n") == sum(f["url"] == url for _, f in unpinned), url
        new = new.replace(f"url: {url}\n", f"url: {local[url]}\n")
    for e, f in blob_only:  # the blob id of the bytes meant to be served (the changed one is served others)
        assert new.count(f["git_blob_sha1"]) == 1
        new = new.replace(f["git_blob_sha1"], _blob(payloads[(e, f["name"])]))
    sha_line = f"url: {local[sha_no_size[1]['url']]}\n"
    assert new.count(sha_line) == 1
    recorded = hashlib.sha256(payloads[(sha_no_size[0], sha_no_size[1]["name"])]).hexdigest()
    new = new.replace(sha_line, f"{sha_line}        sha256: {recorded}\n")
    reg = tmp_path / "data_registry.yaml"
    reg.write_text(new)
    registry.validate_registry(yaml.safe_load(new))
    return {
        "registry": reg,
        "before": new,
        "payloads": payloads,
        "plan": plan,
        "shared": shared,
        "local": local,
        "server": https_server,
        "cache": empty_cache,
        "sha_no_size": sha_no_size,
        "recorded": recorded,
    }


@pytest.mark.slow
def test_pin_all_pins_refuses_and_reports(served):
    reg, plan, payloads = served["registry"], served["plan"], served["payloads"]
    announced = []
    records = fetch.pin_all(registry=reg, on_file=lambda i, n, e, name: announced.append((i, n, e, name)))

    # one record per file of the full profile, the core's and the resources' files "already pinned"
    candidates = fetch.pin_candidates(reg)  # the served copy: REGISTRY_YAML plus a shared file
    assert [(r["entry"], r["name"]) for r in records] == [(e.id, f["name"]) for _, e in candidates for f in e.files]
    by_file = {(r["entry"], r["name"]): r for r in records}
    assert {k for k, r in by_file.items() if r["status"] != "already pinned"} == set(plan)
    assert [a[:2] for a in announced] == [(i + 1, len(plan)) for i in range(len(plan))]

    for key, outcome in plan.items():
        r = by_file[key]
        if outcome == "pinned":
            assert r["status"] == "pinned" and r["retry"] is None, r
            assert (r["sha256"], r["size"]) == (hashlib.sha256(payloads[key]).hexdigest(), len(payloads[key]))
        else:
            assert r["status"] == "failed" and r["how"].startswith(outcome + ": "), r
            assert r["retry"] == f"sasp-atlas registry pin {key[0]}" and r["sha256"] is None
    refused_blob = next(
        k
        for k, o in plan.items()
        if o == "refused" and k != tuple((served["sha_no_size"][0], served["sha_no_size"][1]["name"]))
    )
    assert _blob(payloads[refused_blob]) in by_file[refused_blob]["how"]  # names the published blob id
    sha_key = (served["sha_no_size"][0], served["sha_no_size"][1]["name"])
    assert served["recorded"] in by_file[sha_key]["how"]
    assert any("404" in by_file[k]["how"] for k, o in plan.items() if o == "unreachable")
    hows = {r["how"] for r in records if r["status"] == "pinned"}
    assert hows == {"pinned (verified by the published git blob id)", "pinned on first download"}

    # the registry: pinned files have sha256, size and a note with the date and URL; failed ones are unchanged
    after = reg.read_text()
    _only_pinned_fields_changed(served["before"], after)
    doc = yaml.safe_load(after)
    registry.validate_registry(doc)
    files = {(e["id"], f["name"]): f for s in fetch.PIN_SECTIONS for e in doc.get(s) or [] for f in e["files"]}
    old = {
        (e["id"], f["name"]): f
        for s in fetch.PIN_SECTIONS
        for e in yaml.safe_load(served["before"]).get(s) or []
        for f in e["files"]
    }
    for key, outcome in plan.items():
        if outcome == "pinned":
            f = files[key]
            assert (f["sha256"], f["size"]) == (by_file[key]["sha256"], by_file[key]["size"])
            assert f["url"] in f["note"] and re.search(r"registry pin` on \d{4}-\d\d-\d\d from ", f["note"])
        else:
            assert files[key] == old[key]  # a refused or unreachable file's lines are left as they were

    # a file several entries share is downloaded once
    requested = served["server"]["requests"]
    for url in served["shared"]:
        assert requested.count("/" + served["local"][url].split("/", 3)[3]) == 1
    # refused downloads never reach the cache
    cached = {p.name for p in files_in(served["cache"])}
    assert not any(k[1] in cached for k, o in plan.items() if o != "pinned")

    # a second run downloads nothing new and pins nothing twice
    n_requests = len(requested)
    again = fetch.pin_all(registry=reg)
    assert {(r["entry"], r["name"]) for r in again if r["status"] == "already pinned"} >= {
        k for k, o in plan.items() if o == "pinned"
    }
    assert all(r["status"] == "failed" for r in again if plan.get((r["entry"], r["name"]), "pinned") != "pinned")
    assert reg.read_text() == after
    assert len(requested) - n_requests == sum(o != "pinned" for o in plan.values())  # only the failed ones, once each


@pytest.mark.slow
def test_cli_registry_pin_all_ends_with_the_table_and_fails(served, capsys, monkeypatch):
    from sasp_atlas.cli import main

    monkeypatch.setenv("COLUMNS", "400")
    # the census entries (no file) are read from the CELLxGENE Census: here from a copy that is not there
    monkeypatch.setenv("SASP_ATLAS_CENSUS_URI", str(served["registry"].parent / "no_census_here"))
    assert main(["registry", "pin", "--all", "--registry", str(served["registry"])]) == 1
    out = capsys.readouterr()
    census = [d.id for d in registry.list_datasets("full", served["registry"]) if registry.is_census_entry(d)]
    n_failed = sum(o != "pinned" for o in served["plan"].values())
    pinned = len(served["plan"]) - n_failed
    assert f"{pinned} file(s) pinned" in out.err and f"{n_failed + len(census)} failed" in out.err
    for entry in census:  # reported with the command to retry, never a traceback
        assert f"sasp-atlas registry pin {entry}" in out.out
    assert "registry pin --all" in out.out and "already pinned" in out.out and "Traceback" not in out.out + out.err
    for (entry, _), outcome in served["plan"].items():
        if outcome != "pinned":
            assert f"sasp-atlas registry pin {entry}" in out.out
    assert f"[1/{len(served['plan'])}]" in out.err


def test_cli_registry_pin_all_with_nothing_to_do(tmp_path, capsys, monkeypatch):
    """A registry with only pinned files: a table of 'already pinned', exit 0, nothing downloaded."""
    from sasp_atlas.cli import main

    doc = yaml.safe_load(REGISTRY_YAML.read_text())
    doc["datasets"] = [
        d
        for d in doc["datasets"]
        if all(f.get("sha256") and f.get("size") for f in d["files"])
        and not (registry.is_census_entry(d) and registry.census_pin(d) is None)  # an unpinned census subset
    ]
    doc["ground_truth"] = [g for g in doc["ground_truth"] if all(f.get("sha256") and f.get("size") for f in g["files"])]
    reg = tmp_path / "pinned.yaml"
    reg.write_text(yaml.safe_dump(doc, sort_keys=False))
    before = reg.read_text()
    monkeypatch.setenv("COLUMNS", "400")
    assert main(["registry", "pin", "--all", "--registry", str(reg)]) == 0
    out = capsys.readouterr()
    assert "0 file(s) pinned" in out.err and "0 failed" in out.err and reg.read_text() == before


def test_cli_registry_pin_needs_an_id_or_all(capsys):
    from sasp_atlas.cli import main

    assert main(["registry", "pin"]) == 2
    assert main(["registry", "pin", "x", "--all"]) == 2
    assert "or --all" in capsys.readouterr().err
