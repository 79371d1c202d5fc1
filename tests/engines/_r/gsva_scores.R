# The R side of tests/engines/test_gsva_r.py: Bioconductor GSVA scores of expression matrices.
#
# Usage: Rscript gsva_scores.R <dir> [<dir> ...]   (GSVA is loaded once: ~10 s)
# Each dir holds one job:
#   X.f64        genes x cells, float64 little-endian, column-major (one cell after another)
#   genes.txt    one gene name a line (rows);  cells.txt: one cell name a line (columns)
#   sets.tsv     one gene set a line: name<TAB>gene<TAB>gene...
#   methods.txt  one method a line: ssgsea | gsva | gsva_nomxdiff | gsva_absranking
# and receives, per method, <method>.f64 (sets x cells scores, column-major), <method>.sets.txt (the
# sets GSVA kept, in row order) and <method>.seconds (elapsed seconds of the gsva() call).
suppressPackageStartupMessages(library(GSVA))
cat("GSVA", as.character(packageVersion("GSVA")), "on", R.version.string, "\n")

params <- list(
  ssgsea = list(method = "ssgsea"),
  gsva = list(method = "gsva", kcdf = "Gaussian"),
  gsva_nomxdiff = list(method = "gsva", kcdf = "Gaussian", mx.diff = FALSE),
  gsva_absranking = list(method = "gsva", kcdf = "Gaussian", abs.ranking = TRUE))

for (d in commandArgs(trailingOnly = TRUE)) {
  genes <- readLines(file.path(d, "genes.txt"))
  cells <- readLines(file.path(d, "cells.txt"))
  con <- file(file.path(d, "X.f64"), "rb")
  x <- readBin(con, "double", n = length(genes) * length(cells), size = 8, endian = "little")
  close(con)
  X <- matrix(x, nrow = length(genes), ncol = length(cells), dimnames = list(genes, cells))
  lines <- strsplit(readLines(file.path(d, "sets.tsv")), "\t", fixed = TRUE)
  gsets <- lapply(lines, function(l) l[-1])
  names(gsets) <- vapply(lines, function(l) l[1], "")
  for (m in readLines(file.path(d, "methods.txt"))) {
    if (is.null(params[[m]])) stop("unknown method ", m)
    t0 <- proc.time()[["elapsed"]]
    # capture.output: GSVA 1.46's ssgsea prints progress whatever 'verbose' says
    invisible(capture.output(es <- suppressWarnings(
      do.call(gsva, c(list(expr = X, gset.idx.list = gsets, verbose = FALSE), params[[m]])))))
    secs <- proc.time()[["elapsed"]] - t0
    es <- as.matrix(es)
    con <- file(file.path(d, paste0(m, ".f64")), "wb")
    writeBin(as.double(es), con, size = 8, endian = "little")
    close(con)
    writeLines(rownames(es), file.path(d, paste0(m, ".sets.txt")))
    writeLines(format(secs, digits = 6), file.path(d, paste0(m, ".seconds")))
    cat(basename(d), m, nrow(X), "genes x", ncol(X), "cells:", secs, "s\n")
  }
}
