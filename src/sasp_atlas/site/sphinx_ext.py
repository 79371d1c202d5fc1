"""A small Sphinx extension for the book (listed in ``_config.yml``; used only by ``jupyter-book build``).

* every page's scripts are de-duplicated: sphinx-thebe registers its configuration script once per
  read of the sources, and the second copy throws ``Identifier 'THEBE_JS_URL' has already been
  declared`` in the reader's console;
* on a first visit (no stored theme mode) the theme mode starts as "auto", so the theme script does
  not log "Got invalid theme mode" in the console;
* a disclosure triangle without text (the theme's navigation toggles) gets an accessible name, so a
  screen reader announces it (axe rule ``summary-name``), and a table that scrolls sideways on a
  narrow screen can be scrolled from the keyboard (``tabindex``; axe rule
  ``scrollable-region-focusable``);
* every button's name contains its visible text (WCAG 2.1 2.5.3, axe rule
  ``label-content-name-mismatch``): ``templates/`` overrides two of the theme's components, the
  search field button (named "Search" while it shows "Search Ctrl+K") and the colour-mode button
  (named "Color mode" while its icon's title shows the mode);
* every page links an icon (``static/favicon.svg``, unless the book sets ``html.favicon``): without
  one the browser asks the server root for ``/favicon.ico`` and logs a 404 in the console (the
  first page a reader opens, e.g. the API page).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["setup"]

_FIRST_VISIT_MODE = """
if (!document.documentElement.dataset.mode) { document.documentElement.dataset.mode = "auto"; }
"""

_NAME_SUMMARIES = """
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("summary").forEach(function (s) {
    if (!s.textContent.trim() && !s.getAttribute("aria-label")) {
      s.setAttribute("aria-label", "Show or hide the section's pages");
    }
  });
  document.querySelectorAll(".pst-scrollable-table-container, .bd-article table").forEach(function (t) {
    if (!t.hasAttribute("tabindex")) {
      t.setAttribute("tabindex", "0");
      t.setAttribute("role", "region");
      t.setAttribute("aria-label", "Table (scrolls sideways)");
    }
  });
});
"""


def _script_key(script: Any) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    return (getattr(script, "filename", str(script)) or "", attributes.get("body"))  # None and "" both mean inline


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique  # in place: the builder renders the list object it put in the context


TEMPLATES = Path(__file__).resolve().parent / "templates"
FAVICON = Path(__file__).resolve().parent / "static" / "favicon.svg"


def _add_templates(app, config) -> None:
    """Our templates before the theme's, and our icon unless the book has one (absolute paths: Sphinx
    joins them to the book folder unchanged)."""
    if str(TEMPLATES) not in config.templates_path:
        config.templates_path.insert(0, str(TEMPLATES))
    if not getattr(config, "html_favicon", None):
        config.html_favicon = str(FAVICON)


def setup(app) -> dict:
    app.connect("config-inited", _add_templates)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.add_js_file(None, body=_FIRST_VISIT_MODE, priority=100)
    app.add_js_file(None, body=_NAME_SUMMARIES)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
