"""When a schedule's ticks fall: the rule's checks and its tick arithmetic.

A rule is a recurrence (``frequency`` Second | Minute | Hour | Day | Week,
every ``interval`` of them, on ticks ``start_time + k * period``) or a cron
expression, read in UTC by croniter. All times are milliseconds since the
epoch. Firing the ticks is ``services/schedules.py``'s.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from croniter import CroniterBadCronError, croniter

from cumulo.core.errors import InvalidInput
from cumulo.core.pipelines import ScheduleInfo

FREQUENCIES = {
    "Second": 1_000,
    "Minute": 60_000,
    "Hour": 3_600_000,
    "Day": 86_400_000,
    "Week": 604_800_000,
}


def recurrence(frequency: Any, interval: Any) -> tuple[str, int]:
    """A checked ``(frequency, interval)``: ``("Minute", 5)`` fires every five minutes."""
    freq = next((f for f in FREQUENCIES if isinstance(frequency, str) and f.lower() ==
                 frequency.lower()), None)  # fmt: skip
    if freq is None:
        raise InvalidInput(
            f"Unknown frequency {frequency!r}; use {', '.join(FREQUENCIES)} (or a cron expression)."
        )
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise InvalidInput(f"A schedule's interval must be a whole number >= 1, got {interval!r}.")
    return freq, interval


def next_recurrence(start: int, period_ms: int, after: int) -> int:
    """The first tick ``start + k * period_ms`` strictly after ``after``."""
    if after < start:
        return start
    return start + ((after - start) // period_ms + 1) * period_ms


def last_recurrence(start: int, period_ms: int, at: int) -> int | None:
    """The last tick at or before ``at``, None before the first."""
    if at < start:
        return None
    return start + ((at - start) // period_ms) * period_ms


def with_rule(
    info: ScheduleInfo,
    frequency: str | None,
    interval: int,
    start_time: int | None,
    cron: str | None,
    now: int,
) -> ScheduleInfo:
    """``info`` with its checked rule and first tick."""
    if (frequency is None) == (cron is None):
        raise InvalidInput(
            "A schedule takes a recurrence (frequency and interval) or a cron expression, "
            "one of the two."
        )
    if cron is not None:
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise InvalidInput(
                f"{cron!r} is not a cron expression (minute hour day month weekday, "
                "e.g. '*/5 * * * *')."
            )
        info = replace(info, cron=cron)
    else:
        freq, every = recurrence(frequency, interval)
        if start_time is not None and (isinstance(start_time, bool) or start_time < 0):
            raise InvalidInput("start_time must be milliseconds since the epoch.")
        info = replace(
            info,
            frequency=freq,
            interval=every,
            start_time=now if start_time is None else start_time,
        )
    return replace(info, next_fire_at=first_tick(info, now))


def _cron(expr: str, at_ms: int) -> croniter:
    try:
        return croniter(expr, datetime.fromtimestamp(at_ms / 1000, UTC))
    except (CroniterBadCronError, ValueError) as exc:
        raise InvalidInput(f"Cron expression {expr!r}: {exc}") from None


def _period(info: ScheduleInfo) -> int:
    assert info.frequency is not None and info.interval is not None
    return FREQUENCIES[info.frequency] * info.interval


def first_tick(info: ScheduleInfo, now: int) -> int:
    """The first tick at or after ``now``."""
    if info.cron is not None:
        return next_tick(info, now - 1)
    assert info.start_time is not None
    return next_recurrence(info.start_time, _period(info), now - 1)


def next_tick(info: ScheduleInfo, after: int) -> int:
    """The first tick strictly after ``after``."""
    if info.cron is not None:
        return int(_cron(info.cron, after).get_next(float) * 1000)
    assert info.start_time is not None
    return next_recurrence(info.start_time, _period(info), after)


def latest_tick(info: ScheduleInfo, now: int) -> int | None:
    """The last tick at or before ``now``."""
    if info.cron is not None:
        nxt = next_tick(info, now)
        prev = int(_cron(info.cron, nxt).get_prev(float) * 1000)
        return prev if prev <= now else None
    assert info.start_time is not None
    return last_recurrence(info.start_time, _period(info), now)
