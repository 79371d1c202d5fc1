"""Benchmark: one dataset through the atlas pipeline (``sasp_atlas.atlas.run_dataset``) at scale.

    python benchmarks/pipeline_bench.py --cells 100000 --json benchmarks/results/pipeline_100k.json

Synthetic data: Poisson counts for 5,000 genes (gene means log-normal; ~700 non-zeros per cell),
9 cell types x 10 samples (every sample holds every type; type sizes differ), 6 signatures of
30-100 genes, one of them planted higher in one cell type; ``normalize_total(1e4)`` + ``log1p``, CSR
float32. Generated in blocks of 10,000 cells with a fixed seed. Timed: ``run_dataset`` with the
defaults of a page (seed-free ``expected`` score, 1,000 null sets per signature, per-sample effects,
random-effects pooling, permutation and null p/q, five engines for method sensitivity, gene
decomposition, all tables written) and the display-only embedding (on at most ``EMBED_MAX_CELLS``
cells). Target (statistics issue): ``run_dataset_seconds`` <= 60 at 100,000 cells on 2 cores; the CPU
seconds of the run and the load average are recorded with it, as other processes may share the cores.
``--cells 1500 --genes 2000 --warmup-cells 0 --no-embedding --n-null 20 --compare-methods mean`` is the smoke run of ``tests/test_benchmarks.py``.
The synthetic AnnData records no ``uns["provenance"]["value_type"]``, so ``run_dataset`` is told what
``X`` was normalised from (``value_type="raw_counts"``: natural log1p of counts per 10,000).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

N_GENES = 5_000
N_TYPES = 9
N_SAMPLES = 10
SIG_SIZES = (30, 50, 60, 80, 100, 40)


def synthetic(n_cells: int, seed: int = 0, n_genes: int = N_GENES) -> tuple[ad.AnnData, dict[str, list[str]]]:
    rng = np.random.default_rng(seed)
    genes = [f"G{i:05d}" for i in range(n_genes)]
    mu = np.exp(rng.normal(-1.5, 1.5, n_genes))
    mu *= 700 / (1 - np.exp(-mu)).sum()  # ~700 non-zero genes per cell
    type_p = rng.dirichlet(np.full(N_TYPES, 2.0))
    types = rng.choice(N_TYPES, size=n_cells, p=type_p)
    samples = rng.integers(0, N_SAMPLES, size=n_cells)
    sigs, used = {}, set()
    for k, size in enumerate(SIG_SIZES):
        pick = rng.choice([g for g in range(n_genes) if g not in used], size=size, replace=False)
        used.update(pick.tolist())
        sigs[f"sig{k}"] = [genes[g] for g in pick]
    planted = np.array([genes.index(g) for g in sigs["sig0"]])
    blocks = []
    for r0 in range(0, n_cells, 10_000):
        r1 = min(r0 + 10_000, n_cells)
        lam = np.broadcast_to(mu, (r1 - r0, n_genes)).copy()
        lam[np.ix_(types[r0:r1] == 0, planted)] *= 3.0
        blocks.append(sp.csr_matrix(rng.poisson(lam).astype(np.float32)))
    X = sp.vstack(blocks, format="csr")
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical([f"type{t}" for t in types]),
            "sample": pd.Categorical([f"S{s}" for s in samples]),
        },
        index=[f"c{i}" for i in range(n_cells)],
    )
    obs["cell_type_author"] = obs["cell_type"]
    obs["cell_type_ontology_id"] = ""
    obs["lineage"] = ""
    obs["malignant"] = False
    adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes))
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    adata.uns["provenance"] = {"cancer_type": "synthetic", "cancer_type_ontology_id": ""}
    return adata, sigs


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its waited-for children: on shared cores the wall
    time also measures the queue, the CPU time does not."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=N_GENES, help="genes of the synthetic matrix (smoke runs: fewer)")
    parser.add_argument(
        "--warmup-cells",
        type=int,
        default=2_000,
        help="cells of the untimed warm-up run (numba compilation, imports); 0: no warm-up (smoke runs)",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--no-embedding", action="store_true", help="leave out the display-only UMAP")
    parser.add_argument("--n-null", type=int, help="random sets per signature (default: a page's)")
    parser.add_argument("--compare-methods", nargs="+", help="engines of the method sensitivity (default: a page's)")
    args = parser.parse_args(argv)
    from sasp_atlas.atlas import run_dataset

    options = {}  # a page's defaults unless told otherwise
    if args.n_null is not None:
        options["n_null"] = args.n_null
    if args.compare_methods:
        options["compare_methods"] = tuple(args.compare_methods)

    t0 = time.perf_counter()
    adata, sigs = synthetic(args.cells, n_genes=args.genes)
    gen = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        # the synthetic AnnData records no value type: say what .X was normalised from (its log base)
        if args.warmup_cells:  # numba compilation and imports, not timed
            warm, wsigs = synthetic(args.warmup_cells, seed=1, n_genes=args.genes)
            run_dataset(
                "warmup",
                adata=warm,
                signatures=wsigs,
                out_dir=tmp,
                with_embedding=False,
                value_type="raw_counts",
                **options,
            )
        t1, c1 = time.perf_counter(), _cpu_seconds()
        res = run_dataset(
            "bench",
            adata=adata,
            signatures=sigs,
            out_dir=tmp,
            with_embedding=not args.no_embedding,
            value_type="raw_counts",
            **options,
        )
        secs, cpu = time.perf_counter() - t1, _cpu_seconds() - c1
    top = res.celltype_scores.sort_values("effect_size", ascending=False)
    planted = top[top["signature"] == "sig0"].iloc[0]
    out = {
        "cells": args.cells,
        "genes": args.genes,
        "cell_types": N_TYPES,
        "samples": N_SAMPLES,
        "signatures": len(sigs),
        "run_dataset_seconds": round(secs, 2),
        "run_dataset_cpu_seconds": round(cpu, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "with_embedding": not args.no_embedding,
        "n_null": options.get("n_null", "default"),
        "compare_methods": list(options.get("compare_methods", ["default"])),
        "generate_seconds": round(gen, 2),
        "nnz": int(adata.X.nnz),
        "target_seconds": 60,
        "warmup_cells": args.warmup_cells,
        "planted_type_found": bool(planted["cell_type"] == "type0"),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
