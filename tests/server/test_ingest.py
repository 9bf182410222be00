"""Metric batches as columns: over a real `cumulo server` and in-process, judged like rows."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cumulo import Experiment, Workspace
from cumulo.core.errors import InvalidInput
from cumulo.sdk.http import HttpTracking, HttpTransport
from cumulo.sdk.writer import MAX_BATCH
from cumulo.services.tracking import TrackingService


@pytest.fixture
def api(cumulo_server_url: str) -> Iterator[tuple[HttpTracking, str]]:
    transport = HttpTransport(cumulo_server_url)
    name = f"ingest-{uuid.uuid4().hex[:8]}"
    transport.tracking.create_workspace(name)
    yield transport.tracking, name
    transport.close()


def _columns(points: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    return {
        name: [p[i] for p in points] for i, name in enumerate(("key", "value", "step", "timestamp"))
    }


def _post(url: str, ws: str, run_id: str, body: Any) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()  # any int
    return httpx.post(
        f"{url}/api/v1/workspaces/{ws}/runs/{run_id}/log-batch",
        content=raw,
        headers={"content-type": "application/json"},
    )


def test_the_server_stores_columns_once_per_batch_id(
    api: tuple[HttpTracking, str], cumulo_server_url: str
) -> None:
    t, ws = api
    run = t.create_run(ws, t.get_or_create_experiment(ws, "columns").id)
    # Two series interleaved, out of step order: the store sorts by step.
    points = [("loss", 1.0 / (i + 1), i, 1000 + i) for i in range(300)][::-1]
    points += [("acc", i, i, 2000 + i) for i in range(200)]  # int values become floats
    body = {"metrics": _columns(points), "params": {"lr": 0.1}, "batch_id": "cols-1"}
    first = _post(cumulo_server_url, ws, run.id, body)
    assert first.status_code == 200 and first.json() == {"written": True}
    again = _post(cumulo_server_url, ws, run.id, body)
    assert again.status_code == 200 and again.json() == {"written": False}
    loss = t.get_metric_history(ws, run.id, "loss")
    assert loss["step"] == list(range(300))
    assert loss["value"] == [1.0 / (i + 1) for i in range(300)]
    assert loss["timestamp"] == [1000 + i for i in range(300)]
    acc = t.get_metric_history(ws, run.id, "acc")
    assert acc["value"] == [float(i) for i in range(200)] and acc["step"] == list(range(200))
    got = t.get_run(ws, run.id)
    assert got.metrics["loss"].value == 1.0 / 300 and got.metrics["acc"].step == 199
    assert got.params == {"lr": "0.1"}


def test_null_steps_and_timestamps_in_columns_mean_zero_and_now(
    api: tuple[HttpTracking, str], cumulo_server_url: str
) -> None:
    t, ws = api
    run = t.create_run(ws, t.get_or_create_experiment(ws, "nulls").id)
    body = {"metrics": {"key": ["m"], "value": [2.5], "step": [None], "timestamp": [None]}}
    assert _post(cumulo_server_url, ws, run.id, body).status_code == 200
    history = t.get_metric_history(ws, run.id, "m")
    assert history["step"] == [0] and history["value"] == [2.5]
    assert history["timestamp"][0] > 1_600_000_000_000


def test_nan_and_infinities_in_columns_round_trip(
    api: tuple[HttpTracking, str], cumulo_server_url: str
) -> None:
    t, ws = api
    run = t.create_run(ws, t.get_or_create_experiment(ws, "floats").id)
    # Through the SDK's transport (it turns them into text) and as a raw body.
    columns = {
        "key": ["v"] * 4,
        "value": [math.nan, math.inf, -math.inf, 1.5],
        "step": [0, 1, 2, 3],
        "timestamp": [1, 2, 3, 4],
    }
    assert t.log_batch(ws, run.id, metrics=columns) is True
    raw = {
        "metrics": {
            "key": ["w"] * 3,
            "value": ["Infinity", "NaN", "-Infinity"],
            "step": [0, 1, 2],
            "timestamp": [5, 6, 7],
        }
    }
    assert _post(cumulo_server_url, ws, run.id, raw).status_code == 200
    v = t.get_metric_history(ws, run.id, "v")["value"]
    assert math.isnan(v[0]) and v[1:] == [math.inf, -math.inf, 1.5]
    w = t.get_metric_history(ws, run.id, "w")["value"]
    assert w[0] == math.inf and math.isnan(w[1]) and w[2] == -math.inf
    metrics = t.get_run(ws, run.id).metrics
    assert metrics["v"].value == 1.5 and metrics["w"].value == -math.inf


def test_bare_nan_literals_and_invalid_json(
    api: tuple[HttpTracking, str], cumulo_server_url: str
) -> None:
    t, ws = api
    run = t.create_run(ws, t.get_or_create_experiment(ws, "literals").id)
    # Not JSON, but Python's json module reads it, and the server always has.
    literal = b'{"metrics": {"key": ["n"], "value": [NaN], "step": [0], "timestamp": [1]}}'
    assert _post(cumulo_server_url, ws, run.id, literal).status_code == 200
    assert math.isnan(t.get_metric_history(ws, run.id, "n")["value"][0])
    broken = _post(cumulo_server_url, ws, run.id, b'{"metrics": {"key": [')
    assert broken.status_code == 400
    assert broken.json()["error_code"] == "INVALID_PARAMETER_VALUE"


GOOD = ("fine", 1.0, 0, 1)
BAD_COLUMNS = [
    # (what the body's metrics are, a fragment of the message)
    (
        {"key": ["a", "b"], "value": [1.0], "step": [0, 1], "timestamp": [1, 2]},
        "must be equally long",
    ),
    ({"key": ["a"], "value": [1.0], "step": [0]}, "timestamp"),
    ({"key": ["a"], "value": [1.0], "step": [0], "timestamp": [1], "steps": [0]}, "steps"),
    ({"key": "a", "value": [1.0], "step": [0], "timestamp": [1]}, "valid list"),
    (_columns([GOOD, ("b", True, 1, 1)]), "got bool True"),
    (_columns([GOOD, ("b", "text", 1, 1)]), "got the string 'text'"),
    (_columns([GOOD, ("b", None, 1, 1)]), "got NoneType"),
    (_columns([GOOD, ("b", 1.0, 1.5, 1)]), "step must be an integer"),
    (_columns([GOOD, ("b", 1.0, 2**64, 1)]), "does not fit in 64 bits"),
    (_columns([GOOD, ("b", 1.0, 1, -5)]), "must not be negative"),
    (_columns([GOOD, ("b", 1.0, 1, 2**63)]), "does not fit in 64 bits"),
    (_columns([GOOD, ("bad name!", 1.0, 1, 1)]), "Invalid metric name"),
    (_columns([GOOD, (7, 1.0, 1, 1)]), "non-empty string"),
    (_columns([GOOD, (["b"], 1.0, 1, 1)]), "non-empty string"),
    (_columns([GOOD, ("b", 1.0, [1], 1)]), "step must be an integer"),
    (_columns([GOOD, ("b", 1.0, 1, {"t": 1})]), "milliseconds since the epoch"),
    (_columns([GOOD, ("b", [1.0], 1, 1)]), "got list"),
]


@pytest.mark.parametrize(("metrics", "message"), BAD_COLUMNS)
def test_bad_columns_get_a_400_and_write_nothing(
    api: tuple[HttpTracking, str], cumulo_server_url: str, metrics: Any, message: str
) -> None:
    t, ws = api
    run = t.create_run(ws, t.get_or_create_experiment(ws, "bad").id)
    answer = _post(cumulo_server_url, ws, run.id, {"metrics": metrics, "params": {"p": 1}})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in answer.json()["message"]
    assert t.get_run_metrics(ws, run.id)["series"] == {}
    assert t.get_run(ws, run.id).params == {}


def test_a_value_beyond_the_float_range_is_refused_not_a_server_error(
    api: tuple[HttpTracking, str], cumulo_server_url: str
) -> None:
    t, ws = api
    run = t.create_run(ws, t.get_or_create_experiment(ws, "huge").id)
    huge = "1" + "0" * 400
    for body in (
        f'{{"metrics": {{"key": ["h"], "value": [{huge}], "step": [0], "timestamp": [1]}}}}',
        f'{{"metrics": [["h", {huge}, 0, 1]]}}',
    ):
        answer = _post(cumulo_server_url, ws, run.id, body.encode())
        assert answer.status_code == 400, answer.text
        assert "64-bit float" in answer.json()["message"]


def test_a_column_longer_than_the_batch_limit_is_refused(
    api: tuple[HttpTracking, str], cumulo_server_url: str
) -> None:
    t, ws = api
    run = t.create_run(ws, t.get_or_create_experiment(ws, "long").id)
    n = 100_001
    body = {
        "metrics": {"key": ["k"] * n, "value": [0.0] * n, "step": [0] * n, "timestamp": [1] * n}
    }
    answer = _post(cumulo_server_url, ws, run.id, body)
    assert answer.status_code == 400 and "100000" in answer.json()["message"]


# ------------------------------------------------------- in-process, rows vs columns
SAME_RULES: list[list[tuple[Any, ...]]] = [
    [GOOD, ("b", True, 1, 1)],
    [GOOD, ("b", "text", 1, 1)],
    [GOOD, ("b", "NaN", 1, 1), ("c", "nan", 1, 1)],
    [GOOD, ("b", 10**400, 1, 1)],
    [GOOD, ("b", 1.0, 2.5, 1)],
    [GOOD, ("b", 1.0, False, 1)],
    [GOOD, ("b", 1.0, 2**63, 1)],
    [GOOD, ("b", 1.0, 1, -1)],
    [GOOD, ("b", 1.0, 1, math.nan)],
    [GOOD, ("", 1.0, 1, 1)],
    [GOOD, ("a/../b", 1.0, 1, 1)],
    [GOOD, ((), 1.0, 1, 1)],
]


@pytest.fixture
def tracking() -> TrackingService:
    ws = Workspace.create("same-rules")
    service = ws.transport.tracking
    assert isinstance(service, TrackingService)
    return service


@pytest.mark.parametrize("points", SAME_RULES)
def test_rows_and_columns_are_refused_with_the_same_message(
    tracking: TrackingService, points: list[tuple[Any, ...]]
) -> None:
    run = tracking.create_run("same-rules", tracking.get_or_create_experiment("same-rules", "e").id)
    with pytest.raises(InvalidInput) as as_rows:
        tracking.log_batch("same-rules", run.id, metrics=points)
    with pytest.raises(InvalidInput) as as_columns:
        tracking.log_batch("same-rules", run.id, metrics=_columns(points))
    assert str(as_columns.value) == str(as_rows.value)
    assert tracking.get_run_metrics("same-rules", run.id)["series"] == {}


def test_rows_and_columns_store_the_same_points(tracking: TrackingService) -> None:
    exp = tracking.get_or_create_experiment("same-rules", "e")
    points = [
        ("a", 1, 0, 10),
        ("a", 2.5, 1, None),
        ("b", "-Infinity", None, 11),
        ("b", "NaN", 3, 12),
        ("a", 3.0, 2**63 - 1, 2**63 - 1),
        ("a", -4.0, -(2**63), 0),
    ]
    stored = []
    for metrics in (points, _columns(points)):
        run = tracking.create_run("same-rules", exp.id)
        assert tracking.log_batch("same-rules", run.id, metrics=metrics)
        series = tracking.get_run_metrics("same-rules", run.id)["series"]
        stored.append(
            {
                key: (s["step"], [str(v) for v in s["value"]], [ts > 0 for ts in s["timestamp"]])
                for key, s in series.items()
            }
        )
    assert stored[0] == stored[1]
    assert stored[0]["b"][1] == ["-inf", "nan"]


def test_columns_must_be_the_four_lists(tracking: TrackingService) -> None:
    run = tracking.create_run("same-rules", tracking.get_or_create_experiment("same-rules", "e").id)
    with pytest.raises(InvalidInput, match="must be a list"):
        tracking.log_batch(
            "same-rules", run.id, metrics={"key": "a", "value": [1], "step": [0], "timestamp": [1]}
        )
    with pytest.raises(InvalidInput, match="unknown"):
        tracking.log_batch("same-rules", run.id, metrics={"keys": [], "value": []})
    assert tracking.log_batch(
        "same-rules", run.id, metrics={"key": [], "value": [], "step": [], "timestamp": []}
    )


# ------------------------------------------------------------ the writer over HTTP
def test_the_writer_delivers_interleaved_runs_and_records_exactly_once(
    cumulo_server_url: str,
) -> None:
    HttpTransport(cumulo_server_url).tracking.create_workspace("writer-http", exist_ok=True)
    ws = Workspace.connect(cumulo_server_url, "writer-http")
    exp = Experiment(ws, "interleaved")
    first, second = exp.start_logging(), exp.start_logging()
    n = MAX_BATCH + MAX_BATCH // 2  # more than one batch per run
    special = {7: math.nan, 8: math.inf, 9: -math.inf}
    for i in range(n):
        first.log("loss", special.get(i, i / n))
        second.log("acc", float(i), step=2 * i)
        if i % 5000 == 0:
            first.log_list("marks", [i])
    ws.flush()
    loss = first.get_metric_history("loss")
    assert loss["step"] == list(range(n))
    assert math.isnan(loss["value"][7]) and loss["value"][8:10] == [math.inf, -math.inf]
    assert loss["value"][10:] == [i / n for i in range(10, n)]
    acc = second.get_metric_history("acc")
    assert acc["step"] == [2 * i for i in range(n)] and acc["value"] == [float(i) for i in range(n)]
    records = ws.transport.tracking.get_run_records("writer-http", first.id)
    assert [r.value for r in records if r.name == "marks"] == [[i] for i in range(0, n, 5000)]
