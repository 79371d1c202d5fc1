"""sasp-atlas: senescence-associated secretory phenotype signatures across cell and cancer types.

Layers, each importing only the layers before it (an import-linter contract in ``pyproject.toml``):
``_constants`` (the obs/obsm/uns key names) < ``sources`` (registry, fetch) < ``genes`` (symbols, signatures, matching, coverage) < ``data``
(readers, load, harmonise, validation) < ``engines`` (scoring methods, null) < ``stats`` < ``atlas``
(one pipeline for registry and user data) < ``site`` (charts, figures, pages, book, report) < ``cli``.
"""

from .data import load_dataset, load_ground_truth, load_user_data
from .engines import list_methods, score
from .genes import get_signature, list_signatures
from .sources import atlas_package_version, get_dataset, list_datasets

__version__ = atlas_package_version()

__all__ = ["load_dataset", "load_ground_truth", "load_user_data", "get_dataset", "list_datasets", "score", "list_methods", "get_signature",
           "list_signatures", "__version__"]
