"""The site's bibliography: every cited work as a BibTeX entry, and the roles that cite them.

Pages cite with ``{footcite:p}`` (sphinxcontrib-bibtex, shipped with Jupyter Book) and end with a
References section (``{footbibliography}``): footnote citations are local to each page, so the same
work can be listed on many pages. The build writes ``book/generated/references.bib`` from the
registry (every dataset publication) and the signature catalogue (every signature source);
``book/references.bib`` holds the methods' references (hand-written, committed).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..genes import catalogue
from ..sources import Dataset, list_datasets, list_ground_truth

__all__ = [
    "bib_key",
    "dataset_key",
    "signature_key",
    "cite",
    "cite_sources",
    "references_section",
    "bibliography_text",
    "write_bibliography",
    "GENERATED_BIB",
]

#: where the build writes the generated bibliography (relative to the project root)
GENERATED_BIB = Path("book") / "generated" / "references.bib"


def bib_key(citation: str, doi: str | None = None) -> str:
    """A stable key: the first author's surname, the year and a short hash of the DOI (or citation)."""
    first = re.match(r"\s*([A-Za-z][A-Za-z'\-]+)", citation or "")
    year = re.search(r"\((19|20)\d\d\)|\b(19|20)\d\d\b", citation or "")
    digest = hashlib.sha1((doi or citation or "").lower().encode()).hexdigest()[:6]
    surname = (first.group(1) if first else "ref").lower().replace("'", "")
    return f"{surname}{year.group(0).strip('()') if year else ''}_{digest}"


def dataset_key(d: Dataset) -> str:
    pub = d["publication"]
    return bib_key(pub["citation"], pub.get("doi"))


def signature_key(record: dict) -> str:
    src = record["source"]
    return bib_key(src["citation"], src.get("doi"))


def bib_field(text: str) -> str:
    """A value safe inside one BibTeX field's braces: braces become parentheses and backslashes slashes
    (citations, URLs and provenance carry no TeX, and an unbalanced brace would end the field)."""
    return str(text).replace("{", "(").replace("}", ")").replace("\\", "/")


def bibtex_entry(key: str, fields: Mapping[str, str], *, kind: str = "misc", verbatim: Iterable[str] = ()) -> str:
    """The one BibTeX writer (the bibliography and every figure's record): ``@kind{key, name = {value}, ...}``
    with each value escaped by :func:`bib_field`, but those named in ``verbatim`` (already BibTeX, such
    as a braced corporate author)."""
    verbatim = set(verbatim)
    body = ",\n".join(
        f"  {name} = {{{value if name in verbatim else bib_field(value)}}}" for name, value in fields.items()
    )
    return f"@{kind}{{{key},\n{body}\n}}"


def _entry(key: str, citation: str, doi: str | None, url: str | None) -> str:
    fields = {"note": citation}
    if doi:
        fields["doi"] = doi
    elif url:
        fields["url"] = url
    return bibtex_entry(key, fields) + "\n"


def bibliography_text(datasets: Iterable[Dataset] | None = None, records: Iterable[dict] | None = None) -> str:
    """BibTeX entries (``@misc`` with the full citation as ``note`` and the DOI) for the datasets
    (default: every registry dataset and ground-truth entry, full profile) and signature records (default: the catalogue)."""
    datasets = list_datasets("full") + list_ground_truth("full") if datasets is None else datasets
    records = catalogue().values() if records is None else records
    entries: dict[str, str] = {}
    for d in datasets:
        pub = d["publication"]
        entries.setdefault(dataset_key(d), _entry(dataset_key(d), pub["citation"], pub.get("doi"), None))
    for r in records:
        src = r["source"]
        entries.setdefault(signature_key(r), _entry(signature_key(r), src["citation"], src.get("doi"), src.get("url")))
    return "\n".join(entries[k] for k in sorted(entries))


def write_bibliography(root: str | Path) -> Path:
    """Write :data:`GENERATED_BIB` under ``root``."""
    path = Path(root) / GENERATED_BIB
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(bibliography_text(), encoding="utf-8")
    return path


def cite(keys: Iterable[str]) -> str:
    """A MyST footnote citation of ``keys`` (deduplicated, in order), or "" for none."""
    keys = list(dict.fromkeys(k for k in keys if k))
    return f"{{footcite:p}}`{','.join(keys)}`" if keys else ""


def cite_sources(datasets: Iterable[Dataset] = (), signatures: Iterable[str] = ()) -> str:
    """The citation of a page's data sources: every dataset's publication, then the source of every
    catalogue signature among ``signatures`` (ids outside the catalogue, e.g. a user's own gene sets,
    have no source to cite and are skipped); "" when nothing is citable."""
    known = catalogue()
    return cite([dataset_key(d) for d in datasets] + [signature_key(known[s]) for s in signatures if s in known])


def references_section(level: int = 2) -> str:
    """The References section that ends a page: the works cited on it."""
    return f"{'#' * level} References\n\n```{{footbibliography}}\n```\n"
