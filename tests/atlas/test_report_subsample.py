"""``report_subsample``: the water-filling subsample of the report of a lazily scored file."""

from __future__ import annotations

import numpy as np
import pytest

from sasp_atlas.atlas import report_subsample


def _groups(sizes):
    return np.repeat([f"g{i}" for i in range(len(sizes))], sizes)


def test_one_cap_keeps_small_groups_whole():
    groups = _groups([1, 5, 100, 1000])
    rng = np.random.default_rng(3)
    groups = groups[rng.permutation(len(groups))]  # group members scattered through the rows
    idx = report_subsample(groups, 300)
    counts = dict(zip(*np.unique(groups[idx], return_counts=True)))
    # 1 + 5 + 100 + c <= 300 -> c = 194 (g2 fits under it whole), the largest such cap
    assert counts == {"g0": 1, "g1": 5, "g2": 100, "g3": 194}
    assert np.all(np.diff(idx) > 0) and len(idx) == 300


def test_cap_is_the_largest_that_fits():
    sizes = [7, 30, 30, 400]
    idx = report_subsample(_groups(sizes), 100)
    kept = np.unique(_groups(sizes)[idx], return_counts=True)[1]
    cap = kept.max()
    assert kept.sum() <= 100 and np.minimum(sizes, cap + 1).sum() > 100


def test_seeded_and_every_cell_when_it_fits():
    groups = _groups([50, 500])
    a, b = report_subsample(groups, 200, random_state=1), report_subsample(groups, 200, random_state=1)
    c = report_subsample(groups, 200, random_state=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and len(a) == len(c) == 200
    np.testing.assert_array_equal(report_subsample(groups, 550), np.arange(550))


@pytest.mark.parametrize("max_cells", [1, 3])
def test_more_groups_than_cells_keeps_one_per_group(max_cells):
    groups = _groups([4, 4, 4, 4])
    idx = report_subsample(groups, max_cells)
    assert sorted(np.unique(groups[idx])) == ["g0", "g1", "g2", "g3"] and len(idx) == 4
