"""sasp-atlas: senescence-associated secretory phenotype signatures across cell and cancer types."""

from importlib.metadata import PackageNotFoundError, version

from .io import load_dataset
from .registry import get_dataset, list_datasets
from .scoring import score
from .signatures import get_signature, list_signatures

try:
    __version__ = version("sasp-atlas")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["load_dataset", "get_dataset", "list_datasets", "score", "get_signature", "list_signatures", "__version__"]
