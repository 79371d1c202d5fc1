"""The one harmoniser: author annotations -> the atlas's ``obs`` columns, for registry datasets and
users' files alike.

:func:`harmonise_obs` writes ``cell_type_author``, ``cell_type_fine``, ``sample`` and
``malignant``; :func:`harmonise_cell_types` adds ``cell_type``, ``cell_type_ontology_id`` and
``lineage``: from the crosswalk (``crosswalk.yaml``, one source of truth for every cross-dataset
figure) for a registry dataset, or, for a user's file (no crosswalk entry), the user's own label as
the cell type with Cell Ontology ids from a CELLxGENE ``cell_type_ontology_term_id`` column when
the file has one.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from anndata import AnnData

from .._constants import CELL_TYPE_KEY, SAMPLE_KEY
from .validate import warn_input

__all__ = [
    "harmonise_obs",
    "harmonise_cell_types",
    "crosswalk",
    "crosswalk_table",
    "MALIGNANT_CELL",
    "UNLABELLED",
    "ONTOLOGY_COLUMN",
    "review_cancer_types",
    "in_review_cancer_type",
]

#: the harmonised type of every cell flagged malignant (Cell Ontology CL:0001064)
MALIGNANT_CELL = "Malignant cell"
#: the cell type of cells without an author label
UNLABELLED = "unlabelled"
#: CELLxGENE's obs column of Cell Ontology ids (used for files without a crosswalk entry)
ONTOLOGY_COLUMN = "cell_type_ontology_term_id"


@lru_cache(maxsize=1)
def crosswalk() -> dict:
    """``crosswalk.yaml``: ``cell_types`` (vocabulary with CL ids, lineage), ``datasets`` (author
    label -> harmonised type per registry dataset) and ``table2`` (review cell type -> harmonised types)."""
    return yaml.safe_load(Path(__file__).with_name("crosswalk.yaml").read_text())


def review_cancer_types(mondo_id: str | None, *, include_any: bool = True) -> list[str]:
    """The review's Table 2 cancer types a dataset of Mondo disease ``mondo_id`` belongs to.

    From the crosswalk's ``review_cancer_types``: the review's term itself or a listed Mondo
    descendant (``accepts``), a listed ancestor where the source only uses the broader term
    (``broader``), or any cancer for a row about malignant tumours in general (``any_cancer``). The
    lists are checked against the Mondo ontology in the tests, so no ontology is loaded at run time.
    An unknown or missing id belongs to no specific type (only to ``any_cancer`` rows);
    ``include_any=False`` leaves the ``any_cancer`` types out.
    """
    out = []
    for name, rule in crosswalk()["review_cancer_types"].items():
        if (rule.get("any_cancer") and include_any) or (
            mondo_id and mondo_id in (rule.get("accepts") or []) + (rule.get("broader") or [])
        ):
            out.append(name)
    return out


def in_review_cancer_type(names: list[str], mondo_id: str | None) -> bool:
    """Whether a dataset of Mondo disease ``mondo_id`` is in one of the review's cancer types ``names``
    (a Table 2 row's ``cancer_types``); see :func:`review_cancer_types`."""
    mine = {n.lower() for n in review_cancer_types(mondo_id)}
    return any(n.lower() in mine for n in names)


def crosswalk_table() -> pd.DataFrame:
    """The published crosswalk: ``dataset, cell_type_author, cell_type, cell_type_ontology_id,
    cell_type_ontology_label, lineage`` (malignant cells: "Malignant cell", CL:0001064)."""
    cw = crosswalk()
    rows = []
    for dataset_id, labels in cw["datasets"].items():
        for author, harmonised in labels.items():
            ct = cw["cell_types"][harmonised]
            rows.append(
                {
                    "dataset": dataset_id,
                    "cell_type_author": author,
                    "cell_type": harmonised,
                    "cell_type_ontology_id": ct["ontology_id"],
                    "cell_type_ontology_label": ct["ontology_label"],
                    "lineage": ct["lineage"],
                }
            )
    return pd.DataFrame(rows)


def _labels(col: pd.Series, fill: str) -> pd.Series:
    return col.astype(object).where(col.notna(), fill).astype(str)


def harmonise_obs(
    obs: pd.DataFrame,
    *,
    cell_type_key: str,
    sample_key: str | None = None,
    cell_type_fine_key: str | None = None,
    malignant: np.ndarray | bool = False,
    pseudo_sample: str,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """The atlas's obs columns from author columns (a copy; author columns are kept).

    ``cell_type_author`` <- ``obs[cell_type_key]`` (missing labels become :data:`UNLABELLED`,
    warned); ``cell_type_fine`` <- ``obs[cell_type_fine_key]`` or the author label; ``sample``
    <- ``obs[sample_key]`` (missing -> "unrecorded") or, without a sample column, the single
    ``pseudo_sample`` (statistics then describe one tumour); ``malignant`` <- ``malignant``
    (a boolean per cell, or one value). A named column that does not exist is a ``KeyError``
    listing the available ones. ``notes`` collects the warnings (user files report them).
    """
    missing = [c for c in (cell_type_key, sample_key, cell_type_fine_key) if c and c not in obs]
    if missing:
        raise KeyError(f"obs column(s) {missing} not found; available: {list(map(str, obs.columns))}")
    out = obs.copy()
    labels = obs[cell_type_key]
    n_missing = int(labels.isna().sum())
    if n_missing:
        warn_input(
            f"{n_missing} cell(s) have no label in obs[{cell_type_key!r}]; they form the cell type {UNLABELLED!r}",
            notes if notes is not None else [],
        )
    out["cell_type_author"] = pd.Categorical(_labels(labels, UNLABELLED))
    out["cell_type_fine"] = (
        pd.Categorical(_labels(obs[cell_type_fine_key], UNLABELLED)) if cell_type_fine_key else out["cell_type_author"]
    )
    out[SAMPLE_KEY] = (
        pd.Categorical(_labels(obs[sample_key], "unrecorded"))
        if sample_key
        else pd.Categorical([pseudo_sample] * len(obs))
    )
    out["malignant"] = np.broadcast_to(np.asarray(malignant, dtype=bool), (len(obs),)).copy()
    return out


def harmonise_cell_types(adata: AnnData, *, dataset_id: str | None = None) -> None:
    """Add ``obs["cell_type"]``, ``obs["cell_type_ontology_id"]`` and ``obs["lineage"]``.

    With a ``dataset_id`` (a registry dataset): author labels are mapped by the crosswalk;
    malignant cells (``obs["malignant"]``) become "Malignant cell" (CL:0001064). An author label
    missing from the crosswalk is a ``KeyError`` naming the label and the dataset (never a silent
    "Unknown"). With ``dataset_id=None`` (a user's file): the author label is the cell type, its
    ontology id comes from ``obs["cell_type_ontology_term_id"]`` when present (else ""), lineage "".

    Parameters
    ----------
    adata
        Harmonised by :func:`harmonise_obs` (``obs["cell_type_author"]``, ``obs["malignant"]``); changed in place.
    dataset_id
        The registry id whose crosswalk entry applies, or ``None`` for a user's file.
    """
    obs = adata.obs
    authors = obs["cell_type_author"].astype(str)
    if dataset_id is None:
        adata.obs[CELL_TYPE_KEY] = pd.Categorical(authors)
        onto = obs[ONTOLOGY_COLUMN].astype(str) if ONTOLOGY_COLUMN in obs else [""] * adata.n_obs
        adata.obs["cell_type_ontology_id"] = pd.Categorical(onto)
        adata.obs["lineage"] = pd.Categorical([""] * adata.n_obs)
        return
    cw = crosswalk()
    table = cw["datasets"].get(dataset_id, {})
    malignant = obs["malignant"].to_numpy(bool)
    unknown = sorted(set(authors[~malignant]) - set(table))
    if unknown:
        raise KeyError(f"dataset {dataset_id!r}: author cell types {unknown} are not in crosswalk.yaml; add them")
    ct = np.where(malignant, MALIGNANT_CELL, [table.get(a, MALIGNANT_CELL) for a in authors])
    vocab = cw["cell_types"]
    adata.obs[CELL_TYPE_KEY] = pd.Categorical(ct)
    adata.obs["cell_type_ontology_id"] = pd.Categorical([vocab[c]["ontology_id"] for c in ct])
    adata.obs["lineage"] = pd.Categorical([vocab[c]["lineage"] for c in ct])
