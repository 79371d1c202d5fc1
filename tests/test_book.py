"""Book orchestration: the table of contents follows the registry, failed notebooks stop the
build, and the browser check really detects undrawn charts and off-host requests."""

from __future__ import annotations

import shutil

import nbformat
import pytest
import yaml

from sasp_atlas.book import NotebookFailed, _tidy, toc
from sasp_atlas.registry import PROJECT_ROOT, list_datasets


def test_committed_toc_matches_registry():
    committed = yaml.safe_load((PROJECT_ROOT / "_toc.yml").read_text())
    assert committed == toc(list_datasets("core"))
    files = [c["file"] for part in committed["parts"] for c in part["chapters"]]
    for d in list_datasets("core"):
        assert f"book/datasets/{d.id}" in files


def _notebook(tmp_path, outputs):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Template title"),
                nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("y = 2", metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("x + y")]
    nb.cells[-1].outputs = outputs
    path = tmp_path / "page.ipynb"
    nbformat.write(nb, path)
    return path


def test_tidy_hides_parameters_and_sets_title(tmp_path):
    path = _notebook(tmp_path, [nbformat.v4.new_output("stream", name="stderr", text="noise"),
                                nbformat.v4.new_output("execute_result", data={"text/plain": "3"})])
    _tidy(path, "Dataset X")
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].source == "# Dataset X"
    assert "remove-cell" in nb.cells[1].metadata["tags"] and "remove-cell" in nb.cells[2].metadata["tags"]
    assert [o["output_type"] for o in nb.cells[3].outputs] == ["execute_result"]


def test_tidy_refuses_a_notebook_with_a_traceback(tmp_path):
    path = _notebook(tmp_path, [nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[])])
    with pytest.raises(NotebookFailed, match="ValueError: boom"):
        _tidy(path, "Dataset X")


needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")


def _site(tmp_path, body: str):
    from sasp_atlas.charts import write_vega_bundle

    root = tmp_path / "html"
    write_vega_bundle(root / "_static")
    page = ('<html><head><script src="_static/vega/vega-bundle.js"></script></head><body>' + body + "</body></html>")
    (root / "index.html").write_text(page)
    return root


@needs_chromium
def test_site_check_sees_drawn_and_undrawn_charts(tmp_path):
    import altair as alt
    import pandas as pd

    from sasp_atlas.charts import _TEMPLATE
    from sasp_atlas.sitecheck import check_site

    spec = alt.Chart(pd.DataFrame({"a": [1, 2], "b": [3, 4]})).mark_bar().encode(x="a:Q", y="b:Q").to_json()
    good = _TEMPLATE.render(output_div="c1", spec=spec, embed_options="{}")
    report = check_site(_site(tmp_path / "ok", good))
    assert report["ok"] and report["n_charts"] == 1

    bad = good.replace('"mark"', '"nomark"').replace("c1", "c2")  # an invalid spec does not draw
    report = check_site(_site(tmp_path / "bad", bad))
    assert not report["ok"]

    broken = good + '<a href="_static/figures/missing.svg" download>SVG</a>'
    report = check_site(_site(tmp_path / "dl", broken))
    assert not report["ok"] and report["pages"][0]["broken_downloads"]

    external = good + '<img src="http://example.invalid/x.png">'
    report = check_site(_site(tmp_path / "ext", external))
    assert not report["ok"]
    assert report["pages"][0]["external"] == ["http://example.invalid/x.png"]


def test_committed_notebooks_equal_the_generator_output(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebooks", PROJECT_ROOT / "scripts" / "make_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name, make in [("dataset", mod.dataset_notebook), ("atlas", mod.atlas_notebook), ("catalogue", mod.catalogue_notebook),
                       ("table2", mod.table2_notebook)]:
        committed = nbformat.read(PROJECT_ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        generated = make()
        assert [c.source for c in committed.cells] == [c.source for c in generated.cells], name
        assert [c.metadata.get("tags", []) for c in committed.cells] == [c.metadata.get("tags", []) for c in generated.cells]
        params = [c for c in committed.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, name


def test_family_pages_cover_every_signature(tmp_path):
    from sasp_atlas.book import signature_families, write_family_pages
    from sasp_atlas.signatures import list_signatures

    (tmp_path / "book").mkdir()
    paths = write_family_pages(tmp_path)
    assert [p.stem for p in paths] == signature_families()
    text = "\n".join(p.read_text() for p in paths)
    for sid in list_signatures()["id"]:
        assert f"## `{sid}`" in text, sid


def test_publish_commits_the_site_to_a_gh_pages_branch(tmp_path):
    import subprocess

    from sasp_atlas.book import publish

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
    files = subprocess.run(["git", "ls-tree", "-r", "--name-only", "gh-pages"], cwd=repo, capture_output=True,
                           text=True, check=True).stdout.split()
    assert set(files) == {".nojekyll", "index.html", "_static/x.css"}  # .nojekyll: GitHub serves _static/


def test_publish_refuses_an_unbuilt_site(tmp_path):
    from sasp_atlas.book import publish

    with pytest.raises(FileNotFoundError, match="sasp-atlas build"):
        publish(tmp_path, push=False, repo=tmp_path)


def test_reproduce_page_lists_every_registry_hash():
    from sasp_atlas.pages import reproduce_page_markdown
    from sasp_atlas.registry import load_resources

    text = reproduce_page_markdown(list_datasets("core"), load_resources(), commit="abc1234", version="0.1.0")
    assert "git checkout abc1234" in text and "sasp-atlas build" in text
    for d in list(list_datasets("core")) + list(load_resources()):
        for f in d.files:
            assert f["sha256"] in text
    assert "| scanpy |" in text
