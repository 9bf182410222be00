"""`cumulo model` / `cumulo endpoint` commands, and endpoints hosted by a real `cumulo server`.

The server test deploys over HTTP and scores through the server's own URL:
the endpoint is served by the server's supervisor and outlives the client.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
from tests.models.conftest import IRIS_COLUMNS, make_script_model
from typer.testing import CliRunner

from cumulo import Endpoint, InferenceConfig, Model, Workspace
from cumulo.cli.main import app

runner = CliRunner()


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout  # what a pipe would get: progress lines go to stderr


def test_model_commands(tmp_path: Path) -> None:
    Workspace.create("cli")
    folder = make_script_model(tmp_path / "m", "v1")
    out = cli("model", "register", str(folder), "-n", "scaler", "--tag", "team=a", "-w", "cli")
    assert "version 1" in out
    second = json.loads(
        cli("model", "register", str(folder), "-n", "scaler", "-w", "cli", "--json")
    )
    assert second["version"] == 2
    cli("model", "alias", "scaler", "champion", "--version", "1", "-w", "cli")
    shown = json.loads(cli("model", "show", "scaler@champion", "-w", "cli", "--json"))
    assert shown["version"] == 1 and shown["tags"] == {"team": "a"}
    assert shown["files"] == ["weights.json"]
    listed = json.loads(cli("model", "list", "--tag", "team=a", "-w", "cli", "--json"))
    assert [m["id"] for m in listed] == ["scaler:1"]
    assert "scaler" in cli("model", "list", "-w", "cli")
    cli("model", "download", "scaler:2", "--dir", str(tmp_path / "dl"), "-w", "cli")
    assert (tmp_path / "dl" / "weights.json").exists()
    cli("model", "delete", "scaler:2", "-y", "-w", "cli")
    assert [m["version"] for m in json.loads(cli("model", "list", "-w", "cli", "--json"))] == [1]
    failed = runner.invoke(app, ["model", "show", "nothing", "-w", "cli"])
    assert failed.exit_code == 1 and "RESOURCE_DOES_NOT_EXIST" in failed.output


@pytest.mark.slow
def test_endpoints_hosted_by_the_server(
    cumulo_server_url: str,
    mlflow_model_dir: Path,
    scoring_code: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"ws-{uuid.uuid4().hex[:10]}"
    httpx.post(f"{cumulo_server_url}/api/v1/workspaces", json={"name": name}).raise_for_status()
    ws = Workspace.connect(cumulo_server_url, name)
    iris = Model.register(ws, mlflow_model_dir, "iris")  # uploaded as one archive
    assert iris.is_mlflow and "MLmodel" in iris.get_file_names()
    monkeypatch.setenv("CUMULO_URL", cumulo_server_url)
    monkeypatch.setenv("CUMULO_WORKSPACE", name)

    created = json.loads(cli("endpoint", "create", "iris", "-m", "iris:1", "--json"))
    assert created["scoring_uri"] == f"{cumulo_server_url}/endpoints/{name}/iris/score"
    shown = json.loads(cli("endpoint", "show", "iris", "--keys", "--json"))
    assert shown["deployments"][0]["state"] == "Healthy"
    body = {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}}
    # The command has returned; the server hosts the endpoint.
    key = shown["keys"]["primary"]
    scored = httpx.post(
        created["scoring_uri"], json=body, headers={"authorization": f"Bearer {key}"}
    )
    assert scored.status_code == 200 and scored.json() == {"predictions": [0]}
    assert httpx.post(created["scoring_uri"], json=body).status_code == 401
    assert json.loads(cli("endpoint", "invoke", "iris", "--data", json.dumps(body))) == {
        "predictions": [0]
    }
    assert "model loaded" in cli("endpoint", "logs", "iris")

    ep = Endpoint(ws, "iris")
    scaler = Model.register(ws, make_script_model(tmp_path / "m", "v1"), "scaler")
    ep.add_deployment(
        "green", [scaler], InferenceConfig(entry_script="score.py", source_directory=scoring_code)
    )
    assert ep.run({"data": [[1, 2]]}, deployment="green")["result"] == [6]
    assert "blue 50%" in cli("endpoint", "traffic", "iris", "blue=50", "green=50")
    assert {e["name"] for e in json.loads(cli("endpoint", "list", "--json"))} == {"iris"}
    assert sum(m["requests"] for m in ep.get_metrics()) >= 3
    cli("endpoint", "delete", "iris", "-y")
    assert Endpoint.list(ws) == []
    gone = httpx.post(created["scoring_uri"], json=body, headers={"authorization": f"Bearer {key}"})
    assert gone.status_code == 404
