"""Page text blocks."""

from __future__ import annotations

from conftest import PROJECT_ROOT

from sasp_atlas.site import pages
from sasp_atlas.sources.registry import list_datasets, list_unverified


def test_reproduce_page_lists_every_registry_hash():
    from sasp_atlas.site.pages import reproduce_page_markdown
    from sasp_atlas.sources.registry import load_resources

    text = reproduce_page_markdown(list_datasets("core"), load_resources(), commit="abc1234", version="0.1.0")
    assert "git checkout abc1234" in text and "sasp-atlas build" in text
    for d in list(list_datasets("core")) + list(load_resources()):
        for f in d.files:
            assert f["sha256"] in text
    assert "| scanpy |" in text


def test_unverified_sources_page_is_generated_from_the_registry():
    page = PROJECT_ROOT / "book" / "unverified_sources.md"
    assert page.read_text() == pages.unverified_sources_markdown(), (
        "regenerate: sasp_atlas.site.pages.unverified_sources_markdown()"
    )
    for u in list_unverified():
        assert f"`{u['id']}`" in page.read_text()
