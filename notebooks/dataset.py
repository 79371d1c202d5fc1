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
# # Dataset page
#
# (The build replaces this heading with the dataset's title.)

# %% tags=["parameters"]
# Parameters: development defaults; papermill overrides them for each registry entry.
dataset_id = "wu2021_breast_tnbc_cid4465"
signatures = None  # None: sasp_atlas.atlas.DEFAULT_SIGNATURES
method = "expected"  # the seed-free control-gene score (sasp_atlas.engines.DEFAULT_METHOD)
random_state = 0
results = "results"
input_h5ad = None  # a user's file (sasp-atlas score) instead of the registry entry: the report of its run
scored_h5ad = None  # that run's scored.h5ad (or report_cells.h5ad of --dask); its tables are under `results`
all_cells_table = None  # --dask: that run's celltype_scores.csv of all cells (compared in the report's banner)

# %% tags=["remove-cell"]
from IPython.display import Markdown, display

import sasp_atlas
from sasp_atlas.site import figures, pages, policy, references
from sasp_atlas.stats import communication

policy.setup_page()
from sasp_atlas.atlas import COMPARED_METHODS, DEFAULT_SIGNATURES, read_scored_tables, run_dataset

signatures = list(signatures or DEFAULT_SIGNATURES)
if input_h5ad:  # sasp-atlas score computed once and wrote the tables: the report only reads them
    ds, res = read_scored_tables(scored_h5ad, results)
else:
    ds = sasp_atlas.get_dataset(dataset_id)
    res = run_dataset(ds.id, signatures=signatures, method=method, random_state=random_state, out_dir=results)
detail = policy.detail_signatures(signatures)
prov = res.adata.uns["provenance"]
fig = dict(datasets=[ds], method=method, page_depth=2, results=results)
site_page = not input_h5ad  # the site cites with footnotes; a user's standalone report does not
subsample = res.adata.uns.get("report_subsample")  # sasp-atlas score --dask: the report's cells
cited = references.cite_sources([ds], signatures) if site_page else ""

# %% tags=["remove-input"]
if subsample:
    display(Markdown(pages.report_subsample_markdown(subsample, res.celltype_scores,
                                                     all_cells_table)))
display(Markdown(pages.dataset_motivation(ds, res.celltype_scores, cite=cited)))

# %% [markdown]
# ## Data and provenance

# %% tags=["remove-input"]
display(Markdown(pages.provenance_markdown(ds, prov["normalisation"])))

# %% [markdown]
# ## Cell-type composition
#
# Harmonised cell types (author labels mapped by the atlas crosswalk; malignant cells as flagged by the authors), split by sample.

# %% tags=["remove-input"]
figures.show("fig-{dataset}-composition", res.cell_scores, signatures=[], **fig)

# %% [markdown]
# ## Signature coverage
#
# Genes of each signature found in this dataset after resolving old gene symbols to current HGNC symbols (*rescued*: found only thanks to that). A score uses only the genes present; below the minimum coverage (see Methods) it is flagged and drawn grey, because it no longer measures the same signature.

# %% tags=["remove-input"]
display(Markdown(pages.coverage_markdown(res.coverage)))

# %% [markdown]
# ## Mean score per signature and cell type
#
# Control-gene scores (Tirosh et al. 2016), seed-free: mean expression of the signature genes minus that of expression-matched control genes (every gene of the matched expression bins, weighted by its chance of being drawn; see Methods), per cell, averaged over the cells of each type. Grey: low gene coverage. Tooltips give the number of cells, the evidence (how many tumours), the q-value against random gene sets, any known caveat of the signature, and the coverage.

# %% tags=["remove-input"]
figures.show("fig-{dataset}-heatmap", res.celltype_scores, signatures=signatures, **fig)

# %% [markdown]
# ## Is it high? Against random gene sets
#
# A mean score means little alone: its scale depends on the signature's size and expression. Here each cell type's mean is set against 1,000 random gene sets with the same expression-bin composition (empirical p and z; Benjamini–Hochberg q over the dataset's table in `celltype_scores.csv`, with a within-tumour label-permutation test of specificity). This tests the gene set in these cells; across-patient replication is the evidence column and the interval in the tables.

# %% tags=["remove-input"]
for sig in detail:
    figures.show("fig-{dataset}-null-{signature}", res.null[res.null.signature == sig], signatures=[sig],
                 signature=sig, extra_caption=pages.coverage_caption(res.coverage, sig), **fig)

# %% [markdown]
# ## Method sensitivity

# %% tags=["remove-input"]
display(Markdown(pages.methods_compared_markdown(res.method_means, COMPARED_METHODS)))
shown = policy.method_signatures(signatures)
conc = res.method_concordance[res.method_concordance.signature.isin(shown)]
figures.show("fig-{dataset}-methods", res.method_means[res.method_means.signature.isin(shown)],
             signatures=shown, concordance=conc, **fig)
display(Markdown(pages.concordance_markdown(conc)))

# %% [markdown]
# ## Score distributions per cell type
#
# Bars: interquartile range of per-cell scores; black tick: median; red diamond: mean.

# %% tags=["remove-input"]
for sig in detail:
    figures.show("fig-{dataset}-distribution-{signature}", res.celltype_scores[res.celltype_scores.signature == sig],
                 signatures=[sig], signature=sig, extra_caption=pages.coverage_caption(res.coverage, sig), **fig)

# %% [markdown]
# ## Genes behind the scores
#
# Which signature genes make a cell type score high: mean expression (colour) and fraction of cells expressing (size), so IL6/CXCL8 can be told from MMPs or SERPINE1 behind a number.

# %% tags=["remove-input"]
for sig in detail:
    figures.show("fig-{dataset}-genes-{signature}", res.gene_decomposition[res.gene_decomposition.signature == sig],
                 signatures=[sig], signature=sig, extra_caption=pages.coverage_caption(res.coverage, sig), **fig)

# %% [markdown]
# ## SASP composition
#
# The SASP is not one thing: which classes of secreted factor (interleukins, CXC and CC chemokines, MMPs, TIMPs and serpins, IGFBPs, growth factors, the TNF superfamily, ECM and other secreted proteins) make up a cell type's SASP expression? Each SASP gene of SenMayo, the Basisty core SASP and Reactome's SASP has one class with its source (`tables/sasp_classes.csv`); a class's share is the linear expression of its genes over that of all classified SASP genes present, per tumour, then averaged over tumours (`sasp_class_scores.csv`).

# %% tags=["remove-input"]
figures.show("fig-{dataset}-sasp-composition", res.sasp_class_scores, signatures=[], **fig)
display(Markdown(pages.composition_markdown(res.sasp_class_scores)))

# %% [markdown]
# ## SASP communication
#
# Senescent cells act on their neighbours through what they secrete. Which cell types send SASP ligands to which receivers in these tumours? LIANA scores every sender → receiver pair of a SASP ligand and its receptor in each tumour; the table counts the tumours in which a pair was specific to that sender and receiver.

# %% tags=["remove-input"]
display(Markdown(pages.communication_resource_markdown(communication.resource_provenance(),
                                                       communication.resource_pair_counts())))
if (res.sasp_communication["n_samples_found"] > 0).any():
    figures.show("fig-{dataset}-sasp-communication", res.sasp_communication, signatures=[], **fig)
display(Markdown(pages.communication_markdown(res.sasp_communication)))
display(Markdown(pages.sender_split_markdown(res.sasp_sender_split)))

# %% [markdown]
# ## Senescence index (hUSI) and the SASP
#
# Are the SASP-high cells the senescence-index-high cells? Each cell's hUSI (the raw Spearman correlation of its expression of the index's genes with the published model weights) is a score like the signatures above: its per-tumour effect is in the tables (signature `husi`). Here, within each cell type and tumour, the rank correlation of each signature with hUSI, pooled over tumours on Fisher's z scale (the tumour is the unit).

# %% tags=["remove-input"]
display(Markdown(pages.husi_association_markdown(res.husi_association, res.celltype_scores)))

# %% [markdown]
# ## Embedding coloured by score
#
# UMAP of the cells (display only; statistics never use it).

# %% tags=["remove-input"]
for sig in detail:
    figures.show("fig-{dataset}-umap-{signature}", res.cell_scores.reset_index()[["umap_1", "umap_2", "cell_type", "sample", sig]],
                 signatures=[sig], signature=sig, extra_caption=pages.coverage_caption(res.coverage, sig), **fig)

# %% [markdown]
# ## Signatures

# %% tags=["remove-input"]
display(Markdown(pages.signature_sources_markdown(signatures)))

# %% [markdown]
# ## Reproduce

# %% tags=["remove-input"]
display(Markdown(pages.reproduce_markdown(ds.id, method=method, random_state=random_state,
                                              input_h5ad=input_h5ad, lazy=bool(subsample))))

# %% [markdown]
# ## Key takeaways

# %% tags=["remove-input"]
display(Markdown(pages.takeaways_markdown(pages.dataset_takeaways(res.celltype_scores, detail))))

# %% tags=["remove-input"]
if site_page:
    display(Markdown(references.references_section()))
