# The R side of tests/engines/test_seurat_r.py: Seurat's AddModuleScore on a matrix written by the test.
#
# Usage: Rscript seurat_addmodulescore.R <in_dir> <out_dir>
#
# <in_dir> holds a genes x cells dgCMatrix as raw little-endian arrays (the cells x genes CSR arrays of an
# AnnData are the same numbers): i.bin (int32 row indices, 0-based), p.bin (int32 column pointers), x.bin
# (float64 values: the log-normalised expression, used as Seurat's `data` slot), genes.txt and cells.txt
# (one name a line), signatures.tsv (name <TAB> comma-separated genes, one signature a line) and
# seeds.txt (one seed a line).
#
# <out_dir> receives scores.bin (float64, cells x columns, column-major), columns.txt (the column names:
# "<signature>|seed=<seed>" for AddModuleScore called on that signature alone, "<signature>|joint|seed=<seed>"
# for one call with every signature in the file order), gene_means.bin (Matrix::rowMeans of the data, as
# AddModuleScore computes them) and versions.txt.
suppressPackageStartupMessages({
  library(Matrix)
  library(Seurat)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 2) stop("usage: Rscript seurat_addmodulescore.R <in_dir> <out_dir>")
in_dir <- args[[1]]
out_dir <- args[[2]]

read_lines <- function(name) readLines(file.path(in_dir, name), warn = FALSE)
read_raw <- function(name, what, size) {
  path <- file.path(in_dir, name)
  readBin(path, what = what, n = file.size(path) / size, size = size, endian = "little")
}

genes <- read_lines("genes.txt")
cells <- read_lines("cells.txt")
data <- new("dgCMatrix", i = read_raw("i.bin", "integer", 4), p = read_raw("p.bin", "integer", 4),
            x = read_raw("x.bin", "double", 8), Dim = c(length(genes), length(cells)),
            Dimnames = list(genes, cells))
validObject(data)

obj <- suppressWarnings(CreateSeuratObject(counts = data))
if (!identical(rownames(obj), genes)) stop("Seurat renamed or dropped genes; the comparison needs the same names")
if (!identical(colnames(obj), cells)) stop("Seurat renamed or dropped cells")
obj <- SetAssayData(obj, slot = "data", new.data = data)

sig_lines <- read_lines("signatures.tsv")
signatures <- lapply(strsplit(sig_lines, "\t", fixed = TRUE), function(f) strsplit(f[[2]], ",", fixed = TRUE)[[1]])
names(signatures) <- vapply(strsplit(sig_lines, "\t", fixed = TRUE), function(f) f[[1]], "")
seeds <- as.integer(read_lines("seeds.txt"))

scores <- list()
for (seed in seeds) {
  for (name in names(signatures)) {
    scored <- AddModuleScore(obj, features = list(signatures[[name]]), seed = seed, name = "S")
    scores[[sprintf("%s|seed=%d", name, seed)]] <- scored@meta.data[["S1"]]
  }
  scored <- AddModuleScore(obj, features = unname(signatures), seed = seed, name = "J")
  for (k in seq_along(signatures)) {
    scores[[sprintf("%s|joint|seed=%d", names(signatures)[[k]], seed)]] <- scored@meta.data[[paste0("J", k)]]
  }
}

dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
writeBin(unlist(scores, use.names = FALSE), file.path(out_dir, "scores.bin"), size = 8, endian = "little")
writeLines(names(scores), file.path(out_dir, "columns.txt"))
writeBin(Matrix::rowMeans(GetAssayData(obj, slot = "data")), file.path(out_dir, "gene_means.bin"), size = 8,
         endian = "little")
writeLines(c(R.version.string, paste("Seurat", packageVersion("Seurat")), paste("Matrix", packageVersion("Matrix")),
             paste("ggplot2", packageVersion("ggplot2"))), file.path(out_dir, "versions.txt"))
