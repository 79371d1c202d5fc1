"""The cell-type crosswalk and the cancer-type ids: complete for every registry dataset and valid
in the Cell Ontology / MONDO as shipped by cellxgene-ontology-guide (offline)."""

from __future__ import annotations

import pytest

from sasp_atlas.data.harmonise import crosswalk as _crosswalk
from sasp_atlas.data.harmonise import crosswalk_table
from sasp_atlas.sources.registry import list_datasets


@pytest.fixture(scope="module")
def ontology():
    from cellxgene_ontology_guide.ontology_parser import OntologyParser

    return OntologyParser()


def test_every_cell_type_id_is_a_valid_cl_term_with_its_label(ontology):
    for name, ct in _crosswalk()["cell_types"].items():
        assert ct["ontology_id"].startswith("CL:"), name
        assert ontology.is_valid_term_id(ct["ontology_id"]), name
        assert not ontology.is_term_deprecated(ct["ontology_id"]), name
        assert ontology.get_term_label(ct["ontology_id"]) == ct["ontology_label"], name


def test_every_cancer_type_id_is_a_valid_mondo_term(ontology):
    for d in list_datasets("full"):
        tid = d["cancer_type_ontology_id"]
        assert ontology.is_valid_term_id(tid), d.id
        assert not ontology.is_term_deprecated(tid), d.id
        # the registry's own wording and MONDO's label agree at least on one content word
        label = ontology.get_term_label(tid).lower()
        assert any(w in label for w in d["cancer_type"].lower().replace("-", " ").split() if len(w) > 4), (d.id, label)


def test_crosswalk_targets_are_in_the_vocabulary():
    cw = _crosswalk()
    for dataset_id, labels in cw["datasets"].items():
        for author, harmonised in labels.items():
            assert harmonised in cw["cell_types"], (dataset_id, author, harmonised)


def test_crosswalk_covers_every_author_label(wu, mgh, tirosh, puram, winterhoff):
    cw = _crosswalk()["datasets"]
    for ds_id, adata in [
        ("wu2021_breast_tnbc_cid4465", wu),
        ("tirosh2016_oligodendroglioma_mgh53_mgh54", mgh),
        ("tirosh2016_oligodendroglioma", tirosh),
        ("puram2017_hnscc_chetah_ref", puram),
        ("winterhoff2017_hgsoc_c1", winterhoff),
    ]:
        labels = set(adata.obs.loc[~adata.obs["malignant"], "cell_type_author"].astype(str))
        assert labels <= set(cw[ds_id]), (ds_id, labels - set(cw[ds_id]))


def test_harmonise_adds_ontology_ids_and_keeps_malignant_class(mgh):
    from sasp_atlas.data import harmonise_cell_types

    a = mgh.copy()
    harmonise_cell_types(a, dataset_id="tirosh2016_oligodendroglioma_mgh53_mgh54")
    mal = a.obs["malignant"].to_numpy(bool)
    assert (a.obs.loc[mal, "cell_type"] == "Malignant cell").all()
    assert (a.obs.loc[mal, "cell_type_ontology_id"] == "CL:0001064").all()
    assert set(a.obs.loc[~mal, "cell_type"]) == {"Macrophage", "Oligodendrocyte"}


def test_unknown_author_label_is_an_error_naming_it(puram):
    from sasp_atlas.data import harmonise_cell_types

    a = puram.copy()
    a.obs["cell_type_author"] = a.obs["cell_type_author"].astype(str)
    a.obs.iloc[0, a.obs.columns.get_loc("cell_type_author")] = "Mystery cell"
    with pytest.raises(KeyError, match="Mystery cell"):
        harmonise_cell_types(a, dataset_id="puram2017_hnscc_chetah_ref")


def test_crosswalk_table_has_one_row_per_author_label():
    t = crosswalk_table()
    assert not t.duplicated(["dataset", "cell_type_author"]).any()
    assert {"dataset", "cell_type_author", "cell_type", "cell_type_ontology_id", "lineage"} <= set(t.columns)
