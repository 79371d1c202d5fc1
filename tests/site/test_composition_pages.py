"""The SASP composition on the pages: the per-dataset composition bars and the cross-cancer class
heatmap drawn from the real class tables, and the generated table naming each cell type's leading
classes with the tumours behind them."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from conftest import MGH, WU

from sasp_atlas.site import figures, pages
from sasp_atlas.sources import get_dataset
from sasp_atlas.stats.composition import sasp_class_scores


@pytest.fixture(scope="module")
def class_tables(wu, mgh):
    return {
        WU: sasp_class_scores(wu, dataset_id=WU, cancer_type="breast cancer"),
        MGH: sasp_class_scores(mgh, dataset_id=MGH, cancer_type="oligodendroglioma"),
    }


def test_composition_figure_draws_shares_per_cell_type(class_tables, tmp_path):
    scores = class_tables[WU]
    out = figures.render(
        "fig-{dataset}-sasp-composition",
        scores,
        datasets=[get_dataset(WU)],
        signatures=[],
        method="expected",
        page_depth=2,
        results=tmp_path,
    )
    svg = (tmp_path / "figures" / f"fig-{WU}-sasp-composition.svg").read_text()
    assert "<svg" in svg and "CXC chemokines" in svg and "share of SASP expression" in svg
    caption = re.sub(r"<[^>]+>", "", re.search(r'<p class="sasp-caption">(.*?)</p>', out, re.S).group(1))
    assert "1 tumour in 1 dataset" in caption and len(caption) <= figures.MAX_CAPTION
    drawn = pd.read_csv(tmp_path / "figures" / f"fig-{WU}-sasp-composition.csv")
    sums = drawn.groupby("cell_type")["share"].sum()
    assert ((sums - 1).abs() < 1e-5).all()  # the CSV behind the bars sums to 1 (6 significant digits)


def test_class_heatmap_across_datasets_greys_classes_without_genes(class_tables, tmp_path):
    both = pd.concat(class_tables.values(), ignore_index=True)
    figures.render(
        "fig-atlas-sasp-classes",
        both,
        datasets=[get_dataset(WU), get_dataset(MGH)],
        signatures=[],
        method="expected",
        page_depth=1,
        results=tmp_path,
    )
    spec = (tmp_path / "figures" / "fig-atlas-sasp-classes.svg").read_text()
    assert "breast cancer — " + WU in spec and "oligodendroglioma — " + MGH in spec
    assert both["balanced_effect"].between(0, 1).all() or both["balanced_effect"].isna().any()


def test_composition_markdown_names_leading_classes_with_their_scope(class_tables):
    text = pages.composition_markdown(class_tables[MGH])
    rows = [line for line in text.splitlines()[2:]]
    scores = class_tables[MGH]
    assert len(rows) == scores.loc[scores["share"].notna(), "cell_type"].nunique()
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        g = scores[(scores["cell_type"] == cells[0]) & scores["share"].notna()].sort_values("share", ascending=False)
        assert cells[1] == f"{g.iloc[0]['class_label']} ({g.iloc[0]['share']:.0%})"
        assert cells[3] == str(int(g.iloc[0]["n_samples"])) and cells[4] == g.iloc[0]["evidence"]
    assert pages.composition_markdown(scores.assign(share=float("nan"))).startswith("No cell type")
