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
# # The review's Table 2, tested on data

# %% tags=["parameters"]
# Parameters: papermill overrides them.
results = "results"

# %% tags=["remove-cell"]
from IPython.display import Markdown, display

import sasp_atlas
from sasp_atlas.site import figures, pages, policy, references

policy.setup_page()
from sasp_atlas.atlas import read_collected_tables
from sasp_atlas.genes import signature_record

checks = read_collected_tables(results)["table2_checks"]
datasets = [sasp_atlas.get_dataset(d) for d in sorted(checks["dataset"].unique())]
review = references.signature_key(signature_record(checks["signature"].iloc[0]))

# %% tags=["remove-input"]
display(Markdown(f"A 2022 review {references.cite([review])} tabulates which cell types express which SASP genes in "
                 "which cancers. Are those claims visible in public single-cell data? Each row is tested on every "
                 f"dataset that has its cell type {references.cite(references.dataset_key(d) for d in datasets)}, "
                 "with a verdict that says in which cancer type, and on how many tumours."))

# %% tags=["remove-input"]
display(Markdown(pages.table2_claim_markdown()))

# %% [markdown]
# ## Method
#
# For every row and every atlas dataset that contains the row's cell type (mapped through the atlas crosswalk), the row's genes are scored per cell with the seed-free control-gene score and the cell type is compared with **each other cell type of the same tumour, weighted equally** (composition-balanced AUROC; 0.5 = no difference), per tumour, pooled over tumours by random-effects meta-analysis (a Wald interval over cells when a dataset has one tumour). Verdicts: **supported** — the review's cancer type, AUROC ≥ 0.6 and the 95% interval above 0.5; **supported in another cancer type** — the same, in a cancer type the review does not name (transfer evidence, not confirmation); **contradicted** — the interval entirely below 0.5; **inconclusive: genes barely detected** — every gene of the row is detected in fewer than 10% of the tested cells, so the score there is mostly its control-gene background, whatever the effect; **inconclusive** — everything else testable; **not testable** — the cell type is absent, or fewer than half (or fewer than 5) of the row's genes are measured. A study split into several registry files (two subsets of one cohort) counts once, with the fuller file. Each row also shows the effect without the cell type's own identity genes (a curated lineage-marker list, see Methods), the evidence (how many tumours), and how often each gene is detected.

# %% tags=["remove-input"]
display(Markdown(pages.table2_scope_markdown(checks)))
figures.show("fig-table2-forest", checks, datasets=datasets,
             signatures=sorted(checks["signature"].unique()), method="expected", page_depth=1, results=results)

# %% [markdown]
# ## All rows and datasets

# %% tags=["remove-input"]
display(Markdown(pages.table2_checks_markdown(checks)))

# %% [markdown]
# ## Key takeaways

# %% tags=["remove-input"]
display(Markdown(pages.takeaways_markdown(pages.table2_takeaways(checks))))
display(Markdown(references.references_section()))
