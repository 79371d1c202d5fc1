"""The review's Table 2 put to the test: is each row's gene set higher in its cell type than in the
other cell types of the same tumour? Five verdicts, seed-free, with the evidence behind each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._constants import CELL_TYPE_KEY, PROVENANCE_KEY, SAMPLE_KEY, SCORES_KEY
from ..data import crosswalk, in_review_cancer_type
from ..engines import DEFAULT_METHOD, score
from ..genes import catalogue, get_signature, is_low_coverage, lineage_markers, present_genes
from ..sources import cohort_of
from .effects import UNRECORDED_SUFFIX, evidence_label, pool, sample_effects

__all__ = ["table2_checks", "TABLE2_COLUMNS", "VERDICTS", "SUPPORT_EFFECT", "MIN_DETECTION", "BARELY_DETECTED"]

TABLE2_COLUMNS = [
    "row",
    "table2_cell_type",
    "table2_cancer_types",
    "signature",
    "dataset",
    "cancer_type",
    "cancer_type_matches",
    "cell_type",
    "ontology_match",
    "n_cells",
    "n_samples",
    "evidence",
    "n_genes",
    "n_present",
    "coverage",
    "effect_size",
    "ci_low",
    "ci_high",
    "ci_unit",
    "auroc_vs_rest",
    "auroc_vs_rest_ci_low",
    "auroc_vs_rest_ci_high",
    "identity_genes_removed",
    "identity_adjusted_effect",
    "identity_adjusted_ci_low",
    "identity_adjusted_ci_high",
    "detection",
    "max_detection",
    "overlaps",
    "cohort",
    "n_cells_dataset",
    "verdict",
]
#: a row is supported when its composition-balanced AUROC is at least this and its interval is above 0.5
SUPPORT_EFFECT = 0.6
#: a row's genes must be detected (non-zero) in at least this share of the tested cells for a verdict:
#: when every present gene is detected in fewer of them, the score of those cells is mostly its
#: control-gene background, and the effect says little about the row's genes
MIN_DETECTION = 0.10
BARELY_DETECTED = "inconclusive: genes barely detected"
VERDICTS = (
    "supported",
    "supported in another cancer type",
    "contradicted",
    "inconclusive",
    BARELY_DETECTED,
    "not testable: cell type absent",
    "not testable: genes missing",
)


def _verdict(effect: float, lo: float, hi: float, matches: bool, max_detection: float) -> str:
    if max_detection < MIN_DETECTION:
        return BARELY_DETECTED
    if effect >= SUPPORT_EFFECT and lo > 0.5:
        return "supported" if matches else "supported in another cancer type"
    if hi < 0.5:
        return "contradicted"
    return "inconclusive"


def _balanced(
    adata: AnnData, genes: list[str], target: np.ndarray, name: str, groupby: str, sample_key: str
) -> tuple[dict, dict, int, bool]:
    """Pooled composition-balanced AUROC and AUROC vs rest of ``target`` cells for one gene set."""
    work = AnnData(X=adata.X, obs=pd.DataFrame(index=adata.obs_names), var=pd.DataFrame(index=adata.var_names))
    score(work, {name: genes}, method=DEFAULT_METHOD, key_added=SCORES_KEY)
    groups = np.where(target, "__target__", adata.obs[groupby].astype(str).to_numpy())
    eff = sample_effects(work.obsm[SCORES_KEY], groups, adata.obs[sample_key].astype(str).to_numpy())
    eff = eff[eff["cell_type"] == "__target__"]
    balanced = pool(
        eff["balanced_auroc"],
        eff["balanced_var"],
        bounds=(0, 1),
        intervals=(eff["balanced_ci_low"], eff["balanced_ci_high"]),
    )
    rest = pool(eff["auroc"], eff["auroc_var"], bounds=(0, 1), intervals=(eff["auroc_ci_low"], eff["auroc_ci_high"]))
    unrecorded = len(eff) == 1 and str(eff["sample"].iloc[0]).endswith(UNRECORDED_SUFFIX)
    return balanced, rest, int(balanced["k"]), unrecorded


def _detection(adata: AnnData, genes: list[str], target: np.ndarray) -> tuple[str, float]:
    """``GENE pct%`` of the row's present genes (the share of the target cells with a non-zero value),
    and the largest of those shares."""
    X = adata[target, genes].X
    frac = (
        np.asarray((X != 0).sum(axis=0)).ravel() / max(int(target.sum()), 1)
        if sp.issparse(X)
        else (np.asarray(X) != 0).mean(axis=0)
    )
    text = ", ".join(f"{g} {100 * f:.0f}%" for g, f in sorted(zip(genes, frac), key=lambda x: -x[1]))
    return text, float(np.max(frac)) if len(frac) else 0.0


def _cohort(adata: AnnData, dataset_id: str) -> str:
    """The study a dataset comes from: its publication's accession (``GEO GSE70630``), else its DOI,
    else the dataset id (registry subsets of one study share it)."""
    return cohort_of(adata.uns.get(PROVENANCE_KEY, {}), dataset_id)


def _ontology_match(entry: dict, cell_types: pd.Series) -> str:
    """How close the harmonised stand-in is to the review's cell type, for the types this dataset has:
    the crosswalk's ``match``/``note`` (one value for the row, or one per harmonised type)."""
    targets = entry.get("cell_types", [])
    if not targets:
        return ""
    match, note = entry.get("match", ""), entry.get("note", "")
    if not isinstance(match, dict):
        return f"{match}: {note}".strip(": ")
    present = [t for t in targets if (cell_types == t).any()] or targets
    notes = note if isinstance(note, dict) else {}
    return "; ".join(f"{match.get(t, '')} ({t}){': ' + notes[t] if t in notes else ''}" for t in present)


def table2_checks(
    adatas: dict[str, AnnData],
    *,
    overlaps: dict[str, list[str]] | None = None,
    groupby: str = CELL_TYPE_KEY,
    sample_key: str = SAMPLE_KEY,
) -> pd.DataFrame:
    """Test each row of the review's Table 2 on every dataset.

    For each row (``table2_*`` signatures; the review's cell type mapped to harmonised types by
    ``crosswalk.yaml: table2``) and dataset, the row's genes are scored with the seed-free
    ``expected`` control-gene score; the **effect** is the composition-balanced AUROC of the row's
    cell type against each other cell type of the same tumour (weighted equally), per sample, pooled
    across samples by random-effects meta-analysis (:mod:`sasp_atlas.stats.effects`; Knapp-Hartung t
    intervals below ``SMALL_K`` samples); one sample: the mean of its pairwise score intervals over its
    cells (``ci_unit``). Also reported: the AUROC against all other cells of
    the tumour, the **identity-adjusted** effect (the row without the cell type's own lineage markers,
    :func:`sasp_atlas.genes.lineage_markers`, listed in ``identity_genes_removed``), the share of the
    cell type's cells detecting each gene (``detection``), whether the dataset's cancer type is one
    the review names (``cancer_type_matches``), how close the harmonised type is to the review's
    (``ontology_match``: exact, subtypes or related) and the evidence (``evidence``). Verdicts:

    * ``not testable: cell type absent`` / ``not testable: genes missing`` (fewer than 5 or than half
      of the row's genes measured);
    * ``supported`` — the review's cancer type, effect >= :data:`SUPPORT_EFFECT` and its 95 % interval
      above 0.5; ``supported in another cancer type`` — the same in a cancer type the review does not
      name (transfer evidence, not confirmation);
    * ``contradicted`` — the interval entirely below 0.5 (lower in this cell type than in the others);
    * ``inconclusive: genes barely detected`` — every present gene is detected (non-zero) in fewer
      than :data:`MIN_DETECTION` of the tested cells (``max_detection``), whatever the effect: the
      score of those cells is then mostly its control-gene background. "Every gene" rather than the
      median gene: one well-detected gene carries a score, and ``detection`` lists each gene's share;
    * ``inconclusive`` — everything else testable.

    Datasets that are subsets of one study share its ``cohort`` (the publication's accession, else its
    DOI, else the dataset id); ``n_cells_dataset`` (all cells of the file) tells the fuller copy.

    Nothing is random: the table is the same for every seed.

    Parameters
    ----------
    adatas
        Dataset id -> harmonised AnnData (``obs[groupby]``, ``obs[sample_key]``, ``uns["provenance"]``).
    overlaps
        Dataset id -> ids of datasets sharing cells with it (registry ``overlaps``), shown per row.
    groupby
        The obs column of the harmonised cell types (``crosswalk.yaml: table2`` names their labels).
    sample_key
        The obs column of samples (tumours), the unit of replication.
    """
    cw = crosswalk()["table2"]
    overlaps = overlaps or {}
    rows = []
    recs = sorted((r for r in catalogue().values() if "table2" in r), key=lambda r: r["table2"]["row"])
    for rec in recs:
        t2 = rec["table2"]
        entry = cw.get(t2["cell_type"], {})
        targets = entry.get("cell_types", [])
        genes = get_signature(rec["id"])
        markers = set()
        for ct in targets:
            markers.update(lineage_markers(ct))
        for dataset_id, adata in adatas.items():
            prov = adata.uns[PROVENANCE_KEY]
            cancer = prov["cancer_type"]
            matches = in_review_cancer_type(t2.get("cancer_types", []), prov.get("cancer_type_ontology_id"))
            present, _ = present_genes(genes, adata.var_names)
            # the listed harmonised types, or cells coded with the review's own Cell Ontology term
            # (CELLxGENE data keep their ontology ids: hepatocytes are CL:0000182 there)
            by_name = adata.obs[groupby].astype(str).isin(targets).to_numpy()
            by_term = (
                (adata.obs["cell_type_ontology_id"].astype(str).to_numpy() == entry.get("ontology_id", "-")) & ~by_name
                if "cell_type_ontology_id" in adata.obs
                else np.zeros(adata.n_obs, bool)
            )
            target = by_name | by_term
            tested = targets + ([f"{entry['ontology_label']} ({entry['ontology_id']})"] if by_term.any() else [])
            base = {
                "row": t2["row"],
                "table2_cell_type": t2["cell_type"],
                "table2_cancer_types": "; ".join(t2.get("cancer_types", [])),
                "signature": rec["id"],
                "dataset": dataset_id,
                "cancer_type": cancer,
                "cancer_type_matches": matches,
                "cell_type": " + ".join(tested),
                "ontology_match": "; ".join(
                    x
                    for x in (
                        _ontology_match(entry, adata.obs[groupby].astype(str)),
                        "exact (Cell Ontology id)" if by_term.any() else "",
                    )
                    if x
                ),
                "n_cells": int(target.sum()),
                "n_genes": len(genes),
                "n_present": len(present),
                "coverage": len(present) / len(genes) if genes else 0.0,
                "overlaps": "; ".join(overlaps.get(dataset_id, [])),
                "cohort": _cohort(adata, dataset_id),
                "n_cells_dataset": int(adata.n_obs),
            }
            empty = {
                "n_samples": int(adata.obs[sample_key][target].nunique()),
                "evidence": "",
                "effect_size": np.nan,
                "ci_low": np.nan,
                "ci_high": np.nan,
                "ci_unit": "",
            }
            if not targets or target.sum() == 0 or target.all():
                rows.append({**base, **empty, "verdict": "not testable: cell type absent"})
                continue
            if is_low_coverage(len(present), len(genes)):
                rows.append({**base, **empty, "verdict": "not testable: genes missing"})
                continue
            balanced, rest, k, unrecorded = _balanced(adata, present, target, rec["id"], groupby, sample_key)
            removed = [g for g in present if g in markers]
            kept = [g for g in present if g not in markers]
            adjusted = (
                _balanced(adata, kept, target, rec["id"], groupby, sample_key)[0] if removed and kept else balanced
            )
            detection, max_detection = _detection(adata, present, target)
            rows.append(
                {
                    **base,
                    "n_samples": k,
                    "evidence": evidence_label(k, unrecorded=unrecorded),
                    "effect_size": balanced["estimate"],
                    "ci_low": balanced["ci_low"],
                    "ci_high": balanced["ci_high"],
                    "ci_unit": "samples (random effects)" if k > 1 else "cells (single sample)",
                    "auroc_vs_rest": rest["estimate"],
                    "auroc_vs_rest_ci_low": rest["ci_low"],
                    "auroc_vs_rest_ci_high": rest["ci_high"],
                    "identity_genes_removed": " ".join(removed),
                    "identity_adjusted_effect": adjusted["estimate"],
                    "identity_adjusted_ci_low": adjusted["ci_low"],
                    "identity_adjusted_ci_high": adjusted["ci_high"],
                    "detection": detection,
                    "max_detection": max_detection,
                    "verdict": _verdict(
                        balanced["estimate"], balanced["ci_low"], balanced["ci_high"], matches, max_detection
                    ),
                }
            )
    return pd.DataFrame(rows, columns=TABLE2_COLUMNS)
