"""sasp-atlas: senescence-associated secretory phenotype signatures across cell and cancer types.

Layers, each importing only the layers before it (an import-linter contract in ``pyproject.toml``):
``_constants`` (the obs/obsm/uns key names) < ``sources`` (registry, fetch) < ``genes`` (symbols, signatures, matching, coverage) < ``data``
(readers, load, harmonise, validation) < ``engines`` (scoring methods, null) < ``stats`` < ``atlas``
(one pipeline for registry and user data) < ``site`` (charts, figures, pages, book, report) < ``cli``.

The public names below (and the layers as attributes, ``sasp_atlas.engines``) are loaded on first
access through :func:`sasp_atlas._lazy.lazy_import`, so ``import sasp_atlas`` and
``sasp-atlas --help`` do not pay for scanpy and numba until a name is used.
"""

from ._lazy import lazy_import

#: public name -> the module that defines it
_API = {
    "load_dataset": "sasp_atlas.data",
    "load_ground_truth": "sasp_atlas.data",
    "load_user_data": "sasp_atlas.data",
    "score": "sasp_atlas.engines",
    "list_methods": "sasp_atlas.engines",
    "get_signature": "sasp_atlas.genes",
    "list_signatures": "sasp_atlas.genes",
    "atlas_package_version": "sasp_atlas.sources",
    "get_dataset": "sasp_atlas.sources",
    "list_datasets": "sasp_atlas.sources",
}
_LAYERS = ("sources", "genes", "data", "engines", "stats", "atlas", "site", "cli")

__all__ = [
    "load_dataset",
    "load_ground_truth",
    "load_user_data",
    "get_dataset",
    "list_datasets",
    "score",
    "list_methods",
    "get_signature",
    "list_signatures",
    "__version__",
]


def __getattr__(name: str):
    if name in _API:
        value = lazy_import(_API[name], name)
    elif name == "__version__":
        value = lazy_import("sasp_atlas.sources.paths", "atlas_package_version")()
    elif name in _LAYERS:
        value = lazy_import(f"sasp_atlas.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted({*globals(), *_API, "__version__", *_LAYERS})
