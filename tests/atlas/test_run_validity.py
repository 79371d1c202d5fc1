"""The validity tables on the core ground truth (real files from the mirror): every catalogue signature
and hUSI has a row on the five Marthandan strains with n_units 5, hUSI flagged as trained on them, the
mouse hepatocyte replicates compared as units, and the labels pooled out of sample."""

from __future__ import annotations

import pandas as pd
import pytest

from sasp_atlas.atlas.validity import HUSI, VALIDITY_METHODS, run_validity, validity_labels
from sasp_atlas.genes import list_signatures
from sasp_atlas.stats.validity import POOLED_VALIDITY_COLUMNS, VALIDITY_COLUMNS, VALIDITY_LABELS


@pytest.fixture(scope="module")
def validity(mirror, tmp_path_factory):
    out = tmp_path_factory.mktemp("validity")
    return run_validity(out), out


@pytest.mark.slow
def test_both_tables_are_written_with_their_contract(validity):
    tables, out = validity
    for name, cols in (
        ("signature_validity", VALIDITY_COLUMNS),
        ("signature_validity_pooled", POOLED_VALIDITY_COLUMNS),
    ):
        written = pd.read_csv(out / "tables" / f"{name}.csv")
        assert list(written.columns[: len(cols)]) == cols and len(written)
    assert set(tables["signature_validity"]["label"]) <= set(VALIDITY_LABELS)


@pytest.mark.slow
def test_every_signature_and_husi_on_the_five_strains(validity):
    table = validity[0]["signature_validity"]
    m = table[table["benchmark"] == "marthandan2016_replicative_bulk"]
    human = set(list_signatures().query("species == 'human'")["id"])
    for method in VALIDITY_METHODS:
        rows = m[m["method"] == method]
        assert set(rows["signature"]) == human
        assert (rows["n_units"] == 5).all() and (rows["control"] == "proliferating").all()
    hus = m[m["signature"] == HUSI].iloc[0]
    assert hus["n_units"] == 5 and bool(hus["training_overlap"]) and "not out of sample" in hus["flag"]
    assert hus["auroc"] > 0.9 and hus["ci_low"] < hus["auroc"]  # the index it was trained on separates the strains
    # proliferation-dominated sets score senescent samples lower: an inverse label, with its interval below 0.5
    inverse = m[m["label"] == "inverse"]
    assert len(inverse) and (inverse["ci_high"] < 0.5).all()


@pytest.mark.slow
def test_hepatocyte_replicates_are_the_units_and_labels_pool_out_of_sample(validity):
    table = validity[0]["signature_validity"]
    chan = table[table["benchmark"] == "chan2024_hepatocyte_ois_toy"].dropna(subset=["auroc"])
    assert len(chan) and (chan["design"] == "units compared").all() and (chan["n_units"] == 4).all()
    # two vs two replicates cannot conclude even at perfect separation: shown, never in a label
    assert not chan["informative"].astype(bool).any() and (chan["label"] == "untested").all()
    marthandan = table[table["benchmark"] == "marthandan2016_replicative_bulk"]
    assert marthandan["informative"].astype(bool).all()
    pooled = validity[0]["signature_validity_pooled"]
    hus = pooled[(pooled["signature"] == HUSI) & (pooled["control"] == "non-senescent")].iloc[0]
    # hUSI was trained on the only informative core data set: its label says so
    assert hus["overlapping_benchmarks"] == "marthandan2016_replicative_bulk"
    assert hus["label_basis"] == "training data only (not out of sample)"
    labels = validity_labels(pooled)
    assert labels[HUSI] == hus["label"] and set(labels.values()) <= set(VALIDITY_LABELS)
