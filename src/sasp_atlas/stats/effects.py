"""Effect sizes per sample and their pooling across samples and datasets; seed-free by construction.

The patient (sample) is the unit. Within each sample the cells of a cell type are compared with
the other cells of the same tumour; across samples the per-sample effects are pooled by a
random-effects meta-analysis. Nothing here draws random numbers, so every interval, verdict and
q-value is the same for any ``random_state``.

* **AUROC vs rest** (per sample): Mann-Whitney U / (n1 n0) from one ranking of the sample's scores
  (ties 1/2). Its 95 % interval is Newcombe's score-type interval (Newcombe 2006, Stat Med 25:559-573,
  doi:10.1002/sim.2324, method 5: the set of theta with ``(A - theta)^2 <= z^2 V(theta)``, V the
  Hanley & McNeil 1982 variance (doi:10.1148/radiology.143.1.7063747) with Newcombe's ``N* = (n1+n0)/2``
  in place of ``n1`` and ``n0``), which stays inside [0, 1] and keeps a width at A = 0 or 1 and in small
  groups; no clip or continuity correction is involved. The sampling variance used to weigh a sample
  (:func:`auroc_variance`) is the one implied by that interval, ``((hi - lo) / (2 z))^2``, so a
  perfect separation weighs what its interval says (MGH36, 8 vs 33 cells at AUROC 1: [0.85, 1]).
* **Composition-balanced AUROC** (per sample): the mean over the sample's other cell types (each
  with >= :data:`MIN_BALANCE_CELLS` cells) of the pairwise AUROC "this type vs that type", so every
  other type weighs the same whatever its share of the tumour; its interval is the mean of the pairwise
  score intervals' bounds and its variance the square of the mean pairwise SD (both exact for perfectly
  correlated pairs, so conservative).
* **Pooling** (:func:`pool`): Paule-Mandel random-effects meta-analysis (DerSimonian & Kacker 2007,
  doi:10.1016/j.cct.2006.04.004; recommended by Veroniki et al. 2016, doi:10.1002/jrsm.1164) with
  ``statsmodels.stats.meta_analysis.combine_effects`` (tau^2 truncated at 0; normal-quantile
  intervals), I^2 as in metafor (Higgins & Thompson 2002) and a 95 % prediction interval
  (estimate +- 1.96 sqrt(tau^2 + se^2)). Checked against R metafor ``rma(method = "PM")``.
* **Permutation test of specificity** (:func:`stratified_permutation_p`): cell-type labels permuted
  within samples; the statistic, the summed deviation of the type's scores from its sample's mean,
  has known permutation mean (0) and variance (sampling without replacement); its one-sided p is
  the normal approximation of the permutation distribution (Hajek 1960), which needs no draws.
* **Evidence** (:func:`evidence_label`): ``single tumour``, ``2 tumours``, ``replicated (n tumours)``;
  ``samples not recorded`` when a dataset holds cells of unnamed tumours (one pseudo-sample).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control, norm, rankdata
from scipy.stats import t as student_t
from statsmodels.stats.meta_analysis import combine_effects

__all__ = [
    "MIN_BALANCE_CELLS",
    "Z95",
    "SMALL_K",
    "auroc_interval",
    "auroc_variance",
    "sample_effects",
    "pool",
    "evidence_label",
    "stratified_permutation_p",
    "bh_q",
    "UNRECORDED_SUFFIX",
    "REPLICATED_MIN",
]

#: a cell type enters another type's balanced comparison only with at least this many cells in the sample
MIN_BALANCE_CELLS = 3
#: samples needed before a result is called replicated
REPLICATED_MIN = 3
Z95 = float(norm.ppf(0.975))
#: pools of fewer samples get the Knapp-Hartung small-sample interval (t quantiles, ad hoc form)
SMALL_K = 5
#: pseudo-samples of datasets that recorded no sample (``<id>:unrecorded``, ``user:unrecorded``)
UNRECORDED_SUFFIX = ":unrecorded"


def _newcombe_v(theta: np.ndarray, n1: np.ndarray, n0: np.ndarray) -> np.ndarray:
    """Newcombe's (2006) Hanley-McNeil variance of an AUROC ``theta``: both ``n1 - 1`` and ``n0 - 1``
    replaced by ``N* - 1``, ``N* = (n1 + n0) / 2``."""
    n_star = (n1 + n0) / 2
    return theta * (1 - theta) / (n1 * n0) * (1 + (n_star - 1) * ((1 - theta) / (2 - theta) + theta / (1 + theta)))


def auroc_interval(a, n1, n0, *, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's score-type interval (2006, method 5) for an AUROC ``a`` of ``n1`` vs ``n0`` observations.

    The interval is every ``theta`` in [0, 1] with ``(a - theta)^2 <= z^2 V(theta)``, V the Hanley-McNeil
    variance in Newcombe's form (:func:`_newcombe_v`), found by bisection on each side of ``a`` (to
    1e-14). It is inside [0, 1], has a width at ``a`` = 0 or 1 (e.g. 8 vs 33 observations at AUROC 1:
    [0.846, 1]) and needs no clip. Vectorised; NaN where ``a`` is NaN or a group is empty.
    """
    a, n1, n0 = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (a, n1, n0)))
    ok = np.isfinite(a) & (n1 > 0) & (n0 > 0)
    lo = np.full(a.shape, np.nan)
    hi = np.full(a.shape, np.nan)
    if ok.any():
        av, m, n = a[ok], n1[ok], n0[ok]
        z2 = z * z

        def outside(theta):  # True where theta is outside the interval
            return (av - theta) ** 2 > z2 * _newcombe_v(theta, m, n)

        # lower bound: theta in [0, a]; outside(0) unless a == 0, inside at a
        left, right = np.zeros_like(av), av.copy()
        for _ in range(48):
            mid = (left + right) / 2
            out = outside(mid)
            left, right = np.where(out, mid, left), np.where(out, right, mid)
        lo[ok] = np.where(av == 0, 0.0, right)
        left, right = av.copy(), np.ones_like(av)
        for _ in range(48):
            mid = (left + right) / 2
            out = outside(mid)
            left, right = np.where(out, left, mid), np.where(out, mid, right)
        hi[ok] = np.where(av == 1, 1.0, left)
    return lo, hi


def auroc_variance(a, n1, n0) -> np.ndarray:
    """Sampling variance of an AUROC ``a`` (``n1`` vs ``n0``) for inverse-variance pooling: the one
    implied by its score interval (:func:`auroc_interval`), ``((hi - lo) / (2 z))^2``.

    Positive at ``a`` = 0 and 1 and for small groups, set by the data through the interval (no clip);
    in large samples it tends to the Hanley & McNeil (1982) variance in Newcombe's form.
    """
    lo, hi = auroc_interval(a, n1, n0)
    return ((hi - lo) / (2 * Z95)) ** 2


def _pairwise_auroc(x: np.ndarray, y_sorted: np.ndarray) -> float:
    """AUROC of ``x`` against ``y`` (sorted): mean over x of P(y < x) + P(y = x)/2."""
    lo = np.searchsorted(y_sorted, x, side="left")
    hi = np.searchsorted(y_sorted, x, side="right")
    return float((lo + 0.5 * (hi - lo)).sum() / (len(x) * len(y_sorted)))


def sample_effects(scores: pd.DataFrame, groups: np.ndarray, samples: np.ndarray) -> pd.DataFrame:
    """Per (sample, cell type, signature): the within-sample statistics every summary is built from.

    ``scores``: cells x signatures; ``groups`` / ``samples``: one label per cell. Columns:
    ``sample, cell_type, signature, n_cells, n_rest, mean, sd, auroc, auroc_var, auroc_ci_low,
    auroc_ci_high, balanced_auroc, balanced_var, balanced_ci_low, balanced_ci_high, n_balance_types,
    dev_sum, perm_var`` (``auroc*`` NaN when the sample has no other cells; ``balanced*`` NaN without
    another type of >= :data:`MIN_BALANCE_CELLS` cells; ``dev_sum``/``perm_var``: the permutation
    statistic's value and variance, see :func:`stratified_permutation_p`). The AUROC's interval is
    Newcombe's score interval and its variance the one it implies (:func:`auroc_variance`); the
    balanced AUROC's interval is the mean of its pairwise score intervals' bounds (exact for
    perfectly correlated pairs, so conservative) and its variance the one that interval implies, the
    square of the mean pairwise SD. One ranking per sample and signature serves every type.
    """
    groups = np.asarray(groups).astype(str)
    samples = np.asarray(samples).astype(str)
    values = scores.to_numpy(dtype=np.float64)
    rows = []
    # every pairwise comparison (row index, AUROC, n1, n0) of the balanced AUROCs, their SDs computed at once
    pair_row, pair_auc, pair_n1, pair_n0 = [], [], [], []
    for sample in sorted(pd.unique(samples)):
        in_s = np.flatnonzero(samples == sample)
        g = groups[in_s]
        types, codes = np.unique(g, return_inverse=True)
        n_types = np.bincount(codes, minlength=len(types))
        n = len(in_s)
        for j, sig in enumerate(scores.columns):
            v = values[in_s, j]
            ranks = rankdata(v)
            rank_sum = np.bincount(codes, weights=ranks, minlength=len(types))
            sums = np.bincount(codes, weights=v, minlength=len(types))
            sq = np.bincount(codes, weights=v * v, minlength=len(types))
            mu = v.mean()
            pop_var = v.var()
            sorted_by_type = [np.sort(v[codes == t]) for t in range(len(types))]
            for t, ct in enumerate(types):
                n1, n0 = int(n_types[t]), n - int(n_types[t])
                mean = sums[t] / n1
                sd = np.sqrt(max(sq[t] / n1 - mean * mean, 0.0) * n1 / (n1 - 1)) if n1 > 1 else np.nan
                auc = (rank_sum[t] - n1 * (n1 + 1) / 2) / (n1 * n0) if n0 > 0 else np.nan
                others = [u for u in range(len(types)) if u != t and n_types[u] >= MIN_BALANCE_CELLS]
                x = sorted_by_type[t]
                for u in others:
                    pair_row.append(len(rows))
                    pair_auc.append(_pairwise_auroc(x, sorted_by_type[u]))
                    pair_n1.append(n1)
                    pair_n0.append(int(n_types[u]))
                perm_var = n1 * (n - n1) / (n - 1) * pop_var if n > 1 else 0.0
                rows.append((sample, ct, sig, n1, n0, mean, sd, auc, len(others), sums[t] - n1 * mu, perm_var))
    out = pd.DataFrame(
        rows,
        columns=[
            "sample",
            "cell_type",
            "signature",
            "n_cells",
            "n_rest",
            "mean",
            "sd",
            "auroc",
            "n_balance_types",
            "dev_sum",
            "perm_var",
        ],
    )
    lo, hi = auroc_interval(out["auroc"].to_numpy(), out["n_cells"].to_numpy(), out["n_rest"].to_numpy())
    out["auroc_var"] = ((hi - lo) / (2 * Z95)) ** 2
    out["auroc_ci_low"], out["auroc_ci_high"] = lo, hi
    bal = np.full(len(out), np.nan)
    bal_var = np.full(len(out), np.nan)
    bal_lo = np.full(len(out), np.nan)
    bal_hi = np.full(len(out), np.nan)
    if pair_row:
        idx = np.asarray(pair_row)
        pair_lo, pair_hi = auroc_interval(np.asarray(pair_auc), np.asarray(pair_n1), np.asarray(pair_n0))
        n_pairs = np.bincount(idx, minlength=len(out))
        has = n_pairs > 0

        def mean_of(x):
            return np.bincount(idx, weights=x, minlength=len(out))[has] / n_pairs[has]

        bal[has], bal_lo[has], bal_hi[has] = mean_of(np.asarray(pair_auc)), mean_of(pair_lo), mean_of(pair_hi)
        bal_var[has] = ((bal_hi[has] - bal_lo[has]) / (2 * Z95)) ** 2
    out["balanced_auroc"], out["balanced_var"] = bal, bal_var
    out["balanced_ci_low"], out["balanced_ci_high"] = bal_lo, bal_hi
    return out[
        [
            "sample",
            "cell_type",
            "signature",
            "n_cells",
            "n_rest",
            "mean",
            "sd",
            "auroc",
            "auroc_var",
            "auroc_ci_low",
            "auroc_ci_high",
            "balanced_auroc",
            "balanced_var",
            "balanced_ci_low",
            "balanced_ci_high",
            "n_balance_types",
            "dev_sum",
            "perm_var",
        ]
    ]


def pool(
    effects: np.ndarray,
    variances: np.ndarray,
    *,
    bounds: tuple[float, float] | None = None,
    intervals: tuple[np.ndarray, np.ndarray] | None = None,
    small_k: int = SMALL_K,
    small_k_test: str = "adhoc",
    unit: str = "tumour",
) -> dict:
    """Random-effects pooling of per-sample ``effects`` with their sampling ``variances``.

    Returns ``estimate, se, ci_low, ci_high, tau2, i2, pi_low, pi_high, k`` (``k`` the number of
    finite effects with a positive variance; NaN everywhere when ``k == 0``) and ``ci_method`` (how the
    interval was made, in words). ``k == 1``: the sample's own interval when ``intervals`` (per-sample
    ``(low, high)``, e.g. :func:`auroc_interval`) is given, else its Wald interval; ``tau2``/``i2``/
    prediction interval NaN. ``k >= 2``: Paule-Mandel (module doc) with normal quantiles, or, below
    ``small_k`` samples, the Knapp-Hartung adjustment with ``t(k-1)`` quantiles: ``small_k_test``
    ``"adhoc"`` (default; the standard error never below the unadjusted one, metafor ``test = "adhoc"``),
    ``"knha"`` (plain, metafor ``test = "knha"``) or ``"z"`` (no adjustment). ``bounds`` (e.g. ``(0, 1)``
    for an AUROC) clips the interval ends to the measure's range. ``unit`` names the pooled unit in
    ``ci_method`` (``tumour``, ``strain``, ``data set``).
    """
    if small_k_test not in ("adhoc", "knha", "z"):
        raise ValueError(f"small_k_test must be 'adhoc', 'knha' or 'z', not {small_k_test!r}")
    out = _pool(effects, variances, intervals, small_k, small_k_test, unit)
    if bounds is not None:
        for key in ("ci_low", "ci_high", "pi_low", "pi_high"):
            if np.isfinite(out[key]):
                out[key] = float(np.clip(out[key], *bounds))
    return out


def _pool(effects, variances, intervals, small_k: int, small_k_test: str, unit: str) -> dict:
    e = np.asarray(effects, dtype=np.float64)
    v = np.asarray(variances, dtype=np.float64)
    ok = np.isfinite(e) & np.isfinite(v) & (v > 0)
    e, v = e[ok], v[ok]
    k = len(e)
    nan = float("nan")
    if k == 0:
        return dict(
            estimate=nan, se=nan, ci_low=nan, ci_high=nan, tau2=nan, i2=nan, pi_low=nan, pi_high=nan, k=0, ci_method=""
        )
    if k == 1:
        se = float(np.sqrt(v[0]))
        if intervals is not None:
            lo, hi = (float(np.asarray(x, dtype=np.float64)[ok][0]) for x in intervals)
            method = f"one {unit}: its own interval"
        else:
            lo, hi = float(e[0] - Z95 * se), float(e[0] + Z95 * se)
            method = f"one {unit}: Wald interval"
        return dict(
            estimate=float(e[0]),
            se=se,
            ci_low=lo,
            ci_high=hi,
            tau2=nan,
            i2=nan,
            pi_low=nan,
            pi_high=nan,
            k=1,
            ci_method=method,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # statsmodels stops Paule-Mandel when |Q(tau2) - (k - 1)| < atol; at 1e-8 tau2 is exact to ~1e-12
        # (metafor agrees to 1e-6 on every output). Its update can step just below the root when atol is
        # very small and then truncates tau2 to 0: if that happens although Q(0) > k - 1 (tau2 > 0), the
        # looser default tolerance is used instead.
        res = combine_effects(e, v, method_re="iterated", atol=1e-8, maxiter=200)
        if res.tau2 == 0 and res.q > k - 1:
            res = combine_effects(e, v, method_re="iterated", maxiter=200)
    tau2 = float(res.tau2)
    w_re = 1 / (v + tau2)
    est = float((w_re * e).sum() / w_re.sum())
    se = float(np.sqrt(1 / w_re.sum()))
    crit, method = Z95, "Paule-Mandel random effects, normal quantiles"
    if k < small_k and small_k_test != "z":
        q = float((w_re * (e - est) ** 2).sum() / (k - 1))
        scale = max(q, 1.0) if small_k_test == "adhoc" else q
        se = se * float(np.sqrt(scale))
        crit = float(student_t.ppf(0.975, k - 1))
        method = (
            f"Paule-Mandel random effects, Knapp-Hartung{' (ad hoc)' if small_k_test == 'adhoc' else ''} "
            f"with t({k - 1}) quantiles"
        )
    w = 1 / v
    typical = (k - 1) * w.sum() / (w.sum() ** 2 - (w * w).sum())  # metafor's "typical" within-sample variance
    i2 = 100 * tau2 / (tau2 + typical)
    half_pi = crit * np.sqrt(tau2 + se * se)
    return dict(
        estimate=est,
        se=se,
        ci_low=est - crit * se,
        ci_high=est + crit * se,
        tau2=tau2,
        i2=float(i2),
        pi_low=est - half_pi,
        pi_high=est + half_pi,
        k=k,
        ci_method=method,
    )


def evidence_label(k: int, *, unrecorded: bool = False) -> str:
    """How much evidence a row rests on: ``k`` samples with a defined effect."""
    if unrecorded:
        return "samples not recorded"
    if k <= 0:
        return "no effect defined"
    if k == 1:
        return "single tumour"
    if k < REPLICATED_MIN:
        return f"{k} tumours"
    return f"replicated ({k} tumours)"


def stratified_permutation_p(dev_sum: np.ndarray, perm_var: np.ndarray) -> float:
    """One-sided p that a type's scores exceed its samples' means, under within-sample label permutation.

    ``T = sum_s (sum of the type's scores in s - n_cs * mean_s)`` has permutation mean 0 and variance
    ``sum_s n_cs (N_s - n_cs) / (N_s - 1) * var_s`` (``var_s`` the sample's population variance:
    sampling ``n_cs`` of ``N_s`` without replacement); p = 1 - Phi(T / sd(T)). NaN if the variance is 0.
    """
    t, var = float(np.nansum(dev_sum)), float(np.nansum(perm_var))
    if var <= 0:
        return float("nan")
    return float(norm.sf(t / np.sqrt(var)))


def bh_q(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values over the finite entries of ``p`` (NaN stays NaN)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = false_discovery_control(p[ok], method="bh")
    return q
