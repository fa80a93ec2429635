"""Scalar series made ready for a chart of a given width: reduced per pixel column, smoothed.

A line chart `width` pixels wide cannot show more than a few points per pixel column; sending
a million points costs the network and the browser for nothing. Averaging or taking every Nth
point (what peers do) drops the spikes researchers look for. Here each pixel column keeps its
first, last, lowest and highest points (the "M4" reduction): the drawn line is the same as with
every point, every spike included. Zoomed in far enough, every point of the range is sent.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: A range holding at most this many points per pixel column is sent whole.
POINTS_PER_COLUMN = 4
#: From this many points per pixel column on, each column's extremes are found by a loop over
#: the columns (a numpy call each) rather than over the whole series at once.
LOOP_FROM = 512
#: EMA chunk: a**-k must stay far from overflow (see `smooth`).
_MAX_EXPONENT = 300.0


def sorted_by_x(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) as float arrays sorted by x (stable: equal x keep their report order), with the
    points whose y is NaN or infinite left out (JSON has no NaN; a chart shows a gap)."""
    given = np.asarray(x)
    xs = given.astype(np.float64, copy=False)
    ys = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(ys)
    if given.dtype.kind not in "iub":  # integers (iterations) are finite: spare a pass
        finite &= np.isfinite(xs)
    if not finite.all():
        xs, ys = xs[finite], ys[finite]
    if len(xs) > 1 and np.any(xs[1:] < xs[:-1]):
        order = np.argsort(xs, kind="stable")
        xs, ys = xs[order], ys[order]
    return xs, ys


def reduce_for_width(x: np.ndarray, y: np.ndarray, width: int, low: float | None = None,
                     high: float | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """The points of sorted (x, y) that draw the range [low, high] on `width` pixel columns
    exactly: all of them when there are at most POINTS_PER_COLUMN per column, else the first,
    last, lowest and highest point of each column, in x order. The nearest point outside the
    range on each side is kept too, so the line reaches the chart's edges. Returns
    (x, y, reduced)."""
    if not len(x):
        return x, y, False
    low = float(x[0]) if low is None else low
    high = float(x[-1]) if high is None else high
    begin = max(int(np.searchsorted(x, low, "left")) - 1, 0)
    end = min(int(np.searchsorted(x, high, "right")) + 1, len(x))
    x, y = x[begin:end], y[begin:end]
    width = max(int(width), 1)
    if len(x) <= POINTS_PER_COLUMN * width:
        return x, y, False
    starts = _column_starts(x, low, high - low, width)
    ends = np.append(starts[1:], len(x))
    if len(x) >= LOOP_FROM * len(starts):
        lowest, highest = _extremes_by_column(y, starts, ends)
    else:
        lowest, highest = _extremes_at_once(y, starts, ends)
    keep = _sorted_distinct(np.concatenate((starts, ends - 1, lowest, highest)))
    return x[keep], y[keep], True


def _extremes_by_column(y: np.ndarray, starts: np.ndarray,
                        ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The index of each column's first lowest and first highest point, by a loop over the
    columns: no temporary as long as the series (those cost most on a first read)."""
    bounds = list(zip(starts.tolist(), ends.tolist(), strict=True))
    lowest = [first + int(y[first:stop].argmin()) for first, stop in bounds]
    highest = [first + int(y[first:stop].argmax()) for first, stop in bounds]
    return np.array(lowest, dtype=np.int64), np.array(highest, dtype=np.int64)


def _extremes_at_once(y: np.ndarray, starts: np.ndarray,
                      ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """As _extremes_by_column, over the whole series at once (cheaper for few points per
    column than a numpy call per column)."""
    counts = ends - starts
    segment = np.repeat(np.arange(len(starts)), counts)
    lowest = _first_where(y == np.repeat(np.minimum.reduceat(y, starts), counts), segment)
    highest = _first_where(y == np.repeat(np.maximum.reduceat(y, starts), counts), segment)
    return lowest, highest


def _sorted_distinct(indices: np.ndarray) -> np.ndarray:
    """np.unique of a few indices, without the import np.unique makes on its first call (a
    server's first chart paid it)."""
    ordered = np.sort(indices)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _first_where(mask: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Per segment (every segment has a True), the index of its first True."""
    found = np.flatnonzero(mask)
    owners = segment[found]
    first = np.concatenate(([True], owners[1:] != owners[:-1]))
    return found[first]


def _column_starts(x: np.ndarray, low: float, span: float, width: int) -> np.ndarray:
    """The index of the first point of each non-empty pixel column of sorted `x`, where the
    column of a point is floor((x - low) * width / span) clipped to [-1, width] (the points
    outside the range on each side get columns of their own). Columns never decrease along
    x, so each column's start is found by a binary search, all columns at once: log2(len(x))
    steps over width + 1 values instead of a column number for every point."""
    if span <= 0:
        return np.zeros(1, dtype=np.int64)
    scale = width / span
    wanted = np.arange(width + 1)  # the first index of a column >= 0, 1, ..., width
    lo = np.zeros(width + 1, dtype=np.int64)
    hi = np.full(width + 1, len(x), dtype=np.int64)
    while True:
        open_ = lo < hi
        if not open_.any():
            break
        middle = (lo + hi) // 2
        at = x[np.minimum(middle, len(x) - 1)]
        columns = np.clip(np.floor((at - low) * scale), -1, width)
        before = open_ & (columns < wanted)
        lo = np.where(before, middle + 1, lo)
        hi = np.where(open_ & ~before, middle, hi)
    return _sorted_distinct(np.concatenate(([0], lo[lo < len(x)])))


def smooth(y: np.ndarray, weight: float) -> np.ndarray:
    """The exponential moving average of `y` with `weight` in [0, 1) (0: unchanged), debiased
    at the start as TensorBoard does, so the first points are not pulled towards 0.

    Vectorised by chunks: within a chunk, s[j] = a^(j+1) s[-1] + (1-a) a^j cumsum(y[k] a^-k);
    chunks are short enough that a^-k stays far from overflow."""
    if weight <= 0 or not len(y):
        return y
    a = min(float(weight), 0.999999)
    step = max(1, int(_MAX_EXPONENT / -math.log(a)))
    out = np.empty_like(y)
    state = 0.0
    for begin in range(0, len(y), step):
        part = y[begin:begin + step]
        powers = a ** np.arange(len(part), dtype=np.float64)
        values = a * powers * state + (1 - a) * powers * np.cumsum(part / powers)
        out[begin:begin + len(part)] = values
        state = float(values[-1])
    debias = 1 - a ** np.arange(1, len(y) + 1, dtype=np.float64)
    return out / debias


def chart_series(x: Any, y: Any, width: int, low: float | None, high: float | None,
                 weight: float = 0.0) -> dict[str, Any]:
    """One series for the chart: {"x", "y", "points" (in the range, before reduction),
    "reduced"} as JSON-able lists. Smoothing is computed over every point, then reduced."""
    xs, ys = sorted_by_x(x, y)
    if weight > 0:
        ys = smooth(ys, weight)
    total = len(xs)
    rx, ry, reduced = reduce_for_width(xs, ys, width, low, high)
    return {"x": rx.tolist(), "y": ry.tolist(), "points": total, "reduced": reduced}
