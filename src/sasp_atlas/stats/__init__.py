"""Layer 5, stats: per-sample and per-cell-type summaries with intervals and effect sizes (the
patient as the unit), the genes behind a score, and the review's Table 2 put to the test."""

from .summaries import (CELLTYPE_COLUMNS, NULL_JOIN_COLUMNS, auroc, celltype_scores, gene_decomposition,
                        sample_celltype_summary)
from .table2 import TABLE2_COLUMNS, table2_checks

__all__ = ["CELLTYPE_COLUMNS", "NULL_JOIN_COLUMNS", "auroc", "celltype_scores", "gene_decomposition",
           "sample_celltype_summary", "TABLE2_COLUMNS", "table2_checks"]
