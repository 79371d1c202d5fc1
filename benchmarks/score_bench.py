"""Benchmark: scoring 30 signatures on a synthetic sparse log-normalised matrix, each method in a
fresh process.

    python benchmarks/score_bench.py --cells 50000 --json bench_50k.json [--skip scanpy_loop ...]

Data (as in the project's scoring baseline note): negative-binomial counts for 20,000 genes,
generated cell by cell with numba from a per-cell seed (gene means log-normal, sigma 1.8, scaled to
~2,000 non-zeros per cell; dispersion phi ~ logN(log 0.3, 0.5); size factors ~ logN(0, 0.45)), then
``log1p(count / total * 1e4)`` (normalize_total to 1e4 + log1p), CSR float32 with int32 indices.
30 signatures of 10-150 genes drawn uniformly from all genes (fixed seed). The matrix is cached as
``.npy`` files under ``--cache-dir`` and memory-loaded (not timed) by each worker. ``--update``
merges into an existing ``--json`` (e.g. rerun the fast methods, keep the slow references).

Each method runs in its own subprocess: load X, one warm-up call on the first 2,000 cells (numba
compile or cache load, imports; reported as ``warmup_seconds``), then ``repeats`` timed calls on
all cells (median and minimum reported; the machine is shared and noisy). ``peak_extra_mib``: the
process's peak RSS over the timed calls (VmHWM, reset through ``/proc/self/clear_refs`` before
them) minus its RSS just before the first one, plus,
for methods with worker processes (pyucell's loky pool), the largest sampled total RSS of the
children (shared pages counted once per process, so an over-estimate).

Methods: ``floor`` (numba, read data+indices once, 2 threads), ``sasp_atlas_scanpy``,
``sasp_atlas_expected`` (the atlas default), ``sasp_atlas_ucell``, ``sasp_atlas_aucell``,
``sasp_atlas_seurat``, ``sasp_atlas_ssgsea`` (``sasp_atlas.score(..., method=...)`` with defaults,
all of it: gene statistics, control genes, kernel, output), ``scanpy_loop`` (30 x
``sc.tl.score_genes``), ``pyucell`` (``compute_ucell_scores``, defaults), ``decoupler_aucell``
(``dc.mt.aucell``, defaults, tmin=5), and two R references, run where ``Rscript`` is on PATH
(otherwise, or without the R package, recorded as ``{"skipped": reason}``; ``--skip`` them as any row):

- ``seurat_r``: Seurat ``AddModuleScore`` (defaults; one call with the 30 signatures) on a Seurat
  object whose ``data`` slot is the benchmark matrix;
- ``gsva_ssgsea_r``: GSVA ``gsva(expr, gsets, method="ssgsea")`` (defaults) on the dense genes x cells
  matrix (``as.matrix`` of it, not timed: GSVA's documented input).

hUSI (issue 26): ``sasp_atlas_husi`` (:func:`sasp_atlas.engines.husi_scores`: the hUSI model's genes against
its weights, one column) and ``husi_authors``, the authors' ``cal_hUSI`` loop (``sc/hUSI.py``: dense
matrix of the model genes, pandas ``Series.corr(method="spearman")`` per cell, min-max), re-implemented
here as written. For both rows the first 13,346 benchmark genes are named after the model's genes (in
the model file's order; the other 6,654 keep their ``G`` names), so every cell has ~1,300 model genes
expressed. The authors' loop takes ~6 ms per cell: it is timed on the first ``--husi-authors-cells``
cells (default 1,000; warm-up on 20 cells) and its ratio to ``sasp_atlas_husi`` is per cell
(``husi_authors/sasp_atlas_husi (per cell)``; target >= 100 at 10,000 cells). Targets also:
``sasp_atlas_husi/floor`` <= 20 (at 50,000 cells) and extra memory <= 0.3 x the matrix.

Both R references run in a fresh ``Rscript`` (``benchmarks/_r/score_bench.R``, R 4.2.2, Seurat 4.3.0, GSVA 1.46
here) that reads the same cached ``.npy`` arrays the Python workers load (the cells x genes CSR
arrays are the genes x cells ``dgCMatrix``: no second copy of the matrix on disk); only the scoring
call is timed (``proc.time``), after a warm-up on 100 cells (R compiles nothing; the warm-up loads
lazy package code). R's peak extra memory is measured as in the Python workers (``VmHWM`` reset
through ``/proc/self/clear_refs``, minus ``VmRSS`` before; for GSVA it excludes the dense input, built
before). R is single-threaded here; the sasp_atlas rows use the 2 numba threads.

``--r-cells [NAME=]N`` times the R references (all, or NAME) on the first N cells only and then
times their sasp_atlas row again on the same N cells (recorded as ``"<row>@N"``, with ``"cells"``
in every record); each ratio's cell count is in ``"ratio_cells"``. This is needed for GSVA: its
ssGSEA densifies the matrix (8 GB at 50,000 cells x 20,000 genes, several copies during ranking) and
takes ~0.1 s per cell (about 1.5 h at 50,000 cells), so it is timed on 1,000 cells. The engine's
time per cell is not constant (fixed costs weigh more on few cells), so ratios on a subset are
those of that subset, not of the full matrix.

JSON: ``cells, genes, nnz, matrix_mib, threads``, ``methods`` (per row: ``seconds`` = median,
``min_seconds``, ``runs``, ``warmup_seconds``, ``peak_extra_mib``, ``repeats``, ``cells``; R rows add
``version``), ``ratios`` (medians; targets: scanpy_loop/sasp_atlas_scanpy >= 100,
sasp_atlas_scanpy/floor <= 15, sasp_atlas_expected/floor <= 5, pyucell/sasp_atlas_ucell >= 10,
seurat_r/sasp_atlas_seurat >= 50, gsva_ssgsea_r/sasp_atlas_ssgsea >= 10), ``ratio_cells`` and
``extra_over_matrix`` (peak extra MiB / MiB of the CSR arrays of the cells that row scored; target
<= 0.3 for the sasp_atlas rows), ``load_average_1min`` (the machine's 1-minute load before and
after the rows of this run; with ``--update``, other rows may come from an earlier run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numba
import numpy as np

N_GENES = 20_000
TARGET_NNZ = 2_000
N_SIGNATURES = 30
WARMUP_CELLS = 2_000
R_WARMUP_CELLS = 100  # R compiles nothing: its warm-up only loads the packages' lazy code
METHODS = (
    "floor",
    "sasp_atlas_scanpy",
    "sasp_atlas_expected",
    "sasp_atlas_ucell",
    "sasp_atlas_aucell",
    "sasp_atlas_seurat",
    "sasp_atlas_ssgsea",
    "scanpy_loop",
    "pyucell",
    "decoupler_aucell",
    "seurat_r",
    "gsva_ssgsea_r",
    "sasp_atlas_husi",
    "husi_authors",
)
SLOW = {"scanpy_loop", "pyucell", "decoupler_aucell", "seurat_r", "gsva_ssgsea_r", "husi_authors"}
#: rows scored against the hUSI model (benchmark genes renamed after the model's genes) and the warm-up of
#: the authors' loop (~6 ms a cell: its warm-up only loads pandas' and scipy's code)
HUSI_ROWS = {"sasp_atlas_husi", "husi_authors"}
HUSI_AUTHORS_WARMUP_CELLS = 20
CHILD_PROCESSES = {"pyucell"}
#: R reference -> (method argument of benchmarks/_r/score_bench.R, the sasp_atlas row it is compared with)
R_METHODS = {"seurat_r": ("seurat", "sasp_atlas_seurat"), "gsva_ssgsea_r": ("ssgsea", "sasp_atlas_ssgsea")}
R_SCRIPT = Path(__file__).resolve().parent / "_r" / "score_bench.R"


# --------------------------------------------------------------------------- data
@numba.njit(parallel=True, cache=True)
def _nb_counts_block(first_cell, n_cells, seed, mu, phi, size_factors, out):
    """Dense NB counts for cells ``first_cell ..`` (one row each), every cell seeded by its index."""
    n_genes = mu.shape[0]
    for r in numba.prange(n_cells):
        cell = first_cell + r
        np.random.seed(seed * 1_000_003 + cell)
        s = size_factors[cell]
        for g in range(n_genes):
            lam = np.random.gamma(1.0 / phi[g], phi[g] * mu[g] * s)
            out[r, g] = np.random.poisson(lam) if lam > 0 else 0


def _expected_nnz(scale, mu0, phi, s_sample) -> float:
    lam = scale * mu0[None, :] * s_sample[:, None]
    return float(np.mean(np.sum(1.0 - (1.0 + lam * phi[None, :]) ** (-1.0 / phi[None, :]), axis=1)))


def generate(n_cells: int, seed: int = 0):
    """``(data, indices, indptr, gene_names)`` of the normalised CSR matrix."""
    rng = np.random.default_rng(seed)
    mu0 = np.exp(rng.normal(0.0, 1.8, N_GENES))
    phi = np.exp(rng.normal(np.log(0.3), 0.5, N_GENES))
    size_factors = np.exp(rng.normal(0.0, 0.45, n_cells))
    s_sample = np.exp(rng.normal(0.0, 0.45, 256))
    lo, hi = -20.0, 10.0
    for _ in range(60):  # bisection on log(scale) for ~TARGET_NNZ non-zeros per cell
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _expected_nnz(np.exp(mid), mu0, phi, s_sample) < TARGET_NNZ else (lo, mid)
    mu = np.exp(0.5 * (lo + hi)) * mu0
    block = 2048
    dense = np.empty((block, N_GENES), dtype=np.int32)
    data_parts, index_parts, lengths = [], [], []
    for first in range(0, n_cells, block):
        m = min(block, n_cells - first)
        _nb_counts_block(first, m, seed, mu, phi, size_factors, dense)
        rows, cols = np.nonzero(dense[:m])
        counts = dense[:m][rows, cols].astype(np.float64)
        totals = dense[:m].sum(axis=1, dtype=np.float64)
        data_parts.append(np.log1p(counts * (1e4 / totals[rows])).astype(np.float32))
        index_parts.append(cols.astype(np.int32))
        lengths.append(np.bincount(rows, minlength=m))
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype(np.int64)
    names = np.array([f"G{g:05d}" for g in range(N_GENES)])
    return np.concatenate(data_parts), np.concatenate(index_parts), indptr, names


def signatures(seed: int = 1) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(10, 151, N_SIGNATURES)
    return {f"sig{k:02d}": [f"G{g:05d}" for g in rng.choice(N_GENES, n, replace=False)] for k, n in enumerate(sizes)}


def ensure_data(n_cells: int, cache_dir: Path, seed: int = 0) -> Path:
    folder = cache_dir / f"synth_{n_cells}_seed{seed}"
    if (folder / "indptr.npy").exists():
        return folder
    t0 = time.perf_counter()
    data, indices, indptr, names = generate(n_cells, seed)
    tmp = folder.with_suffix(".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for name, arr in (("data", data), ("indices", indices), ("names", names), ("indptr", indptr)):
        np.save(tmp / f"{name}.npy", arr)
    tmp.rename(folder)
    print(
        f"generated {n_cells} cells, nnz {len(data):,} ({len(data) / n_cells:.0f}/cell), "
        f"{(data.nbytes + indices.nbytes + indptr.nbytes) / 2**20:.0f} MiB in {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    return folder


# --------------------------------------------------------------------------- worker
def _rss_mib(pid: int | str = "self", key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class _ChildSampler(threading.Thread):
    """Largest total RSS of this process's children (pyucell's loky workers), sampled every 50 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = 0.0
        self._halt = threading.Event()

    def run(self):
        import psutil

        me = psutil.Process()
        while not self._halt.is_set():
            total = 0.0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss / 2**20
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def stop(self):
        self._halt.set()
        self.join()


@numba.njit(parallel=True, fastmath=True, cache=True)
def _floor_kernel(data, indices, n_blocks):
    n = data.shape[0]
    sums = np.zeros(n_blocks, dtype=np.float32)
    xors = np.zeros(n_blocks, dtype=np.int32)
    for b in numba.prange(n_blocks):
        acc = np.float32(0.0)
        x = np.int32(0)
        for p in range(n * b // n_blocks, n * (b + 1) // n_blocks):
            acc += data[p]
            x ^= indices[p]
        sums[b] = acc
        xors[b] = x
    return sums.sum(), xors


def husi_var_names(names: np.ndarray) -> np.ndarray:
    """The benchmark genes with the first 13,346 named after the hUSI model's genes (model file order)."""
    from sasp_atlas.engines import load_husi_model

    model = np.asarray(load_husi_model().index, dtype=object)
    out = names.astype(object).copy()
    k = min(len(model), len(out))
    out[:k] = model[:k]
    return out


def husi_authors():
    """``cal_hUSI`` of the authors' ``sc/hUSI.py`` (WJPina/HUSI@b46437b) as written, reading the verified model
    file; its ``minmax`` is applied to the array (as written it subtracts a float from a list)."""
    import pandas as pd

    from sasp_atlas.sources import fetch_resource

    model_csv = fetch_resource("husi2025_senescence_index")["SenOCLR_features.csv"]

    def minmax(x):
        return (x - min(x)) / (max(x) - min(x))

    def cal_hUSI(adata):
        w = pd.read_csv(model_csv, index_col=0)
        genes = set(w.index) & set(adata.var_names)
        try:
            exp = adata[:, list(genes)].X.todense()
        except AttributeError:
            exp = adata[:, list(genes)].X
        exp = pd.DataFrame(exp, index=adata.obs_names, columns=list(genes))
        score = []
        for row in range(len(exp)):
            score.append(w.Weight[list(genes)].corr(exp.iloc[row], method="spearman"))
        score = minmax(np.asarray(score))
        return pd.Series(score, index=adata.obs_names)

    return cal_hUSI


def _method(name: str, sigs: dict[str, list[str]]):
    """A callable ``f(adata)`` for method ``name``."""
    if name == "floor":
        return lambda a: _floor_kernel(a.X.data, a.X.indices, numba.get_num_threads())
    if name == "sasp_atlas_husi":
        from sasp_atlas.engines import husi_scores

        return husi_scores
    if name == "husi_authors":
        return husi_authors()
    if name.startswith("sasp_atlas_"):
        import sasp_atlas

        method = name.removeprefix("sasp_atlas_")
        return lambda a: sasp_atlas.score(a, sigs, method=method)
    if name == "scanpy_loop":
        import scanpy as sc

        def run(a):
            for k, genes in sigs.items():
                sc.tl.score_genes(a, genes, ctrl_size=50, n_bins=25, use_raw=False, score_name=k)

        return run
    if name == "pyucell":
        import pyucell

        return lambda a: pyucell.compute_ucell_scores(a, sigs)
    if name == "decoupler_aucell":
        import decoupler as dc
        import pandas as pd

        net = pd.DataFrame([(k, g) for k, genes in sigs.items() for g in genes], columns=["source", "target"])
        return lambda a: dc.mt.aucell(a, net, tmin=5)
    raise ValueError(f"unknown method {name!r}")


def worker(name: str, folder: Path, repeats: int, n_cells: int | None = None) -> dict:
    """Time method ``name`` on the cached matrix (its first ``n_cells`` cells if given, no copy)."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    names = np.load(folder / "names.npy")
    indptr = np.load(folder / "indptr.npy")
    n_cells = len(indptr) - 1 if n_cells is None else min(n_cells, len(indptr) - 1)
    indptr = indptr[: n_cells + 1]
    nnz = int(indptr[-1])
    X = sp.csr_matrix(
        (
            np.load(folder / "data.npy", mmap_mode="r")[:nnz].copy(),
            np.load(folder / "indices.npy", mmap_mode="r")[:nnz].copy(),
            indptr,
        ),
        shape=(n_cells, len(names)),
    )
    X.has_sorted_indices = True
    adata = ad.AnnData(
        X=X,
        obs=pd.DataFrame(index=[f"c{i}" for i in range(X.shape[0])]),
        var=pd.DataFrame(index=husi_var_names(names) if name in HUSI_ROWS else names),
    )
    run = _method(name, signatures())
    small = adata[: min(HUSI_AUTHORS_WARMUP_CELLS if name == "husi_authors" else WARMUP_CELLS, adata.n_obs)].copy()
    t0 = time.perf_counter()
    run(small)
    warmup = time.perf_counter() - t0
    del small
    times = []
    # peak extra memory: the highest RSS over all timed calls (VmHWM, reset here) above the RSS
    # before the first one; later calls may reuse memory freed by earlier ones, never less
    Path("/proc/self/clear_refs").write_text("5")
    before = _rss_mib()
    # the sampler thread takes CPU from a 2-core run: only where there are worker processes
    sampler = _ChildSampler() if name in CHILD_PROCESSES else None
    if sampler:
        sampler.start()
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(adata)
        times.append(time.perf_counter() - t0)
    if sampler:
        sampler.stop()
    extra = _rss_mib(key="VmHWM") - before + (sampler.peak if sampler else 0.0)
    return {
        "seconds": statistics.median(times),
        "min_seconds": min(times),
        "runs": times,
        "warmup_seconds": warmup,
        "peak_extra_mib": extra,
        "repeats": repeats,
        "cells": n_cells,
    }


def write_signatures(folder: Path) -> Path:
    """The benchmark signatures as ``name<TAB>gene<TAB>...`` lines and the gene names, for the R scripts."""
    path = folder / "signatures.tsv"
    if not path.exists():
        path.write_text("".join("\t".join([k, *genes]) + "\n" for k, genes in signatures().items()))
    genes = folder / "genes.txt"
    if not genes.exists():
        genes.write_text("".join(f"{g}\n" for g in np.load(folder / "names.npy")))
    return path


def r_worker(name: str, folder: Path, repeats: int, n_cells: int) -> dict:
    """Time R reference ``name`` in a fresh ``Rscript`` (benchmarks/_r/score_bench.R); raises
    :class:`RSkipped` when R or the R package is not installed."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        raise RSkipped("Rscript is not on PATH (install R, e.g. Debian r-base-core r-cran-seurat r-bioc-gsva)")
    cmd = [
        rscript,
        "--vanilla",
        str(R_SCRIPT),
        R_METHODS[name][0],
        str(folder),
        str(n_cells),
        str(R_WARMUP_CELLS),
        str(repeats),
        str(write_signatures(folder)),
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode == 3:
        raise RSkipped(proc.stderr.strip().splitlines()[-1])
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class RSkipped(RuntimeError):
    """An R reference cannot run here (no R, or a package missing)."""


# --------------------------------------------------------------------------- driver
def _ratio(methods: dict, a: str, b: str) -> float | None:
    if a in methods and b in methods and methods[b]["seconds"] > 0:
        return methods[a]["seconds"] / methods[b]["seconds"]
    return None


def _matrix_mib(folder: Path, n_cells: int) -> float:
    """MiB of the CSR arrays (data float32, indices int32, indptr int64) of the first ``n_cells`` cells."""
    nnz = int(np.load(folder / "indptr.npy", mmap_mode="r")[n_cells])
    return (8 * nnz + 8 * (n_cells + 1)) / 2**20


def _r_cells(values: list[str], n_cells: int) -> dict[str, int]:
    """``--r-cells`` (``N`` for every R reference, or ``name=N``) -> cells per R reference."""
    out = dict.fromkeys(R_METHODS, n_cells)
    for v in values:
        name, _, n = v.rpartition("=")
        if name and name not in R_METHODS:
            raise SystemExit(f"--r-cells {v}: {name!r} is not an R reference ({', '.join(R_METHODS)})")
        for k in [name] if name else R_METHODS:
            out[k] = min(int(n), n_cells)
    return out


def _run_worker(name: str, folder: Path, repeats: int, n_cells: int | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--data", str(folder), "--repeats", str(repeats)]
    if n_cells is not None:
        cmd += ["--subset", str(n_cells)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=50_000)
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--skip", nargs="*", default=[], choices=METHODS, help="methods not to run (slow references)")
    ap.add_argument("--only", nargs="*", choices=METHODS, help="run only these methods")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of the fast methods (median reported)")
    ap.add_argument(
        "--ref-repeats",
        type=int,
        default=1,
        help="timed runs of the references (scanpy_loop, pyucell, decoupler_aucell, seurat_r, gsva_ssgsea_r)",
    )
    ap.add_argument(
        "--r-cells",
        nargs="*",
        default=[],
        metavar="[NAME=]N",
        help="time the R references (all, or NAME) on the first N cells only, and their sasp_atlas "
        "rows again on the same cells (recorded as '<row>@N') for the ratio",
    )
    ap.add_argument(
        "--husi-authors-cells",
        type=int,
        default=1_000,
        help="time the authors' hUSI loop (husi_authors, ~6 ms a cell) on the first N cells only; its "
        "ratio to sasp_atlas_husi is per cell",
    )
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "sasp_atlas_bench")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--update",
        action="store_true",
        help="keep the other methods' results already in --json (e.g. rerun only the fast ones)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--subset", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.repeats, args.subset)))
        return
    folder = ensure_data(args.cells, args.cache_dir, args.seed)
    r_cells = _r_cells(args.r_cells, args.cells)
    nbytes = sum((folder / f"{k}.npy").stat().st_size - 128 for k in ("data", "indices", "indptr"))
    result = {
        "cells": args.cells,
        "genes": N_GENES,
        "nnz": int((folder / "data.npy").stat().st_size - 128) // 4,
        "matrix_mib": nbytes / 2**20,
        "threads": numba.get_num_threads(),
        "methods": {},
    }
    load_before = os.getloadavg()[0]  # the machine is shared: a load above the core count slows every row
    if args.update and args.json and args.json.exists():
        previous = json.loads(args.json.read_text())
        if previous.get("cells") == args.cells:
            result["methods"] = previous["methods"]

    def report(name, rec, t0):
        print(
            f"{name:>24}: {rec['seconds']:9.3f} s (runs {', '.join(f'{t:.3f}' for t in rec['runs'])}; "
            f"warm-up {rec['warmup_seconds']:.2f} s)  peak extra {rec['peak_extra_mib']:8.0f} MiB  "
            f"[{rec.get('cells', args.cells):,} cells; {time.perf_counter() - t0:.0f} s wall]",
            file=sys.stderr,
            flush=True,
        )

    for name in args.only or METHODS:
        if name in args.skip:
            continue
        repeats = args.ref_repeats if name in SLOW else args.repeats
        t0 = time.perf_counter()
        try:
            if name in R_METHODS:
                rec = r_worker(name, folder, repeats, r_cells[name])
            elif name == "husi_authors" and args.husi_authors_cells < args.cells:
                rec = _run_worker(name, folder, repeats, args.husi_authors_cells)
            else:
                rec = _run_worker(name, folder, repeats)
        except RSkipped as e:
            print(f"{name}: skipped: {e}", file=sys.stderr)
            result["methods"][name] = {"skipped": str(e)}
            continue
        except RuntimeError as e:
            print(f"{name}: failed\n{e}", file=sys.stderr)
            result["methods"][name] = {"error": str(e)[-1000:]}
            continue
        result["methods"][name] = rec
        report(name, rec, t0)
        if name in R_METHODS and r_cells[name] < args.cells:  # the engine on the same cells, for the ratio
            engine = R_METHODS[name][1]
            t0 = time.perf_counter()
            try:
                rec = _run_worker(engine, folder, args.repeats, r_cells[name])
            except RuntimeError as e:
                print(f"{engine}@{r_cells[name]}: failed\n{e}", file=sys.stderr)
                continue
            result["methods"][f"{engine}@{r_cells[name]}"] = rec
            report(f"{engine}@{r_cells[name]}", rec, t0)
    result["load_average_1min"] = [load_before, os.getloadavg()[0]]  # before and after this run's rows
    m = {k: v for k, v in result["methods"].items() if "seconds" in v}
    result["ratios"] = {
        "scanpy_loop/sasp_atlas_scanpy": _ratio(m, "scanpy_loop", "sasp_atlas_scanpy"),
        "sasp_atlas_scanpy/floor": _ratio(m, "sasp_atlas_scanpy", "floor"),
        "sasp_atlas_expected/floor": _ratio(m, "sasp_atlas_expected", "floor"),
        "pyucell/sasp_atlas_ucell": _ratio(m, "pyucell", "sasp_atlas_ucell"),
        "decoupler_aucell/sasp_atlas_aucell": _ratio(m, "decoupler_aucell", "sasp_atlas_aucell"),
    }
    # the R references against the engine row timed on the same cells (recorded next to the ratio)
    result["ratio_cells"] = {k: args.cells for k in result["ratios"]}
    for ref, (_, engine) in R_METHODS.items():
        key = f"{ref}/{engine}"
        cells = m.get(ref, {}).get("cells", args.cells)
        row = engine if cells == args.cells else f"{engine}@{cells}"
        result["ratios"][key] = _ratio(m, ref, row)
        result["ratio_cells"][key] = cells
    # hUSI: the engine on all cells, the authors' loop on its first cells, compared per cell
    result["ratios"]["sasp_atlas_husi/floor"] = _ratio(m, "sasp_atlas_husi", "floor")
    result["ratio_cells"]["sasp_atlas_husi/floor"] = args.cells
    key = "husi_authors/sasp_atlas_husi (per cell)"
    if "husi_authors" in m and "sasp_atlas_husi" in m:
        per_cell = {k: m[k]["seconds"] / m[k].get("cells", args.cells) for k in ("husi_authors", "sasp_atlas_husi")}
        result["ratios"][key] = per_cell["husi_authors"] / per_cell["sasp_atlas_husi"]
    else:
        result["ratios"][key] = None
    result["ratio_cells"][key] = m.get("husi_authors", {}).get("cells", args.cells)
    result["extra_over_matrix"] = {
        k: v["peak_extra_mib"]
        / (_matrix_mib(folder, v["cells"]) if v.get("cells", args.cells) != args.cells else result["matrix_mib"])
        for k, v in m.items()
    }
    print(
        f"\n{result['cells']:,} cells x {N_GENES:,} genes, nnz {result['nnz']:,}, matrix {result['matrix_mib']:.0f} MiB"
    )
    print(f"{'method':>24} {'cells':>7} {'median s':>10} {'min s':>9} {'peak extra MiB':>15} {'x matrix':>9}")
    for k, v in m.items():
        print(
            f"{k:>24} {v.get('cells', args.cells):7d} {v['seconds']:10.3f} {v.get('min_seconds', v['seconds']):9.3f} "
            f"{v['peak_extra_mib']:15.0f} {result['extra_over_matrix'][k]:9.2f}"
        )
    for k, v in result["methods"].items():
        if "seconds" not in v:
            print(f"{k:>24}  {'skipped: ' + v['skipped'] if 'skipped' in v else 'failed'}")
    targets = {
        "scanpy_loop/sasp_atlas_scanpy": ">= 100",
        "sasp_atlas_scanpy/floor": "<= 15",
        "sasp_atlas_expected/floor": "<= 5",
        "pyucell/sasp_atlas_ucell": ">= 10",
        "decoupler_aucell/sasp_atlas_aucell": "(no target)",
        "seurat_r/sasp_atlas_seurat": ">= 50",
        "gsva_ssgsea_r/sasp_atlas_ssgsea": ">= 10",
        "sasp_atlas_husi/floor": "<= 20",
        "husi_authors/sasp_atlas_husi (per cell)": ">= 100",
    }
    for k, v in result["ratios"].items():
        print(
            f"{k:>40}: {'n/a' if v is None else f'{v:8.1f}'}   target {targets[k]:>11}   (medians, "
            f"{result['ratio_cells'][k]:,} cells)"
        )
    print("peak extra memory / matrix bytes: target <= 0.3 for the sasp_atlas rows")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
