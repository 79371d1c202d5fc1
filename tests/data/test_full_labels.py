"""Label parsing of five `profile: full` registry entries on their REAL label/metadata files.

The shared mirror holds the real label/metadata file of five larger datasets
(``../shared/data/<id>/<file>``, README section "Label files of larger datasets"; ``sources.yaml``
section ``labels_only``) but not their expression matrices. Each test builds a temporary mirror with
a link to the real label file and a small FORMAT-FAITHFUL matrix written here: the file name and
layout the entry's loader options expect, the REAL cell ids of the label file, 20 real gene symbols,
values of the entry's ``value_type``. A registry copy gives the fake matrix files their git blob ids
(no sha256/size) and keeps the real label file's hashes, which must verify. ``load_dataset`` is then
checked against facts computed independently from the real label file with pandas (``rdata`` for
the R files): number of cells, samples/patients, malignant cells, crosswalk cell types and Cell
Ontology ids. Every test skips with a reason when its real label file is not in the shared mirror.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import MIRROR, REGISTRY_YAML, DgCMatrix, RMatrix, registry_entry, write_registry

from sasp_atlas.data import InputError, crosswalk, load_dataset
from sasp_atlas.data.harmonise import MALIGNANT_CELL
from sasp_atlas.sources.fetch import git_blob_sha1

RESOURCES = MIRROR.parent / "reference" / "raw"

MEL = "tirosh2016_melanoma_full"
FILBIN = "filbin2018_h3k27m_glioma"
PDAC = "moncada2020_pdac_card"
NEFTEL = "neftel2019_gbm_infercna"
CRC = "lee2020_crc_smc_ecotyper"
LABEL_FILES = {
    MEL: "melanoma_cell_annotations.txt",
    FILBIN: "ped_midline_gliomas.cell_annots.txt",
    PDAC: "sc_meta.RData",
    NEFTEL: "refCells.rda",
    CRC: "scRNA_CRC_annotation.txt",
}

# real HGNC symbols (all approved, so var_names stay as written): SASP factors, markers, housekeeping
GENES = [
    "IL6",
    "CXCL8",
    "CCL2",
    "MMP1",
    "SERPINE1",
    "TIMP1",
    "CDKN1A",
    "CDKN2A",
    "IL1B",
    "VEGFA",
    "PTPRC",
    "CD3E",
    "CD68",
    "PECAM1",
    "COL1A1",
    "EPCAM",
    "KRT19",
    "VIM",
    "ACTB",
    "GAPDH",
]


# --------------------------------------------------------------------------- helpers
def _real(dataset_id: str) -> Path:
    """The real label file of ``dataset_id`` in the shared mirror (skips the test when absent)."""
    path = MIRROR / dataset_id / LABEL_FILES[dataset_id]
    if not path.is_file():
        pytest.skip(f"real label file {path} not found (shared data mirror, section 'Label files of larger datasets')")
    return path


def _entry(dataset_id: str) -> dict:
    return registry_entry(yaml.safe_load(REGISTRY_YAML.read_text()), dataset_id)


def _counts(n_cells: int, seed: int) -> np.ndarray:
    """Genes x cells raw UMI-like counts (non-negative integers; ACTB/GAPDH never zero)."""
    rng = np.random.default_rng(seed)
    lam = rng.uniform(0.05, 3.0, len(GENES))[:, None]
    x = rng.poisson(lam, (len(GENES), n_cells)).astype(np.float64)
    x[GENES.index("ACTB")] += 1 + rng.poisson(20, n_cells)
    x[GENES.index("GAPDH")] += 1 + rng.poisson(10, n_cells)
    return x


def _tpm10(n_cells: int, seed: int) -> np.ndarray:
    """Genes x cells TPM/10-scale values (linear, non-negative, non-integer, ~60% zeros)."""
    rng = np.random.default_rng(seed)
    x = rng.gamma(0.6, 40.0, (len(GENES), n_cells)) * (rng.random((len(GENES), n_cells)) < 0.4)
    x[GENES.index("ACTB")] = rng.uniform(200, 2000, n_cells)
    return np.round(x, 2)


def _text(rows: list[str], cols: list[str], x: np.ndarray, corner: str | None, fmt: str) -> str:
    """A tab-separated matrix: header of column names (``corner`` first, if any), then one row per name."""
    header = "\t".join(([corner] if corner is not None else []) + cols)
    body = "".join("\t".join([r, *(fmt % v for v in row)]) + "\n" for r, row in zip(rows, x))
    return header + "\n" + body


def _check_cell_types(adata, dataset_id: str, author: pd.Series, malignant: pd.Series) -> None:
    """Non-malignant author labels (from the real file) map through the crosswalk, malignant cells are
    "Malignant cell"; every harmonised type is a crosswalk type with a Cell Ontology id."""
    cw = crosswalk()
    table = cw["datasets"][dataset_id]
    missing = sorted(set(author[~malignant]) - set(table))
    assert not missing, f"{dataset_id}: author labels of the real file missing from crosswalk.yaml: {missing}"
    expected = pd.Series(
        np.where(malignant, MALIGNANT_CELL, author.map(table).fillna(MALIGNANT_CELL)), index=author.index
    )
    got = adata.obs["cell_type"].astype(str).reindex(author.index)
    pd.testing.assert_series_equal(got, expected, check_names=False)
    assert set(got) <= set(cw["cell_types"])
    assert adata.obs["cell_type_ontology_id"].astype(str).str.startswith("CL:").all()
    assert (adata.obs["malignant"].reindex(author.index).to_numpy(bool) == malignant.to_numpy(bool)).all()


def _check_values(adata, cells: list[str], x: np.ndarray) -> None:
    """The matrix was read in the right orientation and aligned by cell id: ``layers['original']`` is
    what was written (genes x cells ``x``, columns ``cells``)."""
    assert list(adata.var_names) == GENES
    original = pd.DataFrame(adata.layers["original"].toarray(), index=adata.obs_names, columns=adata.var_names)
    np.testing.assert_allclose(original.loc[cells].to_numpy(), x.T.astype(np.float32), rtol=1e-6)


@pytest.fixture
def fake_mirror(tmp_path, monkeypatch, empty_cache, no_network):
    """``build(dataset_id, write)``: a mirror folder ``<tmp>/mirror/<id>/`` with a symlink to the real
    label file and the fake matrix file(s) that ``write(folder)`` creates (returns their names); a
    registry copy (SASP_ATLAS_REGISTRY) whose fake files carry their git blob ids (no sha256, no size)
    while every other file keeps its registry hashes; a private empty cache; no network."""
    root = tmp_path / "mirror"
    root.mkdir()
    monkeypatch.setenv("SASP_ATLAS_MIRROR", str(root))
    if not RESOURCES.is_dir():
        pytest.skip(f"reference resources not found at {RESOURCES} (HGNC table for symbol resolution)")
    monkeypatch.setenv("SASP_ATLAS_RESOURCE_MIRROR", str(RESOURCES))

    def build(dataset_id: str, write) -> Path:
        real = _real(dataset_id)
        folder = root / dataset_id
        folder.mkdir()
        (folder / real.name).symlink_to(real)
        fakes = set(write(folder))
        doc = yaml.safe_load(REGISTRY_YAML.read_text())
        files = registry_entry(doc, dataset_id)["files"]
        assert {f["name"] for f in files} == fakes | {real.name}, "the fake files must be the entry's other files"
        for f in files:
            if f["name"] in fakes:
                f.pop("sha256", None)
                f.pop("size", None)
                f["git_blob_sha1"] = git_blob_sha1(folder / f["name"])
            else:
                assert f.get("sha256"), f"{dataset_id}/{f['name']}: the real label file keeps its sha256"
        monkeypatch.setenv("SASP_ATLAS_REGISTRY", str(write_registry(doc, tmp_path)))
        return root

    return build


def _read_rda(path: Path) -> dict:
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rdata.read_rda(path)


# --------------------------------------------------------------------------- inferCNV label files
def _infercnv_labels(dataset_id: str) -> pd.DataFrame:
    return pd.read_csv(_real(dataset_id), sep="\t", header=None, names=["cell", "label"], dtype=str)


def _infercnv_load(fake_mirror, dataset_id: str, labels: pd.DataFrame, seed: int):
    """inferCNV layout: gzipped genes x cells TSV whose header is the cell ids (no corner cell, as the
    core inferCNV file), TPM/10-scale values, cells in an order different from the label file."""
    cells = labels["cell"].sample(frac=1, random_state=seed).tolist()
    x = _tpm10(len(cells), seed)
    name = _entry(dataset_id)["loader"]["options"]["matrix"]

    def write(folder):
        with gzip.open(folder / name, "wt") as fh:
            fh.write(_text(GENES, cells, x, None, "%.2f"))
        return [name]

    root = fake_mirror(dataset_id, write)
    adata = load_dataset(dataset_id, mirror=root)
    _check_values(adata, cells, x)
    np.testing.assert_allclose(
        adata.X.toarray(), np.log2(adata.layers["original"].toarray() + 1), rtol=1e-5
    )  # tpm_like
    return adata


def _tumour_of(dataset_id: str, prefix: str) -> str:
    """The tumour a malignant label prefix names: melanoma labels spell one tumour several ways by sort
    batch (Cy80_, CY80_, cy80_; CY89CORE11_, CY89NEG_), so the tumour is the number after cy."""
    if dataset_id == MEL:
        return "Mel" + re.match(r"(?i)cy(\d+)", prefix).group(1)
    return prefix


@pytest.mark.parametrize("dataset_id, suffix", [(MEL, "_malignant"), (FILBIN, "_Malignant")])
def test_infercnv_labels_real_file(fake_mirror, dataset_id, suffix):
    """Melanoma / H3K27M glioma: every labelled cell loads; malignant = ``<patient><suffix>`` labels;
    sample = that patient's tumour, non-malignant cells in the one 'unrecorded' pseudo-sample."""
    labels = _infercnv_labels(dataset_id)
    assert labels["cell"].is_unique and labels["label"].notna().all()
    adata = _infercnv_load(fake_mirror, dataset_id, labels, seed=11)
    lab = labels.set_index("cell")["label"]
    mal = lab.str.endswith(suffix)
    tumour = lab[mal].str[: -len(suffix)].map(lambda s: _tumour_of(dataset_id, s))
    patient = tumour.reindex(lab.index).fillna("unrecorded")

    assert adata.n_obs == len(lab) == _entry(dataset_id)["expected"]["n_cells"]
    assert set(adata.obs_names) == set(lab.index)
    assert int(adata.obs["malignant"].sum()) == int(mal.sum()) > 0
    obs = adata.obs.loc[lab.index]
    assert (obs["sample"].astype(str) == patient).all()
    assert set(adata.obs["sample"].astype(str)) == set(tumour) | {"unrecorded"}
    assert (obs["cell_type_fine"].astype(str) == lab).all()
    assert (obs["cell_type_author"].astype(str) == lab.where(~mal, "Malignant")).all()
    _check_cell_types(adata, dataset_id, lab, mal)


def test_melanoma_samples_are_one_per_tumour(fake_mirror):
    """9 tumours, 9 samples; the malignant cells' ids start with their tumour's cy<NN> too."""
    labels = _infercnv_labels(MEL)
    adata = _infercnv_load(fake_mirror, MEL, labels, seed=12)
    mal = labels["label"].str.endswith("_malignant")
    tumours = {int(re.match(r"(?i)cy(\d+)", s).group(1)) for s in labels.loc[mal, "label"]}
    malignant_samples = set(adata.obs.loc[adata.obs["malignant"], "sample"].astype(str))
    assert len(malignant_samples) == len(tumours)


# --------------------------------------------------------------------------- CARD PDAC (.RData)
def test_pdac_card_labels_real_file(fake_mirror, write_rda):
    """sc_meta.RData (real) + sc_count.RData (a genes x cells dgCMatrix with the real cell ids, raw counts)."""
    meta = _read_rda(_real(PDAC))["sc_meta"]
    meta.index = meta.index.astype(str)
    cell_type = meta["cellType"].astype(str)
    cells = meta.index.to_series().sample(frac=1, random_state=5).tolist()
    x = _counts(len(cells), 5)
    opts = _entry(PDAC)["loader"]["options"]

    def write(folder):
        write_rda(folder / opts["matrix"], {opts["matrix_object"]: DgCMatrix(x, GENES, cells)})
        return [opts["matrix"]]

    adata = load_dataset(PDAC, mirror=fake_mirror(PDAC, write))
    _check_values(adata, cells, x)
    mal = cell_type.str.startswith("Cancer_clone")
    assert adata.n_obs == len(meta) == _entry(PDAC)["expected"]["n_cells"]
    assert set(adata.obs_names) == set(meta.index)
    assert int(adata.obs["malignant"].sum()) == int(mal.sum()) > 0
    assert set(adata.obs["sample"].astype(str)) == set(meta["sampleInfo"].astype(str))
    assert (adata.obs.loc[meta.index, "cell_type_author"].astype(str) == cell_type).all()
    _check_cell_types(adata, PDAC, cell_type, mal)


# --------------------------------------------------------------------------- infercna GBM (.rda)
def test_neftel_refcells_real_file(fake_mirror, write_rda):
    """refCells.rda (real) + bt771/mgh125/mgh105.rda (dense log2(TPM/10+1) matrices named as the file
    stems) holding every real reference cell of that sample plus made-up malignant cell ids."""
    refs = {str(k): [str(c) for c in np.atleast_1d(v)] for k, v in _read_rda(_real(NEFTEL))["refCells"].items()}
    opts = _entry(NEFTEL)["loader"]["options"]
    assert set(opts["ref_labels"]) == set(refs), "ref_labels must name the lists of refCells.rda"
    label_of = {c: opts["ref_labels"][name] for name, ids in refs.items() for c in ids}
    rng = np.random.default_rng(21)
    matrices, expected = {}, {}
    for fname in opts["matrices"]:
        stem = fname.removesuffix(".rda")
        prefix = re.compile(rf"^{stem.upper()}[A-Z]?-")  # MGH105 has sub-samples MGH105A-D
        ref_cells = sorted(c for c in label_of if prefix.match(c))
        assert ref_cells, f"refCells.rda has no cell of {stem}"
        fake = [
            f"{stem.upper()}{'ABCD'[i % 4] if stem == 'mgh105' else ''}-P{20 + i // 96}-{'ABCDEFGH'[i // 12 % 8]}{i % 12 + 1:02d}"
            for i in range(60)
        ]
        assert len(set(fake)) == len(fake) and not set(fake) & set(label_of)
        cells = list(rng.permutation(ref_cells + fake))
        tpm = _tpm10(len(cells), len(matrices))
        matrices[fname] = (stem, cells, np.round(np.log2(tpm + 1), 4))
        expected.update({c: (label_of.get(c, opts["default_label"]), stem) for c in cells})

    def write(folder):
        for fname, (stem, cells, x) in matrices.items():
            write_rda(folder / fname, {stem: RMatrix(x, GENES, cells)})
        return list(matrices)

    adata = load_dataset(NEFTEL, mirror=fake_mirror(NEFTEL, write))
    all_cells = [c for _, cells, _ in matrices.values() for c in cells]
    _check_values(adata, all_cells, np.hstack([x for _, _, x in matrices.values()]))
    np.testing.assert_array_equal(adata.X.toarray(), adata.layers["original"].toarray())  # log2_tpm10_plus1: unchanged
    exp = pd.DataFrame.from_dict(expected, orient="index", columns=["annotation", "sample"])
    mal = exp["annotation"] == "Malignant"
    assert adata.n_obs == len(exp) and list(adata.obs_names) == all_cells
    assert int(adata.obs["malignant"].sum()) == int(mal.sum()) == len(exp) - len(set(exp.index) & set(label_of))
    assert set(adata.obs["sample"].astype(str)) == {m.removesuffix(".rda") for m in opts["matrices"]}
    assert (adata.obs.loc[exp.index, "sample"].astype(str) == exp["sample"]).all()
    assert (adata.obs.loc[exp.index, "cell_type_author"].astype(str) == exp["annotation"]).all()
    assert {"Macrophage", "Oligodendrocyte"} <= set(exp["annotation"])
    _check_cell_types(adata, NEFTEL, exp["annotation"], mal)


# --------------------------------------------------------------------------- EcoTyper CRC (tar.gz)
def _crc_build(fake_mirror, x_of):
    """scRNA_CRC_data.txt.tar.gz: one member scRNA_CRC_data.txt, a genes x cells TSV with first header
    column 'Gene' and the annotation's ID column as cell columns (shuffled)."""
    ann = pd.read_csv(_real(CRC), sep="\t", dtype=str)
    cells = ann["ID"].sample(frac=1, random_state=3).tolist()
    x = x_of(len(cells))
    name = _entry(CRC)["loader"]["options"]["matrix"]
    fmt = "%d" if np.array_equal(x, np.round(x)) else "%.3f"

    def write(folder):
        data = _text(GENES, cells, x, "Gene", fmt).encode()
        with tarfile.open(folder / name, "w:gz") as tar:
            info = tarfile.TarInfo(name.removesuffix(".tar.gz"))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return [name]

    return ann, cells, x, fake_mirror(CRC, write)


def test_crc_ecotyper_labels_real_file(fake_mirror):
    ann, cells, x, root = _crc_build(fake_mirror, lambda n: _counts(n, 3))
    adata = load_dataset(CRC, mirror=root)
    _check_values(adata, cells, x)
    a = ann.set_index("ID")
    mal = a["Cell_subtype"].str.fullmatch(r"CMS[1-4]")
    expected = _entry(CRC)["expected"]

    assert adata.n_obs == len(a) == expected["n_cells"]
    assert set(adata.obs_names) == set(a.index)
    obs = adata.obs.loc[a.index]
    assert set(obs["sample"].astype(str)) == set(a["Sample"]) and obs["sample"].nunique() == a["Sample"].nunique()
    assert (obs["sample"].astype(str) == a["Sample"]).all()
    assert set(obs["Patient"]) == set(a["Patient"]) and obs["Patient"].nunique() == expected["n_donors"]
    assert obs["Class"].value_counts().to_dict() == a["Class"].value_counts().to_dict()
    # malignant = tumour epithelium of consensus molecular subtypes (counted from the file: CMS4 may be absent)
    assert int(adata.obs["malignant"].sum()) == int(mal.sum()) > 0
    assert (a.loc[mal, "Class"] == "Tumor").all() and (a.loc[mal, "Cell_type"] == "Epithelial cells").all()
    assert (obs["cell_type_fine"].astype(str) == a["Cell_subtype"]).all()
    assert (obs["cell_type_author"].astype(str) == a["Cell_type"]).all()
    _check_cell_types(adata, CRC, a["Cell_type"], mal)


def test_crc_non_integer_matrix_is_refused_as_not_raw_counts(fake_mirror):
    """value_type raw_counts is a documented guess: a matrix of normalised (non-integer) values is refused by name."""
    _, _, x, root = _crc_build(fake_mirror, lambda n: np.round(np.log1p(_counts(n, 4)), 3))
    assert not np.array_equal(x, np.round(x))
    with pytest.raises(InputError, match="raw_counts but the values are not integers"):
        load_dataset(CRC, mirror=root)
