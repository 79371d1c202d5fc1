"""Layer 1, sources: the data registry (schema, entries), hash-verified fetching and pinning, and
where the package's run-time files live. Imports nothing else of the package."""

from .fetch import (
                    DataUnavailableError,
                    HashMismatchError,
                    NotPinnedError,
                    cache_dir,
                    fetch_dataset,
                    fetch_file,
                    fetch_resource,
                    file_hashes,
                    file_sha256,
                    mirror_dir,
                    pin_all,
                    pin_candidates,
                    pin_dataset,
                    pin_registry_entries,
                    pin_registry_text,
)
from .paths import BUNDLED_DIR, CHECKOUT_DIR, PROJECT_SKELETON, atlas_package_version, project_file
from .registry import (
                    TRUST_LEVELS,
                    USER_TRUST,
                    Dataset,
                    RegistryError,
                    cohort_of,
                    get_dataset,
                    get_ground_truth,
                    get_resource,
                    list_datasets,
                    list_ground_truth,
                    list_unverified,
                    load_registry,
                    load_resources,
                    registry_path,
                    trust_level,
                    validate_registry,
)

__all__ = ["TRUST_LEVELS", "USER_TRUST", "trust_level", "Dataset", "RegistryError", "cohort_of", "get_dataset", "get_ground_truth", "list_ground_truth",
           "get_resource", "list_datasets", "list_unverified", "load_registry",
           "load_resources", "registry_path", "validate_registry", "DataUnavailableError", "NotPinnedError", "HashMismatchError",
           "cache_dir", "fetch_dataset", "fetch_file", "fetch_resource", "file_hashes", "file_sha256", "mirror_dir",
           "pin_all", "pin_candidates", "pin_dataset", "pin_registry_entries", "pin_registry_text", "atlas_package_version",
           "project_file", "BUNDLED_DIR", "CHECKOUT_DIR", "PROJECT_SKELETON"]
