"""The ``seurat`` engine equals Seurat's ``AddModuleScore``, checked against R itself.

* The port of R's random number generator (:class:`sasp_atlas.engines._seurat.RRandom`), R's
  ``qnorm``, ``quantile`` and ``ggplot2::cut_number`` against literal values printed by R 4.2.2 (the R
  command beside each): these run without R.
* A tiny matrix scored by ``AddModuleScore`` (Seurat 4.3.0) in R, its scores recorded literally.
* The Wu 2021 breast cancer data (all cells and genes): ``tests/engines/_r/seurat_addmodulescore.R``
  runs ``AddModuleScore`` through ``Rscript`` for SenMayo, Fridman up and Reactome SASP, each alone
  and all three in one call, with seeds 1 and 7; the engine (through ``sasp_atlas.score``) equals it
  to 1e-6 (it is ~1e-16). Skipped, saying why, where ``Rscript`` or Seurat is missing.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import sasp_atlas
from sasp_atlas import get_signature
from sasp_atlas.engines._driver import MatrixContext
from sasp_atlas.engines._seurat import (
    RRandom,
    cut_number,
    r_qnorm,
    r_quantile7,
    r_seq_unit,
    seurat_control_genes,
)
from sasp_atlas.genes import match_gene_sets

R_SCRIPT = Path(__file__).resolve().parent / "_r" / "seurat_addmodulescore.R"
SIGS = ["senmayo", "fridman_senescence_up", "reactome_sasp"]
SEEDS = [1, 7]
TOL = 1e-6


# --------------------------------------------------------------------------- R's generator, without R
def test_runif_equals_r():
    # set.seed(1); sprintf("%.17g", runif(5))
    np.testing.assert_array_equal(
        RRandom(1).runif(5),
        [0.26550866314209998, 0.37212389963679016, 0.57285336335189641, 0.90820778999477625, 0.2016819310374558],
    )
    # set.seed(-5); runif(3)  (a negative seed is its two's complement)
    np.testing.assert_array_equal(RRandom(-5).runif(3), [0.73459476791322231, 0.33969277143478394, 0.1910452856682241])
    # set.seed(2147483647); runif(2)
    np.testing.assert_array_equal(RRandom(2147483647).runif(2), [0.68966742674820125, 0.98787517822347581])


def test_long_runif_stream_equals_r():
    """Across the regenerations of the 624-word state: set.seed(1); x <- runif(1e6); x[c(624, 625, 1248, 1249, 1e6)]."""
    x = RRandom(1).runif(10**6)
    np.testing.assert_array_equal(
        x[[623, 624, 1247, 1248, 10**6 - 1]],
        [0.13648758619092405, 0.32486514048650861, 0.79259536415338516, 0.75477719283662736, 0.60769933392293751],
    )


def test_rnorm_equals_r():
    # set.seed(1); rnorm(5)
    np.testing.assert_array_equal(
        RRandom(1).rnorm(5),
        [-0.62645381074233242, 0.18364332422208224, -0.83562861241004716, 1.5952808021377916, 0.32950777181536051],
    )
    # set.seed(1); y <- rnorm(1e5); y[c(1e5 - 1, 1e5)]
    np.testing.assert_array_equal(RRandom(1).rnorm(10**5)[-2:], [0.85090445568151818, 0.71181993911908892])


def test_qnorm_equals_r():
    # qnorm(c(1e-300, 1e-20, 1e-12, 1e-5, 0.01, 0.5, 0.9, 1 - 1e-9))
    p = np.array([1e-300, 1e-20, 1e-12, 1e-5, 0.01, 0.5, 0.9, 1 - 1e-9])
    np.testing.assert_array_equal(
        r_qnorm(p),
        [
            -37.047096299361201,
            -9.2623400897984052,
            -7.0344838253011321,
            -4.2648907939228256,
            -2.3263478740408408,
            0,
            1.2815515655446008,
            5.9978070196016384,
        ],
    )


@pytest.mark.parametrize(
    "seed, n, size, expected",
    [
        (1, 1000, 10, [836, 679, 129, 930, 509, 471, 299, 270, 978, 187]),  # set.seed(1); sample(1000, 10)
        (42, 10, 10, [1, 5, 10, 8, 2, 4, 6, 9, 7, 3]),  # set.seed(42); sample(10)
        (123, 70000, 5, [51663, 57870, 2986, 29925, 68293]),  # set.seed(123); sample(70000, 5): 17 bits, two draws each
        (2024, 65536, 3, [21029, 45756, 45969]),  # set.seed(2024); sample(65536, 3): exactly 16 bits
    ],
)
def test_sample_equals_r(seed, n, size, expected):
    np.testing.assert_array_equal(RRandom(seed).sample(n, size) + 1, expected)


def test_sample_stream_equals_r():
    # set.seed(2024); sample(65536, 3); sample(2, 2); runif(1)  -> the draws consumed are R's
    rng = RRandom(2024)
    rng.sample(65536, 3)
    np.testing.assert_array_equal(rng.sample(2, 2) + 1, [1, 2])
    np.testing.assert_array_equal(rng.runif(1), [0.87658807029947639])
    # a bin-sized draw as AddModuleScore makes: set.seed(1); s <- sample(1239, 100); head(s, 8); tail(s, 4); sum(s)
    s = RRandom(1).sample(1239, 100) + 1
    assert list(s[:8]) == [1017, 679, 129, 930, 471, 299, 270, 1211]
    assert list(s[-4:]) == [327, 355, 812, 1073] and s.sum() == 64956


def test_seq_quantile_and_cut_number_equal_r():
    # seq(0, 1, length.out = 25)
    np.testing.assert_array_equal(
        r_seq_unit(25)[[1, 5, 7, 23]],
        [0.041666666666666664, 0.20833333333333331, 0.29166666666666663, 0.95833333333333326],
    )
    # x <- c(0, 0, 0, 0.5, 0.5, 1, 2, 2, 3, 7, 7, 7, 7, 10); quantile(x, seq(0, 1, length.out = 25))
    x = np.array([0, 0, 0, 0.5, 0.5, 1, 2, 2, 3, 7, 7, 7, 7, 10])
    np.testing.assert_array_equal(
        r_quantile7(x[::-1], r_seq_unit(25)),
        [
            0,
            0,
            0,
            0,
            0.083333333333333259,
            0.35416666666666652,
            0.5,
            0.5,
            0.66666666666666652,
            0.9375,
            1.4166666666666661,
            1.958333333333333,
            2,
            2.0416666666666661,
            2.5833333333333321,
            3.5,
            5.6666666666666643,
            7,
            7,
            7,
            7,
            7,
            7,
            8.3749999999999964,
            10,
        ],
    )
    # set.seed(9); y <- round(rexp(40), 1); ggplot2::cut_number(y, 5, labels = FALSE, right = FALSE)
    y = np.array(
        [
            1.4,
            1.5,
            1.3,
            1.2,
            0.3,
            0,
            0.9,
            1,
            1.1,
            0.7,
            2.4,
            1.3,
            1.2,
            0.1,
            0.7,
            0.6,
            1.9,
            0.4,
            0.1,
            1.8,
            1.3,
            2,
            0.6,
            0.4,
            1.8,
            0.2,
            0.2,
            0.3,
            0.5,
            0.3,
            1.5,
            1.8,
            1,
            1.2,
            2.2,
            0.2,
            1,
            0,
            0.6,
            1.6,
        ]
    )
    codes, unique_breaks = cut_number(y, 5)
    assert unique_breaks
    assert list(codes) == [
        4,
        4,
        4,
        4,
        2,
        1,
        3,
        3,
        3,
        3,
        5,
        4,
        4,
        1,
        3,
        2,
        5,
        2,
        1,
        5,
        4,
        5,
        2,
        2,
        5,
        1,
        1,
        2,
        2,
        2,
        4,
        5,
        3,
        4,
        5,
        1,
        3,
        1,
        2,
        5,
    ]


# --------------------------------------------------------------------------- a tiny AddModuleScore, without R
def _tiny() -> ad.AnnData:
    g, c = np.arange(1, 61), np.arange(1, 9)
    m = ((g[:, None] ** 2 + 3 * c[None, :] * g[:, None]) % 17) / 4.0
    m[[4, 16, 32, 49]] = 0.0  # genes G5, G17, G33, G50: all zero, ordered by the rnorm jitter
    return ad.AnnData(
        sp.csr_matrix(m.T.astype(np.float32)),
        obs=pd.DataFrame(index=[f"C{i}" for i in c]),
        var=pd.DataFrame(index=[f"G{i}" for i in g]),
    )


# g <- 1:60; cc <- 1:8; m <- outer(g, cc, function(g, c) ((g * g + 3 * c * g) %% 17) / 4); m[c(5, 17, 33, 50), ] <- 0
# dimnames(m) <- list(paste0("G", g), paste0("C", cc)); d <- as(m, "dgCMatrix")
# obj <- CreateSeuratObject(counts = d); obj <- SetAssayData(obj, slot = "data", new.data = d)
# AddModuleScore(obj, features = list(c("G3", "G10", "G25", "G40", "G41", "G5")), nbin = 4, ctrl = 5, seed = seed)$Cluster1
TINY_GENES = ["G3", "G10", "G25", "G40", "G41", "G5"]
TINY_R = {
    1: [
        -0.036231884057970953,
        -0.0126811594202898,
        -0.48188405797101452,
        0.43478260869565211,
        -0.034420289855072284,
        0.20471014492753636,
        -0.11050724637681153,
        -0.056159420289854989,
    ],
    7: [
        -0.047101449275362306,
        0.15036231884057982,
        -0.32971014492753625,
        0.57608695652173902,
        -0.45833333333333326,
        -0.045289855072463636,
        -0.0018115942028984477,
        -0.14311594202898537,
    ],
}


@pytest.mark.parametrize("seed", sorted(TINY_R))
def test_tiny_matrix_equals_addmodulescore(seed):
    a = _tiny()
    sasp_atlas.score(a, {"tiny": TINY_GENES}, method="seurat", random_state=seed, nbin=4, ctrl=5)
    np.testing.assert_allclose(a.obsm["sasp_scores"]["tiny"].to_numpy(), TINY_R[seed], rtol=0, atol=1e-12)
    assert a.uns["sasp_scores"]["params"]["seed"] == seed


def test_outside_seurats_domain_warns_and_scores(caplog):
    """A bin smaller than ``ctrl`` stops Seurat; the engine logs it, takes the whole bin and scores."""
    a = _tiny()
    with caplog.at_level(logging.WARNING, logger="sasp_atlas.engines._seurat"):
        sasp_atlas.score(a, {"tiny": TINY_GENES}, method="seurat", random_state=1)  # ctrl = 100 > 15 genes a bin
    assert "fewer than ctrl=100 genes" in caplog.text
    assert np.isfinite(a.obsm["sasp_scores"]["tiny"]).all()


def test_seed_none_is_recorded_and_reproducible():
    a = _tiny()
    sasp_atlas.score(a, {"tiny": TINY_GENES}, method="seurat", random_state=None, nbin=4, ctrl=5)
    seed = a.uns["sasp_scores"]["params"]["seed"]
    b = sasp_atlas.score(a, {"tiny": TINY_GENES}, method="seurat", random_state=seed, nbin=4, ctrl=5, copy=True)
    pd.testing.assert_frame_equal(a.obsm["sasp_scores"], b.obsm["sasp_scores"])


# --------------------------------------------------------------------------- the Wu data, against R
def _r_with_seurat() -> str | None:
    """Why R cannot be used here, or None."""
    if shutil.which("Rscript") is None:
        return "Rscript with Seurat not installed: apt-get install r-cran-seurat"
    proc = subprocess.run(
        ["Rscript", "-e", 'quit(status = !requireNamespace("Seurat", quietly = TRUE))'],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        return "Rscript with Seurat not installed: apt-get install r-cran-seurat"
    return None


@pytest.fixture(scope="module")
def r_scores(request, tmp_path_factory) -> dict:
    """``AddModuleScore`` in R on the whole Wu matrix: ``{"adata", "scores" (cells x "<signature>|seed=<s>",
    "<signature>|joint|seed=<s>"), "means" (R's gene averages), "signatures" (the genes given to R)}``."""
    reason = _r_with_seurat()
    if reason:
        pytest.skip(reason)
    wu = request.getfixturevalue("wu")  # only once R is known to be there
    work = tmp_path_factory.mktemp("seurat_r")
    src, out = work / "in", work / "out"
    src.mkdir()
    X = wu.X
    assert sp.issparse(X) and X.format == "csr"
    # cells x genes CSR == genes x cells dgCMatrix: the same three arrays
    X.indices.astype("<i4").tofile(src / "i.bin")
    X.indptr.astype("<i4").tofile(src / "p.bin")
    X.data.astype("<f8").tofile(src / "x.bin")
    (src / "genes.txt").write_text("\n".join(map(str, wu.var_names)) + "\n")
    (src / "cells.txt").write_text("\n".join(map(str, wu.obs_names)) + "\n")
    signatures = {
        gs.name: list(gs.used)
        for gs in match_gene_sets({s: get_signature(s) for s in SIGS}, pd.Index(wu.var_names.astype(str)))
    }
    (src / "signatures.tsv").write_text("".join(f"{name}\t{','.join(genes)}\n" for name, genes in signatures.items()))
    (src / "seeds.txt").write_text("".join(f"{s}\n" for s in SEEDS))
    started = time.perf_counter()
    proc = subprocess.run(
        ["Rscript", str(R_SCRIPT), str(src), str(out)], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"Rscript {R_SCRIPT.name}: {time.perf_counter() - started:.1f} s")
    columns = (out / "columns.txt").read_text().splitlines()
    values = np.fromfile(out / "scores.bin", dtype="<f8").reshape(len(columns), wu.n_obs).T
    means = np.fromfile(out / "gene_means.bin", dtype="<f8")
    return {
        "adata": wu,
        "scores": pd.DataFrame(values, index=wu.obs_names, columns=columns),
        "means": means,
        "signatures": signatures,
    }


@pytest.mark.slow
def test_gene_averages_equal_r_rowmeans(r_scores):
    """Bit for bit: the bins (and so the control draws) hang on these averages."""
    np.testing.assert_array_equal(MatrixContext(r_scores["adata"].X).seurat_gene_averages, r_scores["means"])


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_equals_addmodulescore_on_wu(r_scores, seed):
    """Each signature alone, through the public API: ``AddModuleScore(obj, list(genes), seed = seed)``."""
    ref = r_scores["scores"]
    a = r_scores["adata"].copy()
    sasp_atlas.score(a, SIGS, method="seurat", random_state=seed)
    assert a.uns["sasp_scores"]["method"] == "seurat"
    for name in SIGS:
        r = ref[f"{name}|seed={seed}"].to_numpy()
        got = a.obsm["sasp_scores"][name].to_numpy()
        diff = np.max(np.abs(got - r))
        print(f"seurat vs R AddModuleScore, {name}, seed={seed}: max |diff| = {diff:.3g}")
        assert diff <= TOL, f"{name}, seed {seed}: max |score - Seurat| = {diff:.3g}"
        assert np.std(r) > 0
        assert a.uns["sasp_scores"]["signatures"][name]["n_control_genes"] > 100


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_joint_call_equals_addmodulescore_on_wu(r_scores, seed):
    """One call with all three lists (one random stream through them): :func:`seurat_control_genes`."""
    wu, ref, signatures = r_scores["adata"], r_scores["scores"], r_scores["signatures"]
    X = wu.X.astype(np.float64)
    pos = pd.Index(wu.var_names.astype(str))
    sets = [pos.get_indexer(genes) for genes in signatures.values()]
    controls = seurat_control_genes(MatrixContext(wu.X).seurat_gene_averages, sets, seed=seed)
    for name, sig, ctrl in zip(signatures, sets, controls, strict=True):
        got = np.asarray(X[:, sig].mean(axis=1)).ravel() - np.asarray(X[:, ctrl].mean(axis=1)).ravel()
        diff = np.max(np.abs(got - ref[f"{name}|joint|seed={seed}"].to_numpy()))
        assert diff <= TOL, f"{name}, joint call, seed {seed}: max |score - Seurat| = {diff:.3g}"
