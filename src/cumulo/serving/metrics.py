"""Request metrics per deployment and minute: counts, errors and a latency histogram.

Latencies go into log-spaced buckets (each 20 % wider than the last, from
50 µs to about two hours), so histograms from several processes and minutes
merge by adding counts, and p50/p95/p99 come back within 10 %.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from typing import Any

BASE_MS = 0.05
GROWTH = 1.2
BUCKETS = 100
_LOG_GROWTH = math.log(GROWTH)


def bucket(latency_ms: float) -> int:
    if latency_ms <= BASE_MS:
        return 0
    return min(BUCKETS - 1, math.ceil(math.log(latency_ms / BASE_MS) / _LOG_GROWTH))


def bucket_value(index: int) -> float:
    """A representative latency for a bucket: the geometric middle of its bounds."""
    if index == 0:
        return BASE_MS
    return float(BASE_MS * GROWTH ** (index - 0.5))


def percentiles(
    histogram: dict[int, int], points: Iterable[float] = (50, 95, 99)
) -> dict[str, float | None]:
    total = sum(histogram.values())
    out: dict[str, float | None] = {}
    ordered = sorted(histogram.items())
    for p in points:
        key = f"p{p:g}"
        if total == 0:
            out[key] = None
            continue
        rank = max(1, math.ceil(total * p / 100))
        seen = 0
        for index, count in ordered:
            seen += count
            if seen >= rank:
                out[key] = round(bucket_value(index), 3)
                break
    return out


def merge(histograms: Iterable[dict[Any, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for hist in histograms:
        for k, v in hist.items():
            out[int(k)] = out.get(int(k), 0) + int(v)
    return out


class MetricsBuffer:
    """Counts requests in memory; ``drain()`` hands over what was counted since the last call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[int, int], dict[str, Any]] = {}
        self._logs: list[dict[str, Any]] = []

    def record(self, deployment_id: int, status: int, latency_ms: float) -> None:
        minute = int(time.time() // 60) * 60_000
        with self._lock:
            row = self._rows.get((deployment_id, minute))
            if row is None:
                row = {
                    "deployment_id": deployment_id,
                    "minute": minute,
                    "requests": 0,
                    "errors": 0,
                    "latency_sum_ms": 0.0,
                    "histogram": {},
                }
                self._rows[(deployment_id, minute)] = row
            row["requests"] += 1
            if status >= 500:
                row["errors"] += 1
            row["latency_sum_ms"] += latency_ms
            b = bucket(latency_ms)
            hist = row["histogram"]
            hist[b] = hist.get(b, 0) + 1

    def log_request(self, entry: dict[str, Any]) -> None:
        with self._lock:
            if len(self._logs) < 10_000:
                self._logs.append(entry)

    def drain(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        with self._lock:
            rows, self._rows = list(self._rows.values()), {}
            logs, self._logs = self._logs, []
        return rows, logs

    def restore(self, rows: list[dict[str, Any]], logs: list[dict[str, Any]]) -> None:
        """Put back what could not be stored, so the next flush tries again."""
        with self._lock:
            for row in rows:
                key = (row["deployment_id"], row["minute"])
                mine = self._rows.get(key)
                if mine is None:
                    self._rows[key] = row
                    continue
                mine["requests"] += row["requests"]
                mine["errors"] += row["errors"]
                mine["latency_sum_ms"] += row["latency_sum_ms"]
                mine["histogram"] = merge([mine["histogram"], row["histogram"]])
            self._logs = (logs + self._logs)[:10_000]
