"""The book's Sphinx extension: its template overrides replace theme components that exist, and
every overridden button's accessible name contains its visible text (WCAG 2.1 2.5.3)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from sasp_atlas.site import sphinx_ext


def _theme_components() -> Path:
    import pydata_sphinx_theme

    return Path(pydata_sphinx_theme.__file__).parent / "theme" / "pydata_sphinx_theme" / "components"


def test_every_override_replaces_a_theme_component():
    overrides = sorted(p.name for p in sphinx_ext.TEMPLATES.glob("*.html"))
    assert overrides == ["search-button-field.html", "theme-switcher.html"]
    for name in overrides:  # a renamed component would leave the override unused
        assert (_theme_components() / name).is_file(), name


def test_our_templates_come_before_the_theme_components_and_every_page_gets_an_icon():
    config = SimpleNamespace(templates_path=["_templates", str(_theme_components())], html_favicon=None)
    sphinx_ext._add_templates(None, config)
    sphinx_ext._add_templates(None, config)  # idempotent
    assert config.templates_path == [str(sphinx_ext.TEMPLATES), "_templates", str(_theme_components())]
    assert config.html_favicon == str(sphinx_ext.FAVICON) and sphinx_ext.FAVICON.is_file()
    own = SimpleNamespace(templates_path=[], html_favicon="_static/mine.png")  # the book's own icon wins
    sphinx_ext._add_templates(None, own)
    assert own.html_favicon == "_static/mine.png"


def test_the_search_button_is_named_by_its_text():
    html = (sphinx_ext.TEMPLATES / "search-button-field.html").read_text()
    button = re.search(r"<button[^>]*>", html).group(0)
    assert "aria-label" not in button and 'aria-keyshortcuts="Control+K Meta+K"' in button
    assert re.search(r'<span class="search-button__kbd-shortcut" aria-hidden="true">', html)


def test_the_colour_mode_icons_carry_no_title():
    html = (sphinx_ext.TEMPLATES / "theme-switcher.html").read_text()
    icons = re.findall(r"<i [^>]*>", html)
    assert len(icons) == 3 and all('aria-hidden="true"' in i and "title=" not in i for i in icons)
