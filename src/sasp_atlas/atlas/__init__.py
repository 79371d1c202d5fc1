"""Layer 6, atlas: one pipeline from a registry entry or a user's file to the atlas tables
(scores, statistics, null, method concordance, coverage, Table 2)."""

from .pipeline import (
    COMPARED_METHODS,
    DEFAULT_SIGNATURES,
    DatasetResult,
    catalogue_coverage,
    collect_tables,
    embed,
    load_datasets,
    results_dir,
    run_dataset,
    run_table2,
)
from .user import (
    REPORT_CELLS,
    USER_OUTPUTS,
    check_signatures_present,
    read_report_cells,
    report_subsample,
    run_report_cells,
    run_user_file,
    score_user_file,
)

__all__ = [
    "COMPARED_METHODS",
    "DEFAULT_SIGNATURES",
    "DatasetResult",
    "catalogue_coverage",
    "collect_tables",
    "embed",
    "load_datasets",
    "results_dir",
    "run_dataset",
    "run_table2",
    "USER_OUTPUTS",
    "check_signatures_present",
    "run_user_file",
    "score_user_file",
    "REPORT_CELLS",
    "read_report_cells",
    "report_subsample",
    "run_report_cells",
]
