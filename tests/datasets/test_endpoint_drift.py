"""Drift of an endpoint's sampled requests against the dataset version it was trained on."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cumulo import Dataset, DeploymentConfig, InferenceConfig, InvalidInput, Model, Workspace
from cumulo.cli.main import app
from cumulo.services.dataset_tables import request_rows

SCORE = textwrap.dedent(
    """
    def init():
        pass


    def run(raw_data):
        return {"ok": True}
    """
)


def test_request_bodies_become_rows_by_name_or_by_position() -> None:
    columns = ["x", "y", "label"]
    bodies = [
        json.dumps({"data": [[1.0, 2.0], [3.0, 4.0]]}),  # features first, by position
        json.dumps({"data": [{"x": 5.0, "y": 6.0}]}),
        json.dumps({"dataframe_split": {"columns": ["y", "x"], "data": [[8.0, 7.0]]}}),
        json.dumps({"dataframe_records": [{"x": 9.0, "y": 10.0}]}),
        "not json",
        json.dumps({"something": "else"}),
    ]
    frame = request_rows(bodies, columns)
    assert frame[["x", "y"]].to_numpy().tolist() == [
        [1.0, 2.0],
        [3.0, 4.0],
        [5.0, 6.0],
        [7.0, 8.0],
        [9.0, 10.0],
    ]
    with pytest.raises(InvalidInput, match="request_logging"):
        request_rows(["{}"], columns)


@pytest.mark.slow
def test_an_endpoints_requests_compared_with_its_training_data(tmp_path: Path) -> None:
    ws = Workspace.create("endpoint-drift")
    rng = np.random.default_rng(5)
    train = pd.DataFrame(
        {
            "x": rng.normal(0, 1, 1000),
            "y": rng.normal(5, 1, 1000),
            "label": rng.integers(0, 2, 1000),
        }
    )
    ds = Dataset.Tabular.from_pandas_dataframe(train).register(ws, "train")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.json").write_text("{}")
    (tmp_path / "serve").mkdir()
    (tmp_path / "serve" / "score.py").write_text(SCORE)
    model = Model.register(ws, tmp_path / "model", "m", datasets=[("training", ds)])
    endpoint = Model.deploy(
        ws,
        "drifty",
        [model],
        InferenceConfig(entry_script="score.py", source_directory=str(tmp_path / "serve")),
        DeploymentConfig(request_logging=1.0),
    )
    for _ in range(10):  # x as trained, y shifted by three standard deviations
        rows = np.column_stack([rng.normal(0, 1, 50), rng.normal(8, 1, 50)]).tolist()
        assert endpoint.run({"data": rows}) == {"ok": True}

    graph = ds.get_lineage()  # the data -> the model named with it -> where it serves
    served = [n for n in graph["nodes"] if n["kind"] == "endpoint"]
    assert [(n["endpoint"], n["traffic"]) for n in served] == [("drifty", 100)]
    assert {"from": "dataset:train:1", "to": "model:m:1"} in graph["edges"]
    assert {"from": "model:m:1", "to": served[0]["id"]} in graph["edges"]

    report = ds.compare_with_endpoint(endpoint)
    by = {c["column"]: c for c in report["columns"]}
    assert report["rows"] == [1000, 500] and report["other"] == "requests to drifty"
    assert set(by) == {"x", "y"}  # the label is not sent
    assert not by["x"]["drift"] and by["x"]["psi"] < 0.2
    assert by["y"]["drift"] and by["y"]["psi"] > 1.0
    result = CliRunner().invoke(
        app, ["dataset", "compare", "train:1", "--endpoint", "drifty", "-w", ws.name, "--json"]
    )
    assert result.exit_code == 2, result.output
    assert json.loads(result.output)["drift"] is True
