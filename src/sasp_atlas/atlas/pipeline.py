"""One pipeline for every dataset: load -> harmonise -> score -> statistics -> tables.

A registry entry (:func:`sasp_atlas.data.load_dataset`) and a user's file
(:func:`sasp_atlas.data.load_user_data`, via :func:`sasp_atlas.atlas.score_user_file`) arrive in
the same harmonised shape and go through :func:`run_dataset`. The dataset notebook calls it; the
CLI and tests call it too, so every number on a page is produced by this tested code path.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData
from numba.core.registry import CPUDispatcher

from .._constants import CELL_TYPE_KEY, PROVENANCE_KEY, SAMPLE_KEY, SCORES_KEY
from ..data import InputError, crosswalk_table, load_dataset
from ..engines import (
    DEFAULT_METHOD,
    celltype_null,
    gsva_kernel_terms,
    husi_scores,
    load_husi_model,
    method_concordance,
    score,
)
from ..genes import UNCLASSIFIED, SignatureResolutionWarning, coverage_table, list_signatures, sasp_classes
from ..sources import DataUnavailableError, cohort_of, get_dataset, list_datasets
from ..stats import (
    add_q_values,
    celltype_scores,
    gene_decomposition,
    meta_analysis,
    sample_celltype_summary,
    sample_effects,
    table2_checks,
)
from ..stats.association import ASSOCIATION_COLUMNS, SAMPLE_ASSOCIATION_COLUMNS, sample_associations, score_association
from ..stats.communication import (
    COMMUNICATION_COLUMNS,
    SPLIT_COLUMNS,
    communication_skip_reason,
    sasp_communication,
    sasp_sender_split,
)
from ..stats.composition import VALUE_TYPES, sample_class_composition, sasp_class_scores
from ..stats.validity import NOT_ASSESSED, validity_labels

__all__ = [
    "DatasetResult",
    "run_dataset",
    "score_tables",
    "signature_coverage",
    "add_husi",
    "HUSI_KEY",
    "embed",
    "DEFAULT_SIGNATURES",
    "COMPARED_METHODS",
    "results_dir",
    "load_datasets",
    "run_table2",
    "catalogue_coverage",
    "collect_tables",
    "compute_dataset",
    "write_tables",
    "write_class_table",
    "read_tables",
    "read_collected_tables",
    "dataset_tables_dir",
    "TABLE_FILES",
]

log = logging.getLogger(__name__)

#: signatures scored on every page (heatmaps); the first two also get distribution and UMAP figures
DEFAULT_SIGNATURES = [
    "senmayo",
    "senmayo_secreted",
    "fridman_senescence_up",
    "reactome_sasp",
    "kamminga_senescence",
    "tang_senescence_tp53_targets_up",
    "deepscence_core_up",
    "gavish_mp19_epithelial_senescence",
    "gavish_mp22_secreted_i",
    "gavish_mp23_secreted_ii",
]


def results_dir(base: str | Path | None = None) -> Path:
    """``base`` or ``results/`` under the current working directory."""
    return Path(base) if base else Path("results")


@dataclass(frozen=True)
class DatasetResult:
    """Every table of one dataset (:func:`compute_dataset`), and the scored ``adata``; written by
    :func:`write_tables`, read back by :func:`read_tables`. Each table attribute is named by
    :data:`TABLE_FILES`, which gives its file."""

    dataset_id: str
    adata: AnnData
    celltype_scores: pd.DataFrame
    coverage: pd.DataFrame
    cell_scores: pd.DataFrame
    sample_scores: pd.DataFrame
    gene_decomposition: pd.DataFrame
    null: pd.DataFrame
    method_means: pd.DataFrame
    method_concordance: pd.DataFrame
    sasp_class_scores: pd.DataFrame | None = None
    sasp_class_samples: pd.DataFrame | None = None
    sasp_communication: pd.DataFrame | None = None
    sasp_sender_split: pd.DataFrame | None = None
    husi_association: pd.DataFrame | None = None
    husi_association_samples: pd.DataFrame | None = None


#: every table of a :class:`DatasetResult` and its file in the dataset's folder (``tables/datasets/<id>/``)
TABLE_FILES = {
    "celltype_scores": "celltype_scores.csv",
    "coverage": "coverage.csv",
    "sample_scores": "sample_celltype_scores.csv",
    "gene_decomposition": "gene_decomposition.csv",
    "null": "null.csv",
    "method_means": "method_means.csv",
    "method_concordance": "method_concordance.csv",
    "sasp_class_scores": "sasp_class_scores.csv",
    "sasp_class_samples": "sample_sasp_class_scores.csv",
    "sasp_communication": "sasp_communication.csv",
    "sasp_sender_split": "sasp_sender_split.csv",
    "husi_association": "sasp_husi_association.csv",
    "husi_association_samples": "sample_sasp_husi_association.csv",
    "cell_scores": "cell_scores.csv.gz",
}
#: the tables whose rows are counts and names only (written without rounding)
_UNROUNDED = ("coverage",)
#: the file beside a dataset's tables recording why a table was not computed (``{table: reason}``; the pages say it)
SKIPPED_FILE = "skipped.json"


def dataset_tables_dir(out_dir: str | Path | None, dataset_id: str) -> Path:
    """``<out_dir>/tables/datasets/<dataset_id>/``: the folder of one dataset's tables."""
    return results_dir(out_dir) / "tables" / "datasets" / dataset_id


def write_tables(
    result: DatasetResult, out: str | Path | None = None, *, tables: Sequence[str] | None = None, flat: bool = False
) -> dict[str, Path]:
    """Write the tables of ``result`` as CSV (floats to 6 significant digits): the one writer of every
    dataset table (the build's pages, ``sasp-atlas score`` and its report). Why a table was not
    computed (its ``attrs["skipped"]``) goes to :data:`SKIPPED_FILE` beside them. Returns ``{table: path}``.

    Parameters
    ----------
    result
        The tables of one dataset (:func:`compute_dataset`).
    out
        Results folder (default ``results/``): the tables go to ``<out>/tables/datasets/<id>/``
        (:func:`dataset_tables_dir`), each named by :data:`TABLE_FILES`.
    tables
        Only these tables (names of :data:`TABLE_FILES`; default all).
    flat
        Write into ``out`` itself (``sasp-atlas score``'s ``celltype_scores.csv`` and ``coverage.csv``).
    """
    folder = Path(out) if flat else dataset_tables_dir(out, result.dataset_id)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in tables or TABLE_FILES:
        path = folder / TABLE_FILES[name]
        table = getattr(result, name)
        if name == "cell_scores":
            table.to_csv(path, float_format="%.6g")
        else:
            table.to_csv(path, index=False, float_format=None if name in _UNROUNDED else "%.6g")
        written[name] = path
    skipped = {
        name: table.attrs["skipped"] for name in written if (table := getattr(result, name)).attrs.get("skipped")
    }
    (folder / SKIPPED_FILE).unlink(missing_ok=True)
    if skipped:
        (folder / SKIPPED_FILE).write_text(json.dumps(skipped, indent=1) + "\n")
    log.info("%s: %d tables -> %s", result.dataset_id, len(written), folder)
    return written


def write_class_table(out: str | Path | None = None) -> Path:
    """``<out>/tables/sasp_classes.csv``: the SASP factor class of every gene with its source
    (:func:`sasp_atlas.genes.sasp_classes`), the table the composition columns refer to."""
    path = results_dir(out) / "tables" / "sasp_classes.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    sasp_classes().to_csv(path, index=False, float_format="%.6g")
    return path


def _read_table(path: Path, **options) -> pd.DataFrame:
    """A table as :func:`write_tables` wrote it, with its empty cells as they were: an empty text cell is
    ``""`` (a caveat, a flag), an empty number ``NaN``. A column is numeric when every non-empty cell is a
    number; a column with no non-empty cell stays text."""
    table = pd.read_csv(path, keep_default_na=False, **options)
    for col in table.select_dtypes(include="object").columns:
        text = table[col]
        numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
        if (text != "").any() and numbers.notna().sum() == (text != "").sum():
            table[col] = numbers
    return table


def read_tables(out: str | Path | None, dataset_id: str, adata: AnnData) -> DatasetResult:
    """The :class:`DatasetResult` that :func:`write_tables` wrote: what a page or report renders without
    computing again. Empty text cells read as ``""`` and empty numbers as NaN, as computed; a table
    recorded as not computed (:data:`SKIPPED_FILE`) carries the reason in ``attrs["skipped"]``.

    Parameters
    ----------
    out
        The results folder given to :func:`write_tables`.
    dataset_id
        The dataset (its folder ``<out>/tables/datasets/<dataset_id>/``).
    adata
        The scored object to attach as ``result.adata`` (e.g. ``scored.h5ad``; its ``uns["provenance"]``
        is what the pages read).
    """
    folder = dataset_tables_dir(out, dataset_id)
    skipped = json.loads((folder / SKIPPED_FILE).read_text()) if (folder / SKIPPED_FILE).exists() else {}
    tables = {}
    for name, file in TABLE_FILES.items():
        table = _read_table(folder / file, index_col=0 if name == "cell_scores" else None)
        if name in skipped:
            table.attrs["skipped"] = str(skipped[name])
        tables[name] = table
    return DatasetResult(dataset_id, adata, **tables)


#: the display-only embedding is computed on at most this many cells (a seeded subsample; the page
#: draws at most 5,000 points)
EMBED_MAX_CELLS = (
    4_000  # also below scanpy's approximate-kNN path (pynndescent), which fails on scipy 1.17 sparse arrays
)


#: umap-learn's and pynndescent's modules whose numba kernels are compiled without an on-disk cache
_UMAP_KERNEL_MODULES = (
    "umap.umap_",
    "umap.layouts",
    "umap.utils",
    "umap.spectral",
    "pynndescent.distances",
    "pynndescent.utils",
)


#: the hUSI senescence index's column among the scores (``obsm[...]["husi"]``, a row of every table)
HUSI_KEY = "husi"


def add_husi(adata: AnnData, *, key: str = SCORES_KEY, mirror: str | None = None) -> bool:
    """Add the hUSI senescence index (raw Spearman rho, :func:`sasp_atlas.engines.husi_scores`) as a
    column ``husi`` of ``adata.obsm[key]`` with its record in ``adata.uns[key]["signatures"]["husi"]``
    (``method`` husi, the model genes used, coverage), so every per-tumour statistic, meta-analysis and
    table treats it like a signature. Returns False, with a warning naming the reason, when the model
    cannot be read (offline without a mirror) or too few of its genes are measured."""
    try:
        rho = husi_scores(adata, mirror=mirror)
    except (DataUnavailableError, InputError, ValueError) as err:  # ValueError: no model gene in the data
        log.warning("hUSI not computed: %s", str(err).splitlines()[0])
        return False
    adata.obsm[key][HUSI_KEY] = rho.to_numpy()
    n_model = int(rho.attrs["n_model_genes"])
    present = set(adata.var_names.astype(str))
    used = [g for g in load_husi_model(mirror=mirror).index if g in present]
    adata.uns[key]["signatures"][HUSI_KEY] = {
        "genes_used": used,
        "genes_missing": [],
        "n_genes": n_model,
        "n_control_genes": 0,
        "coverage": len(used) / n_model,
        "low_coverage": bool(rho.attrs["low_coverage"]),
        "method": HUSI_KEY,
        "reference": rho.attrs.get("reference", ""),
    }
    return True


def read_validity_labels(out_dir: str | Path | None = None, method: str = DEFAULT_METHOD) -> dict[str, str]:
    """``{signature: validity label}`` from ``<out_dir>/tables/signature_validity_pooled.csv``
    (:func:`sasp_atlas.atlas.validity.run_validity`; ``{}`` when the build has not written it)."""
    path = results_dir(out_dir) / "tables" / "signature_validity_pooled.csv"
    return validity_labels(pd.read_csv(path), method=method) if path.exists() else {}


def with_validity(table: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """``table`` with a ``validity`` column: each row's signature's label on the senescence ground truth
    (``not assessed`` without a validity table)."""
    out = table.copy()
    out["validity"] = out["signature"].map(dict(labels)).fillna(NOT_ASSESSED) if len(out) else pd.Series(dtype=str)
    return out


@functools.cache
def cache_umap_kernels() -> int:
    """Turn on numba's on-disk cache for umap-learn's kernels; returns how many were switched.

    umap-learn compiles its numba functions without ``cache=True``, so every process that embeds
    pays the compilation again (~10 s on 2 cores, most of a small dataset page). With the cache on,
    the first process writes the compiled code and later processes (the other pages of a build, the
    next build) load it. Speed only: the cached machine code is the code numba compiles, so the
    embedding is unchanged (tested: equal coordinates with and without).
    """
    switched = 0
    for name in _UMAP_KERNEL_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # pragma: no cover - a umap-learn without the module
            continue
        for obj in vars(module).values():
            if isinstance(obj, CPUDispatcher) and type(obj._cache).__name__ == "NullCache":
                obj.enable_caching()
                switched += 1
    return switched


def embed(
    adata: AnnData, *, random_state: int = 0, n_top_genes: int = 2000, n_pcs: int = 30, max_cells: int = EMBED_MAX_CELLS
) -> None:
    """UMAP embedding for display only (never used for statistics).

    Highly variable genes (Seurat flavour on log-normalised ``X``), PCA (``n_pcs``), a 15-nearest
    neighbour graph and UMAP (McInnes et al. 2018, arXiv:1802.03426), all seeded with
    ``random_state``. Datasets with more than ``max_cells`` cells are embedded on a seeded subsample
    of that many cells (the page draws at most 5,000 points anyway); the other cells get NaN
    coordinates. Writes ``obsm["X_umap"]``; ``X`` is unchanged.
    """
    if adata.n_obs > max_cells:
        pick = np.sort(np.random.default_rng(random_state).choice(adata.n_obs, max_cells, replace=False))
        sub = AnnData(X=adata.X[pick], var=pd.DataFrame(index=adata.var_names))
        embed(sub, random_state=random_state, n_top_genes=n_top_genes, n_pcs=n_pcs, max_cells=max_cells)
        umap = np.full((adata.n_obs, 2), np.nan)
        umap[pick] = sub.obsm["X_umap"]
        adata.obsm["X_umap"] = umap
        adata.uns["embedding"] = {**sub.uns["embedding"], "subsample": max_cells}
        return
    cache_umap_kernels()
    n_top = min(n_top_genes, adata.n_vars - 1)
    sc.pp.highly_variable_genes(adata, n_top_genes=n_top)
    sc.pp.pca(
        adata, n_comps=min(n_pcs, adata.n_obs - 1, n_top - 1), mask_var="highly_variable", random_state=random_state
    )
    sc.pp.neighbors(adata, random_state=random_state)
    sc.tl.umap(adata, random_state=random_state)
    adata.uns["embedding"] = {
        "method": "HVG(seurat) -> PCA -> kNN(15) -> UMAP",
        "random_state": random_state,
        "n_top_genes": n_top,
        "n_pcs": int(adata.obsm["X_pca"].shape[1]),
    }


#: engines compared on every page (method sensitivity)
COMPARED_METHODS = ("expected", "scanpy", "seurat", "aucell", "ucell", "zmean", "ssgsea", "gsva")
#: ``gsva`` is quadratic in cells (:func:`sasp_atlas.engines.gsva_kernel_terms`): above this many kernel
#: evaluations (~20 s on 2 cores) it is left out of the method comparison, and the page says so
GSVA_MAX_KERNEL_TERMS = 1.5e9


def affordable_methods(
    adata: AnnData, methods: Sequence[str], *, layer: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """``methods`` without those too costly for ``adata``, and why each one left was left out."""
    kept, skipped = [], {}
    for m in methods:
        if m == "gsva":
            terms = gsva_kernel_terms(adata.layers[layer] if layer else adata.X)
            if terms > GSVA_MAX_KERNEL_TERMS:
                skipped[m] = (
                    f"{terms:.2g} kernel evaluations (quadratic in cells) exceed the budget of "
                    f"{GSVA_MAX_KERNEL_TERMS:.2g}; score with --method gsva to compute it"
                )
                log.warning("method sensitivity: gsva left out for %d cells: %s", adata.n_obs, skipped[m])
                continue
        kept.append(m)
    return kept, skipped


#: random gene sets per signature in the null (smallest p ~ 0.001)
N_NULL = 1000
#: the seed of the null's random gene sets: fixed, so p and q values never move with ``random_state``
NULL_SEED = 0


def score_tables(
    adata: AnnData,
    signatures,
    *,
    dataset_id: str,
    cancer_type: str,
    cancer_type_ontology_id: str = "",
    method: str = DEFAULT_METHOD,
    random_state: int = 0,
    min_cells: int = 10,
    n_null: int = N_NULL,
    out_dir: str | Path | None = None,
    mirror: str | None = None,
    with_embedding: bool = False,
    progress: bool = False,
    key: str = SCORES_KEY,
    groupby: str = CELL_TYPE_KEY,
    sample_key: str = SAMPLE_KEY,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, bool]:
    """The one scoring core of every path (a registry dataset, a user's file in memory or lazily on dask):
    score the signatures (into ``obsm[key]``/``uns[key]``), add the hUSI index (:func:`add_husi`), the
    per-sample effects (``obs[sample_key]``, cell types ``obs[groupby]``), the per-cell-type table with the
    random-gene-set null joined, q-values and the validity labels. Returns ``(celltype_scores, null, sample
    effects, hUSI added)``; ``adata`` gains its scores (and, with ``with_embedding``, the UMAP)."""
    score(adata, signatures, method=method, random_state=random_state, progress=progress, key_added=key)
    with_husi = add_husi(adata, key=key, mirror=mirror)
    if with_embedding:
        embed(adata, random_state=random_state)
    effects = sample_effects(
        adata.obsm[key], adata.obs[groupby].astype(str).to_numpy(), adata.obs[sample_key].astype(str).to_numpy()
    )
    table = celltype_scores(
        adata,
        key=key,
        groupby=groupby,
        sample_key=sample_key,
        dataset_id=dataset_id,
        cancer_type=cancer_type,
        cancer_type_ontology_id=cancer_type_ontology_id,
        random_state=random_state,
        min_cells=min_cells,
        effects=effects,
    )
    null = celltype_null(
        adata, signatures, method=method, groupby=groupby, n_null=n_null, seed=NULL_SEED, random_state=random_state
    ).rename(columns={groupby: "cell_type"})
    null.insert(0, "dataset", dataset_id)
    table = table.merge(
        null[["signature", "cell_type", "null_mean", "null_sd", "z", "empirical_p"]].rename(
            columns={"z": "null_z", "empirical_p": "p_null"}
        ),
        on=["signature", "cell_type"],
        how="left",
    )
    table["n_null"] = n_null
    table = with_validity(add_q_values(table), read_validity_labels(out_dir, method))
    return table, null, effects, with_husi


def signature_coverage(adata: AnnData, *, key: str = SCORES_KEY, dataset_id: str | None = None) -> pd.DataFrame:
    """:func:`sasp_atlas.genes.coverage_table` of the signatures scored into ``uns[key]`` (hUSI's model
    coverage is in the score tables' ``coverage`` and ``n_genes``, not listed gene by gene)."""
    cov = coverage_table(adata, key=key, dataset_id=dataset_id)
    return cov[cov["signature"] != HUSI_KEY].reset_index(drop=True)


def compute_dataset(
    dataset_id: str,
    *,
    signatures: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    method: str = DEFAULT_METHOD,
    random_state: int = 0,
    out_dir: str | Path | None = None,
    mirror: str | None = None,
    with_embedding: bool = True,
    adata: AnnData | None = None,
    n_null: int = N_NULL,
    compare_methods: tuple[str, ...] = COMPARED_METHODS,
    min_cells: int = 10,
    value_type: str | None = None,
    key: str = SCORES_KEY,
    groupby: str = CELL_TYPE_KEY,
    sample_key: str = SAMPLE_KEY,
) -> DatasetResult:
    """Load, score and summarise one registry dataset; returns every table (:class:`DatasetResult`)
    and writes nothing (:func:`write_tables` does; :func:`run_dataset` does both).

    ``adata`` (optional): an already loaded and harmonised object (``obs[groupby]``,
    ``obs[sample_key]``, log-normalised ``X``; ``uns["provenance"]`` with ``cancer_type`` and ``value_type``,
    or pass ``value_type``) to use instead of the registry entry ``dataset_id`` — the path for users'
    own data (:func:`sasp_atlas.atlas.run_user_file`).
    ``min_cells``: cell types with fewer cells are flagged in ``celltype_scores``.

    The tables (:data:`TABLE_FILES` names each one's file under ``tables/datasets/<id>/``):
    ``celltype_scores.csv`` (per cell type: mean and effect sizes with
    random-effects intervals over samples, evidence, p and q values, n), ``sample_celltype_scores.csv`` (per sample and cell type), ``coverage.csv``,
    ``gene_decomposition.csv`` (mean expression and fraction expressing of each signature gene per
    cell type), ``null.csv`` (each cell type's mean against ``n_null`` expression-matched random
    gene sets drawn with the fixed seed :data:`NULL_SEED`, :func:`sasp_atlas.engines.celltype_null`; its
    ``z`` and ``empirical_p`` are joined as ``null_z`` and ``p_null``, with Benjamini-Hochberg ``q_null`` and
    ``q_perm`` over the dataset's table, :func:`sasp_atlas.stats.add_q_values`, also joined
    into ``celltype_scores.csv``), ``method_means.csv`` / ``method_concordance.csv`` (the same
    signatures under each engine of ``compare_methods`` and their rank concordance; GSVA left out above
    :data:`GSVA_MAX_KERNEL_TERMS`), ``sasp_class_scores.csv`` / ``sample_sasp_class_scores.csv`` (SASP
    composition: each SASP factor class's score, share of the cell type's SASP expression and balanced
    AUROC, pooled over samples and per sample, :func:`sasp_atlas.stats.composition.sasp_class_scores`),
    ``sasp_communication.csv`` (sender -> receiver SASP ligand-receptor pairs per tumour with LIANA,
    summarised over tumours: :func:`sasp_atlas.stats.communication.sasp_communication`, with the
    ligand's class), ``sasp_sender_split.csv`` (SASP-high vs SASP-low senders of each type,
    :func:`sasp_atlas.stats.communication.sasp_sender_split`),
    ``cell_scores.csv.gz`` (per-cell scores with cell type, sample and UMAP). The class table they refer
    to, ``tables/sasp_classes.csv``, is written once per build (:func:`write_class_table`).

    Parameters
    ----------
    dataset_id
        The registry id (or, with ``adata``, the id used in the tables).
    signatures
        Catalogue ids (default :data:`DEFAULT_SIGNATURES`) or a mapping ``{name: genes}``.
    method
        The scoring engine (:func:`sasp_atlas.engines.list_methods`).
    random_state
        Seed of the ``scanpy`` method's control draw and of the display-only embedding; written into
        every table. The default method and every statistic are seed-free, so the tables do not change with it.
    out_dir
        Results folder (default ``results/``): its signature validity table labels the rows.
    mirror
        Local mirror folder for the registry files.
    with_embedding
        Compute the display-only UMAP (:func:`embed`).
    adata
        An already loaded, harmonised object instead of the registry entry.
    n_null
        Random gene sets per signature in the null.
    compare_methods
        Engines of the method-sensitivity tables.
    min_cells
        Cell types with fewer cells are flagged.
    value_type
        With ``adata`` whose ``uns["provenance"]`` does not record it: what ``X`` was normalised from, which
        sets its log base (one of :data:`sasp_atlas.stats.composition.VALUE_TYPES`: ``raw_counts`` for
        natural ``log1p`` of counts per 10,000, ``log2_tpm10_plus1``/``tpm_like``/``tpm`` for
        ``log2(TPM/10 + 1)``, ``log_normalised`` for another natural-log normalisation); recorded in
        ``uns["provenance"]["value_type"]``. Neither recorded nor given: :class:`~sasp_atlas.data.InputError`.
    key
        The ``obsm``/``uns`` slot the scores are written to and read from (``key_added`` of :func:`sasp_atlas.score`).
    groupby
        The obs column of cell types (the tables' ``cell_type`` column).
    sample_key
        The obs column of samples (tumours; the tables' ``sample`` column).
    """
    sigs = dict(signatures) if isinstance(signatures, Mapping) else list(signatures or DEFAULT_SIGNATURES)
    if adata is None:
        ds = get_dataset(dataset_id)
        cancer_type, cancer_type_id = ds["cancer_type"], ds["cancer_type_ontology_id"]
        adata = load_dataset(dataset_id, mirror=mirror)
    else:
        prov = adata.uns.get(PROVENANCE_KEY, {})
        cancer_type, cancer_type_id = prov.get("cancer_type", "unknown"), prov.get("cancer_type_ontology_id", "")
        _record_value_type(adata, value_type)
    table, null, effects, with_husi = score_tables(
        adata,
        sigs,
        dataset_id=dataset_id,
        cancer_type=cancer_type,
        cancer_type_ontology_id=cancer_type_id,
        method=method,
        random_state=random_state,
        min_cells=min_cells,
        n_null=n_null,
        out_dir=out_dir,
        mirror=mirror,
        with_embedding=with_embedding,
        key=key,
        groupby=groupby,
        sample_key=sample_key,
    )
    methods, _ = affordable_methods(adata, list(dict.fromkeys((method, *compare_methods))))
    conc = method_concordance(adata, sigs, methods=methods, random_state=random_state, groupby=groupby)
    method_means = conc.means.rename(columns={groupby: "cell_type"}).assign(dataset=dataset_id)
    method_conc = conc.concordance.assign(dataset=dataset_id)
    cov = signature_coverage(adata, key=key, dataset_id=dataset_id)
    samples = sample_celltype_summary(
        adata, key=key, groupby=groupby, sample_key=sample_key, dataset_id=dataset_id, effects=effects
    )
    genes = pd.concat(
        [
            gene_decomposition(
                adata,
                adata.uns[key]["signatures"][s]["genes_used"],
                signature=s,
                groupby=groupby,
                dataset_id=dataset_id,
            )
            for s in sigs
        ],
        ignore_index=True,
    )
    classes = sasp_classes()
    class_samples = sample_class_composition(
        adata, classes=classes, groupby=groupby, sample_key=sample_key, dataset_id=dataset_id
    )
    class_scores = sasp_class_scores(
        adata,
        classes=classes,
        groupby=groupby,
        sample_key=sample_key,
        dataset_id=dataset_id,
        cancer_type=cancer_type,
        min_cells=min_cells,
        per_sample=class_samples,
    )
    skip = communication_skip_reason(adata)
    if skip:
        log.warning("%s: SASP communication not computed: %s", dataset_id, skip)
        communication = pd.DataFrame(columns=COMMUNICATION_COLUMNS)
        sender_split = pd.DataFrame(columns=SPLIT_COLUMNS)
        communication.attrs["skipped"] = sender_split.attrs["skipped"] = skip
    else:
        communication = sasp_communication(adata, sample_key=sample_key, groupby=groupby, dataset_id=dataset_id)
        sender_split = sasp_sender_split(adata, sample_key=sample_key, groupby=groupby, dataset_id=dataset_id)
    communication = with_ligand_classes(communication, classes)
    sender_split = with_ligand_classes(sender_split, classes)
    if with_husi:
        sig_cols = [c for c in adata.obsm[key].columns if c != HUSI_KEY]
        husi_samples = sample_associations(
            adata.obsm[key][sig_cols],
            adata.obsm[key][HUSI_KEY],
            adata.obs[groupby].astype(str).to_numpy(),
            adata.obs[sample_key].astype(str).to_numpy(),
            reference_name=HUSI_KEY,
        )
        husi_samples.insert(0, "dataset", dataset_id)
        husi_assoc = score_association(husi_samples.drop(columns="dataset"))
        husi_assoc.insert(0, "dataset", dataset_id)
    else:
        husi_samples = pd.DataFrame(columns=["dataset", *SAMPLE_ASSOCIATION_COLUMNS])
        husi_assoc = pd.DataFrame(columns=["dataset", *ASSOCIATION_COLUMNS])
    cells = adata.obsm[key].copy()
    for col, obs_col in (
        ("cell_type", groupby),
        ("lineage", "lineage"),
        ("cell_type_author", "cell_type_author"),
        ("sample", sample_key),
        ("malignant", "malignant"),
    ):
        cells[col] = adata.obs[obs_col].to_numpy()
    if "X_umap" in adata.obsm:
        cells["umap_1"], cells["umap_2"] = adata.obsm["X_umap"][:, 0], adata.obsm["X_umap"][:, 1]
    cells.index.name = "cell"
    log.info("%s: %d cells scored for %d signatures", dataset_id, adata.n_obs, len(sigs))
    return DatasetResult(
        dataset_id,
        adata,
        table,
        cov,
        cells,
        samples,
        genes,
        null,
        method_means,
        method_conc,
        class_scores,
        class_samples,
        communication,
        sender_split,
        husi_assoc,
        husi_samples,
    )


def run_dataset(dataset_id: str, **options: Any) -> DatasetResult:
    res = compute_dataset(dataset_id, **options)
    write_tables(res, options.get("out_dir"))
    return res


# one signature and one parameter text for both (compute_dataset's), as docrep shares them
run_dataset.__signature__ = inspect.signature(compute_dataset)
run_dataset.__doc__ = """Load, score and summarise one registry dataset (:func:`compute_dataset`) and write every table under
    ``<out_dir>/tables/datasets/<id>/`` (:func:`write_tables`; ``out_dir`` defaults to ``results/``).
    Returns the :class:`DatasetResult` (``res.celltype_scores``, ``res.null``, ...).

""" + compute_dataset.__doc__[compute_dataset.__doc__.index("    Parameters\n") :]


def _record_value_type(adata: AnnData, value_type: str | None) -> None:
    """Make sure ``adata.uns["provenance"]["value_type"]`` says what ``X`` was normalised from (its log base):
    the recorded one, else ``value_type``; neither is an :class:`~sasp_atlas.data.InputError` naming the fix."""
    prov = adata.uns.get(PROVENANCE_KEY) or {}
    recorded = prov.get("value_type")
    if value_type is not None and value_type not in VALUE_TYPES:
        raise InputError(f"value_type={value_type!r} is not a known value type; use one of {', '.join(VALUE_TYPES)}")
    if recorded is not None and (value_type is None or value_type == recorded):
        return
    if recorded is not None:
        raise InputError(
            f"value_type={value_type!r} contradicts uns['provenance']['value_type'] = {recorded!r}; "
            "drop the argument or fix the AnnData's provenance"
        )
    if value_type is None:
        raise InputError(
            "run_dataset cannot tell the log base of .X: the AnnData records no "
            "uns['provenance']['value_type']; say what .X was normalised from, e.g. "
            'run_dataset(..., value_type="raw_counts") for natural log1p of counts per 10,000 (scanpy\'s '
            'normalize_total + log1p), "log2_tpm10_plus1" for log2(TPM/10 + 1); known: '
            f"{', '.join(VALUE_TYPES)}"
        )
    adata.uns[PROVENANCE_KEY] = {**prov, "value_type": value_type}


def with_ligand_classes(table: pd.DataFrame, classes: pd.DataFrame) -> pd.DataFrame:
    """``table`` (a communication table with a ``ligand`` column; complexes ``_``-joined as in LIANA)
    with ``ligand_class``: the SASP factor class of the ligand's SASP subunits
    (:func:`sasp_atlas.genes.sasp_classes`), ``/``-joined when they differ, ``unclassified`` when none
    of its subunits has a class."""
    classified = classes[classes["sasp_class"] != UNCLASSIFIED]
    label = dict(zip(classified["gene"], classified["class_label"]))
    out = table.copy()
    names = []
    for ligand in out["ligand"].astype(str):
        found = list(dict.fromkeys(label[g] for g in ligand.split("_") if g in label))
        names.append("/".join(found) if found else "unclassified")
    out.insert(out.columns.get_loc("ligand") + 1, "ligand_class", names)
    out.attrs = table.attrs
    return out


def load_datasets(dataset_ids: list[str], *, mirror: str | None = None) -> dict[str, AnnData]:
    """``{id: harmonised AnnData}`` of registry datasets (:func:`sasp_atlas.data.load_dataset`), each loaded once."""
    return {dataset_id: load_dataset(dataset_id, mirror=mirror) for dataset_id in dataset_ids}


def registry_overlaps(dataset_ids: list[str]) -> dict[str, list[str]]:
    """Registry ``overlaps`` (datasets sharing cells) among ``dataset_ids``."""
    ids = set(dataset_ids)
    return {d: [o for o in get_dataset(d).get("overlaps", []) if o in ids] for d in dataset_ids}


def registry_cohorts(dataset_ids: list[str]) -> dict[str, str]:
    """Dataset -> its independent study (cohort): the publication's accession, else its DOI, else the id.
    Two registry entries of one study (e.g. two subsets of GEO GSE70630) are one cohort."""
    return {d: cohort_of(get_dataset(d).get("publication"), d) for d in dataset_ids}


def run_table2(
    dataset_ids: list[str],
    *,
    out_dir: str | Path | None = None,
    random_state: int = 0,
    adatas: dict[str, AnnData] | None = None,
    out_csv: str | Path | None = None,
) -> pd.DataFrame:
    """The review's Table 2 tested on every dataset -> ``tables/table2_checks.csv`` (see
    :func:`sasp_atlas.stats.table2_checks`); also writes the crosswalk as ``tables/crosswalk.csv``.
    ``adatas`` (from :func:`load_datasets`) saves loading the datasets again."""
    adatas = adatas if adatas is not None else load_datasets(dataset_ids)
    adatas = {d: adatas[d] for d in dataset_ids}
    checks = table2_checks(adatas, overlaps=registry_overlaps(dataset_ids))
    checks.insert(len(checks.columns), "random_state", random_state)  # recorded; Table 2 is seed-free
    checks = with_validity(checks, read_validity_labels(out_dir))
    base = results_dir(out_dir) / "tables"
    base.mkdir(parents=True, exist_ok=True)
    checks.to_csv(Path(out_csv) if out_csv else base / "table2_checks.csv", index=False, float_format="%.6g")
    crosswalk_table().to_csv(base / "crosswalk.csv", index=False)
    return checks


def catalogue_coverage(
    dataset_ids: list[str],
    *,
    out_dir: str | Path | None = None,
    signatures: list[str] | None = None,
    adatas: dict[str, AnnData] | None = None,
) -> pd.DataFrame:
    """Coverage of every catalogued signature in every dataset -> ``tables/coverage.csv``.

    Gene matching after symbol resolution (:func:`sasp_atlas.genes.coverage_table`), no scoring;
    reads the cached converted datasets (or ``adatas``, from :func:`load_datasets`).
    """
    sigs = list(signatures or list_signatures()["id"])
    frames = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SignatureResolutionWarning)
        for dataset_id in dataset_ids:
            adata = adatas[dataset_id] if adatas is not None else load_dataset(dataset_id)
            frames.append(coverage_table(adata, dataset_id=dataset_id, signatures=sigs))
    cov = pd.concat(frames, ignore_index=True)
    base = results_dir(out_dir) / "tables"
    base.mkdir(parents=True, exist_ok=True)
    cov.to_csv(base / "coverage.csv", index=False, float_format="%.6g")
    return cov


#: the per-dataset tables :func:`collect_tables` concatenates over datasets into ``tables/<name>.csv``
CONCATENATED_TABLES = (
    "celltype_scores",
    "sample_celltype_scores",
    "gene_decomposition",
    "null",
    "method_means",
    "method_concordance",
    "sasp_class_scores",
    "sasp_communication",
    "sasp_husi_association",
)
#: every combined table of :func:`collect_tables` in ``tables/`` (:func:`read_collected_tables` reads them)
COLLECTED_TABLES = ("coverage", "table2_checks", "crosswalk", "sasp_classes", *CONCATENATED_TABLES, "meta_analysis")


def collect_tables(out_dir: str | Path | None = None, dataset_ids: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Once per build, after every dataset's tables are written and before the pages that read them
    (:func:`read_collected_tables`): concatenate the per-dataset tables into ``tables/celltype_scores.csv`` (and the other per-dataset
    tables); pool the samples of every cancer type into ``tables/meta_analysis.csv``
    (:func:`sasp_atlas.stats.meta_analysis`); read ``tables/coverage.csv`` (all signatures x datasets,
    :func:`catalogue_coverage`) and the Table 2 checks when they exist; write the class table
    (:func:`write_class_table`). Returns ``{name: table}``."""
    base = results_dir(out_dir) / "tables"
    ids = dataset_ids or sorted(p.name for p in (base / "datasets").iterdir() if p.is_dir())
    out = {}
    if (base / "coverage.csv").exists():
        out["coverage"] = pd.read_csv(base / "coverage.csv")
    for name in ("table2_checks", "crosswalk"):
        if (base / f"{name}.csv").exists():
            out[name] = pd.read_csv(base / f"{name}.csv")
    out["sasp_classes"] = pd.read_csv(write_class_table(out_dir))
    for name in CONCATENATED_TABLES:
        frames = [pd.read_csv(base / "datasets" / i / f"{name}.csv") for i in ids]
        df = pd.concat(frames, ignore_index=True)
        df.to_csv(base / f"{name}.csv", index=False, float_format="%.6g")
        out[name] = df
    known = {d.id: d["cancer_type"] for d in list_datasets()}
    cancer = {
        i: known.get(i)
        or str(out["celltype_scores"].loc[out["celltype_scores"]["dataset"] == i, "cancer_type"].iloc[0])
        for i in ids
    }
    registered = [i for i in ids if i in known]
    meta = meta_analysis(
        out["sample_celltype_scores"],
        cancer,
        registry_overlaps(registered),
        cohorts=registry_cohorts(registered),
        celltype=out["celltype_scores"],
    )
    meta = with_validity(meta, read_validity_labels(out_dir))
    meta.to_csv(base / "meta_analysis.csv", index=False, float_format="%.6g")
    out["meta_analysis"] = meta
    return out


def read_collected_tables(out_dir: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """``{name: table}`` of the combined tables :func:`collect_tables` wrote under ``<out_dir>/tables/``
    (those present): what the atlas, Table 2 and catalogue pages read; they compute nothing."""
    base = results_dir(out_dir) / "tables"
    return {name: pd.read_csv(base / f"{name}.csv") for name in COLLECTED_TABLES if (base / f"{name}.csv").exists()}
