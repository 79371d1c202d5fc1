"""The method registry: ``engines.list_methods`` lists every engine with its metadata."""

from __future__ import annotations

from engine_cases import ALL_METHODS

from sasp_atlas import engines


def test_list_methods():
    table = engines.list_methods()
    # ssgsea and gsva stay out of ALL_METHODS: ssgsea normalises by the range over every set scored together
    # and gsva holds a column copy of the matrix, so the per-set and memory properties above do not apply;
    # husi scores model genes against model weights (tests/engines/test_husi.py)
    assert list(table["name"]) == ALL_METHODS + ["ssgsea", "gsva", "husi"]
    assert {"name", "description", "value_range", "reference", "assumptions", "kind", "params"} <= set(table.columns)
    refs = table.set_index("name")["reference"]
    assert refs["aucell"].endswith("10.1038/nmeth.4463")
    assert refs["ucell"].endswith("10.1016/j.csbj.2021.06.043")
    assert refs["scanpy"].endswith("10.1126/science.aad0501") and refs["expected"] == refs["scanpy"]
    assert refs["husi"].endswith("10.1038/s43587-025-00886-2")
    assert table["description"].str.len().gt(10).all() and table["assumptions"].str.len().gt(10).all()
