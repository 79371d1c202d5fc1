"""Load labelled senescence data (the registry's ``ground_truth`` section) as one AnnData shape.

A ground-truth entry names the author's label column and which of its values are senescent (the
positive class) and which are proliferating, quiescent or another control (negative classes, each
kept as its own class: quiescent cells are never pooled with proliferating ones), the unit of
replication (strain, donor, replicate sample, ...), species, inducer and assay (bulk or single-cell).
:func:`load_ground_truth` reads it with the same readers, duplicate-gene policy, value-type checks,
normalisation and gene-symbol resolution as the tumour datasets (:mod:`sasp_atlas.data.load`), maps
mouse genes to human orthologs (HCOP, :func:`sasp_atlas.genes.mouse_to_human`) and caches the
result as h5ad. Ground-truth entries are never tumour datasets: ``list_datasets`` does not list them.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..genes import HCOP_SOURCE, MAPPED_ORTHOLOG_STATUSES, catalogue, derived_from, mouse_to_human
from ..sources import Dataset, cache_dir, fetch_dataset, get_ground_truth
from .load import LOADER_VERSION, _file_provenance, apply_gene_policy, normalise, resolve_var_names
from .readers import READERS
from .validate import InputError

__all__ = [
    "load_ground_truth",
    "ground_truth_obs",
    "map_mouse_genes",
    "ground_truth_accessions",
    "training_overlap",
    "CONDITIONS",
    "POSITIVE_CLASS",
    "NEGATIVE_CLASSES",
    "GROUND_TRUTH_VERSION",
]

log = logging.getLogger(__name__)

#: the harmonised classes of ``obs["condition"]``, in the order regex labels are tried
CONDITIONS = ("senescent", "quiescent", "proliferating", "control")
POSITIVE_CLASS = "senescent"
NEGATIVE_CLASSES = ("proliferating", "quiescent", "control")
#: part of the h5ad cache key of ground-truth objects (with the tumour loader's version)
GROUND_TRUTH_VERSION = "1"

_TRUTH = {
    "per_sample": "per-sample truth: each bulk sample's state was established by the authors",
    "per_cell": "per-cell truth: each cell was called senescent or not",
    "condition": "condition labels, not per-cell truth: every cell carries the condition of the sample it came "
    "from (not every cell of a senescent sample need be senescent)",
}


def ground_truth_obs(obs: pd.DataFrame, entry: Dataset | dict) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """The harmonised ``obs`` of a ground-truth entry: ``condition`` (one of :data:`CONDITIONS`),
    ``condition_author`` (the label as released) and ``unit`` (the unit of replication).

    Returns ``(obs, keep, summary)``: ``keep`` drops the values the entry lists under
    ``labels.exclude``; any other label value that fits no class raises :class:`InputError` naming it
    (nothing is pooled silently). ``summary`` gives the counts per class and the excluded values.
    """
    e = entry.entry if isinstance(entry, Dataset) else entry
    lab, unit = e["labels"], e["unit"]
    for col, what in ((lab["column"], "labels.column"), (unit["column"], "unit.column")):
        if col not in obs:
            raise InputError(
                f"ground truth {e['id']!r}: {what} {col!r} is not a column of the data; "
                f"columns: {list(obs.columns)}. Fix the registry entry"
            )
    author = obs[lab["column"]].astype(str)
    exclude = set(lab.get("exclude") or [])
    condition = pd.Series(pd.NA, index=obs.index, dtype="object")
    if lab.get("match", "exact") == "regex":
        for cls in CONDITIONS:
            for pattern in lab.get(cls) or []:
                hit = condition.isna() & author.map(lambda v, rx=re.compile(pattern): bool(rx.search(v)))
                condition[hit] = cls
        excluded = condition.isna() & author.map(lambda v: any(re.search(p, v) for p in exclude))
    else:
        for cls in CONDITIONS:
            condition[author.isin(lab.get(cls) or [])] = cls
        excluded = author.isin(exclude)
    unmatched = sorted(set(author[condition.isna() & ~excluded]))
    if unmatched:
        raise InputError(
            f"ground truth {e['id']!r}: label value(s) {unmatched[:10]} of column {lab['column']!r} fit no "
            "class (senescent, proliferating, quiescent, control) and are not excluded: add each to one "
            "class or to labels.exclude in the registry entry (quiescent is its own class)"
        )
    keep = ~excluded.to_numpy(bool)
    out = obs.loc[keep].copy()
    out["condition_author"] = author[keep].to_numpy()
    out["condition"] = pd.Categorical(condition[keep].astype(str), categories=list(CONDITIONS))
    out["unit"] = obs.loc[keep, unit["column"]].astype(str).to_numpy()
    counts = out["condition"].value_counts()
    summary = {
        "n_per_class": {c: int(counts.get(c, 0)) for c in CONDITIONS},
        "excluded": {v: int((author == v).sum()) for v in sorted(set(author[excluded]))},
    }
    return out, keep, summary


def map_mouse_genes(adata: ad.AnnData) -> tuple[ad.AnnData, dict[str, Any]]:
    """Mouse ``var_names`` -> human symbols with the atlas's HCOP rule (:func:`sasp_atlas.genes.mouse_to_human`).

    Genes with a mapped ortholog (one-to-one, many-to-one, same symbol) are renamed; the others are
    dropped; two mouse genes mapping to one human gene keep the first column (the duplicate-gene
    policy). ``var["symbol_mouse"]`` keeps the mouse symbol and ``var["ortholog_status"]`` the rule.
    Returns the new object and the counts (for ``uns["provenance"]["ortholog_mapping"]``).
    """
    res = mouse_to_human([str(g) for g in adata.var_names], warn=False)
    mapped = res["status"].isin(MAPPED_ORTHOLOG_STATUSES).to_numpy()
    status_counts = res["status"].value_counts()
    out = adata[:, mapped].copy()
    out.var["symbol_mouse"] = [str(g) for g in out.var_names]
    out.var["ortholog_status"] = res.loc[mapped, "status"].astype(str).to_numpy()
    out.var_names = pd.Index(res.loc[mapped, "human"].astype(str).to_numpy(), name="gene_symbol")
    notes: list[str] = []
    n_before = out.n_vars
    out = apply_gene_policy(out, what="after mapping mouse genes to human orthologs", notes=notes)
    summary = {
        "source": HCOP_SOURCE,
        "n_mouse_genes": int(adata.n_vars),
        "n_mapped": int(mapped.sum()),
        "n_unmapped": int((~mapped).sum()),
        "n_human_genes": int(out.n_vars),
        "n_dropped_as_duplicates": int(n_before - out.n_vars),
        "by_status": {str(k): int(v) for k, v in status_counts.items()},
        "rule": "HCOP one2one, many2one and same-symbol orthologs mapped; one2many and unknown dropped; a human "
        "gene reached by several mouse genes keeps the first column",
    }
    return out, summary


_ACCESSION = re.compile(r"\b(GSE\d+|E-[A-Z]{4}-\d+|PRJ[NED][A-Z]?\d+|[SED]RP\d+)\b")


def ground_truth_accessions(ground_truth_id: str) -> list[str]:
    """Public accessions of a ground-truth entry's data (from ``publication.accession``, e.g. ``GEO GSE63577``)."""
    return _ACCESSION.findall(str(get_ground_truth(ground_truth_id)["publication"].get("accession", "")))


def training_overlap(name: str, ground_truth_id: str) -> bool | None:
    """Was ground-truth data set ``ground_truth_id`` used to derive signature (or train index) ``name``?

    ``True`` when the entry's ``training_overlap`` names it (e.g. ``husi``: the hUSI training runs) or the
    signature's ``derived_from`` lists one of the entry's accessions; ``False`` when neither does and the
    signature's list is complete; ``None`` (unknown) when the signature's source used data sets it does not
    list (``derived_from_complete: false``) or names none: overlap cannot be ruled out.

    Parameters
    ----------
    name
        A catalogue signature id, or ``husi`` (the hUSI index, whose training runs the entries name).
    ground_truth_id
        An id of the registry's ``ground_truth`` section.
    """
    gt = get_ground_truth(ground_truth_id)
    if name in (gt.get("training_overlap") or []):
        return True
    if name not in catalogue():
        return False if name == "husi" else None  # hUSI's runs are named in the entries; other indices unknown
    accessions, complete = derived_from(name)
    if set(accessions) & set(ground_truth_accessions(ground_truth_id)):
        return True
    return False if complete else None


def _cache_key(gt: Dataset) -> str:
    h = hashlib.sha256(f"{LOADER_VERSION}:{GROUND_TRUTH_VERSION}".encode())
    for f in gt.files:
        h.update((f.get("sha256") or f.get("git_blob_sha1") or "not pinned").encode())
    for key in ("loader", "labels", "unit"):
        h.update(repr(sorted(gt[key].items())).encode())
    h.update(f"{gt['value_type']}:{gt['species']}".encode())
    return h.hexdigest()[:16]


def load_ground_truth(ground_truth_id: str, *, mirror: str | None = None, use_cache: bool = True) -> ad.AnnData:
    """Load a ground-truth entry of the registry as a labelled, log-normalised AnnData.

    Read like a tumour dataset (:func:`sasp_atlas.data.load_dataset`): the entry's reader, the
    duplicate-gene policy, the value-type check and normalisation of
    :func:`sasp_atlas.data.normalise` (``.X`` is natural log1p of counts per 10,000 for
    ``raw_counts`` and ``cpm_like``), approved HGNC symbols; mouse genes are mapped to human orthologs
    after normalisation (so the library size counts every mouse gene), see :func:`map_mouse_genes`.

    Returns observations (bulk samples or cells) x genes with ``.X`` float32 CSR,
    ``layers["original"]`` the values as released (mapped genes only for mouse), and

    * ``obs["condition"]``: ``senescent``, ``proliferating``, ``quiescent`` or ``control`` (categorical;
      quiescent is never pooled with proliferating), ``obs["condition_author"]``: the label as
      released, ``obs["unit"]``: the unit of replication (strain, replicate sample, ...), plus the
      reader's columns;
    * ``uns["ground_truth"]``: ``label_column``, ``positive_class`` (``senescent``),
      ``negative_classes`` (those present), ``unit_name``, ``n_units``, ``species``, ``inducer``,
      ``assay`` (bulk / single-cell), ``cell_type``, ``value_type``, ``truth``
      (``per_sample``/``per_cell``/``condition``), ``truth_note`` (shown wherever the labels are:
      condition labels are not per-cell truth), ``n_per_class``, ``excluded``, ``training_overlap``;
    * ``uns["provenance"]``: id, title, citation, DOI, accession, licence, normalisation, symbol
      resolution or ``ortholog_mapping``, and each file's URL and hash.

    Parameters
    ----------
    ground_truth_id
        An id of the registry's ``ground_truth`` section (:func:`sasp_atlas.sources.list_ground_truth`).
    mirror
        A local mirror folder checked before any download (default ``$SASP_ATLAS_MIRROR``).
    use_cache
        Read the converted h5ad from the cache when it exists (default); ``False`` converts again.
    """
    gt = get_ground_truth(ground_truth_id)
    h5ad = cache_dir() / gt.id / f"ground-truth-{_cache_key(gt)}.h5ad"
    if use_cache and h5ad.exists():
        log.info("cached  %s (converted, %s)", gt.id, h5ad)
        adata = ad.read_h5ad(h5ad)
        adata.uns["ground_truth"]["truth_note"] = _TRUTH[gt["labels"]["truth"]]
        return adata

    paths = fetch_dataset(gt, mirror=mirror)
    X, genes, cells, obs = READERS[gt["loader"]["name"]](paths, gt["loader"].get("options") or {})
    obs = obs.copy()
    obs.columns = [str(c) for c in obs.columns]
    obs.index = pd.Index(cells).astype(str)
    obs, keep, summary = ground_truth_obs(obs, gt)
    for col in obs.columns:
        if col != "condition" and obs[col].dtype == object:
            obs[col] = obs[col].astype(str)
    adata = ad.AnnData(
        X=sp.csr_matrix(X)[np.flatnonzero(keep)],
        obs=obs,
        var=pd.DataFrame(index=pd.Index([str(g) for g in genes], name="gene_symbol")),
    )
    notes: list[str] = []
    adata = apply_gene_policy(adata, what=f"in {gt.id}", notes=notes)
    for note in notes:
        log.warning("%s: %s", gt.id, note)
    original = adata.X.copy()
    norm = normalise(adata, gt["value_type"])
    adata.layers["original"] = original
    genes_step: dict[str, Any]
    if gt["species"] == "mouse":
        adata, genes_step = map_mouse_genes(adata)
        gene_key = "ortholog_mapping"
    else:
        genes_step = resolve_var_names(adata)
        gene_key = "symbol_resolution"
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    adata.layers["original"] = sp.csr_matrix(adata.layers["original"], dtype=np.float32)
    present = [c for c in NEGATIVE_CLASSES if summary["n_per_class"][c] > 0]
    lab = gt["labels"]
    adata.uns["ground_truth"] = {
        "id": gt.id,
        "label_column": lab["column"],
        "positive_class": POSITIVE_CLASS,
        "negative_classes": present,
        "unit_name": gt["unit"]["name"],
        "unit_column": gt["unit"]["column"],
        "n_units": int(adata.obs["unit"].nunique()),
        "species": gt["species"],
        "inducer": gt["inducer"],
        "assay": gt["assay"],
        "cell_type": gt.get("cell_type", ""),
        "value_type": gt["value_type"],
        "truth": lab["truth"],
        "truth_note": _TRUTH[lab["truth"]],
        "n_per_class": summary["n_per_class"],
        "excluded": summary["excluded"],
        "labels_by_class": {c: list(lab.get(c) or []) for c in CONDITIONS},
        "training_overlap": list(gt.get("training_overlap") or []),
    }
    pub = gt["publication"]
    adata.uns["provenance"] = {
        "dataset_id": gt.id,
        "kind": "ground_truth",
        "title": gt["title"],
        "technology": gt["technology"],
        "citation": pub["citation"],
        "doi": pub["doi"],
        "accession": pub["accession"],
        "license": gt["license"],
        "value_type": gt["value_type"],
        "normalisation": norm["method"],
        "loader": gt["loader"]["name"],
        "loader_version": f"{LOADER_VERSION}:{GROUND_TRUTH_VERSION}",
        gene_key: genes_step,
        "files": {f["name"]: _file_provenance(f) for f in gt.files if f.get("sha256") or f.get("git_blob_sha1")},
    }
    h5ad.parent.mkdir(parents=True, exist_ok=True)
    tmp = h5ad.with_suffix(".h5ad.tmp")
    adata.write_h5ad(tmp)
    tmp.replace(h5ad)  # atomic: a crash never leaves a half-written cache entry
    log.info("converted ground truth %s: %d x %d -> %s", gt.id, adata.n_obs, adata.n_vars, h5ad)
    return adata
