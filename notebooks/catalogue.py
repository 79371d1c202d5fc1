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
# # Signature catalogue

# %% tags=["parameters"]
# Parameters: papermill overrides them.
results = "results"

# %% tags=["remove-cell"]
from IPython.display import Markdown, display

import sasp_atlas
from sasp_atlas.site import figures, pages, policy, references

policy.setup_page()
from sasp_atlas.atlas import read_collected_tables
from sasp_atlas.genes import catalogue as catalogue_records
from sasp_atlas.genes import jaccard_matrix, list_signatures

catalogue = list_signatures()
coverage = read_collected_tables(results)["coverage"]
datasets = [sasp_atlas.get_dataset(d) for d in sorted(coverage["dataset"].unique())]

# %% [markdown]
# Every gene set the atlas carries, written by us from verified public copies of the primary sources (see each family page for genes, citation, licence and curation notes). Genes are scored under their current HGNC symbols; ambiguous aliases are never resolved silently.

# %% tags=["remove-input"]
display(Markdown(pages.catalogue_table_markdown(catalogue)))

# %% [markdown]
# ## Overlap between signatures
#
# Jaccard index of the scored gene sets (SenePy hubs are left out here: 64 tissue hubs; see their family page).

# %% tags=["remove-input"]
ids = policy.overlap_signatures(catalogue["id"])
figures.show("fig-catalogue-jaccard", jaccard_matrix(ids), datasets=[], signatures=ids, method="gene overlap",
             page_depth=1, results=results)

# %% [markdown]
# ## Coverage per signature and dataset
#
# Fraction of each signature's genes measured in each dataset after symbol resolution; red outline: below the minimum coverage (scores flagged). Table: `results/tables/coverage.csv`.

# %% tags=["remove-input"]
figures.show("fig-catalogue-coverage", coverage, datasets=datasets, signatures=list(catalogue["id"]),
             method="gene matching", page_depth=1, results=results)

# %% [markdown]
# ## Key takeaways

# %% tags=["remove-input"]
display(Markdown(pages.takeaways_markdown(pages.catalogue_takeaways(catalogue, coverage))))
display(Markdown("Sources: " + references.cite(references.signature_key(r) for r in catalogue_records().values())))
display(Markdown(references.references_section()))
