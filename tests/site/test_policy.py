"""Page policy: what a page shows works for any number of signatures, and its words match its figure."""

from __future__ import annotations

import warnings

import pytest

from sasp_atlas.data import InputWarning
from sasp_atlas.genes import SignatureResolutionWarning, list_signatures
from sasp_atlas.site import policy


@pytest.mark.parametrize("n", [1, 2, 3, 10])
def test_detail_and_method_signatures_take_what_there_is(n):
    sigs = [f"s{i}" for i in range(n)]
    assert policy.detail_signatures(sigs) == sigs[: min(n, policy.N_DETAIL)]
    assert policy.method_signatures(sigs) == sigs[: min(n, policy.N_METHODS)]


def test_gene_figure_prefers_the_secreted_senmayo_subset_and_names_it(mirror):
    sig, sentence = policy.gene_figure_signature(["senmayo", "senmayo_secreted", "reactome_sasp"])
    assert sig == "senmayo_secreted" and "`senmayo_secreted`" in sentence
    # one signature (the IndexError of the old template): the figure and its sentence follow it
    sig, sentence = policy.gene_figure_signature(["fridman_senescence_up"])
    assert sig == "fridman_senescence_up" and "`fridman_senescence_up`" in sentence and "SenMayo" not in sentence
    with pytest.raises(ValueError, match="at least one signature"):
        policy.gene_figure_signature([])


def test_overlap_leaves_out_the_senepy_hubs_by_family(mirror):
    ids = list(list_signatures()["id"])
    shown = policy.overlap_signatures(ids)
    assert shown and all(not i.startswith("senepy_hub_") for i in shown)
    assert len(ids) - len(shown) == sum(i.startswith("senepy_hub_") for i in ids) == 64


def test_setup_page_quiets_named_warnings_only():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy.setup_page()
        warnings.warn("resolved", SignatureResolutionWarning, stacklevel=1)
        warnings.warn("user rule", InputWarning, stacklevel=1)
        warnings.warn("something else", RuntimeWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else"]
