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
from sasp_atlas.site import figures, pages, policy, references

policy.setup_page()
from sasp_atlas.atlas import DEFAULT_SIGNATURES, read_collected_tables

signatures = list(signatures or DEFAULT_SIGNATURES)
tables = read_collected_tables(results)  # written once by the build (collect_tables) before this page
celltype = tables["celltype_scores"]
celltype = celltype[celltype["method"] == method]
datasets = [sasp_atlas.get_dataset(d) for d in sorted(celltype["dataset"].unique())]
cited = references.cite_sources(datasets, signatures)
coverage, built = tables.get("coverage"), [d.id for d in datasets]

# %% [markdown]
# Does a cell type's SASP score hold across tumours, datasets and cancers? This page ranks cell types within each dataset, shows the genes behind the scores, and compares datasets on a scale-free effect (AUROC against the rest of the tumour), never on raw scores, whose scale depends on the platform.

# %% tags=["remove-input"]
display(Markdown(f"Data and signatures: {cited}\n\n" + pages.atlas_summary_markdown(celltype)))

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
                 signature=sig, extra_caption=pages.coverage_caption(coverage, sig, datasets=built), **fig)

# %% [markdown]
# ## Genes behind the scores

# %% tags=["remove-input"]
genes = tables["gene_decomposition"]
sig, sentence = policy.gene_figure_signature(signatures)
display(Markdown(sentence))
figures.show("fig-atlas-genes-{signature}", genes[genes.signature == sig], signatures=[sig], signature=sig,
             extra_caption=pages.coverage_caption(coverage, sig, datasets=built), **fig)

# %% [markdown]
# ## Each signature across datasets and cancer types
#
# AUROC of each cell type's score against the other cells of the same tumour (0.5: no difference; a scale-free effect, comparable across datasets and platforms). Tooltips: the mean raw score with its interval (within its dataset), n cells, n samples, evidence and gene coverage.

# %% tags=["remove-input"]
for sig in signatures:
    figures.show("fig-atlas-heatmap-{signature}", celltype[celltype.signature == sig], signatures=[sig],
                 signature=sig, extra_caption=pages.coverage_caption(coverage, sig, datasets=built), **fig)

# %% [markdown]
# ## SASP composition across cancers
#
# Which classes of SASP factor each cell type expresses more than the other cells of its tumours: the composition-balanced AUROC of each class's score (0.5: no difference), per dataset and cancer type. The shares of each class, per cell type, are on the dataset pages and in `sasp_class_scores.csv`; the class of every SASP gene and its source in `sasp_classes.csv`.

# %% tags=["remove-input"]
figures.show("fig-atlas-sasp-classes", tables["sasp_class_scores"], signatures=[], **fig)

# %% [markdown]
# ## Downloads

# %% tags=["remove-input"]
display(Markdown(pages.downloads_markdown(page_depth=1)))

# %% [markdown]
# ## Signatures

# %% tags=["remove-input"]
display(Markdown(pages.signature_sources_markdown(signatures)))

# %% [markdown]
# ## Key takeaways

# %% tags=["remove-input"]
display(Markdown(pages.takeaways_markdown(pages.key_findings(tables["meta_analysis"], tables.get("table2_checks"),
                                                             signature=policy.headline_signature(signatures)))))
display(Markdown(references.references_section()))
