"""The background writer: batching, retries after outages, nothing written twice."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cumulo import Experiment, InsufficientStorage, Unavailable, Workspace
from cumulo.compute.spool import Spool
from cumulo.core.entities import now_ms
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
    flaky = Flaky(ws.transport.tracking, fail_before=2, fail_after=2)
    writer = MetricWriter(flaky, ws.name)  # type: ignore[arg-type]
    for i in range(2500):
        writer.put_metric(run.id, "m", float(i), i, 1000 + i)
    writer.flush(timeout=30)
    history = ws.transport.tracking.get_metric_history(ws.name, run.id, "m")
    assert history["value"] == [float(i) for i in range(2500)]
    assert flaky.calls >= 4


def test_flush_reports_errors_retrying_cannot_fix() -> None:
    ws = Workspace.create("writer2")
    run = Experiment(ws, "e").start_logging()
    writer = MetricWriter(ws.transport.tracking, ws.name)
    writer.put_metric("0" * 32, "m", 1.0, 0, 0)  # a run that does not exist
    writer.put_metric(run.id, "m", 1.0, 0, 0)
    with pytest.raises(Exception, match="does not exist"):
        writer.flush(timeout=10)
    assert ws.transport.tracking.get_metric_history(ws.name, run.id, "m")["value"] == [1.0]


def test_flush_times_out_while_the_store_is_down_and_keeps_the_points() -> None:
    ws = Workspace.create("writer3")
    run = Experiment(ws, "e").start_logging()
    flaky = Flaky(ws.transport.tracking, fail_before=10**9, fail_after=0)
    writer = MetricWriter(flaky, ws.name)  # type: ignore[arg-type]
    writer.put_metric(run.id, "m", 1.0, 0, 0)
    with pytest.raises(Unavailable, match="still buffered"):
        writer.flush(timeout=0.5)
    assert writer.buffered == 1
    flaky.fail_before = 0  # the store comes back
    writer.flush(timeout=10)
    assert ws.transport.tracking.get_metric_history(ws.name, run.id, "m")["value"] == [1.0]


def test_per_call_logging_returns_without_waiting_for_the_store() -> None:
    ws = Workspace.create("writer4")
    run = Experiment(ws, "e").start_logging()
    flaky = Flaky(ws.transport.tracking, fail_before=10**9, fail_after=0)
    ws._writer = MetricWriter(flaky, ws.name)  # type: ignore[arg-type]
    for i in range(10_000):
        run.log("fast", float(i))  # the store is down: calls still return
    assert ws._writer.buffered == 10_000
    flaky.fail_before = 0
    run.flush()
    assert len(run.get_metric_history("fast")["value"]) == 10_000


# ------------------------------------------------------------ the job's spool
def _down(ws: Workspace) -> Flaky:
    """The store, unreachable until ``fail_before`` is set back to 0."""
    return Flaky(ws.transport.tracking, fail_before=10**9, fail_after=0)


def _log_points(writer: MetricWriter, run_id: str, count: int) -> None:
    for step in range(count):
        writer.put_metric(run_id, "m", float(step), step, now_ms())


def _stored_steps(ws: Workspace, run_id: str) -> list[int]:
    return sorted(ws.transport.tracking.get_metric_history(ws.name, run_id, "m")["step"])


def test_points_wait_on_disk_while_the_store_is_down_and_are_stored_once(
    tmp_path: Path,
) -> None:
    ws = Workspace.create("spooled")
    run = Experiment(ws, "e").start_logging()
    flaky, spool = _down(ws), Spool(tmp_path / "spool")
    writer = MetricWriter(flaky, ws.name, spool=spool)
    _log_points(writer, run.id, 100)
    _wait(lambda: spool.points() == 100)
    assert writer.buffered == 100 and not writer._pending  # on disk, not in memory
    with flaky.lock:
        flaky.fail_before = 0
    writer.flush(timeout=30)
    assert spool.files() == [] and _stored_steps(ws, run.id) == list(range(100))


def test_at_exit_what_is_left_stays_on_disk_for_the_runner_and_is_stored_once(
    tmp_path: Path,
) -> None:
    ws = Workspace.create("left")
    run = Experiment(ws, "e").start_logging()
    spool = Spool(tmp_path / "spool")
    writer = MetricWriter(_down(ws), ws.name, spool=spool)
    _log_points(writer, run.id, 50)
    writer.close()  # the script exits while no server answers
    assert spool.points() == 50
    copies = {path: path.read_bytes() for path in spool.files()}
    assert spool.replay(lambda e: ws.transport.tracking.log_batch(**_batch_args(e)))
    for path, data in copies.items():  # the same batches once more (a lost answer)
        path.write_bytes(data)
    assert spool.replay(lambda e: ws.transport.tracking.log_batch(**_batch_args(e)))
    assert spool.files() == [] and _stored_steps(ws, run.id) == list(range(50))


def test_a_full_spool_keeps_the_oldest_refuses_the_newest_and_says_so(tmp_path: Path) -> None:
    ws = Workspace.create("full")
    run = Experiment(ws, "e").start_logging()
    spool = Spool(tmp_path / "spool", max_bytes=2000)
    writer = MetricWriter(_down(ws), ws.name, spool=spool)
    _log_points(writer, run.id, 10)
    _wait(lambda: spool.points() == 10)
    _log_points(writer, run.id, 200)  # more than the folder holds
    _wait(lambda: spool.lost() == 200)
    assert spool.points() == 10  # the oldest are kept
    with pytest.raises(InsufficientStorage, match="200 metric points of run"):
        writer.flush(timeout=1)
    with contextlib.suppress(InsufficientStorage):
        writer.close()  # says, now rather than at exit, what it leaves in the spool


def _batch_args(entry: dict[str, Any]) -> dict[str, Any]:
    keys = ("workspace", "run_id", "metrics", "records", "batch_id")
    return {key: entry[key] for key in keys}


def _wait(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
