"""Honest coverage: how many of a signature's genes a dataset measures, which were rescued by
symbol resolution, which are missing, and when a score on too few genes is not comparable.
"""

from __future__ import annotations

import pandas as pd
from anndata import AnnData

from .._constants import SCORES_KEY
from .matching import present_genes, resolve_signatures
from .signatures import catalogue, signature_record, signature_resolution

__all__ = ["MIN_COVERAGE", "MIN_GENES", "LOW_COVERAGE_FLAG", "COVERAGE_COLUMNS", "is_low_coverage", "coverage_table"]

#: A score is comparable across datasets only if the dataset holds at least this fraction of the
#: signature's genes ...
MIN_COVERAGE = 0.5
#: ... and at least this many of them. Below either, the mean of a handful of genes (or of a
#: different half of the set) is not the same signature: the pages grey such cells out.
MIN_GENES = 5
LOW_COVERAGE_FLAG = "low coverage: score not comparable"

COVERAGE_COLUMNS = [
    "dataset",
    "signature",
    "n_genes",
    "n_present",
    "coverage",
    "n_rescued",
    "rescued",
    "missing",
    "flag",
    "low_coverage",
    "n_published",
    "unmapped",
]


def is_low_coverage(n_present: int, n_genes: int) -> bool:
    """True if fewer than :data:`MIN_GENES` genes, or less than :data:`MIN_COVERAGE` of them, are present.

    Parameters
    ----------
    n_present
        Signature genes found in the data.
    n_genes
        Signature genes in all (after symbol resolution and de-duplication).
    """
    return n_genes <= 0 or n_present < MIN_GENES or n_present / n_genes < MIN_COVERAGE


def _published_names(signature: str) -> tuple[dict[str, list[str]], int | None, list[str]]:
    """(scored symbol -> published human symbols, n published, published genes not scored) of a catalogue id."""
    if signature not in catalogue():
        return {}, None, []
    res = signature_resolution(signature)
    unmapped = [str(p) for p in res.loc[res["symbol"].isna(), "published"]]
    names: dict[str, list[str]] = {}
    if str(signature_record(signature)["species"]).lower() == "human":  # mouse -> human is orthology, not rescue
        for p, g in zip(res["published"], res["symbol"]):
            if pd.notna(g):
                names.setdefault(str(g), []).append(str(p))
    return names, len(res), unmapped


def _match(adata: AnnData, signatures: list[str]) -> dict[str, dict]:
    """Gene matching only (no scoring): the ``uns[key]["signatures"]`` shape of :func:`sasp_atlas.score`."""
    out = {}
    for sig, genes in resolve_signatures(signatures).items():
        used, missing = present_genes(genes, adata.var_names)
        out[sig] = {"genes_used": used, "genes_missing": missing, "n_genes": len(used) + len(missing)}
    return out


def coverage_table(
    adata: AnnData, *, key: str = SCORES_KEY, signatures: list[str] | None = None, dataset_id: str | None = None
) -> pd.DataFrame:
    """Signature gene coverage after symbol resolution: columns :data:`COVERAGE_COLUMNS`.

    Per scored signature (``adata.uns[key]``): ``n_genes`` genes scored (human symbols
    after resolution, see :func:`sasp_atlas.get_signature`), ``n_present`` of them in the data,
    ``coverage`` = n_present / n_genes, and ``missing`` (space-separated). ``n_rescued`` counts the
    present genes that would have been missed without alias resolution: the dataset's released
    symbol (``var["symbol_original"]``) differs from the signature's published symbol, because
    the data (``CTGF->CCN2``) or the signature (``IL8->CXCL8``) used an older name; ``rescued``
    lists them as ``OLD->NEW`` (``published->NEW<-released`` if both were old). ``flag`` is
    :data:`LOW_COVERAGE_FLAG` (and ``low_coverage`` True) when fewer than :data:`MIN_GENES`
    genes or less than :data:`MIN_COVERAGE` of them are present, else empty. For catalogue
    signatures ``n_published`` is the number of genes as published and ``unmapped`` the published
    genes that are not scored (mouse genes without a usable human ortholog).

    With ``signatures`` (catalogue ids), coverage is computed by gene matching alone, without
    scores (used for the catalogue-wide coverage matrix).

    Parameters
    ----------
    adata
        A dataset, scored (``uns[key]``) unless ``signatures`` is given.
    key
        The ``uns`` slot of the scores (``key_added`` of :func:`sasp_atlas.score`).
    signatures
        Catalogue ids to match without scoring (``None``: the scored signatures).
    dataset_id
        If given, written into a first column ``dataset`` (the atlas's bookkeeping); else no such column.
    """
    matched = _match(adata, signatures) if signatures is not None else adata.uns[key]["signatures"]
    var_names = [str(g) for g in adata.var_names]
    released = adata.var["symbol_original"].astype(str).tolist() if "symbol_original" in adata.var else var_names
    released_of = dict(zip(var_names, released))
    rows = []
    for sig, info in matched.items():
        published, n_published, unmapped = _published_names(sig)
        rescued = []
        for g in map(str, info["genes_used"]):
            old_data, old_sig = released_of.get(g, g), published.get(g, [g])
            if old_data in old_sig:  # the released and the published symbol match: no resolution needed
                continue
            p = old_sig[0]
            rescued.append(f"{old_data}->{g}" if p == g else f"{p}->{g}" if old_data == g else f"{p}->{g}<-{old_data}")
        n_genes, n_present = int(info["n_genes"]), len(info["genes_used"])
        low = is_low_coverage(n_present, n_genes)
        rows.append(
            {
                "signature": sig,
                "n_genes": n_genes,
                "n_present": n_present,
                "coverage": n_present / n_genes if n_genes else float("nan"),
                "n_rescued": len(rescued),
                "rescued": " ".join(rescued),
                "missing": " ".join(sorted(map(str, info["genes_missing"]))),
                "flag": LOW_COVERAGE_FLAG if low else "",
                "low_coverage": low,
                "n_published": n_published if n_published is not None else n_genes,
                "unmapped": " ".join(unmapped),
            }
        )
    out = pd.DataFrame(rows, columns=COVERAGE_COLUMNS[1:])
    if dataset_id is not None:
        out.insert(0, "dataset", dataset_id)
    return out
