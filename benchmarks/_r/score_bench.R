# The R references of benchmarks/score_bench.py: one method, timed inside this (fresh) R process.
#
# Usage: Rscript score_bench.R <method> <matrix_dir> <n_cells> <warmup_cells> <repeats> <signatures.tsv>
#   method: seurat   Seurat AddModuleScore (defaults: nbin = 24, ctrl = 100, seed = 1), all signatures in one
#                    call, on a Seurat object whose `data` slot is the matrix
#           ssgsea   GSVA gsva(expr, gsets, method = "ssgsea") (defaults: tau = 0.25, ssgsea.norm = TRUE) on the
#                    dense genes x cells matrix (as.matrix, not timed: GSVA's documented input, the one
#                    tests/engines/test_gsva_r.py checks the engine against)
#   matrix_dir: the benchmark's .npy cache (indptr.npy int64, indices.npy int32, data.npy float32, names.npy is not
#     read: genes are G00000..; the cells x genes CSR arrays are the genes x cells dgCMatrix), plus genes.txt.
#     Only the first <n_cells> cells are read.
# Protocol (as the Python workers): build the inputs (not timed), one warm-up call on the first <warmup_cells>
# cells, then <repeats> timed calls of the scoring function alone (proc.time elapsed). Peak extra memory: VmHWM
# of this process after the timed calls (reset through /proc/self/clear_refs before them) minus VmRSS before.
# Prints one JSON line on stdout. Exit status 3 with a message when a package is missing.
args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 6) stop("usage: Rscript score_bench.R <seurat|ssgsea> <matrix_dir> <n_cells> <warmup_cells> <repeats> <signatures.tsv>")
method <- args[[1]]
dir <- args[[2]]
n_cells <- as.integer(args[[3]])
warmup_cells <- as.integer(args[[4]])
repeats <- as.integer(args[[5]])
sig_file <- args[[6]]

need <- switch(method, seurat = c("Matrix", "Seurat"), ssgsea = c("Matrix", "GSVA"), stop("unknown method ", method))
for (p in need) {
  if (!requireNamespace(p, quietly = TRUE)) {
    message("R package ", p, " is not installed (Debian: apt-get install r-cran-seurat / r-bioc-gsva)")
    quit(status = 3)
  }
}
suppressPackageStartupMessages(library(Matrix))

npy_read <- function(name, what, size, n) {
  con <- file(file.path(dir, name), "rb")
  on.exit(close(con))
  magic <- readBin(con, "raw", n = 10)  # \x93NUMPY, version (2 bytes), header length (2 bytes, v1)
  if (magic[7] != as.raw(1)) stop(name, ": only .npy format version 1 is read here")
  header_len <- as.integer(magic[9]) + 256L * as.integer(magic[10])
  invisible(readBin(con, "raw", n = header_len))
  readBin(con, what, n = n, size = size, endian = "little")
}

genes <- readLines(file.path(dir, "genes.txt"))
p <- npy_read("indptr.npy", "integer", 8, n_cells + 1)  # int64 read as int: checked below
nnz <- p[[n_cells + 1]]
if (is.na(nnz) || nnz < 0 || nnz >= 2^31 - 1) stop("more than 2^31 - 1 stored values: not readable as a dgCMatrix")
X <- new("dgCMatrix", i = npy_read("indices.npy", "integer", 4, nnz), p = p,
         x = npy_read("data.npy", "double", 4, nnz), Dim = c(length(genes), n_cells),
         Dimnames = list(genes, sprintf("c%d", seq_len(n_cells) - 1L)))
rm(p)
lines <- strsplit(readLines(sig_file), "\t", fixed = TRUE)
gsets <- lapply(lines, function(l) l[-1])
names(gsets) <- vapply(lines, function(l) l[1], "")

if (method == "seurat") {
  suppressPackageStartupMessages(library(Seurat))
  make <- function(M) {
    obj <- suppressWarnings(CreateSeuratObject(counts = M))
    SetAssayData(obj, slot = "data", new.data = M)
  }
  run <- function(obj) AddModuleScore(obj, features = unname(gsets), name = "S")
  full <- make(X)
  small <- make(X[, seq_len(min(warmup_cells, n_cells)), drop = FALSE])
} else {
  suppressPackageStartupMessages(library(GSVA))
  # capture.output: GSVA 1.46's ssgsea prints progress whatever 'verbose' says
  run <- function(expr) invisible(capture.output(r <- suppressWarnings(
    gsva(expr, gsets, method = "ssgsea", verbose = FALSE))))
  full <- as.matrix(X)
  small <- full[, seq_len(min(warmup_cells, n_cells)), drop = FALSE]
}
rm(X)
invisible(gc())
version <- paste0(R.version.string, "; ", paste(need[-1], packageVersion(need[[2]])))

t0 <- proc.time()[["elapsed"]]
invisible(run(small))
warmup <- proc.time()[["elapsed"]] - t0
rm(small)
invisible(gc())

status <- function(key) {
  line <- grep(paste0("^", key, ":"), readLines("/proc/self/status"), value = TRUE)
  as.numeric(strsplit(trimws(sub(paste0(key, ":"), "", line)), "[[:space:]]+")[[1]][[1]]) / 1024
}
writeLines("5", "/proc/self/clear_refs")
before <- status("VmRSS")
times <- numeric(0)
for (k in seq_len(repeats)) {
  t0 <- proc.time()[["elapsed"]]
  res <- run(full)
  times <- c(times, proc.time()[["elapsed"]] - t0)
  rm(res)
}
extra <- status("VmHWM") - before
cat(sprintf('{"seconds": %.6f, "min_seconds": %.6f, "runs": [%s], "warmup_seconds": %.6f, "peak_extra_mib": %.3f, "repeats": %d, "cells": %d, "version": "%s"}\n',
            median(times), min(times), paste(sprintf("%.6f", times), collapse = ", "), warmup, extra, repeats,
            n_cells, version))
