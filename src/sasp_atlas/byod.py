"""Bring your own data: score a user's ``.h5ad`` with the atlas's signatures, statistics and page.

:func:`load_user_data` reads an AnnData file, refuses what scores cannot be computed on (each refusal
is an :class:`InputError` that names the problem and the fix), and returns it harmonised like a
registry dataset, together with a :class:`~sasp_atlas.registry.Dataset` record for the pages.
:func:`score_user_file` runs it through :func:`sasp_atlas.pipeline.run_dataset` and writes the
tables, the scored object and a standalone, offline HTML report (``sasp-atlas score``).

What is checked, in this order (``book/bad_inputs.md`` lists every message):

1. the file exists and reads as ``.h5ad`` (backed mode for large files, dense or sparse ``X``);
2. the obs columns named by ``cell_type_key`` / ``sample_key`` / ``malignant_key`` exist;
3. gene identifiers: Ensembl ids (``ENSG...``/``ENSMUSG...``) are replaced by a var symbol column
   (:data:`SYMBOL_COLUMNS`), the symbols must fit ``species`` (mouse-like ``Il6`` vs human ``IL6``);
4. the values: no NaN/inf, no negative values (scaled / z-scored data), and a recognised value
   type (:func:`detect_value_type`): integers are raw counts (normalised with
   :func:`sasp_atlas.io.normalise`), non-integers up to :data:`LOG_MAX` are log-normalised values
   (used as they are), larger non-integers are refused;
5. warnings, not errors: duplicated symbols (the first column is kept), no sample column (one
   pseudo-sample), cell types with fewer than ``min_cells`` cells (flagged in the tables), labels
   missing for some cells; low signature coverage is flagged by the usual coverage table.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .registry import Dataset

__all__ = ["InputError", "InputWarning", "load_user_data", "score_user_file", "render_report", "notebook_html",
           "detect_value_type", "SYMBOL_COLUMNS", "LOG_MAX", "USER_SAMPLE"]

log = logging.getLogger(__name__)

#: var columns searched (in this order) for gene symbols when ``var_names`` are Ensembl ids
SYMBOL_COLUMNS = ("feature_name", "gene_symbols", "gene_symbol", "symbol", "symbols", "gene_name", "gene_names",
                  "gene", "genes")
#: non-integer values above this are not log-normalised (log1p of CP10k reaches ~9, log2(TPM+1) ~20)
LOG_MAX = 30.0
#: the one pseudo-sample of a file without a sample column
USER_SAMPLE = "user:unrecorded"
#: files larger than this are opened in backed mode (the matrix is read in blocks of rows)
BACKED_BYTES = 2 * 2**30
#: bytes of dense float32 values per block when scanning or reading the matrix in row blocks
BLOCK_BYTES = 64 * 2**20

_ENSEMBL = re.compile(r"^ENS(MUS)?G\d{6,}(\.\d+)?$")
_HUMAN_ORF = re.compile(r"^C(\d+|X|Y)orf\d+")
_DEFAULT_MIN_CELLS = 10


class InputError(ValueError):
    """The user's file cannot be scored as it is; the message names the problem and the fix."""


class InputWarning(UserWarning):
    """Something in the user's file was handled by a documented rule (kept first, pseudo-sample, ...)."""


def _warn(msg: str, notes: list[str]) -> None:
    notes.append(msg)
    warnings.warn(msg, InputWarning, stacklevel=5)  # _warn <- helper <- _read_checked <- load_user_data <- caller


def _examples(items, n: int = 5) -> str:
    items = [str(i) for i in items]
    return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")


# --------------------------------------------------------------------------- reading
def _open(path: Path, backed: bool | None) -> ad.AnnData:
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    if path.suffix != ".h5ad":
        raise InputError(f"input file {path.name} is not an .h5ad file; save your AnnData with adata.write_h5ad(...)")
    use_backed = path.stat().st_size > BACKED_BYTES if backed is None else backed
    try:
        return ad.read_h5ad(path, backed="r") if use_backed else ad.read_h5ad(path)
    except Exception as exc:  # h5py/anndata raise many types for a damaged or foreign file
        raise InputError(f"cannot read {path.name} as .h5ad ({type(exc).__name__}: {exc})") from None


def _layer_hint(adata: ad.AnnData) -> str:
    layers = list(adata.layers.keys())
    raw = adata.raw is not None
    have = (f"this file has layers {layers}" if layers else "this file has no layers") + (" and adata.raw" if raw else "")
    return f"layer=NAME / --layer NAME ('raw' for adata.raw); {have}"


def _matrix(adata: ad.AnnData, layer: str | None) -> tuple[Any, pd.DataFrame, str]:
    """(matrix, var frame, description) of the values to score."""
    if layer is None:
        return adata.X, adata.var, "X"
    if layer == "raw":
        if adata.raw is None:
            raise InputError(f"layer 'raw' asked for, but the file has no adata.raw; {_layer_hint(adata)}")
        return adata.raw.X, adata.raw.var, "raw.X"
    if layer not in adata.layers:
        raise InputError(f"layer {layer!r} not found; {_layer_hint(adata)}")
    return adata.layers[layer], adata.var, f"layers[{layer!r}]"


def _row_blocks(X, n_obs: int, n_vars: int):
    """Yield ``(row0, block)``; ``block`` is CSR or a dense array. Works for backed matrices too."""
    if sp.issparse(X) and X.format != "csr":
        X = X.tocsr()
    step = max(1, BLOCK_BYTES // max(1, 4 * n_vars))
    for r0 in range(0, n_obs, step):
        block = X[r0:min(r0 + step, n_obs)]
        yield r0, (sp.csr_matrix(block) if sp.issparse(block) else np.asarray(block))


def _positions(block, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) in ``block`` of entries ``flat`` of its stored values (sparse) or of its ravel (dense)."""
    if sp.issparse(block):
        return np.searchsorted(block.indptr, flat, side="right") - 1, block.indices[flat]
    return np.divmod(flat, block.shape[1])


def _scan(X, obs_names: pd.Index, var_names: pd.Index, where: str, hint: str) -> dict[str, Any]:
    """One pass over the matrix: refuse NaN/inf and negative values; integer check and maximum."""
    n_obs, n_vars = len(obs_names), len(var_names)
    n_nan = n_inf = n_neg = 0
    bad_cells: set[int] = set()
    bad_genes: set[int] = set()
    first_bad: list[str] = []
    neg_cells: set[int] = set()
    vmin, vmax, integer, n_stored = np.inf, -np.inf, True, 0
    for r0, block in _row_blocks(X, n_obs, n_vars):
        values = block.data if sp.issparse(block) else block.ravel()
        if values.size == 0:
            continue
        n_stored += values.size
        finite = np.isfinite(values)
        if not finite.all():
            flat = np.flatnonzero(~finite)
            n_nan += int(np.isnan(values[flat]).sum())
            n_inf += int(np.isinf(values[flat]).sum())
            rows, cols = _positions(block, flat)
            bad_cells.update((r0 + rows).tolist())
            bad_genes.update(cols.tolist())
            first_bad += [f"cell {obs_names[r0 + r]!r} x gene {var_names[c]!r} = {values[i]}"
                          for i, r, c in zip(flat[:5], rows[:5], cols[:5])][:5 - len(first_bad)]
            values = values[finite]
            if values.size == 0:
                continue
        vmin, vmax = min(vmin, float(values.min())), max(vmax, float(values.max()))
        if vmin < 0:
            neg = np.flatnonzero(block.data < 0 if sp.issparse(block) else block.ravel() < 0)
            n_neg += len(neg)
            neg_cells.update((r0 + _positions(block, neg)[0]).tolist())
        if integer and not np.array_equal(values, np.round(values)):
            integer = False
    if n_nan or n_inf:
        cells = [obs_names[i] for i in sorted(bad_cells)]
        genes = [var_names[j] for j in sorted(bad_genes)]
        raise InputError(
            f"{where} holds {n_nan + n_inf} non-finite value(s) ({n_nan} NaN, {n_inf} infinite) in {len(cells)} cell(s) "
            f"and {len(genes)} gene(s): {'; '.join(first_bad)}. Cells: {_examples(cells)}. Genes: {_examples(genes)}. "
            f"Scores need finite values: fix them where the matrix was made, or pass another layer ({hint})")
    if n_neg:
        raise InputError(
            f"{where} holds {n_neg} negative value(s) (minimum {vmin:.4g}, in {len(neg_cells)} of {n_obs} cells): it looks "
            "scaled (z-scored, e.g. sc.pp.scale) or batch-corrected. Scores need unscaled (not z-scored) expression: pass "
            f"the log-normalised layer or the raw counts ({hint})")
    if n_stored == 0 or vmax <= 0:
        raise InputError(f"{where} holds no non-zero value ({n_obs} cells x {n_vars} genes); nothing to score")
    return {"integer": integer, "max": vmax, "min": vmin}


def detect_value_type(integer: bool, vmax: float) -> str:
    """``raw_counts`` (every value an integer), ``log_normalised`` (non-integer, max <= :data:`LOG_MAX`);
    anything else raises :class:`InputError`."""
    if integer:
        return "raw_counts"
    if vmax <= LOG_MAX:
        return "log_normalised"
    raise InputError(
        f"the values are not integers and reach {vmax:.6g}, more than log-normalised values reach (<= {LOG_MAX:g}): they "
        "look linear-scale normalised (CPM/TPM) or corrected counts. Pass raw counts or log-normalised values, or "
        "log-transform them first (sc.pp.log1p) and save the file again")


# --------------------------------------------------------------------------- genes
def _symbols(var: pd.DataFrame, species: str, gene_symbols_key: str | None, notes: list[str]) -> tuple[list[str], str]:
    """Gene symbols for the matrix columns, and where they came from."""
    ids = [str(g) for g in var.index]
    ens = [g for g in ids if _ENSEMBL.match(g)]
    if ens:
        mouse_ids = sum(g.startswith("ENSMUSG") for g in ens)
        if species == "human" and mouse_ids > len(ens) / 2:
            raise InputError(f"var_names are mouse Ensembl ids ({_examples(ens, 3)}) but species is 'human': pass "
                             "--species mouse (species='mouse')")
        if species == "mouse" and mouse_ids < len(ens) / 2:
            raise InputError(f"var_names are human Ensembl ids ({_examples(ens, 3)}) but species is 'mouse': pass "
                             "--species human (species='human')")
    if gene_symbols_key is not None:
        if gene_symbols_key not in var:
            raise InputError(f"var column {gene_symbols_key!r} (gene_symbols_key) not found; var columns: {list(var.columns)}")
        key = gene_symbols_key
    elif len(ens) > len(ids) / 2:
        key = next((c for c in SYMBOL_COLUMNS if c in var and
                    var[c].astype(str).map(lambda s: not _ENSEMBL.match(s)).mean() > 0.5), None)
        if key is None:
            raise InputError(
                f"var_names are Ensembl ids ({_examples(ens, 3)}) and no gene symbol column was found in var (looked for "
                f"{', '.join(SYMBOL_COLUMNS)}); var columns: {list(var.columns)}. Signatures are gene symbols: add a "
                "symbol column (e.g. adata.var['gene_symbols']) or name it with gene_symbols_key / --gene-symbols-key")
    else:
        return ids, "var_names"
    col = var[key].astype(object)
    given = [isinstance(v, str) and v.strip() not in ("", "nan") for v in col]
    symbols = [str(v) if ok else i for v, ok, i in zip(col, given, ids)]
    if not all(given):
        missing = [i for ok, i in zip(given, ids) if not ok]
        _warn(f"{len(missing)} gene(s) have no symbol in var[{key!r}]; they keep their id ({_examples(missing)})", notes)
    return symbols, f"var[{key!r}]"


def _check_species(symbols: list[str], species: str) -> None:
    named = [s for s in symbols if re.search(r"[A-Za-z]", s) and not _ENSEMBL.match(s)]
    if len(named) < 10:
        return
    mouse_like = [s for s in named if s[0].isupper() and s != s.upper() and not _HUMAN_ORF.match(s)]
    human_like = [s for s in named if s == s.upper()]
    if species == "human" and len(mouse_like) > 0.5 * len(named):
        raise InputError(f"the gene symbols look like mouse symbols ({len(mouse_like)} of {len(named)} are capitalised like "
                         f"{_examples(mouse_like, 4)}) but species is 'human': pass --species mouse (species='mouse')")
    if species == "mouse" and len(human_like) > 0.5 * len(named):
        raise InputError(f"the gene symbols look like human symbols ({len(human_like)} of {len(named)} are upper-case like "
                         f"{_examples(human_like, 4)}) but species is 'mouse': pass --species human (species='human')")


def _dedupe(names: list[str], what: str, notes: list[str]) -> np.ndarray:
    """Positions to keep: the first column of every name; warns naming the duplicates."""
    s = pd.Series(names)
    dup = s.duplicated(keep="first")
    if dup.any():
        counts = s[s.isin(s[dup])].value_counts()
        examples = _examples([f"{g} ({n} columns)" for g, n in counts.items()])
        _warn(f"{int(dup.sum())} column(s) repeat a gene symbol{' ' + what if what else ''}: the first column of each "
              f"symbol is kept, the others dropped ({len(counts)} symbol(s), e.g. {examples})", notes)
    return np.flatnonzero(~dup.to_numpy())


def _to_human(symbols: list[str], notes: list[str]) -> tuple[list[str], dict[str, Any]]:
    from .genes import HCOP_SOURCE, MAPPED_ORTHOLOG_STATUSES, mouse_to_human

    res = mouse_to_human(symbols, warn=False)
    mapped = res["status"].isin(MAPPED_ORTHOLOG_STATUSES).to_numpy()
    human = [str(h) if m else s for h, m, s in zip(res["human"], mapped, symbols)]
    counts = res["status"].value_counts().to_dict()
    unmapped = [s for s, m in zip(symbols, mapped) if not m]
    if unmapped:
        _warn(f"mouse -> human (HCOP): {int(mapped.sum())} of {len(symbols)} genes mapped; {len(unmapped)} have no usable "
              f"human ortholog and keep their mouse symbol, so no signature uses them (e.g. {_examples(unmapped)})", notes)
    return human, {"source": HCOP_SOURCE, **{f"n_{k}": int(v) for k, v in counts.items()}, "n_mapped": int(mapped.sum())}


# --------------------------------------------------------------------------- obs
def _as_bool(col: pd.Series, key: str) -> np.ndarray:
    if col.dtype == bool:
        return col.to_numpy()
    if col.isna().any():
        raise InputError(f"obs[{key!r}] (malignant_key) has {int(col.isna().sum())} missing value(s); it must be True/False")
    text = col.astype(str).str.strip().str.lower()
    truth = {"true": True, "1": True, "1.0": True, "yes": True, "false": False, "0": False, "0.0": False, "no": False}
    bad = sorted(set(text) - set(truth))
    if bad:
        raise InputError(f"obs[{key!r}] (malignant_key) must be boolean (True/False, 1/0 or yes/no); found {_examples(bad)}")
    return text.map(truth).to_numpy(bool)


def _harmonise_obs(obs: pd.DataFrame, *, cell_type_key: str, sample_key: str | None, malignant_key: str | None,
                   min_cells: int, notes: list[str]) -> tuple[pd.DataFrame, list[str]]:
    out = obs.copy()
    labels = obs[cell_type_key]
    n_missing = int(labels.isna().sum())
    labels = labels.astype(object).where(labels.notna(), "unlabelled").astype(str)
    if n_missing:
        _warn(f"{n_missing} cell(s) have no label in obs[{cell_type_key!r}]; they form the cell type 'unlabelled'", notes)
    out["cell_type_author"] = pd.Categorical(labels)
    out["cell_type"] = pd.Categorical(labels)  # no crosswalk for user labels: the label is the cell type
    out["cell_type_fine"] = pd.Categorical(labels)
    onto = "cell_type_ontology_term_id"  # CELLxGENE's column of Cell Ontology ids
    out["cell_type_ontology_id"] = pd.Categorical(obs[onto].astype(str) if onto in obs else [""] * len(obs))
    out["lineage"] = pd.Categorical([""] * len(obs))
    if sample_key is None:
        _warn(f"no sample_key: all cells form one pseudo-sample {USER_SAMPLE!r}, so intervals are over cells and describe "
              "these cells only (pass --sample-key to summarise per sample)", notes)
        out["sample"] = pd.Categorical([USER_SAMPLE] * len(obs))
    else:
        s = obs[sample_key]
        out["sample"] = pd.Categorical(s.astype(object).where(s.notna(), "unrecorded").astype(str))
    out["malignant"] = _as_bool(obs[malignant_key], malignant_key) if malignant_key else False
    sizes = out["cell_type"].value_counts()
    small = sizes[sizes < min_cells]
    if len(small):
        _warn(f"{len(small)} cell type(s) have fewer than {min_cells} cells: "
              f"{_examples([f'{ct!r} ({n})' for ct, n in small.items()], 10)}; they are kept and flagged in the tables "
              f"('fewer than {min_cells} cells'): their summaries are unreliable", notes)
    return out, [str(c) for c in small.index]


def _read_checked(src: ad.AnnData, file_name: str, *, cell_type_key: str | None, sample_key: str | None, species: str,
                  malignant_key: str | None, min_cells: int, layer: str | None, gene_symbols_key: str | None,
                  notes: list[str]) -> tuple[ad.AnnData, dict[str, Any]]:
    """Checks 2-5 of the module doc on an opened (possibly backed) file; returns the raw harmonised
    AnnData (float32 CSR, symbols as var_names, not yet normalised) and what was found."""
    obs_cols = list(map(str, src.obs.columns))
    if cell_type_key is None:
        if "cell_type" not in src.obs:
            raise InputError(f"no cell_type_key given and obs has no 'cell_type' column: pass --cell-type-key "
                             f"(cell_type_key=...); available obs columns: {obs_cols}")
        cell_type_key = "cell_type"
    for what, key in (("cell_type_key", cell_type_key), ("sample_key", sample_key), ("malignant_key", malignant_key)):
        if key is not None and key not in src.obs:
            raise InputError(f"{what} {key!r} is not an obs column; available obs columns: {obs_cols}")
    if src.n_obs == 0 or src.n_vars == 0:
        raise InputError(f"{file_name} has {src.n_obs} cells x {src.n_vars} genes; nothing to score")

    X, var, where = _matrix(src, layer)
    symbols, symbol_source = _symbols(var, species, gene_symbols_key, notes)
    _check_species(symbols, species)
    stats = _scan(X, src.obs_names, pd.Index(map(str, var.index)), where, _layer_hint(src))
    value_type = detect_value_type(stats["integer"], stats["max"])

    orthologs: dict[str, Any] = {}
    if species == "mouse":
        first = _dedupe(symbols, "", notes)  # positions in the file
        human, orthologs = _to_human([symbols[i] for i in first], notes)
        second = _dedupe(human, "after mapping mouse genes to human orthologs", notes)  # positions in `first`
        keep = first[second]
        names = [human[i] for i in second]
    else:
        keep = _dedupe(symbols, "", notes)
        names = [symbols[i] for i in keep]

    # the matrix, block by block (backed: never whole in memory), float32 CSR, kept columns only
    blocks = [sp.csr_matrix(b[:, keep], dtype=np.float32) for _, b in _row_blocks(X, src.n_obs, len(var))]
    matrix = sp.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
    obs, small = _harmonise_obs(src.obs, cell_type_key=cell_type_key, sample_key=sample_key, malignant_key=malignant_key,
                                min_cells=min_cells, notes=notes)
    var_out = pd.DataFrame({"feature_id": [str(var.index[i]) for i in keep]}, index=pd.Index(names, name="gene_symbol"))
    if species == "mouse":
        var_out["mouse_symbol"] = [symbols[i] for i in keep]
    info = {"cell_type_key": cell_type_key, "value_type": value_type, "max": stats["max"], "where": where,
            "source": symbol_source, "orthologs": orthologs, "small": small}
    return ad.AnnData(X=matrix, obs=obs, var=var_out), info


def _slug(stem: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_") or "user_data"


# --------------------------------------------------------------------------- the public entry points
def load_user_data(path: str | Path, *, cell_type_key: str | None = None, sample_key: str | None = None,
                   species: str = "human", malignant_key: str | None = None, cancer_type: str = "unknown",
                   min_cells: int = _DEFAULT_MIN_CELLS, layer: str | None = None, gene_symbols_key: str | None = None,
                   backed: bool | None = None) -> tuple[Dataset, ad.AnnData]:
    """Read and validate a user's ``.h5ad``; return ``(Dataset record, harmonised AnnData)``.

    Parameters
    ----------
    path
        An ``.h5ad`` file, cells x genes, ``X`` dense or sparse. Files above 2 GiB (or with
        ``backed=True``) are opened with ``anndata.read_h5ad(path, backed="r")`` and the matrix is
        read in blocks of rows, so a dense ``X`` is never held whole.
    cell_type_key
        obs column of cell-type labels (required; ``None`` uses a ``cell_type`` column if there is one).
    sample_key
        obs column of samples (patients). ``None``: one pseudo-sample :data:`USER_SAMPLE` (warned).
    species
        ``"human"`` or ``"mouse"`` (mouse symbols mapped with :func:`sasp_atlas.genes.mouse_to_human`).
    malignant_key
        obs column of booleans marking malignant cells (``None``: no cell is malignant).
    cancer_type
        Free text for the tables and the report.
    min_cells
        Cell types with fewer cells are warned about and flagged in the tables (not dropped).
    layer
        Score ``adata.layers[layer]`` (or ``"raw"`` for ``adata.raw``) instead of ``X``.
    gene_symbols_key
        var column of gene symbols (default: found among :data:`SYMBOL_COLUMNS` when ``var_names``
        are Ensembl ids).

    Returns a :class:`~sasp_atlas.registry.Dataset` (id = slug of the file name, publication
    ``"User-provided data: <file>"``, the file's ``file://`` URL and sha256) and an AnnData with
    ``.X`` float32 CSR log-normalised (value-type aware, see :func:`detect_value_type`), var_names
    approved HGNC symbols (:func:`sasp_atlas.io.resolve_var_names`; duplicates: first column kept),
    obs ``cell_type_author``, ``cell_type`` (= the user's label), ``cell_type_fine``,
    ``cell_type_ontology_id`` (from ``cell_type_ontology_term_id`` if present, else ""), ``lineage``
    (""), ``sample``, ``malignant`` (replacing user columns of those names) and
    ``uns["provenance"]`` (file, sha256, value type, normalisation, keys, what was warned).
    Raises :class:`InputError` for every refused input; warnings are :class:`InputWarning`.
    """
    from .fetch import file_sha256
    from .io import normalise, resolve_var_names

    path = Path(path).expanduser().resolve()
    if species not in ("human", "mouse"):
        raise InputError(f"species must be 'human' or 'mouse', not {species!r} (--species)")
    notes: list[str] = []
    src = _open(path, backed)
    try:
        adata, info = _read_checked(src, path.name, cell_type_key=cell_type_key, sample_key=sample_key, species=species,
                                    malignant_key=malignant_key, min_cells=min_cells, layer=layer,
                                    gene_symbols_key=gene_symbols_key, notes=notes)
    finally:
        if src.isbacked:
            src.file.close()
    cell_type_key, value_type, where, symbol_source = info["cell_type_key"], info["value_type"], info["where"], info["source"]
    symbol_resolution = resolve_var_names(adata)
    if value_type == "raw_counts":
        norm = normalise(adata, "raw_counts")["method"]
    else:
        norm = "log-normalised values as provided (non-integer, max <= %g); used as they are" % LOG_MAX
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)

    sha = file_sha256(path)
    size = path.stat().st_size
    detected = (f"{value_type}: every value is an integer" if value_type == "raw_counts" else
                f"{value_type}: non-integer values, maximum {info['max']:.4g} <= {LOG_MAX:g}")
    keys = {"cell_type_key": cell_type_key, "sample_key": sample_key or "", "malignant_key": malignant_key or "",
            "layer": layer or "", "gene_symbols": symbol_source, "species": species}
    summary = (f"{adata.n_obs:,} cells x {adata.n_vars:,} genes from {path.name} ({where}); cell types from "
               f"obs[{cell_type_key!r}], samples from {f'obs[{sample_key!r}]' if sample_key else 'one pseudo-sample'}; "
               f"gene symbols from {symbol_source} ({species}); value type detected: {detected}.")
    entry = {
        "id": _slug(path.stem), "title": f"User data: {path.name}", "species": species,
        "cancer_type": cancer_type, "cancer_type_short": cancer_type, "cancer_type_ontology_id": "",
        "tissue": "user data", "technology": "unknown", "value_type": value_type,
        "publication": {"citation": f"User-provided data: {path.name}", "doi": "", "accession": ""},
        "license": "user data",
        "files": [{"name": path.name, "url": f"file://{path}", "sha256": sha, "size": size}],
        "notes": " ".join([summary] + notes),
    }
    adata.uns["provenance"] = {
        "dataset_id": entry["id"], "title": entry["title"], "cancer_type": cancer_type, "cancer_type_short": cancer_type,
        "cancer_type_ontology_id": "", "tissue": "user data", "technology": "unknown",
        "citation": entry["publication"]["citation"], "doi": "", "accession": "", "license": "user data",
        "file": path.name, "sha256": sha, "value_type": value_type, "value_type_detected": detected,
        "normalisation": norm, "symbol_resolution": symbol_resolution, "orthologs": info["orthologs"], "keys": keys,
        "min_cells": int(min_cells), "small_cell_types": info["small"], "warnings": notes,
        "files": {path.name: {"url": entry["files"][0]["url"], "sha256": sha, "size": size}},
    }
    log.info("user data %s: %s", path.name, summary)
    return Dataset(entry), adata


def _min_cells_flags(table: pd.DataFrame, min_cells: int) -> pd.DataFrame:
    """Re-derive the ``fewer than N cells`` flag of :func:`sasp_atlas.stats.celltype_scores` for ``min_cells``."""
    def fix(flag: str, n: int) -> str:
        parts = [p for p in str(flag).split("; ") if p and not re.fullmatch(r"fewer than \d+ cells", p)]
        return "; ".join(([f"fewer than {min_cells} cells"] if n < min_cells else []) + parts)

    out = table.copy()
    out["flag"] = [fix(f if isinstance(f, str) else "", n) for f, n in zip(out["flag"], out["n_cells"])]
    return out


def _check_signatures(adata: ad.AnnData, signatures: list[str]) -> None:
    from .scoring import resolve_signatures

    present = set(map(str, adata.var_names))
    empty = [s for s, genes in resolve_signatures(signatures).items() if not present.intersection(genes)]
    if len(empty) == len(signatures):
        raise InputError(f"no gene of any signature ({', '.join(signatures)}) is in the data; var_names begin "
                         f"{_examples(list(adata.var_names[:5]))}: are they gene symbols of the right species?")
    if empty:
        raise InputError(f"signature(s) {', '.join(empty)} have no gene in the data; choose others with --signatures "
                         "(signatures=...)")


def score_user_file(path: str | Path, out_dir: str | Path, *, cell_type_key: str | None = None,
                    sample_key: str | None = None, signatures: list[str] | None = None, method: str = "scanpy",
                    species: str = "human", random_state: int = 0, report: bool = True,
                    malignant_key: str | None = None, cancer_type: str = "unknown", min_cells: int = _DEFAULT_MIN_CELLS,
                    layer: str | None = None, gene_symbols_key: str | None = None) -> dict[str, Path]:
    """Score a user's ``.h5ad`` and write the results to ``out_dir`` (``sasp-atlas score``).

    Loads with :func:`load_user_data` (same keyword options), scores and summarises with
    :func:`sasp_atlas.pipeline.run_dataset` (no embedding) and writes exactly:

    * ``celltype_scores.csv`` — the atlas table (:data:`sasp_atlas.stats.CELLTYPE_COLUMNS`; the
      ``random_state`` column records the seed), ``flag`` using ``min_cells``;
    * ``coverage.csv`` — signature genes present / rescued / missing (:func:`sasp_atlas.stats.coverage_table`);
    * ``scored.h5ad`` — the harmonised object with ``obsm["sasp_scores"]`` (cells x signatures) and
      ``uns["sasp_scores"]`` (method, parameters including ``random_state``, genes used per signature);
    * with ``report``: ``report.html`` (the dataset page template executed by papermill and rendered
      standalone, the Vega bundle inlined, so it works offline) and its figures in ``report_files/``.
      A failing notebook raises :class:`sasp_atlas.book.NotebookFailed` and no report is written.

    Returns ``{name: path}`` of the files written.
    """
    from .pipeline import DEFAULT_SIGNATURES, run_dataset

    out = Path(out_dir)
    sigs = list(signatures or DEFAULT_SIGNATURES)
    options = {"cell_type_key": cell_type_key, "sample_key": sample_key, "species": species,
               "malignant_key": malignant_key, "cancer_type": cancer_type, "min_cells": min_cells, "layer": layer,
               "gene_symbols_key": gene_symbols_key}
    ds, adata = load_user_data(path, **options)
    _check_signatures(adata, sigs)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        res = run_dataset(ds.id, adata=adata, signatures=sigs, method=method, random_state=random_state, out_dir=tmp,
                          with_embedding=False)
    written = {"celltype_scores": out / "celltype_scores.csv", "coverage": out / "coverage.csv",
               "scored": out / "scored.h5ad"}
    _min_cells_flags(res.celltype_scores, min_cells).to_csv(written["celltype_scores"], index=False, float_format="%.6g")
    res.coverage.to_csv(written["coverage"], index=False)
    res.adata.uns["sasp_scores"]["signature_ids"] = list(res.adata.obsm["sasp_scores"].columns)
    res.adata.write_h5ad(written["scored"])
    if report:
        written["report"] = render_report(Path(path), out, user_options=options, signatures=sigs, method=method,
                                          random_state=random_state, title=f"SASP signature scores: {Path(path).name}")
    return written


# --------------------------------------------------------------------------- the HTML report
def render_report(input_h5ad: Path, out: Path, *, user_options: dict[str, Any], signatures: list[str], method: str,
                  random_state: int, title: str, template: str | Path | None = None) -> Path:
    """Execute the dataset page template on the user's file and write ``out/report.html``.

    papermill runs ``notebooks/dataset.ipynb`` (parameters ``input_h5ad``, ``user_options``,
    ``signatures``, ``method``, ``random_state``, ``results=out/report_files``) in a temporary
    folder; :func:`sasp_atlas.book._tidy` refuses a notebook with an error output, so a failure
    raises :class:`~sasp_atlas.book.NotebookFailed` and no report (and no traceback) is written.
    """
    import papermill as pm

    from .book import NotebookFailed, _tidy
    from .registry import PROJECT_ROOT

    report = out / "report.html"
    results = out / "report_files"
    report.unlink(missing_ok=True)  # never leave an older report next to new tables
    shutil.rmtree(results, ignore_errors=True)
    template = Path(template) if template else PROJECT_ROOT / "notebooks" / "dataset.ipynb"
    params = {"dataset_id": _slug(Path(input_h5ad).stem), "input_h5ad": str(Path(input_h5ad).resolve()),
              "user_options": user_options, "signatures": signatures, "method": method, "random_state": random_state,
              "results": str(results.resolve())}
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(tmp) / "report.ipynb"
        try:
            pm.execute_notebook(str(template), str(executed), parameters=params, kernel_name="python3", cwd=tmp,
                                progress_bar=False, log_output=False)
        except Exception as exc:
            raise NotebookFailed(f"the report notebook failed: {exc}".splitlines()[0]) from None
        _tidy(executed, title)
        page = notebook_html(executed, title)
    report.write_text(page.replace('href="../../_static/figures/', 'href="report_files/figures/'), encoding="utf-8")
    return report


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.5; }
table { border-collapse: collapse; font-size: .85em; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: .2em .5em; vertical-align: top; }
pre { background: #f6f6f6; padding: .5em; overflow-x: auto; }
.sasp-figure { font-size: .85em; color: #444; margin-bottom: 2em; }
"""


def _vega_bundle() -> str:
    from .charts import write_vega_bundle

    with tempfile.TemporaryDirectory() as tmp:
        js = write_vega_bundle(tmp).read_text(encoding="utf-8")
    return js.replace("</script", "<\\/script")


def notebook_html(notebook: str | Path, title: str) -> str:
    """A standalone HTML page of an executed notebook, honouring the ``remove-cell``/``remove-input``/
    ``remove-output`` tags; markdown rendered with markdown-it-py, HTML outputs as they are, the
    Vega bundle inlined once in the head (charts draw offline). An ``error`` output raises
    :class:`~sasp_atlas.book.NotebookFailed`."""
    import html

    import nbformat
    from markdown_it import MarkdownIt

    from .book import NotebookFailed

    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    nb = nbformat.read(str(notebook), as_version=4)
    body = []
    for cell in nb.cells:
        tags = set(cell.metadata.get("tags", []))
        if "remove-cell" in tags:
            continue
        if cell.cell_type == "markdown":
            body.append(md.render(cell.source))
            continue
        if cell.cell_type != "code":
            continue
        if "remove-input" not in tags:
            body.append(f"<pre><code>{html.escape(cell.source)}</code></pre>")
        for output in [] if "remove-output" in tags else cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "error":
                raise NotebookFailed(f"{notebook}: a cell raised {output.get('ename')}: {output.get('evalue')}")
            if kind == "stream":
                if output.get("name") == "stdout":
                    body.append(f"<pre>{html.escape(output.get('text', ''))}</pre>")
                continue
            data = output.get("data", {})
            text = (lambda v: "".join(v) if isinstance(v, list) else v)
            if "text/html" in data:
                body.append(text(data["text/html"]))
            elif "text/markdown" in data:
                body.append(md.render(text(data["text/markdown"])))
            elif "image/svg+xml" in data:
                body.append(text(data["image/svg+xml"]))
            elif "image/png" in data:
                body.append(f'<img alt="" src="data:image/png;base64,{text(data["image/png"]).strip()}">')
            elif "text/plain" in data:
                body.append(f"<pre>{html.escape(text(data['text/plain']))}</pre>")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{html.escape(title)}</title>\n'
            f"<style>{_CSS}</style>\n<script>{_vega_bundle()}</script>\n</head>\n<body>\n<main>\n"
            + "\n".join(body) + "\n</main>\n</body>\n</html>\n")
