"""Page text blocks."""

from __future__ import annotations

from sasp_atlas.sources.registry import list_datasets


def test_reproduce_page_lists_every_registry_hash():
    from sasp_atlas.site.pages import reproduce_page_markdown
    from sasp_atlas.sources.registry import load_resources

    text = reproduce_page_markdown(list_datasets("core"), load_resources(), commit="abc1234", version="0.1.0")
    assert "git checkout abc1234" in text and "sasp-atlas build" in text
    for d in list(list_datasets("core")) + list(load_resources()):
        for f in d.files:
            assert f["sha256"] in text
    assert "| scanpy |" in text
