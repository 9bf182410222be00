"""Metric series stored in chunks: packed arrays of steps, timestamps and values.

A point per row made both ingest and reads slow (a million SQL rows for a
million points). Here a batch of points of one series becomes one row holding
three little-endian arrays; small appends are merged into the series' last
chunk while it is small, so a series of a million points is a few hundred
rows, read in milliseconds. NaN and infinities live in the arrays as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import Connection, bindparam, delete, insert, select, update

from cumulo.core.points import Points
from cumulo.store import schema as t
from cumulo.store.prepared import Prepared

# A batch this big becomes a chunk of its own; smaller ones join the last chunk
# of their series until it holds MERGE_LIMIT points.
OWN_CHUNK = 512
MERGE_LIMIT = 4096

_INSERT = Prepared(insert(t.metric_chunks))
# A series' last chunk, and its extension: built once, run on the driver (store/prepared.py).
_LAST_CHUNK_QUERY = (
    select(
        t.metric_chunks.c.id,
        t.metric_chunks.c.size,
        t.metric_chunks.c.min_step,
        t.metric_chunks.c.max_step,
        t.metric_chunks.c.step_data,
        t.metric_chunks.c.time_data,
        t.metric_chunks.c.value_data,
    )
    .where(
        t.metric_chunks.c.run_id == bindparam("run_id"), t.metric_chunks.c.key == bindparam("key")
    )
    .order_by(t.metric_chunks.c.id.desc())
    .limit(1)
)
_LAST_CHUNK = Prepared(_LAST_CHUNK_QUERY)
_LAST_CHUNK_LOCKED = Prepared(_LAST_CHUNK_QUERY.with_for_update())
_EXTEND_CHUNK = Prepared(update(t.metric_chunks).where(t.metric_chunks.c.id == bindparam("b_id")))
_I8 = np.dtype("<i8")
_F8 = np.dtype("<f8")


class _Chunk(NamedTuple):
    """A series' last chunk, as ``_LAST_CHUNK`` reads it."""

    id: int
    size: int
    min_step: int
    max_step: int
    step_data: bytes
    time_data: bytes
    value_data: bytes


@dataclass
class Series:
    step: np.ndarray
    timestamp: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.step)

    def slice(self, start: int, stop: int | None) -> Series:
        return Series(self.step[start:stop], self.timestamp[start:stop], self.value[start:stop])

    def where(self, mask: np.ndarray) -> Series:
        return Series(self.step[mask], self.timestamp[mask], self.value[mask])


def _is_ordered(steps: np.ndarray, stamps: np.ndarray) -> bool:
    if len(steps) < 2:
        return True
    ds = np.diff(steps)
    if (ds < 0).any():
        return False
    same = ds == 0
    return not (same & (np.diff(stamps) < 0)).any()


def append(
    conn: Connection,
    run_id: str,
    points: Sequence[tuple[str, float, int, int]] | Points,
    lock: bool,
) -> dict[str, tuple[int, int, float]]:
    """Store validated ``(key, value, step, timestamp)`` points; return each key's latest point.

    ``lock`` takes a row lock on the chunk being extended (PostgreSQL), so two
    writers to one series cannot lose each other's points.
    """
    keys: Sequence[str]
    if isinstance(points, Points):
        keys, values_all = points.key, points.value.astype(_F8, copy=False)
        steps_all = points.step.astype(_I8, copy=False)
        stamps_all = points.timestamp.astype(_I8, copy=False)
    else:
        # Not zip(*points): its iterator per point outlives the young generations
        # of the garbage collector and sets off a full collection every few batches.
        keys = [p[0] for p in points]
        values_all = np.array([p[1] for p in points], dtype=_F8)
        steps_all = np.array([p[2] for p in points], dtype=_I8)
        stamps_all = np.array([p[3] for p in points], dtype=_I8)
    distinct = set(keys)
    groups: dict[str, Any]
    if len(distinct) == 1:  # the common case: one series per batch
        groups = {keys[0]: slice(None)}
    else:
        key_array = np.array(keys, dtype=object)
        groups = {k: key_array == k for k in distinct}
    latest: dict[str, tuple[int, int, float]] = {}
    for key, pick in groups.items():
        values, steps, stamps = values_all[pick], steps_all[pick], stamps_all[pick]
        last_i = int(np.lexsort((stamps, steps))[-1]) if len(steps) > 1 else 0
        latest[key] = (int(steps[last_i]), int(stamps[last_i]), float(values[last_i]))
        if len(steps) < OWN_CHUNK and _merge(conn, run_id, key, steps, stamps, values, lock):
            continue
        _INSERT.execute(
            conn,
            {
                "run_id": run_id,
                "key": key,
                "size": len(steps),
                "min_step": int(steps.min()),
                "max_step": int(steps.max()),
                "step_data": steps.tobytes(),
                "time_data": stamps.tobytes(),
                "value_data": values.tobytes(),
            },
        )
    return latest


def _merge(
    conn: Connection,
    run_id: str,
    key: str,
    steps: np.ndarray,
    stamps: np.ndarray,
    values: np.ndarray,
    lock: bool,
) -> bool:
    params = {"run_id": run_id, "key": key}
    found = (_LAST_CHUNK_LOCKED if lock else _LAST_CHUNK).first(conn, params)
    if found is None:
        return False
    last = _Chunk._make(found)
    if len(steps) == 1 and _is_last_point(last, steps, stamps, values):
        # The same point again (step, time and value): a client's retry of a call
        # whose answer it lost. Kept once, as MLflow keeps identical points.
        return True
    if last.size + len(steps) > MERGE_LIMIT:
        return False
    _EXTEND_CHUNK.execute(
        conn,
        {
            "b_id": last.id,
            "size": last.size + len(steps),
            "min_step": min(last.min_step, int(steps.min())),
            "max_step": max(last.max_step, int(steps.max())),
            "step_data": bytes(last.step_data) + steps.tobytes(),
            "time_data": bytes(last.time_data) + stamps.tobytes(),
            "value_data": bytes(last.value_data) + values.tobytes(),
        },
    )
    return True


def _is_last_point(last: Any, steps: np.ndarray, stamps: np.ndarray, values: np.ndarray) -> bool:
    return (
        bytes(last.step_data[-8:]) == steps.tobytes()
        and bytes(last.time_data[-8:]) == stamps.tobytes()
        and bytes(last.value_data[-8:]) == values.tobytes()
    )


def read(
    conn: Connection,
    run_id: str,
    key: str,
    start_step: int | None = None,
    end_step: int | None = None,
) -> Series:
    """The series in (step, timestamp, logging) order, optionally within a step range."""
    c = t.metric_chunks
    q = select(c.c.step_data, c.c.time_data, c.c.value_data).where(
        c.c.run_id == run_id, c.c.key == key
    )
    if start_step is not None:
        q = q.where(c.c.max_step >= start_step)
    if end_step is not None:
        q = q.where(c.c.min_step <= end_step)
    rows = conn.execute(q.order_by(c.c.id)).all()
    if not rows:
        empty_i, empty_f = np.empty(0, _I8), np.empty(0, _F8)
        return Series(empty_i, empty_i.copy(), empty_f)
    steps = np.frombuffer(b"".join(bytes(r[0]) for r in rows), dtype=_I8)
    stamps = np.frombuffer(b"".join(bytes(r[1]) for r in rows), dtype=_I8)
    values = np.frombuffer(b"".join(bytes(r[2]) for r in rows), dtype=_F8)
    series = Series(steps, stamps, values)
    if not _is_ordered(steps, stamps):
        order = np.lexsort((stamps, steps))  # stable: ties keep logging order
        series = Series(steps[order], stamps[order], values[order])
    if start_step is not None or end_step is not None:
        mask = np.ones(len(series), dtype=bool)
        if start_step is not None:
            mask &= series.step >= start_step
        if end_step is not None:
            mask &= series.step <= end_step
        series = series.where(mask)
    return series


def summary(conn: Connection, run_id: str, key: str) -> tuple[int, float | None, float | None]:
    """A series' length and its smallest and largest value, NaN left out (None where no
    value is a number): only the chunks' values are read, and none are sorted."""
    c = t.metric_chunks
    blobs = conn.execute(
        select(c.c.value_data).where(c.c.run_id == run_id, c.c.key == key)
    ).scalars()
    values = np.frombuffer(b"".join(bytes(b) for b in blobs), dtype=_F8)
    numbers = values[~np.isnan(values)]
    if not len(numbers):
        return len(values), None, None
    return len(values), float(numbers.min()), float(numbers.max())


def delete_runs(conn: Connection, run_ids: list[str]) -> None:
    conn.execute(delete(t.metric_chunks).where(t.metric_chunks.c.run_id.in_(run_ids)))


def chart_rows(
    series: Series, axis: str, start: int | None, end: int | None, max_rows: int, buckets: int
) -> tuple[int, str, list[tuple[Any, ...]]]:
    """``(count, "points", [(x, value)])`` or ``(count, "buckets", [(x0, x1, min, max)])``.

    Buckets split the ``axis`` range into equal widths (see ``bucket_width``);
    min and max ignore NaN, and NaN points come back as None.
    """
    from cumulo.core.downsample import bucket_width

    x = series.step if axis == "step" else series.timestamp
    y = series.value
    if axis != "step":
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
    mask = np.ones(len(x), dtype=bool)
    if start is not None:
        mask &= x >= start
    if end is not None:
        mask &= x <= end
    x, y = x[mask], y[mask]
    count = len(x)
    if count <= max_rows:
        ys = [None if v != v else v for v in y.tolist()]
        return count, "points", list(zip(x.tolist(), ys, strict=True))
    lo = int(x[0])
    width = bucket_width(lo, int(x[-1]), buckets)
    b = (x - lo) // width
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    ends = np.r_[starts[1:], len(x)] - 1
    with np.errstate(invalid="ignore"):
        lows = np.fmin.reduceat(y, starts)
        highs = np.fmax.reduceat(y, starts)
    rows = [
        (int(x[s]), int(x[e]), None if lo_ != lo_ else lo_, None if hi_ != hi_ else hi_)
        for s, e, lo_, hi_ in zip(starts, ends, lows.tolist(), highs.tolist(), strict=True)
    ]
    return count, "buckets", rows
