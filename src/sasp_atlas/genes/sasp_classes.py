"""SASP factor classes: one class per SASP gene of SenMayo, the Basisty 2020 core SASP and Reactome
"SASP", each traceable to the rule and the source that gave it (``sasp_classes.yaml``, versioned).

The classes (interleukins, CXC and CC chemokines, matrix metalloproteinases, TIMPs and serpins, IGFBPs,
growth factors, TNF superfamily, ECM and other secreted; genes of no class are ``unclassified``)
follow the grouping of SASP factors in Coppé et al. 2010 (Annu Rev Pathol 5:99-118,
doi:10.1146/annurev-pathol-121808-102144) as refined by the atlas. Membership is decided by ordered
rules, the first match wins:

* ``symbol_pattern``: HGNC nomenclature families on approved symbols (``IL<n>``, ``CXCL<n>``,
  ``MMP<n>``, ``SERPIN<clade><n>``, ``TNFRSF<n>`` ...). No HGNC gene-group file is available
  offline, so no row claims HGNC gene-group membership;
* ``members``: explicit lists with the evidence read from a source (HGNC previous symbols such as
  TNF = TNFSF2; the Naba matrisome categories; SenMayo's 'Growth factor' classification);
* ``senmayo_state``: SenMayo's Secreted / Transmembrane / Intracellular state (Saul et al. 2022,
  doi:10.1038/s41467-022-32552-1; the atlas's signature file).

The file also holds the per-gene rows (generated from the rules, so a reclassification shows as a
diff); :func:`sasp_classes` re-derives every row and refuses a file whose rows disagree with its rules
or with the signature catalogue.
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .signatures import SignatureResolutionWarning, get_signature, signature_record

__all__ = [
    "SASP_CLASS_COLUMNS",
    "SASP_SET_COLUMNS",
    "UNCLASSIFIED",
    "SaspClassError",
    "classify_symbols",
    "sasp_class_definitions",
    "sasp_classes",
]

#: the packaged class table
CLASS_FILE = Path(__file__).with_name("sasp_classes.yaml")
#: class id of genes that match no rule
UNCLASSIFIED = "unclassified"
#: output column -> catalogue id of the SASP sets the table covers (also written in the YAML's ``sets``)
SASP_SET_COLUMNS = {
    "in_senmayo": "senmayo",
    "in_basisty_core": "basisty2020_core_sasp_fibroblast",
    "in_basisty_core_fibroblast_epithelial": "basisty2020_core_sasp_fibroblast_epithelial",
    "in_reactome_sasp": "reactome_sasp",
}
SASP_CLASS_COLUMNS = [
    "gene",
    "sasp_class",
    "class_label",
    "class_order",
    "rule",
    "source",
    "also_matches",
    *SASP_SET_COLUMNS,
    "table_version",
]
_RULE_KINDS = ("symbol_pattern", "members", "senmayo_state")


class SaspClassError(ValueError):
    """The SASP class table is inconsistent (unknown class, duplicated gene, a row that disagrees with
    the rules or with the signature catalogue); the message names the rows and the fix."""


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SaspClassError(f"cannot read the SASP class table {path}: {exc}") from None
    for key in ("version", "sets", "sources", "classes", "genes"):
        if key not in (doc or {}):
            raise SaspClassError(f"SASP class table {path}: missing top-level field {key!r}")
    return doc


def _check_definitions(doc: dict[str, Any], path: Path) -> None:
    ids = [c.get("id") for c in doc["classes"]]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise SaspClassError(f"SASP class table {path}: class id(s) defined twice: {dup}")
    if UNCLASSIFIED not in ids:
        raise SaspClassError(f"SASP class table {path}: the class {UNCLASSIFIED!r} (genes matching no rule) is missing")
    rule_ids: list[str] = []
    for cls in doc["classes"]:
        for key in ("id", "label", "rules"):
            if key not in cls:
                raise SaspClassError(f"SASP class table {path}: class {cls.get('id')!r} has no {key!r}")
        for rule in cls["rules"]:
            rule_ids.append(rule.get("id"))
            if rule.get("kind") not in _RULE_KINDS:
                raise SaspClassError(
                    f"SASP class table {path}: rule {rule.get('id')!r} has kind {rule.get('kind')!r}; "
                    f"known kinds: {', '.join(_RULE_KINDS)}"
                )
            if rule.get("source") not in doc["sources"]:
                raise SaspClassError(
                    f"SASP class table {path}: rule {rule['id']!r} cites source {rule.get('source')!r}, "
                    f"which is not under `sources` ({', '.join(doc['sources'])})"
                )
            if not str(rule.get("text", "")).strip():
                raise SaspClassError(f"SASP class table {path}: rule {rule['id']!r} has no source `text`")
    dup = sorted({i for i in rule_ids if rule_ids.count(i) > 1})
    if dup:
        raise SaspClassError(f"SASP class table {path}: rule id(s) used twice: {dup}")
    if set(doc["sets"]) != set(SASP_SET_COLUMNS) or any(doc["sets"][k] != v for k, v in SASP_SET_COLUMNS.items()):
        raise SaspClassError(f"SASP class table {path}: `sets` must map {SASP_SET_COLUMNS} (found {doc['sets']})")


def _matches(rule: dict[str, Any], symbol: str, senmayo_state: dict[str, str]) -> str | None:
    """The evidence if ``rule`` matches ``symbol`` (``""`` when a pattern/state matched), else None."""
    kind = rule["kind"]
    if kind == "symbol_pattern":
        return "" if re.fullmatch(rule["pattern"], symbol) else None
    if kind == "members":
        return str(rule["members"][symbol]) if symbol in rule["members"] else None
    return "" if senmayo_state.get(symbol) == rule["state"] else None


def _classify(doc: dict[str, Any], symbols: list[str]) -> pd.DataFrame:
    senmayo_state = {str(k): str(v).lower() for k, v in (signature_record("senmayo").get("categories") or {}).items()}
    rows = []
    for symbol in symbols:
        hits = []  # (class, rule, text) of every matching rule, in precedence order
        for cls in doc["classes"]:
            for rule in cls["rules"]:
                evidence = _matches(rule, symbol, senmayo_state)
                if evidence is not None:
                    hits.append((cls["id"], rule["id"], str(rule["text"]).replace("{evidence}", evidence)))
        cls_id, rule_id, text = (
            hits[0] if hits else (UNCLASSIFIED, "", "no class rule matched (listed as unclassified)")
        )
        also = "; ".join(f"{c}:{r}" for c, r, _ in hits[1:])
        rows.append({"gene": symbol, "sasp_class": cls_id, "rule": rule_id, "source": text, "also_matches": also})
    return pd.DataFrame(rows, columns=["gene", "sasp_class", "rule", "source", "also_matches"])


def _sasp_set_genes() -> dict[str, list[str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SignatureResolutionWarning)
        return {col: get_signature(sig) for col, sig in SASP_SET_COLUMNS.items()}


def classify_symbols(symbols: list[str], *, path: str | Path | None = None) -> pd.DataFrame:
    """Apply the class rules of the SASP class table to any approved HGNC symbols.

    Returns ``gene, sasp_class, rule, source, also_matches`` (the first matching rule wins; the other
    matching rules as ``class:rule``; genes matching none are ``unclassified``). Use it to classify
    genes outside the three SASP sets; the rules were written for them, so check the result.

    Parameters
    ----------
    symbols
        Approved HGNC symbols (the atlas's ``var_names``; see :func:`sasp_atlas.genes.resolve_symbols`).
    path
        Another class table (YAML of the same form); default the packaged ``sasp_classes.yaml``.
    """
    p = Path(path) if path is not None else CLASS_FILE
    doc = _read(p)
    _check_definitions(doc, p)
    return _classify(doc, [str(s) for s in symbols])


def sasp_class_definitions(*, path: str | Path | None = None) -> pd.DataFrame:
    """The classes in precedence order: ``sasp_class, class_label, class_order, description, rules``
    (``rules``: ``id (kind)`` of each rule, ``;``-separated) and ``table_version``.

    Parameters
    ----------
    path
        Another class table; default the packaged ``sasp_classes.yaml``.
    """
    p = Path(path) if path is not None else CLASS_FILE
    doc = _read(p)
    _check_definitions(doc, p)
    return pd.DataFrame(
        [
            {
                "sasp_class": c["id"],
                "class_label": c["label"],
                "class_order": i,
                "description": " ".join(str(c.get("description", "")).split()),
                "rules": "; ".join(f"{r['id']} ({r['kind']})" for r in c["rules"]),
                "table_version": str(doc["version"]),
            }
            for i, c in enumerate(doc["classes"])
        ]
    )


@lru_cache(maxsize=4)
def _table(path: Path) -> pd.DataFrame:
    doc = _read(path)
    _check_definitions(doc, path)
    classes = {c["id"]: (i, c["label"]) for i, c in enumerate(doc["classes"])}
    rows = pd.DataFrame(doc["genes"] or [])
    for key in ("gene", "class", "rule", "source", "sets"):
        if key not in rows:
            raise SaspClassError(f"SASP class table {path}: gene rows need the field {key!r}")
    dup = sorted(rows.loc[rows["gene"].duplicated(), "gene"].astype(str).unique())
    if dup:
        raise SaspClassError(f"SASP class table {path}: gene(s) listed more than once: {dup}; keep one row per gene")
    unknown = rows[~rows["class"].isin(list(classes))]
    if len(unknown):
        raise SaspClassError(
            f"SASP class table {path}: unknown class for "
            + ", ".join(f"{g} ({c!r})" for g, c in zip(unknown["gene"], unknown["class"]))
            + f"; known classes: {', '.join(classes)}"
        )
    empty = rows.loc[rows["source"].fillna("").astype(str).str.strip() == "", "gene"].tolist()
    if empty:
        raise SaspClassError(f"SASP class table {path}: gene(s) without a source: {empty}")
    derived = _classify(doc, rows["gene"].astype(str).tolist()).set_index("gene")
    bad = [
        f"{g}: file says {c}/{r or '-'} ({s!r}), rules give {derived.at[g, 'sasp_class']}/"
        f"{derived.at[g, 'rule'] or '-'} ({derived.at[g, 'source']!r})"
        for g, c, r, s in zip(rows["gene"], rows["class"], rows["rule"].fillna(""), rows["source"])
        if (c, r, s) != tuple(derived.loc[g, ["sasp_class", "rule", "source"]])
    ]
    if bad:
        raise SaspClassError(
            f"SASP class table {path}: rows disagree with the class rules: "
            + "; ".join(bad)
            + ". Fix the rule, or regenerate the rows from the rules (classify_symbols)"
        )
    set_genes = _sasp_set_genes()
    listed = {str(g): set(s or []) for g, s in zip(rows["gene"], rows["sets"])}
    needed = sorted(set().union(*map(set, set_genes.values())))
    missing = [g for g in needed if g not in listed]
    extra = [g for g in listed if g not in set(needed)]
    wrong = [
        f"{g} (file {sorted(listed[g])}, catalogue {sorted(c for c, gs in set_genes.items() if g in gs)})"
        for g in needed
        if g in listed and listed[g] != {c for c, gs in set_genes.items() if g in gs}
    ]
    if missing or extra or wrong:
        raise SaspClassError(
            f"SASP class table {path} does not match the signature catalogue: missing genes {missing}, "
            f"genes in no SASP set {extra}, wrong set membership {wrong}. Regenerate the rows"
        )
    out = derived.loc[rows["gene"].astype(str)].reset_index()
    out["class_label"] = [classes[c][1] for c in out["sasp_class"]]
    out["class_order"] = [classes[c][0] for c in out["sasp_class"]]
    for col in SASP_SET_COLUMNS:
        out[col] = [col in listed[g] for g in out["gene"]]
    out["table_version"] = str(doc["version"])
    return out[SASP_CLASS_COLUMNS]


def sasp_classes(*, path: str | Path | None = None) -> pd.DataFrame:
    """The SASP class table: one row per SASP gene of SenMayo, the Basisty 2020 core SASP (fibroblast;
    the fibroblast + epithelial core is a subset) and Reactome "SASP".

    Columns: ``gene`` (approved HGNC symbol as scored, :func:`sasp_atlas.genes.get_signature`),
    ``sasp_class`` / ``class_label`` / ``class_order`` (precedence order of the classes), ``rule`` (the
    rule id that assigned it; empty for ``unclassified``), ``source`` (the citation / nomenclature
    family / evidence behind the assignment), ``also_matches`` (other rules that match, as
    ``class:rule``), ``in_senmayo``, ``in_basisty_core``, ``in_basisty_core_fibroblast_epithelial``,
    ``in_reactome_sasp`` (bool) and ``table_version``.

    Method: see the module docstring and ``sasp_classes.yaml`` (classes, rules, sources, decisions).
    Raises :class:`SaspClassError` when the file defines a class twice, names an unknown class, lists
    a gene twice, has a row that disagrees with its rules, or does not cover exactly the genes of the
    three sets.

    Parameters
    ----------
    path
        Another class table (YAML of the same form); default the packaged ``sasp_classes.yaml``.
    """
    return _table(Path(path) if path is not None else CLASS_FILE).copy()
