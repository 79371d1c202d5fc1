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
# # SASP signatures across cell types and cancers

# %% tags=["parameters"]
# Parameters: papermill overrides them.
signatures = None  # None: sasp_atlas.atlas.DEFAULT_SIGNATURES
method = "expected"  # the seed-free control-gene score (sasp_atlas.engines.DEFAULT_METHOD)
results = "results"

# %% tags=["remove-cell"]
from IPython.display import Markdown, display
import sasp_atlas
from sasp_atlas.site import figures, pages, policy
policy.setup_page()
from sasp_atlas.atlas import DEFAULT_SIGNATURES, collect_tables
signatures = list(signatures or DEFAULT_SIGNATURES)
tables = collect_tables(results)
celltype = tables["celltype_scores"]
celltype = celltype[celltype["method"] == method]
datasets = [sasp_atlas.get_dataset(d) for d in sorted(celltype["dataset"].unique())]

# %% [markdown]
# Mean per-cell score of each signature in each harmonised cell type of each dataset, grouped by cancer type. Scores are control-gene scores computed within each dataset on log-normalised expression; compare cell types *within* a dataset, and read across datasets with the gene coverage (tooltip; grey = low coverage) and the value type in mind. Datasets with one sample (or none recorded) describe that tumour only.

# %% tags=["remove-input"]
display(Markdown(pages.atlas_summary_markdown(celltype)))

# %% [markdown]
# ## Scope: which cancers, how many donors, how far each source is trusted
#
# Every registry dataset (the core build and the full profile), with its donors and trust level (*published*: the host publishes each file's hash; *pinned on first download*: the atlas recorded the hash on its first download), and which rows of the review's Table 2 can be tested in the cancer type the review names.

# %% tags=["remove-input"]
display(Markdown(pages.atlas_scope_markdown(built=set(celltype["dataset"]))))

# %% [markdown]
# ## Which cell types express the SASP, per cancer
#
# Cell types ranked within each dataset, with 95% intervals over tumours (random-effects; over cells where a dataset has a single tumour: such an interval describes that tumour, not its cancer type). Filled points rest on at least 3 tumours; open points on fewer — the label says how many.

# %% tags=["remove-input"]
fig = dict(datasets=datasets, method=method, page_depth=1, results=results)
for sig in policy.detail_signatures(signatures):
    figures.show("fig-atlas-ranking-{signature}", celltype[celltype.signature == sig], signatures=[sig],
                 signature=sig, **fig)

# %% [markdown]
# ## Genes behind the scores

# %% tags=["remove-input"]
genes = tables["gene_decomposition"]
sig, sentence = policy.gene_figure_signature(signatures)
display(Markdown(sentence))
figures.show("fig-atlas-genes-{signature}", genes[genes.signature == sig], signatures=[sig], signature=sig, **fig)

# %% [markdown]
# ## Heatmaps by signature
#
# Tooltips: mean with interval, AUROC against the other cells of the same tumour, n cells, n samples and gene coverage (grey: low coverage).

# %% tags=["remove-input"]
for sig in signatures:
    figures.show("fig-atlas-heatmap-{signature}", celltype[celltype.signature == sig], signatures=[sig],
                 signature=sig, **fig)

# %% [markdown]
# ## Downloads

# %% tags=["remove-input"]
display(Markdown(pages.downloads_markdown(page_depth=1)))

# %% [markdown]
# ## Signatures

# %% tags=["remove-input"]
display(Markdown(pages.signature_sources_markdown(signatures)))
