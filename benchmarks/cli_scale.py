"""Benchmark: ``sasp-atlas score --dask`` end to end on the scale benchmark's 500,000 cells (issue 17).

    SASP_ATLAS_MIRROR=../shared/data flock /tmp/bench.lock python benchmarks/cli_scale.py \
        --cache-dir /work/.cache/scale_bench --json benchmarks/results/cli_500k.json

``scale_bench.py`` times the engine (``sasp_atlas.score`` on a dask array); this times the command a user runs: reading and
checking the store, harmonising 500,000 cells, the statistics pass, the scores, the per-patient
tables, the expression-matched null, writing ``scored.zarr`` and (second run) the report on its
``--report-cells`` subsample. The scale store's genes are named ``G00000``...; a user's file has
gene symbols, so the command scores a copy whose ``var`` names 20,000 genes of a core dataset
(Wu et al. 2021; the default signatures' genes among them, at seeded random positions) and whose
``X`` and ``obs`` are symbolic links to the scale store's (nothing is copied). Recorded: wall time,
the peak RSS of the largest process of the run (the command, its nannies and workers: ``wait4``'s
``ru_maxrss``), and the files written. Needs the mirror (``SASP_ATLAS_MIRROR``) for the core dataset and
the HGNC table. Not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale_bench  # noqa: E402

SYMBOLS_FROM = "wu2021_breast_tnbc_cid4465"


def symbol_store(src: Path) -> Path:
    """``src`` with gene symbols: a folder beside it whose ``X`` and ``obs`` link to ``src``'s."""
    import anndata as ad
    import pandas as pd
    import zarr

    import sasp_atlas
    from sasp_atlas.atlas import DEFAULT_SIGNATURES
    from sasp_atlas.genes import resolve_signatures

    dst = src.with_name(src.stem + "_symbols.zarr")
    if (dst / "var").exists():
        return dst
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir()
    for name in (".zattrs", ".zgroup"):
        shutil.copy(src / name, dst / name)
    for name in ("X", "obs"):
        os.symlink(src / name, dst / name)
    wu = sasp_atlas.load_dataset(SYMBOLS_FROM)
    present = set(wu.var_names)
    wanted = dict.fromkeys(
        g for genes in resolve_signatures(DEFAULT_SIGNATURES).values() for g in genes if g in present
    )
    names = (list(wanted) + [g for g in wu.var_names if g not in wanted])[: scale_bench.N_GENES]
    names = list(np.asarray(names)[np.random.default_rng(0).permutation(len(names))])
    ad.io.write_elem(zarr.open_group(str(dst), mode="a"), "var", pd.DataFrame(index=pd.Index(names)))
    return dst


def run_cli(store: Path, out: Path, *, report: bool, workers: int, memory_limit: str, chunk_rows: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        str(Path(sys.executable).with_name("sasp-atlas")),
        "score",
        str(store),
        "--out",
        str(out),
        "--cell-type-key",
        "cell_type",
        "--sample-key",
        "sample",
        "--dask",
        "--workers",
        str(workers),
        "--memory-limit",
        memory_limit,
        "--chunk-rows",
        str(chunk_rows),
        "--no-progress",
    ]
    if not report:
        cmd.append("--no-report")
    log = out.with_suffix(".log")
    t0 = time.perf_counter()
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # this run's rusage: the command and its waited-for descendants
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{log.read_text()[-3000:]}")
    written = dict(line.split("\t", 1) for line in stdout.splitlines() if "\t" in line)
    return {
        "command": " ".join(cmd[1:]),
        "seconds": seconds,
        "report": report,
        "peak_rss_bytes_largest_process": usage.ru_maxrss * 1024,
        "written": sorted(written),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=500_000)
    ap.add_argument("--unique-cells", type=int, default=122_880)
    ap.add_argument("--cache-dir", type=Path, default=Path("/work/.cache/scale_bench"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="2GiB")
    ap.add_argument("--chunk-rows", type=int, default=5_000)
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--runs",
        nargs="+",
        choices=("tables_only", "with_report"),
        default=["tables_only", "with_report"],
        help="which runs of the command (smoke runs: tables_only, the report's papermill run apart)",
    )
    args = ap.parse_args(argv)
    if not os.environ.get("SASP_ATLAS_MIRROR"):
        ap.error("set SASP_ATLAS_MIRROR to the data mirror (the core dataset and the HGNC table are read from it)")
    store = symbol_store(scale_bench.ensure_zarr(args.cells, args.cache_dir, unique_cells=args.unique_cells))
    runs = {}
    for key in args.runs:
        report = key == "with_report"
        runs[key] = run_cli(
            store,
            args.cache_dir / f"cli_out_{key}",
            report=report,
            workers=args.workers,
            memory_limit=args.memory_limit,
            chunk_rows=args.chunk_rows,
        )
        print(f"{key}: {runs[key]['seconds']:.1f} s", file=sys.stderr)
    out = {
        "cells": args.cells,
        "genes": scale_bench.N_GENES,
        "workers": args.workers,
        "memory_limit_per_worker": args.memory_limit,
        "chunk_rows": args.chunk_rows,
        "runs": runs,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
