"""No published page may say that something was "not verified" or "not re-read" (issue 28, item 5).

The page text generators are run over every record they publish: the signature family pages and the
catalogue table (every catalogue YAML's displayed fields: citation, table, licence, scoring and curation
notes), the Table 2 claim, and the provenance block of every registry dataset of the full profile
(its notes). A fact that could not be checked is stated as what was compared with what.
"""

from __future__ import annotations

import re

import pytest

from sasp_atlas.genes import catalogue, list_signatures
from sasp_atlas.site import pages
from sasp_atlas.site.book import signature_families
from sasp_atlas.sources import list_datasets

UNSETTLED = re.compile(r"not\s+verified|not\s+re-?read", re.IGNORECASE)


def _unsettled(text: str) -> list[str]:
    return [text[max(0, m.start() - 80) : m.end() + 40] for m in UNSETTLED.finditer(text)]


def test_the_phrases_are_caught():
    assert _unsettled("licence NOT verified") and _unsettled("rows not re-read from the article")
    assert _unsettled("not\nverified") and not _unsettled("verified against the file; re-read from the table")


@pytest.mark.parametrize("family", signature_families())
def test_family_pages_state_facts(family):
    assert _unsettled(pages.family_page_markdown(family)) == []


def test_catalogue_table_and_table2_claim_state_facts():
    assert _unsettled(pages.catalogue_table_markdown(list_signatures())) == []
    assert _unsettled(pages.table2_claim_markdown()) == []


def test_every_displayed_catalogue_field_states_facts():
    for sid, rec in catalogue().items():
        fields = [
            rec.get("name"),
            rec.get("description"),
            rec.get("license"),
            rec.get("scoring_note"),
            *(rec.get("source") or {}).values(),
            *(rec.get("curation_notes") or []),
        ]
        text = "\n".join(str(f) for f in fields if f)
        assert _unsettled(text) == [], sid


@pytest.mark.parametrize("ds", list_datasets("full"), ids=lambda d: d.id)
def test_dataset_provenance_states_facts(ds):
    # what provenance_markdown prints besides the pinned files (unpinned entries have no sha256 to print yet)
    shown = [ds["title"], ds["publication"]["citation"], ds["license"], ds.get("notes") or ""]
    assert _unsettled("\n".join(map(str, shown))) == []
    if all(f.get("sha256") for f in ds.files):
        assert _unsettled(pages.provenance_markdown(ds, "as released")) == []


def test_the_table2_page_cites_the_review_by_doi_with_its_licence():
    claim = pages.table2_claim_markdown()
    assert "Junaid M" in claim and "Mol Cells. 2022;45(9):610-619" in claim
    assert "[doi:10.14348/molcells.2022.0036](https://doi.org/10.14348/molcells.2022.0036)" in claim
    assert "CC BY-NC-SA 3.0" in claim
