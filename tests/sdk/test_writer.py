"""The background writer: batching, retries after outages, nothing written twice."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from cumulo import Experiment, Unavailable, Workspace
from cumulo.sdk.writer import MetricWriter


class Flaky:
    """Wraps the real tracking service and fails like a network outage, sometimes after writing."""

    def __init__(self, inner: Any, fail_before: int, fail_after: int) -> None:
        self.inner = inner
        self.fail_before = fail_before  # calls that fail before reaching the store
        self.fail_after = fail_after  # calls that reach the store, then "lose" the answer
        self.calls = 0
        self.lock = threading.Lock()

    def log_batch(self, *args: Any, **kwargs: Any) -> bool:
        with self.lock:
            self.calls += 1
            if self.fail_before > 0:
                self.fail_before -= 1
                raise Unavailable("connection refused")
            result = self.inner.log_batch(*args, **kwargs)
            if self.fail_after > 0:
                self.fail_after -= 1
                raise Unavailable("connection reset after the write")
            return bool(result)


def test_outages_are_retried_and_each_point_stored_once() -> None:
    ws = Workspace.create("writer")
    run = Experiment(ws, "e").start_logging()
    flaky = Flaky(ws._transport, fail_before=2, fail_after=2)
    writer = MetricWriter(flaky, ws.name)  # type: ignore[arg-type]
    for i in range(2500):
        writer.put_metric(run.id, "m", float(i), i, 1000 + i)
    writer.flush(timeout=30)
    history = ws._transport.get_metric_history(ws.name, run.id, "m")
    assert history["value"] == [float(i) for i in range(2500)]
    assert flaky.calls >= 4


def test_flush_reports_errors_retrying_cannot_fix() -> None:
    ws = Workspace.create("writer2")
    run = Experiment(ws, "e").start_logging()
    writer = MetricWriter(ws._transport, ws.name)
    writer.put_metric("0" * 32, "m", 1.0, 0, 0)  # a run that does not exist
    writer.put_metric(run.id, "m", 1.0, 0, 0)
    with pytest.raises(Exception, match="does not exist"):
        writer.flush(timeout=10)
    assert ws._transport.get_metric_history(ws.name, run.id, "m")["value"] == [1.0]


def test_flush_times_out_while_the_store_is_down_and_keeps_the_points() -> None:
    ws = Workspace.create("writer3")
    run = Experiment(ws, "e").start_logging()
    flaky = Flaky(ws._transport, fail_before=10**9, fail_after=0)
    writer = MetricWriter(flaky, ws.name)  # type: ignore[arg-type]
    writer.put_metric(run.id, "m", 1.0, 0, 0)
    with pytest.raises(Unavailable, match="still buffered"):
        writer.flush(timeout=0.5)
    assert writer.buffered == 1
    flaky.fail_before = 0  # the store comes back
    writer.flush(timeout=10)
    assert ws._transport.get_metric_history(ws.name, run.id, "m")["value"] == [1.0]


def test_per_call_logging_returns_without_waiting_for_the_store() -> None:
    ws = Workspace.create("writer4")
    run = Experiment(ws, "e").start_logging()
    flaky = Flaky(ws._transport, fail_before=10**9, fail_after=0)
    ws._writer = MetricWriter(flaky, ws.name)  # type: ignore[arg-type]
    for i in range(10_000):
        run.log("fast", float(i))  # the store is down: calls still return
    assert ws._writer.buffered == 10_000
    flaky.fail_before = 0
    run.flush()
    assert len(run.get_metric_history("fast")["value"]) == 10_000
