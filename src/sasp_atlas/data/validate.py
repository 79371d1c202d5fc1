"""Input validation shared by registry datasets and users' files: every refusal names the problem
and the fix (:class:`InputError`); every rule applied silently is logged or warned (:class:`InputWarning`).

* :func:`scan_matrix` — one pass over the matrix (row blocks; backed files never whole in
  memory): no NaN/inf, no negative (scaled) values, integer check and maximum;
  :func:`detect_value_type` turns that into ``raw_counts`` / ``log_normalised``.
* :func:`gene_symbols` / :func:`check_species` — Ensembl ids are replaced by a symbol column,
  and the symbols must fit the species.
* :func:`dedupe_genes` — **the duplicate-gene policy** of the atlas, for registry and user data
  alike: when several columns carry the same gene symbol, the *first* column is kept and the
  others are dropped, with a warning naming them. (Summing or suffixing would change what a
  signature gene means; the first column is the released order's choice and is reproducible.)
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "InputError",
    "InputWarning",
    "SYMBOL_COLUMNS",
    "LOG_MAX",
    "BLOCK_BYTES",
    "warn_input",
    "examples",
    "layer_hint",
    "select_matrix",
    "row_blocks",
    "scan_matrix",
    "detect_value_type",
    "gene_symbols",
    "check_species",
    "dedupe_genes",
    "as_bool",
    "is_ensembl",
]

#: var columns searched (in this order) for gene symbols when ``var_names`` are Ensembl ids
SYMBOL_COLUMNS = (
    "feature_name",
    "gene_symbols",
    "gene_symbol",
    "symbol",
    "symbols",
    "gene_name",
    "gene_names",
    "gene",
    "genes",
)
#: non-integer values above this are not log-normalised (log1p of CP10k reaches ~9, log2(TPM+1) ~20)
LOG_MAX = 30.0
#: bytes of dense float32 values per block when scanning or reading the matrix in row blocks
BLOCK_BYTES = 64 * 2**20

_ENSEMBL = re.compile(r"^ENS(MUS)?G\d{6,}(\.\d+)?$")
_HUMAN_ORF = re.compile(r"^C(\d+|X|Y)orf\d+")


class InputError(ValueError):
    """The user's file cannot be scored as it is; the message names the problem and the fix."""


class InputWarning(UserWarning):
    """Something in the user's file was handled by a documented rule (kept first, pseudo-sample, ...)."""


def warn_input(msg: str, notes: list[str]) -> None:
    notes.append(msg)
    warnings.warn(msg, InputWarning, stacklevel=5)  # warn_input <- helper <- _read_checked <- load_user_data <- caller


def examples(items, n: int = 5) -> str:
    items = [str(i) for i in items]
    return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")


def layer_hint(adata: ad.AnnData) -> str:
    layers = list(adata.layers.keys())
    raw = adata.raw is not None
    have = (f"this file has layers {layers}" if layers else "this file has no layers") + (
        " and adata.raw" if raw else ""
    )
    return f"layer=NAME / --layer NAME ('raw' for adata.raw); {have}"


def select_matrix(adata: ad.AnnData, layer: str | None) -> tuple[Any, pd.DataFrame, str]:
    """(matrix, var frame, description) of the values to score."""
    if layer is None:
        return adata.X, adata.var, "X"
    if layer == "raw":
        if adata.raw is None:
            raise InputError(f"layer 'raw' asked for, but the file has no adata.raw; {layer_hint(adata)}")
        raw_var = adata.raw.var
        if not any(c in raw_var for c in SYMBOL_COLUMNS) and raw_var.index.equals(adata.var.index):
            raw_var = adata.var  # CELLxGENE keeps the gene symbols in var only; raw has the same genes
        return adata.raw.X, raw_var, "raw.X"
    if layer not in adata.layers:
        raise InputError(f"layer {layer!r} not found; {layer_hint(adata)}")
    return adata.layers[layer], adata.var, f"layers[{layer!r}]"


def row_blocks(X, n_obs: int, n_vars: int):
    """Yield ``(row0, block)``; ``block`` is CSR or a dense array. Works for backed matrices too."""
    if sp.issparse(X) and X.format != "csr":
        X = X.tocsr()
    step = max(1, BLOCK_BYTES // max(1, 4 * n_vars))
    for r0 in range(0, n_obs, step):
        block = X[r0 : min(r0 + step, n_obs)]
        yield r0, (sp.csr_matrix(block) if sp.issparse(block) else np.asarray(block))


def _positions(block, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) in ``block`` of entries ``flat`` of its stored values (sparse) or of its ravel (dense)."""
    if sp.issparse(block):
        return np.searchsorted(block.indptr, flat, side="right") - 1, block.indices[flat]
    return np.divmod(flat, block.shape[1])


def scan_matrix(X, obs_names: pd.Index, var_names: pd.Index, where: str, hint: str) -> dict[str, Any]:
    """One pass over the matrix: refuse NaN/inf and negative values; integer check and maximum."""
    n_obs, n_vars = len(obs_names), len(var_names)
    n_nan = n_inf = n_neg = 0
    bad_cells: set[int] = set()
    bad_genes: set[int] = set()
    first_bad: list[str] = []
    neg_cells: set[int] = set()
    vmin, vmax, integer, n_stored = np.inf, -np.inf, True, 0
    for r0, block in row_blocks(X, n_obs, n_vars):
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
            first_bad += [
                f"cell {obs_names[r0 + r]!r} x gene {var_names[c]!r} = {values[i]}"
                for i, r, c in zip(flat[:5], rows[:5], cols[:5])
            ][: 5 - len(first_bad)]
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
            f"and {len(genes)} gene(s): {'; '.join(first_bad)}. Cells: {examples(cells)}. Genes: {examples(genes)}. "
            f"Scores need finite values: fix them where the matrix was made, or pass another layer ({hint})"
        )
    if n_neg:
        raise InputError(
            f"{where} holds {n_neg} negative value(s) (minimum {vmin:.4g}, in {len(neg_cells)} of {n_obs} cells): it looks "
            "scaled (z-scored, e.g. sc.pp.scale) or batch-corrected. Scores need unscaled (not z-scored) expression: pass "
            f"the log-normalised layer or the raw counts ({hint})"
        )
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
        "look linear-scale normalised (TPM/CPM) or corrected counts. Say what they are with --value-type "
        "(value_type=...): --value-type tpm for full-scale TPM (e.g. Smart-seq2 or Fluidigm C1), tpm_like for "
        "TPM/10; they are then normalised as the registry's loader does (log2(TPM/10 + 1)). Or pass raw counts or "
        "log-normalised values"
    )


# --------------------------------------------------------------------------- genes
def gene_symbols(
    var: pd.DataFrame, species: str, gene_symbols_key: str | None, notes: list[str]
) -> tuple[list[str], str]:
    """Gene symbols for the matrix columns, and where they came from."""
    ids = [str(g) for g in var.index]
    ens = [g for g in ids if _ENSEMBL.match(g)]
    if ens:
        mouse_ids = sum(g.startswith("ENSMUSG") for g in ens)
        if species == "human" and mouse_ids > len(ens) / 2:
            raise InputError(
                f"var_names are mouse Ensembl ids ({examples(ens, 3)}) but species is 'human': pass "
                "--species mouse (species='mouse')"
            )
        if species == "mouse" and mouse_ids < len(ens) / 2:
            raise InputError(
                f"var_names are human Ensembl ids ({examples(ens, 3)}) but species is 'mouse': pass "
                "--species human (species='human')"
            )
    if gene_symbols_key is not None:
        if gene_symbols_key not in var:
            raise InputError(
                f"var column {gene_symbols_key!r} (gene_symbols_key) not found; var columns: {list(var.columns)}"
            )
        key = gene_symbols_key
    elif len(ens) > len(ids) / 2:
        key = next(
            (
                c
                for c in SYMBOL_COLUMNS
                if c in var and var[c].astype(str).map(lambda s: not _ENSEMBL.match(s)).mean() > 0.5
            ),
            None,
        )
        if key is None:
            raise InputError(
                f"var_names are Ensembl ids ({examples(ens, 3)}) and no gene symbol column was found in var (looked for "
                f"{', '.join(SYMBOL_COLUMNS)}); var columns: {list(var.columns)}. Signatures are gene symbols: add a "
                "symbol column (e.g. adata.var['gene_symbols']) or name it with gene_symbols_key / --gene-symbols-key"
            )
    else:
        return ids, "var_names"
    col = var[key].astype(object)
    given = [isinstance(v, str) and v.strip() not in ("", "nan") for v in col]
    symbols = [str(v) if ok else i for v, ok, i in zip(col, given, ids)]
    if not all(given):
        missing = [i for ok, i in zip(given, ids) if not ok]
        warn_input(
            f"{len(missing)} gene(s) have no symbol in var[{key!r}]; they keep their id ({examples(missing)})", notes
        )
    return symbols, f"var[{key!r}]"


def check_species(symbols: list[str], species: str) -> None:
    named = [s for s in symbols if re.search(r"[A-Za-z]", s) and not _ENSEMBL.match(s)]
    if len(named) < 10:
        return
    mouse_like = [s for s in named if s[0].isupper() and s != s.upper() and not _HUMAN_ORF.match(s)]
    human_like = [s for s in named if s == s.upper()]
    if species == "human" and len(mouse_like) > 0.5 * len(named):
        raise InputError(
            f"the gene symbols look like mouse symbols ({len(mouse_like)} of {len(named)} are capitalised like "
            f"{examples(mouse_like, 4)}) but species is 'human': pass --species mouse (species='mouse')"
        )
    if species == "mouse" and len(human_like) > 0.5 * len(named):
        raise InputError(
            f"the gene symbols look like human symbols ({len(human_like)} of {len(named)} are upper-case like "
            f"{examples(human_like, 4)}) but species is 'mouse': pass --species human (species='human')"
        )


def dedupe_genes(names: list[str], what: str, notes: list[str]) -> np.ndarray:
    """The duplicate-gene policy: positions to keep, the first column of every name; warns naming the
    duplicates (:class:`InputWarning`, also appended to ``notes``)."""
    s = pd.Series(names)
    dup = s.duplicated(keep="first")
    if dup.any():
        counts = s[s.isin(s[dup])].value_counts()
        shown = examples([f"{g} ({n} columns)" for g, n in counts.items()])
        warn_input(
            f"{int(dup.sum())} column(s) repeat a gene symbol{' ' + what if what else ''}: the first column of "
            f"each symbol is kept, the others dropped ({len(counts)} symbol(s), e.g. {shown})",
            notes,
        )
    return np.flatnonzero(~dup.to_numpy())


# --------------------------------------------------------------------------- obs
def as_bool(col: pd.Series, key: str) -> np.ndarray:
    if col.dtype == bool:
        return col.to_numpy()
    if col.isna().any():
        raise InputError(
            f"obs[{key!r}] (malignant_key) has {int(col.isna().sum())} missing value(s); it must be True/False"
        )
    text = col.astype(str).str.strip().str.lower()
    truth = {"true": True, "1": True, "1.0": True, "yes": True, "false": False, "0": False, "0.0": False, "no": False}
    bad = sorted(set(text) - set(truth))
    if bad:
        raise InputError(
            f"obs[{key!r}] (malignant_key) must be boolean (True/False, 1/0 or yes/no); found {examples(bad)}"
        )
    return text.map(truth).to_numpy(bool)


def is_ensembl(name: str) -> bool:
    """True for a human or mouse Ensembl gene id (``ENSG...``, ``ENSMUSG...``, with or without version)."""
    return bool(_ENSEMBL.match(str(name)))
