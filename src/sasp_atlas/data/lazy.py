"""Lazy reading of an anndata ``.zarr`` / ``.h5ad``: obs and var in memory, the matrix as a dask array
of CSR row chunks, and the checks and per-row transforms of :func:`sasp_atlas.data.load_user_data`
done chunk by chunk (for ``sasp-atlas score --dask``).

Every chunk is read by its own task, which opens the file (so tasks run on any worker that sees the
path) and checks what it read: a chunk that cannot be decoded, row pointers that go backwards or
past the stored values, gene indices out of range, NaN or infinite values raise
:class:`CorruptChunkError` naming the file, the array, the chunk file and the fix; nothing becomes
a silent NaN. (A zarr chunk file that is missing reads as zeros; where that hits the row pointers it
is caught, where it hits values it cannot be told from zeros.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import scanpy as sc
import scipy.sparse as sp
import zarr
from anndata import AnnData

from .._lazy import lazy_import
from ..sources import file_sha256
from .validate import InputError

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "CorruptChunkError",
    "is_lazy",
    "normalise_lazy",
    "read_csr_lazy",
    "read_lazy",
    "scan_matrix_lazy",
    "select_columns_lazy",
    "store_sha_size",
    "store_stamp",
]

#: default rows per chunk (~120 MB of CSR at 1,500 stored values per cell)
DEFAULT_CHUNK_ROWS = 10_000


class CorruptChunkError(InputError):
    """A chunk of a lazily read matrix cannot be read or holds impossible values (the message names
    the file, the array, the chunk and the fix)."""


def is_lazy(X) -> bool:
    """True for a dask array (checked by type, without importing dask)."""
    return any(c.__module__.startswith("dask.") and c.__name__ == "Array" for c in type(X).__mro__)


def store_sha_size(path: Path) -> tuple[str, int]:
    """``(sha256, bytes)`` of an ``.h5ad`` file; for a ``.zarr`` folder the sha256 of its sorted
    ``(relative path, size)`` listing (the chunks are checked when read, not hashed) and its total size."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path), path.stat().st_size
    sha, stats = _listing_sha(path, path, with_mtime=False)
    return sha, sum(st.st_size for st in stats)


def _listing_sha(root: Path, folder: Path, *, with_mtime: bool) -> tuple[str, list]:
    """sha256 of the sorted ``(path relative to root, size[, mtime])`` of every file under ``folder``
    (or of ``folder`` itself if it is a file), and their ``stat`` results (one ``stat`` per file)."""
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    stats = [p.stat() for p in files]
    listing = "\n".join(
        f"{p.relative_to(root)}\t{st.st_size}" + (f"\t{st.st_mtime_ns}" if with_mtime else "")
        for p, st in zip(files, stats, strict=True)
    )
    return hashlib.sha256(listing.encode()).hexdigest(), stats


def _chunk_names(arr, lo: int, hi: int, *, find_bad: bool = False) -> str:
    """The chunk files of ``arr`` holding elements ``lo:hi`` (zarr) or the element range (h5py);
    ``find_bad``: read them one at a time and name the first that fails."""
    c = int(arr.chunks[0]) if arr.chunks else max(hi - lo, 1)
    first, last = lo // c, max(lo, hi - 1) // c
    if find_bad:
        for i in range(first, last + 1):
            try:
                arr[i * c : (i + 1) * c]
            except Exception:  # noqa: BLE001  (codecs and stores raise many types; this one is bad)
                first = last = i
                break
    try:
        keys = [arr.metadata.encode_chunk_key((first,)), arr.metadata.encode_chunk_key((last,))]
        where = f"{arr.path}/{keys[0]}" + (f" .. {arr.path}/{keys[1]}" if last != first else "")
        return ("chunk file " if first == last else "chunk files ") + where
    except AttributeError:  # h5py datasets: no file per chunk
        return f"elements {first * c}:{min((last + 1) * c, arr.shape[0])} of {arr.name}"


def _read_rows(path: str, key: str, fmt: str, r0: int, r1: int, n_vars: int) -> sp.csr_matrix:
    """Rows ``r0:r1`` of the CSR matrix ``key`` of an anndata store, checked (:class:`CorruptChunkError`)."""
    fix = (
        "the file is damaged or was not written completely: write it again from its source "
        "(adata.write_zarr / adata.write_h5ad) or copy it again"
    )
    where = f"{path} [{key}], rows {r0}:{r1}"
    try:
        if fmt == "zarr":
            group = zarr.open_group(path, mode="r")[key]
            handle = None
        else:
            handle = h5py.File(path, "r")
            group = handle[key]
    except Exception as exc:
        raise CorruptChunkError(f"cannot open {where} ({type(exc).__name__}: {exc}): {fix}") from exc
    try:
        arrays = {}
        try:
            indptr = np.asarray(group["indptr"][r0 : r1 + 1], dtype=np.int64)
        except Exception as exc:
            raise CorruptChunkError(
                f"cannot read {where}: {_chunk_names(group['indptr'], r0, r1 + 1, find_bad=True)} "
                f"({type(exc).__name__}: {exc}): {fix}"
            ) from exc
        lo, hi = int(indptr[0]), int(indptr[-1])
        if len(indptr) != r1 - r0 + 1 or np.any(np.diff(indptr) < 0) or lo < 0 or hi > group["data"].shape[0]:
            raise CorruptChunkError(
                f"{where}: {_chunk_names(group['indptr'], r0, r1 + 1)} hold impossible row "
                f"pointers (decreasing, or beyond the {group['data'].shape[0]} stored values): {fix}"
            )
        for name in ("data", "indices"):
            try:
                arrays[name] = group[name][lo:hi]
            except Exception as exc:
                raise CorruptChunkError(
                    f"cannot read {where}: {_chunk_names(group[name], lo, hi, find_bad=True)} "
                    f"({type(exc).__name__}: {exc}): {fix}"
                ) from exc
            if len(arrays[name]) != hi - lo:
                raise CorruptChunkError(
                    f"{where}: {_chunk_names(group[name], lo, hi)} hold {len(arrays[name])} values, "
                    f"not {hi - lo} (truncated): {fix}"
                )
        data, indices = arrays["data"], arrays["indices"]
        if len(indices) and (indices.min() < 0 or indices.max() >= n_vars):
            raise CorruptChunkError(
                f"{where}: {_chunk_names(group['indices'], lo, hi)} hold gene indices outside 0..{n_vars - 1}: {fix}"
            )
        if data.dtype.kind == "f" and not np.isfinite(data).all():
            raise CorruptChunkError(
                f"{where}: {_chunk_names(group['data'], lo, hi)} hold NaN or infinite values "
                f"(damaged, or not finite in the source): {fix}, or remove the non-finite values"
            )
    finally:
        if handle is not None:
            handle.close()
    return sp.csr_matrix((data, indices, indptr - lo), shape=(r1 - r0, n_vars))


def _load_block(bounds: np.ndarray, path: str, key: str, fmt: str, n_vars: int, stamp: str = "") -> sp.csr_matrix:
    """One row chunk (``stamp``, :func:`store_stamp`, only makes the graph's name follow the file)."""
    r0, r1 = (int(v) for v in np.asarray(bounds).ravel()[:2])
    return _read_rows(path, key, fmt, r0, r1, n_vars)


def store_stamp(path: Path, key: str = "X") -> str:
    """A sha256 of the size and modification time of the file (``.h5ad``) or of every file under
    ``key`` (``.zarr``): part of the name of the dask array :func:`read_csr_lazy` returns, so the
    same unchanged file gives the same name (gene statistics computed on it can be reused within a
    process) and a rewritten one a new name. Not a content hash (the chunks are checked when read)."""
    path = Path(path)
    return _listing_sha(path.parent, path if path.is_file() else path / key, with_mtime=True)[0]


def _store_format(path: Path) -> str:
    if not path.exists():
        raise InputError(f"input {path} does not exist")
    if path.is_file() and path.open("rb").read(8) == b"\x89HDF\r\n\x1a\n":
        return "h5ad"
    if path.is_dir() and ((path / ".zgroup").is_file() or (path / "zarr.json").is_file()):
        return "zarr"
    raise InputError(
        f"{path} is neither an anndata .zarr store nor an .h5ad file; save your AnnData with "
        "adata.write_zarr(...) or adata.write_h5ad(...)"
    )


def read_csr_lazy(path: str | Path, key: str = "X", *, chunk_rows: int = DEFAULT_CHUNK_ROWS):
    """The CSR matrix ``key`` of an anndata ``.zarr`` or ``.h5ad`` as a dask array of row chunks.

    Each task opens the file and reads its rows' slice of ``indptr``, ``data`` and ``indices`` (so the
    tasks run on any worker that sees ``path``), then checks it (:class:`CorruptChunkError`). The
    array's name includes :func:`store_stamp` (sizes and modification times), so it changes when the
    file is written again.
    """
    path = Path(path).resolve()
    fmt = _store_format(path)
    if fmt == "zarr":
        group = zarr.open_group(str(path), mode="r")[key]
        attrs, dtype = dict(group.attrs), group["data"].dtype
    else:
        with h5py.File(path, "r") as f:
            attrs, dtype = dict(f[key].attrs), f[key]["data"].dtype
    enc = attrs.get("encoding-type")
    if isinstance(enc, bytes):
        enc = enc.decode()
    if enc != "csr_matrix":
        raise InputError(
            f"{path} [{key}] is {enc or 'not an anndata sparse matrix'}, not csr_matrix: a lazy read "
            "needs a CSR matrix (in memory: adata.X = scipy.sparse.csr_matrix(adata.X), then write again)"
        )
    n_obs, n_vars = (int(v) for v in attrs["shape"])
    starts = np.arange(0, n_obs, chunk_rows)
    rows = tuple(int(v) for v in np.diff(np.append(starts, n_obs))) or (0,)
    da = lazy_import("dask.array")
    bounds = da.from_array(
        np.stack([starts, starts + np.asarray(rows)], axis=1) if n_obs else np.zeros((1, 2), int), chunks=(1, 2)
    )
    meta = sp.csr_matrix((0, 0), dtype=dtype)
    return bounds.map_blocks(
        _load_block,
        str(path),
        key,
        fmt,
        n_vars,
        store_stamp(path, key),
        dtype=dtype,
        chunks=(rows, (n_vars,)),
        meta=meta,
    )


def read_lazy(
    path: str | Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, layers: Sequence[str] = (), raw: bool | None = None
) -> AnnData:
    """An anndata ``.zarr``/``.h5ad`` with ``obs``, ``var`` in memory and ``X`` (and the CSR ``layers``
    named, and ``raw.X``) as lazy dask arrays of ``chunk_rows`` rows (:func:`read_csr_lazy`);
    ``raw.var`` is read into memory. ``raw``: ``True`` reads ``raw`` or raises :class:`InputError`
    (no ``raw``, or not CSR); ``None`` reads it if the file has a CSR ``raw.X``; ``False`` never."""
    path = Path(path)
    fmt = _store_format(path)

    def frames(root) -> tuple[Any, Any, Any]:  # obs, var, raw.var (or None) of a zarr group or h5py file
        has_raw = raw is not False and "raw" in root and "X" in root["raw"] and "var" in root["raw"]
        return (
            ad.io.read_elem(root["obs"]),
            ad.io.read_elem(root["var"]),
            ad.io.read_elem(root["raw"]["var"]) if has_raw else None,
        )

    if fmt == "zarr":
        obs, var, raw_var = frames(zarr.open_group(str(path), mode="r"))
    else:
        with h5py.File(path, "r") as f:
            obs, var, raw_var = frames(f)
    if raw and raw_var is None:
        raise InputError(f"{path} has no raw (raw/X and raw/var) to read; score X or a layer instead")
    X = read_csr_lazy(path, "X", chunk_rows=chunk_rows)
    raw_X = None
    if raw_var is not None:
        try:
            raw_X = read_csr_lazy(path, "raw/X", chunk_rows=chunk_rows)
        except InputError:
            if raw:
                raise
    raw_arg = None if raw_X is None else {"X": raw_X, "var": raw_var}
    adata = AnnData(X=X, obs=obs, var=var, raw=raw_arg)
    for name in layers:
        adata.layers[name] = read_csr_lazy(path, f"layers/{name}", chunk_rows=chunk_rows)
    return adata


# --------------------------------------------------------------------------- checks and transforms, chunk by chunk
def _scan_block(block) -> np.ndarray:
    """``[n_stored, n_nan, n_inf, n_negative, min, max, all integer]`` of one chunk's stored values."""
    values = block.data if sp.issparse(block) else np.asarray(block).ravel()
    finite = np.isfinite(values)
    good = values[finite]
    return np.array(
        [
            [
                values.size,
                int(np.isnan(values).sum()),
                int((~finite).sum() - np.isnan(values).sum()),
                int((good < 0).sum()),
                good.min() if good.size else np.inf,
                good.max() if good.size else -np.inf,
                float(np.array_equal(good, np.round(good))),
            ]
        ]
    )


def scan_matrix_lazy(X, where: str, hint: str, *, compute_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`sasp_atlas.data.validate.scan_matrix` as a dask reduction over the row chunks (NaN/inf and
    negative values refused with an :class:`~sasp_atlas.data.validate.InputError` naming the row chunks)."""
    per_chunk = X.map_blocks(
        _scan_block, dtype=np.float64, chunks=((1,) * X.numblocks[0], (7,)), meta=np.empty((0, 0))
    ).compute(**(compute_kwargs or {}))
    rows = np.cumsum((0,) + X.chunks[0])
    n_nan, n_inf, n_neg = (int(per_chunk[:, k].sum()) for k in (1, 2, 3))
    if n_nan or n_inf:
        bad = [f"{rows[i]}:{rows[i + 1]}" for i in np.flatnonzero(per_chunk[:, 1] + per_chunk[:, 2])]
        raise InputError(
            f"{where} holds {n_nan + n_inf} non-finite value(s) ({n_nan} NaN, {n_inf} infinite) in the "
            f"rows {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}. Scores need finite values: fix "
            f"them where the matrix was made, or pass another layer ({hint})"
        )
    vmin, vmax = float(per_chunk[:, 4].min()), float(per_chunk[:, 5].max())
    if n_neg:
        raise InputError(
            f"{where} holds {n_neg} negative value(s) (minimum {vmin:.4g}): it looks scaled (z-scored, "
            "e.g. sc.pp.scale) or batch-corrected. Scores need unscaled (not z-scored) expression: pass "
            f"the log-normalised layer or the raw counts ({hint})"
        )
    return {"integer": bool(per_chunk[:, 6].all()), "max": vmax, "min": vmin, "n_stored": int(per_chunk[:, 0].sum())}


def _select_block(block, keep: np.ndarray) -> sp.csr_matrix:
    block = block if sp.issparse(block) else sp.csr_matrix(np.asarray(block))
    return sp.csr_matrix(block.tocsr()[:, keep], dtype=np.float32)


def select_columns_lazy(X, keep: np.ndarray):
    """``X[:, keep]`` as float32 CSR, chunk by chunk (the dask twin of :func:`load_user_data`'s block loop)."""
    keep = np.asarray(keep)
    return X.map_blocks(
        _select_block,
        keep,
        dtype=np.float32,
        chunks=(X.chunks[0], (len(keep),)),
        meta=sp.csr_matrix((0, 0), dtype=np.float32),
    )


def _normalise_block(block) -> sp.csr_matrix:
    chunk = AnnData(X=sp.csr_matrix(block, dtype=np.float32))
    sc.pp.normalize_total(chunk, target_sum=1e4)
    sc.pp.log1p(chunk)
    return sp.csr_matrix(chunk.X, dtype=np.float32)


def normalise_lazy(X):
    """Raw counts -> ``normalize_total(target_sum=1e4)`` + natural ``log1p`` chunk by chunk (both act on
    each row alone, so this is :func:`sasp_atlas.data.normalise` of the whole matrix)."""
    return X.map_blocks(_normalise_block, dtype=np.float32, meta=sp.csr_matrix((0, 0), dtype=np.float32))
