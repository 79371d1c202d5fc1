"""Full-profile rehearsal at real size: every full-profile entry served from a local HTTPS server, then
`registry pin --all`, `build --profile full` and `check-site` run in a fresh project folder, as a maintainer would.

    PYTHONPATH=src python benchmarks/full_rehearsal.py --scale 1 --json benchmarks/results/full_rehearsal.json

What it does (issue 28, item 3):

1. **Files in each entry's exact format** at ``scale`` x its real size (cells x genes from the registry's
   ``expected``/notes, else the publication; every estimate is named in the JSON, ``size_basis``), written into
   ``<work>/served/<entry id>/<file name>``. Real label files of ``../shared/data`` (and every core file, ground
   truth and reference resource, which are real) are served byte for byte; matrices are generated: integer UMIs
   for ``raw_counts``, TPM/10-scale linear values for ``tpm_like`` (inferCNV ``cp100k``/``p100k``),
   ``log2(TPM/10+1)`` for ``log2_tpm10_plus1``, in the reader's container: SingleCellExperiment ``.RData`` /
   dgCMatrix and dense matrices in ``.rda`` (written by Debian R, ``Rscript``: the ``rdata`` package only reads),
   gzipped inferCNV text matrices, the EcoTyper ``tar.gz`` text matrix, the GEO per-sample ``.dem``/``.anno``
   pairs of van Galen, an XClone-style ``.h5ad``, GEO's NCBI count tables and series matrix, and
   CELLxGENE-schema ``.h5ad`` (``raw.X``, ``var.feature_name``, ``obs.is_primary_data``). Gene symbols are real
   HGNC symbols (the 29,733 of the core Wu CID4465 file, then approved symbols of the HGNC table); cells get
   cell types from the real label files where they exist, otherwise from the publication's cell classes, with
   markers and SASP genes expressed by type so the pipeline has something to find.
2. **Serve and pin**: a throw-away self-signed certificate (trusted through ``REQUESTS_CA_BUNDLE``, as the
   tests of ``registry pin`` do), a copy of ``data_registry.yaml`` in a fresh folder with every URL pointed at
   the local server (same file names); blob-verified files get the git blob id of the bytes served (the real
   ones are of other bytes); no mirror at all (``SASP_ATLAS_MIRROR`` unset), a fresh ``SASP_ATLAS_CACHE``
   inside the folder. Then ``sasp-atlas registry pin --all``, ``sasp-atlas build --profile full`` and
   ``sasp-atlas check-site _build/html``, each as a subprocess.
3. **Measure**: wall time per step, peak resident memory of each step's whole process tree (psutil, every
   0.5 s), per dataset the page time and the peak RSS of the page kernel that read it, disk (downloads +
   cache, results, book, site), pages rendered, the check-site result, and whether each entry's download fits
   a GitHub-hosted runner (14 GB free disk, 16 GB memory).

CELLxGENE entries: an entry whose loader is ``cellxgene_census`` is written with
``sasp_atlas.data.census.write_local_census`` (imported lazily; missing: "skipped: census loader not merged").
Entries on the whole-collection ``cellxgene`` loader are written as CELLxGENE h5ad only at a tiny scale
(<= ``CXG_TINY_MAX``, sized to the cells the entry keeps); above it they are "not rehearsed at full size".
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import hashlib
import http.server
import json
import os
import platform
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import scipy.sparse as sp
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

PROJECT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SASP_ATLAS_SHARED", PROJECT.parent / "shared"))
REGISTRY = PROJECT / "data_registry.yaml"
# the data server's address: a loopback address other than the site check's 127.0.0.1/localhost, so that the pages'
# links to the data files count as external links (as the real hosts' do), not as broken links of the site
HOST = "127.0.0.2"
CXG_TINY_MAX = 0.05
NOT_REHEARSED = (
    "not rehearsed at full size: the cellxgene loader downloads the whole CELLxGENE collection file ({cells:,} cells), "
    "which this script writes only at scales up to {tiny} (see fits_github_runner for the estimate; the Census loader "
    "reads only the entry's cells)"
)  # CELLxGENE whole-collection files are written only at scales up to this
RUNNER = {"disk_bytes": 14 * 10**9, "memory_bytes": 16 * 2**30, "cores": 4, "name": "GitHub-hosted ubuntu-latest"}
console = Console(stderr=True)

# SASP factors (the shared sasp_check_panel) and broad markers: expressed by type so signatures have a signal
SASP_PANEL = [
    "IL6", "CXCL8", "IL1A", "IL1B", "CCL2", "CXCL1", "CXCL2", "MMP1", "MMP3", "MMP10", "SERPINE1", "IGFBP3",
    "IGFBP7", "TIMP1", "GDF15", "VEGFA", "CDKN1A", "CDKN2A", "TNF", "CCL20", "HGF", "FGF2", "PLAU", "ICAM1",
]  # fmt: skip
MARKERS = {
    r"(?i)malignant|cancer|clone|tumour|epithel|cms": ["EPCAM", "KRT8", "KRT18", "KRT19", "MKI67", "SOX2"],
    r"(?i)^t\b|t.?cell|cd4|cd8|treg|nk|ctl": ["CD3D", "CD3E", "CD2", "NKG7", "GZMA", "IL7R"],
    r"(?i)^b\b|b.?cell|plasma": ["MS4A1", "CD79A", "CD79B", "MZB1", "JCHAIN"],
    r"(?i)macro|myeloid|mono|microglia|dc|dendritic|immune|mast": ["CD68", "LYZ", "CD14", "AIF1", "TPSAB1", "C1QA"],
    r"(?i)caf|fibro|stromal|stroma|pvl": ["COL1A1", "COL1A2", "DCN", "LUM", "ACTA2", "RGS5"],
    r"(?i)endothel": ["PECAM1", "VWF", "CDH5", "CLDN5"],
    r"(?i)oligodendro": ["MBP", "PLP1", "MOG", "MAG"],
    r"(?i)ery|hsc|prog|gmp": ["HBB", "CD34", "MPO", "ELANE", "PRTN3"],
}
SASP_HIGH = r"(?i)caf|fibro|stromal|stroma|pvl|macro|myeloid|mono|malignant|cancer|clone|cms|ris|senesc|\+"
HOUSEKEEPING = ["ACTB", "GAPDH", "B2M", "MALAT1", "TMSB4X", "EEF1A1", "RPLP0", "FTL"]


# --------------------------------------------------------------------------- genes and expression
def gene_pool(cache: Path) -> list[str]:
    """Real HGNC symbols: the 29,733 of the core Wu CID4465 file, then approved symbols of the HGNC table."""
    path = cache / "gene_pool.txt"
    if path.exists():
        return path.read_text().split("\n")
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sce = rdata.read_rda(SHARED / "data" / "wu2021_breast_tnbc_cid4465" / "single_cell_data_2.RData")
        genes = [str(g) for g in sce["single_cell_data_2"].rowRanges.partitioning.NAMES]
        table = rdata.read_rda(SHARED / "reference" / "raw" / "HGNChelper_hgnc.table.rda")
    hgnc = next(iter(table.values()))
    approved = pd.unique(hgnc.iloc[:, 1].astype(str))
    seen = set(genes)
    genes += [g for g in approved if g not in seen and re.fullmatch(r"[A-Z0-9][A-Za-z0-9.\-]*", g)]
    path.write_text("\n".join(genes))
    return genes


class Simulator:
    """Cells x genes expression by cell type: log-normal gene means, type markers (+ random type genes), SASP
    genes up in stromal, myeloid, malignant and senescent labels; Poisson counts around a library size."""

    def __init__(self, genes: list[str], seed: int):
        self.genes = list(genes)
        self.index = {g: i for i, g in enumerate(self.genes)}
        self.rng = np.random.default_rng(seed)
        self.mu = self.rng.normal(0.0, 1.6, len(genes)).astype(np.float32)
        for g in HOUSEKEEPING:
            if g in self.index:
                self.mu[self.index[g]] += 5.0
        self.effects: dict[str, np.ndarray] = {}

    def effect(self, label: str) -> np.ndarray:
        if label not in self.effects:
            seed = int(hashlib.sha1(label.encode()).hexdigest()[:8], 16)
            rng = np.random.default_rng(seed)
            e = np.zeros(len(self.genes), dtype=np.float32)
            e[rng.choice(len(self.genes), size=min(80, len(self.genes)), replace=False)] += 2.0
            for pattern, markers in MARKERS.items():
                if re.search(pattern, label):
                    for g in markers:
                        if g in self.index:
                            e[self.index[g]] += 4.0
            if re.search(SASP_HIGH, label):
                for g in SASP_PANEL:
                    if g in self.index:
                        e[self.index[g]] += 3.0 + rng.uniform(0, 1.5)
            self.effects[label] = e
        return self.effects[label]

    def counts(self, labels: list[str], library: float, block: int = 512) -> sp.csr_matrix:
        """Integer counts, cells x genes (CSR float32)."""
        out = []
        labels = list(labels)
        for r0 in range(0, len(labels), block):
            lab = labels[r0 : r0 + block]
            eff = np.stack([self.effect(x) for x in lab])
            logit = self.mu[None, :] + eff
            p = np.exp(logit - logit.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            size = self.rng.lognormal(np.log(library), 0.4, len(lab))[:, None]
            out.append(sp.csr_matrix(self.rng.poisson(p * size).astype(np.float32)))
        return sp.vstack(out, format="csr") if out else sp.csr_matrix((0, len(self.genes)), dtype=np.float32)

    def values(self, labels: list[str], value_type: str) -> sp.csr_matrix:
        """Values of ``value_type``: integer UMIs (raw_counts, ~4,000 per cell), TPM/10 scale (tpm_like: Smart-seq2
        reads scaled to 1e5 per cell, 2 decimals), log2(TPM/10+1) (4 decimals), TPM (tpm)."""
        if value_type == "raw_counts":
            return self.counts(labels, 4000.0)
        X = self.counts(labels, 30000.0)  # Smart-seq2-like depth: a few thousand genes detected per cell
        lib = np.asarray(X.sum(axis=1)).ravel()
        lib[lib == 0] = 1
        X = sp.diags((1e5 / lib).astype(np.float32)) @ X
        if value_type == "tpm":
            X = X * 10
        X.data = np.round(X.data, 2).astype(np.float32)
        if value_type == "log2_tpm10_plus1":
            X.data = np.round(np.log2(X.data + 1), 4).astype(np.float32)
        elif value_type not in ("tpm_like", "tpm"):
            raise ValueError(f"no generator for value_type {value_type!r}")
        X.eliminate_zeros()
        return X.tocsr()


# --------------------------------------------------------------------------- writers
def _fmt_rows(dense: np.ndarray, integer: bool) -> list[str]:
    """Tab-joined text rows; zeros as '0', non-zeros as integers or with up to 4 decimals."""
    out = np.full(dense.shape, "0", dtype=object)
    nz = dense != 0
    vals = dense[nz]
    out[nz] = [str(int(v)) for v in vals] if integer else [f"{v:.4g}" if v < 100 else f"{v:.2f}" for v in vals]
    return ["\t".join(row) for row in out]


def write_text_matrix(fh, X_cells_by_genes: sp.csr_matrix, genes, cells, *, corner: str | None, integer: bool):
    """A genes x cells tab-separated matrix: header of cell ids (``corner`` first if given), one row per gene."""
    fh.write("\t".join(([corner] if corner is not None else []) + list(cells)) + "\n")
    Xt = X_cells_by_genes.T.tocsr()
    step = max(1, 4_000_000 // max(1, len(cells)))
    for g0 in range(0, Xt.shape[0], step):
        rows = _fmt_rows(Xt[g0 : g0 + step].toarray(), integer)
        fh.write("".join(f"{g}\t{r}\n" for g, r in zip(genes[g0 : g0 + step], rows)))


def gz_text(path: Path, X, genes, cells, *, corner=None, integer=False) -> None:
    with gzip.open(path, "wt", compresslevel=6) as fh:
        write_text_matrix(fh, X, genes, cells, corner=corner, integer=integer)


R_WRITER = r"""
suppressMessages({library(Matrix); library(SingleCellExperiment)})
args <- commandArgs(trailingOnly = TRUE)
spec <- jsonlite_free_read <- function(p) readLines(p)
d <- args[1]; kind <- args[2]; obj_name <- args[3]; out <- args[4]
dims <- scan(file.path(d, "dims.txt"), what = integer(), quiet = TRUE)  # genes, cells, nnz
genes <- readLines(file.path(d, "genes.txt")); cells <- readLines(file.path(d, "cells.txt"))
x <- readBin(file.path(d, "x.bin"), "double", n = dims[3])
if (kind == "dense") {
  m <- matrix(x, nrow = dims[1], ncol = dims[2], dimnames = list(genes, cells))
} else {
  i <- readBin(file.path(d, "i.bin"), "integer", n = dims[3])
  p <- readBin(file.path(d, "p.bin"), "integer", n = dims[2] + 1)
  m <- new("dgCMatrix", i = i, p = p, x = x, Dim = as.integer(dims[1:2]), Dimnames = list(genes, cells))
}
if (kind == "sce") {
  cd <- read.delim(file.path(d, "coldata.tsv"), row.names = 1, check.names = FALSE, colClasses = "character")
  m <- SingleCellExperiment(assays = list(counts = m), colData = S4Vectors::DataFrame(cd, check.names = FALSE))
}
assign(obj_name, m)
save(list = obj_name, file = out)
"""


def write_r(path: Path, obj_name: str, X_cells_by_genes: sp.csr_matrix, genes, cells, *, kind: str, coldata=None):
    """An R data file written by Debian R: ``kind`` sce (SingleCellExperiment, dgCMatrix ``counts``), dgc (a
    genes x cells dgCMatrix) or dense (a genes x cells numeric matrix); arrays pass through binary files."""
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        d = Path(tmp)
        C = X_cells_by_genes.T.tocsc() if kind != "dense" else None  # genes x cells, column-compressed
        if C is not None:
            C.sort_indices()  # a dgCMatrix needs increasing row indices within each column
        if kind == "dense":
            x = np.asfortranarray(X_cells_by_genes.toarray().T.astype(np.float64)).ravel(order="F")
            nnz = x.size
        else:
            x, nnz = C.data.astype(np.float64), C.nnz
            C.indices.astype(np.int32).tofile(d / "i.bin")
            C.indptr.astype(np.int32).tofile(d / "p.bin")
        x.tofile(d / "x.bin")
        (d / "dims.txt").write_text(f"{len(genes)} {len(cells)} {nnz}\n")
        (d / "genes.txt").write_text("\n".join(genes) + "\n")
        (d / "cells.txt").write_text("\n".join(cells) + "\n")
        if coldata is not None:
            coldata.to_csv(d / "coldata.tsv", sep="\t")
        (d / "w.R").write_text(R_WRITER)
        subprocess.run(["Rscript", str(d / "w.R"), str(d), kind, obj_name, str(path)], check=True)


def cxg_obs(cells_by_disease: dict[str, int], donors_per: int) -> pd.DataFrame:
    """CELLxGENE-schema obs: per disease its cells cycling over six cell types with their CL ids (normal tissue
    without malignant cells), ``donors_per`` donors per disease, tissue, assay, and every 9th cell not primary."""
    types = [
        ("malignant cell", "CL:0001064"),
        ("fibroblast", "CL:0000057"),
        ("macrophage", "CL:0000235"),
        ("T cell", "CL:0000084"),
        ("B cell", "CL:0000236"),
        ("endothelial cell", "CL:0000115"),
    ]
    rows = []
    for disease, n in cells_by_disease.items():
        for i in range(n):
            t = types[i % len(types)] if disease != "normal" else types[1 + i % (len(types) - 1)]
            rows.append((disease, t[0], t[1], f"{disease[:4]}_D{i % donors_per}"))
    obs = pd.DataFrame(rows, columns=["disease", "cell_type", "cell_type_ontology_term_id", "donor_id"])
    obs.index = [f"cxg_{i:07d}" for i in range(len(obs))]
    obs["tissue"] = "tissue"
    obs["assay"] = "10x 3' v3"
    obs["is_primary_data"] = np.arange(len(obs)) % 9 != 8
    return obs


def write_cellxgene_h5ad(path: Path, sim: Simulator, cells_by_disease: dict[str, int], donors_per: int, rng):
    """A CELLxGENE-schema (5.x) h5ad: raw.X counts, X log-normalised, var index Ensembl-like ids with
    feature_name symbols, obs with the schema columns (cell_type + its CL id, donor_id, disease, tissue, assay,
    is_primary_data: every 9th cell a duplicate from another collection)."""
    import anndata as ad

    obs = cxg_obs(cells_by_disease, donors_per)
    for c in ("disease", "cell_type", "cell_type_ontology_term_id", "donor_id", "tissue", "assay"):
        obs[c] = obs[c].astype("category")
    counts = sim.counts([f"{c} {d}" for c, d in zip(obs["cell_type"], obs["disease"])], 4000.0)
    var = pd.DataFrame(
        {"feature_name": sim.genes}, index=pd.Index([f"ENSG{i:011d}" for i in range(len(sim.genes))], name="gene_id")
    )
    lib = np.asarray(counts.sum(axis=1)).ravel()
    lib[lib == 0] = 1
    X = sp.diags((1e4 / lib).astype(np.float32)) @ counts
    X.data = np.log1p(X.data)
    a = ad.AnnData(X=sp.csr_matrix(X, dtype=np.float32), obs=obs, var=var)
    a.raw = ad.AnnData(X=counts, obs=obs.copy(), var=pd.DataFrame(index=var.index))
    a.uns["schema_version"] = "5.2.0"
    a.write_h5ad(path, compression="gzip")
    return len(obs)


# --------------------------------------------------------------------------- per-entry generators
def _n(real: int, scale: float, floor: int = 24) -> int:
    return max(floor, int(round(real * scale)))


def _subsample(table: pd.DataFrame, n: int, by: str, seed: int) -> pd.DataFrame:
    """``n`` rows of ``table`` (all when n >= len), every value of column ``by`` kept at least once."""
    if n >= len(table):
        return table
    first = table.drop_duplicates(by)
    rest = table.drop(first.index).sample(n=max(0, n - len(first)), random_state=seed)
    return pd.concat([first, rest]).sort_index()


def _genes(pool, n):
    if n > len(pool):
        raise ValueError(f"gene pool holds {len(pool)} symbols, {n} requested")
    return list(pool[:n])


def _labels_txt(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", header=None, names=["cell", "label"], dtype=str)


def _real_file(entry: dict, f: dict) -> Path | None:
    """The real file of a registry file in ../shared (byte-identical; its sha256 is checked when served)."""
    for folder in (f.get("mirror_id"), entry["id"]):
        if folder and (p := SHARED / "data" / folder / f["name"]).is_file():
            return p
    p = SHARED / "reference" / "raw" / f["name"]
    if p.is_file():
        return p
    # a label file shared with another entry sits under that entry's folder (same sha256)
    return next((q for q in sorted((SHARED / "data").glob(f"*/{f['name']}")) if f.get("sha256")), None)


class Generator:
    def __init__(self, served: Path, scale: float, pool: list[str], seed: int = 0):
        self.served, self.scale, self.pool, self.seed = served, scale, pool, seed

    def folder(self, entry) -> Path:
        d = self.served / entry["id"]
        d.mkdir(parents=True, exist_ok=True)
        return d

    def sim(self, genes, entry) -> Simulator:
        return Simulator(genes, seed=self.seed + int(hashlib.sha1(entry["id"].encode()).hexdigest()[:6], 16))

    # ---- SingleCellExperiment .RData (Wu 2021 samples; multinichenetr Puram)
    def wu_sce(self, entry):
        real = SHARED / "data" / "wu2021_breast_tnbc_cid4465" / "single_cell_data_2.RData"
        import rdata

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sce = rdata.read_rda(real)["single_cell_data_2"]
        ld = sce.colData.listData
        types = pd.DataFrame({k: np.asarray(ld[k]).astype(str) for k in ("celltype_major", "celltype_minor")})
        n_real, g_real = entry["expected"]["n_cells"], entry["expected"]["n_genes"]
        n = _n(n_real, self.scale)
        rng = np.random.default_rng(n_real)
        pick = types.iloc[rng.choice(len(types), size=n, replace=True)].reset_index(drop=True)
        sample = re.search(r"CID\d+", entry["title"]).group(0)
        cells = [f"{sample}_{''.join(rng.choice(list('ACGT'), 16))}" for _ in range(n)]
        cd = pd.DataFrame(
            {
                "orig.ident": sample,
                "celltype_major": pick["celltype_major"].to_numpy(),
                "celltype_minor": pick["celltype_minor"].to_numpy(),
            },
            index=cells,
        )
        genes = _genes(self.pool, g_real)  # the Wu files share one gene list (29,733)
        X = self.sim(genes, entry).values(list(cd["celltype_major"]), entry["value_type"])
        self.write_sce(entry, X, genes, cells, cd)
        basis = (
            f"registry expected n_cells {n_real:,} x n_genes {g_real:,}; cell types drawn with the proportions of the "
            "real CID4465 file (celltype_major/minor), as the sample's own labels are inside the remote file"
        )
        return n, len(genes), basis

    def write_sce(self, entry, X, genes, cells, coldata) -> None:
        """The entry's one file: a SingleCellExperiment object named as its loader options say (Rscript)."""
        f = entry["files"][0]
        write_r(self.folder(entry) / f["name"], entry["loader"]["options"]["object"], X, genes, cells, kind="sce",
                coldata=coldata)  # fmt: skip

    def puram_sce(self, entry):
        n_real, g_real = 5902, 23686
        n = _n(n_real, self.scale)
        rng = np.random.default_rng(3)
        classes = ["Malignant", "Fibroblast", "Endothelial", "T cell", "B cell", "Macrophage", "Dendritic", "Mast",
                   "myocyte"]  # fmt: skip
        weights = np.array([0.5, 0.22, 0.06, 0.1, 0.02, 0.04, 0.02, 0.02, 0.02])
        labels = rng.choice(classes, size=n, p=weights / weights.sum())
        tumours = rng.choice([f"HN{i}" for i in (5, 6, 16, 17, 18, 20, 22, 25, 26, 28)], size=n)
        cells = [f"{t}_cell{i:05d}" for i, t in enumerate(tumours)]
        cd = pd.DataFrame(
            {"tumor": tumours, "pEMT": "NA", "pEMT_fine": "NA", "celltype": labels, "batch": "1"}, index=cells
        )
        genes = _genes(self.pool, g_real)
        X = self.sim(genes, entry).values(list(labels), entry["value_type"])
        self.write_sce(entry, X, genes, cells, cd)
        basis = (
            "ESTIMATE, upper bound: the file is a subsample (features and cells) of unknown size, so the publication's "
            "5,902 cells x 23,686 genes (Puram 2017, GEO GSE103322) are used; cell classes of the publication "
            "(celltype, Malignant), tumours HN5-HN28 (colData tumor)"
        )
        return n, len(genes), basis

    # ---- inferCNV gzipped text matrices with the real label files
    def infercnv(self, entry):
        opts = entry["loader"]["options"]
        labels_file = next(f for f in entry["files"] if f["name"] == opts["labels"])
        labels = _labels_txt(_real_file(entry, labels_file))
        n = _n(len(labels), self.scale)
        labels = _subsample(labels, n, "label", self.seed).sample(frac=1, random_state=1)
        g_real = 23686
        genes = _genes(self.pool, g_real)
        X = self.sim(genes, entry).values(list(labels["label"]), entry["value_type"])
        gz_text(self.folder(entry) / opts["matrix"], X, genes, list(labels["cell"]), corner=None)
        basis = (
            f"cells: the {len(_labels_txt(_real_file(entry, labels_file))):,} cells of the real label file "
            f"{opts['labels']}; genes ESTIMATE: 23,686, the gene count of the Tirosh/Suva lab's GEO matrices "
            "(the inferCNV example matrix has not been read)"
        )
        return len(labels), len(genes), basis

    # ---- CARD PDAC: dgCMatrix sc_count.RData + real sc_meta.RData
    def card(self, entry):
        import rdata

        opts = entry["loader"]["options"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = rdata.read_rda(SHARED / "data" / entry["id"] / opts["meta"])[opts["meta_object"]]
        meta.index = meta.index.astype(str)
        meta = meta.assign(cellType=meta["cellType"].astype(str))
        n = _n(len(meta), self.scale)
        meta = _subsample(meta, n, "cellType", self.seed)
        genes = _genes(self.pool, 19736)
        X = self.sim(genes, entry).values(list(meta["cellType"]), entry["value_type"])
        write_r(self.folder(entry) / opts["matrix"], opts["matrix_object"], X, genes, list(meta.index), kind="dgc")
        return (
            len(meta),
            len(genes),
            "cells: the 1,926 of the real sc_meta.RData; genes 19,736 (CARD example, sc_count dim)",
        )

    # ---- infercna GBM: dense log2(TPM/10+1) matrices + real refCells.rda
    def infercna(self, entry):
        import rdata

        opts = entry["loader"]["options"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            refs = rdata.read_rda(SHARED / "data" / entry["id"] / opts["refcells"])["refCells"]
        refs = {str(k): [str(c) for c in np.atleast_1d(v)] for k, v in refs.items()}
        label_of = {c: opts["ref_labels"][k] for k, ids in refs.items() for c in ids}
        sizes = {"bt771.rda": 1265, "mgh125.rda": 1266, "mgh105.rda": 1266}
        genes = _genes(self.pool, entry["expected"]["n_genes"])
        sim = self.sim(genes, entry)
        total = 0
        for fname in opts["matrices"]:
            stem = fname.removesuffix(".rda")
            prefix = re.compile(rf"^{stem.upper()}[A-Z]?-")
            ref_cells = sorted(c for c in label_of if prefix.match(c))
            n = _n(sizes[fname], self.scale)
            ref_cells = ref_cells[: max(2, min(len(ref_cells), n // 4))]
            fake = [
                f"{stem.upper()}{'ABCD'[i % 4] if stem == 'mgh105' else ''}-P{20 + i // 96}-{'ABCDEFGH'[i // 12 % 8]}{i % 12 + 1:02d}"
                for i in range(max(1, n - len(ref_cells)))
            ]
            cells = ref_cells + fake
            labels = [label_of.get(c, opts["default_label"]) for c in cells]
            X = sim.values(labels, entry["value_type"])
            write_r(self.folder(entry) / fname, stem, X, genes, cells, kind="dense")
            total += len(cells)
        basis = (
            "cells: BT771 1,265 and MGH125 1,266 (registry notes), MGH105 ESTIMATE 1,266 (unknown); genes 8,556 "
            "(registry); reference cells of each sample from the real refCells.rda, the others malignant"
        )
        return total, len(genes), basis

    # ---- XClone TNBC1 h5ad
    def xclone(self, entry):
        import anndata as ad

        n = _n(entry["expected"]["n_cells"], self.scale)
        genes = _genes(self.pool, 33538)
        rng = np.random.default_rng(11)
        pred = rng.choice(["N", "C1", "C2", "C3"], size=n, p=[0.3, 0.3, 0.2, 0.2])
        X = self.sim(genes, entry).values([("fibroblast" if p == "N" else "malignant") for p in pred], "raw_counts")
        obs = pd.DataFrame({"cluster.pred": pred}, index=[f"TNBC1_{i:05d}" for i in range(n)])
        ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(
            self.folder(entry) / entry["loader"]["options"]["file"], compression="gzip"
        )
        basis = "cells 1,097 (registry); genes ESTIMATE 33,538 (10x GRCh38 reference; the file has not been read)"
        return n, len(genes), basis

    # ---- EcoTyper CRC: one tab-separated text file inside a tar.gz + real annotation
    def ecotyper(self, entry):
        opts = entry["loader"]["options"]
        ann = pd.read_csv(SHARED / "data" / entry["id"] / opts["labels"], sep="\t", dtype=str)
        n = _n(len(ann), self.scale)
        ann = _subsample(ann, n, "Cell_subtype", self.seed).sample(frac=1, random_state=3)
        genes = _genes(self.pool, 33694)
        labels = [f"{t} {s}" for t, s in zip(ann["Cell_type"], ann["Cell_subtype"])]
        X = self.sim(genes, entry).values(labels, entry["value_type"])
        inner = opts["matrix"].removesuffix(".tar.gz")
        with tempfile.TemporaryDirectory(dir=self.served) as tmp:
            txt = Path(tmp) / inner
            with open(txt, "w") as fh:
                write_text_matrix(fh, X, genes, list(ann["ID"]), corner="Gene", integer=True)
            with tarfile.open(self.folder(entry) / opts["matrix"], "w:gz", compresslevel=6) as tar:
                tar.add(txt, arcname=inner)
        basis = (
            "cells: the 13,780 of the real scRNA_CRC_annotation.txt; genes ESTIMATE 33,694 (GEO GSE132465, the full "
            "10x gene list; an upper bound: a file in a GitHub repository is under 100 MB, so the example may hold fewer)"
        )
        return len(ann), len(genes), basis

    # ---- van Galen AML: GEO per-sample .dem.txt.gz / .anno.txt.gz pairs
    def vangalen(self, entry):
        from sasp_atlas.data import crosswalk

        classes = list(crosswalk()["datasets"][entry["id"]])
        genes = _genes(self.pool, 27899)
        sim = self.sim(genes, entry)
        rng = np.random.default_rng(7)
        total = 0
        for sample, files in entry["loader"]["options"]["samples"].items():
            n = _n(1000, self.scale, floor=30)
            labels = [classes[i % len(classes)] if i < len(classes) else str(rng.choice(classes)) for i in range(n)]
            cells = [f"{sample}-D0_{''.join(rng.choice(list('ACGT'), 12))}" for _ in range(n)]
            X = sim.values(labels, "raw_counts")
            gz_text(self.folder(entry) / files["matrix"], X, genes, cells, corner="Gene", integer=True)
            anno = pd.DataFrame(
                {
                    "Cell": cells,
                    "NumberOfReads": np.asarray(X.sum(axis=1)).ravel().astype(int) * 4,
                    "PredictionRF2": labels,
                    "PredictionRefined": ["malignant" if x.endswith("-like") else "normal" for x in labels],
                    "CellType": labels,
                }
            )
            with gzip.open(self.folder(entry) / files["labels"], "wt") as fh:
                anno.to_csv(fh, sep="\t", index=False)
            total += n
        basis = (
            "cells ESTIMATE 1,000 per diagnosis sample (van Galen 2019 report 38,410 cells over 40 samples, ~960 "
            "each; per-sample counts not recorded here); genes ESTIMATE 27,899 (the Seq-Well .dem files' gene list "
            "as read by public loaders, not verified); the authors' 21 CellType classes"
        )
        return total, len(genes), basis

    # ---- CELLxGENE whole-collection h5ad (tiny scale only) / Census
    def cellxgene(self, entry, collection_entries):
        f = entry["files"][0]
        diseases = {}
        for e in collection_entries:
            for d in e["loader"]["options"]["obs_filter"]["disease"]:
                diseases[d] = _n(400, self.scale, floor=36)
        diseases["normal"] = _n(400, self.scale, floor=36)
        genes = _genes(self.pool, 30000)
        rng = np.random.default_rng(5)
        n = write_cellxgene_h5ad(self.folder(entry) / f["name"], self.sim(genes, entry), diseases, 3, rng)
        return n, len(genes)

    # ---- ground truth
    def teo(self, entry):
        lab_f = next(f for f in entry["files"] if "metadata" in f["name"])
        meta = pd.read_csv(_real_file(entry, lab_f), sep="\t", index_col=0, dtype=str)
        n = _n(len(meta), self.scale, floor=30)
        meta = _subsample(meta, n, "Condition2", self.seed)
        genes = _genes(self.pool, 33538)
        labels = [("RIS senescent fibroblast" if c == "RIS" else f"{c} fibroblast") for c in meta["Condition2"]]
        X = self.sim(genes, entry).values(labels, "raw_counts")
        gz_text(self.folder(entry) / entry["loader"]["options"]["matrix"], X, genes, list(meta.index), integer=True)
        basis = "cells: the 480 of the real metadata file; genes ESTIMATE 33,538 (10x GRCh38; the count file has not been read)"
        return len(meta), len(genes), basis

    def casella(self, entry):
        opts = entry["loader"]["options"]
        d = self.folder(entry)
        lines = ["WI-38", "IMR-90", "HUVEC", "HAEC"]
        conds = ["IR (+)", "IR (-)", "HRAS", "EV", "PDL52", "PDL24", "DOXO (+)", "DOXO (-)", "quiescent"]
        titles = [f"{c} {x} rep{r}" for c in lines for x in conds for r in (1, 2)][: max(6, _n(72, self.scale, 6))]
        gsms = [f"GSM37{i:05d}" for i in range(len(titles))]
        n_ids = max(200, int(round(39376 * min(1.0, self.scale * 10))))  # NCBI tables list ~39,376 GeneIDs
        genes = _genes(self.pool, n_ids)
        gene_ids = [str(100000 + i) for i in range(len(genes))]
        labels = [
            "senescent fibroblast" if re.search(r"\+|PDL52|HRAS", t) else "proliferating fibroblast" for t in titles
        ]
        X = Simulator(genes, 9).counts(labels, 2.0e7)
        with gzip.open(d / opts["counts"], "wt") as fh:
            write_text_matrix(fh, X, gene_ids, gsms, corner="GeneID", integer=True)
        with gzip.open(d / opts["annotation"], "wt") as fh:
            fh.write("GeneID\tSymbol\tDescription\tGeneType\n")
            fh.write("".join(f"{g}\t{s}\t{s} gene\tprotein-coding\n" for g, s in zip(gene_ids, genes)))
        q = lambda xs: "\t".join(f'"{x}"' for x in xs)  # noqa: E731
        sm = [
            '!Series_title\t"Transcriptome signature of cellular senescence"',
            '!Series_geo_accession\t"GSE130727"',
            f"!Sample_title\t{q(titles)}",
            f"!Sample_geo_accession\t{q(gsms)}",
            f"!Sample_source_name_ch1\t{q(['cell line'] * len(gsms))}",
            f"!Sample_characteristics_ch1\t{q(['cell line: ' + t.split()[0] for t in titles])}",
            "!series_matrix_table_begin",
            '"ID_REF"\t' + q(gsms),
            "!series_matrix_table_end",
            "",
        ]
        with gzip.open(d / opts["series_matrix"], "wt") as fh:
            fh.write("\n".join(sm))
        basis = (
            "samples ESTIMATE 72 (4 cell lines x 9 conditions x 2; the series' real titles not read), GeneIDs 39,376 "
            "(NCBI GRCh38.p13 count tables); titles follow the entry's label rule"
        )
        return len(gsms), len(genes), basis


def generate(entries, gen: Generator, scale: float, records: dict, progress: Progress) -> dict[str, Path]:
    """Write every entry's files; returns {original URL: served path} (real files copied, the rest generated)."""
    served: dict[str, Path] = {}
    cxg_done: dict[str, str] = {}
    by_url: dict[str, list] = {}
    for _, e in entries:
        for f in e["files"]:
            by_url.setdefault(f["url"], []).append(e)
    task = progress.add_task("generate", total=len(entries))
    for kind, e in entries:
        progress.update(task, description=f"generate {e['id']}")
        rec = records[e["id"]]
        t0 = time.perf_counter()
        loader = e.get("loader", {}).get("name")
        try:
            real = {f["name"]: _real_file(e, f) for f in e["files"]}
            for f in e["files"]:
                if real[f["name"]] is not None and f.get("sha256"):
                    dest = gen.folder(e) / f["name"]
                    if not dest.exists():
                        shutil.copy2(real[f["name"]], dest)
            made = None
            if (
                kind == "resource"
                or e.get("profile") == "core"
                or all(real[f["name"]] is not None and f.get("sha256") for f in e["files"])
            ):
                rec["source"] = "real files (../shared)"
            elif loader == "cellxgene_census":
                rec["source"] = "local Census (written after the files)"
            elif loader == "cellxgene":
                url = e["files"][0]["url"]
                if scale > CXG_TINY_MAX:
                    rec["status"] = "not rehearsed"
                    rec["reason"] = NOT_REHEARSED.format(cells=rec["collection_cells"], tiny=CXG_TINY_MAX)
                elif url in cxg_done:
                    rec["source"] = f"shared collection file written for {cxg_done[url]}"
                else:
                    n, g = gen.cellxgene(e, by_url[url])
                    cxg_done[url] = e["id"]
                    made = (
                        n,
                        g,
                        f"CELLxGENE-schema h5ad at tiny scale: {n} cells over the diseases of its entries + normal",
                    )
            else:
                made = GENERATORS[e["id"]](gen, e)
            if made:
                rec["n_cells_written"], rec["n_genes_written"], rec["size_basis"] = made
                rec["source"] = "generated"
        except Exception as exc:  # noqa: BLE001 - a generator failure is a recorded outcome
            rec["status"] = "generation failed"
            rec["reason"] = f"{type(exc).__name__}: {exc}"
            console.print(f"[red]generation of {e['id']} failed[/red]: {exc}")
        rec["generate_seconds"] = round(time.perf_counter() - t0, 2)
        for f in e["files"]:
            p = (
                gen.served
                / (
                    f.get("mirror_id")
                    if f.get("mirror_id") and (gen.served / f["mirror_id"] / f["name"]).exists()
                    else e["id"]
                )
                / f["name"]
            )
            if not p.exists():
                p = next(
                    (
                        gen.served / o["id"] / f["name"]
                        for o in by_url[f["url"]]
                        if (gen.served / o["id"] / f["name"]).exists()
                    ),
                    p,
                )
            if p.exists():
                served.setdefault(f["url"], p)
        rec["download_bytes"] = sum(served[f["url"]].stat().st_size for f in e["files"] if f["url"] in served)
        progress.advance(task)
    census = [e for _, e in entries if (e.get("loader") or {}).get("name") == "cellxgene_census"]
    try:
        served["census_uri"] = gen_census(census, gen, records, gen.served)
    except Exception as exc:  # noqa: BLE001 - recorded per entry
        for e in census:
            records[e["id"]].update(status="generation failed", reason=f"{type(exc).__name__}: {exc}")
        served["census_uri"] = None
    return served


def census_adata(sim: Simulator, cells_by_disease: dict[str, int], donors_per: int):
    """One CELLxGENE dataset as ``write_local_census`` takes it: raw counts in X, var indexed by feature_id with
    feature_name, the schema obs columns (every 9th cell not primary)."""
    import anndata as ad

    obs = cxg_obs(cells_by_disease, donors_per)
    X = sim.counts([f"{c} {d}" for c, d in zip(obs["cell_type"], obs["disease"])], 4000.0)
    var = pd.DataFrame(
        {"feature_name": sim.genes}, index=pd.Index([f"ENSG{i:011d}" for i in range(len(sim.genes))], name="feature_id")
    )
    return ad.AnnData(X=X, obs=obs, var=var)


def gen_census(census_entries, gen: Generator, records: dict, served_root: Path) -> str | None:
    """A local Census (``write_local_census``, imported lazily: the census branch adds it) holding, per dataset
    version, the cells of every entry that reads it (ESTIMATE ``CENSUS_SUBSET_CELLS`` x scale per entry; the
    subsets' sizes are recorded by the first pin of the real entries) plus normal cells; returns its URI."""
    if not census_entries:
        return None
    try:
        from sasp_atlas.data.census import write_local_census
    except ImportError:
        for e in census_entries:
            records[e["id"]].update(status="skipped", reason="skipped: census loader not merged")
        return None
    versions = {e["loader"]["options"]["census_version"] for e in census_entries}
    if len(versions) != 1:
        raise ValueError(f"census entries name several releases {sorted(versions)}; one local copy per run")
    by_version: dict[str, dict[str, int]] = {}
    for e in census_entries:
        opts = e["loader"]["options"]
        diseases = re.findall(r"disease\s*==\s*'([^']+)'", opts.get("obs_value_filter", "")) or ["unknown"]
        cells = by_version.setdefault(opts["dataset_version_id"], {"normal": _n(CENSUS_SUBSET_CELLS, gen.scale)})
        for d in diseases:
            cells[d] = _n(CENSUS_SUBSET_CELLS, gen.scale)
        records[e["id"]].update(
            n_cells_written=sum(_n(CENSUS_SUBSET_CELLS, gen.scale) for _ in diseases),
            n_genes_written=30000,
            size_basis=f"ESTIMATE {CENSUS_SUBSET_CELLS:,} cells per entry x scale (subset sizes are not published; the "
            "first pin of the real entry records them); 30,000 genes",
            source="generated (local Census)",
        )
    genes = _genes(gen.pool, 30000)
    adatas = {vid: census_adata(Simulator(genes, seed=len(vid)), cells, 3) for vid, cells in by_version.items()}
    uri = served_root / "cellxgene-census" / versions.pop() / "soma"
    uri.parent.mkdir(parents=True, exist_ok=True)
    return str(write_local_census(adatas, uri, census_version=uri.parent.name))


CENSUS_SUBSET_CELLS = 20_000


GENERATORS = {
    "wu2021_breast_cid4290": Generator.wu_sce,
    "wu2021_breast_cid44971": Generator.wu_sce,
    "wu2021_breast_cid4535": Generator.wu_sce,
    "tirosh2016_melanoma_full": Generator.infercnv,
    "tirosh2016_oligodendroglioma_full": Generator.infercnv,
    "filbin2018_h3k27m_glioma": Generator.infercnv,
    "puram2017_hnscc_multinichenetr": Generator.puram_sce,
    "moncada2020_pdac_card": Generator.card,
    "neftel2019_gbm_infercna": Generator.infercna,
    "gao2021_tnbc1_xclone": Generator.xclone,
    "lee2020_crc_smc_ecotyper": Generator.ecotyper,
    "vangalen2019_aml_geo": Generator.vangalen,
    "teo2019_imr90_ois_10x": Generator.teo,
    "casella2019_multi_inducer_bulk": Generator.casella,
}


# --------------------------------------------------------------------------- registry copy, server
def blob_sha1(path: Path) -> str:
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rewrite_registry(doc: dict, served: dict[str, Path], served_root: Path, base_url: str) -> dict:
    """Every served file's URL points at the local server; generated files carry the blob id of the bytes
    served where the entry verifies by blob id, and lose a sha256/size they would not match."""
    for section in ("datasets", "ground_truth", "resources"):
        for e in doc.get(section) or []:
            for f in e.get("files", []):
                if f["url"] not in served:  # not served (an entry not rehearsed): the local server answers 404
                    f["url"] = f"{base_url}/{e['id']}/{f['name']}"
                    continue
                path = served[f["url"]]
                new = f"{base_url}/{path.relative_to(served_root).as_posix()}"
                real = f.get("sha256") and _real_file(e, f) is not None
                if not real:
                    f.pop("sha256", None)
                    f.pop("size", None)
                    if f.get("git_blob_sha1"):
                        f["git_blob_sha1"] = blob_sha1(path)
                f["url"] = new
    return doc


def start_server(root: Path, certs: Path):
    cert, key = certs / "cert.pem", certs / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=IP:{HOST}"],
        check=True, capture_output=True,
    )  # fmt: skip

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((HOST, 0), partial(Handler, directory=str(root)))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, cert, f"https://{HOST}:{server.server_address[1]}"


# --------------------------------------------------------------------------- measured steps
class TreeSampler(threading.Thread):
    """Peak RSS of a process tree (sum over the live processes, every ``interval`` s), and per process the peak
    of those that touched a dataset's cache folder (page kernels: the dataset they serve)."""

    def __init__(self, pid: int, cache: Path, ids: list[str], interval: float = 0.5):
        super().__init__(daemon=True)
        self.root, self.cache, self.interval = psutil.Process(pid), str(cache), interval
        self.ids = sorted(ids, key=len, reverse=True)
        self.peak = 0
        self.per_dataset: dict[str, int] = {}
        self.kernel_of: dict[int, str] = {}
        self.stop = threading.Event()

    def _dataset_of(self, proc) -> str | None:
        try:
            for f in proc.open_files():
                if f.path.startswith(self.cache):
                    rel = f.path[len(self.cache) :].lstrip("/")
                    head = rel.split("/", 1)[0]
                    if head in self.ids:
                        return head
        except (psutil.Error, OSError):
            return None
        return None

    def run(self):
        while not self.stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                break
            total = 0
            for p in procs:
                try:
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                ds = self.kernel_of.get(p.pid)
                if ds is None:
                    ds = self._dataset_of(p)
                    if ds is not None and p.pid != self.root.pid:
                        self.kernel_of[p.pid] = ds  # a kernel serves one dataset page for its life
                if ds is not None:
                    self.per_dataset[ds] = max(self.per_dataset.get(ds, 0), rss)
            self.peak = max(self.peak, total)
            self.stop.wait(self.interval)


def run_step(name, cmd, *, cwd, env, log_dir, cache, ids) -> dict:
    console.rule(f"[bold]{name}[/bold]: {' '.join(cmd[2:])}")
    t0 = time.perf_counter()
    log = log_dir / f"{name}.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sampler = TreeSampler(proc.pid, cache, ids)
        sampler.start()
        for line in proc.stdout:
            fh.write(line)
            stripped = line.rstrip()
            if stripped:
                console.print(f"[dim]{name}[/dim] {stripped[:200]}", highlight=False, markup=False)
        rc = proc.wait()
        sampler.stop.set()
        sampler.join()
    return {
        "command": " ".join(["sasp-atlas", *cmd[3:]]),
        "exit_code": rc,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_bytes": sampler.peak,
        "per_dataset_peak_rss": sampler.per_dataset,
        "log": log.read_text(),
    }


def du(path: Path) -> int:
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    seen, total = set(), 0
    for p in path.rglob("*"):
        try:
            st = p.lstat()
        except OSError:
            continue
        if p.is_file() and not p.is_symlink() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def machine() -> dict:
    vm = psutil.virtual_memory()
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus_logical": psutil.cpu_count(),
        "memory_bytes": vm.total,
        "note": "shared machine: other workers were running tests on the same 2 cores during the run",
    }


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(PROJECT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT), "status", "--porcelain", "src"], capture_output=True, text=True
        )
        return out.stdout.strip() + ("+dirty(src)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def axe_script() -> str | None:
    for p in (os.environ.get("SASP_ATLAS_AXE"), PROJECT / "node_modules/axe-core/axe.min.js",
              PROJECT.parent / "main/node_modules/axe-core/axe.min.js"):  # fmt: skip
        if p and Path(p).is_file():
            return str(p)
    return None


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, required=True, help="fraction of each entry's real size (1 = real size)")
    ap.add_argument("--json", required=True, help="output JSON")
    ap.add_argument("--work", help="working folder (default: a new temporary folder; removed unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the working folder")
    ap.add_argument("--workers", type=int, default=2, help="build --workers")
    ap.add_argument("--only", nargs="+", help="limit to these full-profile ids (debugging; core is always built)")
    ap.add_argument(
        "--exact",
        action="store_true",
        help="with --only: core datasets too only when named (the CI smoke test; ground truth and resources stay)",
    )
    ap.add_argument(
        "--recheck-site",
        action="store_true",
        help="with --resummarise: run check-site again on a copy of the site whose links to the rehearsal's data "
        "server are the registry's real URLs (runs made before the server moved off 127.0.0.1, which the site "
        "check takes for its own host)",
    )
    ap.add_argument(
        "--resummarise",
        metavar="OLD_JSON",
        help="only rewrite the JSON from a kept --work folder (its logs) and the measurements of OLD_JSON",
    )
    args = ap.parse_args(argv)
    if args.resummarise:
        return resummarise(args)

    started = _dt.datetime.now(_dt.UTC)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sasp-rehearsal-"))
    work.mkdir(parents=True, exist_ok=True)
    served_root, project, logs = work / "served", work / "project", work / "logs"
    for d in (served_root, logs):
        d.mkdir(exist_ok=True)
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir()
    doc = yaml.safe_load(REGISTRY.read_text())

    entries = [("dataset", e) for e in doc["datasets"]]
    entries += [("ground truth", e) for e in doc.get("ground_truth") or []]
    entries += [("resource", e) for e in doc.get("resources") or []]
    if args.only:
        keep = set(args.only)

        def kept(kind: str, e: dict) -> bool:
            if kind == "resource" or e["id"] in keep:
                return True
            # core ground truth always (every build runs the validity step); core datasets unless --exact
            return e.get("profile") == "core" and (kind != "dataset" or not args.exact)

        entries = [(k, e) for k, e in entries if kept(k, e)]
    from sasp_atlas.sources import registry as _registry  # noqa: F401 - validates the package imports here

    records = {}
    collection = {}
    for kind, e in entries:
        rec = {
            "id": e["id"],
            "kind": kind,
            "profile": e.get("profile", "resource"),
            "loader": (e.get("loader") or {}).get("name"),
            "value_type": e.get("value_type"),
            "status": None,
        }
        if rec["loader"] in ("cellxgene", "cellxgene_census"):
            # the collection: the h5ad URL (whole-collection loader) or the Census dataset version
            url = e["files"][0]["url"] if e.get("files") else e["loader"]["options"]["dataset_version_id"]
            cand = {
                c["id"]: c
                for c in yaml.safe_load((SHARED / "data" / "remote_candidates.yaml").read_text())["candidates"]
            }
            collection[url] = cand.get(e.get("candidate"), {}).get("n_cells") or 0
            rec["collection_cells"] = collection[url]
            rec["subset_estimate"] = CXG_SUBSETS.get(e["id"])
        records[e["id"]] = rec

    pool = gene_pool(work)
    gen = Generator(served_root, args.scale, pool)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as progress:  # fmt: skip
        t_gen = time.perf_counter()
        served = generate(entries, gen, args.scale, records, progress)
        census_uri = served.pop("census_uri", None)
        gen_seconds = time.perf_counter() - t_gen

    server, cert, base = start_server(served_root, work)
    try:
        new_doc = rewrite_registry(yaml.safe_load(REGISTRY.read_text()), served, served_root, base)
        if args.only:
            new_doc["datasets"] = [d for d in new_doc["datasets"] if d["id"] in records]
            new_doc["ground_truth"] = [d for d in new_doc.get("ground_truth") or [] if d["id"] in records]
        reg = project / "data_registry.yaml"
        reg.write_text(yaml.safe_dump(new_doc, sort_keys=False, width=1 << 20, allow_unicode=True))
        cache = project / "cache"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SASP_ATLAS_")}
        env.update(
            SASP_ATLAS_REGISTRY=str(reg),
            SASP_ATLAS_CACHE=str(cache),
            REQUESTS_CA_BUNDLE=str(cert),
            COLUMNS="160",  # rich tables in the logs stay readable
            NO_PROXY=f"{HOST},127.0.0.1,localhost",
            no_proxy=f"{HOST},127.0.0.1,localhost",
            PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT / "src"), os.environ.get("PYTHONPATH")])),
        )
        if axe := axe_script():
            env["SASP_ATLAS_AXE"] = axe
        if census_uri:
            env["SASP_ATLAS_CENSUS_URI"] = census_uri
        cli = [sys.executable, "-m", "sasp_atlas.cli"]
        ids = [e["id"] for _, e in entries]
        steps = {}
        steps["pin"] = run_step(
            "pin", [*cli, "registry", "pin", "--all"], cwd=project, env=env, log_dir=logs, cache=cache, ids=ids
        )
        steps["build"] = run_step(
            "build", [*cli, "build", "--profile", "full", "--workers", str(args.workers)],
            cwd=project, env=env, log_dir=logs, cache=cache, ids=ids,
        )  # fmt: skip
        site = project / "_build" / "html"
        steps["check_site"] = run_step(
            "check_site", [*cli, "check-site", str(site)], cwd=project, env=env, log_dir=logs, cache=cache, ids=ids
        )
    finally:
        server.shutdown()

    (work / "measured.json").write_text(
        json.dumps({"started": started.isoformat(), "gen_seconds": gen_seconds, "records": records, "steps": steps})
    )
    out = summarise(args, started, gen_seconds, records, steps, project, served_root, entries)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
    print_summary(out)
    if not args.keep and not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _entries(doc: dict) -> list[tuple[str, dict]]:
    return (
        [("dataset", e) for e in doc["datasets"]]
        + [("ground truth", e) for e in doc.get("ground_truth") or []]
        + [("resource", e) for e in doc.get("resources") or []]
    )


def resummarise(args) -> int:
    """The JSON again from a kept work folder: its step logs, and wall/peak figures of ``measured.json`` (written
    by a run) or of an earlier JSON (``--resummarise OLD``: steps and per-dataset records)."""
    work = Path(args.work)
    old = json.loads(Path(args.resummarise).read_text())
    if "records" in old:  # measured.json
        started, gen_seconds, records, steps = (
            _dt.datetime.fromisoformat(old["started"]),
            old["gen_seconds"],
            old["records"],
            old["steps"],
        )
    else:
        started, gen_seconds = _dt.datetime.fromisoformat(old["date"]), old["generate_seconds"]
        keep = ("id", "kind", "profile", "loader", "value_type", "status", "reason", "collection_cells",
                "subset_estimate", "n_cells_written", "n_genes_written", "size_basis", "source", "generate_seconds",
                "download_bytes")  # fmt: skip
        records = {r["id"]: {k: r[k] for k in keep if k in r} for r in old["per_dataset"]}
        for r in records.values():
            if r.get("status") in ("built", "left out"):
                r["status"] = None
                r.pop("reason", None)
        peaks = {r["id"]: r["peak_rss_bytes"] for r in old["per_dataset"] if r.get("peak_rss_bytes")}
        steps = {}
        for name, st in old["steps"].items():
            steps[name] = {**st, "log": (work / "logs" / f"{name}.log").read_text(), "per_dataset_peak_rss": {}}
        steps["build"]["per_dataset_peak_rss"] = peaks
    doc = yaml.safe_load(REGISTRY.read_text())
    if args.recheck_site:
        steps["check_site"] = recheck_site(work, doc, {e["id"] for _, e in _entries(doc)})
    entries = [(k, e) for k, e in _entries(doc) if e["id"] in records or k == "resource"]
    for k, e in entries:
        records.setdefault(e["id"], {"id": e["id"], "kind": k, "profile": "resource", "status": None})
    out = summarise(args, started, gen_seconds, records, steps, work / "project", work / "served", entries)
    out["date"] = started.isoformat(timespec="seconds")
    Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
    print_summary(out)
    return 0


def recheck_site(work: Path, doc: dict, ids: set[str]) -> dict:
    """check-site on ``_build/html_real_urls``: the built site with each rehearsal data URL replaced by the
    registry's real URL of that file (the only difference to a site built from the real hosts)."""
    project = work / "project"
    served_doc = yaml.safe_load((project / "data_registry.yaml").read_text())
    real = {(e["id"], f["name"]): f["url"] for _, e in _entries(doc) for f in e.get("files", [])}
    mapping = {
        f["url"]: real[(e["id"], f["name"])]
        for _, e in _entries(served_doc)
        for f in e.get("files", [])
        if (e["id"], f["name"]) in real and f["url"] != real[(e["id"], f["name"])]
    }
    site = project / "_build" / "html_real_urls"
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(project / "_build" / "html", site)
    pattern = re.compile("|".join(re.escape(u) for u in sorted(mapping, key=len, reverse=True)))
    for page in site.rglob("*.html"):
        text = page.read_text()
        new = pattern.sub(lambda m: mapping[m.group(0)], text)
        if new != text:
            page.write_text(new)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SASP_ATLAS_")}
    env["PYTHONPATH"] = str(PROJECT / "src")
    env["COLUMNS"] = "160"
    if axe := axe_script():
        env["SASP_ATLAS_AXE"] = axe
    cmd = [sys.executable, "-m", "sasp_atlas.cli", "check-site", str(site)]
    step = run_step(
        "check_site", cmd, cwd=project, env=env, log_dir=work / "logs", cache=project / "cache", ids=list(ids)
    )
    step["note"] = (
        f"rerun on a copy of the site with {len(mapping)} rehearsal data URLs replaced by the registry's real URLs"
    )
    return step


# CELLxGENE subsets: cells each entry keeps (not published; estimates with their source)
CXG_SUBSETS = {
    "oliver2024_gut_crc_cxg": {
        "cells": None,
        "source": "not published per disease; the collection has 1,358,573 cells (remote_candidates.yaml)",
    },
    "oliver2024_gut_gastric_cxg": {
        "cells": None,
        "source": "not published per disease; the collection has 1,358,573 cells (remote_candidates.yaml)",
    },
    "sikkema2023_hlca_luad_cxg": {
        "cells": None,
        "source": "not published per disease; the HLCA collection has 2,282,447 cells (remote_candidates.yaml)",
    },
    "guimaraes2024_tme_liver_cxg": {
        "cells": None,
        "source": "not published per tissue; the TME atlas has 391,963 cells (registry notes)",
    },
    "guimaraes2024_tme_ovarian_cxg": {
        "cells": None,
        "source": "not published per tissue; the TME atlas has 391,963 cells (registry notes)",
    },
}
# bytes per cell of a CELLxGENE h5ad (raw.X + X, ~2,000 non-zeros per cell, float32 + int32 index, gzip): the
# rehearsal's own tiny files measure it; used only to say whether a whole collection fits a runner's disk
CXG_BYTES_PER_CELL_FLOOR = 2 * 2000 * 8 * 0.5


def _timings(log: str) -> dict[str, float]:
    out = {}
    for m in re.finditer(r"^\s*(\S+): +([\d.]+) s$", log, flags=re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def summarise(args, started, gen_seconds, records, steps, project, served_root, entries) -> dict:
    build_log = steps["build"]["log"]
    timings = _timings(build_log)
    html = project / "_build" / "html"
    pages = sorted(str(p.relative_to(html)) for p in html.rglob("*.html")) if html.exists() else []
    cache = project / "cache"
    check_log = steps["check_site"]["log"]
    n_ok = len(re.findall(r"^\s*ok ", check_log, flags=re.M))
    n_fail = len(re.findall(r"^\s*FAIL ", check_log, flags=re.M))
    pinned = yaml.safe_load((project / "data_registry.yaml").read_text())
    pinned_files = {e["id"]: e.get("files", []) for sec in ("datasets", "ground_truth") for e in pinned.get(sec) or []}
    peak_all = max(s["peak_rss_bytes"] for s in steps.values())
    per_peak = {}
    for s in steps.values():
        for k, v in s["per_dataset_peak_rss"].items():
            per_peak[k] = max(per_peak.get(k, 0), v)
    per = []
    for kind, e in entries:
        if kind == "resource":
            continue
        rec = records[e["id"]]
        page = html / "book" / "datasets" / f"{e['id']}.html"
        if kind == "dataset":
            built = page.exists()
        else:  # ground truth: read by the validity step (no page of its own)
            built = (cache / e["id"]).exists() and any((cache / e["id"]).glob("ground-truth-*.h5ad"))
        if rec["status"] is None:
            rec["status"] = "built" if built else "left out"
            if not built:
                rec["reason"] = _left_out_reason(build_log, e["id"])
        rec["page_seconds"] = timings.get(f"page:{e['id']}")
        rec["peak_rss_bytes"] = per_peak.get(e["id"])
        rec["cache_bytes"] = du(cache / e["id"])
        files = pinned_files.get(e["id"], [])
        rec["pinned_files"] = f"{sum(bool(f.get('sha256') and f.get('size')) for f in files)}/{len(files)}"
        dl = rec.get("download_bytes") or 0
        if rec["status"] == "not rehearsed":
            cells = rec.get("collection_cells") or 0
            rec["reason"] = NOT_REHEARSED.format(cells=cells, tiny=CXG_TINY_MAX)
            est = int(cells * CXG_BYTES_PER_CELL_FLOOR)
            rec["fits_github_runner"] = {
                "disk": est < RUNNER["disk_bytes"],
                "memory": None,
                "basis": f"ESTIMATE: {cells:,} cells x >= {CXG_BYTES_PER_CELL_FLOOR:,.0f} bytes per cell (raw.X + X, "
                "~2,000 non-zeros per cell, compressed) for the whole collection file; its memory is not measured",
                "download_bytes_estimate": est,
            }
        else:
            need = max(dl, 0) + rec["cache_bytes"]
            rss = rec["peak_rss_bytes"]
            rec["fits_github_runner"] = {
                "disk": need < RUNNER["disk_bytes"],
                "memory": None if rss is None else rss < RUNNER["memory_bytes"],
                "basis": "download + this entry's cache (converted h5ad) against 14 GB; peak RSS of the process "
                "that read it against 16 GB",
            }
        per.append(rec)
    datasets = [r for r in per if r["kind"] == "dataset" and r["profile"] == "full"]
    build_dir = du(project / "_build") - du(
        project / "_build" / "html_real_urls"
    )  # --recheck-site's copy: not the build's
    return {
        "scale": args.scale,
        "date": started.isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "machine": machine(),
        "runner_assumed": RUNNER,
        "datasets_total": len(datasets),
        "datasets_built": sum(r["status"] == "built" for r in datasets),
        "datasets_skipped_or_not_rehearsed": sum(r["status"] in ("skipped", "not rehearsed") for r in datasets),
        "core_datasets_built": sum(
            r["status"] == "built" for r in per if r["kind"] == "dataset" and r["profile"] == "core"
        ),
        "ground_truth_built": {r["id"]: r["status"] for r in per if r["kind"] == "ground truth"},
        "wall_seconds": round(sum(s["wall_seconds"] for s in steps.values()), 1),
        "generate_seconds": round(gen_seconds, 1),
        "peak_rss_bytes": peak_all,
        "disk_bytes": du(cache) + du(project / "results") + build_dir + du(project / "book"),
        "disk": {
            "downloads_and_cache_bytes": du(cache),
            "results_bytes": du(project / "results"),
            "book_bytes": du(project / "book"),
            "site_bytes": du(html),
            "build_folder_bytes": build_dir,
            "served_bytes": du(served_root),
        },
        "pages_rendered": len(pages),
        "check_site": {
            "exit_code": steps["check_site"]["exit_code"],
            "pages_ok": n_ok,
            "pages_failed": n_fail,
            "passed": steps["check_site"]["exit_code"] == 0 and n_fail == 0,
        },  # fmt: skip
        "steps": {
            k: {kk: vv for kk, vv in v.items() if kk not in ("log", "per_dataset_peak_rss")} for k, v in steps.items()
        },
        "build_timings_seconds": timings,
        "per_dataset": per,
        "notes": [
            "peak_rss_bytes: the whole process tree of the step (CLI, worker processes, notebook kernels, browser), "
            "sampled with psutil every 0.5 s. Per dataset: the largest RSS of one process of the tree while it had that "
            "dataset's cache files open (its page kernel; or the build's main process, during the pre-flight read and "
            "the Table 2/coverage step, which loads every dataset at once, so for the datasets loaded last that "
            "figure includes the ones loaded before: an upper bound for one dataset, a lower bound for the tree)",
            "disk_bytes: downloads + cache (<project>/cache) + results + book + _build, measured with du after the run",
            "files are served from a local HTTPS server: download time is local disk speed, not a network's",
        ],
    }


def _left_out_reason(log: str, dataset_id: str) -> str | None:
    """The build's own words: the row of ``dataset_id`` in its table of left-out datasets (cells joined)."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"^[│|]\s*{re.escape(dataset_id)}\s*[│|]", line):
            row = [line]
            for nxt in lines[i + 1 :]:
                if nxt.startswith(("├", "└", "+")) or not nxt.startswith(("│", "|")):
                    break
                row.append(nxt)
            columns = zip(*[[x.strip() for x in r.strip().strip("│|").split("│")] for r in row])
            cells = [" ".join(" ".join(col).split()) for col in columns]
            return " | ".join(c for c in cells if c)[:800]
    return None


def print_summary(out: dict) -> None:
    t = Table(title=f"full-profile rehearsal, scale {out['scale']}")
    for c in ("entry", "status", "cells", "genes", "download", "page s", "peak RSS", "fits runner"):
        t.add_column(c)
    gb = lambda b: "—" if not b else f"{b / 2**30:.2f} GiB" if b > 2**30 else f"{b / 2**20:.1f} MiB"  # noqa: E731
    for r in out["per_dataset"]:
        fit = r.get("fits_github_runner") or {}
        t.add_row(
            r["id"], str(r["status"]), str(r.get("n_cells_written", "—")), str(r.get("n_genes_written", "—")),
            gb(r.get("download_bytes")), str(r.get("page_seconds") or "—"), gb(r.get("peak_rss_bytes")),
            f"disk {fit.get('disk')}, mem {fit.get('memory')}",
        )  # fmt: skip
    console.print(t)
    console.print(
        f"built {out['datasets_built']}/{out['datasets_total']} full datasets; wall {out['wall_seconds']} s; peak RSS "
        f"{gb(out['peak_rss_bytes'])}; disk {gb(out['disk_bytes'])}; pages {out['pages_rendered']}; check-site "
        f"{'passed' if out['check_site']['passed'] else 'FAILED'}"
    )


if __name__ == "__main__":
    sys.exit(main())
