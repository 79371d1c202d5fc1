"""Layer 3, data: readers per file format, loading a registry dataset or a user's file into one
harmonised, log-normalised AnnData shape, and the input checks both share."""

from .census import (
    CensusDatasetError,
    CensusPinMismatchError,
    census_subset_pin,
    pin_census_all,
    pin_census_dataset,
    write_local_census,
)
from .ground_truth import CONDITIONS, load_ground_truth, training_overlap
from .harmonise import (
    crosswalk,
    crosswalk_table,
    harmonise_cell_types,
    harmonise_obs,
    in_review_cancer_type,
    review_cancer_types,
)
from .load import LOADER_VERSION, apply_gene_policy, load_dataset, normalise, resolve_var_names
from .readers import READERS
from .user import DEFAULT_MIN_CELLS, USER_SAMPLE, load_user_data, user_dataset_id
from .validate import LOG_MAX, SYMBOL_COLUMNS, InputError, InputWarning, detect_value_type

__all__ = [
    "CensusDatasetError",
    "CensusPinMismatchError",
    "census_subset_pin",
    "pin_census_all",
    "pin_census_dataset",
    "write_local_census",
    "CONDITIONS",
    "load_ground_truth",
    "training_overlap",
    "crosswalk",
    "crosswalk_table",
    "in_review_cancer_type",
    "review_cancer_types",
    "harmonise_cell_types",
    "harmonise_obs",
    "LOADER_VERSION",
    "apply_gene_policy",
    "load_dataset",
    "normalise",
    "resolve_var_names",
    "READERS",
    "DEFAULT_MIN_CELLS",
    "USER_SAMPLE",
    "load_user_data",
    "user_dataset_id",
    "LOG_MAX",
    "SYMBOL_COLUMNS",
    "InputError",
    "InputWarning",
    "detect_value_type",
]
