"""Figures a reader reads: short captions (what is drawn, the unit, the method, how many tumours), the
full provenance one click away (collapsed block) and in the downloads (BibTeX, JSON record), charts
that fit the column, and the SASP map of the landing page with its generated findings."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from sasp_atlas.genes import catalogue
from sasp_atlas.site import charts, figures, home, pages, references
from sasp_atlas.sources import get_dataset, list_datasets

WU = "wu2021_breast_tnbc_cid4465"


def _celltype_table(n_types: int = 4, dataset: str = WU, n_samples: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    types = [f"type {i}" for i in range(n_types)]
    return pd.DataFrame(
        {
            "dataset": dataset,
            "cancer_type": "triple-negative breast cancer",
            "cell_type": types,
            "lineage": "immune",
            "signature": "senmayo",
            "mean": rng.normal(size=n_types),
            "ci_low": -1.0,
            "ci_high": 1.0,
            "ci_unit": "cells",
            "effect_size": rng.uniform(0.2, 0.9, n_types),
            "n_cells": 50,
            "n_samples": n_samples,
            "evidence": "single tumour" if n_samples == 1 else f"{n_samples} tumours",
            "q_perm": 0.01,
            "q_null": 0.2,
            "coverage": 0.9,
            "low_coverage": False,
            "caveat": "",
            "flag": "",
        }
    )


def test_every_caption_pattern_fits_the_limit_with_the_longest_names():
    longest_ds = max((d.id for d in list_datasets("full")), key=len)
    longest_sig = max(catalogue(), key=len)
    scope = figures._scope(pd.DataFrame({"dataset": [f"d{i}" for i in range(20)], "n_samples": 999}))
    for spec in figures.FIGURES.values():
        caption = " ".join(
            [
                spec.caption.format(dataset=longest_ds, signature=longest_sig, method="expected"),
                scope,
                "Method: gene matching.",
            ]
        )
        assert len(caption) <= figures.MAX_CAPTION, (spec.id, len(caption))
        assert "sha256" not in caption and "http" not in caption  # provenance lives in the collapsed block


def test_scope_counts_tumours_and_datasets():
    two = pd.concat([_celltype_table(n_samples=1), _celltype_table(dataset="x", n_samples=4)])
    assert figures._scope(two) == "5 tumours in 2 datasets."
    assert figures._scope(_celltype_table()) == "1 tumour in 1 dataset."
    assert figures._scope(pd.DataFrame({"a": [1]})) == ""
    unrecorded = _celltype_table(dataset="puram2017_hnscc_chetah_ref").assign(evidence="samples not recorded")
    assert figures._scope(unrecorded) == "1 dataset (patients not recorded)."
    assert figures._scope(pd.concat([two, unrecorded])) == "5 tumours in 3 datasets; 1 with patients not recorded."
    copies = [get_dataset("tirosh2016_oligodendroglioma"), get_dataset("tirosh2016_oligodendroglioma_mgh53_mgh54")]
    both = pd.concat([_celltype_table(dataset=d.id, n_samples=n) for d, n in zip(copies, (5, 2))])
    assert figures._scope(both, copies) == "at most 7 tumours in 2 datasets (datasets sharing tumours)."
    assert figures._scope(pd.DataFrame({"dataset": ["a", "b"], "evidence": "found in 2 tumours"})) == "2 datasets."
    samples = pd.DataFrame({"dataset": ["a", "a", "p"], "sample": ["s1", "s2", "p:unrecorded"]})
    assert figures._scope(samples) == "2 tumours in 2 datasets; 1 with patients not recorded."


def test_render_short_caption_sources_block_and_downloads(tmp_path):
    ds = get_dataset(WU)
    out = figures.render(
        "fig-atlas-heatmap-{signature}",
        _celltype_table(),
        datasets=[ds],
        signatures=["senmayo"],
        method="expected",
        page_depth=1,
        results=tmp_path,
        signature="senmayo",
    )
    caption = re.search(r'<p class="sasp-caption">(.*?)</p>', out, re.S).group(1)
    text = re.sub(r"<[^>]+>", "", caption)
    assert len(text) <= figures.MAX_CAPTION and "1 tumour in 1 dataset" in text and "Method: expected" in text
    assert ds.files[0]["sha256"] not in caption
    block = re.search(
        r"<details class=\"sasp-sources\"><summary>Sources and citation</summary>(.*?)</details>", out, re.S
    )
    assert block and ds.files[0]["sha256"] in block.group(1) and ds.files[0]["url"] in block.group(1)
    assert "How to read" in block.group(1) and "Cite this figure" in block.group(1)
    fig_id = "fig-atlas-heatmap-senmayo"
    bib = (tmp_path / "figures" / f"{fig_id}.bib").read_text()
    assert ds.files[0]["sha256"] in bib and ds.files[0]["url"] in bib and bib.count("{") == bib.count("}")
    record = json.loads((tmp_path / "figures" / f"{fig_id}.json").read_text())
    assert record["caption"] in text and len(record["caption"]) <= figures.MAX_CAPTION
    assert ds.files[0]["sha256"] in record["provenance"]
    for ext in ("svg", "png", "csv", "bib"):
        assert f'_static/figures/{fig_id}.{ext}" download' in out
    assert 'class="sasp-chart"' in out and "vegaEmbed" in out


def test_a_caption_over_the_limit_is_refused(tmp_path):
    with pytest.raises(ValueError, match="caption"):
        figures.render(
            "fig-atlas-heatmap-{signature}",
            _celltype_table(),
            datasets=[get_dataset(WU)],
            signatures=["senmayo"],
            method="expected",
            page_depth=1,
            results=tmp_path,
            signature="senmayo",
            extra_caption="x" * 400,
        )


def test_cross_dataset_heatmap_draws_the_scale_free_effect():
    spec = charts.atlas_heatmap(_celltype_table(), signature="senmayo").to_dict()
    enc = spec["spec"]["encoding"]
    assert enc["color"]["field"] == "effect_size" and enc["color"]["scale"]["domainMid"] == 0.5
    tips = {t.get("field") for t in enc["tooltip"]}
    assert "mean" in tips  # raw score only in the tooltip, within its dataset


def test_ranking_axes_are_per_dataset():
    spec = charts.ranking_chart(_celltype_table(), signature="senmayo").to_dict()
    assert spec["resolve"]["scale"]["x"] == "independent"


def test_legends_sit_below_the_plot():
    spec = charts.fit_page(
        charts.composition_chart(pd.DataFrame({"cell_type": ["a", "b"], "sample": ["s1", "s2"]}))
    ).to_dict()
    assert spec["config"]["legend"]["orient"] == "bottom" and spec["width"] == "container"


# --------------------------------------------------------------------------- the landing page
def _meta() -> pd.DataFrame:
    rows = []
    for sig in ("senmayo", "reactome_sasp"):
        for cancer, ds, k in (("oligodendroglioma", "a; b", 3), ("triple-negative breast cancer", WU, 1)):
            for ct, est in (("Macrophage", 0.9), ("T cell", 0.3), ("Malignant cell", 0.5)):
                rows.append(
                    {
                        "cancer_type": cancer,
                        "cell_type": ct,
                        "cell_type_ontology_id": f"CL:{ct}",
                        "signature": sig,
                        "estimate": est,
                        "ci_low": est - 0.05,
                        "ci_high": est + 0.05,
                        "k_samples": k,
                        "k_tumours": k,
                        "k_unrecorded": 0,
                        "k_cohorts": 1,
                        "cohorts": "GEO X" if k == 3 else "GEO Y",
                        "k_datasets": 2 if k == 3 else 1,
                        "datasets": ds,
                        "k_perfect": 0,
                        "min_unit_ci_low": est - 0.1,
                        "max_unit_ci_high": est + 0.1,
                        "coverage": 0.9,
                        "low_coverage": False,
                        "no_malignant_datasets": "",
                        "flag": "",
                        "evidence": "single tumour" if k == 1 else "replicated (3 tumours, 1 cohort)",
                    }
                )
    return pd.DataFrame(rows)


def test_sasp_map_has_a_signature_menu_links_and_evidence():
    spec = charts.sasp_map_chart(_meta(), signature_list=["senmayo", "reactome_sasp"], default="senmayo").to_dict()
    (param,) = spec["params"]
    assert param["bind"]["input"] == "select" and param["bind"]["options"] == ["senmayo", "reactome_sasp"]
    assert param["value"] == "senmayo"
    rect, text = spec["layer"]
    assert rect["encoding"]["href"]["field"] == "url"
    assert "estimate" in json.dumps(rect["encoding"]["color"])
    assert (
        "datum.replicated" in json.dumps(rect["encoding"]["opacity"])
        and text["encoding"]["text"]["field"] == "count_label"
    )
    data = pd.DataFrame(spec["datasets"][spec["data"]["name"]])
    assert set(data["url"]) == {"datasets/a.html", f"datasets/{WU}.html"}  # the first dataset behind a square


def test_key_findings_are_generated_with_their_scope():
    found = pages.key_findings(_meta(), None, signature="senmayo")
    assert 3 <= len(found) <= 5
    assert "Macrophage in oligodendroglioma (balanced AUROC 0.90 [0.85, 0.95], 3 tumours, 1 cohort)" in found[0]
    assert "Macrophage in triple-negative breast cancer (balanced AUROC 0.90 [0.85, 0.95], 1 tumour)" in found[0]
    assert "in 2 of the 2 cancer types where it is measured (4 tumours, 2 cohorts)" in found[1]
    assert "T cell" in found[2] and "below the other cells" in found[2]
    assert found[3].startswith("**Evidence**: 6 of 12")


def test_home_page_markdown(tmp_path):
    meta = _meta().replace({"a; b": WU})
    samples = pd.DataFrame({"dataset": WU, "sample": ["CID4465"]})
    text = home.home_markdown(
        meta, None, signatures=["reactome_sasp", "senmayo"], method="expected", results=tmp_path, samples=samples
    )
    assert text.startswith("# SASP atlas") and "```{raw} html" in text and "fig-home-sasp-map" in text
    assert text.index("## The SASP map") < text.index("## Key findings") < text.index("## References")
    assert references.cite([references.dataset_key(get_dataset(WU))]) in text
    assert "{footbibliography}" in text and "1 dataset from 1 cohort: 1 named tumour" in text
    assert home.home_signatures(meta, ["reactome_sasp", "senmayo"]) == ["senmayo", "reactome_sasp"]


def test_bibliography_has_every_cited_key():
    text = references.bibliography_text()
    keys = set(re.findall(r"@misc\{([^,]+),", text))
    assert {references.dataset_key(d) for d in list_datasets("full")} <= keys
    assert {references.signature_key(r) for r in catalogue().values()} <= keys
    assert text.count("{") == text.count("}")
    assert references.cite(["a", "b", "a", ""]) == "{footcite:p}`a,b`" and references.cite([]) == ""


def test_cite_sources_cites_datasets_then_catalogue_signatures_and_skips_user_sets():
    wu = get_dataset(WU)
    text = references.cite_sources([wu], ["senmayo", "my_own_set", "reactome_sasp", "senmayo"])
    keys = text.removeprefix("{footcite:p}`").removesuffix("`").split(",")
    assert keys == [
        references.dataset_key(wu),
        references.signature_key(catalogue()["senmayo"]),
        references.signature_key(catalogue()["reactome_sasp"]),
    ]
    bib = set(re.findall(r"@misc\{([^,]+),", references.bibliography_text()))
    assert set(keys) <= bib  # every key the page cites resolves in the generated bibliography
    assert references.cite_sources([], ["my_own_set"]) == "" == references.cite_sources()


def test_class_heatmap_keeps_a_panel_without_any_estimate():
    """A dataset whose every class has no estimate keeps its (grey) panel: with Vega-Lite's default
    filtering of invalid values its panel would be an empty mark container, which a screen reader
    meets as an unlabelled image (axe svg-img-alt, seen on a 20-dataset build)."""
    vl_convert = pytest.importorskip("vl_convert")
    rows = [
        {
            "dataset": ds,
            "cancer_type": ct,
            "cell_type": cell,
            "class_label": cls,
            "class_order": order,
            "balanced_effect": np.nan if ds == "B" else 0.6,
            "balanced_ci_low": np.nan if ds == "B" else 0.5,
            "balanced_ci_high": np.nan if ds == "B" else 0.7,
            "share": 0.2,
            "n_cells": 10,
            "n_samples": 1,
            "evidence": "one tumour",
            "n_genes_present": 0 if ds == "B" else 3,
            "low_coverage": False,
        }
        for ds, ct in (("A", "cancer a"), ("B", "cancer b"))
        for cell in ("T cell", "B cell")
        for order, cls in enumerate(("interleukins", "chemokines"))
    ]
    vega = vl_convert.vegalite_to_vega(charts.sasp_class_heatmap(pd.DataFrame(rows)).to_json())
    text = json.dumps(vega)
    # no data-level filter drops the NaN rows; the fill tests no_estimate first (grey)
    assert all(
        "balanced_effect" not in json.dumps(t)
        for d in vega["data"]
        for t in d.get("transform", [])
        if t.get("type") == "filter"
    )
    assert '"test": "datum.no_estimate", "value": "#d9d9d9"' in text
