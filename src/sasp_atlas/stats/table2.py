"""The review's Table 2 put to the test: is each row's gene set higher in its cell type than in
the rest of the same tumour?"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from ..data import crosswalk
from ..engines import score
from ..genes import catalogue, get_signature, is_low_coverage
from .summaries import celltype_scores

__all__ = ["table2_checks", "TABLE2_COLUMNS"]


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

    Parameters
    ----------
    adatas
        Dataset id -> harmonised AnnData.
    n_boot
        Bootstrap resamples per interval.
    random_state
        Seed of the control-gene draw and of the bootstrap.
    """
    cw = crosswalk().get("table2", {})
    rows = []
    recs = sorted((r for r in catalogue().values() if "table2" in r), key=lambda r: r["table2"]["row"])
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
