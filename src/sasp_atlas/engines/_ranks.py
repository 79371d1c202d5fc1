"""Per-cell ranks over CSR rows for the rank methods (``aucell``, ``ucell``), without sorting genes.

A cell's values take few distinct values (counts 1, 2, 3, ... scaled by one size factor), so a row
is ranked by its *tie groups*: one pass puts every non-zero value into a small open-addressing hash
table (keyed on the value's bits) counting its occurrences; the distinct values (tens, typically)
are sorted; a group's members then hold the ranks ``start + 1 .. start + count`` where ``start`` is
the number of entries with a larger value. Zeros are never stored or ranked here: they form one tie
group after the positive values, which the methods handle (UCell gives them ``max_rank``, AUCell an
ordinal rank). Cost per row: O(nnz) hash operations plus a sort of the distinct values; memory per
thread: a table of ~4 x the longest row, reused for every row (``stamp`` marks its live slots).
"""

from __future__ import annotations

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_ONE = np.uint64(1)


def table_bits(indptr, start: int, end: int) -> tuple[int, int]:
    """``(max row nnz, log2 of the hash table size)`` for rows ``start:end``."""
    lengths = np.diff(indptr[start : end + 1]) if end > start else np.zeros(1, dtype=np.int64)
    max_nnz = int(lengths.max()) if len(lengths) else 0
    return max_nnz, max(4, int(np.ceil(np.log2(2 * max_nnz + 2))))


def value_bits(data: np.ndarray) -> np.ndarray:
    """The values' bit patterns as unsigned integers (a view, no copy): equal bits <=> equal values
    for the non-zero, non-NaN values that are ranked."""
    return data.view(f"u{data.dtype.itemsize}")


@numba.njit(cache=True)
def row_tie_groups(data, bits, a, b, tab_key, tab_stamp, tab_cnt, tab_val, stamp, shift, mask, ent_slot, dist_slot):
    """Group the non-zero values of ``data[a:b]``; return the number ``d`` of distinct values.

    ``ent_slot[p - a]`` = table slot of entry ``p`` (-1 for zeros and NaN, which count as zeros);
    ``dist_slot[:d]`` the slots of the distinct values; ``tab_cnt``/``tab_val`` count and value.
    """
    d = 0
    for p in range(a, b):
        v = data[p]
        if v == 0 or v != v:
            ent_slot[p - a] = -1
            continue
        key = np.uint64(bits[p])
        h = np.int64((key * _GOLDEN) >> shift)
        while True:
            if tab_stamp[h] != stamp:
                tab_stamp[h] = stamp
                tab_key[h] = key
                tab_cnt[h] = 1
                tab_val[h] = v
                dist_slot[d] = h
                d += 1
                break
            if tab_key[h] == key:
                tab_cnt[h] += 1
                break
            h = (h + 1) & mask
        ent_slot[p - a] = h
    return d


@numba.njit(cache=True)
def sort_groups_descending(dist_slot, d, tab_val):
    """Order ``dist_slot[:d]`` by value, largest first (insertion sort when short)."""
    if d <= 32:
        for k in range(1, d):
            h = dist_slot[k]
            v = tab_val[h]
            j = k - 1
            while j >= 0 and tab_val[dist_slot[j]] < v:
                dist_slot[j + 1] = dist_slot[j]
                j -= 1
            dist_slot[j + 1] = h
        return
    neg = np.empty(d, dtype=np.float64)
    for k in range(d):
        neg[k] = -tab_val[dist_slot[k]]
    order = np.argsort(neg)
    tmp = dist_slot[:d][order].copy()
    dist_slot[:d] = tmp


@numba.njit(cache=True)
def popcount64(x):
    x = x - ((x >> _ONE) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return np.int64((x * _H01) >> np.uint64(56))


@numba.njit(cache=True)
def bitmap_prefix(words, prefix):
    """``prefix[w]`` = set bits in ``words[:w]``."""
    c = 0
    for w in range(words.shape[0]):
        prefix[w] = c
        c += popcount64(words[w])
    prefix[words.shape[0]] = c


@numba.njit(cache=True)
def bits_below(words, prefix, pos):
    """Set bits at positions ``< pos``."""
    w = pos >> 6
    below = (_ONE << np.uint64(pos & 63)) - _ONE
    return prefix[w] + popcount64(words[w] & below)


@numba.njit(cache=True)
def bit_is_set(words, pos):
    return (words[pos >> 6] >> np.uint64(pos & 63)) & _ONE


@numba.njit(cache=True)
def set_bit(words, pos):
    words[pos >> 6] |= _ONE << np.uint64(pos & 63)
