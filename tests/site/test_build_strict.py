"""`sasp-atlas build --strict` (the publishing workflow's build): a profile with datasets that are unpinned,
unreachable or unreadable stops after the pre-flight with the table of what to do and exit 1, before any
page runs; offline, against the real registry and mirror."""

from __future__ import annotations

import os

import pytest
from conftest import ALL_DATASETS, MIRROR

from sasp_atlas.sources import registry

BUILD_ENV = ("SASP_ATLAS_MIRROR", "SASP_ATLAS_COMMIT", "SASP_ATLAS_REGISTRY")


@pytest.fixture
def restore_build_env():
    """build() exports the mirror, a registry copy and the commit for its page kernels: undo that afterwards."""
    saved = {k: os.environ.get(k) for k in BUILD_ENV}
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_strict_full_build_offline_stops_with_the_table(
    mirror, empty_cache, no_network, tmp_path, capsys, monkeypatch, restore_build_env
):
    from sasp_atlas.cli import main

    monkeypatch.setenv("COLUMNS", "400")
    project = tmp_path / "project"
    rc = main(
        ["build", "--profile", "full", "--strict", "--mirror", str(MIRROR), "--project", str(project), "--no-book"]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    left_out = [d for d in registry.list_datasets("full") if d.id not in ALL_DATASETS]
    assert left_out
    for d in left_out:  # the table: every full dataset, with what to do
        assert d.id in err
    unpinned = [d for d in left_out if registry.trust_level(d) == "pinned on first download"]
    assert unpinned and all(f"run `sasp-atlas registry pin {d.id}`" in err for d in unpinned)
    assert "copy the missing file(s) into" in err
    assert f"build --strict stopped: {len(left_out)} dataset(s) of profile full" in err
    assert "registry pin --all" in err
    # nothing was built: no page, no notebook run
    assert not (project / "book" / "datasets").exists() or not any((project / "book" / "datasets").iterdir())
    assert "atlas built" not in err


def test_strict_core_build_goes_on_when_everything_is_there(monkeypatch, capsys):
    """--strict with nothing left out changes nothing: the build runs and exits 0 (build() faked here)."""
    import sasp_atlas.cli as cli

    seen = {}

    def fake_build(*, report=None, strict=False, **kwargs):
        seen["strict"] = strict
        return {"page:x": 1.0, "total": 1.0}

    monkeypatch.setattr("sasp_atlas.site.book.build", fake_build)  # the CLI loads it when the command runs
    assert cli.main(["build", "--strict", "--no-book"]) == 0
    assert seen == {"strict": True} and "atlas built" in capsys.readouterr().err


def test_strict_refusal_is_raised_before_any_page(monkeypatch, tmp_path, restore_build_env):
    """build(strict=True) raises IncompleteBuildError with the pre-flight records, and runs no page."""
    from sasp_atlas.site import book

    d = registry.get_dataset(ALL_DATASETS[0])
    problems = [{"dataset": d, "status": "not reachable", "missing": d.files, "detail": ""}]
    monkeypatch.setattr(book, "preflight", lambda datasets, **kw: (datasets[:1], problems))
    monkeypatch.setattr(book, "run_dataset_page", lambda *a, **k: pytest.fail("a page ran"))
    with pytest.raises(book.IncompleteBuildError) as exc:
        book.build(profile="core", strict=True, book=False, root=tmp_path / "project")
    assert exc.value.problems == problems and ALL_DATASETS[0] in str(exc.value)
