"""Wire conventions, workspaces, tokens, unimplemented routes, and runs shared with the SDK."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import httpx
import pytest
from mlflow.exceptions import MlflowException
from mlflow_kit import LiveServer, live_server

import mlflow
from cumulo import Experiment, Workspace
from cumulo.core.settings import Settings
from mlflow import MlflowClient

API = "/api/2.0/mlflow"


def test_wire_conventions(tracking_uri: str, client, name: str) -> None:
    exp_id = client.create_experiment(name)
    # int64 fields as strings (proto3 JSON, as Java and R clients send them), and the
    # special doubles as strings.
    created = httpx.post(
        f"{tracking_uri}{API}/runs/create",
        json={"experiment_id": exp_id, "start_time": "1700000000000", "tags": []},
    )
    assert created.status_code == 200, created.text
    run_id = created.json()["run"]["info"]["run_id"]
    for step, value in (("3", "NaN"), ("4", "Infinity"), ("5", "-Infinity"), (6, 2.5)):
        answer = httpx.post(
            f"{tracking_uri}{API}/runs/log-metric",
            json={"run_id": run_id, "key": "m", "value": value, "timestamp": "17", "step": step},
        )
        assert answer.status_code == 200 and answer.json() == {}
    history = httpx.get(
        f"{tracking_uri}{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "m"}
    ).json()["metrics"]
    assert [(m["step"], m["value"]) for m in history] == [
        (3, "NaN"),
        (4, "Infinity"),
        (5, "-Infinity"),
        (6, 2.5),
    ]
    assert (
        httpx.get(f"{tracking_uri}{API}/runs/get", params={"run_uuid": run_id}).json()["run"][
            "info"
        ]["start_time"]
        == 1_700_000_000_000
    )

    # GET parameters arrive as strings and repeated keys: coerced like MLflow's server does.
    page = httpx.get(
        f"{tracking_uri}{API}/experiments/search",
        params={"max_results": "1", "view_type": "ALL", "order_by": ["name ASC"]},
    ).json()
    assert len(page["experiments"]) == 1 and page["next_page_token"]
    bad = httpx.post(f"{tracking_uri}{API}/runs/log-metric", content=b"{not json")
    assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    missing = httpx.post(f"{tracking_uri}{API}/runs/log-metric", json={"run_id": run_id})
    assert missing.status_code == 400 and "'key'" in missing.json()["message"]

    # DELETE carries a JSON body.
    client.create_registered_model(name)
    gone = httpx.request(
        "DELETE", f"{tracking_uri}{API}/registered-models/delete", json={"name": name}
    )
    assert gone.status_code == 200
    again = httpx.request(
        "DELETE", f"{tracking_uri}{API}/registered-models/delete", json={"name": name}
    )
    assert again.status_code == 404 and again.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    exists = httpx.post(f"{tracking_uri}{API}/experiments/create", json={"name": name})
    assert exists.status_code == 400 and exists.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"


def test_unimplemented_routes_answer_endpoint_not_found(server: LiveServer) -> None:
    for method, path in (
        ("POST", "/api/2.0/mlflow/traces"),
        ("GET", "/api/3.0/mlflow/traces/search"),
        ("POST", "/api/2.0/mlflow-artifacts/mpu/create/default/runs/x/f"),
        ("GET", "/api/2.0/mlflow/runs/log-metric"),  # a known path, the wrong method
        ("GET", "/ws/default/api/2.0/mlflow/no-such-thing"),
    ):
        answer = httpx.request(method, server.url + path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("application/json"), path
        assert answer.json()["error_code"] == "ENDPOINT_NOT_FOUND", path


def test_server_info_turns_multipart_off(server: LiveServer) -> None:
    info = httpx.get(f"{server.url}/api/3.0/mlflow/server-info").json()
    assert info["multipart_uploads_enabled"] is False
    assert info["multipart_downloads_enabled"] is False
    assert info["artifact_serving_enabled"] is True


def test_workspace_tracking_uri(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ws_name = f"team-{uuid.uuid4().hex[:6]}"
    Workspace.create(ws_name, home=server.home)
    uri = f"{server.url}/ws/{ws_name}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment(experiment_id="0")
        note = tmp_path / "note.txt"
        note.write_text("hi")
        with mlflow.start_run(run_name="in-team") as run:
            mlflow.log_metric("x", 1.0)
            mlflow.log_artifact(str(note))
        client = MlflowClient(uri)
        got = client.get_run(run.info.run_id)
        assert got.info.experiment_id == "0"
        assert got.info.artifact_uri == f"mlflow-artifacts:/{ws_name}/runs/{run.info.run_id}"
        assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["note.txt"]
        assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/note.txt") == "hi"
    finally:
        mlflow.set_tracking_uri(None)

    # Not visible from the default workspace, and a file path of one workspace is refused
    # through another's URI.
    root = MlflowClient(server.url)
    with pytest.raises(MlflowException) as err:
        root.get_run(run.info.run_id)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    stolen = httpx.get(
        f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{ws_name}/runs/{run.info.run_id}/note.txt"
    )
    assert stolen.status_code == 404
    unknown = httpx.get(f"{server.url}/ws/nowhere-{ws_name}{API}/experiments/get?experiment_id=0")
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_mlflow_runs_are_cumulo_runs_and_back(
    tracking_uri: str, client, server: LiveServer, tmp_path: Path, name: str
) -> None:
    artifact = tmp_path / "model.txt"
    artifact.write_text("weights")
    mlflow.set_experiment(name)
    with mlflow.start_run(run_name="from-mlflow") as run:
        mlflow.log_param("lr", 0.01)
        mlflow.log_metrics({"loss": 0.25, "odd": math.inf})
        mlflow.set_tag("stage", "dev")
        mlflow.log_artifact(str(artifact), "outputs")

    ws = Workspace.get("default", home=server.home)
    seen = ws.get_run(run.info.run_id)
    assert seen.display_name == "from-mlflow" and seen.status == "Completed"
    assert seen.experiment.name == name
    assert seen.get_params() == {"lr": "0.01"}
    assert seen.get_tags()["stage"] == "dev"
    assert seen.get_metrics()["loss"] == 0.25
    assert seen.get_file_names() == ["outputs/model.txt"]

    # The reverse: a run logged with the Cumulo SDK, read with the MLflow client.
    with Experiment(ws, "Default").start_logging(display_name="from-sdk") as sdk_run:
        sdk_run.log("acc", 0.5)
        sdk_run.log("acc", 0.75)
        sdk_run.log_param("depth", 4)
        sdk_run.upload_file("outputs/report.txt", artifact)
    got = client.get_run(sdk_run.id)
    assert got.info.experiment_id == "0" and got.info.run_name == "from-sdk"
    assert got.info.status == "FINISHED"
    assert got.data.metrics == {"acc": 0.75} and got.data.params == {"depth": "4"}
    assert [m.value for m in client.get_metric_history(sdk_run.id, "acc")] == [0.5, 0.75]
    assert [f.path for f in client.list_artifacts(sdk_run.id, "outputs")] == ["outputs/report.txt"]
    found = client.search_runs(["0"], "attributes.run_name = 'from-sdk'")
    assert [r.info.run_id for r in found] == [sdk_run.id]


def test_tokens_cover_the_mlflow_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    settings = Settings.load(home=tmp_path / "secure", environ={}, auth="token")
    with live_server(settings) as secure:
        auth = secure.app.state.auth
        _, writer = auth.create_token("default", "contributor")
        _, reader = auth.create_token("default", "reader")
        Workspace.create("other", home=secure.home)
        _, other = auth.create_token("other", "owner")

        bare = httpx.get(f"{secure.url}{API}/experiments/get?experiment_id=0")
        assert bare.status_code == 401 and bare.json()["error_code"] == "UNAUTHENTICATED"

        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", writer)
        client = MlflowClient(secure.url)
        exp_id = client.create_experiment(name)
        run = client.create_run(exp_id)
        client.log_metric(run.info.run_id, "m", 1.0)

        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", reader)
        assert MlflowClient(secure.url).get_run(run.info.run_id).data.metrics == {"m": 1.0}
        with pytest.raises(MlflowException) as err:
            MlflowClient(secure.url).log_metric(run.info.run_id, "m", 2.0)
        assert err.value.error_code == "PERMISSION_DENIED"

        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", other)
        with pytest.raises(MlflowException) as err:
            MlflowClient(secure.url).get_run(run.info.run_id)
        assert err.value.error_code == "PERMISSION_DENIED"
        own = MlflowClient(f"{secure.url}/ws/other")
        assert own.get_experiment("0").name == "Default"


def test_a_retried_log_metric_is_stored_once(tracking_uri: str, client, name: str) -> None:
    """The MLflow client retries a call whose answer it lost: the point is kept once."""
    run_id = client.create_run(client.create_experiment(name)).info.run_id
    body = {"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 1700, "step": 3}
    for _ in range(2):
        assert httpx.post(f"{tracking_uri}{API}/runs/log-metric", json=body).status_code == 200
    again = {**body, "value": 0.25}  # the same step and time with another value is new
    assert httpx.post(f"{tracking_uri}{API}/runs/log-metric", json=again).status_code == 200
    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.timestamp, m.value) for m in history] == [(3, 1700, 0.5), (3, 1700, 0.25)]


def test_a_runs_empty_parts_stay_off_the_wire(tracking_uri: str, client, name: str) -> None:
    """Empty lists and empty inputs/outputs are left out of a run, as protobuf JSON leaves
    empty repeated fields out; the client builds the same runs as from the full shape."""
    from mlflow.entities import Dataset, DatasetInput, InputTag, Run
    from mlflow.protos.service_pb2 import SearchRuns
    from mlflow.utils.proto_json_utils import parse_dict

    exp_id = client.create_experiment(name)
    plain = client.create_run(exp_id, run_name="plain").info.run_id
    client.log_param(plain, "lr", "0.1")
    fed = client.create_run(exp_id, run_name="fed").info.run_id
    dataset = Dataset("toy", "d1", "local", '{"uri": "toy.csv"}')
    client.log_inputs(fed, [DatasetInput(dataset, [InputTag("mlflow.data.context", "train")])])

    answer = httpx.post(
        f"{tracking_uri}{API}/runs/search",
        json={"experiment_ids": [exp_id], "order_by": ["attributes.run_name DESC"]},
    ).json()
    wire = {r["info"]["run_name"]: r for r in answer["runs"]}
    assert set(wire["plain"]) == {"info", "data"}
    assert set(wire["plain"]["data"]) == {"params", "tags"}  # no metrics logged
    assert set(wire["fed"]) == {"info", "data", "inputs"}
    assert [d["dataset"]["name"] for d in wire["fed"]["inputs"]["dataset_inputs"]] == ["toy"]

    full = {
        "runs": [
            {
                **r,
                "data": {"metrics": [], "params": [], **r["data"]},
                "inputs": {"dataset_inputs": [], "model_inputs": [], **r.get("inputs", {})},
                "outputs": {"model_outputs": []},
            }
            for r in answer["runs"]
        ]
    }
    parsed = SearchRuns.Response()
    parse_dict(js_dict=full, message=parsed)
    from_full = [Run.from_proto(r).to_dictionary() for r in parsed.runs]
    searched = client.search_runs([exp_id], order_by=["attributes.run_name DESC"])
    assert [r.to_dictionary() for r in searched] == from_full
    assert searched[0].inputs.dataset_inputs == [] and searched[0].outputs.model_outputs == []
    assert [d.dataset.digest for d in searched[1].inputs.dataset_inputs] == ["d1"]
