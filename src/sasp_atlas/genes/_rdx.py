"""A small, fast reader of R's XDR serialisation (``save()`` files: ``.rda``/``.RData``, RDX2/RDX3).

Why: the general reader (the ``rdata`` package) builds a Python object per R object, which costs
about 10 s for the HGNChelper symbol table (a data.frame of three character vectors, 303,000
strings). This reader handles the plain data types such tables are made of (logical, integer,
double and character vectors, lists, pairlists, symbols, attributes, references and the compact
integer sequences R writes for row names; external pointers and weak references read as empty) and reads a character vector in one tight loop;
anything else (environments, closures, byte code, other ALTREP classes) raises
:class:`UnsupportedRData`, and the caller falls back to ``rdata``. The format is R's own
documentation of serialisation (R Internals, "Serialization formats"); equality with ``rdata`` on
the real HGNC file is tested (``tests/genes/test_rdx.py``).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RObject", "UnsupportedRData", "read_rda_objects", "data_frame_columns"]

# SEXP types (R Internals)
_NIL, _SYM, _LIST, _CHAR, _LGL, _INT, _REAL, _STR, _VEC = 0, 1, 2, 9, 10, 13, 14, 16, 19
_S4, _EXTPTR, _WEAKREF = 25, 22, 23
_REF, _NILVALUE, _ALTREP = 255, 254, 238
_EMPTYENV, _BASEENV, _GLOBALENV, _UNBOUND, _MISSING, _BASENS = 242, 241, 253, 252, 251, 250

_NA_INT = -(2**31)


class UnsupportedRData(ValueError):
    """The file holds an R object this reader does not handle (use the ``rdata`` package)."""


@dataclass
class RObject:
    """An R object: its SEXP type, its value (numpy array, list of str|None, list of RObjects,
    or a pairlist as a list of ``(tag, RObject)``) and its attributes (name -> RObject)."""

    type: int
    value: Any
    attributes: dict[str, RObject] = field(default_factory=dict)


def _decompress(raw: bytes) -> bytes:
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:3] == b"BZh":
        return bz2.decompress(raw)
    if raw[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(raw)
    return raw


class _Reader:
    def __init__(self, buf: bytes):
        self.buf = buf
        self.pos = 0
        self.refs: list[RObject] = []

    def int(self) -> int:
        (v,) = struct.unpack_from(">i", self.buf, self.pos)
        self.pos += 4
        return v

    def length(self) -> int:
        n = self.int()
        if n == -1:  # long vector: two ints
            hi, lo = struct.unpack_from(">II", self.buf, self.pos)
            self.pos += 8
            n = (hi << 32) + lo
        return n

    def strings(self, n: int) -> list[str | None]:
        """``n`` CHARSXPs (the elements of a character vector), read in one loop."""
        buf, pos, out = self.buf, self.pos, []
        unpack = struct.Struct(">ii").unpack_from
        append = out.append
        for _ in range(n):
            flags, size = unpack(buf, pos)
            pos += 8
            if flags & 0xFF != _CHAR:
                raise UnsupportedRData(f"a character vector element of type {flags & 0xFF}")
            if size == -1:
                append(None)
            else:
                # bit 3 of the levels marks ASCII, bits 2 and 1 UTF-8 and latin1: R writes both in the
                # file's native encoding or marks them; the registered files are ASCII/UTF-8
                append(buf[pos : pos + size].decode("latin-1" if flags & (1 << 14) else "utf-8"))
                pos += size
        self.pos = pos
        return out

    def attributes(self) -> dict[str, RObject]:
        attrs = self.item()
        if attrs.type != _LIST:
            raise UnsupportedRData(f"attributes of type {attrs.type}")
        return {tag: value for tag, value in attrs.value}

    def item(self) -> RObject:
        flags = self.int()
        kind = flags & 0xFF
        has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind == _NILVALUE or kind in (_EMPTYENV, _BASEENV, _GLOBALENV, _UNBOUND, _MISSING, _BASENS):
            return RObject(_NIL, None)
        if kind == _REF:
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == _SYM:
            name = self.item()  # a CHARSXP
            sym = RObject(_SYM, name.value)
            self.refs.append(sym)
            return sym
        if kind == _CHAR:
            size = self.int()
            if size == -1:
                return RObject(_CHAR, None)
            value = self.buf[self.pos : self.pos + size].decode("utf-8")
            self.pos += size
            return RObject(_CHAR, value)
        if kind == _LIST:  # a pairlist, read iteratively along its CDRs
            items: list[tuple[str | None, RObject]] = []
            obj = RObject(_LIST, items)
            while True:
                if has_attr:
                    obj.attributes.update(self.attributes())
                tag = self.item().value if has_tag else None
                items.append((tag, self.item()))
                flags = self.int()
                kind = flags & 0xFF
                if kind == _NILVALUE:
                    return obj
                if kind != _LIST:
                    raise UnsupportedRData(f"a pairlist ending in type {kind}")
                has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind in (_LGL, _INT):
            n = self.length()
            value = np.frombuffer(self.buf, dtype=">i4", count=n, offset=self.pos).astype(np.int32)
            self.pos += 4 * n
        elif kind == _REAL:
            n = self.length()
            value = np.frombuffer(self.buf, dtype=">f8", count=n, offset=self.pos).astype(np.float64)
            self.pos += 8 * n
        elif kind == _STR:
            value = self.strings(self.length())
        elif kind == _VEC:
            value = [self.item() for _ in range(self.length())]
        elif kind == _S4:
            value = None
        elif kind == _EXTPTR:  # e.g. data.table's .internal.selfref: a pointer, meaningless once saved
            obj = RObject(kind, None)
            self.refs.append(obj)
            self.item(), self.item()  # protected value and tag
            if has_attr:
                obj.attributes = self.attributes()
            return obj
        elif kind == _WEAKREF:
            obj = RObject(kind, None)
            self.refs.append(obj)
            if has_attr:
                obj.attributes = self.attributes()
            return obj
        elif kind == _ALTREP:
            return self.altrep()
        else:
            raise UnsupportedRData(f"R objects of SEXP type {kind}")
        obj = RObject(kind, value)
        if has_attr:
            obj.attributes = self.attributes()
        return obj

    def altrep(self) -> RObject:
        info = self.item()
        state = self.item()
        attrs = self.item()
        cls = info.value[0][1].value if info.type == _LIST and info.value else None
        if cls != "compact_intseq":
            raise UnsupportedRData(f"ALTREP class {cls}")
        n, start, step = (int(v) for v in state.value[:3])
        obj = RObject(_INT, np.arange(start, start + n * step, step, dtype=np.int32)[:n])
        if attrs.type == _LIST:
            obj.attributes = {tag: value for tag, value in attrs.value}
        return obj


def read_rda_objects(path: str | Path) -> dict[str, RObject]:
    """The objects of a ``save()`` file by name. Raises :class:`UnsupportedRData` for what it cannot read."""
    buf = _decompress(Path(path).read_bytes())
    if buf[:5] not in (b"RDX2\n", b"RDX3\n") or buf[5:7] != b"X\n":
        raise UnsupportedRData(f"{Path(path).name}: not an XDR save() file (header {buf[:7]!r})")
    r = _Reader(buf)
    r.pos = 7
    version = r.int()
    r.int(), r.int()  # writer's and minimal reader's R versions
    if version == 3:
        size = r.int()  # the native encoding's name follows
        r.pos += size
    elif version != 2:
        raise UnsupportedRData(f"serialisation version {version}")
    top = r.item()
    if top.type != _LIST:
        raise UnsupportedRData(f"top-level object of type {top.type}")
    return {tag: value for tag, value in top.value}


def data_frame_columns(obj: RObject) -> dict[str, Any]:
    """The columns of an R data.frame (a named list) by name: numpy arrays or lists of str|None."""
    if obj.type != _VEC or "names" not in obj.attributes:
        raise UnsupportedRData("not a data.frame (a named list)")
    names = obj.attributes["names"].value
    return {name: col.value for name, col in zip(names, obj.value, strict=True)}
