# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Which signatures detect senescence?

# %% tags=["parameters"]
# Parameters: papermill overrides them.
results = "results"
method = "expected"

# %% tags=["remove-cell"]
from IPython.display import Markdown, display

from sasp_atlas.site import figures, pages, policy, references

policy.setup_page()
from sasp_atlas.atlas.validity import ground_truth_sources_markdown, read_validity_tables
from sasp_atlas.sources import get_ground_truth

tables = read_validity_tables(results)
pooled, units = tables["signature_validity_pooled"], tables["signature_validity_units"]
shown = pooled[(pooled["method"] == method) & (pooled["control"] == "non-senescent")]
shown_units = units[(units["method"] == method) & (units["control"].isin(["proliferating", "control"]))
                    | (units["method"] == "husi")]
shown = shown._append(pooled[(pooled["method"] == "husi") & (pooled["control"] == "non-senescent")])
benchmarks = tables["ground_truth"]

# %% tags=["remove-input"]
display(Markdown("No single marker detects senescent cells unequivocally, so every signature the atlas scores is "
                 "measured here against labelled ground truth: samples or cells known to be senescent, and their "
                 "non-senescent controls. A signature that cannot tell them apart, or that scores senescent samples "
                 "*lower* (because it follows proliferation or cell identity), says little about senescence in a "
                 "tumour, whatever its name. Every signature of the catalogue and the hUSI senescence index "
                 f"{references.cite(['husi2025'])} are tested on the data sets below "
                 f"{references.cite(references.dataset_key(get_ground_truth(i)) for i in benchmarks['id'])}."))

# %% [markdown]
# ## The ground truth

# %% tags=["remove-input"]
display(Markdown(ground_truth_sources_markdown(benchmarks)))

# %% [markdown]
# ## Method
#
# Each signature is scored with the atlas default engine (and a rank engine, UCell, in the tables); bulk samples are scored as samples. Per **unit of replication** (a fibroblast strain; where every unit holds one condition only, as for replicate mice, the units themselves are compared), the AUROC of the score in senescent vs non-senescent observations, with Newcombe's score interval, which keeps a width when 3 vs 3 samples separate perfectly (no unit is ever dropped). Units are pooled by random effects (Knapp-Hartung t intervals below 5 units), then data sets the same way; quiescent controls are never pooled with proliferating ones. A data set that a signature was derived from, or that an index was trained on, is flagged (`training_overlap`) and the label uses the estimate without it when one exists. **Labels**: *detects* (pooled AUROC ≥ 0.75 and the interval above 0.5), *weak* (interval above 0.5), *no signal* (interval covers 0.5), *inverse* (interval below 0.5: senescent samples score lower), *untested* (no data set measures enough of its genes). Full rules on the Methods page.

# %% tags=["remove-input"]
figures.show("fig-validity-forest", shown_units, datasets=[], signatures=sorted(shown["signature"]), method=method,
             page_depth=1, results=results, pooled=shown,
             extra_caption=f"{len(benchmarks)} ground-truth data sets; {int(shown['n_units'].max())} units at most.")

# %% [markdown]
# ## Every signature

# %% tags=["remove-input"]
display(Markdown(pages.validity_table_markdown(pooled, method=method)))

# %% [markdown]
# ## Key takeaways

# %% tags=["remove-input"]
display(Markdown(pages.takeaways_markdown(pages.validity_takeaways(pooled, method=method))))
display(Markdown(references.references_section()))
