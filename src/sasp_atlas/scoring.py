"""The shared scoring module: every signature in one sparse pass over ``X``.

``method="scanpy"`` — the control-gene score of Tirosh et al. 2016 (Science 352:189,
doi:10.1126/science.aad0501) as implemented by ``scanpy.tl.score_genes`` (Satija 2015 / Seurat
``AddModuleScore``): score = mean expression of the signature genes minus the mean of control
genes drawn from the same expression bins (genes ranked by their mean over all cells, ``n_bins``
bins; ``ctrl_size`` genes sampled per bin the signature touches; signature genes removed from
the controls). Units: those of ``X`` (log-normalised expression); the score is a difference of
means, 0 = no different from expression-matched random genes.

Exactness: control genes are sampled exactly as scanpy 1.11 does (gene means from
``X.sum(axis=0, dtype="float64")``, pandas ``rank(method="min") // n_items``, a numpy
``RandomState(random_state)`` reset per signature and ``choice(..., replace=False)`` per bin,
which is what ``Series.sample`` draws from the seeded global RNG). The result equals calling
``scanpy.tl.score_genes(adata, genes, random_state=random_state)`` once per signature to ~1e-7.

Speed/memory: gene means, ranks and bins are computed once for all signatures; the scores are one
numba pass over the CSR rows with a gene -> (signature, weight) lookup and float64 accumulation.
``X`` is never densified or copied; extra memory is the cells x signatures output.
Randomness: only the control-gene draw, seeded by ``random_state`` (recorded in ``.uns``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .signatures import get_signature
from .stats import is_low_coverage

__all__ = ["score", "resolve_signatures", "scanpy_control_genes", "weighted_row_sums"]

log = logging.getLogger(__name__)

METHODS = ("scanpy",)


def resolve_signatures(signatures: Sequence[str] | Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Catalogue ids -> gene lists; a mapping ``{name: genes}`` is taken as given."""
    if isinstance(signatures, str):
        signatures = [signatures]
    if isinstance(signatures, Mapping):
        return {str(k): list(v) for k, v in signatures.items()}
    return {s: get_signature(s) for s in signatures}


def _gene_means(X) -> np.ndarray:
    # the same call scanpy makes (scipy accumulates float32 data in float32, then casts): the
    # ranks, and so the bins, must tie-break exactly as scanpy's do
    if sp.issparse(X):
        return np.asarray(X.sum(axis=0, dtype="float64")).ravel() / X.shape[0]
    return np.nanmean(X, axis=0, dtype="float64")


def scanpy_control_genes(gene_means: pd.Series, gene_list: pd.Index, *, ctrl_size: int = 50,
                         n_bins: int = 25, random_state: int | None = 0) -> pd.Index:
    """Control genes exactly as ``scanpy.tl.score_genes`` (1.11, ``ctrl_as_ref=True``) picks them."""
    rng = np.random.RandomState(random_state) if random_state is not None else np.random.mtrand._rand
    obs_avg = gene_means[np.isfinite(gene_means)]
    n_items = int(np.round(len(obs_avg) / (n_bins - 1)))
    obs_cut = obs_avg.rank(method="min") // n_items
    control = pd.Index([], dtype="string")
    cut_values = obs_cut.to_numpy()
    for cut in np.unique(obs_cut.loc[gene_list]):
        r_genes = obs_cut.index[cut_values == cut]
        if ctrl_size < len(r_genes):
            r_genes = r_genes[rng.choice(len(r_genes), size=ctrl_size, replace=False)]
        control = control.union(r_genes.difference(gene_list))
    return control


@numba.njit(parallel=True, cache=True)
def _csr_weighted_sums(indptr, indices, data, lk_ptr, lk_sig, lk_w, n_sig):
    n = indptr.shape[0] - 1
    out = np.zeros((n, n_sig), dtype=np.float64)
    for i in numba.prange(n):
        for p in range(indptr[i], indptr[i + 1]):
            g = indices[p]
            v = np.float64(data[p])
            for q in range(lk_ptr[g], lk_ptr[g + 1]):
                out[i, lk_sig[q]] += v * lk_w[q]
    return out


def weighted_row_sums(X, weights: sp.csr_matrix) -> np.ndarray:
    """``X @ weights`` (cells x signatures) in one pass over the rows of a CSR ``X``, float64 sums.

    ``weights`` is genes x signatures (sparse). Dense ``X`` is multiplied block-wise in float64.
    """
    W = sp.csr_matrix(weights, dtype=np.float64)
    if sp.issparse(X):
        if not sp.isspmatrix_csr(X) and X.format != "csr":
            log.warning("X is %s, not CSR: converting a copy to CSR for scoring", X.format)
            X = X.tocsr()
        return _csr_weighted_sums(X.indptr, X.indices, X.data, W.indptr, W.indices, W.data, W.shape[1])
    X = np.asarray(X)
    out = np.empty((X.shape[0], W.shape[1]))
    for start in range(0, X.shape[0], 4096):
        out[start:start + 4096] = W.T.dot(X[start:start + 4096].T.astype(np.float64)).T
    return out


def score(adata: AnnData, signatures: Sequence[str] | Mapping[str, Sequence[str]], *, method: str = "scanpy",
          random_state: int = 0, ctrl_size: int = 50, n_bins: int = 25, layer: str | None = None) -> None:
    """Score every signature in one pass and store the results on ``adata``.

    Parameters
    ----------
    adata
        Cells x genes, log-normalised expression in ``.X`` (or ``layer``); not scaled.
    signatures
        Catalogue ids (see :func:`sasp_atlas.list_signatures`) or a mapping ``{name: genes}``.
    method
        ``"scanpy"``: the Tirosh 2016 control-gene score (module docstring).
    random_state
        Seed of the control-gene draw, reset for each signature as scanpy does.

    Writes ``adata.obsm["sasp_scores"]`` (DataFrame, cells x signature ids) and
    ``adata.uns["sasp_scores"]`` = ``{"method", "params", "signatures": {id: {"genes_used",
    "genes_missing", "n_genes", "n_control_genes"}}}``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown scoring method {method!r}; available: {', '.join(METHODS)}")
    sigs = resolve_signatures(signatures)
    X = adata.layers[layer] if layer else adata.X
    var_names = pd.Index(adata.var_names.astype(str))
    means = pd.Series(_gene_means(X), index=var_names)
    weights_rows, weights_cols, weights_vals = [], [], []
    info: dict[str, Any] = {}
    for k, (name, genes) in enumerate(sigs.items()):
        gene_list = pd.Index(list(dict.fromkeys(genes)))
        used = gene_list.intersection(var_names)
        missing = gene_list.difference(var_names, sort=False)
        if len(used) == 0:
            raise ValueError(f"signature {name!r}: none of its {len(gene_list)} genes is in the data "
                             "(are var_names gene symbols?)")
        ctrl = scanpy_control_genes(means, used, ctrl_size=ctrl_size, n_bins=n_bins, random_state=random_state)
        if len(ctrl) == 0:
            raise RuntimeError(f"signature {name!r}: no control genes found in any expression bin")
        for idx, w in ((var_names.get_indexer(used), 1.0 / len(used)), (var_names.get_indexer(ctrl), -1.0 / len(ctrl))):
            weights_rows.append(idx)
            weights_cols.append(np.full(len(idx), k))
            weights_vals.append(np.full(len(idx), w))
        info[name] = {"genes_used": [str(g) for g in used], "genes_missing": [str(g) for g in missing],
                      "n_genes": int(len(gene_list)), "n_control_genes": int(len(ctrl)),
                      "coverage": len(used) / len(gene_list), "low_coverage": is_low_coverage(len(used), len(gene_list))}
    W = sp.csr_matrix((np.concatenate(weights_vals), (np.concatenate(weights_rows), np.concatenate(weights_cols))),
                      shape=(adata.n_vars, len(sigs)))
    scores = weighted_row_sums(X, W)
    adata.obsm["sasp_scores"] = pd.DataFrame(scores, index=adata.obs_names, columns=list(sigs))
    adata.uns["sasp_scores"] = {
        "method": method,
        "params": {"random_state": random_state, "ctrl_size": ctrl_size, "n_bins": n_bins,
                   "layer": layer or "X", "reference": "scanpy.tl.score_genes (Tirosh 2016)"},
        "signatures": info,
    }
