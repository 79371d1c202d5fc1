"""SASP communication on the pages: the ligand's class joined from the class table, the sender x receiver
figure drawn from the real LIANA table, the resource paragraph with its sha256 and pair counts, the
top-pairs table with tumours found / tested and evidence, and the SASP-high vs SASP-low summary."""

from __future__ import annotations

import hashlib
import re

import pandas as pd
import pytest
from conftest import WU

from sasp_atlas.atlas.pipeline import with_ligand_classes
from sasp_atlas.genes import get_signature, sasp_classes
from sasp_atlas.site import figures, pages
from sasp_atlas.sources import get_dataset
from sasp_atlas.stats import communication as comm


@pytest.fixture(scope="module")
def wu_tables(wu):
    classes = sasp_classes()
    return (
        with_ligand_classes(comm.sasp_communication(wu, dataset_id=WU), classes),
        with_ligand_classes(comm.sasp_sender_split(wu, dataset_id=WU), classes),
    )


def test_ligand_class_comes_from_the_class_table_for_genes_and_complexes():
    classes = sasp_classes()
    table = pd.DataFrame({"ligand": ["CXCL8", "CSF1_IL34", "IL6_MMP3", "APP", "NOTASASPGENE"], "receptor": "R"})
    got = with_ligand_classes(table, classes)
    label = dict(zip(classes["gene"], classes["class_label"]))
    assert list(got.columns[:2]) == ["ligand", "ligand_class"]
    assert got["ligand_class"].iloc[0] == label["CXCL8"] == "CXC chemokines"
    assert got["ligand_class"].iloc[1] == label["CSF1"]  # IL34 has no class: the SASP subunit's
    assert got["ligand_class"].iloc[2] == f"{label['IL6']}/{label['MMP3']}"
    assert got["ligand_class"].iloc[3] == "unclassified" and got["ligand_class"].iloc[4] == "unclassified"


def test_resource_paragraph_names_the_file_hash_and_pair_counts():
    prov, counts = comm.resource_provenance(), comm.resource_pair_counts()
    text = pages.communication_resource_markdown(prov, counts)
    with open(prov["path"], "rb") as fh:
        assert prov["sha256"] == hashlib.sha256(fh.read()).hexdigest() and prov["sha256"] in text
    for row in counts.itertuples():
        if row.ligand_set != "union":
            assert f"`{row.ligand_set}`: {row.n_pairs:,} pairs" in text
    assert f"{int(counts.set_index('ligand_set').loc['union', 'n_pairs']):,} pairs in all" in text


@pytest.mark.slow
def test_top_pairs_table_and_figure_on_wu(wu_tables, tmp_path):
    table, _ = wu_tables
    text = pages.communication_markdown(table)
    found = table[table["n_samples_found"] > 0]
    assert text.startswith(f"{len(found):,} sender → receiver SASP pairs were found in the one tumour analysed")
    first = re.search(r"^\| 1 \| (.+?) → (.+?) \| (.+?) → (.+?) \| (.+?) \| (\d+) / (\d+) \| (.+?) \|", text, re.M)
    top = found.iloc[0]
    assert first.groups()[:5] == (top["source"], top["target"], top["ligand"], top["receptor"], top["ligand_class"])
    assert (int(first.group(6)), int(first.group(7)), first.group(8)) == (1, 1, "single tumour")
    assert "With a SenMayo secreted ligand" in text
    figures.render(
        "fig-{dataset}-sasp-communication",
        table,
        datasets=[get_dataset(WU)],
        signatures=[],
        method="expected",
        page_depth=2,
        results=tmp_path,
    )
    drawn = (tmp_path / "figures" / f"fig-{WU}-sasp-communication.svg").read_text()
    assert "<svg" in drawn and "receiver" in drawn and "sender" in drawn


@pytest.mark.slow
def test_sender_split_summary_counts_pairs_where_high_ranks_better(wu_tables):
    _, split = wu_tables
    text = pages.sender_split_markdown(split)
    better = (split["n_samples_high_gt_low"] > split["n_samples_tested"] / 2).mean()
    assert f"rank better in {better:.0%} of {len(split):,} sender → receiver pairs" in text and "1 tumour" in text
    assert pages.sender_split_markdown(split.iloc[0:0]).startswith("No cell type")


def test_data_without_the_resource_genes_gets_a_reason_not_a_crash(wu):
    """A gene panel (here: 60 genes of Wu, none of them a SASP ligand) cannot carry LIANA: the reason is
    named, and the page prints it instead of a table."""
    sasp = set(get_signature("senmayo")) | set(comm.sasp_resource()["ligand"])
    panel = wu[:, [g for g in wu.var_names if g not in sasp][:60]]
    reason = comm.communication_skip_reason(panel)
    assert reason and "of the SASP ligand-receptor resource are in the data" in reason
    assert comm.communication_skip_reason(wu) is None
    empty = pd.DataFrame(columns=comm.COMMUNICATION_COLUMNS)
    empty.attrs["skipped"] = reason
    assert (
        pages.communication_markdown(with_ligand_classes(empty, sasp_classes()))
        == f"Not computed for this dataset: {reason}."
    )
