"""SASP ligand -> receptor communication between the cell types of each tumour, with LIANA.

Method
------
LIANA's consensus ``rank_aggregate`` (Dimitrov et al. 2022, doi:10.1038/s41467-022-30755-0; LIANA+,
Dimitrov et al. 2024, doi:10.1038/s41556-024-01469-w) is called as the library ships it (``liana``
pinned in ``pyproject.toml``), never re-implemented: CellPhoneDB, Connectome, log2FC, NATMI and
SingleCellSignalR score every sender -> receiver ligand-receptor pair and their ranks are combined by
robust rank aggregation (Kolde et al. 2012, doi:10.1093/bioinformatics/btr709) into a
``magnitude_rank`` (how strongly the pair is expressed) and a ``specificity_rank`` (how specific it is
to this sender and receiver). Both are RRA scores in [0, 1], smaller = stronger, relative to the
interactions scored in the same call.

* **Resource** (:func:`sasp_resource`): LIANA's ``consensus`` resource, read offline from the file
  inside the installed wheel (``liana/resource/omni_resource.csv``; path, sha256 and version by
  :func:`resource_provenance`), restricted to pairs whose ligand is a SASP gene: by default the
  SenMayo secreted subset (``senmayo_secreted``, Saul et al. 2022) and the SASP Atlas core
  fibroblast SASP (``basisty2020_core_sasp_fibroblast``, Basisty et al. 2020), as the catalogue
  resolves them (:func:`sasp_atlas.genes.get_signature`). A complex ligand (LIANA joins subunits
  with ``_``, e.g. ``INHA_INHBA``) counts as a SASP ligand when **any** subunit is a SASP gene
  (``complex_policy="any"``: the secreted complex carries the SASP gene's product; LIANA still
  scores a complex by its least expressed subunit, so it needs every subunit expressed);
  ``complex_policy="all"`` asks every subunit to be a SASP gene. :func:`resource_pair_counts`
  states how many pairs each set yields.
* **Per sample** (:func:`communication_by_sample`): ``li.mt.rank_aggregate.by_sample`` with
  ``use_raw=False`` (the log-normalised ``.X``), ``expr_prop`` = :data:`EXPR_PROP` (a ligand or
  receptor, every subunit of a complex, must be detected in at least 10 % of the sender's /
  receiver's cells), ``min_cells`` = :data:`MIN_CELLS` (a cell type enters a sample's analysis with
  at least 5 cells), ``n_perms`` = :data:`N_PERMS` label permutations for the CellPhoneDB p-value
  that enters the specificity rank (LIANA's default is 1000; 100 gives p in steps of 0.01, ample for a
  rank) and ``seed`` = :data:`SEED` (LIANA's default; the permutations are LIANA's
  ``numpy.random.default_rng(seed)``, so the table is the same on every run with the same seed).
  ``base`` is the log base of ``.X`` used by LIANA's log2FC method (e for ``raw_counts``
  datasets normalised with ``log1p``, 2 for the log2(TPM/10+1) Smart-seq2 releases; read from
  ``uns["provenance"]["value_type"]``). A sample is analysed when at least two cell types reach
  ``min_cells`` (LIANA's log2FC compares a type with the rest of the sample).
* **Across samples** (:func:`sasp_communication`): per (sender, receiver, ligand, receptor)
  ``n_samples_tested`` (samples in which both types reach ``min_cells``), ``n_samples_expressed``
  (LIANA kept the pair: both partners pass ``expr_prop``), ``n_samples_found`` (kept with
  ``specificity_rank <=`` :data:`FOUND_RANK`, the pair is specific to this sender and receiver in that
  tumour), the median ``magnitude_rank`` / ``specificity_rank`` over the tested samples (a tested
  sample in which the pair was not kept counts as 1, the worst rank) and their best (minimum)
  values, and ``evidence``: ``not found``, ``single tumour``, ``2 tumours``, ``replicated (n
  tumours)`` from the number of tumours in which the pair was found
  (:func:`sasp_atlas.stats.evidence_label`; ``samples not recorded`` for a dataset of unnamed
  tumours). No interval: a rank aggregate has no sampling variance to pool.
* **SASP-high vs SASP-low senders** (:func:`sasp_sender_split`): within each sample and cell type,
  the cells in the top and bottom tertile of the SenMayo score (:func:`sasp_tertiles`; the atlas
  default scoring method ``expected``) form two extra sender groups, ``"<type> SASP-high"`` and
  ``"<type> SASP-low"``, added next to the unchanged cell types (copies of those cells; a type enters
  when both arms reach ``min_cells``). One LIANA call per sample, restricted by ``groupby_pairs`` to
  arm -> cell type (every type of the sample with >= ``min_cells`` cells, the sender's own type
  included), scores the pairs by **magnitude only** (``n_perms=None``): LIANA's magnitude scores
  (CellPhoneDB ``lr_means``, NATMI/Connectome ``expr_prod``, SingleCellSignalR ``lrscore``) and its
  ``expr_prop`` filter use only the sender's and receiver's own cells (``lrscore`` also the matrix
  mean, which the copies shift but which does not change its ranks), so the copies change no score
  of a pair; the specificity scores, which compare a group with the rest, are not used. High and low
  arms of every type are thus ranked in one universe per tumour and face the same receivers. A
  tumour with a single cell type enters the split (its arms -> the type itself) although
  :func:`communication_by_sample` must skip it (LIANA's log2FC needs a second group).
  Reported per (sender type, receiver, pair): each arm's median magnitude rank and ``lr_means``,
  their difference and ``n_samples_high_gt_low`` (tumours in which the high arm ranks better). The
  SenMayo score contains the SenMayo-secreted ligands, so SASP-high senders express those more
  partly by construction (the Basisty ligands are mostly outside SenMayo); the split shows whether
  the surplus changes a pair's standing among the tumour's interactions, and whether a type's
  signal comes from its SASP-high cells.

Every function reads ``adata`` and returns a new table; nothing on ``adata`` is modified.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy.stats import rankdata

from .._constants import CELL_TYPE_KEY, PROVENANCE_KEY, SAMPLE_KEY, SCORES_KEY
from .._lazy import lazy_import
from ..data import InputError
from ..engines import DEFAULT_METHOD, score
from ..genes import get_signature
from .effects import UNRECORDED_SUFFIX, evidence_label

__all__ = [
    "DEFAULT_LIGAND_SETS",
    "EXPR_PROP",
    "MIN_CELLS",
    "N_PERMS",
    "SEED",
    "FOUND_RANK",
    "SPLIT_SIGNATURE",
    "COMMUNICATION_COLUMNS",
    "SPLIT_COLUMNS",
    "resource_provenance",
    "consensus_resource",
    "sasp_resource",
    "resource_pair_counts",
    "communication_by_sample",
    "sasp_communication",
    "sasp_tertiles",
    "sasp_sender_split",
]

#: the SASP gene sets whose genes may be ligands: SenMayo secreted subset and the SASP Atlas core fibroblast SASP
DEFAULT_LIGAND_SETS = ("senmayo_secreted", "basisty2020_core_sasp_fibroblast")
#: LIANA ``expr_prop``: minimum fraction of a type's cells expressing a ligand / receptor (every subunit)
EXPR_PROP = 0.1
#: LIANA ``min_cells``: minimum cells of a type in a sample
MIN_CELLS = 5
#: label permutations for the CellPhoneDB p-value inside the specificity rank
N_PERMS = 100
#: LIANA's default seed for its permutations
SEED = 1337
#: a kept pair is "found" in a sample when its specificity_rank is at most this
FOUND_RANK = 0.05
#: the score that splits senders into SASP-high / SASP-low tertiles
SPLIT_SIGNATURE = "senmayo"
RESOURCE_NAME = "consensus"
COMPLEX_SEP = "_"

COMMUNICATION_COLUMNS = [
    "dataset",
    "source",
    "target",
    "ligand",
    "receptor",
    "ligand_sets",
    "magnitude_rank",
    "specificity_rank",
    "magnitude_rank_best",
    "specificity_rank_best",
    "lr_means",
    "n_samples_found",
    "n_samples_expressed",
    "n_samples_tested",
    "evidence",
    "samples_found",
]
SPLIT_COLUMNS = [
    "dataset",
    "sender_type",
    "target",
    "ligand",
    "receptor",
    "ligand_sets",
    "magnitude_rank_high",
    "magnitude_rank_low",
    "lr_means_high",
    "lr_means_low",
    "delta_lr_means",
    "n_samples_high_gt_low",
    "n_samples_tested",
    "evidence",
]
_KEY = ["source", "target", "ligand_complex", "receptor_complex"]
_HIGH, _MID, _LOW = "SASP-high", "SASP-mid", "SASP-low"

#: parameter text shared by the LIANA functions (one place; filled into their docstrings by ``_shared_doc``)
_SHARED_PARAMS = {
    "adata": """adata
        Cells x genes, log-normalised in ``.X`` (used as it is: ``use_raw=False``), with sample and
        cell-type columns in ``obs``. Not modified.""",
    "sample_key": """sample_key
        ``obs`` column of the tumour (patient) each cell comes from; the analysis unit.""",
    "groupby": """groupby
        ``obs`` column of the cell types (senders and receivers).""",
    "ligand_sets": """ligand_sets
        Catalogue signature ids whose genes count as SASP ligands (union); default
        :data:`DEFAULT_LIGAND_SETS` (SenMayo secreted, SASP Atlas core fibroblast SASP).""",
    "complex_policy": """complex_policy
        ``"any"``: a complex ligand counts when any subunit is a SASP gene; ``"all"``: only when every
        subunit is.""",
    "expr_prop": """expr_prop
        LIANA's minimum fraction of a type's cells expressing the ligand / receptor (every subunit of
        a complex); default :data:`EXPR_PROP`.""",
    "min_cells": """min_cells
        LIANA's minimum cells of a type in a sample; default :data:`MIN_CELLS`.""",
    "base": """base
        Log base of ``.X`` for LIANA's log2FC method; None reads it from
        ``uns["provenance"]["value_type"]`` (2 for log2(TPM/10+1) and TPM-like releases, else e).""",
    "dataset_id": """dataset_id
        If given, written in a ``dataset`` column (the atlas's bookkeeping); else no such column.""",
}


def _liana():
    """LIANA, imported on first use (a heavy optional dependency: :mod:`sasp_atlas._lazy`)."""
    return lazy_import("liana")


def _shared_doc(*names: str):
    """Fill ``{params}`` in a docstring with the shared text of ``names`` (4-space indented, as numpydoc)."""

    def fill(fn):
        text = "\n".join("    " + _SHARED_PARAMS[n] for n in names)
        fn.__doc__ = fn.__doc__.replace("    {params}", text)
        return fn

    return fill


# --------------------------------------------------------------------------- resource
def _resource_path() -> Path:
    # the file li.rs.select_resource reads (next to liana/resource/select_resource.py)
    return Path(str(resources.files("liana.resource").joinpath("omni_resource.csv")))


def resource_provenance() -> dict[str, str | int]:
    """Where the consensus resource comes from: ``liana_version``, ``resource`` (``consensus``),
    ``path`` (the CSV inside the installed package that ``li.rs.select_resource`` reads), ``sha256``
    of that file and ``n_pairs`` (all consensus pairs)."""
    return dict(_provenance())


@lru_cache(maxsize=1)
def _provenance() -> tuple[tuple[str, str | int], ...]:
    path = _resource_path()
    return (
        ("liana_version", _liana().__version__),
        ("resource", RESOURCE_NAME),
        ("path", str(path)),
        ("sha256", hashlib.sha256(path.read_bytes()).hexdigest()),
        ("n_pairs", len(_consensus())),
    )


def consensus_resource() -> pd.DataFrame:
    """LIANA's ``consensus`` ligand-receptor resource (``li.rs.select_resource``; offline, from the wheel)."""
    return _consensus().copy()


@lru_cache(maxsize=1)
def _consensus() -> pd.DataFrame:
    return _liana().rs.select_resource(RESOURCE_NAME).reset_index(drop=True)


def _ligand_genes(ligand_sets: Sequence[str] | str) -> dict[str, set[str]]:
    if isinstance(ligand_sets, str):
        ligand_sets = [ligand_sets]
    if not ligand_sets:
        raise InputError(
            "ligand_sets is empty: pass catalogue signature ids, e.g. "
            f"{list(DEFAULT_LIGAND_SETS)} (see sasp_atlas.list_signatures())"
        )
    return {sid: set(get_signature(sid)) for sid in ligand_sets}


def _is_sasp(ligand: str, genes: set[str], complex_policy: str) -> bool:
    units = ligand.split(COMPLEX_SEP)
    return any(u in genes for u in units) if complex_policy == "any" else all(u in genes for u in units)


def _check_policy(complex_policy: str) -> None:
    if complex_policy not in ("any", "all"):
        raise InputError(
            f"complex_policy={complex_policy!r}: use 'any' (a complex ligand counts when any subunit "
            "is a SASP gene) or 'all' (every subunit must be)"
        )


@_shared_doc("ligand_sets", "complex_policy")
def sasp_resource(
    ligand_sets: Sequence[str] | str = DEFAULT_LIGAND_SETS, *, complex_policy: str = "any"
) -> pd.DataFrame:
    """The consensus resource restricted to pairs whose ligand is a SASP gene.

    Parameters
    ----------
    {params}

    Returns
    -------
    DataFrame with LIANA's ``ligand, receptor`` columns (complexes as ``_``-joined strings), in the
    resource's order, ready for ``resource=`` of any LIANA method.
    """
    _check_policy(complex_policy)
    genes = set().union(*_ligand_genes(ligand_sets).values())
    res = _consensus()
    keep = res["ligand"].map(lambda lig: _is_sasp(lig, genes, complex_policy)).to_numpy(dtype=bool)
    return res.loc[keep, ["ligand", "receptor"]].reset_index(drop=True)


@_shared_doc("ligand_sets", "complex_policy")
def resource_pair_counts(
    ligand_sets: Sequence[str] | str = DEFAULT_LIGAND_SETS, *, complex_policy: str = "any"
) -> pd.DataFrame:
    """How many consensus pairs each ligand set yields.

    Parameters
    ----------
    {params}

    Returns
    -------
    One row per set (``ligand_set``), plus ``union`` when there are several, with ``n_genes`` (set
    size), ``n_pairs``, ``n_ligands`` (distinct ligands, a complex counted once), ``n_receptors`` and
    ``n_complex_ligands``.
    """
    _check_policy(complex_policy)
    sets = _ligand_genes(ligand_sets)
    sets_union = {"union": set().union(*sets.values())} if len(sets) > 1 else {}
    res = _consensus()
    rows = []
    for sid, genes in {**sets, **sets_union}.items():
        sub = res[res["ligand"].map(lambda lig, g=genes: _is_sasp(lig, g, complex_policy)).to_numpy(dtype=bool)]
        rows.append(
            {
                "ligand_set": sid,
                "n_genes": len(genes),
                "n_pairs": len(sub),
                "n_ligands": sub["ligand"].nunique(),
                "n_receptors": sub["receptor"].nunique(),
                "n_complex_ligands": int(sub["ligand"].drop_duplicates().str.contains(COMPLEX_SEP).sum()),
            }
        )
    return pd.DataFrame(rows)


def _ligand_set_labels(ligands: pd.Series, ligand_sets: Sequence[str] | str, complex_policy: str) -> pd.Series:
    sets = _ligand_genes(ligand_sets)
    cache = {
        lig: ";".join(sid for sid, g in sets.items() if _is_sasp(lig, g, complex_policy)) for lig in pd.unique(ligands)
    }
    return ligands.map(cache)


# --------------------------------------------------------------------------- LIANA calls
def _log_base(adata: AnnData, base: float | None) -> float:
    if base is not None:
        return float(base)
    value_type = (adata.uns.get(PROVENANCE_KEY) or {}).get("value_type", "")
    return 2.0 if value_type in ("log2_tpm10_plus1", "tpm_like", "tpm") else float(np.e)


def _columns(columns: list[str], dataset_id: str | None) -> list[str]:
    """A table's columns, without ``dataset`` when no dataset id is given (generic use)."""
    return list(columns) if dataset_id is not None else [c for c in columns if c != "dataset"]


def _check_keys(adata: AnnData, sample_key: str, groupby: str) -> None:
    for key in (sample_key, groupby):
        if key not in adata.obs:
            raise InputError(
                f"obs[{key!r}] not found (columns: {list(adata.obs.columns)}): pass the column holding "
                f"the {'samples' if key == sample_key else 'cell types'}"
            )


def _eligible_types(samples: np.ndarray, groups: np.ndarray, min_cells: int) -> dict[str, list[str]]:
    """Per sample, the cell types with >= min_cells cells; samples with fewer than two such types are left out."""
    counts = pd.crosstab(samples, groups)
    out = {}
    for sample, row in counts.iterrows():
        types = sorted(row.index[row >= min_cells])
        if len(types) >= 2:
            out[str(sample)] = [str(t) for t in types]
    return dict(sorted(out.items()))


def _light(adata: AnnData, obs: pd.DataFrame, rows: np.ndarray | None = None) -> AnnData:
    """The rows ``rows`` (boolean; all if None) of ``.X`` with ``obs`` (already those rows) holding only
    the columns LIANA needs: LIANA works on this, so ``adata`` itself is never touched."""
    X = adata.X if rows is None else adata.X[rows]
    return AnnData(X=X, obs=obs, var=pd.DataFrame(index=adata.var_names.copy()))


def _params(adata, *, ligand_sets, complex_policy, expr_prop, min_cells, n_perms, seed, base, sample_key, groupby):
    sets = [ligand_sets] if isinstance(ligand_sets, str) else list(ligand_sets)
    prov = resource_provenance()
    return {
        "method": "liana.mt.rank_aggregate (by_sample)",
        "liana_version": prov["liana_version"],
        "resource": prov["resource"],
        "resource_sha256": prov["sha256"],
        "ligand_sets": sets,
        "complex_policy": complex_policy,
        "expr_prop": float(expr_prop),
        "min_cells": int(min_cells),
        "n_perms": n_perms,
        "seed": int(seed),
        "base": _log_base(adata, base),
        "use_raw": False,
        "sample_key": sample_key,
        "groupby": groupby,
    }


@_shared_doc("adata", "sample_key", "groupby", "ligand_sets", "complex_policy", "expr_prop", "min_cells", "base")
def communication_by_sample(
    adata: AnnData,
    *,
    sample_key: str = SAMPLE_KEY,
    groupby: str = CELL_TYPE_KEY,
    ligand_sets: Sequence[str] | str = DEFAULT_LIGAND_SETS,
    complex_policy: str = "any",
    expr_prop: float = EXPR_PROP,
    min_cells: int = MIN_CELLS,
    n_perms: int = N_PERMS,
    seed: int = SEED,
    base: float | None = None,
) -> pd.DataFrame:
    """LIANA's consensus ranks of the SASP ligand -> receptor pairs in every sample.

    ``li.mt.rank_aggregate.by_sample`` on the samples with at least two cell types of >=
    ``min_cells`` cells, with the SASP resource (:func:`sasp_resource`) and the parameters of the
    module doc. Random: LIANA's label permutations, drawn from ``numpy.random.default_rng(seed)``
    afresh in every sample; the same seed gives the same table.

    Parameters
    ----------
    {params}
    n_perms
        Label permutations for CellPhoneDB's p-value inside the specificity rank; default
        :data:`N_PERMS`.
    seed
        LIANA's permutation seed; default :data:`SEED` (LIANA's own default).

    Returns
    -------
    LIANA's table with a ``sample`` column first (``source, target, ligand_complex,
    receptor_complex``, each method's scores, ``magnitude_rank``, ``specificity_rank``), sorted by
    sample, then LIANA's order. ``attrs["params"]`` holds the parameters (with the resource's
    sha256 and LIANA's version), ``attrs["tested"]`` ``{sample: [cell types with >= min_cells]}``
    and ``attrs["samples_skipped"]`` the samples with fewer than two such types.
    """
    _check_keys(adata, sample_key, groupby)
    if n_perms is None or int(n_perms) < 1:
        raise InputError(
            f"n_perms={n_perms!r}: the specificity rank needs CellPhoneDB's permutations; pass n_perms >= 1"
        )
    params = _params(
        adata,
        ligand_sets=ligand_sets,
        complex_policy=complex_policy,
        expr_prop=expr_prop,
        min_cells=min_cells,
        n_perms=int(n_perms),
        seed=seed,
        base=base,
        sample_key=sample_key,
        groupby=groupby,
    )
    resource = sasp_resource(ligand_sets, complex_policy=complex_policy)
    obs = pd.DataFrame(
        {"sample": adata.obs[sample_key].astype(str).to_numpy(), "group": adata.obs[groupby].astype(str).to_numpy()},
        index=adata.obs_names.copy(),
    )
    tested = _eligible_types(obs["sample"].to_numpy(), obs["group"].to_numpy(), min_cells)
    skipped = sorted(set(obs["sample"]) - set(tested))
    columns = ["sample", *_KEY]
    if not tested:
        out = pd.DataFrame(columns=columns + ["magnitude_rank", "specificity_rank"])
    else:
        mask = obs["sample"].isin(list(tested)).to_numpy()
        obs["sample"] = pd.Categorical(obs["sample"], categories=sorted(tested))
        obs["group"] = obs["group"].astype("category")
        light = _light(adata, obs.loc[mask], mask)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LIANA's and anndata's notes on views, densified scaling, deprecations
            out = _liana().mt.rank_aggregate.by_sample(
                light,
                sample_key="sample",
                groupby="group",
                resource=resource,
                use_raw=False,
                expr_prop=expr_prop,
                min_cells=min_cells,
                n_perms=int(n_perms),
                seed=seed,
                base=params["base"],
                inplace=False,
                verbose=False,
            )
        out["sample"] = out["sample"].astype(str)
        out = out.reset_index(drop=True)
    out.attrs = {"params": params, "tested": tested, "samples_skipped": skipped}
    return out


# --------------------------------------------------------------------------- across samples
def _evidence(k: int, unrecorded: bool, none: str) -> str:
    """``none`` when no tumour supports the row, else the project's evidence label of ``k`` tumours."""
    return none if k == 0 else evidence_label(k, unrecorded=unrecorded)


def _empty_summary(columns: list[str], dataset_id: str | None, attrs: dict) -> pd.DataFrame:
    out = pd.DataFrame(columns=_columns(columns, dataset_id))
    out.attrs = attrs
    return out


def _summary_table(
    per_pair: pd.DataFrame,
    *,
    count: str,
    none: str,
    rank_order: list[str],
    samples: Sequence[str],
    dataset_id: str | None,
    ligand_sets: Sequence[str] | str,
    complex_policy: str,
    columns: list[str],
    attrs: dict,
) -> pd.DataFrame:
    """The table both summaries over samples return, from ``per_pair`` (one row per pair, indexed by LIANA's
    key): ligands and receptors named, ``dataset`` and ``ligand_sets`` added, ``evidence`` the label of the
    ``count`` column's tumours (``none`` at 0; a dataset whose one sample is unrecorded says so), sorted by
    ``count`` (descending) then ``rank_order``, then the columns and ``attrs`` of the summary."""
    distinct = sorted(pd.unique(np.asarray(samples, dtype=str)))
    unrecorded = len(distinct) == 1 and distinct[0].endswith(UNRECORDED_SUFFIX)
    out = per_pair.reset_index().rename(columns={"ligand_complex": "ligand", "receptor_complex": "receptor"})
    out["dataset"] = dataset_id
    out["ligand_sets"] = _ligand_set_labels(out["ligand"], ligand_sets, complex_policy)
    out["evidence"] = [_evidence(int(k), unrecorded, none) for k in out[count]]
    out = out.sort_values([count, *rank_order], ascending=[False] + [True] * len(rank_order), kind="mergesort")
    out = out[_columns(columns, dataset_id)].reset_index(drop=True)
    out.attrs = attrs
    return out


def _tested_counts(tested: dict[str, list[str]]) -> pd.DataFrame:
    rows = [(s, a, b) for s, types in tested.items() for a in types for b in types]
    return pd.DataFrame(rows, columns=["sample", "source", "target"])


@_shared_doc(
    "adata", "sample_key", "groupby", "dataset_id", "ligand_sets", "complex_policy", "expr_prop", "min_cells", "base"
)
def sasp_communication(
    adata: AnnData,
    *,
    sample_key: str = SAMPLE_KEY,
    groupby: str = CELL_TYPE_KEY,
    dataset_id: str | None = None,
    ligand_sets: Sequence[str] | str = DEFAULT_LIGAND_SETS,
    complex_policy: str = "any",
    expr_prop: float = EXPR_PROP,
    min_cells: int = MIN_CELLS,
    n_perms: int = N_PERMS,
    seed: int = SEED,
    found_rank: float = FOUND_RANK,
    base: float | None = None,
) -> pd.DataFrame:
    """Sender -> receiver SASP interactions of a dataset, summarised over its samples (module doc).

    Runs :func:`communication_by_sample` and, per (sender, receiver, ligand, receptor) kept by LIANA
    in at least one sample, counts the samples it was tested, expressed and found in and takes the
    median and best ranks over the tested samples (a tested sample without the pair counts as rank 1).

    Parameters
    ----------
    {params}
    n_perms
        Label permutations for CellPhoneDB's p-value inside the specificity rank; default
        :data:`N_PERMS`.
    seed
        LIANA's permutation seed; default :data:`SEED`.
    found_rank
        A pair kept in a sample is found there when its ``specificity_rank`` is at most this;
        default :data:`FOUND_RANK`.

    Returns
    -------
    :data:`COMMUNICATION_COLUMNS`: ``dataset``, ``source`` (sender type), ``target`` (receiver type),
    ``ligand`` / ``receptor`` (gene symbols; complexes ``_``-joined as in LIANA), ``ligand_sets``
    (which of ``ligand_sets`` the ligand belongs to, ``;``-joined), ``magnitude_rank`` /
    ``specificity_rank`` (medians), ``*_best`` (minima), ``lr_means`` (CellPhoneDB's mean of ligand
    and receptor expression in log-normalised units, median over the samples that kept the pair),
    ``n_samples_found`` / ``n_samples_expressed`` / ``n_samples_tested``, ``evidence`` and
    ``samples_found``; sorted by samples found (descending), then median magnitude rank.
    ``attrs["params"]`` as :func:`communication_by_sample` plus ``found_rank``, ``attrs["tested"]``
    and ``attrs["samples_skipped"]``.
    """
    if not 0 < found_rank <= 1:
        raise InputError(f"found_rank={found_rank!r}: a rank threshold in (0, 1], e.g. {FOUND_RANK}")
    per = communication_by_sample(
        adata,
        sample_key=sample_key,
        groupby=groupby,
        ligand_sets=ligand_sets,
        complex_policy=complex_policy,
        expr_prop=expr_prop,
        min_cells=min_cells,
        n_perms=n_perms,
        seed=seed,
        base=base,
    )
    attrs = {**per.attrs, "params": {**per.attrs["params"], "found_rank": float(found_rank)}}
    if per.empty:
        return _empty_summary(COMMUNICATION_COLUMNS, dataset_id, attrs)
    tested = _tested_counts(per.attrs["tested"])
    keys = per[_KEY].drop_duplicates()
    grid = keys.merge(tested, on=["source", "target"])  # every tested sample of every kept pair
    grid = grid.merge(
        per[["sample", *_KEY, "magnitude_rank", "specificity_rank", "lr_means"]], on=["sample", *_KEY], how="left"
    )
    grid["expressed"] = grid["magnitude_rank"].notna()
    grid["found"] = grid["expressed"] & (grid["specificity_rank"] <= found_rank)
    grid[["magnitude_rank", "specificity_rank"]] = grid[["magnitude_rank", "specificity_rank"]].fillna(1.0)
    grid["found_sample"] = grid["sample"].where(grid["found"])
    g = grid.groupby(_KEY, sort=False)
    per_pair = pd.DataFrame(
        {
            "magnitude_rank": g["magnitude_rank"].median(),
            "specificity_rank": g["specificity_rank"].median(),
            "magnitude_rank_best": g["magnitude_rank"].min(),
            "specificity_rank_best": g["specificity_rank"].min(),
            "lr_means": g["lr_means"].median(),
            "n_samples_found": g["found"].sum().astype(int),
            "n_samples_expressed": g["expressed"].sum().astype(int),
            "n_samples_tested": g.size().astype(int),
            "samples_found": g["found_sample"].agg(lambda s: ";".join(sorted(s.dropna()))),
        }
    )
    return _summary_table(
        per_pair,
        count="n_samples_found",
        none="not found",
        rank_order=["magnitude_rank", "specificity_rank", "source", "target", "ligand", "receptor"],
        samples=adata.obs[sample_key].astype(str).to_numpy(),
        dataset_id=dataset_id,
        ligand_sets=ligand_sets,
        complex_policy=complex_policy,
        columns=COMMUNICATION_COLUMNS,
        attrs=attrs,
    )


# --------------------------------------------------------------------------- SASP-high vs SASP-low senders
def sasp_tertiles(scores: np.ndarray, groups: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """``"SASP-high"`` / ``"SASP-mid"`` / ``"SASP-low"`` per cell: the tertile of its score within its
    sample and cell type.

    With ``n`` cells of a type in a sample and ``r`` the score's rank among them (ties averaged),
    a cell is low when ``r <= n/3`` and high when ``n + 1 - r <= n/3`` (the same number of cells in
    both arms, ``floor(n/3)`` without ties; tied cells share a tertile), mid otherwise. NaN scores are
    mid (in neither arm).

    Parameters
    ----------
    scores
        One score per cell (e.g. SenMayo).
    groups
        One cell type per cell.
    samples
        One sample per cell.

    Returns
    -------
    Object array of the labels, one per cell.
    """
    scores = np.asarray(scores, dtype=np.float64)
    keys = pd.Series(np.asarray(samples).astype(str)) + "\x00" + pd.Series(np.asarray(groups).astype(str))
    out = np.full(len(scores), _MID, dtype=object)
    for idx in keys.groupby(keys, sort=False).indices.values():
        idx = idx[np.isfinite(scores[idx])]
        n = len(idx)
        if n == 0:
            continue
        r = rankdata(scores[idx])
        out[idx[r <= n / 3]] = _LOW
        out[idx[n + 1 - r <= n / 3]] = _HIGH
    return out


#: LIANA refuses a matrix holding fewer than 2% of its resource's genes; the atlas asks for this share
MIN_RESOURCE_GENES_PRESENT = 0.05


def communication_skip_reason(
    adata: AnnData,
    ligand_sets: Sequence[str] | str = DEFAULT_LIGAND_SETS,
    *,
    complex_policy: str = "any",
    signature: str = SPLIT_SIGNATURE,
) -> str | None:
    """Why the SASP communication cannot be computed on ``adata`` (``None`` when it can): too few of the
    SASP resource's genes in ``var_names`` (below :data:`MIN_RESOURCE_GENES_PRESENT`; LIANA itself stops
    below 2%, e.g. a gene panel or Ensembl ids), no pair with every subunit of its ligand and receptor
    present, or no gene of ``signature`` (the SASP-high/low split) present. The pipeline then writes
    empty tables and the page says why, instead of failing."""
    resource = sasp_resource(ligand_sets, complex_policy=complex_policy)
    genes = set(adata.var_names.astype(str))

    def parts(names: pd.Series) -> pd.Series:
        return names.astype(str).str.split(COMPLEX_SEP)

    elements = set().union(*parts(resource["ligand"]), *parts(resource["receptor"]))
    present = len(elements & genes)
    if present < MIN_RESOURCE_GENES_PRESENT * len(elements):
        return (
            f"only {present} of the {len(elements)} genes of the SASP ligand-receptor resource are in the data "
            f"(at least {MIN_RESOURCE_GENES_PRESENT:.0%} needed): a gene panel, another species or non-symbol gene "
            f"ids; pass HGNC symbols of a whole transcriptome"
        )
    complete = [
        set(lig.split(COMPLEX_SEP)) | set(rec.split(COMPLEX_SEP)) <= genes
        for lig, rec in zip(resource["ligand"].astype(str), resource["receptor"].astype(str))
    ]
    if not any(complete):
        return "no SASP ligand-receptor pair has its ligand and receptor (every subunit) in the data"
    if not set(get_signature(signature)) & genes:
        return f"no gene of {signature!r} is in the data, so senders cannot be split into SASP-high and SASP-low cells"
    return None


def _split_scores(adata: AnnData, signature: str, method: str) -> np.ndarray:
    light = AnnData(
        X=adata.X, obs=pd.DataFrame(index=adata.obs_names.copy()), var=pd.DataFrame(index=adata.var_names.copy())
    )
    score(light, [signature], method=method, key_added=SCORES_KEY)
    return light.obsm[SCORES_KEY][signature].to_numpy(dtype=np.float64)


@_shared_doc(
    "adata", "sample_key", "groupby", "dataset_id", "ligand_sets", "complex_policy", "expr_prop", "min_cells", "base"
)
def sasp_sender_split(
    adata: AnnData,
    *,
    sample_key: str = SAMPLE_KEY,
    groupby: str = CELL_TYPE_KEY,
    dataset_id: str | None = None,
    ligand_sets: Sequence[str] | str = DEFAULT_LIGAND_SETS,
    complex_policy: str = "any",
    expr_prop: float = EXPR_PROP,
    min_cells: int = MIN_CELLS,
    signature: str = SPLIT_SIGNATURE,
    score_method: str = DEFAULT_METHOD,
    base: float | None = None,
) -> pd.DataFrame:
    """Do the SASP-high cells of a type, not just the type, send its SASP signal? (module doc)

    Per sample: the cell types whose SASP-high and SASP-low arms (:func:`sasp_tertiles` of
    ``signature`` scored with ``score_method``) both have >= ``min_cells`` cells are senders; their
    arms are added as groups ``"<type> SASP-high"`` / ``"<type> SASP-low"`` (copies of the cells)
    and one ``li.mt.rank_aggregate`` call, magnitude only, scores arm -> cell type pairs
    (``groupby_pairs``) against every type with >= ``min_cells`` cells. Nothing random: the
    magnitude scores need no permutations and the expected score draws nothing.

    Parameters
    ----------
    {params}
    signature
        Catalogue id of the score that splits the senders; default :data:`SPLIT_SIGNATURE` (SenMayo).
    score_method
        Scoring method (:func:`sasp_atlas.engines.score`); default the atlas's
        :data:`sasp_atlas.engines.DEFAULT_METHOD` (``expected``).

    Returns
    -------
    :data:`SPLIT_COLUMNS` per (``sender_type``, ``target``, ``ligand``, ``receptor``) kept by LIANA
    for either arm in some sample: ``magnitude_rank_high`` / ``_low`` (medians over the tested
    samples, a pair not kept for an arm counting as 1), ``lr_means_high`` / ``_low`` (medians over the
    samples that kept it for the arm), ``delta_lr_means`` (median over the samples that kept both arms
    of high minus low), ``n_samples_high_gt_low`` (tested samples where the high arm's magnitude rank
    is better), ``n_samples_tested`` and ``evidence`` (``high not above low``, or the evidence label of
    ``n_samples_high_gt_low``). Sorted by ``n_samples_high_gt_low`` (descending), then the high arm's
    rank. ``attrs["params"]`` records the parameters, the signature, the scoring method and
    ``attrs["senders"]`` ``{sample: [sender types]}``.
    """
    _check_keys(adata, sample_key, groupby)
    _check_policy(complex_policy)
    params = _params(
        adata,
        ligand_sets=ligand_sets,
        complex_policy=complex_policy,
        expr_prop=expr_prop,
        min_cells=min_cells,
        n_perms=None,
        seed=SEED,
        base=base,
        sample_key=sample_key,
        groupby=groupby,
    )
    params.update(
        method="liana.mt.rank_aggregate per sample, magnitude only (n_perms=None), SASP-high/low arms "
        "added as sender groups",
        split_signature=signature,
        split_method=score_method,
        split="top vs bottom tertile within sample and cell type",
    )
    resource = sasp_resource(ligand_sets, complex_policy=complex_policy)
    samples = adata.obs[sample_key].astype(str).to_numpy()
    groups = adata.obs[groupby].astype(str).to_numpy()
    tertile = sasp_tertiles(_split_scores(adata, signature, score_method), groups, samples)
    names = adata.obs_names.astype(str).to_numpy()
    results, tested_rows, senders_by_sample = [], [], {}
    for sample in sorted(pd.unique(samples)):
        in_s = np.flatnonzero(samples == sample)
        counts = pd.Series(groups[in_s]).value_counts()
        receivers = sorted(t for t, n in counts.items() if n >= min_cells)
        arm_rows, arm_labels, senders = [], [], []
        for sender in receivers:
            cells = in_s[groups[in_s] == sender]
            high, low = cells[tertile[cells] == _HIGH], cells[tertile[cells] == _LOW]
            if min(len(high), len(low)) < min_cells:
                continue
            senders.append(sender)
            for arm, idx in ((_HIGH, high), (_LOW, low)):
                arm_rows.append(idx)
                arm_labels.append(np.full(len(idx), f"{sender} {arm}", dtype=object))
        if not senders:
            continue
        senders_by_sample[sample] = senders
        extra = np.concatenate(arm_rows)
        labels = np.concatenate([groups[in_s].astype(object), *arm_labels])
        arm_names = [f"{n}|{lab}" for n, lab in zip(names[extra], labels[len(in_s) :], strict=True)]
        index = pd.Index([*names[in_s], *arm_names])
        obs = pd.DataFrame({"label": pd.Categorical(labels)}, index=index)
        light = AnnData(
            X=adata.X[np.concatenate([in_s, extra])], obs=obs, var=pd.DataFrame(index=adata.var_names.copy())
        )
        pairs = pd.DataFrame(
            [(f"{t} {arm}", r) for t in senders for arm in (_HIGH, _LOW) for r in receivers],
            columns=["source", "target"],
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as in communication_by_sample
            res = _liana().mt.rank_aggregate(
                light,
                groupby="label",
                resource=resource,
                groupby_pairs=pairs,
                use_raw=False,
                expr_prop=expr_prop,
                min_cells=min_cells,
                n_perms=None,
                base=params["base"],
                inplace=False,
                verbose=False,
            )
        arm = res["source"].astype(str).str.rsplit(" ", n=1).str[1]
        results.append(
            res.assign(
                sample=sample,
                sender_type=res["source"].astype(str).str.rsplit(" ", n=1).str[0],
                arm=np.where(arm == _HIGH, "high", "low"),
            )
        )
        tested_rows += [(sample, t, r) for t in senders for r in receivers]
    params["n_runs"] = len(results)
    attrs = {"params": params, "senders": senders_by_sample}
    if not results:
        return _empty_summary(SPLIT_COLUMNS, dataset_id, attrs)
    res = pd.concat(results, ignore_index=True)
    tested = pd.DataFrame(tested_rows, columns=["sample", "sender_type", "target"])
    key = ["sender_type", "target", "ligand_complex", "receptor_complex"]
    wide = res.pivot_table(
        index=["sample", *key], columns="arm", values=["magnitude_rank", "lr_means"], aggfunc="first", observed=True
    )
    wide.columns = [f"{v}_{arm}" for v, arm in wide.columns]
    wide = wide.reset_index()
    for col in ("magnitude_rank_high", "magnitude_rank_low", "lr_means_high", "lr_means_low"):
        if col not in wide:
            wide[col] = np.nan
    grid = wide[key].drop_duplicates().merge(tested, on=["sender_type", "target"])
    grid = grid.merge(wide, on=["sample", *key], how="left")
    grid[["magnitude_rank_high", "magnitude_rank_low"]] = grid[["magnitude_rank_high", "magnitude_rank_low"]].fillna(
        1.0
    )
    grid["high_gt_low"] = grid["magnitude_rank_high"] < grid["magnitude_rank_low"]
    grid["delta"] = grid["lr_means_high"] - grid["lr_means_low"]
    g = grid.groupby(key, sort=False)
    per_pair = pd.DataFrame(
        {
            "magnitude_rank_high": g["magnitude_rank_high"].median(),
            "magnitude_rank_low": g["magnitude_rank_low"].median(),
            "lr_means_high": g["lr_means_high"].median(),
            "lr_means_low": g["lr_means_low"].median(),
            "delta_lr_means": g["delta"].median(),
            "n_samples_high_gt_low": g["high_gt_low"].sum().astype(int),
            "n_samples_tested": g.size().astype(int),
        }
    )
    return _summary_table(
        per_pair,
        count="n_samples_high_gt_low",
        none="high not above low",
        rank_order=["magnitude_rank_high", "sender_type", "target", "ligand", "receptor"],
        samples=samples,
        dataset_id=dataset_id,
        ligand_sets=ligand_sets,
        complex_policy=complex_policy,
        columns=SPLIT_COLUMNS,
        attrs=attrs,
    )
