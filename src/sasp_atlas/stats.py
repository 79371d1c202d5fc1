"""Statistics of the atlas: cell-type harmonisation, coverage, per-cell-type summaries with
intervals and effect sizes, the genes behind a score, and the review's Table 2 put to the test.

The unit of replication is the sample (patient), not the cell: cells of one tumour are not
independent observations. :func:`celltype_scores` therefore summarises per sample first and
bootstraps over samples; where a dataset has a single sample, its interval is over cells and is
labelled so (``ci_unit``), never presented as a between-tumour statement.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd
import yaml
from anndata import AnnData

__all__ = ["harmonise_cell_types", "crosswalk_table", "celltype_scores", "coverage_table", "is_low_coverage",
           "auroc", "sample_celltype_summary", "gene_decomposition", "table2_checks",
           "CELLTYPE_COLUMNS", "COVERAGE_COLUMNS", "MIN_COVERAGE", "MIN_GENES", "LOW_COVERAGE_FLAG"]

#: A score is comparable across datasets only if the dataset holds at least this fraction of the
#: signature's genes ...
MIN_COVERAGE = 0.5
#: ... and at least this many of them. Below either, the mean of a handful of genes (or of a
#: different half of the set) is not the same signature: the pages grey such cells out.
MIN_GENES = 5
LOW_COVERAGE_FLAG = "low coverage: score not comparable"

COVERAGE_COLUMNS = ["dataset", "signature", "n_genes", "n_present", "coverage", "n_rescued", "rescued", "missing",
                    "flag", "low_coverage", "n_published", "unmapped"]

CELLTYPE_COLUMNS = ["dataset", "cancer_type", "cancer_type_ontology_id", "cell_type", "cell_type_ontology_id", "lineage",
                    "cell_type_author", "signature", "method", "mean", "ci_low", "ci_high", "ci_unit", "effect_size",
                    "effect_ci_low", "effect_ci_high", "effect_measure", "median", "sd", "q25", "q75", "n_cells",
                    "n_samples", "n_genes", "n_genes_used", "coverage", "low_coverage", "flag", "n_boot", "random_state"]
#: added by :func:`sasp_atlas.pipeline.run_dataset` from :func:`sasp_atlas.null.celltype_null`
NULL_JOIN_COLUMNS = ["null_mean", "null_sd", "null_z", "empirical_p", "n_null"]


@lru_cache(maxsize=1)
def _crosswalk() -> dict:
    return yaml.safe_load(resources.files("sasp_atlas").joinpath("crosswalk.yaml").read_text())


def crosswalk_table() -> pd.DataFrame:
    """The published crosswalk: ``dataset, cell_type_author, cell_type, cell_type_ontology_id,
    cell_type_ontology_label, lineage`` (malignant cells: "Malignant cell", CL:0001064)."""
    cw = _crosswalk()
    rows = []
    for dataset_id, labels in cw["datasets"].items():
        for author, harmonised in labels.items():
            ct = cw["cell_types"][harmonised]
            rows.append({"dataset": dataset_id, "cell_type_author": author, "cell_type": harmonised,
                         "cell_type_ontology_id": ct["ontology_id"], "cell_type_ontology_label": ct["ontology_label"],
                         "lineage": ct["lineage"]})
    return pd.DataFrame(rows)


def harmonise_cell_types(adata: AnnData, dataset_id: str) -> None:
    """Add ``obs["cell_type"]``, ``obs["cell_type_ontology_id"]`` and ``obs["lineage"]`` from the crosswalk.

    Malignant cells (``obs["malignant"]``) become "Malignant cell" (CL:0001064). An author label
    missing from the crosswalk is an error naming the label and the dataset (never a silent "Unknown").
    """
    cw = _crosswalk()
    table = cw["datasets"].get(dataset_id, {})
    authors = adata.obs["cell_type_author"].astype(str)
    malignant = adata.obs["malignant"].to_numpy(bool)
    unknown = sorted(set(authors[~malignant]) - set(table))
    if unknown:
        raise KeyError(f"dataset {dataset_id!r}: author cell types {unknown} are not in crosswalk.yaml; add them")
    ct = np.where(malignant, "Malignant cell", [table.get(a, "Malignant cell") for a in authors])
    vocab = cw["cell_types"]
    adata.obs["cell_type"] = pd.Categorical(ct)
    adata.obs["cell_type_ontology_id"] = pd.Categorical([vocab[c]["ontology_id"] for c in ct])
    adata.obs["lineage"] = pd.Categorical([vocab[c]["lineage"] for c in ct])


def is_low_coverage(n_present: int, n_genes: int) -> bool:
    """True if fewer than :data:`MIN_GENES` genes, or less than :data:`MIN_COVERAGE` of them, are present."""
    return n_genes <= 0 or n_present < MIN_GENES or n_present / n_genes < MIN_COVERAGE


def _published_names(signature: str) -> tuple[dict[str, list[str]], int | None, list[str]]:
    """(scored symbol -> published human symbols, n published, published genes not scored) of a catalogue id."""
    from .signatures import _catalogue, signature_record, signature_resolution

    if signature not in _catalogue():
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
    """Gene matching only (no scoring): the ``uns["sasp_scores"]["signatures"]`` shape."""
    from .scoring import resolve_signatures

    present = set(map(str, adata.var_names))
    out = {}
    for sig, genes in resolve_signatures(signatures).items():
        genes = list(dict.fromkeys(map(str, genes)))
        out[sig] = {"genes_used": [g for g in genes if g in present], "genes_missing": [g for g in genes if g not in present],
                    "n_genes": len(genes)}
    return out


def coverage_table(adata: AnnData, *, dataset_id: str, signatures: list[str] | None = None) -> pd.DataFrame:
    """Signature gene coverage after symbol resolution: columns :data:`COVERAGE_COLUMNS`.

    Per scored signature (``adata.uns["sasp_scores"]``): ``n_genes`` genes scored (human symbols
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
    """
    matched = _match(adata, signatures) if signatures is not None else adata.uns["sasp_scores"]["signatures"]
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
        rows.append({"dataset": dataset_id, "signature": sig, "n_genes": n_genes, "n_present": n_present,
                     "coverage": n_present / n_genes if n_genes else float("nan"),
                     "n_rescued": len(rescued), "rescued": " ".join(rescued),
                     "missing": " ".join(sorted(map(str, info["genes_missing"]))),
                     "flag": LOW_COVERAGE_FLAG if low else "", "low_coverage": low,
                     "n_published": n_published if n_published is not None else n_genes, "unmapped": " ".join(unmapped)})
    return pd.DataFrame(rows, columns=COVERAGE_COLUMNS)


# --------------------------------------------------------------------------- across samples
def auroc(x: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve of ``x`` (cells of one type) against ``y`` (the other cells).

    AUROC = U / (n_x n_y), with U the Mann–Whitney statistic and ties counted 1/2 (Hanley &
    McNeil 1982, doi:10.1148/radiology.143.1.7063747). 0.5 = no difference; 1 = every cell of the
    type scores above every other cell. Returns NaN when either group is empty.
    """
    from scipy.stats import rankdata

    nx, ny = len(x), len(y)
    if nx == 0 or ny == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([x, y]))
    return float((ranks[:nx].sum() - nx * (nx + 1) / 2) / (nx * ny))


def _auroc_rows(values: np.ndarray, in_group: np.ndarray) -> np.ndarray:
    """AUROC for each row of ``values`` (bootstrap replicates x cells), group mask per row."""
    from scipy.stats import rankdata

    ranks = rankdata(values, axis=1)
    nx = in_group.sum(axis=1)
    ny = in_group.shape[1] - nx
    u = (ranks * in_group).sum(axis=1) - nx * (nx + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return u / (nx * ny)


def _percentile_ci(boot: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(boot, a)), float(np.quantile(boot, 1 - a))


def sample_celltype_summary(adata: AnnData, *, dataset_id: str, group_by: str = "cell_type") -> pd.DataFrame:
    """Per (sample, cell type, signature): ``n_cells``, ``mean``, ``median`` of per-cell scores and
    the within-sample AUROC of the cell type against all other cells of the same sample."""
    scores: pd.DataFrame = adata.obsm["sasp_scores"]
    obs = adata.obs
    rows = []
    for sample, s_idx in obs.groupby("sample", observed=True).indices.items():
        groups = obs[group_by].to_numpy()[s_idx]
        for ct in pd.unique(groups):
            mask = groups == ct
            for sig in scores.columns:
                v = scores[sig].to_numpy()[s_idx]
                rows.append({"dataset": dataset_id, "sample": str(sample), "cell_type": str(ct), "signature": sig,
                             "n_cells": int(mask.sum()), "mean": float(v[mask].mean()), "median": float(np.median(v[mask])),
                             "auroc_vs_rest": auroc(v[mask], v[~mask])})
    return pd.DataFrame(rows)


def celltype_scores(adata: AnnData, *, dataset_id: str, cancer_type: str, cancer_type_ontology_id: str = "",
                        group_by: str = "cell_type", n_boot: int = 1000, random_state: int = 0,
                        min_cells: int = 10) -> pd.DataFrame:
    """Per (cell type, signature): mean score with a 95 % bootstrap interval and an effect size.

    Method (no pseudoreplication): the sample (patient) is the unit. Per sample, the cell type's
    mean score and its AUROC against the other cells of the *same* sample are computed. With
    ``n_samples >= 2`` the reported ``mean`` is the mean of sample means and ``effect_size`` the
    mean of per-sample AUROCs, each with a percentile bootstrap interval over samples
    (``n_boot`` resamples of samples with replacement; Efron & Tibshirani 1993). With one sample
    (or none recorded) the interval is over cells and ``ci_unit`` says so: it describes that one
    tumour, not cancer type. ``flag`` marks fewer than ``min_cells`` cells, fewer than 3 samples
    (an interval over 2 samples is little more than their range), and low gene coverage.
    Randomness: bootstrap indices from ``numpy.random.default_rng(random_state)``; the seed is
    in the ``random_state`` column.
    """

    scores: pd.DataFrame = adata.obsm["sasp_scores"]
    meta = adata.uns["sasp_scores"]
    obs = adata.obs
    rng = np.random.default_rng(random_state)
    groups = obs[group_by].astype(str).to_numpy()
    samples = obs["sample"].astype(str).to_numpy()
    rows = []
    for ct in sorted(pd.unique(groups)):
        in_ct = groups == ct
        ct_samples = sorted(pd.unique(samples[in_ct]))
        authors = "; ".join(sorted(obs["cell_type_author"].astype(str)[in_ct].unique()))
        onto = str(obs["cell_type_ontology_id"].astype(str)[in_ct].iloc[0]) if "cell_type_ontology_id" in obs else ""
        lineage = str(obs["lineage"].astype(str)[in_ct].iloc[0]) if "lineage" in obs else ""
        for sig in scores.columns:
            v = scores[sig].to_numpy()
            info = meta["signatures"][sig]
            n_used = len(info["genes_used"])
            if len(ct_samples) >= 2:
                s_means = np.array([v[in_ct & (samples == s)].mean() for s in ct_samples])
                s_auc = np.array([auroc(v[in_ct & (samples == s)], v[~in_ct & (samples == s)]) for s in ct_samples])
                pick = rng.integers(0, len(ct_samples), size=(n_boot, len(ct_samples)))
                mean, effect = float(s_means.mean()), float(np.nanmean(s_auc))
                ci = _percentile_ci(s_means[pick].mean(axis=1))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    eci = _percentile_ci(np.nanmean(s_auc[pick], axis=1))
                unit = "samples"
            else:
                s = ct_samples[0]
                in_s = samples == s
                x, y = v[in_ct & in_s], v[~in_ct & in_s]
                mean, effect = float(x.mean()), auroc(x, y)
                ci = _percentile_ci(x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1))
                if len(y):
                    bx = x[rng.integers(0, len(x), size=(n_boot, len(x)))]
                    by = y[rng.integers(0, len(y), size=(n_boot, len(y)))]
                    mask = np.concatenate([np.ones_like(bx, bool), np.zeros_like(by, bool)], axis=1)
                    eci = _percentile_ci(_auroc_rows(np.concatenate([bx, by], axis=1), mask))
                else:
                    eci = (float("nan"), float("nan"))
                unit = "cells (single sample)"
            n_cells = int(in_ct.sum())
            coverage = n_used / info["n_genes"]
            flags = []
            if n_cells < min_cells:
                flags.append(f"fewer than {min_cells} cells")
            if len(ct_samples) < 3:
                flags.append("fewer than 3 samples: interval describes these tumours only")
            if is_low_coverage(n_used, info["n_genes"]):
                flags.append(LOW_COVERAGE_FLAG)
            rows.append({
                "dataset": dataset_id, "cancer_type": cancer_type, "cancer_type_ontology_id": cancer_type_ontology_id,
                "cell_type": ct, "cell_type_ontology_id": onto, "lineage": lineage, "cell_type_author": authors,
                "signature": sig, "method": meta["method"], "mean": mean, "ci_low": ci[0], "ci_high": ci[1],
                "ci_unit": unit, "effect_size": effect, "effect_ci_low": eci[0], "effect_ci_high": eci[1],
                "effect_measure": "AUROC vs other cells of the same tumour",
                "median": float(np.median(v[in_ct])), "sd": float(v[in_ct].std(ddof=1)) if n_cells > 1 else float("nan"),
                "q25": float(np.quantile(v[in_ct], 0.25)),
                "q75": float(np.quantile(v[in_ct], 0.75)), "n_cells": n_cells, "n_samples": len(ct_samples),
                "n_genes": info["n_genes"], "n_genes_used": n_used, "coverage": coverage,
                "low_coverage": is_low_coverage(n_used, info["n_genes"]),
                "flag": "; ".join(flags), "n_boot": n_boot, "random_state": random_state,
            })
    return pd.DataFrame(rows, columns=CELLTYPE_COLUMNS)


# --------------------------------------------------------------------------- genes behind a score
def gene_decomposition(adata: AnnData, genes: list[str], *, dataset_id: str, signature: str,
                       group_by: str = "cell_type") -> pd.DataFrame:
    """Which genes drive a signature in each cell type: mean expression and fraction expressing.

    Per (cell type, gene present in the data): ``mean_expression`` (mean of ``X``, log-normalised),
    ``frac_expressing`` (fraction of cells with a non-zero value) and ``delta`` (mean in the cell
    type minus mean in all other cells of the dataset) — the gene's share in a control-gene score's
    difference. Reads only the signature's columns of ``X``.
    """
    import scipy.sparse as sp

    present = [g for g in dict.fromkeys(genes) if g in adata.var_names]
    if not present:
        return pd.DataFrame(columns=["dataset", "signature", "cell_type", "gene", "mean_expression",
                                     "frac_expressing", "delta", "n_cells"])
    sub = adata[:, present].X
    sub = sub.tocsc() if sp.issparse(sub) else np.asarray(sub)
    groups = adata.obs[group_by].astype(str).to_numpy()
    total_sum = np.asarray(sub.sum(axis=0)).ravel()
    n = adata.n_obs
    rows = []
    for ct in sorted(pd.unique(groups)):
        mask = groups == ct
        block = sub[mask]
        s = np.asarray(block.sum(axis=0)).ravel()
        nz = np.asarray((block != 0).sum(axis=0)).ravel()
        k = int(mask.sum())
        rest = (total_sum - s) / (n - k) if n > k else np.full(len(present), np.nan)
        for j, g in enumerate(present):
            rows.append({"dataset": dataset_id, "signature": signature, "cell_type": ct, "gene": g,
                         "mean_expression": float(s[j] / k), "frac_expressing": float(nz[j] / k),
                         "delta": float(s[j] / k - rest[j]), "n_cells": k})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the review's Table 2
TABLE2_COLUMNS = ["row", "table2_cell_type", "table2_cancer_types", "signature", "dataset", "cancer_type", "cell_type",
                  "n_cells", "n_samples", "n_genes", "n_present", "coverage", "effect_size", "ci_low", "ci_high",
                  "ci_unit", "verdict", "cancer_type_matches"]


def table2_checks(adatas: dict[str, AnnData], *, n_boot: int = 1000, random_state: int = 0) -> pd.DataFrame:
    """Test each row of the review's Table 2 on every dataset: is the row's gene set higher in that
    cell type than in the other cells of the same tumour?

    For each row (``table2_*`` signatures; cell type mapped by ``crosswalk.yaml: table2``) and each
    dataset (``adatas``: dataset id -> AnnData with ``obs["cell_type"]`` and ``obs["sample"]``),
    the row's genes are scored (control-gene score, the atlas default) and the effect size is the
    AUROC of the row's cell type against all other cells of the same tumour, with a 95 % bootstrap
    interval over samples (over cells when the dataset has one sample; ``ci_unit`` says which),
    exactly as :func:`celltype_scores`. Verdicts:

    * ``not testable: genes missing`` — fewer than :data:`MIN_GENES` or :data:`MIN_COVERAGE` of the genes measured;
    * ``not testable: cell type absent`` — the dataset has no cells of the type (or no other cells);
    * ``supported`` — the interval's lower bound is above 0.5 (higher than the rest of the tumour);
    * ``not supported`` — otherwise (including an interval entirely below 0.5).
    """
    from .scoring import score
    from .signatures import _catalogue, get_signature

    cw = _crosswalk().get("table2", {})
    rows = []
    recs = sorted((r for r in _catalogue().values() if "table2" in r), key=lambda r: r["table2"]["row"])
    for rec in recs:
        t2 = rec["table2"]
        targets = cw.get(t2["cell_type"], {}).get("cell_types", [])
        genes = get_signature(rec["id"])
        for dataset_id, adata in adatas.items():
            base = {"row": t2["row"], "table2_cell_type": t2["cell_type"],
                    "table2_cancer_types": "; ".join(t2.get("cancer_types", [])), "signature": rec["id"],
                    "dataset": dataset_id, "cancer_type": adata.uns["provenance"]["cancer_type"],
                    "cell_type": " + ".join(targets) if targets else "", "n_genes": len(genes),
                    "cancer_type_matches": any(c.lower() in adata.uns["provenance"]["cancer_type"].lower()
                                               for c in t2.get("cancer_types", []))}
            present = [g for g in genes if g in adata.var_names]
            base.update(n_present=len(present), coverage=len(present) / len(genes) if genes else 0.0)
            in_ct = adata.obs["cell_type"].astype(str).isin(targets).to_numpy()
            empty = {"n_cells": int(in_ct.sum()), "n_samples": int(adata.obs["sample"][in_ct].nunique()),
                     "effect_size": np.nan, "ci_low": np.nan, "ci_high": np.nan, "ci_unit": ""}
            if not targets or in_ct.sum() == 0 or in_ct.all():
                rows.append({**base, **empty, "verdict": "not testable: cell type absent"})
                continue
            if is_low_coverage(len(present), len(genes)):
                rows.append({**base, **empty, "verdict": "not testable: genes missing"})
                continue
            work = AnnData(X=adata.X, obs=adata.obs[["sample", "cell_type_author"]].copy(), var=pd.DataFrame(index=adata.var_names))
            work.obs["cell_type"] = np.where(in_ct, "target", "rest")
            score(work, {rec["id"]: genes}, method="scanpy", random_state=random_state)
            stats = celltype_scores(work, dataset_id=dataset_id, cancer_type=base["cancer_type"], n_boot=n_boot,
                                        random_state=random_state)
            st = stats[stats["cell_type"] == "target"].iloc[0]
            verdict = "supported" if st["effect_ci_low"] > 0.5 else "not supported"
            rows.append({**base, "n_cells": int(st["n_cells"]), "n_samples": int(st["n_samples"]),
                         "effect_size": st["effect_size"], "ci_low": st["effect_ci_low"], "ci_high": st["effect_ci_high"],
                         "ci_unit": st["ci_unit"], "verdict": verdict})
    return pd.DataFrame(rows, columns=TABLE2_COLUMNS)
