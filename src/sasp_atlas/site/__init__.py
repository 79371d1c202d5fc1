"""Layer 7, site: charts, citable figures, page text, page policy, the papermill runner, the
Jupyter Book build, the standalone report of a user's file and the browser check."""
