"""Effect sizes per sample and their pooling across samples and datasets; seed-free by construction.

The patient (sample) is the unit. Within each sample the cells of a cell type are compared with
the other cells of the same tumour; across samples the per-sample effects are pooled by a
random-effects meta-analysis. Nothing here draws random numbers, so every interval, verdict and
q-value is the same for any ``random_state``.

* **AUROC vs rest** (per sample): Mann-Whitney U / (n1 n0) from one ranking of the sample's scores
  (ties 1/2), with the Hanley & McNeil (1982, doi:10.1148/radiology.143.1.7063747) variance.
* **Composition-balanced AUROC** (per sample): the mean over the sample's other cell types (each
  with >= :data:`MIN_BALANCE_CELLS` cells) of the pairwise AUROC "this type vs that type", so every
  other type weighs the same whatever its share of the tumour; its variance is bounded above by the
  square of the mean pairwise Hanley-McNeil SD (perfectly correlated pairs: conservative).
* **Pooling** (:func:`pool`): Paule-Mandel random-effects meta-analysis (DerSimonian & Kacker 2007,
  doi:10.1016/j.cct.2006.04.004; recommended by Veroniki et al. 2016, doi:10.1002/jrsm.1164) with
  ``statsmodels.stats.meta_analysis.combine_effects`` (tau^2 truncated at 0; normal-quantile
  intervals), I^2 as in metafor (Higgins & Thompson 2002) and a 95 % prediction interval
  (estimate +- 1.96 sqrt(tau^2 + se^2)). Checked against R metafor ``rma(method = "PM")``.
  One sample: its own estimate with a Wald interval.
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
from statsmodels.stats.meta_analysis import combine_effects

__all__ = ["MIN_BALANCE_CELLS", "Z95", "auroc_variance", "sample_effects", "pool", "evidence_label",
           "stratified_permutation_p", "bh_q", "UNRECORDED_SUFFIX", "REPLICATED_MIN"]

#: a cell type enters another type's balanced comparison only with at least this many cells in the sample
MIN_BALANCE_CELLS = 3
#: samples needed before a result is called replicated
REPLICATED_MIN = 3
Z95 = float(norm.ppf(0.975))
#: pseudo-samples of datasets that recorded no sample (``<id>:unrecorded``, ``user:unrecorded``)
UNRECORDED_SUFFIX = ":unrecorded"


def auroc_variance(a: np.ndarray, n1: np.ndarray, n0: np.ndarray) -> np.ndarray:
    """Hanley & McNeil (1982) variance of an AUROC ``a`` from ``n1`` positives and ``n0`` negatives.

    ``a`` is clipped to ``[1/(2 n1 n0), 1 - 1/(2 n1 n0)]`` first, so a perfect separation keeps a
    positive variance (half a discordant pair) instead of an infinite weight.
    """
    a, n1, n0 = (np.asarray(x, dtype=np.float64) for x in (a, n1, n0))
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = 0.5 / (n1 * n0)
        a = np.clip(a, eps, 1 - eps)
        q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
        return (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)


def _pairwise_auroc(x: np.ndarray, y_sorted: np.ndarray) -> float:
    """AUROC of ``x`` against ``y`` (sorted): mean over x of P(y < x) + P(y = x)/2."""
    lo = np.searchsorted(y_sorted, x, side="left")
    hi = np.searchsorted(y_sorted, x, side="right")
    return float((lo + 0.5 * (hi - lo)).sum() / (len(x) * len(y_sorted)))


def sample_effects(scores: pd.DataFrame, groups: np.ndarray, samples: np.ndarray) -> pd.DataFrame:
    """Per (sample, cell type, signature): the within-sample statistics every summary is built from.

    ``scores``: cells x signatures; ``groups`` / ``samples``: one label per cell. Columns:
    ``sample, cell_type, signature, n_cells, n_rest, mean, sd, auroc, auroc_var, balanced_auroc,
    balanced_var, n_balance_types, dev_sum, perm_var`` (``auroc*`` NaN when the sample has no
    other cells; ``balanced*`` NaN without another type of >= :data:`MIN_BALANCE_CELLS` cells;
    ``dev_sum``/``perm_var``: the permutation statistic's value and variance, see
    :func:`stratified_permutation_p`). One ranking per sample and signature serves every type.
    """
    groups = np.asarray(groups).astype(str)
    samples = np.asarray(samples).astype(str)
    values = scores.to_numpy(dtype=np.float64)
    rows = []
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
                if n0 > 0:
                    auc = (rank_sum[t] - n1 * (n1 + 1) / 2) / (n1 * n0)
                    auc_var = float(auroc_variance(auc, n1, n0))
                else:
                    auc = auc_var = np.nan
                others = [u for u in range(len(types)) if u != t and n_types[u] >= MIN_BALANCE_CELLS]
                if others:
                    x = sorted_by_type[t]
                    pair = np.array([_pairwise_auroc(x, sorted_by_type[u]) for u in others])
                    pair_sd = np.sqrt(auroc_variance(pair, n1, n_types[others]))
                    bal, bal_var = float(pair.mean()), float(pair_sd.mean() ** 2)
                else:
                    bal = bal_var = np.nan
                perm_var = n1 * (n - n1) / (n - 1) * pop_var if n > 1 else 0.0
                rows.append((sample, ct, sig, n1, n0, mean, sd, auc, auc_var, bal, bal_var, len(others),
                             sums[t] - n1 * mu, perm_var))
    return pd.DataFrame(rows, columns=["sample", "cell_type", "signature", "n_cells", "n_rest", "mean", "sd", "auroc",
                                       "auroc_var", "balanced_auroc", "balanced_var", "n_balance_types", "dev_sum",
                                       "perm_var"])


def pool(effects: np.ndarray, variances: np.ndarray, *, bounds: tuple[float, float] | None = None) -> dict[str, float]:
    """Random-effects pooling of per-sample ``effects`` with their sampling ``variances``.

    Returns ``estimate, se, ci_low, ci_high, tau2, i2, pi_low, pi_high, k`` (``k`` the number of
    finite effects; NaN everywhere when ``k == 0``). ``k == 1``: the effect with its Wald interval,
    ``tau2``/``i2``/prediction interval NaN. ``k >= 2``: Paule-Mandel (module doc). ``bounds``
    (e.g. ``(0, 1)`` for an AUROC) clips the interval ends to the measure's range.
    """
    out = _pool(effects, variances)
    if bounds is not None:
        for key in ("ci_low", "ci_high", "pi_low", "pi_high"):
            if np.isfinite(out[key]):
                out[key] = float(np.clip(out[key], *bounds))
    return out


def _pool(effects: np.ndarray, variances: np.ndarray) -> dict[str, float]:
    e = np.asarray(effects, dtype=np.float64)
    v = np.asarray(variances, dtype=np.float64)
    ok = np.isfinite(e) & np.isfinite(v) & (v > 0)
    e, v = e[ok], v[ok]
    k = len(e)
    nan = float("nan")
    if k == 0:
        return dict(estimate=nan, se=nan, ci_low=nan, ci_high=nan, tau2=nan, i2=nan, pi_low=nan, pi_high=nan, k=0)
    if k == 1:
        se = float(np.sqrt(v[0]))
        return dict(estimate=float(e[0]), se=se, ci_low=float(e[0] - Z95 * se), ci_high=float(e[0] + Z95 * se),
                    tau2=nan, i2=nan, pi_low=nan, pi_high=nan, k=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # statsmodels stops Paule-Mandel when |Q(tau2) - (k - 1)| < atol; at 1e-8 tau2 is exact to ~1e-12
        # (metafor agrees to 1e-6 on every output). Its update can step just below the root when atol is
        # very small and then truncates tau2 to 0: if that happens although Q(0) > k - 1 (tau2 > 0), the
        # looser default tolerance is used instead.
        res = combine_effects(e, v, method_re="iterated", atol=1e-8, maxiter=200)
        if res.tau2 == 0 and res.q > k - 1:
            res = combine_effects(e, v, method_re="iterated", maxiter=200)
    est = float(res.mean_effect_re)
    se = float(np.sqrt(res.var_eff_w_re))
    tau2 = float(res.tau2)
    w = 1 / v
    typical = (k - 1) * w.sum() / (w.sum() ** 2 - (w * w).sum())  # metafor's "typical" within-sample variance
    i2 = 100 * tau2 / (tau2 + typical)
    half_pi = Z95 * np.sqrt(tau2 + se * se)
    return dict(estimate=est, se=se, ci_low=est - Z95 * se, ci_high=est + Z95 * se, tau2=tau2, i2=float(i2),
                pi_low=est - half_pi, pi_high=est + half_pi, k=k)


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
