"""Layer 2, genes: HGNC symbol resolution and mouse -> human orthologs, the signature catalogue,
gene matching against a dataset, and coverage (when a score rests on too few genes)."""

from .coverage import COVERAGE_COLUMNS, LOW_COVERAGE_FLAG, MIN_COVERAGE, MIN_GENES, coverage_table, is_low_coverage
from .matching import (
                       GeneSet,
                       SignedGeneSet,
                       match_gene_sets,
                       match_signatures,
                       present_genes,
                       resolve_directions,
                       resolve_signatures,
)
from .sasp_classes import (
                       SASP_CLASS_COLUMNS,
                       SASP_SET_COLUMNS,
                       UNCLASSIFIED,
                       SaspClassError,
                       classify_symbols,
                       sasp_class_definitions,
                       sasp_classes,
)
from .signatures import (
                       SignatureResolutionWarning,
                       catalogue,
                       derived_from,
                       get_signature,
                       get_signed_signature,
                       is_signed,
                       jaccard_matrix,
                       lineage_markers,
                       list_signatures,
                       signature_record,
                       signature_resolution,
)
from .symbols import HCOP_SOURCE, HGNC_SOURCE, MAPPED_ORTHOLOG_STATUSES, hgnc_table, mouse_to_human, resolve_symbols

__all__ = ["COVERAGE_COLUMNS", "LOW_COVERAGE_FLAG", "MIN_COVERAGE", "MIN_GENES", "coverage_table", "is_low_coverage",
           "GeneSet", "SignedGeneSet", "match_gene_sets", "match_signatures", "present_genes", "resolve_directions",
           "resolve_signatures", "SignatureResolutionWarning", "catalogue", "lineage_markers",
           "get_signature", "get_signed_signature", "is_signed", "derived_from", "jaccard_matrix", "list_signatures", "signature_record", "signature_resolution",
           "HCOP_SOURCE", "HGNC_SOURCE", "MAPPED_ORTHOLOG_STATUSES", "hgnc_table", "mouse_to_human", "resolve_symbols",
           "SASP_CLASS_COLUMNS", "SASP_SET_COLUMNS", "UNCLASSIFIED", "SaspClassError", "classify_symbols",
           "sasp_class_definitions", "sasp_classes"]
