"""Chunked metric series: order, merging of small appends, step ranges and chart buckets."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import func, select

from cumulo import Experiment, Workspace
from cumulo.store import metric_series
from cumulo.store import schema as t


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    return workspace  # embedded only: see tests/store/conftest.py


def _chunks(ws: Workspace, run_id: str) -> int:
    store = ws.transport.tracking.store  # type: ignore[attr-defined]
    with store.db.transaction(write=False) as conn:
        q = select(func.count()).where(t.metric_chunks.c.run_id == run_id)
        return int(conn.execute(q).scalar_one())


def test_small_appends_are_merged_and_big_batches_stand_alone(ws: Workspace) -> None:
    run = Experiment(ws, "chunks").start_logging()
    svc = ws.transport.tracking
    for i in range(50):  # 50 appends of 10 points -> one chunk
        svc.log_batch(
            ws.name, run.id, metrics=[("m", float(i * 10 + j), i * 10 + j, 0) for j in range(10)]
        )
    assert _chunks(ws, run.id) == 1
    svc.log_batch(
        ws.name, run.id, metrics=[("m", 1.0, 500 + j, 0) for j in range(metric_series.OWN_CHUNK)]
    )
    assert _chunks(ws, run.id) == 2
    history = svc.get_metric_history(ws.name, run.id, "m")
    assert history["step"] == list(range(500 + metric_series.OWN_CHUNK))


def test_out_of_order_steps_come_back_sorted_ties_in_logging_order(ws: Workspace) -> None:
    run = Experiment(ws, "order").start_logging()
    svc = ws.transport.tracking
    svc.log_batch(ws.name, run.id, metrics=[("m", 5.0, 5, 100), ("m", 1.0, 1, 100)])
    svc.log_batch(
        ws.name, run.id, metrics=[("m", 3.0, 3, 100), ("m", 30.0, 3, 100), ("m", 2.0, 3, 50)]
    )
    h = svc.get_metric_history(ws.name, run.id, "m")
    assert h["step"] == [1, 3, 3, 3, 5]
    assert h["value"] == [1.0, 2.0, 3.0, 30.0, 5.0]  # same step: by time, then logging order
    assert run.refresh().info.metrics["m"].value == 5.0
    ranged = svc.get_metric_history(ws.name, run.id, "m", start_step=2, end_step=3)
    assert ranged["value"] == [2.0, 3.0, 30.0]
    page = svc.get_metric_history(ws.name, run.id, "m", offset=1, limit=2)
    assert page["step"] == [3, 3]


def test_several_series_in_one_batch_and_specials(ws: Workspace) -> None:
    run = Experiment(ws, "multi").start_logging()
    points = [(k, v, s, 7) for s in range(3) for k, v in (("a", float(s)), ("b", math.nan))]
    ws.transport.tracking.log_batch(ws.name, run.id, metrics=points)
    a = ws.transport.tracking.get_metric_history(ws.name, run.id, "a")
    b = ws.transport.tracking.get_metric_history(ws.name, run.id, "b")
    assert a["value"] == [0.0, 1.0, 2.0] and all(math.isnan(v) for v in b["value"])
    assert math.isnan(run.refresh().info.metrics["b"].value)


def test_chart_rows_points_and_buckets() -> None:
    import numpy as np

    steps = np.arange(10_000, dtype="<i8")
    values = np.sin(steps / 100.0)
    values[500] = np.nan
    series = metric_series.Series(steps, steps * 10, values)
    count, shape, rows = metric_series.chart_rows(series, "step", 100, 199, 4000, 50)
    assert (count, shape) == (100, "points") and rows[0] == (100, pytest.approx(math.sin(1.0)))
    count, shape, rows = metric_series.chart_rows(series, "step", None, None, 1000, 100)
    assert count == 10_000 and shape == "buckets" and len(rows) == 100
    first, last, low, high = rows[5]  # the bucket holding the NaN still has min and max
    assert first == 500 and last == 599 and low is not None and low <= high
    assert min(r[2] for r in rows) == pytest.approx(-1.0, abs=1e-3)
    count, shape, rows = metric_series.chart_rows(series, "timestamp", 0, 99_990, 100_000, 10)
    assert shape == "points" and rows[-1][0] == 99_990
