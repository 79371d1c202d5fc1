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
from sasp_atlas.site import figures, pages, policy
policy.setup_page()
from sasp_atlas.atlas import collect_tables
checks = collect_tables(results)["table2_checks"]
datasets = [sasp_atlas.get_dataset(d) for d in sorted(checks["dataset"].unique())]

# %% tags=["remove-input"]
display(Markdown(pages.table2_claim_markdown()))

# %% [markdown]
# ## Method
#
# For every row and every atlas dataset that contains the row's cell type (mapped through the atlas crosswalk), the row's genes are scored per cell (control-gene score) and compared between that cell type and all other cells of the same tumour: AUROC (0.5 = no difference) per sample, averaged over samples, with a 95% bootstrap interval over samples (over cells for single-sample datasets). **Supported**: the interval lies above 0.5. **Not testable**: the cell type is absent, or fewer than half (or fewer than 5) of the row's genes are measured.

# %% tags=["remove-input"]
figures.show("fig-table2-forest", checks, datasets=datasets,
             signatures=sorted(checks["signature"].unique()), method="scanpy", page_depth=1, results=results)

# %% [markdown]
# ## All rows and datasets

# %% tags=["remove-input"]
display(Markdown(pages.table2_checks_markdown(checks)))
