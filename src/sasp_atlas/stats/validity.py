"""Does a signature detect senescence? Its AUROC senescent vs control on labelled ground truth.

Method (methods page, "Which signatures detect senescence?"):

* **Per unit of replication** (a fibroblast strain, a donor): the AUROC of the signature's score in
  senescent vs control observations (bulk samples or cells) of that unit, Mann-Whitney U/(n1 n0), with
  Newcombe's score interval and the variance it implies (:func:`sasp_atlas.stats.effects.auroc_interval`),
  so a unit of 3 vs 3 samples that separates perfectly keeps an interval and a finite weight and is never
  dropped. When every unit holds one condition only (replicate samples of one condition each), the units
  themselves are the observations: each unit's mean score, one AUROC over the units.
* **Pooled over units** by the atlas's random-effects pooling (:func:`sasp_atlas.stats.effects.pool`:
  Paule-Mandel, Knapp-Hartung ad hoc t intervals below 5 units), then **over data sets** the same way
  (:func:`pool_validity`), once with every data set and once leaving out those the signature or index
  was derived from or trained on (``training_overlap``).
* **Quiescent controls are never pooled** with proliferating ones: they are separate comparisons
  (``control``); across data sets, proliferating (in vitro) and untreated (in vivo) controls form the
  ``non-senescent`` group (:data:`CONTROL_GROUPS`).
* **Designs that cannot conclude are shown, not pooled**: a data set where even perfect separation in
  every unit would leave the interval covering 0.5 (e.g. two senescent vs two control replicates:
  best case [0.39, 1]) is ``informative`` False and ``untested`` for the label.
* **Label** (:func:`validity_label`): ``detects`` (AUROC >= :data:`DETECTS_AUROC`, interval above 0.5),
  ``weak`` (interval above 0.5, AUROC below that), ``no signal`` (interval covers 0.5), ``inverse``
  (interval below 0.5: the signature scores senescent samples lower), ``untested`` (no ground truth with
  enough of its genes: coverage below the atlas's threshold, or no data set of its species).

Nothing here is random.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ..engines import DEFAULT_METHOD
from .effects import auroc_interval, pool

__all__ = [
    "VALIDITY_COLUMNS",
    "POOLED_VALIDITY_COLUMNS",
    "DETECTS_AUROC",
    "VALIDITY_LABELS",
    "CONTROL_GROUPS",
    "unit_aurocs",
    "signature_validity",
    "pool_validity",
    "validity_label",
    "validity_labels",
    "NOT_ASSESSED",
]

#: the label of a signature the build has no validity table for
NOT_ASSESSED = "not assessed"
#: a signature "detects" senescence when its pooled AUROC reaches this with its interval above 0.5
DETECTS_AUROC = 0.75
VALIDITY_LABELS = ("detects", "weak", "no signal", "inverse", "untested")
#: control classes pooled across data sets: proliferating cells (in vitro) and untreated controls (in vivo)
#: are both non-senescent cycling-competent references; quiescent cells are never pooled with them
CONTROL_GROUPS = {"proliferating": "non-senescent", "control": "non-senescent", "quiescent": "quiescent"}
VALIDITY_COLUMNS = [
    "signature",
    "method",
    "benchmark",
    "control",
    "design",
    "n_units",
    "n_senescent",
    "n_control",
    "auroc",
    "ci_low",
    "ci_high",
    "se",
    "tau2",
    "ci_method",
    "k_perfect",
    "min_unit_ci_low",
    "coverage",
    "n_genes",
    "n_genes_used",
    "training_overlap",
    "informative",
    "label",
    "flag",
]
POOLED_VALIDITY_COLUMNS = [
    "signature",
    "method",
    "control",
    "n_benchmarks",
    "benchmarks",
    "n_units",
    "auroc",
    "ci_low",
    "ci_high",
    "tau2",
    "ci_method",
    "training_overlap",
    "overlapping_benchmarks",
    "n_benchmarks_out_of_sample",
    "auroc_out_of_sample",
    "ci_low_out_of_sample",
    "ci_high_out_of_sample",
    "label",
    "label_basis",
]


def validity_label(auroc: float, ci_low: float, ci_high: float) -> str:
    """``detects`` / ``weak`` / ``no signal`` / ``inverse`` from a pooled AUROC and its interval
    (``untested`` when the estimate is missing)."""
    if not np.isfinite(auroc):
        return "untested"
    if ci_high < 0.5:
        return "inverse"
    if ci_low > 0.5:
        return "detects" if auroc >= DETECTS_AUROC else "weak"
    return "no signal"


def _auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def unit_aurocs(
    scores, condition, unit, *, positive: str = "senescent", control: str = "proliferating"
) -> pd.DataFrame:
    """Per unit: AUROC of ``scores`` in ``positive`` vs ``control`` observations, with its score interval.

    Columns ``unit, n_senescent, n_control, auroc, ci_low, ci_high, var, design``. ``design`` is
    ``within units`` when units hold both conditions (units missing one are left out), or
    ``units compared`` when each unit holds one condition: then the units' mean scores are the
    observations of a single comparison (unit ``all units``).
    """
    scores = np.asarray(scores, dtype=np.float64)
    condition = np.asarray(condition).astype(str)
    unit = np.asarray(unit).astype(str)
    keep = np.isin(condition, (positive, control)) & np.isfinite(scores)
    scores, condition, unit = scores[keep], condition[keep], unit[keep]
    rows = []
    units = sorted(pd.unique(unit))
    both = [u for u in units if {positive, control} <= set(condition[unit == u])]
    if both:
        for u in both:
            m = unit == u
            pos, neg = scores[m & (condition == positive)], scores[m & (condition == control)]
            rows.append((u, len(pos), len(neg), _auroc(pos, neg), "within units"))
    elif units:
        means = pd.Series(scores).groupby(unit).mean()
        cond = pd.Series(condition).groupby(unit).first()
        pos, neg = means[cond == positive].to_numpy(), means[cond == control].to_numpy()
        if len(pos) and len(neg):
            rows.append(("all units", len(pos), len(neg), _auroc(pos, neg), "units compared"))
    out = pd.DataFrame(rows, columns=["unit", "n_senescent", "n_control", "auroc", "design"])
    lo, hi = auroc_interval(out["auroc"].to_numpy(), out["n_senescent"].to_numpy(), out["n_control"].to_numpy())
    out["ci_low"], out["ci_high"] = lo, hi
    out["var"] = ((hi - lo) / (2 * 1.959963984540054)) ** 2
    return out[["unit", "n_senescent", "n_control", "auroc", "ci_low", "ci_high", "var", "design"]]


def _can_conclude(units: pd.DataFrame, unit_word: str) -> bool:
    """Could this design reach a conclusion at all? True when perfect separation in every unit (AUROC 1
    with the units' own group sizes, pooled the same way) would give an interval above 0.5. Two vs two
    replicates cannot (best case [0.39, 1]): such a data set is shown but does not enter a label."""
    return _can_conclude_sizes(
        tuple(units["n_senescent"].astype(int)), tuple(units["n_control"].astype(int)), unit_word
    )


@lru_cache(maxsize=4096)
def _can_conclude_sizes(n1: tuple[int, ...], n0: tuple[int, ...], unit_word: str) -> bool:
    """:func:`_can_conclude` by group sizes alone (every signature of a data set shares them: computed once)."""
    lo, hi = auroc_interval(np.ones(len(n1)), np.asarray(n1), np.asarray(n0))
    best = pool(
        np.ones(len(n1)),
        ((hi - lo) / (2 * 1.959963984540054)) ** 2,
        bounds=(0, 1),
        intervals=(lo, hi),
        unit=unit_word,
    )
    return bool(best["ci_low"] > 0.5)


def signature_validity(
    scores: pd.DataFrame,
    obs: pd.DataFrame,
    *,
    benchmark: str,
    method: str,
    positive: str = "senescent",
    controls: tuple[str, ...] = ("proliferating",),
    condition_key: str = "condition",
    unit_key: str = "unit",
    coverage: dict[str, tuple[int, int]] | None = None,
    training_overlap: dict[str, bool] | None = None,
    min_coverage_ok=None,
) -> pd.DataFrame:
    """One ground-truth data set: per signature (column of ``scores``) and control class, the per-unit
    AUROCs (:func:`unit_aurocs`) pooled over units. Columns :data:`VALIDITY_COLUMNS`.

    ``coverage``: signature -> (genes used, genes in the set); a signature whose coverage fails
    ``min_coverage_ok(used, total)`` (e.g. ``not is_low_coverage``) is ``untested`` on this data set.
    ``training_overlap``: signature -> whether this data set was used to derive or train it (``None``:
    unknown, the source does not list every data set it used; counted as no overlap and flagged).
    """
    coverage = coverage or {}
    training_overlap = training_overlap or {}
    rows = []
    for sig in scores.columns:
        used, total = coverage.get(sig, (np.nan, np.nan))
        cov = used / total if total else np.nan
        enough = min_coverage_ok(used, total) if (min_coverage_ok is not None and np.isfinite(total)) else True
        for control in controls:
            units = unit_aurocs(
                scores[sig].to_numpy(), obs[condition_key], obs[unit_key], positive=positive, control=control
            )
            base = {
                "signature": sig,
                "method": method,
                "benchmark": benchmark,
                "control": control,
                "coverage": cov,
                "n_genes": total,
                "n_genes_used": used,
                "training_overlap": training_overlap.get(sig, False) is True,
            }
            if units.empty:
                continue
            flags = []
            if not enough:
                flags.append("too few of its genes measured here")
            design = units["design"].iloc[0]
            unit_word = "unit" if design == "within units" else "comparison of units"
            res = pool(
                units["auroc"],
                units["var"],
                bounds=(0, 1),
                intervals=(units["ci_low"], units["ci_high"]),
                unit=unit_word,
            )
            informative = _can_conclude(units, unit_word)
            if not informative:
                flags.append(
                    "too few units to conclude: even perfect separation "
                    f"({int(units['n_senescent'].sum())} vs {int(units['n_control'].sum())}) would leave the "
                    "interval covering 0.5, so this data set does not enter the label"
                )
            k_perfect = int(units["auroc"].isin([0.0, 1.0]).sum())
            if k_perfect and design == "within units":
                flags.append(
                    f"perfect separation in {k_perfect} of {len(units)} units (lowest per-unit bound "
                    f"{units['ci_low'].min():.2f})"
                )
            elif k_perfect:
                flags.append(
                    f"perfect separation of the units ({int(units['n_senescent'].iloc[0])} senescent vs "
                    f"{int(units['n_control'].iloc[0])} control; lower bound {units['ci_low'].min():.2f})"
                )
            if base["training_overlap"]:
                flags.append("data set used to derive or train it: not out of sample")
            elif training_overlap.get(sig, False) is None:
                flags.append("training overlap unknown: its source does not list every data set it used")
            label = (
                validity_label(res["estimate"], res["ci_low"], res["ci_high"]) if enough and informative else "untested"
            )
            rows.append(
                {
                    **base,
                    "design": design,
                    "n_units": int(units["n_senescent"].sum() + units["n_control"].sum())
                    if design == "units compared"
                    else len(units),
                    "n_senescent": int(units["n_senescent"].sum()),
                    "n_control": int(units["n_control"].sum()),
                    "auroc": res["estimate"],
                    "ci_low": res["ci_low"],
                    "ci_high": res["ci_high"],
                    "se": res["se"],
                    "tau2": res["tau2"],
                    "ci_method": res["ci_method"],
                    "k_perfect": k_perfect,
                    "min_unit_ci_low": float(units["ci_low"].min()),
                    "informative": informative,
                    "label": label,
                    "flag": "; ".join(flags),
                }
            )
    return pd.DataFrame(rows, columns=VALIDITY_COLUMNS)


def _pool_rows(g: pd.DataFrame) -> dict:
    lo, hi = g["ci_low"].to_numpy(), g["ci_high"].to_numpy()
    var = ((hi - lo) / (2 * 1.959963984540054)) ** 2
    return pool(g["auroc"].to_numpy(), var, bounds=(0, 1), intervals=(lo, hi), unit="data set")


def pool_validity(table: pd.DataFrame) -> pd.DataFrame:
    """Pool each signature x method x control group (:data:`CONTROL_GROUPS`: ``non-senescent`` =
    proliferating or untreated controls; ``quiescent`` apart) over the ground-truth data sets (random
    effects on the data sets' pooled AUROCs, each weighted by the variance its interval implies), with
    every data set and out of sample (leaving out ``training_overlap`` data sets). ``label`` is from the
    out-of-sample estimate when one exists (``label_basis`` says which). Columns
    :data:`POOLED_VALIDITY_COLUMNS` (``control``: the control group)."""
    rows = []
    table = table.assign(control=table["control"].map(CONTROL_GROUPS).fillna(table["control"]))
    tested = table[table["label"] != "untested"]
    for (sig, method, control), _ in table.groupby(["signature", "method", "control"], sort=True):
        t = tested[(tested["signature"] == sig) & (tested["method"] == method) & (tested["control"] == control)]
        nan = float("nan")
        res = _pool_rows(t) if len(t) else dict(estimate=nan, ci_low=nan, ci_high=nan, tau2=nan, ci_method="")
        oos = t[~t["training_overlap"].astype(bool)]
        res_oos = _pool_rows(oos) if len(oos) else dict(estimate=nan, ci_low=nan, ci_high=nan)
        overlapping = sorted(t.loc[t["training_overlap"].astype(bool), "benchmark"])
        if len(oos):
            label, basis = validity_label(res_oos["estimate"], res_oos["ci_low"], res_oos["ci_high"]), "out of sample"
        elif len(t):
            label, basis = (
                validity_label(res["estimate"], res["ci_low"], res["ci_high"]),
                "training data only (not out of sample)",
            )
        else:
            label, basis = "untested", "no ground truth with enough of its genes"
        rows.append(
            {
                "signature": sig,
                "method": method,
                "control": control,
                "n_benchmarks": len(t),
                "benchmarks": "; ".join(sorted(t["benchmark"])),
                "n_units": int(t["n_units"].sum()),
                "auroc": res["estimate"],
                "ci_low": res["ci_low"],
                "ci_high": res["ci_high"],
                "tau2": res["tau2"],
                "ci_method": res["ci_method"],
                "training_overlap": bool(overlapping),
                "overlapping_benchmarks": "; ".join(overlapping),
                "n_benchmarks_out_of_sample": len(oos),
                "auroc_out_of_sample": res_oos["estimate"],
                "ci_low_out_of_sample": res_oos["ci_low"],
                "ci_high_out_of_sample": res_oos["ci_high"],
                "label": label,
                "label_basis": basis,
            }
        )
    return pd.DataFrame(rows, columns=POOLED_VALIDITY_COLUMNS)


def validity_labels(
    pooled: pd.DataFrame, method: str = DEFAULT_METHOD, control: str = "non-senescent"
) -> dict[str, str]:
    """``{signature: label}`` from ``signature_validity_pooled.csv`` for one method and control class
    (what tables and tooltips show next to a signature; ``untested`` where there is no row)."""
    if pooled is None or pooled.empty:
        return {}
    rows = pooled[(pooled["method"] == method) & (pooled["control"].fillna(control) == control)]
    labels = dict(zip(rows["signature"], rows["label"]))
    hus = pooled[pooled["method"] == "husi"]
    if len(hus):
        labels.setdefault("husi", str(hus.sort_values("control").iloc[0]["label"]))
    return {k: (v if isinstance(v, str) else "untested") for k, v in labels.items()}
