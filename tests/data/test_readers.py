"""The full-profile readers of io.READERS, each on small files constructed here in the same format
as the remote files (gzipped inferCNV/GEO text matrices, Cell Ranger MatrixMarket, h5ad, CARD-style
.RData matrix + data.frame, infercna-style .rda matrices + refCells list), and ``text_matrix`` also on
the real core inferCNV file, where it must equal the core ``tsv_matrix`` reader."""

from __future__ import annotations

import gzip
import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
from conftest import TIROSH, DgCMatrix, RMatrix

from sasp_atlas.data import readers as sio
from sasp_atlas.data.readers import READERS

RNG = np.random.default_rng(7)
GENES = [f"GENE{i}" for i in range(12)]
CELLS = [f"MGH{97 if i % 2 else 36}_P{i}_A0{i % 9}" for i in range(9)]


N_GENES, N_CELLS = len(GENES), len(CELLS)


def _counts(n_genes=N_GENES, n_cells=N_CELLS) -> np.ndarray:
    x = RNG.poisson(1.2, (n_genes, n_cells)).astype(np.float32)
    x[0, :] = 0  # an all-zero gene, as in real data
    return x


def _write_matrix(path, x, rows, cols, *, sep="\t", corner=False, gz=True):
    header = ([""] if corner else []) + cols  # R's write.table omits the corner cell
    text = (
        sep.join(header)
        + "\n"
        + "".join(sep.join([r, *map(lambda v: f"{v:g}", row)]) + "\n" for r, row in zip(rows, x))
    )
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)


def _write_labels(path, labels: dict, header: str | None = None):
    lines = ([header] if header else []) + [f"{c}\t{lab}" for c, lab in labels.items()]
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- text_matrix
def test_every_new_reader_is_registered_and_allowed_by_the_schema():
    import json
    from importlib import resources

    schema = json.loads(resources.files("sasp_atlas.sources").joinpath("registry_schema.json").read_text())
    allowed = set(schema["$defs"]["dataset"]["properties"]["loader"]["properties"]["name"]["enum"])
    assert allowed == set(READERS)
    for name in ("text_matrix", "tenx_mtx", "h5ad", "rdata_matrix_meta", "rda_matrices_refcells"):
        assert name in READERS


@pytest.mark.parametrize("corner", [False, True])
def test_text_matrix_inferCNV_layout(tmp_path, corner):
    x = _counts()
    _write_matrix(tmp_path / "m.matrix.gz", x, GENES, CELLS, corner=corner)
    labels = {c: ("malignant_MGH" + c[3:5] if i % 3 else "Microglia/Macrophage") for i, c in enumerate(CELLS)}
    _write_labels(tmp_path / "labels.txt", labels)
    paths = {"m.matrix.gz": tmp_path / "m.matrix.gz", "labels.txt": tmp_path / "labels.txt"}
    X, genes, cells, obs = READERS["text_matrix"](
        paths,
        {
            "matrix": "m.matrix.gz",
            "labels": "labels.txt",
            "chunk_rows": 5,  # several chunks
            "sample_from_cell_id": r"^(?:MGH)?(\d+)_",
            "sample_format": "MGH{}",
        },
    )
    assert sp.isspmatrix_csr(X) and X.dtype == np.float32
    assert X.shape == (len(CELLS), len(GENES))
    assert np.array_equal(X.toarray(), x.T)
    assert genes == GENES and cells == CELLS
    assert list(obs.index) == CELLS
    assert obs["annotation"].tolist() == [labels[c] for c in CELLS]
    assert set(obs["patient"]) == {"MGH36", "MGH97"}


def test_text_matrix_derive_and_drop_unlabelled(tmp_path, caplog):
    x = _counts()
    _write_matrix(tmp_path / "m.gz", x, GENES, CELLS)
    labels = {c: (f"cy{i}_malignant" if i < 4 else ["T", "CAF", "NK", "B"][i % 4]) for i, c in enumerate(CELLS[:-2])}
    _write_labels(tmp_path / "a.txt", labels)
    paths = {"m.gz": tmp_path / "m.gz", "a.txt": tmp_path / "a.txt"}
    opts = {
        "matrix": "m.gz",
        "labels": "a.txt",
        "derive": [
            {"column": "cell_class", "from": "annotation", "pattern": "^.+_malignant$", "template": "Malignant"},
            {
                "column": "patient",
                "from": "annotation",
                "pattern": "^(.+)_malignant$",
                "template": "\\1",
                "default": "unrecorded",
            },
        ],
    }
    with pytest.raises(ValueError, match="2 cells have no label.*drop_unlabelled"):
        READERS["text_matrix"](paths, opts)
    with caplog.at_level(logging.WARNING, logger="sasp_atlas"):
        X, genes, cells, obs = READERS["text_matrix"](paths, {**opts, "drop_unlabelled": True})
    assert "2 of 9 cells have no label" in caplog.text
    assert cells == CELLS[:-2] and X.shape == (7, len(GENES))
    assert np.array_equal(X.toarray(), x.T[:-2])
    assert obs["cell_class"].tolist()[:4] == ["Malignant"] * 4
    assert obs["cell_class"].tolist()[4:] == [labels[c] for c in CELLS[4:-2]]
    assert obs["patient"].tolist() == ["cy0", "cy1", "cy2", "cy3"] + ["unrecorded"] * 3


def test_text_matrix_csv_cells_by_genes_with_metadata_header(tmp_path):
    x = _counts()
    _write_matrix(tmp_path / "m.csv", x.T, CELLS, GENES, sep=",", corner=True, gz=False)
    meta = pd.DataFrame({"barcode": CELLS, "patient": ["p1"] * 4 + ["p2"] * 5, "cell_type": ["T"] * 9})
    meta.to_csv(tmp_path / "meta.csv.gz", index=False)
    paths = {"m.csv": tmp_path / "m.csv", "meta.csv.gz": tmp_path / "meta.csv.gz"}
    X, genes, cells, obs = READERS["text_matrix"](
        paths,
        {
            "matrix": "m.csv",
            "sep": ",",
            "orientation": "cells_x_genes",
            "labels": "meta.csv.gz",
            "labels_sep": ",",
            "labels_header": True,
            "cell_column": "barcode",
        },
    )
    assert np.array_equal(X.toarray(), x.T) and genes == GENES and cells == CELLS
    assert obs["patient"].tolist() == ["p1"] * 4 + ["p2"] * 5


def test_text_matrix_bad_orientation(tmp_path):
    _write_matrix(tmp_path / "m.gz", _counts(), GENES, CELLS)
    with pytest.raises(ValueError, match="orientation"):
        READERS["text_matrix"]({"m.gz": tmp_path / "m.gz"}, {"matrix": "m.gz", "orientation": "sideways"})


def test_text_matrix_equals_tsv_matrix_on_the_real_core_file(mirror):
    """The full inferCNV matrices share the format of the core tirosh2016_oligodendroglioma files."""
    from sasp_atlas.sources.registry import get_dataset

    ds = get_dataset(TIROSH)
    paths = {f["name"]: mirror / TIROSH / f["name"] for f in ds.files}
    opts = ds["loader"]["options"]
    a = READERS["tsv_matrix"](paths, opts)
    b = READERS["text_matrix"](paths, {**opts, "chunk_rows": 1000})
    assert (a[0] != b[0]).nnz == 0 and a[0].shape == b[0].shape == (184, 10338)
    assert a[1] == b[1] and a[2] == b[2]
    pd.testing.assert_frame_equal(a[3], b[3])


# --------------------------------------------------------------------------- tenx_mtx
@pytest.mark.parametrize("gz", [False, True])
def test_tenx_mtx(tmp_path, gz):
    x = _counts()
    suffix = ".gz" if gz else ""
    mtx = tmp_path / f"matrix.mtx{suffix}"
    with gzip.open(mtx, "wb") if gz else open(mtx, "wb") as fh:
        scipy.io.mmwrite(fh, sp.coo_matrix(x.astype(np.int64)))
    pd.DataFrame({"id": [f"ENSG{i:011d}" for i in range(len(GENES))], "sym": GENES}).to_csv(
        tmp_path / "genes.tsv", sep="\t", header=False, index=False
    )
    barcodes = [f"AAAC{i:04d}-1" for i in range(len(CELLS))]
    (tmp_path / "barcodes.tsv").write_text("\n".join(barcodes) + "\n")
    labels = {b: ("stem, cancer cell" if i % 2 else "immune cells") for i, b in enumerate(barcodes)}
    _write_labels(tmp_path / "anno.tsv", labels, header="cell\tcell_type")
    paths = {p.name: p for p in tmp_path.iterdir()}
    X, genes, cells, obs = READERS["tenx_mtx"](
        paths,
        {
            "matrix": mtx.name,
            "genes": "genes.tsv",
            "barcodes": "barcodes.tsv",
            "labels": "anno.tsv",
            "labels_header": True,
            "label_column_index": 1,
        },
    )
    assert np.array_equal(X.toarray(), x.T) and X.dtype == np.float32
    assert genes == GENES and cells == barcodes
    assert obs["annotation"].tolist() == [labels[b] for b in barcodes]

    ensembl = READERS["tenx_mtx"](
        paths, {"matrix": mtx.name, "genes": "genes.tsv", "barcodes": "barcodes.tsv", "gene_column": 0}
    )
    assert ensembl[1][0] == "ENSG00000000000"
    (tmp_path / "barcodes.tsv").write_text("\n".join(barcodes[:-1]) + "\n")
    with pytest.raises(ValueError, match="does not match"):
        READERS["tenx_mtx"](paths, {"matrix": mtx.name, "genes": "genes.tsv", "barcodes": "barcodes.tsv"})


# --------------------------------------------------------------------------- h5ad (backed, chunked)
def _h5ad(tmp_path, fmt: str):
    x = _counts().T  # cells x genes
    obs = pd.DataFrame(
        {
            "cluster.pred": ["N" if i % 3 == 0 else "T" for i in range(len(CELLS))],
            "disease": pd.Categorical(["normal", "tumour"] * 4 + ["tumour"]),
        },
        index=CELLS,
    )
    var = pd.DataFrame({"feature_name": GENES}, index=[f"ENSG{i:011d}" for i in range(len(GENES))])
    matrix = {"dense": x, "csr": sp.csr_matrix(x), "csc": sp.csc_matrix(x)}[fmt]
    a = ad.AnnData(matrix, obs=obs, var=var)
    a.raw = a.copy()
    a.X = matrix * 2  # X differs from raw.X, so the test sees which one was read
    path = tmp_path / f"{fmt}.h5ad"
    a.write_h5ad(path)
    return path, x, obs


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_h5ad_backed_in_chunks(tmp_path, monkeypatch, fmt):
    path, x, obs = _h5ad(tmp_path, fmt)
    calls = []
    real = ad.read_h5ad

    def spy(p, *args, **kwargs):
        calls.append(kwargs.get("backed"))
        return real(p, *args, **kwargs)

    monkeypatch.setattr(sio.ad, "read_h5ad", spy)
    X, genes, cells, o = READERS["h5ad"](
        {path.name: path},
        {
            "file": path.name,
            "gene_symbols": "feature_name",
            "chunk_size": 2,
            "obs_filter": {"disease": ["tumour"]},
            "derive": [
                {
                    "column": "tumour_normal",
                    "from": "cluster.pred",
                    "pattern": "^N$",
                    "template": "Normal",
                    "default": "Tumour",
                }
            ],
        },
    )
    assert calls == ["r"]  # opened backed, never loaded whole
    keep = (obs["disease"] == "tumour").to_numpy()
    assert np.array_equal(X.toarray(), 2 * x[keep]) and sp.isspmatrix_csr(X) and X.dtype == np.float32
    assert genes == GENES and cells == list(obs.index[keep])
    assert o["tumour_normal"].tolist() == ["Normal" if v == "N" else "Tumour" for v in obs.loc[keep, "cluster.pred"]]
    assert o["disease"].dtype == object  # obs columns as strings

    raw = READERS["h5ad"]({path.name: path}, {"matrix": "raw.X", "chunk_size": 4})
    assert np.array_equal(raw[0].toarray(), x) and raw[1][0] == "ENSG00000000000"


def test_h5ad_errors(tmp_path):
    path, _, _ = _h5ad(tmp_path, "csr")
    paths = {path.name: path}
    with pytest.raises(ValueError, match="no column 'gene_symbol'"):
        READERS["h5ad"](paths, {"gene_symbols": "gene_symbol"})
    with pytest.raises(ValueError, match="no cell passes"):
        READERS["h5ad"](paths, {"obs_filter": {"disease": ["absent"]}})
    with pytest.raises(ValueError, match="matrix must be"):
        READERS["h5ad"](paths, {"matrix": "layers/counts"})


# --------------------------------------------------------------------------- R files written with rdata
@pytest.mark.parametrize("sparse", [True, False])
def test_rdata_matrix_meta_card_layout(tmp_path, write_rda, sparse):
    x = _counts()
    cells = [f"Cell{i + 1}" for i in range(x.shape[1])]
    mat = DgCMatrix(sp.csc_matrix(x), GENES, cells) if sparse else RMatrix(x, GENES, cells)
    write_rda(tmp_path / "sc_count.RData", {"sc_count": mat})
    types = ["Cancer_clone_A", "Ductal_terminal_ductal_like", "Acinar_cells"]
    meta = pd.DataFrame(
        {
            "cellID": cells,
            "cellType": pd.Categorical([types[i % 3] for i in range(len(cells))]),
            "sampleInfo": ["sample1"] * len(cells),
        },
        index=cells,
    )
    write_rda(tmp_path / "sc_meta.RData", {"sc_meta": meta})
    paths = {"sc_count.RData": tmp_path / "sc_count.RData", "sc_meta.RData": tmp_path / "sc_meta.RData"}
    X, genes, got_cells, obs = READERS["rdata_matrix_meta"](
        paths,
        {"matrix": "sc_count.RData", "matrix_object": "sc_count", "meta": "sc_meta.RData", "meta_object": "sc_meta"},
    )
    assert np.array_equal(X.toarray(), x.T) and sp.isspmatrix_csr(X)
    assert genes == GENES and got_cells == cells
    assert obs["cellType"].tolist() == [types[i % 3] for i in range(len(cells))]
    assert obs["sampleInfo"].unique().tolist() == ["sample1"]

    with pytest.raises(ValueError, match="no object 'counts'"):
        READERS["rdata_matrix_meta"](
            paths, {"matrix": "sc_count.RData", "matrix_object": "counts", "meta": "sc_meta.RData"}
        )
    write_rda(tmp_path / "sc_meta.RData", {"sc_meta": meta.iloc[1:]})
    with pytest.raises(ValueError, match="1 cells have no label"):
        READERS["rdata_matrix_meta"](paths, {"matrix": "sc_count.RData", "meta": "sc_meta.RData"})


def test_rda_matrices_refcells_infercna_layout(tmp_path, write_rda, caplog):
    x1, x2 = _counts(n_cells=5), _counts(n_cells=4)
    c1 = [f"BT771-P1-{i}" for i in range(5)]
    c2 = [f"MGH125-P2-{i}" for i in range(4)]
    write_rda(tmp_path / "bt771.rda", {"bt771": RMatrix(x1, GENES, c1)})
    write_rda(tmp_path / "mgh125.rda", {"mgh125": RMatrix(x2, GENES, c2)})
    refs = {"oligodendrocytes": np.array([c1[0], "OTHER-SAMPLE-1"]), "macrophages": np.array([c1[1], c2[3]])}
    write_rda(tmp_path / "refCells.rda", {"refCells": refs})
    paths = {p.name: p for p in tmp_path.iterdir()}
    opts = {
        "matrices": ["bt771.rda", "mgh125.rda"],
        "refcells": "refCells.rda",
        "ref_labels": {"macrophages": "Macrophage", "oligodendrocytes": "Oligodendrocyte"},
        "default_label": "Malignant",
    }
    X, genes, cells, obs = READERS["rda_matrices_refcells"](paths, opts)
    assert np.array_equal(X.toarray(), np.vstack([x1.T, x2.T]))
    assert genes == GENES and cells == c1 + c2
    assert obs["sample"].tolist() == ["bt771"] * 5 + ["mgh125"] * 4
    assert obs.loc[c1[0], "annotation"] == "Oligodendrocyte"
    assert obs.loc[c1[1], "annotation"] == "Macrophage" and obs.loc[c2[3], "annotation"] == "Macrophage"
    assert (obs["annotation"] == "Malignant").sum() == 6

    # matrices with different genes: the common genes are kept, in the first matrix's order
    write_rda(tmp_path / "mgh125.rda", {"mgh125": RMatrix(x2[2:], GENES[2:], c2)})
    with caplog.at_level(logging.WARNING, logger="sasp_atlas"):
        X, genes, _, _ = READERS["rda_matrices_refcells"](paths, opts)
    assert genes == GENES[2:] and "common genes" in caplog.text
    assert np.array_equal(X.toarray(), np.vstack([x1[2:].T, x2[2:].T]))

    write_rda(tmp_path / "refCells.rda", {"refCells": {"a": np.array([c1[0]]), "b": np.array([c1[0]])}})
    with pytest.raises(ValueError, match="in two lists"):
        READERS["rda_matrices_refcells"](paths, {**opts, "ref_labels": {}})


def test_r_matrix_without_dimnames_is_an_error(tmp_path, write_rda):
    import rdata

    write_rda(tmp_path / "m.rda", {"m": _counts().astype(np.float64)})  # a plain numeric matrix: dim, no dimnames
    ((_, obj),) = rdata.read_rda(tmp_path / "m.rda").items()
    with pytest.raises(ValueError, match="no row or column names"):
        sio._r_matrix(obj, "m.rda:m")
