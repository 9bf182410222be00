"""Checking a batch of metric points before it is stored, given as rows or as columns.

Rows are ``(key, value, step, timestamp_ms)`` tuples, checked point by point.
Columns are four equally long lists, ``{"key": [...], "value": [...],
"step": [...], "timestamp": [...]}`` (the SDK's form, and its wire form over
HTTP): they are checked a column at a time (one pass over each column's
types, numpy for the ranges) and reach the store as arrays, with no tuple per
point, which spares the allocations and the garbage collections they set off
in a busy server. A column holding anything these checks do not settle (a
step given as a float, a missing timestamp, an invalid name, a number out of
range) sends the whole batch through the row checks, so both forms accept and
refuse exactly the same points, with the same messages. Either way one bad
point refuses the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cumulo.core import system_metrics, validation
from cumulo.core.entities import decode_float
from cumulo.core.errors import InvalidInput
from cumulo.core.points import Points

if TYPE_CHECKING:
    import numpy as np

COLUMNS = ("key", "value", "step", "timestamp")
Point = tuple[str, float, int, int]

_INT64_MIN, _INT64_MAX = validation.INT64_MIN, validation.INT64_MAX
_SPECIAL = ("NaN", "Infinity", "-Infinity")
_NUMBERS = {float, int}
_INT = {int}
_STR = {str}


def check_rows(metrics: Iterable[Sequence[Any]], now: int) -> list[Point]:
    """Checked points; step None is 0 and timestamp None is ``now``."""
    points = []
    keys: set[str] = set()
    for item in metrics:
        if len(item) != 4:
            raise InvalidInput("Each metric point is (key, value, step, timestamp_ms).")
        key, value, step, ts = item
        if type(key) is not str or key not in keys:  # each name is checked once per batch
            system_metrics.check_name(validation.key(key, "metric"))
            keys.add(key)
        # The common case (a float, an int step and timestamp) skips the full checks.
        if type(value) is not float:
            if isinstance(value, str):
                value = _special_float(key, value)
            value = _number(key, value)
        if type(step) is not int or not _INT64_MIN <= step <= _INT64_MAX:
            step = 0 if step is None else validation.step(step)
        if type(ts) is not int or not 0 <= ts <= _INT64_MAX:
            ts = now if ts is None else validation.timestamp_ms(ts)
        points.append((key, value, step, ts))
    return points


def check_columns(columns: Mapping[str, Any], now: int) -> list[Point] | Points:
    """Checked points of a batch given as columns; the same rules as ``check_rows``."""
    unknown = [name for name in columns if name not in COLUMNS]
    missing = [name for name in COLUMNS if name not in columns]
    if unknown or missing:
        problem = f"unknown {unknown}" if unknown else f"missing {missing}"
        raise InvalidInput(
            f"Metric columns are {', '.join(COLUMNS)}, each a list with one item per point "
            f"({problem})."
        )
    keys, values, steps, stamps = (columns[name] for name in COLUMNS)
    for name, column in zip(COLUMNS, (keys, values, steps, stamps), strict=True):
        if not isinstance(column, (list, tuple)):
            raise InvalidInput(
                f"The metric column {name!r} must be a list, got {type(column).__name__}."
            )
    if not len(keys) == len(values) == len(steps) == len(stamps):
        lengths = ", ".join(f"{name} {len(columns[name])}" for name in COLUMNS)
        raise InvalidInput(
            f"The metric columns must be equally long (one item per point); got {lengths}."
        )
    points = _fast_columns(keys, values, steps, stamps)
    if points is None:
        return check_rows(zip(keys, values, steps, stamps, strict=True), now)
    return points


def _fast_columns(
    keys: Sequence[Any], values: Sequence[Any], steps: Sequence[Any], stamps: Sequence[Any]
) -> Points | None:
    """The columns as arrays, or None where only the row checks can tell what is wrong."""
    if not set(map(type, keys)) <= _STR:
        return None
    try:
        for key in dict.fromkeys(keys):
            system_metrics.check_name(validation.key(key, "metric"))
    except InvalidInput:
        return None
    value = _floats(values)
    step = _ints(steps)
    stamp = _ints(stamps)
    if value is None or step is None or stamp is None or (len(stamp) and stamp.min() < 0):
        return None
    return Points(keys, value, step, stamp)


def _floats(values: Sequence[Any]) -> np.ndarray | None:
    kinds = set(map(type, values))
    if str in kinds:  # NaN and infinities travel as text
        if any(type(v) is str and v not in _SPECIAL for v in values):
            return None
        values = [decode_float(v) if type(v) is str else v for v in values]
        kinds = set(map(type, values))
    if not kinds <= _NUMBERS:  # bools, None, lists...
        return None
    import numpy as np  # on the first metric columns: not at a server's start

    try:
        return np.asarray(values, dtype=np.float64)
    except OverflowError:  # an int beyond a float's range
        return None


def _ints(column: Sequence[Any]) -> np.ndarray | None:
    if not set(map(type, column)) <= _INT:  # bools, None, floats...
        return None
    import numpy as np  # on the first metric columns: not at a server's start

    try:
        return np.asarray(column, dtype=np.int64)
    except OverflowError:  # beyond 64 bits
        return None


def _special_float(key: str, value: str) -> float:
    try:
        return decode_float(value) if value in _SPECIAL else float("x")
    except ValueError:
        raise InvalidInput(
            f"Metric {key!r} got the string {value!r}; a metric value must be a number."
        ) from None


def _number(key: str, value: Any) -> float:
    try:
        return validation.metric_value(key, value)
    except OverflowError:  # an int beyond the float range
        raise InvalidInput(
            f"Metric {key!r} got {value!r}, which does not fit in a 64-bit float."
        ) from None
