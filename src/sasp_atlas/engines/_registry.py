"""The method registry: name -> method module (its ``META``, ``prepare`` and kernel)."""

from __future__ import annotations

from types import ModuleType

import pandas as pd

from . import _aucell, _expected, _gsva, _husi, _mean, _scanpy, _seurat, _ssgsea, _ucell, _zmean

__all__ = ["METHODS", "DEFAULT_METHOD", "DASK_METHODS", "ALL_CELL_METHODS", "get_method", "list_methods"]

#: the atlas's score: seed-free (every table and verdict is the same for any random_state)
DEFAULT_METHOD = "expected"

_REGISTRY: dict[str, ModuleType] = {
    m.META.name: m for m in (_expected, _scanpy, _aucell, _ucell, _mean, _zmean, _seurat, _ssgsea, _gsva, _husi)
}
METHODS = tuple(_REGISTRY)
#: methods that score each cell on its own values plus gene statistics, so chunk by chunk on a dask array
DASK_METHODS = tuple(name for name, m in _REGISTRY.items() if not m.META.all_cells)
#: methods that need all cells at once (``MethodMeta.all_cells``; refused on a dask array)
ALL_CELL_METHODS = tuple(name for name, m in _REGISTRY.items() if m.META.all_cells)


def get_method(name: str) -> ModuleType:
    """The module of method ``name`` (its ``META``, kernel and ``prepare``)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown scoring method {name!r}; available: {', '.join(METHODS)}") from None


def list_methods() -> pd.DataFrame:
    """One row per method: ``name, description, value_range, reference, assumptions, kind, params, signed``
    (``signed``: how the method scores a signed signature from its up and down parts; missing when it refuses them)."""
    return pd.DataFrame([m.META.record() for m in _REGISTRY.values()])
