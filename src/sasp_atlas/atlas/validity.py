"""Which signatures detect senescence? Every catalogue signature (and the hUSI index) scored on every
ground-truth data set of the registry, the per-unit AUROCs pooled over units and data sets
(:mod:`sasp_atlas.stats.validity`), written to ``tables/signature_validity.csv``,
``signature_validity_units.csv`` and ``signature_validity_pooled.csv``."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from anndata import AnnData

from .._constants import SCORES_KEY
from ..data import load_ground_truth, training_overlap
from ..engines import DEFAULT_METHOD, husi_scores, score
from ..genes import SignatureResolutionWarning, get_signature, is_low_coverage, list_signatures, present_genes
from ..sources import DataUnavailableError, NotPinnedError, get_ground_truth, list_ground_truth
from ..stats.validity import VALIDITY_COLUMNS, pool_validity, signature_validity, unit_aurocs, validity_labels
from .pipeline import results_dir

__all__ = [
    "VALIDITY_METHODS",
    "HUSI",
    "run_validity",
    "validity_labels",
    "score_ground_truth",
    "read_validity_tables",
    "ground_truth_sources_markdown",
]

log = logging.getLogger(__name__)

#: the atlas default (a control-gene score) and a rank method that scores each sample on its own
VALIDITY_METHODS = (DEFAULT_METHOD, "ucell")
#: the senescence index's id in the validity tables (its own method)
HUSI = "husi"


def score_ground_truth(adata: AnnData, signatures: Sequence[str], method: str) -> tuple[pd.DataFrame, dict]:
    """Scores of the ``signatures`` with at least one gene present (others are left out and reported
    untested), and ``{signature: (genes used, genes in the set)}`` for all of them."""
    coverage, scorable = {}, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SignatureResolutionWarning)
        for sig in signatures:
            genes = get_signature(sig)
            present, _ = present_genes(genes, adata.var_names)
            coverage[sig] = (len(present), len(dict.fromkeys(genes)))
            if present:
                scorable.append(sig)
        work = AnnData(X=adata.X, obs=adata.obs[[]].copy(), var=adata.var[[]].copy())
        score(work, scorable, method=method, key_added=SCORES_KEY)
    return work.obsm[SCORES_KEY], coverage


def run_validity(
    out_dir: str | Path | None = None,
    *,
    signatures: Sequence[str] | None = None,
    methods: Sequence[str] = VALIDITY_METHODS,
    profile: str = "core",
    mirror: str | None = None,
    with_husi: bool = True,
) -> dict[str, pd.DataFrame]:
    """Score every human catalogue signature (default) with each of ``methods`` and, with ``with_husi``,
    the hUSI index on every ground-truth entry of ``profile`` (a full-profile entry that is not pinned or
    not reachable is left out with a warning; a core one is an error); per unit, per data set and pooled.
    Writes and returns ``signature_validity`` (:data:`sasp_atlas.stats.validity.VALIDITY_COLUMNS`),
    ``signature_validity_units`` and ``signature_validity_pooled``. A mouse-only signature is untested
    (the mouse ground truth is mapped to human genes and scored with the human sets)."""
    cat = list_signatures()
    human = list(cat.loc[cat["species"] == "human", "id"]) if signatures is None else list(signatures)
    mouse_only = [] if signatures is not None else list(cat.loc[cat["species"] != "human", "id"])
    tables, units = [], []
    for gt in list_ground_truth(profile):
        try:
            adata = load_ground_truth(gt.id, mirror=mirror)
        except (DataUnavailableError, NotPinnedError) as err:
            if gt["profile"] == "core":
                raise
            log.warning("validity: %s left out (%s)", gt.id, str(err).splitlines()[0])
            continue
        info = adata.uns["ground_truth"]
        controls = tuple(info["negative_classes"])
        runs = [(m, human) for m in methods] + ([(HUSI, None)] if with_husi else [])
        for method, sigs in runs:
            if method == HUSI:
                rho = husi_scores(adata, mirror=mirror)
                scores = rho.to_frame(HUSI)
                coverage = {HUSI: (int(rho.attrs["genes_used"]), int(rho.attrs["n_model_genes"]))}
            else:
                scores, coverage = score_ground_truth(adata, sigs, method)
            overlap = {s: training_overlap(s, gt.id) for s in scores.columns}
            table = signature_validity(
                scores,
                adata.obs,
                benchmark=gt.id,
                method=method,
                positive=info["positive_class"],
                controls=controls,
                coverage=coverage,
                training_overlap=overlap,
                min_coverage_ok=lambda u, n: not is_low_coverage(u, n),
            )
            untested = [s for s in (sigs or []) if s not in scores.columns]
            if untested:
                table = pd.concat(
                    [
                        table,
                        pd.DataFrame(
                            [
                                {
                                    "signature": s,
                                    "method": method,
                                    "benchmark": gt.id,
                                    "control": c,
                                    "n_units": 0,
                                    "coverage": 0.0,
                                    "n_genes": coverage[s][1],
                                    "n_genes_used": 0,
                                    "training_overlap": False,
                                    "label": "untested",
                                    "flag": "no gene of the set measured here",
                                }
                                for s in untested
                                for c in controls
                            ]
                        ),
                    ],
                    ignore_index=True,
                )
            tables.append(table)
            for sig in scores.columns:
                for control in controls:
                    u = unit_aurocs(
                        scores[sig].to_numpy(),
                        adata.obs["condition"],
                        adata.obs["unit"],
                        positive=info["positive_class"],
                        control=control,
                    )
                    units.append(u.assign(signature=sig, method=method, benchmark=gt.id, control=control))
        log.info("validity: %s scored (%d observations, %s)", gt.id, adata.n_obs, ", ".join(controls))
    table = pd.concat(tables, ignore_index=True)[VALIDITY_COLUMNS] if tables else pd.DataFrame(columns=VALIDITY_COLUMNS)
    if mouse_only:
        table = pd.concat(
            [
                table,
                pd.DataFrame(
                    [
                        {
                            "signature": s,
                            "method": m,
                            "benchmark": "",
                            "control": "",
                            "n_units": 0,
                            "training_overlap": False,
                            "label": "untested",
                            "flag": "mouse set: the ground truth is scored with human gene sets",
                        }
                        for s in mouse_only
                        for m in methods
                    ]
                ),
            ],
            ignore_index=True,
        )
    unit_table = pd.concat(units, ignore_index=True) if units else pd.DataFrame()
    pooled = pool_validity(table[table["benchmark"] != ""]) if len(table) else pd.DataFrame()
    if mouse_only:
        pooled = pd.concat(
            [
                pooled,
                table[table["benchmark"] == ""][["signature", "method", "label"]].assign(
                    label_basis="no ground truth of its species"
                ),
            ],
            ignore_index=True,
        )
    base = results_dir(out_dir) / "tables"
    base.mkdir(parents=True, exist_ok=True)
    table.to_csv(base / "signature_validity.csv", index=False, float_format="%.6g")
    unit_table.to_csv(base / "signature_validity_units.csv", index=False, float_format="%.6g")
    pooled.to_csv(base / "signature_validity_pooled.csv", index=False, float_format="%.6g")
    return {"signature_validity": table, "signature_validity_units": unit_table, "signature_validity_pooled": pooled}


def read_validity_tables(out_dir: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """The validity tables a build wrote (:func:`run_validity`) and the ground-truth entries behind them
    (``ground_truth``: one row per data set with its labels, unit, inducer and training overlap)."""
    base = results_dir(out_dir) / "tables"
    out = {
        name: pd.read_csv(base / f"{name}.csv")
        for name in ("signature_validity", "signature_validity_units", "signature_validity_pooled")
    }
    ids = sorted(set(out["signature_validity"]["benchmark"].dropna()) - {""})
    rows = []
    for gt_id in ids:
        gt = get_ground_truth(gt_id)
        pub = gt.get("publication") or {}
        rows.append(
            {
                "id": gt_id,
                "title": gt["title"],
                "species": gt["species"],
                "assay": gt["assay"],
                "inducer": gt.get("inducer", ""),
                "unit": gt["unit"].get("name", ""),
                "truth": gt["labels"].get("truth", ""),
                "citation": pub.get("citation", ""),
                "doi": pub.get("doi", ""),
                "accession": pub.get("accession", ""),
                "training_overlap": ", ".join(gt.get("training_overlap") or []) or "—",
                "trust": gt.get("trust", ""),
            }
        )
    out["ground_truth"] = pd.DataFrame(rows)
    return out


def ground_truth_sources_markdown(ground_truth: pd.DataFrame) -> str:
    """The ground-truth data sets of the validity page: what is labelled, the unit, the truth kind (per
    sample, per cell, or condition labels, which are not per-cell truth) and what was trained on it."""
    truth_words = {
        "per_sample": "per-sample truth",
        "per_cell": "per-cell truth",
        "condition": "condition labels, not per-cell truth (not every cell of a senescent sample need be senescent)",
    }
    lines = [
        "| data set | species, assay | inducer | unit of replication | labels | trained on it | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in ground_truth.itertuples():
        source = f"{r.citation} doi:{r.doi}" if r.doi else r.citation
        lines.append(
            f"| `{r.id}` | {r.species}, {r.assay} | {r.inducer} | {r.unit} | "
            f"{truth_words.get(r.truth, r.truth)} | {r.training_overlap} | {source} ({r.accession}) |"
        )
    return "\n".join(lines)
