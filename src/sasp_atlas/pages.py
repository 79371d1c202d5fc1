"""Markdown blocks shared by the book pages (provenance, coverage, captions)."""

from __future__ import annotations

import pandas as pd

from .registry import Dataset
from .signatures import signature_record

__all__ = ["provenance_markdown", "coverage_markdown", "signature_sources_markdown"]


def provenance_markdown(ds: Dataset, normalisation: str) -> str:
    """Dataset provenance: citation, DOI, accession, licence and every file's pinned URL + sha256."""
    pub = ds["publication"]
    lines = [
        f"**{ds['title']}** — {ds['cancer_type']} ({ds['tissue']}); {ds['technology']}.",
        "",
        f"- Publication: {pub['citation']} [doi:{pub['doi']}](https://doi.org/{pub['doi']}); {pub['accession']}.",
        f"- Licence: {ds['license']}.",
        f"- Values as released: `{ds['value_type']}`; used for scoring: {normalisation}.",
    ]
    if ds.get("notes"):
        lines.append(f"- Notes: {ds['notes']}")
    lines += ["", "| file | sha256 | bytes |", "|---|---|---|"]
    lines += [f"| [{f['name']}]({f['url']}) | `{f['sha256']}` | {f['size']:,} |" for f in ds.files]
    return "\n".join(lines)


def coverage_markdown(coverage: pd.DataFrame) -> str:
    """Signature genes present / missing in the dataset, one row per signature."""
    lines = ["| signature | genes | present | coverage | missing |", "|---|---|---|---|---|"]
    for r in coverage.itertuples():
        missing = r.missing if isinstance(r.missing, str) and r.missing else "—"
        lines.append(f"| {r.signature} | {r.n_genes} | {r.n_present} | {r.n_present / r.n_genes:.0%} | {missing} |")
    return "\n".join(lines)


def signature_sources_markdown(signature_ids: list[str]) -> str:
    """One line per signature: name, size, citation with DOI, licence."""
    lines = []
    for sid in signature_ids:
        rec = signature_record(sid)
        src = rec["source"]
        doi = f" [doi:{src['doi']}](https://doi.org/{src['doi']})" if src.get("doi") else ""
        lines.append(f"- `{sid}` — {rec['name']}, {len(rec['genes'])} genes. {src['citation']}{doi} Licence: {rec['license']}.")
    return "\n".join(lines)
