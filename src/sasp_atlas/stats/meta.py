"""Across patients and datasets: random-effects meta-analysis per cancer type x cell type x signature.

Rules (methods page, "Across datasets"):

* **One copy per tumour.** A tumour held by several registry entries that share cells (registry
  ``overlaps``) enters once, from the copy with the most cells of that tumour over all cell types
  (the fuller file); on a tie, the dataset whose id sorts first. The choice never depends on the
  cell type or signature, so every row of a tumour comes from the same file
  (:func:`dedupe_overlapping_samples`).
* **Pooling** of the per-sample composition-balanced AUROCs with
  :func:`sasp_atlas.stats.effects.pool` (Paule-Mandel; Knapp-Hartung ad hoc t intervals below
  :data:`~sasp_atlas.stats.effects.SMALL_K` samples). ``k_perfect`` counts tumours separating
  perfectly (AUROC 0 or 1) and ``min_unit_ci_low`` gives the smallest per-tumour lower bound, so a
  row of perfect separations is said in words, not read as certainty.
* **Evidence counts tumours and cohorts**, not registry entries: a cohort is an independent study
  (the publication's accession, else its DOI), so two subsets of one study are one cohort. The
  pseudo-sample of a file that records no patients is pooled but never counted as a tumour
  (``k_unrecorded``).
* **Flags travel**: the signature's lowest gene coverage among the pooled datasets (``coverage``,
  ``low_coverage``), datasets without malignant cells (their comparison group is the tumour
  microenvironment only) and perfect separation are written into ``flag``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..genes import LOW_COVERAGE_FLAG, is_low_coverage
from .effects import REPLICATED_MIN, UNRECORDED_SUFFIX, Z95, pool

__all__ = ["META_COLUMNS", "meta_analysis", "dedupe_overlapping_samples", "MALIGNANT_ONTOLOGY_ID"]

META_COLUMNS = [
    "cancer_type",
    "cell_type",
    "cell_type_ontology_id",
    "signature",
    "measure",
    "k_samples",
    "k_tumours",
    "k_unrecorded",
    "k_datasets",
    "datasets",
    "k_cohorts",
    "cohorts",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "ci_method",
    "pi_low",
    "pi_high",
    "tau2",
    "i2",
    "k_perfect",
    "min_unit_ci_low",
    "max_unit_ci_high",
    "coverage",
    "low_coverage",
    "no_malignant_datasets",
    "evidence",
    "flag",
]
MEASURE = "composition-balanced AUROC (per sample), Paule-Mandel random effects"
#: Cell Ontology "malignant cell": a dataset without it has no malignant cells in its comparison group
MALIGNANT_ONTOLOGY_ID = "CL:0001064"


def dedupe_overlapping_samples(samples: pd.DataFrame, overlaps: dict[str, list[str]]) -> pd.DataFrame:
    """One copy per tumour: a sample present in several datasets that share cells (registry ``overlaps``)
    is kept from the dataset with the most cells of that sample over all its cell types (one signature's
    rows; ties: the dataset id that sorts first) and dropped from the others, for every cell type and
    signature alike. ``samples`` has ``dataset, sample, cell_type, signature, n_cells``."""
    if samples.empty or not overlaps:
        return samples
    first_sig = samples.groupby(["dataset", "sample"])["signature"].transform("first")
    totals = samples[samples["signature"] == first_sig].groupby(["dataset", "sample"])["n_cells"].sum()
    drop: set[tuple[str, str]] = set()
    for sample, per in totals.groupby(level="sample"):
        dsets = sorted(per.index.get_level_values("dataset"))
        linked = [
            d for d in dsets if any(o in overlaps.get(d, []) or d in overlaps.get(o, []) for o in dsets if o != d)
        ]
        if len(linked) < 2:
            continue
        keep = min(linked, key=lambda d: (-int(per.loc[(d, sample)]), d))
        drop.update((d, sample) for d in linked if d != keep)
    if not drop:
        return samples
    pairs = list(zip(samples["dataset"], samples["sample"]))
    return samples[[p not in drop for p in pairs]]


def _evidence(k_tumours: int, k_cohorts: int, k_unrecorded: int) -> str:
    if k_tumours == 0:
        return "samples not recorded" if k_unrecorded else "no effect defined"
    cohorts = f"{k_cohorts} cohort{'s' * (k_cohorts != 1)}"
    if k_tumours >= REPLICATED_MIN and k_cohorts >= 2:
        return f"replicated across cohorts ({k_tumours} tumours, {cohorts})"
    if k_tumours >= REPLICATED_MIN:
        return f"replicated ({k_tumours} tumours, {cohorts})"
    return "single tumour" if k_tumours == 1 else f"{k_tumours} tumours ({cohorts})"


def _celltype_info(celltype: pd.DataFrame | None):
    """From the per-dataset ``celltype_scores`` tables: coverage per (dataset, signature), ontology id per
    (dataset, cell type) and the datasets without malignant cells."""
    if celltype is None or celltype.empty:
        return {}, {}, set()
    cov = celltype.groupby(["dataset", "signature"])[["n_genes_used", "n_genes"]].first()
    coverage = {key: (int(r.n_genes_used), int(r.n_genes)) for key, r in cov.iterrows()}
    onto = (
        celltype.groupby(["dataset", "cell_type"])["cell_type_ontology_id"].first().astype(str).to_dict()
        if "cell_type_ontology_id" in celltype
        else {}
    )
    ids = celltype.get("cell_type_ontology_id", pd.Series("", index=celltype.index)).astype(str)
    has_malignant = set(
        celltype.loc[(ids == MALIGNANT_ONTOLOGY_ID) | (celltype["cell_type"] == "Malignant cell"), "dataset"]
    )
    no_malignant = set(celltype["dataset"]) - has_malignant
    return coverage, onto, no_malignant


def meta_analysis(
    samples: pd.DataFrame,
    cancer_types: dict[str, str],
    overlaps: dict[str, list[str]] | None = None,
    *,
    cohorts: dict[str, str] | None = None,
    celltype: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Pool per-sample composition-balanced AUROCs across the samples of every dataset of a cancer type.

    ``samples``: the atlas's ``sample_celltype_scores`` (``dataset, sample, cell_type, signature,
    n_cells, balanced_auroc, balanced_var``); ``cancer_types``: dataset -> cancer type; ``overlaps``:
    registry ``overlaps`` (one copy per tumour, :func:`dedupe_overlapping_samples`); ``cohorts``:
    dataset -> independent study (publication accession; default: the dataset itself); ``celltype``:
    the concatenated ``celltype_scores`` tables, for the coverage, ontology and malignant-cell columns.
    Per cancer type x cell type x signature: the random-effects estimate
    (:func:`sasp_atlas.stats.effects.pool`) with its 95 % confidence and prediction intervals
    (``ci_method``), tau^2 and I^2, the units (``k_samples`` pooled, ``k_tumours`` named tumours,
    ``k_unrecorded`` pseudo-samples of files recording no patients), ``k_datasets``, ``k_cohorts``,
    perfect separation (``k_perfect``, ``min_unit_ci_low``, ``max_unit_ci_high``), the signature's
    lowest coverage among the pooled datasets (``coverage``, ``low_coverage``), the pooled datasets
    without malignant cells, an ``evidence`` label (``replicated across cohorts`` needs >= 3 tumours
    from >= 2 cohorts) and ``flag`` (every caveat in words). Columns :data:`META_COLUMNS`.
    """
    s = dedupe_overlapping_samples(samples.reset_index(drop=True), overlaps or {})
    s = s.assign(cancer_type=s["dataset"].map(cancer_types))
    s = s[np.isfinite(s["balanced_auroc"]) & np.isfinite(s["balanced_var"]) & (s["balanced_var"] > 0)]
    cohorts = cohorts or {}
    coverage, onto, no_malignant = _celltype_info(celltype)
    rows = []
    for (cancer, ct, sig), g in s.groupby(["cancer_type", "cell_type", "signature"], sort=True):
        b, var = g["balanced_auroc"].to_numpy(), g["balanced_var"].to_numpy()
        if {"balanced_ci_low", "balanced_ci_high"} <= set(g.columns):
            unit_lo, unit_hi = g["balanced_ci_low"].to_numpy(), g["balanced_ci_high"].to_numpy()
        else:  # tables written before the per-sample intervals: Wald on the variance, clipped
            unit_lo, unit_hi = np.clip(b - Z95 * np.sqrt(var), 0, 1), np.clip(b + Z95 * np.sqrt(var), 0, 1)
        res = pool(b, var, bounds=(0, 1), intervals=(unit_lo, unit_hi))
        dsets = sorted(g["dataset"].unique())
        unrecorded = g["sample"].astype(str).str.endswith(UNRECORDED_SUFFIX).to_numpy()
        k_unrec = int(unrecorded.sum())
        k_tumours = int(res["k"]) - k_unrec
        study = sorted({cohorts.get(d, d) for d in g.loc[~unrecorded, "dataset"]})
        k_perfect = int(np.isin(b, (0.0, 1.0)).sum())
        used = [coverage[(d, sig)] for d in dsets if (d, sig) in coverage]
        cov = min((u / n for u, n in used if n), default=float("nan"))
        low = any(is_low_coverage(u, n) for u, n in used)
        no_mal = [d for d in dsets if d in no_malignant]
        flags = []
        if low:
            flags.append(LOW_COVERAGE_FLAG)
        if k_perfect:
            flags.append(
                f"perfect separation in {k_perfect} of {res['k']} tumour{'s' * (res['k'] != 1)} "
                f"(lowest per-tumour bound {unit_lo.min():.2f})"
            )
        if no_mal:
            flags.append(f"comparison group has no malignant cells ({'; '.join(no_mal)})")
        if k_unrec:
            flags.append(
                f"samples not recorded ({'; '.join(sorted(g.loc[unrecorded, 'dataset'].unique()))}): "
                "pooled as one unit, not counted as a tumour"
            )
        onto_ids = sorted({onto.get((d, ct), "") for d in dsets} - {""})
        rows.append(
            {
                "cancer_type": cancer,
                "cell_type": ct,
                "cell_type_ontology_id": ";".join(onto_ids),
                "signature": sig,
                "measure": MEASURE,
                "k_samples": int(res["k"]),
                "k_tumours": k_tumours,
                "k_unrecorded": k_unrec,
                "k_datasets": len(dsets),
                "datasets": "; ".join(dsets),
                "k_cohorts": len(study),
                "cohorts": "; ".join(study),
                **{
                    k: res[k]
                    for k in ("estimate", "se", "ci_low", "ci_high", "ci_method", "pi_low", "pi_high", "tau2", "i2")
                },
                "k_perfect": k_perfect,
                "min_unit_ci_low": float(unit_lo.min()),
                "max_unit_ci_high": float(unit_hi.max()),
                "coverage": cov,
                "low_coverage": bool(low),
                "no_malignant_datasets": "; ".join(no_mal),
                "evidence": _evidence(k_tumours, len(study), k_unrec),
                "flag": "; ".join(flags),
            }
        )
    return pd.DataFrame(rows, columns=META_COLUMNS)
