"""The signature catalogue agrees gene for gene with the verified reference gene sets."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest
import yaml
from conftest import PROJECT_ROOT

from sasp_atlas import get_signature, list_signatures
from sasp_atlas.genes.signatures import signature_record

COLUMNS = ["id", "name", "species", "n_genes", "citation", "doi", "license"]

# catalogue id -> reference file in shared/reference/genesets
REFERENCES = {
    "senmayo": "senmayo_human.yaml",
    "fridman_senescence_up": "fridman_senescence_up.yaml",
}


def _reference_genes(genesets_dir, filename) -> list[str]:
    doc = yaml.safe_load((genesets_dir / filename).read_text())
    return [str(g) for g in doc["genes"]]


def test_list_signatures_columns_and_sizes():
    df = list_signatures()
    for col in COLUMNS:
        assert col in df.columns, col
    assert df["id"].is_unique
    sizes = df.set_index("id")["n_genes"].to_dict()
    assert sizes["senmayo"] == 125
    assert sizes["fridman_senescence_up"] == 77
    for sid, n in sizes.items():  # n_genes: as published; scored genes can only be fewer (mouse orthologs)
        assert 0 < len(get_signature(sid)) <= n, sid
    assert set(df["species"]) <= {"human", "mouse"}
    assert df["citation"].notna().all() and df["license"].notna().all()


@pytest.mark.parametrize("sig_id, ref_file", sorted(REFERENCES.items()))
def test_signature_equals_reference(genesets_dir, sig_id, ref_file):
    genes = get_signature(sig_id)
    ref = _reference_genes(genesets_dir, ref_file)
    assert len(genes) == len(set(genes)), "duplicated genes in the catalogue"
    assert set(genes) == set(ref), (
        f"only in catalogue: {sorted(set(genes) - set(ref))}; only in reference: {sorted(set(ref) - set(genes))}"
    )
    ref_doc = yaml.safe_load((genesets_dir / ref_file).read_text())
    if "n_genes" in ref_doc:
        assert len(genes) == ref_doc["n_genes"]


def test_get_signature_returns_a_copy():
    g = get_signature("senmayo")
    g.append("NOT_A_GENE")
    assert "NOT_A_GENE" not in get_signature("senmayo")
    rec = signature_record("senmayo")
    rec["id"] = "changed"
    assert signature_record("senmayo")["id"] == "senmayo"


def test_signature_records_have_provenance():
    for sid in list_signatures()["id"]:
        rec = signature_record(sid)
        assert rec["id"] == sid
        assert rec["source"].get("citation")
        assert rec["license"]
        assert all(isinstance(g, str) and g == g.strip() and g for g in rec["genes"])


def test_unknown_signature_lists_known_ids():
    with pytest.raises(KeyError) as exc:
        get_signature("no_such_signature")
    msg = str(exc.value)
    assert "no_such_signature" in msg
    for sid in list_signatures()["id"]:
        assert sid in msg


def test_the_wheel_carries_every_run_time_project_file():
    """Signature sets live inside the package (hatchling ships them); the project-level files the
    package reads at run time are force-included under sasp_atlas/_project/ (tests/test_install.py
    installs the real wheel)."""
    from sasp_atlas.site.notebooks import TEMPLATES
    from sasp_atlas.sources import PROJECT_SKELETON

    cfg = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    forced = cfg["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    needed = {"data_registry.yaml", *PROJECT_SKELETON, *(f"notebooks/{n}.py" for n in TEMPLATES)}
    assert {src: f"sasp_atlas/_project/{src}" for src in needed} == forced
    folder = resources.files("sasp_atlas.genes").joinpath("signature_sets")
    assert len([p for p in folder.iterdir() if p.name.endswith(".yaml")]) == len(list_signatures())
