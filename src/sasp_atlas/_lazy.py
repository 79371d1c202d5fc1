"""The one way to import a heavy optional dependency where it is used: ``lazy_import("dask.array")``.

``import sasp_atlas`` and ``sasp-atlas --help`` stay fast because dask, distributed, liana,
papermill, playwright and jsonschema (and, for the command line, the package's own layers, which
import scanpy and numba) are loaded on first use, not at module import. Every other import sits at
the top of its module (``tests/test_architecture.py``); a call of :func:`lazy_import` is the only
import that may run inside a function, so the real dependencies of a module stay greppable::

    da = lazy_import("dask.array")          # the module, imported now (cached by Python after the first call)

This module imports only the standard library and nothing of the package, so every layer (and the
root ``__init__``) may use it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["lazy_import"]


def lazy_import(name: str, attribute: str | None = None):
    """Import module ``name`` (absolute, e.g. ``"dask.array"`` or ``"sasp_atlas.site.report"``) on
    first use and return it, or its ``attribute`` when given.

    A missing optional dependency raises :class:`ModuleNotFoundError` naming the module, as a
    top-level import would; Python's module cache makes later calls cheap.
    """
    module: ModuleType = importlib.import_module(name)
    return module if attribute is None else getattr(module, attribute)
