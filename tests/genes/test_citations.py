"""Every signature and dataset the atlas publishes is cited in full, without hedges.

* No citation text may say that it was "not verified", "not re-read", "not seen in", "unverified" or "not
  checked": a published page must not print the curators' working notes (they belong in ``curation_notes``).
* Every signature source is identified: a DOI (``source.doi``, or printed in the citation), or for a preprint the
  word "preprint" with its DOI, or for a web resource without a publication (a knowledgebase pathway) its URL.
  ``source.doi`` stays equal to the reference gene-set file (``test_citation_ids_match_reference``); where that file
  records no DOI the verified DOI is printed in the citation text.
* The dataset publications of ``data_registry.yaml`` (``datasets[*].publication.citation``) obey the same phrase ban.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sasp_atlas.genes import catalogue

REGISTRY_YAML = Path(__file__).resolve().parents[2] / "data_registry.yaml"

HEDGES = ("not verified", "not re-read", "not seen in", "unverified", "not checked")
HEDGE_RE = re.compile("|".join(re.escape(h) for h in HEDGES), re.IGNORECASE)
DOI_RE = re.compile(r"\b(10\.\d{4,9}/[^\s,;]+[^\s,;.)])")
PREPRINT_RE = re.compile(r"preprint|biorxiv|medrxiv|arxiv", re.IGNORECASE)

#: families whose source is a web resource (a knowledgebase entry), not a publication: identified by URL
WEB_RESOURCE_FAMILIES = {"reactome"}
#: journal articles whose DOI could not be confirmed from public sources; they must keep PMID and URL, and the
#: entry must be removed once a DOI is added (test_no_doi_exceptions_are_current)
NO_DOI_ARTICLES = {"kamminga_senescence": "Blood 2006;107(5):2170 (PMID 16293602); DOI not confirmed"}

CATALOGUE = catalogue()
SIGNATURE_IDS = sorted(CATALOGUE)


def _dois(src: dict) -> set[str]:
    found = set(DOI_RE.findall(str(src.get("citation") or "")))
    if src.get("doi"):
        found.add(str(src["doi"]))
    return found


def _registry_citations() -> list[tuple[str, str]]:
    doc = yaml.safe_load(REGISTRY_YAML.read_text())
    return [(ds["id"], str((ds.get("publication") or {}).get("citation") or "")) for ds in doc["datasets"]]


def test_hedge_regex():
    for bad in (
        "Nature. 2023 (volume/pages/DOI not verified in the public sources consulted).",
        "paper NOT verified",
        "journal details not re-read",
        "not seen in the copy",
        "Unverified title",
        "S-table number not checked",
    ):
        assert HEDGE_RE.search(bad), bad
    assert not HEDGE_RE.search(
        "Gavish A, et al., Tirosh I. Hallmarks ... Nature 618, 598-606 (2023). doi:10.1038/s41586-023-06130-4"
    )
    assert DOI_RE.findall("... (2023). doi:10.1038/s41586-023-06130-4") == ["10.1038/s41586-023-06130-4"]
    assert DOI_RE.findall("Earlier version: bioRxiv preprint, doi:10.1101/2023.11.21.568150.") == [
        "10.1101/2023.11.21.568150"
    ]


@pytest.mark.parametrize("sid", SIGNATURE_IDS)
def test_signature_citation_has_no_hedge(sid):
    citation = str(CATALOGUE[sid]["source"].get("citation") or "")
    assert citation.strip(), f"{sid}: empty citation"
    hit = HEDGE_RE.search(citation)
    assert not hit, f"{sid}: citation says {hit.group(0)!r}: {citation}"


@pytest.mark.parametrize("sid", SIGNATURE_IDS)
def test_signature_source_is_identified(sid):
    rec = CATALOGUE[sid]
    src = rec["source"]
    citation = str(src.get("citation") or "")
    dois = _dois(src)
    url = str(src.get("url") or "")
    for doi in dois:
        assert re.fullmatch(r"10\.\d{4,9}/\S+", doi), f"{sid}: malformed DOI {doi!r}"
    if src.get("doi"):
        # a DOI field and a DOI printed in the text must not name two different works
        printed = set(DOI_RE.findall(citation))
        assert not printed or str(src["doi"]) in printed, f"{sid}: source.doi {src['doi']} not among {printed}"
    if PREPRINT_RE.search(citation):
        assert "preprint" in citation.lower(), f"{sid}: a preprint must be cited as 'preprint'"
        assert dois or url.startswith("https://"), f"{sid}: preprint without DOI or URL"
    if rec.get("family") in WEB_RESOURCE_FAMILIES:
        assert url.startswith("https://"), f"{sid}: web resource without URL"
        return
    if sid in NO_DOI_ARTICLES:
        assert src.get("pmid") and url.startswith("https://"), f"{sid}: no DOI, so PMID and URL are required"
        return
    assert dois, f"{sid}: no DOI in source.doi or in the citation text: {citation}"


def test_no_doi_exceptions_are_current():
    for sid in NO_DOI_ARTICLES:
        assert sid in CATALOGUE, f"{sid}: listed in NO_DOI_ARTICLES but not catalogued"
        assert not _dois(CATALOGUE[sid]["source"]), f"{sid} now has a DOI: remove it from NO_DOI_ARTICLES"


def test_dataset_publication_citations_have_no_hedge():
    cites = _registry_citations()
    assert cites, "no datasets in data_registry.yaml"
    bad = {ds: HEDGE_RE.search(c).group(0) for ds, c in cites if HEDGE_RE.search(c)}
    assert not bad, f"dataset citations with hedges: {bad}"
    empty = [ds for ds, c in cites if not c.strip()]
    assert not empty, f"datasets without a publication citation: {empty}"
