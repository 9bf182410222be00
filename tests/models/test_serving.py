"""The scoring runtime in-process: MLflow's input forms, schema checks, entry scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.models.conftest import IRIS_COLUMNS, SCORE_PY, make_script_model

from cumulo.serving.entry_script import ScriptPredictor
from cumulo.serving.errors import BadInput, ModelLoadError, Refusal
from cumulo.serving.metrics import MetricsBuffer, bucket, merge, percentiles
from cumulo.serving.mlflow_model import MlflowPredictor
from cumulo.serving.openapi import deployment_schemas

ROW = [5.1, 3.5, 1.4, 0.2]  # a setosa: class 0
ROW2 = [6.7, 3.0, 5.2, 2.3]  # a virginica: class 2


def _predict(p: MlflowPredictor, body: object, ctype: str = "application/json") -> object:
    return orjson.loads(p.predict(orjson.dumps(body), ctype))["predictions"]


@pytest.mark.parametrize("fast", [True, False])
def test_mlflow_input_forms_agree(mlflow_model_dir: Path, fast: bool) -> None:
    p = MlflowPredictor(mlflow_model_dir)
    assert p.fast and p._pyfunc is None  # double columns, same answers for arrays and tables
    p.fast = fast  # False: every body takes MLflow's own parsing and schema enforcement
    by_split = _predict(p, {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [ROW, ROW2]}})
    assert by_split == [0, 2]
    records = [dict(zip(IRIS_COLUMNS, r, strict=True)) for r in (ROW, ROW2)]
    assert _predict(p, {"dataframe_records": records}) == [0, 2]
    assert _predict(p, {"instances": records}) == [0, 2]
    columns = {c: [ROW[i], ROW2[i]] for i, c in enumerate(IRIS_COLUMNS)}
    assert _predict(p, {"inputs": columns}) == [0, 2]
    shuffled = {"columns": IRIS_COLUMNS[::-1], "data": [ROW[::-1], ROW2[::-1]]}
    assert _predict(p, {"dataframe_split": shuffled}) == [0, 2]
    ints = {"columns": IRIS_COLUMNS, "data": [[5, 3, 1, 0]]}
    assert _predict(p, {"dataframe_split": ints}) == [0]
    csv = (",".join(IRIS_COLUMNS) + "\n" + ",".join(map(str, ROW)) + "\n").encode()
    assert orjson.loads(p.predict(csv, "text/csv"))["predictions"] == [0]
    assert (p._pyfunc is None) == fast  # every body took the fast path, or none did


def _refused(p: MlflowPredictor, body: bytes, ctype: str = "application/json") -> Refusal:
    with pytest.raises(Refusal) as caught:
        p.predict(body, ctype)
    return caught.value


@pytest.mark.parametrize("fast", [True, False])
def test_plain_rows_break_a_named_column_signature(mlflow_model_dir: Path, fast: bool) -> None:
    """As with `mlflow models serve`: rows without names do not match named columns."""
    p = MlflowPredictor(mlflow_model_dir)
    p.fast = fast
    for key in ("instances", "inputs"):
        refused = _refused(p, orjson.dumps({key: [ROW, ROW2]}))
        assert refused.status == 400
        body = orjson.loads(refused.body())
        assert body["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "Failed to enforce schema" in body["message"]
        assert f"Model is missing inputs {IRIS_COLUMNS}" in body["message"]


def test_mlflow_bad_inputs_get_mlflows_answers(mlflow_model_dir: Path) -> None:
    p = MlflowPredictor(mlflow_model_dir)
    two = orjson.loads(_refused(p, orjson.dumps({"instances": [ROW], "inputs": [ROW]})).body())
    assert two["error_code"] == "BAD_REQUEST"
    assert "exactly one of the input fields" in two["message"]
    malformed = orjson.loads(_refused(p, b"{not json").body())
    assert "Ensure that input is a valid JSON formatted string" in malformed["message"]
    missing = {"dataframe_split": {"columns": IRIS_COLUMNS[:2], "data": [[1, 2]]}}
    refused = orjson.loads(_refused(p, orjson.dumps(missing)).body())
    assert refused["error_code"] == "INVALID_PARAMETER_VALUE"
    assert f"Model is missing inputs {IRIS_COLUMNS[2:]}" in refused["message"]
    wrong = {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [["a", 1, 2, 3]]}}
    typed = orjson.loads(_refused(p, orjson.dumps(wrong)).body())
    assert "could not convert string to float: 'a'" in typed["message"]
    nulls = {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[None, 1, 2, 3]]}}
    failed = orjson.loads(_refused(p, orjson.dumps(nulls)).body())  # the model raised
    assert failed["message"].startswith("Encountered an unexpected error while evaluating")
    assert "stack_trace" not in failed and len(failed["error_id"]) == 12
    media = _refused(p, b"x=1", "application/x-www-form-urlencoded")
    assert media.status == 415 and media.media_type == "text/plain"
    assert media.body().startswith(b"This predictor only supports the following content types")


def test_mlflow_model_without_pyfunc_flavor_is_refused(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors:\n  onnx: {}\n")
    with pytest.raises(ModelLoadError, match="no python_function flavor"):
        MlflowPredictor(tmp_path)


def test_entry_script_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_script_model(tmp_path / "models" / "scaler" / "1", "v1", scale=3)
    monkeypatch.setenv("CUMULO_MODEL_DIR", str(model))
    monkeypatch.setenv("CUMULO_MODELS_ROOT", str(tmp_path / "models"))
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text(SCORE_PY)
    p = ScriptPredictor("score.py", code)
    answer = orjson.loads(p.predict(b'{"data": [[1, 2]]}'))
    assert answer["result"] == [9] and answer["version"] == "v1"
    with pytest.raises(BadInput, match="rows of 2 numbers"):
        p.predict(b'{"data": [1]}')
    with pytest.raises(BadInput, match="Malformed JSON"):
        p.predict(b'{"data": ')
    with pytest.raises(RuntimeError, match="boom"):
        p.predict(b'{"boom": true}')


def test_entry_script_without_run_is_refused(tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text("def init():\n    pass\n")
    with pytest.raises(ModelLoadError, match="no run"):
        ScriptPredictor("score.py", tmp_path)


def test_latency_histograms_merge_into_percentiles() -> None:
    buffer = MetricsBuffer()
    for ms in range(1, 101):  # 1..100 ms
        buffer.record(7, 200 if ms % 10 else 500, float(ms))
    rows, _ = buffer.drain()
    assert sum(r["requests"] for r in rows) == 100
    assert sum(r["errors"] for r in rows) == 10
    found = percentiles(merge(r["histogram"] for r in rows))
    for key, exact in (("p50", 50), ("p95", 95), ("p99", 99)):
        assert found[key] is not None and abs(found[key] - exact) / exact < 0.12
    assert bucket(0.01) == 0 and bucket(10**9) == 99


def test_openapi_schema_from_signature_and_sample(mlflow_model_dir: Path) -> None:
    p = MlflowPredictor(mlflow_model_dir)
    request, response = deployment_schemas({"kind": "mlflow", "signature": p.signature})
    split = request["oneOf"][0]["properties"]["dataframe_split"]
    assert split["properties"]["columns"]["items"]["enum"] == IRIS_COLUMNS
    assert split["required"] == ["columns", "data"]
    instances = request["oneOf"][2]["properties"]["instances"]  # records, as MLflow takes them
    assert list(instances["items"]["properties"]) == IRIS_COLUMNS
    assert response["properties"]["predictions"]["items"]["type"] == "integer"
    request, _ = deployment_schemas({"kind": "script", "sample_input": {"data": [[1.0, 2.0]]}})
    assert request["properties"]["data"]["items"]["items"]["type"] == "number"
    assert request["example"] == {"data": [[1.0, 2.0]]}


def test_a_model_failure_answers_its_message_not_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from cumulo.serving.app import answer

    (tmp_path / "score.py").write_text(
        "def run(raw):\n    raise ValueError('expected 64 pixels, got 3')\n"
    )
    status, body, media = answer(ScriptPredictor("score.py", tmp_path), b"{}", "application/json")
    assert media == "application/json"
    data = orjson.loads(body)
    assert status == 500 and data["error_code"] == "INTERNAL_ERROR"
    assert "ValueError: expected 64 pixels, got 3" in data["message"]
    assert data["error_id"] in data["message"] and "Traceback" not in data["message"]
    assert data["error_id"] in caplog.text


# A replica (replica.main, serving in a thread) in a fresh interpreter, asked over
# HTTP; it reports which heavy modules it has imported after each answer.
REPLICA_DRIVER = """
import http.client, json, os, sys, threading, time
from pathlib import Path
from cumulo.core.deployments import REPLICA_SECRET_ENV, REPLICA_SECRET_HEADER
from cumulo.serving import replica

spec = sys.argv[1]
status = Path(json.loads(Path(spec).read_text())["status_file"])
headers = {REPLICA_SECRET_HEADER: os.environ[REPLICA_SECRET_ENV]}
threading.Thread(target=replica.main, args=([spec],), daemon=True).start()
deadline = time.monotonic() + 120
state = {}
while state.get("state") != "ready" and time.monotonic() < deadline:
    time.sleep(0.02)
    try:
        state = json.loads(status.read_text())
    except (OSError, ValueError):
        pass
for body in sys.argv[2:]:
    conn = http.client.HTTPConnection("127.0.0.1", state["port"], timeout=120)
    conn.request("POST", "/invocations", body, {**headers, "Content-Type": "application/json"})
    answer = conn.getresponse()
    loaded = {name: name in sys.modules for name in ("mlflow", "torch")}
    print(json.dumps({"status": answer.status, "body": json.loads(answer.read()), **loaded}))
"""


@pytest.mark.slow
def test_a_replica_imports_mlflow_only_for_a_body_off_the_fast_path(
    mlflow_model_dir: Path, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    from cumulo.core.deployments import REPLICA_SECRET_ENV

    spec = tmp_path / "spec.json"
    status = str(tmp_path / "status.json")
    spec.write_text(
        orjson.dumps(
            {"kind": "mlflow", "model_dir": str(mlflow_model_dir), "status_file": status}
        ).decode()
    )
    fast = {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [ROW, ROW2]}}
    missing = {"dataframe_split": {"columns": IRIS_COLUMNS[:2], "data": [ROW[:2]]}}
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            REPLICA_DRIVER,
            str(spec),
            *(orjson.dumps(b).decode() for b in (fast, missing)),
        ],
        env={**os.environ, REPLICA_SECRET_ENV: "s3cret"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    first, second = (orjson.loads(line) for line in run.stdout.splitlines())
    # The fast path answered without mlflow, and scikit-learn's torch shim stayed out.
    assert first == {
        "status": 200,
        "body": {"predictions": [0, 2]},
        "mlflow": False,
        "torch": False,
    }
    # A body off the fast path loads MLflow's path then and gets MLflow's own answer.
    assert second["status"] == 400 and second["mlflow"]
    assert second["body"]["error_code"] == "INVALID_PARAMETER_VALUE"
    assert f"Model is missing inputs {IRIS_COLUMNS[2:]}" in second["body"]["message"]


async def _call(app: Any, body: bytes) -> tuple[int, Any]:
    """One ``POST /invocations`` through the replica's ASGI app, in process."""
    from cumulo.core.deployments import REPLICA_SECRET_HEADER

    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/invocations",
        "headers": [
            (REPLICA_SECRET_HEADER.encode(), b"s3cret"),
            (b"content-type", b"application/json"),
        ],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], orjson.loads(sent[1]["body"])


def test_fast_path_bodies_are_answered_while_mlflows_path_loads(mlflow_model_dir: Path) -> None:
    import asyncio
    import threading

    from cumulo.serving.app import ScoringApp

    p = MlflowPredictor(mlflow_model_dir)
    started, release = threading.Event(), threading.Event()
    load = p._mlflow

    def held_load() -> object:  # MLflow's load, held until the fast body has its answer
        started.set()
        release.wait(30)
        return load()

    p._mlflow = held_load  # type: ignore[method-assign]
    app = ScoringApp(p, "s3cret")
    fast = orjson.dumps({"dataframe_split": {"columns": IRIS_COLUMNS, "data": [ROW, ROW2]}})
    off = orjson.dumps({"dataframe_split": {"columns": IRIS_COLUMNS, "data": [ROW]}, "params": {}})

    async def scenario() -> None:
        slow = asyncio.create_task(_call(app, off))
        while not started.is_set():
            await asyncio.sleep(0.01)
        assert await _call(app, fast) == (200, {"predictions": [0, 2]})
        assert not slow.done()  # still waiting for MLflow's path, in its thread
        release.set()
        assert await slow == (200, {"predictions": [0]})

    asyncio.run(scenario())
    assert p._pyfunc is not None
