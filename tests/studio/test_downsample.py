"""The downsamplers keep the shape of a series: ends, spikes, order and gaps."""

from __future__ import annotations

import math
import random

import pytest

from cumulo.core.downsample import bucket_width, from_buckets, lttb, minmax_buckets
from cumulo.core.errors import InvalidInput


def test_lttb_returns_short_series_unchanged() -> None:
    s = lttb([0, 1, 2], [1.0, None, 3.0], 10)
    assert s.x == [0, 1, 2] and s.y == [1.0, None, 3.0]


def test_lttb_keeps_threshold_points_ends_and_order() -> None:
    xs = list(range(10_000))
    ys = [math.sin(i / 100) for i in xs]
    s = lttb(xs, ys, 500)
    assert len(s) == 500
    assert s.x[0] == 0 and s.x[-1] == 9_999
    assert s.x == sorted(s.x) and len(set(s.x)) == 500
    assert all(ys[x] == y for x, y in zip(s.x, s.y, strict=True))


def test_lttb_keeps_a_single_spike() -> None:
    ys = [0.0] * 5_000
    ys[3_217] = 100.0
    s = lttb(list(range(5_000)), ys, 100)
    assert 3_217 in s.x


def test_lttb_skips_missing_values() -> None:
    ys: list[float | None] = [float(i % 7) for i in range(1_000)]
    ys[10] = math.nan
    ys[20] = None
    s = lttb(list(range(1_000)), ys, 50)
    assert 10 not in s.x and 20 not in s.x
    assert all(y is not None and not math.isnan(y) for y in s.y)


def test_minmax_buckets_keep_extremes_of_each_bucket() -> None:
    rng = random.Random(7)
    xs = list(range(20_000))
    ys = [rng.random() for _ in xs]
    ys[12_345] = 5.0
    ys[777] = -5.0
    s = minmax_buckets(xs, ys, 100)
    assert len(s) <= 200
    assert 12_345 in s.x and 777 in s.x
    assert s.x == sorted(s.x)
    assert max(v for v in s.y if v is not None) == 5.0
    assert min(v for v in s.y if v is not None) == -5.0


def test_from_buckets_orders_points_and_drops_empty_buckets() -> None:
    rows = [
        (0, 9, -1.0, 2.0, 7, 3),  # the high point came first
        (10, 19, None, None, None, None),  # only NaN values
        (20, 29, 4.0, 4.0, None, None),  # flat
        (30, 39, 1.0, 3.0, None, None),
    ]
    s = from_buckets(rows)
    assert s.x == [3, 7, 20, 30, 39]
    assert s.y == [2.0, -1.0, 4.0, 1.0, 3.0]


def test_bucket_width_covers_the_range() -> None:
    assert bucket_width(0, 999_999, 1000) == 1000
    assert bucket_width(5, 5, 1000) == 1
    w = bucket_width(3, 1_000_003, 700)
    assert (1_000_003 - 3) // w < 700


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidInput):
        lttb([1, 2], [1.0], 10)
    with pytest.raises(InvalidInput):
        lttb([1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0], 2)
    with pytest.raises(InvalidInput):
        bucket_width(0, 10, 0)
