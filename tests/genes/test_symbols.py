"""Gene symbol resolution (HGNC 2022-04-04), mouse -> human orthologs (HCOP) and honest coverage."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

from sasp_atlas import get_signature, list_signatures
from sasp_atlas.data import LOADER_VERSION
from sasp_atlas.data.load import resolve_var_names
from sasp_atlas.engines import score
from sasp_atlas.genes import LOW_COVERAGE_FLAG, MIN_COVERAGE, MIN_GENES, coverage_table, is_low_coverage
from sasp_atlas.genes.signatures import signature_record, signature_resolution
from sasp_atlas.genes.symbols import (
    AmbiguousSymbolWarning,
    OrthologWarning,
    hgnc_table,
    mouse_to_human,
    resolve_symbols,
)

# Reactome SASP genes that the Wu 2021 CID4465 matrix cannot hold (checked by hand, see the report):
# H2BC26 and H4C16 were approved after the 2022-04-04 HGNC snapshot (and are not in the 2020 Cell
# Ranger annotation either); H3C4 (HIST1H3D) and H4C12 (HIST1H4K) are simply not among Wu's 29,733 genes.
REACTOME_NOT_IN_WU = {"H2BC26", "H3C4", "H4C12", "H4C16"}


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# --------------------------------------------------------------------------- the HGNC table
def test_hgnc_table_is_the_verified_resource():
    t = hgnc_table()
    assert list(t.columns) == ["symbol", "approved", "chromosome"]
    assert len(t) == 101_345
    assert (t["symbol"] == t["approved"]).sum() == 43_135  # approved symbols
    assert t.loc[t["symbol"] == "NA", "approved"].tolist() == ["XK"]  # "NA" is a symbol, not a missing value


@pytest.mark.parametrize("old, new", [("CTGF", "CCN2"), ("NGFRAP1", "BEX3"), ("HIST1H2BK", "H2BC12")])
def test_known_aliases_are_unique_in_the_table(old, new):
    t = hgnc_table()
    assert t.loc[t["symbol"] == old, "approved"].tolist() == [new]  # checked in the table itself first
    r = resolve_symbols([old]).iloc[0]
    assert (r["input"], r["approved"], r["status"]) == (old, new, "alias")


def test_resolve_symbols_columns_order_and_duplicates():
    r = resolve_symbols(["IL6", "CTGF", "IL6", "NOT_A_GENE_XYZ"])
    assert list(r.columns)[:3] == ["input", "approved", "status"]
    assert "also_alias_of" in r.columns
    assert r["input"].tolist() == ["IL6", "CTGF", "IL6", "NOT_A_GENE_XYZ"]
    assert r["status"].tolist() == ["approved", "alias", "approved", "unknown"]
    assert r["approved"].iloc[0] == "IL6" and pd.isna(r["approved"].iloc[3])
    assert set(r["status"]) <= {"approved", "alias", "ambiguous", "unknown"}


def test_ambiguous_alias_is_never_resolved_and_warned():
    t = hgnc_table()
    assert sorted(t.loc[t["symbol"] == "QARS", "approved"]) == ["EPRS1", "QARS1"]
    with pytest.warns(AmbiguousSymbolWarning, match=r"QARS \(EPRS1;QARS1\)"):
        r = resolve_symbols(["QARS", "IL6"])
    q = r.iloc[0]
    assert q["status"] == "ambiguous" and pd.isna(q["approved"]) and q["candidates"] == "EPRS1;QARS1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when nothing is ambiguous, or when asked not to warn
        resolve_symbols(["IL6", "CTGF"])
        resolve_symbols(["QARS"], warn=False)


def test_approved_symbol_that_is_also_an_alias_stays_itself():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not an ambiguity: it stays itself
        r = resolve_symbols(["SPP1", "PIGF"]).set_index("input")
    assert r.loc["SPP1", "approved"] == "SPP1" and r.loc["SPP1", "status"] == "approved"
    assert r.loc["SPP1", "also_alias_of"] == "CXXC1"
    # SenMayo's PIGF is the GPI-anchor gene; it is also an old alias of PGF (placental growth factor)
    assert r.loc["PIGF", "approved"] == "PIGF" and r.loc["PIGF", "also_alias_of"] == "PGF"


def test_unknown_symbols_and_case_sensitivity():
    r = resolve_symbols(["NOT_A_GENE_XYZ", "H2BC26", "il6", "Il6"]).set_index("input")
    assert (r["status"] == "unknown").all() and r["approved"].isna().all()  # H2BC26: approved after 2022-04


def test_orf_case_correction_as_hgnchelper():
    r = resolve_symbols(["C10ORF10", "C15ORF48", "C15orf48"]).set_index("input")
    assert r.loc["C10ORF10", "approved"] == "DEPP1" and r.loc["C10ORF10", "status"] == "alias"
    assert r.loc["C15ORF48", "approved"] == "C15orf48" and r.loc["C15ORF48", "status"] == "alias"
    assert bool(r.loc["C15ORF48", "orf_case_fixed"]) and not bool(r.loc["C15orf48", "orf_case_fixed"])
    assert r.loc["C15orf48", "status"] == "approved"


# --------------------------------------------------------------------------- mouse -> human
def test_mouse_to_human_one_to_one():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # clean 1:1 orthologs raise no warning
        r = mouse_to_human(["Il6", "Serpine1", "Cdkn1a"]).set_index("input")
    assert r["human"].tolist() == ["IL6", "SERPINE1", "CDKN1A"]
    assert (r["status"] == "one2one").all()


def test_mouse_to_human_rules_are_reported():
    with pytest.warns(OrthologWarning) as rec:
        r = mouse_to_human(["Cxcl1", "Ccl21a", "Serpinb3a", "Not_a_gene", "IL6"]).set_index("input")
    msg = str(rec[0].message)
    # Cxcl1: HCOP also lists CXCL2 and CXCL3; the same-symbol (HGNC/MGI nomenclature) ortholog is taken
    assert r.loc["Cxcl1", "human"] == "CXCL1" and r.loc["Cxcl1", "status"] == "same_symbol"
    assert r.loc["Cxcl1", "candidates"] == "CXCL1;CXCL2;CXCL3"
    # one human ortholog shared with other mouse genes: mapped, reported
    assert r.loc["Ccl21a", "human"] == "CCL21" and r.loc["Ccl21a", "status"] == "many2one"
    # several human orthologs and none of the same symbol: not mapped
    assert pd.isna(r.loc["Serpinb3a", "human"]) and r.loc["Serpinb3a", "status"] == "one2many"
    assert r.loc["Serpinb3a", "candidates"] == "SERPINB3;SERPINB4"
    assert pd.isna(r.loc["Not_a_gene", "human"]) and r.loc["Not_a_gene", "status"] == "unknown"
    assert r.loc["IL6", "status"] == "unknown"  # human-style case is not a mouse symbol
    for name in ("Cxcl1", "Ccl21a", "Serpinb3a", "Not_a_gene"):
        assert name in msg


# --------------------------------------------------------------------------- signatures
def test_get_signature_returns_resolved_symbols_and_record_keeps_published():
    for sid in ("senmayo", "fridman_senescence_up"):
        res = signature_resolution(sid)
        assert res["published"].tolist() == [str(g) for g in signature_record(sid)["genes"]]
        assert _quiet(get_signature, sid) == [
            g for g, d in zip(res["symbol"], res["duplicate"]) if pd.notna(g) and not d
        ]
    df = list_signatures()
    for col in ("id", "name", "family", "species", "n_genes", "citation", "doi", "license"):
        assert col in df.columns
    # n_genes counts the published genes (no HGNC table needed to list); the scored genes can
    # only be fewer (mouse genes without an ortholog, genes published twice)
    for sid, n in df.set_index("id")["n_genes"].items():
        assert n == len(signature_record(sid)["genes"]), sid
        assert 0 < len(_quiet(get_signature, sid)) <= n, sid


def test_human_signature_aliases_resolved_unknown_kept():
    senepy = [s for s in list_signatures()["id"] if s.startswith("senepy_hub_")]
    for sid in senepy:
        res = signature_resolution(sid)
        genes = _quiet(get_signature, sid)
        for r in res.itertuples():
            if r.status == "alias":
                assert r.symbol != r.published and r.symbol in genes and r.published not in genes
            elif r.status in ("unknown", "ambiguous"):
                assert r.symbol == r.published  # kept as published
    if "reactome_sasp" in set(list_signatures()["id"]):
        res = signature_resolution("reactome_sasp").set_index("published")
        assert res.loc["H2BC26", "status"] == "unknown" and "H2BC26" in get_signature("reactome_sasp")


def test_mouse_signature_is_mapped_to_human():
    mouse = list_signatures().query("species == 'mouse'")["id"].tolist()
    if not mouse:
        pytest.skip("no mouse signature in the catalogue")
    for sid in mouse:
        genes = _quiet(get_signature, sid)
        res = signature_resolution(sid)
        assert all(g == g.upper() or "orf" in g for g in genes), "mouse symbols left in a human gene list"
        dropped = res[res["symbol"].isna()]
        assert set(dropped["status"]) <= {"one2many", "unknown"}
        assert len(genes) == int((res["symbol"].notna() & ~res["duplicate"]).sum())
    if "senmayo_mouse" in mouse:
        res = signature_resolution("senmayo_mouse").set_index("published")
        assert res.loc["Il6", "symbol"] == "IL6" and res.loc["Cxcl1", "symbol"] == "CXCL1"
        assert pd.isna(res.loc["Serpinb3c", "symbol"])


# --------------------------------------------------------------------------- dataset var_names
def _adata(names: list[str]) -> ad.AnnData:
    return ad.AnnData(
        X=sp.csr_matrix(np.ones((3, len(names)), dtype=np.float32)),
        var=pd.DataFrame(index=pd.Index(names, name="gene_symbol")),
    )


def test_resolve_var_names_renames_aliases_and_handles_collisions():
    a = _adata(["CTGF", "CCN2", "NGFRAP1", "QARS", "FOO_UNKNOWN", "IGFBP8", "HIST1H2BK", "SPP1"])
    summary = resolve_var_names(a)
    # CTGF and IGFBP8 are aliases of CCN2, which the data hold already: both keep their released names
    assert list(a.var_names) == ["CTGF", "CCN2", "BEX3", "QARS", "FOO_UNKNOWN", "IGFBP8", "H2BC12", "SPP1"]
    assert a.var_names.is_unique and a.var_names.name == "gene_symbol"
    assert a.var["symbol_original"].tolist() == [
        "CTGF",
        "CCN2",
        "NGFRAP1",
        "QARS",
        "FOO_UNKNOWN",
        "IGFBP8",
        "HIST1H2BK",
        "SPP1",
    ]
    assert summary["n_renamed"] == 2 and summary["n_collisions"] == 2
    assert summary["n_ambiguous"] == 1 and summary["n_unknown"] == 1
    # two aliases of one gene, approved symbol absent: the first takes the name, the other keeps its own
    b = _adata(["IGFBP8", "CTGF"])
    s = resolve_var_names(b)
    assert list(b.var_names) == ["CCN2", "CTGF"] and s["n_collisions"] == 1 and s["n_renamed"] == 1


def test_wu_var_names_are_resolved(wu):
    v = wu.var
    for new, old in (("CCN2", "CTGF"), ("BEX3", "NGFRAP1"), ("H2BC12", "HIST1H2BK")):
        assert new in wu.var_names and old not in wu.var_names
        assert v.loc[new, "symbol_original"] == old
    assert wu.var_names.is_unique
    sr = wu.uns["provenance"]["symbol_resolution"]
    assert int(sr["n_renamed"]) == int((v["symbol_original"] != pd.Series(wu.var_names, index=v.index)).sum()) > 1000
    for key in ("n_ambiguous", "n_unknown", "n_collisions"):
        assert int(sr[key]) >= 0
    assert int(sr["n_ambiguous"]) == int((v["symbol_status"] == "ambiguous").sum())
    assert wu.uns["provenance"]["loader_version"] == LOADER_VERSION


# --------------------------------------------------------------------------- coverage
def _wu_coverage(wu, signatures) -> pd.DataFrame:
    a = wu.copy()
    _quiet(score, a, signatures)
    return coverage_table(a, dataset_id="wu").set_index("signature")


def test_wu_senmayo_and_fridman_coverage(wu):
    cov = _wu_coverage(wu, ["senmayo", "fridman_senescence_up"])
    for col in ("dataset", "n_genes", "n_present", "n_rescued", "rescued", "missing", "coverage", "flag"):
        assert col in cov.columns
    sm = cov.loc["senmayo"]
    assert sm["n_genes"] == 125 and sm["n_present"] >= 124 and sm["coverage"] >= 124 / 125
    assert "NGFRAP1->BEX3" in sm["rescued"].split()
    fr = cov.loc["fridman_senescence_up"]
    assert fr["n_rescued"] >= 1 and "CTGF->CCN2" in fr["rescued"].split()
    assert fr["n_rescued"] == len(fr["rescued"].split())
    assert sm["flag"] == "" and fr["flag"] == "" and not sm["low_coverage"]


def test_wu_reactome_sasp_coverage_reference_list(wu, genesets_dir):
    ref = [str(g) for g in yaml.safe_load((genesets_dir / "reactome_sasp.yaml").read_text())["genes"]]
    assert len(ref) == 112
    resolved = resolve_symbols(ref, warn=False)
    symbols = resolved["approved"].fillna(resolved["input"]).tolist()
    present = [g for g in symbols if g in set(wu.var_names)]
    assert len(present) / len(ref) >= 0.95
    assert set(symbols) - set(wu.var_names) == REACTOME_NOT_IN_WU
    # most of them are histones present only because Wu's HIST1.. names were resolved
    released = wu.var["symbol_original"].reindex(present)
    assert (released != pd.Index(present)).sum() >= 50
    if "reactome_sasp" in set(list_signatures()["id"]):
        cov = _wu_coverage(wu, ["reactome_sasp"]).loc["reactome_sasp"]
        assert cov["n_genes"] == 112 and cov["coverage"] >= 0.95
        assert set(cov["missing"].split()) == REACTOME_NOT_IN_WU
        assert "HIST1H2BK->H2BC12" in cov["rescued"].split()


def test_low_coverage_is_flagged():
    rng = np.random.default_rng(3)
    names = [f"G{i}" for i in range(300)]
    X = sp.csr_matrix((rng.random((100, 300)) < 0.3) * rng.gamma(2.0, 1.0, (100, 300)), dtype=np.float32)
    a = ad.AnnData(X=X, var=pd.DataFrame(index=names))
    sigs = {
        "few_present": names[:4],  # 4/4 present: under MIN_GENES
        "low_fraction": names[10:16] + [f"MISSING{i}" for i in range(14)],  # 6/20 = 30 % < MIN_COVERAGE
        "fine": names[20:30] + ["MISSING_A", "MISSING_B"],  # 10/12
    }
    score(a, sigs)
    cov = coverage_table(a, dataset_id="constructed").set_index("signature")
    assert cov.loc["few_present", "flag"] == LOW_COVERAGE_FLAG == "low coverage: score not comparable"
    assert cov.loc["low_fraction", "flag"] == LOW_COVERAGE_FLAG
    assert cov.loc["fine", "flag"] == "" and not cov.loc["fine", "low_coverage"]
    assert cov.loc["low_fraction", "coverage"] == pytest.approx(0.3)
    assert cov.loc["low_fraction", "n_rescued"] == 0 and cov.loc["low_fraction", "missing"].count("MISSING") == 14
    info = a.uns["sasp_scores"]["signatures"]
    assert info["low_fraction"]["low_coverage"] and info["few_present"]["low_coverage"]
    assert not info["fine"]["low_coverage"] and info["fine"]["coverage"] == pytest.approx(10 / 12)
    assert (MIN_COVERAGE, MIN_GENES) == (0.5, 5)
    assert is_low_coverage(4, 4) and is_low_coverage(5, 11) and not is_low_coverage(5, 10)


def test_signature_side_rescue_is_counted(monkeypatch):
    import sasp_atlas.genes.coverage as stats

    a = _adata(["CXCL8", "CTGF", "IL6", "IL1A", "IL1B", "TNF"] + [f"G{i}" for i in range(60)])
    a.X = sp.csr_matrix(np.random.default_rng(0).random((3, a.n_vars)).astype(np.float32))
    resolve_var_names(a)  # CTGF -> CCN2 in the data
    score(a, {"toy": ["CXCL8", "CCN2", "IL6", "IL1A", "IL1B", "TNF"]})
    # pretend the catalogue published CXCL8 as IL8 (as the Reactome-native GMT does)
    monkeypatch.setattr(stats, "_published_names", lambda sig: ({"CXCL8": ["IL8"]}, 6, []))
    cov = coverage_table(a, dataset_id="constructed").set_index("signature").loc["toy"]
    assert sorted(cov["rescued"].split()) == ["CTGF->CCN2", "IL8->CXCL8"] and cov["n_rescued"] == 2
