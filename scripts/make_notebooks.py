"""Regenerate the page templates ``notebooks/*.ipynb`` (the committed .ipynb files are its output).

Run ``python scripts/make_notebooks.py`` after editing a template here; ``tests/test_book.py``
checks that the committed notebooks equal what this script writes. Templates stay thin: every
cell calls the package; the first code cell is tagged ``parameters`` (papermill overrides it).
"""

from __future__ import annotations

from pathlib import Path

import nbformat as nbf

ROOT = Path(__file__).resolve().parents[1]
KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
          "language_info": {"name": "python"}}


def md(source: str):
    return nbf.v4.new_markdown_cell(source)


def code(source: str, *tags: str):
    cell = nbf.v4.new_code_cell(source)
    cell.metadata["tags"] = list(tags)
    return cell


SETUP = ('import warnings\n'
         'warnings.filterwarnings("ignore")\n'
         'import logging\n'
         'logging.getLogger("sasp_atlas").setLevel(logging.WARNING)\n'
         'from IPython.display import Markdown, display\n'
         'import sasp_atlas\n'
         'from sasp_atlas import charts, figures, pages\n'
         'charts.enable_offline_renderer()\n')


def dataset_notebook():
    nb = nbf.v4.new_notebook(metadata=KERNEL)
    nb.cells = [
        md("# Dataset page\n\n(The build replaces this heading with the dataset's title.)"),
        code('# Parameters: development defaults; papermill overrides them for each registry entry.\n'
             'dataset_id = "wu2021_breast_tnbc_cid4465"\n'
             'signatures = None  # None: sasp_atlas.pipeline.DEFAULT_SIGNATURES\n'
             'method = "scanpy"\n'
             'random_state = 0\n'
             'results = "results"\n'
             'input_h5ad = None  # a user\'s .h5ad (sasp-atlas score) instead of the registry entry\n'
             'user_options = {}  # options for sasp_atlas.byod.load_user_data (cell_type_key, sample_key, species, ...)',
             "parameters"),
        code(SETUP +
             'from sasp_atlas.pipeline import DEFAULT_SIGNATURES, run_dataset\n'
             'signatures = list(signatures or DEFAULT_SIGNATURES)\n'
             'if input_h5ad:\n'
             '    from sasp_atlas.byod import load_user_data\n'
             '    ds, adata = load_user_data(input_h5ad, **user_options)\n'
             'else:\n'
             '    ds, adata = sasp_atlas.get_dataset(dataset_id), None\n'
             'res = run_dataset(ds.id, signatures=signatures, method=method, random_state=random_state, out_dir=results,\n'
             '                  adata=adata)\n'
             'prov = res.adata.uns["provenance"]\n'
             'fig = dict(datasets=[ds], method=method, page_depth=2, results=results)', "remove-cell"),
        md("## Data and provenance"),
        code('display(Markdown(pages.provenance_markdown(ds, prov["normalisation"])))', "remove-input"),
        md("## Cell-type composition\n\nHarmonised cell types (author labels mapped by the atlas crosswalk; "
           "malignant cells as flagged by the authors), split by sample."),
        code('figures.show("fig-{dataset}-composition", res.cell_scores, signatures=[], **fig)', "remove-input"),
        md("## Signature coverage\n\nGenes of each signature found in this dataset after resolving old gene symbols "
           "to current HGNC symbols (*rescued*: found only thanks to that). A score uses only the genes present; "
           "below the minimum coverage (see Methods) it is flagged and drawn grey, because it no longer measures "
           "the same signature."),
        code('display(Markdown(pages.coverage_markdown(res.coverage)))', "remove-input"),
        md("## Mean score per signature and cell type\n\nControl-gene scores (Tirosh et al. 2016; "
           "`scanpy.tl.score_genes`-exact): mean expression of the signature genes minus that of "
           "expression-matched control genes, per cell, averaged over the cells of each type. Grey: low gene "
           "coverage. Tooltips give the number of cells, of samples, and the coverage."),
        code('figures.show("fig-{dataset}-heatmap", res.celltype_scores, signatures=signatures, **fig)', "remove-input"),
        md("## Is it high? Against random gene sets\n\nA mean score means little alone: its scale depends on the "
           "signature's size and expression. Here each cell type's mean is set against 100 random gene sets with "
           "the same expression-bin composition (empirical p, z). This tests the gene set in these cells; "
           "across-patient replication is the interval in the tables."),
        code('for sig in signatures[:2]:\n'
             '    figures.show("fig-{dataset}-null-{signature}", res.null[res.null.signature == sig], signatures=[sig],\n'
             '                 signature=sig, **fig)', "remove-input"),
        md("## Method sensitivity\n\nThe same signatures scored by four engines (scanpy control-gene score, AUCell, "
           "UCell, z-mean): if the cell-type order changes with the method, read the number with care."),
        code('shown = signatures[:4]\n'
             'conc = res.method_concordance[res.method_concordance.signature.isin(shown)]\n'
             'figures.show("fig-{dataset}-methods", res.method_means[res.method_means.signature.isin(shown)],\n'
             '             signatures=shown, concordance=conc, **fig)\n'
             'display(Markdown(pages.concordance_markdown(conc)))', "remove-input"),
        md("## Score distributions per cell type\n\nBars: interquartile range of per-cell scores; black tick: median; "
           "red diamond: mean."),
        code('for sig in signatures[:2]:\n'
             '    figures.show("fig-{dataset}-distribution-{signature}", res.celltype_scores[res.celltype_scores.signature == sig],\n'
             '                 signatures=[sig], signature=sig, **fig)', "remove-input"),
        md("## Genes behind the scores\n\nWhich signature genes make a cell type score high: mean expression "
           "(colour) and fraction of cells expressing (size), so IL6/CXCL8 can be told from MMPs or SERPINE1 behind "
           "a number."),
        code('for sig in signatures[:2]:\n'
             '    figures.show("fig-{dataset}-genes-{signature}", res.gene_decomposition[res.gene_decomposition.signature == sig],\n'
             '                 signatures=[sig], signature=sig, **fig)', "remove-input"),
        md("## Embedding coloured by score\n\nUMAP of the cells (display only; statistics never use it)."),
        code('for sig in signatures[:2]:\n'
             '    figures.show("fig-{dataset}-umap-{signature}", res.cell_scores.reset_index()[["umap_1", "umap_2", "cell_type", "sample", sig]],\n'
             '                 signatures=[sig], signature=sig, **fig)', "remove-input"),
        md("## Signatures"),
        code('display(Markdown(pages.signature_sources_markdown(signatures)))', "remove-input"),
        md("## Reproduce"),
        code('display(Markdown(pages.reproduce_markdown(ds.id, method=method, random_state=random_state,\n'
             '                                              input_h5ad=input_h5ad)))',
             "remove-input"),
    ]
    return nb


def atlas_notebook():
    nb = nbf.v4.new_notebook(metadata=KERNEL)
    nb.cells = [
        md("# SASP signatures across cell types and cancers"),
        code('# Parameters: papermill overrides them.\n'
             'signatures = None  # None: sasp_atlas.pipeline.DEFAULT_SIGNATURES\n'
             'method = "scanpy"\n'
             'results = "results"', "parameters"),
        code(SETUP +
             'from sasp_atlas.pipeline import DEFAULT_SIGNATURES, collect_tables\n'
             'signatures = list(signatures or DEFAULT_SIGNATURES)\n'
             'tables = collect_tables(results)\n'
             'celltype = tables["celltype_scores"]\n'
             'celltype = celltype[celltype["method"] == method]\n'
             'datasets = [sasp_atlas.get_dataset(d) for d in sorted(celltype["dataset"].unique())]', "remove-cell"),
        md("Mean per-cell score of each signature in each harmonised cell type of each dataset, grouped by cancer "
           "type. Scores are control-gene scores computed within each dataset on log-normalised expression; compare "
           "cell types *within* a dataset, and read across datasets with the gene coverage (tooltip; grey = low "
           "coverage) and the value type in mind. Datasets with one sample (or none recorded) describe that tumour "
           "only."),
        code('display(Markdown(pages.atlas_summary_markdown(celltype)))', "remove-input"),
        md("## Which cell types express the SASP, per cancer\n\nCell types ranked within each dataset, with 95% "
           "bootstrap intervals over samples (over cells where a dataset has a single sample: such an interval "
           "describes that tumour, not its cancer type)."),
        code('fig = dict(datasets=datasets, method=method, page_depth=1, results=results)\n'
             'for sig in signatures[:2]:\n'
             '    figures.show("fig-atlas-ranking-{signature}", celltype[celltype.signature == sig], signatures=[sig],\n'
             '                 signature=sig, **fig)', "remove-input"),
        md("## Genes behind the scores\n\nMean expression and fraction expressing of the secreted SenMayo genes per "
           "cell type in each dataset: the factors (IL6, CXCL8, CCL2, MMPs, SERPINE1, ...) behind each number."),
        code('genes = tables["gene_decomposition"]\n'
             'sig = signatures[1]\n'
             'figures.show("fig-atlas-genes-{signature}", genes[genes.signature == sig], signatures=[sig], signature=sig, **fig)',
             "remove-input"),
        md("## Heatmaps by signature\n\nTooltips: mean with interval, AUROC against the other cells of the same "
           "tumour, n cells, n samples and gene coverage (grey: low coverage)."),
        code('for sig in signatures:\n'
             '    figures.show("fig-atlas-heatmap-{signature}", celltype[celltype.signature == sig], signatures=[sig],\n'
             '                 signature=sig, **fig)', "remove-input"),
        md("## Downloads"),
        code('display(Markdown(pages.downloads_markdown(page_depth=1)))', "remove-input"),
        md("## Signatures"),
        code('display(Markdown(pages.signature_sources_markdown(signatures)))', "remove-input"),
    ]
    return nb


def catalogue_notebook():
    nb = nbf.v4.new_notebook(metadata=KERNEL)
    nb.cells = [
        md("# Signature catalogue"),
        code('# Parameters: papermill overrides them.\nresults = "results"', "parameters"),
        code(SETUP +
             'from sasp_atlas.pipeline import collect_tables\n'
             'from sasp_atlas.signatures import jaccard_matrix, list_signatures\n'
             'catalogue = list_signatures()\n'
             'coverage = collect_tables(results)["coverage"]\n'
             'datasets = [sasp_atlas.get_dataset(d) for d in sorted(coverage["dataset"].unique())]', "remove-cell"),
        md("Every gene set the atlas carries, written by us from verified public copies of the primary sources "
           "(see each family page for genes, citation, licence and curation notes). Genes are scored under their "
           "current HGNC symbols; ambiguous aliases are never resolved silently."),
        code('display(Markdown(pages.catalogue_table_markdown(catalogue)))', "remove-input"),
        md("## Overlap between signatures\n\nJaccard index of the scored gene sets (SenePy hubs are left out here: "
           "64 tissue hubs; see their family page)."),
        code('ids = [i for i in catalogue["id"] if not i.startswith("senepy_hub_")]\n'
             'figures.show("fig-catalogue-jaccard", jaccard_matrix(ids), datasets=[], signatures=ids, method="gene overlap",\n'
             '             page_depth=1, results=results)', "remove-input"),
        md("## Coverage per signature and dataset\n\nFraction of each signature's genes measured in each dataset after "
           "symbol resolution; red outline: below the minimum coverage (scores flagged). Table: "
           "`results/tables/coverage.csv`."),
        code('figures.show("fig-catalogue-coverage", coverage, datasets=datasets, signatures=list(catalogue["id"]),\n'
             '             method="gene matching", page_depth=1, results=results)', "remove-input"),
    ]
    return nb


def table2_notebook():
    nb = nbf.v4.new_notebook(metadata=KERNEL)
    nb.cells = [
        md("# The review's Table 2, tested on data"),
        code('# Parameters: papermill overrides them.\nresults = "results"', "parameters"),
        code(SETUP +
             'from sasp_atlas.pipeline import collect_tables\n'
             'checks = collect_tables(results)["table2_checks"]\n'
             'datasets = [sasp_atlas.get_dataset(d) for d in sorted(checks["dataset"].unique())]', "remove-cell"),
        code('display(Markdown(pages.table2_claim_markdown()))', "remove-input"),
        md("## Method\n\nFor every row and every atlas dataset that contains the row's cell type (mapped through the "
           "atlas crosswalk), the row's genes are scored per cell (control-gene score) and compared between that cell "
           "type and all other cells of the same tumour: AUROC (0.5 = no difference) per sample, averaged over "
           "samples, with a 95% bootstrap interval over samples (over cells for single-sample datasets). "
           "**Supported**: the interval lies above 0.5. **Not testable**: the cell type is absent, or fewer than half "
           "(or fewer than 5) of the row's genes are measured."),
        code('figures.show("fig-table2-forest", checks, datasets=datasets,\n'
             '             signatures=sorted(checks["signature"].unique()), method="scanpy", page_depth=1, results=results)',
             "remove-input"),
        md("## All rows and datasets"),
        code('display(Markdown(pages.table2_checks_markdown(checks)))', "remove-input"),
    ]
    return nb


def main() -> None:
    for name, make in [("dataset", dataset_notebook), ("atlas", atlas_notebook), ("catalogue", catalogue_notebook),
                       ("table2", table2_notebook)]:
        nb = make()
        for i, cell in enumerate(nb.cells):  # stable ids: the files do not change when nothing changed
            cell["id"] = f"{name}-{i:02d}"
        nbf.write(nb, ROOT / "notebooks" / f"{name}.ipynb")


if __name__ == "__main__":
    main()
