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
#: EMA chunk: a**-k must stay far from overflow (see `smooth`).
_MAX_EXPONENT = 300.0


def sorted_by_x(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) as float arrays sorted by x (stable: equal x keep their report order), with the
    points whose y is NaN or infinite left out (JSON has no NaN; a chart shows a gap)."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(ys) & np.isfinite(xs)
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
    span = high - low
    if span > 0:
        columns = np.floor((x - low) * (width / span)).astype(np.int64)
        np.clip(columns, -1, width, out=columns)  # the two edge points get columns of their own
    else:
        columns = np.zeros(len(x), dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], columns[1:] != columns[:-1])))
    counts = np.diff(np.append(starts, len(x)))
    segment = np.repeat(np.arange(len(starts)), counts)
    lowest = _first_where(y == np.repeat(np.minimum.reduceat(y, starts), counts), segment)
    highest = _first_where(y == np.repeat(np.maximum.reduceat(y, starts), counts), segment)
    keep = np.unique(np.concatenate((starts, starts + counts - 1, lowest, highest)))
    return x[keep], y[keep], True


def _first_where(mask: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Per segment (every segment has a True), the index of its first True."""
    found = np.flatnonzero(mask)
    owners = segment[found]
    first = np.concatenate(([True], owners[1:] != owners[:-1]))
    return found[first]


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
