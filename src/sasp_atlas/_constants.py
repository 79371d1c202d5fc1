"""The names of the ``obs``, ``obsm`` and ``uns`` slots every layer reads and writes (as liana's
``_constants.py``): one definition each, so a reader's ``key=`` / ``sample_key=`` / ``groupby=``
default and the writer's ``key_added`` cannot drift apart. The lowest layer of the import contract:
it imports nothing."""

from __future__ import annotations

__all__ = ["SCORES_KEY", "SAMPLE_KEY", "CELL_TYPE_KEY", "PROVENANCE_KEY"]

#: ``obsm`` (cells x signatures) and ``uns`` (method, parameters, genes used) slot of the scores
SCORES_KEY = "sasp_scores"
#: ``obs`` column of the sample (tumour, patient): the unit of replication of every statistic
SAMPLE_KEY = "sample"
#: ``obs`` column of the harmonised cell types: the default grouping (``groupby``)
CELL_TYPE_KEY = "cell_type"
#: ``uns`` slot of a loaded dataset's provenance (cancer type, value type, source)
PROVENANCE_KEY = "provenance"
