"""The per-pixel reduction against its definition, point by point."""

from __future__ import annotations

import numpy as np
import pytest

from etude.web.scalars import reduce_for_width, sorted_by_x


def _by_definition(x: np.ndarray, y: np.ndarray, width: int, low: float,
                   high: float) -> np.ndarray:
    """The indices to keep: per column (clipped to [-1, width]), the first, last, first lowest
    and first highest point, over the range and one point beyond each side."""
    begin = max(int(np.searchsorted(x, low, "left")) - 1, 0)
    end = min(int(np.searchsorted(x, high, "right")) + 1, len(x))
    keep: set[int] = set()
    columns: dict[int, list[int]] = {}
    for i in range(begin, end):
        column = int(np.clip(np.floor((x[i] - low) * (width / (high - low))), -1, width))
        columns.setdefault(column, []).append(i)
    for members in columns.values():
        values = [y[i] for i in members]
        keep |= {members[0], members[-1], members[values.index(min(values))],
                 members[values.index(max(values))]}
    return np.array(sorted(keep))


@pytest.mark.parametrize("case", [
    pytest.param(("regular", 3000, 100, None), id="regular-x"),
    pytest.param(("repeated", 5000, 37, None), id="repeated-x"),
    pytest.param(("random", 4000, 250, (0.2, 0.7)), id="random-x-zoomed"),
    pytest.param(("random", 4000, 3, (-5.0, 2.0)), id="range-beyond-the-points"),
])
def test_reduction_keeps_each_columns_first_last_lowest_highest(case: tuple) -> None:
    kind, n, width, zoom = case
    rng = np.random.default_rng(n + width)
    x = {"regular": np.arange(n, dtype=float),
         "repeated": np.sort(rng.integers(0, n // 4, n)).astype(float),
         "random": np.sort(rng.random(n))}[kind]
    y = np.round(rng.normal(size=n), 1)  # ties: the first lowest and highest are kept
    low, high = zoom if zoom else (float(x[0]), float(x[-1]))
    rx, ry, reduced = reduce_for_width(x, y, width, *((low, high) if zoom else (None, None)))
    keep = _by_definition(x, y, width, low, high)
    assert reduced and rx.tolist() == x[keep].tolist() and ry.tolist() == y[keep].tolist()


def test_points_on_one_x_make_one_column() -> None:
    x, y = np.full(100, 3.0), np.arange(100.0)
    _, ry, reduced = reduce_for_width(x, y, 2)
    assert reduced and ry.tolist() == [0.0, 99.0]


def test_sorted_by_x_drops_non_finite_points() -> None:
    xs, ys = sorted_by_x([2, 1, 3], [0.5, float("nan"), 1.5])
    assert xs.tolist() == [2.0, 3.0] and ys.tolist() == [0.5, 1.5]
    xs, ys = sorted_by_x([2.0, float("inf"), 1.0], [0.5, 1.0, 1.5])
    assert xs.tolist() == [1.0, 2.0] and ys.tolist() == [1.5, 0.5]
