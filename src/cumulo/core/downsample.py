"""Downsampling of long metric series for charts.

A chart is a few hundred to a few thousand pixels wide: sending it a million
points wastes the network and the browser. Two methods, both keeping the
shape a person sees:

- ``lttb``: largest-triangle-three-buckets (Steinarsson, 2013). Picks, in
  each bucket, the point that forms the largest triangle with the point kept
  before it and the average of the next bucket. Best looking; needs every
  point in memory, so it is used for series up to a few tens of thousands.
- ``minmax_buckets``: each bucket keeps its lowest and highest point, in the
  order they occur. Spikes are never lost. The store computes the same
  buckets in SQL for very long series (``bucket_width`` gives the width), and
  ``from_buckets`` turns its rows into a series.

Missing values (NaN, None) are kept out of the geometry and never chosen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cumulo.core.errors import InvalidInput

Number = float | int


@dataclass(frozen=True)
class Series:
    """Points of one line, as parallel columns sorted by ``x``."""

    x: list[Number]
    y: list[float | None]

    def __len__(self) -> int:
        return len(self.x)


def _finite(v: float | None) -> bool:
    return v is not None and not math.isnan(v) and not math.isinf(v)


def _check(x: Sequence[Number], y: Sequence[float | None], threshold: int) -> None:
    if len(x) != len(y):
        raise InvalidInput(f"x and y differ in length ({len(x)} and {len(y)}).")
    if threshold < 3:
        raise InvalidInput(f"Downsample to at least 3 points, got {threshold}.")


def lttb(x: Sequence[Number], y: Sequence[float | None], threshold: int) -> Series:
    """Keep ``threshold`` points of ``(x, y)`` by largest-triangle-three-buckets.

    The first and last finite points are always kept; a series that is
    already short enough comes back unchanged (missing values included).
    """
    _check(x, y, threshold)
    if len(x) <= threshold:
        return Series(list(x), list(y))
    idx = [i for i in range(len(x)) if _finite(y[i])]
    n = len(idx)
    if n <= threshold:
        return Series([x[i] for i in idx], [y[i] for i in idx])
    xs = [float(x[i]) for i in idx]
    ys = [float(y[i]) for i in idx]  # type: ignore[arg-type]
    keep = [0]
    every = (n - 2) / (threshold - 2)
    a = 0
    for b in range(threshold - 2):
        start = int(b * every) + 1
        end = int((b + 1) * every) + 1
        # The average of the next bucket (the last point for the final bucket).
        nstart, nend = end, min(int((b + 2) * every) + 1, n)
        if nstart >= nend:
            avg_x, avg_y = xs[-1], ys[-1]
        else:
            span = nend - nstart
            avg_x = sum(xs[nstart:nend]) / span
            avg_y = sum(ys[nstart:nend]) / span
        ax, ay = xs[a], ys[a]
        best, best_area = start, -1.0
        for i in range(start, min(end, n - 1)):
            area = abs((ax - avg_x) * (ys[i] - ay) - (ax - xs[i]) * (avg_y - ay))
            if area > best_area:
                best, best_area = i, area
        keep.append(best)
        a = best
    keep.append(n - 1)
    return Series([x[idx[i]] for i in keep], [y[idx[i]] for i in keep])


def minmax_buckets(x: Sequence[Number], y: Sequence[float | None], buckets: int) -> Series:
    """Split ``x`` into ``buckets`` equal ranges; keep each range's lowest and highest point.

    At most ``2 * buckets`` points come back, in ``x`` order.
    """
    _check(x, y, max(buckets, 3))
    if len(x) <= 2 * buckets:
        return Series(list(x), list(y))
    finite = [i for i in range(len(x)) if _finite(y[i])]
    if not finite:
        return Series([], [])
    lo, hi = x[finite[0]], x[finite[-1]]
    width = bucket_width(lo, hi, buckets)
    low: dict[int, int] = {}
    high: dict[int, int] = {}
    for i in finite:
        b = int((x[i] - lo) // width)
        v = y[i]
        if b not in low or v < y[low[b]]:  # type: ignore[operator]
            low[b] = i
        if b not in high or v > y[high[b]]:  # type: ignore[operator]
            high[b] = i
    keep = sorted(set(low.values()) | set(high.values()))
    return Series([x[i] for i in keep], [y[i] for i in keep])


def bucket_width(lo: Number, hi: Number, buckets: int) -> int:
    """The integer width that splits ``[lo, hi]`` into at most ``buckets`` ranges."""
    if buckets < 1:
        raise InvalidInput(f"Use at least one bucket, got {buckets}.")
    span = int(hi) - int(lo) + 1
    return max(1, -(-span // buckets))


def from_buckets(rows: Sequence[Sequence[Number | None]]) -> Series:
    """A series from rows ``(x_first, x_last, y_min, y_max, x_of_min, x_of_max)``.

    Rows are one per bucket, in bucket order. Each bucket gives its low and
    high point in the order they occur (``x_of_min``/``x_of_max`` may be None
    when the store cannot tell; then the low point is put at the bucket's
    first ``x`` and the high point at its last). A bucket with one distinct
    value gives one point.
    """
    xs: list[Number] = []
    ys: list[float | None] = []
    for first, last, vmin, vmax, at_min, at_max in rows:
        if vmin is None or vmax is None or first is None or last is None:
            continue
        x_min = first if at_min is None else at_min
        x_max = last if at_max is None else at_max
        if vmin == vmax or x_min == x_max:
            xs.append(x_min)
            ys.append(float(vmin if vmin == vmax else vmax))
            continue
        pair = sorted([(x_min, float(vmin)), (x_max, float(vmax))])
        for px, py in pair:
            xs.append(px)
            ys.append(py)
    return Series(xs, ys)
