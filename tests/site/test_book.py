"""Book orchestration: a static table of contents that globs the generated pages, family pages,
and publishing to gh-pages."""

from __future__ import annotations

import pytest
import yaml
from conftest import PROJECT_ROOT

from sasp_atlas.atlas import run_dataset
from sasp_atlas.atlas.build import collect_atlas_tables
from sasp_atlas.site.book import GENERATED_PAGE_DIRS
from sasp_atlas.site.home import HOME_PAGE
from sasp_atlas.site.notebooks import execute_page
from sasp_atlas.sources.registry import list_datasets


def _toc_entries(node):
    for key in ("parts", "chapters", "sections"):
        for child in node.get(key, []):
            yield child
            yield from _toc_entries(child)


def test_static_toc_globs_the_generated_pages():
    """The toc is static: hand-written pages by file, generated ones (datasets, signature families)
    by glob over the folders the build writes; every file entry outside those folders exists."""
    toc = yaml.safe_load((PROJECT_ROOT / "_toc.yml").read_text())
    entries = list(_toc_entries(toc))
    globs = {e["glob"] for e in entries if "glob" in e}
    assert globs == {"book/datasets/*", "book/signatures/*"}
    from sasp_atlas.site.notebooks import TEMPLATES

    # the summary pages are executed from their templates (every template but the per-dataset one)
    generated = tuple(f"book/{t}" for t in TEMPLATES if t != "dataset") + tuple(GENERATED_PAGE_DIRS)
    for e in entries:
        if "file" in e and not e["file"].startswith(generated):
            assert (PROJECT_ROOT / f"{e['file']}.md").is_file(), e["file"]
    # the root is the landing page the build writes (the SASP map and the findings of this build)
    assert f"{toc['root']}.md" == HOME_PAGE.as_posix() and toc["root"].startswith(generated)
    assert len(list_datasets("core")) == 5  # their pages arrive through book/datasets/*


def test_family_pages_cover_every_signature(tmp_path):
    from sasp_atlas.genes.signatures import list_signatures
    from sasp_atlas.site.book import signature_families, write_family_pages

    (tmp_path / "book").mkdir()
    paths = write_family_pages(tmp_path)
    assert [p.stem for p in paths] == signature_families()
    text = "\n".join(p.read_text() for p in paths)
    for sid in list_signatures()["id"]:
        assert f"## `{sid}`" in text, sid


@pytest.mark.slow
def test_publish_commits_the_site_to_a_gh_pages_branch(tmp_path):
    import subprocess

    from sasp_atlas.site.book import publish

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q", "-b", "main"], cwd=repo, check=True)
    (repo / "README.md").write_text("x")
    subprocess.run(git + ["add", "README.md"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-qm", "init"], cwd=repo, check=True)
    site = tmp_path / "html"
    (site / "_static").mkdir(parents=True)
    (site / "index.html").write_text("<html>atlas</html>")
    (site / "_static" / "x.css").write_text("body{}")
    publish(site, push=False, repo=repo)
    files = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "gh-pages"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.split()
    assert set(files) == {".nojekyll", "index.html", "_static/x.css"}  # .nojekyll: GitHub serves _static/


def test_publish_refuses_an_unbuilt_site(tmp_path):
    from sasp_atlas.site.book import publish

    with pytest.raises(FileNotFoundError, match="sasp-atlas build"):
        publish(tmp_path, push=False, repo=tmp_path)


def test_an_empty_project_folder_gets_the_packaged_pages(tmp_path):
    """`sasp-atlas build --project DIR` on an empty folder: the hand-written pages and the book
    configuration are copied in (never over existing files); a checkout is used as it is."""
    from sasp_atlas.site.book import prepare_project
    from sasp_atlas.sources import PROJECT_SKELETON

    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# my own intro")
    root = prepare_project(tmp_path)
    assert root == tmp_path.resolve()
    for rel in PROJECT_SKELETON:
        assert (tmp_path / rel).is_file(), rel
    assert (tmp_path / "book" / "intro.md").read_text() == "# my own intro"
    assert (tmp_path / "_toc.yml").read_text() == (PROJECT_ROOT / "_toc.yml").read_text()
    assert prepare_project(PROJECT_ROOT) == PROJECT_ROOT.resolve()


@pytest.mark.slow
def test_the_atlas_pages_only_read_the_tables_collected_once(tmp_path):
    """``build`` combines the tables once (:func:`sasp_atlas.atlas.build.collect_atlas_tables`) before the
    Table 2, catalogue and atlas pages; the pages run on them and write no table (~90 s: one small dataset)."""
    results = tmp_path / "results"
    run_dataset("tirosh2016_oligodendroglioma", out_dir=results, with_embedding=False, n_null=100)
    collect_atlas_tables(["tirosh2016_oligodendroglioma"], results)
    written = {p: p.stat().st_mtime_ns for p in (results / "tables").rglob("*") if p.is_file()}
    assert {"meta_analysis.csv", "sasp_classes.csv", "table2_checks.csv"} <= {p.name for p in written}
    for name, params in (("table2", {}), ("catalogue", {}), ("atlas", {"method": "expected"})):
        execute_page(name, tmp_path / "book" / f"{name}.ipynb", {"results": str(results), **params}, cwd=tmp_path)
    assert {p: p.stat().st_mtime_ns for p in (results / "tables").rglob("*") if p.is_file()} == written
