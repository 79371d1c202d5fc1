"""The public API keeps the conventions scverse users expect (scanpy/decoupler): ``adata`` first,
options keyword-only, every parameter documented, ``Returns`` naming the ``adata`` slots written,
and the functions on the API reference page exist."""

from __future__ import annotations

import inspect
import re

import pytest
from conftest import PROJECT_ROOT

import sasp_atlas
from sasp_atlas import atlas, data, engines, genes, stats

#: the functions documented on book/api.md
API_PAGE = re.findall(r"autofunction:: (\S+)", (PROJECT_ROOT / "book" / "api.md").read_text())


def _resolve(dotted: str):
    obj = sasp_atlas
    for part in dotted.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def test_api_page_lists_existing_functions():
    assert len(API_PAGE) >= 15
    for name in API_PAGE:
        assert callable(_resolve(name)), name
    for name in sasp_atlas.__all__:
        if callable(getattr(sasp_atlas, name)):
            assert f"sasp_atlas.{name}" in API_PAGE, f"top-level {name} is not on the API page"


def documented_parameters(doc: str) -> dict[str, str]:
    """``{name: description}`` of the numpydoc ``Parameters`` section: entry lines (``name : type`` or
    ``a, b : type``) at the section's indentation, each followed by its indented description. A name that
    only appears in prose, or in another section, is not documented."""
    lines = doc.splitlines()
    start = next(
        (
            i + 2
            for i in range(len(lines) - 1)
            if lines[i].strip() == "Parameters" and set(lines[i + 1].strip()) == {"-"}
        ),
        None,
    )
    if start is None:
        return {}
    out: dict[str, str] = {}
    names: list[str] = []
    for i in range(start, len(lines)):
        line = lines[i]
        if i + 1 < len(lines) and line.strip() and set(lines[i + 1].strip()) == {"-"} and not line.startswith(" "):
            break  # the next section (Returns, Examples, ...)
        if line and not line[0].isspace():
            head = line.split(" : ", 1)[0].rstrip(":").strip()
            names = [n.strip().lstrip("*") for n in head.split(",")]
            for n in names:
                out[n] = ""
        elif line.strip() and names:
            for n in names:
                out[n] = (out[n] + " " + line.strip()).strip()
    return out


def test_documented_parameters_reads_only_the_parameters_section():
    doc = (
        "Score cells; the genes are matched to adata.var_names.\n\nParameters\n----------\nadata\n    The data.\n"
        "key_added, copy : str, bool\n    Where to write; whether to copy.\nmethod : str\n\n"
        "Returns\n-------\nlayer\n    Not a parameter.\n"
    )
    found = documented_parameters(doc)
    assert set(found) == {"adata", "key_added", "copy", "method"}
    assert found["copy"] == "Where to write; whether to copy." and found["method"] == ""
    assert documented_parameters("Uses adata and genes in prose only.") == {}


@pytest.mark.parametrize("name", API_PAGE)
def test_every_parameter_is_documented(name):
    """Each parameter has its own entry, with a description, in the numpydoc ``Parameters`` section
    (a name mentioned elsewhere in the docstring does not count)."""
    fn = _resolve(name)
    doc = inspect.getdoc(fn) or ""
    assert doc, f"{name} has no docstring"
    documented = documented_parameters(doc)
    missing = [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and not documented.get(p.name)
    ]
    assert missing == [], f"{name}: parameters without an entry (and description) under Parameters: {missing}"


@pytest.mark.parametrize("name", API_PAGE)
def test_docstrings_parse_as_numpydoc(name):
    """What the API page renders (Sphinx napoleon): every ``:param`` is a real parameter (prose after a
    Parameters section would otherwise be read as parameters)."""
    from sphinx.ext.napoleon import Config, NumpyDocstring

    fn = _resolve(name)
    rendered = str(NumpyDocstring(inspect.getdoc(fn), Config(napoleon_use_rtype=False)))
    params = set(inspect.signature(fn).parameters)
    bad = [m for m in re.findall(r"^:param ([^:]*):", rendered, re.M) if m.replace("\\*", "") not in params]
    assert bad == [], f"{name}: {bad}"


ADATA_FUNCTIONS = [f for f in API_PAGE if next(iter(inspect.signature(_resolve(f)).parameters), None) == "adata"]


@pytest.mark.parametrize("name", ADATA_FUNCTIONS)
def test_adata_first_then_keyword_only_options(name):
    params = list(inspect.signature(_resolve(name)).parameters.values())
    assert params[0].name == "adata"
    for p in params[1:]:
        if p.default is not p.empty or p.kind == p.VAR_KEYWORD:
            assert p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD), f"{name}: option {p.name!r} must be keyword-only"


def test_score_has_the_scanpy_shape():
    sig = inspect.signature(sasp_atlas.score)
    for option, default in (("method", "scanpy"), ("key_added", "sasp_scores"), ("copy", False), ("random_state", 0)):
        assert sig.parameters[option].kind == inspect.Parameter.KEYWORD_ONLY
        assert sig.parameters[option].default == default
    doc = inspect.getdoc(sasp_atlas.score)
    assert "Returns\n-------" in doc and "adata.obsm[key_added]" in doc and "adata.uns[key_added]" in doc


def test_layers_are_public_namespaces():
    for module in (atlas, data, engines, genes, stats):
        assert module.__all__ and all(hasattr(module, n) for n in module.__all__), module.__name__
