"""Write ``tests/_data/toy.h5ad``: a small, synthetic, deterministic single-cell dataset with a known answer.

Run from anywhere: ``python tests/make_toy.py`` (the repository's ``../shared`` reference folder is needed
once, for the HGNC table behind :func:`sasp_atlas.genes.get_signature`; the written file is committed and
the tests read it without ``../shared``).

What it contains (every number drawn from ``numpy.random.default_rng(SEED)``, so each run gives the same values):

* 300 cells x 800 genes; ``X`` raw integer UMI-like counts (negative binomial), float32 CSR;
* ``var_names``: approved HGNC symbols: every gene of the atlas's default signatures
  (:data:`sasp_atlas.atlas.DEFAULT_SIGNATURES`, so scoring has full coverage), a few real cell-type
  markers and filler symbols drawn from the HGNC table outside every default signature;
  ``var["senmayo"]`` marks the SenMayo genes (the known-answer set, usable without the HGNC table) and
  ``var["marker_of"]`` the cell type whose marker a gene is ("" for none);
* ``obs``: ``annotation`` (Fibroblast, T cell, Macrophage, Epithelial), ``patient`` (P1-P3, each with every
  cell type), ``malignant`` (bool; two thirds of the Epithelial cells);
* the known answers: each cell type expresses its markers ``MARKER_FOLD`` times higher; Fibroblast cells express the SenMayo genes ``SENMAYO_FOLD`` times higher than other cells,
  so the SenMayo score ranks Fibroblast first under every engine (AUROC vs other cells close to 1).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

TESTS_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = TESTS_DIR.parent
OUT = TESTS_DIR / "_data" / "toy.h5ad"

SEED = 20240917
N_GENES = 800
CELL_TYPES = ("Fibroblast", "T cell", "Macrophage", "Epithelial")
PATIENTS = ("P1", "P2", "P3")
#: cells per (patient, cell type): 3 x (20 + 30 + 20 + 30) = 300 cells
CELLS_PER_TYPE = {"Fibroblast": 20, "T cell": 30, "Macrophage": 20, "Epithelial": 30}
#: fraction of each patient's Epithelial cells flagged malignant
MALIGNANT_FRACTION = 2 / 3
#: fold change of every SenMayo gene in Fibroblast cells
SENMAYO_FOLD = 4.0
#: fold change of a cell type's marker genes in that cell type
MARKER_FOLD = 8.0
#: negative-binomial size (inverse dispersion); variance = mu + mu^2 / NB_SIZE
NB_SIZE = 2.0
#: real markers (used only if in no default signature; otherwise they are signature genes anyway)
MARKERS = {
    "Fibroblast": ["COL1A1", "COL1A2", "COL3A1", "DCN", "LUM", "PDGFRA", "FBLN1"],
    "T cell": ["CD3D", "CD3E", "CD2", "IL7R", "TRAC", "CD247", "LCK"],
    "Macrophage": ["CD68", "CD163", "LYZ", "C1QA", "C1QB", "AIF1", "MS4A7"],
    "Epithelial": ["EPCAM", "KRT8", "KRT18", "KRT19", "CDH1", "CLDN4", "ELF3"],
}
#: HGNC symbol families that are not plausible protein-coding filler genes
_NOT_FILLER = re.compile(
    r"^(LINC|LOC|MIR|SNOR|SCAR|RNU|RNA|RNY|TRNA|TR[ABDGV][VJDC]|IG[HKL][VJDC]|OR\d|MT|HLA|"
    r"ZNF|FAM|KIAA|PRAME|TBC1D3|USP17|NBPF|GOLGA|LCE|KRTAP|DEFB|SPANX|CT4|XAGE|GAGE|MAGE)"
)


#: symbols ending like pseudogenes (ABCB10P3, AHCYP2); this also drops a few real genes (RAMP2): filler only
_PSEUDOGENE = re.compile(r"P[0-9]+$")


def _environment() -> tempfile.TemporaryDirectory | None:
    """Point the package at ``../shared/data`` (like tests/conftest.py) unless the caller set a mirror;
    use a throw-away cache unless one is set (the user's cache is left alone)."""
    os.environ.setdefault("SASP_ATLAS_MIRROR", str(PROJECT_ROOT.parent / "shared" / "data"))
    if "SASP_ATLAS_CACHE" in os.environ:
        return None
    tmp = tempfile.TemporaryDirectory(prefix="sasp_toy_cache_")
    os.environ["SASP_ATLAS_CACHE"] = tmp.name
    return tmp


def genes() -> tuple[list[str], list[str], dict[str, list[str]], np.random.Generator]:
    """(all genes sorted, SenMayo genes, markers per cell type, the generator after the filler draw)."""
    from sasp_atlas.atlas import DEFAULT_SIGNATURES
    from sasp_atlas.genes import SignatureResolutionWarning, get_signature, hgnc_table

    rng = np.random.default_rng(SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SignatureResolutionWarning)
        sigs = {s: get_signature(s) for s in DEFAULT_SIGNATURES}
    in_sigs = set().union(*map(set, sigs.values()))
    table = hgnc_table()
    approved = sorted(set(table.loc[table["symbol"] == table["approved"], "approved"]))
    markers = {ct: [g for g in gs if g not in in_sigs] for ct, gs in MARKERS.items()}
    missing = [g for gs in markers.values() for g in gs if g not in set(approved)]
    if missing:
        raise SystemExit(f"marker genes not approved HGNC symbols: {missing}")
    fixed = sorted(in_sigs | {g for gs in markers.values() for g in gs})
    if len(fixed) >= N_GENES:
        raise SystemExit(f"{len(fixed)} signature and marker genes leave no room for filler in {N_GENES} genes")
    pool = [
        g
        for g in approved
        if re.fullmatch(r"[A-Z][A-Z0-9]{1,7}", g)
        and not _NOT_FILLER.match(g)
        and not _PSEUDOGENE.search(g)
        and g not in set(fixed)
    ]
    filler = rng.choice(np.array(pool, dtype=object), size=N_GENES - len(fixed), replace=False)
    return sorted(fixed + [str(g) for g in filler]), list(sigs["senmayo"]), markers, rng


def make(out: Path = OUT) -> ad.AnnData:
    gene_names, senmayo, markers, rng = genes()
    col = {g: j for j, g in enumerate(gene_names)}

    # cells: patient-major, then cell type, in a fixed order
    ann, pat, mal = [], [], []
    for p in PATIENTS:
        for ct in CELL_TYPES:
            n = CELLS_PER_TYPE[ct]
            ann += [ct] * n
            pat += [p] * n
            n_mal = round(n * MALIGNANT_FRACTION) if ct == "Epithelial" else 0
            mal += [True] * n_mal + [False] * (n - n_mal)
    ann, pat, mal = np.array(ann), np.array(pat), np.array(mal)
    n_cells = len(ann)

    # expected counts: gene baseline x cell-type effects x patient effect x library size
    base = np.exp(rng.normal(-1.2, 1.1, size=N_GENES))  # mean UMIs per gene
    type_fold = np.ones((len(CELL_TYPES), N_GENES))
    for i, ct in enumerate(CELL_TYPES):
        type_fold[i] *= np.exp(rng.normal(0.0, 0.25, size=N_GENES))  # mild cell-type background
        type_fold[i, [col[g] for g in markers[ct]]] *= MARKER_FOLD
    type_fold[CELL_TYPES.index("Fibroblast"), [col[g] for g in senmayo]] *= SENMAYO_FOLD
    patient_fold = np.exp(rng.normal(0.0, 0.1, size=(len(PATIENTS), N_GENES)))
    library = np.exp(rng.normal(0.0, 0.3, size=n_cells))
    ti = np.array([CELL_TYPES.index(c) for c in ann])
    pi = np.array([PATIENTS.index(p) for p in pat])
    mu = base[None, :] * type_fold[ti] * patient_fold[pi] * library[:, None]
    counts = rng.negative_binomial(NB_SIZE, NB_SIZE / (NB_SIZE + mu))
    X = sp.csr_matrix(counts.astype(np.float32))

    obs = pd.DataFrame(
        {
            "annotation": pd.Categorical(ann, categories=list(CELL_TYPES)),
            "patient": pd.Categorical(pat, categories=list(PATIENTS)),
            "malignant": mal,
        },
        index=pd.Index([f"cell{i:03d}" for i in range(n_cells)], name="cell"),
    )
    marker_of = {g: ct for ct, gs in markers.items() for g in gs}
    var = pd.DataFrame(
        {"senmayo": [g in set(senmayo) for g in gene_names], "marker_of": [marker_of.get(g, "") for g in gene_names]},
        index=pd.Index(gene_names, name="gene_symbol"),
    )
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.uns["toy"] = {
        "synthetic": "yes: simulated counts, not measured data",
        "made_by": "tests/make_toy.py",
        "seed": SEED,
        "senmayo_fold_in_fibroblast": SENMAYO_FOLD,
        "marker_fold": MARKER_FOLD,
        "nb_size": NB_SIZE,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(out, compression="gzip")
    return adata


def main() -> int:
    tmp = _environment()
    try:
        adata = make()
    finally:
        if tmp is not None:
            tmp.cleanup()
    X = adata.X
    print(
        f"wrote {OUT} ({OUT.stat().st_size:,} bytes): {adata.n_obs} cells x {adata.n_vars} genes, "
        f"{X.nnz:,} non-zero counts, {int(adata.var['senmayo'].sum())} SenMayo genes, "
        f"{int(adata.obs['malignant'].sum())} malignant cells"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
