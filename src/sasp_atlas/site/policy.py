"""Page policy: which signatures get which figures, and the words that go with them.

The notebook templates only present; every choice of what to show lives here, where it is
tested (``tests/site/test_policy.py``), instead of as indexing inside a template.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence

from anndata import ImplicitModificationWarning

from ..data import InputWarning
from ..genes import SignatureResolutionWarning, catalogue
from ..genes.symbols import AmbiguousSymbolWarning, OrthologWarning
from . import charts

__all__ = [
    "headline_signature",
    "detail_signatures",
    "method_signatures",
    "gene_figure_signature",
    "overlap_signatures",
    "setup_page",
    "N_DETAIL",
    "N_METHODS",
    "QUIET_WARNINGS",
]

#: signatures with their own distribution, null, gene and embedding figures on a dataset page
N_DETAIL = 2
#: signatures compared across engines on a dataset page
N_METHODS = 4
#: the signature preferred for "genes behind the scores" across datasets (the secreted SenMayo subset)
GENE_FIGURE_PREFERRED = "senmayo_secreted"
#: families left out of the catalogue's overlap heatmap (too many near-identical tissue hubs)
OVERLAP_EXCLUDED_FAMILIES = ("senepy_human_hubs",)
#: warnings a published page does not show: each is recorded where it matters (coverage tables,
#: provenance, the user's report notes), so repeating it on the page says nothing new
QUIET_WARNINGS = (
    SignatureResolutionWarning,
    AmbiguousSymbolWarning,
    OrthologWarning,
    InputWarning,
    ImplicitModificationWarning,
)


def setup_page() -> None:
    """What every page template does first: offline charts, the package's logs at WARNING, and the
    :data:`QUIET_WARNINGS` filtered by class (anything else still reaches the log)."""
    charts.enable_offline_renderer()
    logging.getLogger("sasp_atlas").setLevel(logging.WARNING)
    for category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", category=category)


def detail_signatures(signatures: Sequence[str]) -> list[str]:
    """The first :data:`N_DETAIL` signatures (any number, one included, is fine)."""
    return list(signatures)[:N_DETAIL]


def method_signatures(signatures: Sequence[str]) -> list[str]:
    """The first :data:`N_METHODS` signatures, compared across engines."""
    return list(signatures)[:N_METHODS]


def gene_figure_signature(signatures: Sequence[str]) -> tuple[str, str]:
    """``(signature id, sentence)`` for the cross-dataset "genes behind the scores" figure:
    :data:`GENE_FIGURE_PREFERRED` when it is scored, else the first signature; the sentence names
    the one chosen, so the prose always matches the figure."""
    if not signatures:
        raise ValueError("no signature to show: pass at least one signature")
    sig = GENE_FIGURE_PREFERRED if GENE_FIGURE_PREFERRED in signatures else signatures[0]
    name = catalogue()[sig]["name"] if sig in catalogue() else sig
    return sig, (
        f"Mean expression and fraction expressing of the genes of **{name}** (`{sig}`) per cell type in each "
        "dataset: the factors behind each number (for SASP sets: IL6, CXCL8, CCL2, MMPs, SERPINE1, ...)."
    )


def overlap_signatures(ids: Sequence[str]) -> list[str]:
    """Catalogue ids shown in the overlap heatmap: all but the :data:`OVERLAP_EXCLUDED_FAMILIES`."""
    cat = catalogue()
    return [i for i in ids if cat.get(i, {}).get("family") not in OVERLAP_EXCLUDED_FAMILIES]


#: the signature the landing page and the atlas page's findings are about, when the build has it
HEADLINE_SIGNATURE = "senmayo"


#: the SASP sets among the catalogue's signatures (secreted-factor programmes), from which the landing map
#: opens on the best-validated one
SASP_SIGNATURES = (
    "senmayo",
    "senmayo_secreted",
    "reactome_sasp",
    "gavish_mp22_secreted_i",
    "gavish_mp23_secreted_ii",
    "basisty2020_core_sasp_fibroblast",
    "basisty2020_core_sasp_fibroblast_epithelial",
)


def headline_signature(signatures: Sequence[str], validity: Mapping[str, tuple[int, float]] | None = None) -> str:
    """The signature the landing map opens on and the findings are about. With ``validity``
    (``{signature: (label rank, pooled AUROC)}``, lower rank = better validated): the best-validated SASP
    set (:data:`SASP_SIGNATURES`) among ``signatures`` (ties: the higher AUROC). Without it, or without a
    SASP set: :data:`HEADLINE_SIGNATURE` if built, else the first."""
    if not signatures:
        raise ValueError("no signatures")
    sasp = [s for s in signatures if s in SASP_SIGNATURES]
    if validity and sasp:
        return min(sasp, key=lambda s: (validity.get(s, (99, 0.0))[0], -validity.get(s, (99, 0.0))[1], sasp.index(s)))
    return HEADLINE_SIGNATURE if HEADLINE_SIGNATURE in signatures else signatures[0]
