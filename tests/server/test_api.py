"""The native API over a real `cumulo server`: shapes, errors, floats, batches, files."""

from __future__ import annotations

import hashlib
import io
import math
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server

from cumulo.core.errors import (
    AlreadyExists,
    InvalidInput,
    InvalidPath,
    InvalidState,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from cumulo.sdk.http import HttpTracking, HttpTransport


@pytest.fixture
def api(cumulo_server_url: str) -> Iterator[tuple[HttpTracking, str]]:
    transport = HttpTransport(cumulo_server_url)
    name = f"api-{uuid.uuid4().hex[:8]}"
    transport.tracking.create_workspace(name)
    yield transport.tracking, name
    transport.close()


def test_health_docs_and_the_default_workspace(cumulo_server_url: str) -> None:
    assert httpx.get(f"{cumulo_server_url}/health").json() == {"status": "ok"}
    docs = httpx.get(f"{cumulo_server_url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = httpx.get(f"{cumulo_server_url}/openapi.json").json()
    assert "/api/v1/workspaces/{workspace}/runs/{run_id}/log-batch" in spec["paths"]
    names = [w.name for w in HttpTransport(cumulo_server_url).tracking.list_workspaces()]
    assert "default" in names


def test_errors_come_back_as_the_class_the_server_raised(api: tuple[HttpTracking, str]) -> None:
    t, ws = api
    with pytest.raises(NotFound, match="does not exist"):
        t.get_workspace("no-such-workspace")
    with pytest.raises(AlreadyExists):
        t.create_workspace(ws)
    with pytest.raises(InvalidInput):
        t.create_workspace("Not A Valid Name")
    exp = t.create_experiment(ws, "e")
    with pytest.raises(AlreadyExists):
        t.create_experiment(ws, "e")
    run = t.create_run(ws, exp.id)
    t.update_run(ws, run.id, deleted=True)
    with pytest.raises(InvalidState, match="deleted"):
        t.log_batch(ws, run.id, metrics=[("loss", 1.0, 0, 1)])
    with pytest.raises(InvalidInput):
        t.search_runs(ws, filter="metrics.loss >>> 1")
    with pytest.raises(InvalidPath):
        t.list_artifacts(ws, run.id, "../outside")


def test_unknown_routes_and_bad_bodies_answer_json(cumulo_server_url: str) -> None:
    missing = httpx.get(f"{cumulo_server_url}/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    bad = httpx.post(
        f"{cumulo_server_url}/api/v1/workspaces/default/runs",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert bad.status_code == 400
    assert bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    wrong = httpx.post(
        f"{cumulo_server_url}/api/v1/workspaces/default/runs", json={"experiment_id": "x"}
    )
    assert wrong.status_code == 400 and "experiment_id" in wrong.json()["message"]


def test_nan_and_infinities_travel_both_ways(api: tuple[HttpTracking, str]) -> None:
    t, ws = api
    run = t.create_run(ws, t.get_or_create_experiment(ws, "floats").id)
    points = [
        ("v", math.nan, 0, 1),
        ("v", math.inf, 1, 2),
        ("v", -math.inf, 2, 3),
        ("v", 1.5, 3, 4),
    ]
    assert t.log_batch(ws, run.id, metrics=points)
    history = t.get_metric_history(ws, run.id, "v")
    values = history["value"]
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf, 1.5]
    assert history["step"] == [0, 1, 2, 3] and history["timestamp"] == [1, 2, 3, 4]
    assert t.get_run(ws, run.id).metrics["v"].value == 1.5
    t.log_batch(ws, run.id, metrics=[("w", math.nan, 0, 5)])
    assert math.isnan(t.get_run(ws, run.id).metrics["w"].value)
    series = t.get_run_metrics(ws, run.id)["series"]
    assert math.isnan(series["w"]["value"][0]) and series["v"]["value"][1] == math.inf


def test_a_retried_batch_is_written_once(api: tuple[HttpTracking, str]) -> None:
    t, ws = api
    run = t.create_run(ws, t.get_or_create_experiment(ws, "retry").id)
    points = [("loss", 1.0 / (i + 1), i, 1000 + i) for i in range(500)]
    assert t.log_batch(ws, run.id, metrics=points, params={"lr": 0.1}, batch_id="b-1") is True
    assert t.log_batch(ws, run.id, metrics=points, params={"lr": 0.1}, batch_id="b-1") is False
    assert t.get_metric_history(ws, run.id, "loss")["step"] == list(range(500))
    assert t.get_run(ws, run.id).params == {"lr": "0.1"}


def test_a_bad_point_rejects_the_whole_batch(api: tuple[HttpTracking, str]) -> None:
    t, ws = api
    run = t.create_run(ws, t.get_or_create_experiment(ws, "atomic").id)
    with pytest.raises(InvalidInput):
        t.log_batch(ws, run.id, metrics=[("ok", 1.0, 0, 1), ("bad", "text", 1, 1)])
    with pytest.raises(InvalidInput):
        t.log_batch(ws, run.id, metrics=[("ok", 1.0, 0, 1), ("bad", True, 1, 1)])
    with pytest.raises(InvalidInput):
        t.log_batch(ws, run.id, metrics=[("huge", 1.0, 10**30, 1)])
    assert t.get_run_metrics(ws, run.id)["series"] == {}


class _CountingStream(io.RawIOBase):
    """A large file made up on the fly, remembering the biggest read asked of it."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.largest_read = 0
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        self.largest_read = max(self.largest_read, len(target))
        n = min(len(target), self.left)
        chunk = bytes([self.left % 251]) * n
        target[:n] = chunk
        self.digest.update(chunk)
        self.left -= n
        return n


def test_artifacts_stream_both_ways(api: tuple[HttpTracking, str]) -> None:
    t, ws = api
    run = t.create_run(ws, t.get_or_create_experiment(ws, "files").id)
    size = 24 * 1024 * 1024 + 7
    source = _CountingStream(size)
    assert t.upload_artifact(ws, run.id, "model/weights.bin", io.BufferedReader(source)) == size
    assert source.largest_read <= 1024 * 1024  # read in chunks, never whole
    assert [(f.path, f.size) for f in t.list_artifacts(ws, run.id, recursive=True)] == [
        ("model/weights.bin", size)
    ]
    assert [f.path for f in t.list_artifacts(ws, run.id)] == ["model"]
    digest, total = hashlib.sha256(), 0
    with t.open_artifact(ws, run.id, "model/weights.bin") as stream:
        while chunk := stream.read(256 * 1024):
            digest.update(chunk)
            total += len(chunk)
    assert total == size and digest.hexdigest() == source.digest.hexdigest()
    with pytest.raises(NotFound):
        t.open_artifact(ws, run.id, "model/missing.bin")
    with pytest.raises(InvalidPath):
        t.upload_artifact(ws, run.id, "../escape.txt", io.BytesIO(b"x"))
    assert t.artifact_size(ws, run.id, "model/weights.bin") == size
    t.delete_artifact(ws, run.id, "model/weights.bin")
    assert t.list_artifacts(ws, run.id, recursive=True) == []
    with pytest.raises(NotFound):
        t.delete_artifact(ws, run.id, "model/weights.bin")


def test_an_unreachable_server_raises_unavailable() -> None:
    transport = HttpTransport(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Unavailable, match="Cannot reach"):
        transport.tracking.list_workspaces()


# ------------------------------------------------------------- body limit
SMALL_HOME: list[Path] = []


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server that takes request bodies of at most 100,000 bytes."""
    port = free_port()
    home = tmp_path_factory.mktemp("small") / "home"
    proc = start_cumulo_server(home, port, "--max-request-bytes", "100000")
    SMALL_HOME.append(home)
    yield f"http://127.0.0.1:{port}"
    stop_cumulo_server(proc)


def _raw_request(port: int, head: str, body: bytes = b"") -> bytes:
    """Send a request by hand (to declare a length we never send) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_a_body_over_the_limit_is_refused_before_it_is_read(small_server: str) -> None:
    port = int(small_server.rsplit(":", 1)[1])
    # 1 TB declared and never sent: the answer comes at once, so nothing was buffered.
    answer = _raw_request(
        port,
        "POST /api/v1/workspaces/default/runs/search HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"PAYLOAD_TOO_LARGE" in answer


def test_a_chunked_body_over_the_limit_is_refused(small_server: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"filter": "'
        for _ in range(30):
            yield b"x" * 10_000
        yield b'"}'

    response = httpx.post(
        f"{small_server}/api/v1/workspaces/default/runs/search",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error_code"] == "PAYLOAD_TOO_LARGE"
    # Under the limit the same server answers normally; artifact uploads are not limited.
    t, ws = HttpTransport(small_server), "default"
    run = t.tracking.create_run(ws, t.tracking.get_or_create_experiment(ws, "limits").id)
    assert t.tracking.log_batch(ws, run.id, metrics=[("m", 1.0, i, 1) for i in range(1000)])
    assert (
        t.tracking.upload_artifact(ws, run.id, "big.bin", io.BytesIO(b"z" * 1_000_000)) == 1_000_000
    )
    with pytest.raises(PayloadTooLarge):
        t.tracking.log_batch(ws, run.id, metrics=[("m", 1.0, i, 1) for i in range(10_000)])


def test_a_code_snapshot_streams_past_the_request_limit(
    small_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Snapshots go up to their own limit (300 MiB), not the API's request limit."""
    from cumulo import Experiment, Workspace

    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("print('hi')\n")
    (src / "weights.bin").write_bytes(random_bytes := os.urandom(1_280_000))  # does not compress
    jobs = HttpTransport(small_server).jobs
    jobs.show_progress = True
    ws = Workspace.connect(small_server, "default")
    Experiment(ws, "snapshots")  # the workspace is there
    info = jobs.take_snapshot("default", src)
    assert info.size == len(random_bytes) + len("print('hi')\n")  # 1.28 MB through a 100 kB limit
    assert "Uploading the code snapshot" in capsys.readouterr().err


def test_refusals_are_answers_not_crashes(small_server: str) -> None:
    log = (SMALL_HOME[0] / "server.log").read_text()
    assert "Uvicorn running" in log
    assert "internal error" not in log and "Traceback" not in log


def test_charts_and_records_over_http(api: tuple[HttpTracking, str]) -> None:
    t, ws = api
    run = t.create_run(ws, t.get_or_create_experiment(ws, "charts").id)
    points = [("loss", 1.0 / (i + 1), i, 1000 + i) for i in range(5000)]
    points[10] = ("loss", math.inf, 10, 1010)
    t.log_batch(ws, run.id, metrics=points, records=[{"name": "r", "kind": "list", "value": [1]}])
    chart = t.get_metric_chart(ws, run.id, "loss", points=100)
    assert chart["downsampled"] and chart["count"] == 5000 and len(chart["x"]) <= 200
    assert math.inf in chart["y"]
    records = t.get_run_records(ws, run.id)
    assert [(r.name, r.kind, r.value) for r in records] == [("r", "list", [1])]
