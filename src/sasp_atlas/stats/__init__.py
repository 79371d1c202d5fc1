"""Layer 5, stats: per-sample effects pooled across samples by random-effects meta-analysis (the
patient as the unit), evidence labels, permutation and null tests with FDR, the genes behind a score,
and the review's Table 2 put to the test; SASP composition by factor class (:mod:`.composition`) and SASP
ligand -> receptor communication with LIANA (:mod:`.communication`). Seed-free, except LIANA's label
permutations in :mod:`.communication` (a fixed seed, recorded with the table)."""

from .effects import bh_q, evidence_label, pool, sample_effects, stratified_permutation_p
from .meta import META_COLUMNS, dedupe_overlapping_samples, meta_analysis
from .summaries import (
    CELLTYPE_COLUMNS,
    EFFECT_MEASURE,
    NULL_JOIN_COLUMNS,
    add_q_values,
    auroc,
    celltype_scores,
    gene_decomposition,
    sample_celltype_summary,
)
from .table2 import SUPPORT_EFFECT, TABLE2_COLUMNS, VERDICTS, table2_checks

__all__ = [
    "CELLTYPE_COLUMNS",
    "EFFECT_MEASURE",
    "NULL_JOIN_COLUMNS",
    "add_q_values",
    "auroc",
    "celltype_scores",
    "gene_decomposition",
    "sample_celltype_summary",
    "TABLE2_COLUMNS",
    "table2_checks",
    "bh_q",
    "evidence_label",
    "pool",
    "sample_effects",
    "stratified_permutation_p",
    "META_COLUMNS",
    "dedupe_overlapping_samples",
    "meta_analysis",
    "SUPPORT_EFFECT",
    "VERDICTS",
]
