"""Benchmark: what reading a row chunk costs against what scoring it in memory costs (issue 17).

    flock /tmp/bench.lock python benchmarks/read_floor.py --cache-dir /work/.cache/scale_bench \
        --json benchmarks/results/read_floor_500k.json

The scale benchmark's per-core throughput ratio (dask / in-memory, ``scale_bench.py``) compares a
worker that must *read* its cells from the store with an engine whose cells are already in memory.
This script measures, on one core of the same machine and the same 500,000-cell store, the bound
that reading alone puts on that ratio:

1. ``codec_seconds_per_chunk``: the Blosc decoder alone (``numcodecs``, 1 thread, no zarr) on the
   stored chunk files of ``data`` and ``indices``, as output bytes per second, times the bytes of a
   row chunk (``nnz x 8``): the floor of any reader, with perfect alignment and no copying.
2. ``read_seconds_per_chunk``: :func:`sasp_atlas.data.lazy._read_rows`, what a dask task does
   (zarr, partial decoding at both ends of a row range, checks), for row chunks spread over the
   store, each read twice and timed the second time (the store's files in the page cache, as in
   the scale benchmark's second pass). The process runs with the workers' environment
   (:data:`sasp_atlas.engines.WORKER_ENVIRON`: one decoding thread, the malloc thresholds).
3. ``engine_seconds_per_chunk``: ``sasp_atlas.score`` with the scale benchmark's method and 30
   signatures, 1 numba thread, on the first 50,000 cells in memory, divided by the chunks in them.

Bounds (no scheduling, transfer or contention cost): with ``r`` reads of each chunk per score, the
per-core throughput ratio is at most ``engine / (engine + r x read)``; ``..._codec_floor`` uses the
codec floor instead of the measured read. Both for the compressed store and, where it exists, its
uncompressed copy (``scale_bench.py --store-codec none``). Not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale_bench  # noqa: E402
import score_bench  # noqa: E402


def codec_rate(array_dir: Path, n_files: int = 8) -> dict:
    """Output bytes per second of the array's codec alone, on ``n_files`` of its chunk files."""
    import numcodecs
    from numcodecs import blosc

    meta = json.loads((array_dir / ".zarray").read_text())
    comp = meta.get("compressor")
    files = sorted((p for p in array_dir.iterdir() if p.name[0].isdigit()), key=lambda p: int(p.name))[:n_files]
    if comp is None:  # uncompressed: the floor is a copy of the file's bytes
        t0 = time.perf_counter()
        out = sum(len(np.frombuffer(p.read_bytes(), dtype=np.uint8).copy()) for p in files)
        return {"codec": "none", "bytes_per_second": out / (time.perf_counter() - t0), "files": len(files)}
    blosc.set_nthreads(1)
    codec = numcodecs.get_codec(comp)
    bufs = [p.read_bytes() for p in files]
    codec.decode(bufs[0])  # warm
    t0 = time.perf_counter()
    out = sum(len(codec.decode(b)) for b in bufs)
    return {
        "codec": f"{comp['id']}-{comp.get('cname', '')}",
        "bytes_per_second": out / (time.perf_counter() - t0),
        "files": len(files),
        "compressed_bytes": int(sum(len(b) for b in bufs)),
    }


def read_seconds(path: Path, chunk_rows: int, n_chunks: int, n_vars: int) -> tuple[list[float], list[int]]:
    from sasp_atlas.data.lazy import _read_rows

    n_obs = scale_bench.matrix_bytes(path)[0]
    starts = np.linspace(0, n_obs - chunk_rows, n_chunks).astype(int) // chunk_rows * chunk_rows
    _read_rows(str(path), "X", "zarr", 0, chunk_rows, n_vars)  # warm (imports, open)
    times, nnz = [], []
    for r0 in starts:
        _read_rows(str(path), "X", "zarr", int(r0), int(r0) + chunk_rows, n_vars)  # its files into the page cache
        t0 = time.perf_counter()
        X = _read_rows(str(path), "X", "zarr", int(r0), int(r0) + chunk_rows, n_vars)
        times.append(time.perf_counter() - t0)
        nnz.append(int(X.nnz))
    return times, nnz


def engine_seconds(path: Path, method: str, cells: int) -> float:
    import anndata as ad
    import numba
    import scipy.sparse as sp

    import sasp_atlas
    from sasp_atlas.data.lazy import read_lazy

    lazy = read_lazy(path, chunk_rows=10_000)[:cells]
    adata = ad.AnnData(
        X=sp.csr_matrix(lazy.X.compute(scheduler="synchronous")), obs=lazy.obs.copy(), var=lazy.var.copy()
    )
    numba.set_num_threads(1)
    sigs = score_bench.signatures()
    sasp_atlas.score(adata[:2_000].copy(), sigs, method=method)  # warm-up
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        sasp_atlas.score(adata, sigs, method=method)
        best = min(best, time.perf_counter() - t0)
    return float(best)


def store_entry(path: Path, chunk_rows: int, n_chunks: int, engine_per_chunk: float) -> dict:
    n_vars = score_bench.N_GENES
    times, nnz = read_seconds(path, chunk_rows, n_chunks, n_vars)
    rates = {name: codec_rate(path / "X" / name) for name in ("data", "indices")}
    mean_nnz = float(np.mean(nnz))
    # data float32 + indices int32, each at its own codec rate
    codec = mean_nnz * 4 / rates["data"]["bytes_per_second"] + mean_nnz * 4 / rates["indices"]["bytes_per_second"]
    read = float(np.median(times))
    bound = {
        f"ratio_bound_{r}_read{'s' if r > 1 else ''}": engine_per_chunk / (engine_per_chunk + r * read) for r in (1, 2)
    }
    bound |= {
        f"ratio_bound_{r}_read{'s' if r > 1 else ''}_codec_floor": engine_per_chunk / (engine_per_chunk + r * codec)
        for r in (1, 2)
    }
    return {
        "store": path.name,
        "mean_nnz_per_chunk": mean_nnz,
        "codec": rates,
        "codec_seconds_per_chunk": codec,
        "read_seconds_per_chunk": read,
        "read_seconds_all": times,
        **bound,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=500_000)
    ap.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "scale_bench")
    ap.add_argument("--unique-cells", type=int, default=122_880)
    ap.add_argument("--chunk-rows", type=int, default=5_000)
    ap.add_argument("--chunks", type=int, default=20, help="row chunks read, spread over the store")
    ap.add_argument("--method", default="expected")
    ap.add_argument("--slice-cells", type=int, default=scale_bench.SLICE_CELLS)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from sasp_atlas.engines import WORKER_ENVIRON

    if any(os.environ.get(k) != v for k, v in WORKER_ENVIRON.items()):  # the workers' environment, from the start
        os.execve(
            sys.executable,
            [sys.executable, __file__, *(sys.argv[1:] if argv is None else argv)],
            {**os.environ, **WORKER_ENVIRON},
        )

    path = scale_bench.ensure_zarr(args.cells, args.cache_dir, unique_cells=args.unique_cells)
    engine = engine_seconds(path, args.method, args.slice_cells)
    per_chunk = engine * args.chunk_rows / args.slice_cells
    print(
        f"in-memory {args.method}: {engine:.3f} s for {args.slice_cells:,} cells = {per_chunk * 1e3:.1f} ms per "
        f"{args.chunk_rows:,}-cell chunk",
        file=sys.stderr,
    )
    stores = [store_entry(path, args.chunk_rows, args.chunks, per_chunk)]
    raw = path.with_name(path.stem + "_uncompressed.zarr")
    if (raw / "X" / "indptr").exists():
        stores.append(store_entry(raw, args.chunk_rows, args.chunks, per_chunk))
    for s in stores:
        print(
            f"{s['store']}: read {s['read_seconds_per_chunk'] * 1e3:.1f} ms per chunk (codec floor "
            f"{s['codec_seconds_per_chunk'] * 1e3:.1f} ms); per-core ratio at most "
            f"{s['ratio_bound_2_reads']:.2f} reading twice, {s['ratio_bound_1_read']:.2f} once, "
            f"{s['ratio_bound_1_read_codec_floor']:.2f} once at the codec floor",
            file=sys.stderr,
        )
    out = {
        "cells": args.cells,
        "chunk_rows": args.chunk_rows,
        "method": args.method,
        "signatures": len(score_bench.signatures()),
        "engine_seconds": engine,
        "engine_cells": args.slice_cells,
        "engine_seconds_per_chunk": per_chunk,
        "threads": 1,
        "stores": stores,
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "stores"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
