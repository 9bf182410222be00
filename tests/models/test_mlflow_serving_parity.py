"""A Cumulo endpoint answers like ``mlflow models serve`` on the same model.

Four models (a scikit-learn classifier with named ``double`` columns, one with
a tensor signature, one without a signature, and a code-defined pyfunc model
with a ``scale`` parameter) are each served by a real ``mlflow models serve``
process and by a Cumulo endpoint on one ``cumulo server``; the same table of
bodies goes to both and the answers must agree: the status, the content type,
the predictions, and an error's ``error_code`` and message (compared after
writing MLflow's set of input keys, whose order changes from one process to
the next, in one order). docs/mlflow-compatibility.md shows the table.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import free_port
from tests.models.conftest import IRIS_COLUMNS

pytestmark = pytest.mark.slow

C = IRIS_COLUMNS
R1 = [5.1, 3.5, 1.4, 0.2]
R2 = [6.7, 3.0, 5.2, 2.3]
JSON = "application/json"
CSV_ROWS = ",".join(C) + "\n" + ",".join(map(str, R1)) + "\n" + ",".join(map(str, R2)) + "\n"


def _j(body: Any) -> bytes:
    return json.dumps(body).encode()


# (name, body, content type); a content type of None sends no content-type header.
BODIES: list[tuple[str, bytes, str | None]] = [
    ("dataframe_split", _j({"dataframe_split": {"columns": C, "data": [R1, R2]}}), JSON),
    (
        "dataframe_split, columns reordered",
        _j({"dataframe_split": {"columns": C[::-1], "data": [R1[::-1], R2[::-1]]}}),
        JSON,
    ),
    ("dataframe_split without columns", _j({"dataframe_split": {"data": [R1, R2]}}), JSON),
    (
        "dataframe_records",
        _j({"dataframe_records": [dict(zip(C, r, strict=True)) for r in (R1, R2)]}),
        JSON,
    ),
    ("instances: list of rows", _j({"instances": [R1, R2]}), JSON),
    ("inputs: list of rows", _j({"inputs": [R1, R2]}), JSON),
    ("inputs: one row, not nested", _j({"inputs": R1}), JSON),
    (
        "inputs: dict of columns",
        _j({"inputs": {c: [R1[i], R2[i]] for i, c in enumerate(C)}}),
        JSON,
    ),
    ("inputs: list of records", _j({"inputs": [dict(zip(C, R1, strict=True))]}), JSON),
    ("instances: list of records", _j({"instances": [dict(zip(C, R1, strict=True))]}), JSON),
    ("CSV (text/csv)", CSV_ROWS.encode(), "text/csv"),
    (
        "CSV missing a column",
        (",".join(C[:3]) + "\n" + ",".join(map(str, R1[:3])) + "\n").encode(),
        "text/csv",
    ),
    (
        "CSV, columns reordered",
        (",".join(C[::-1]) + "\n" + ",".join(map(str, R1[::-1])) + "\n").encode(),
        "text/csv",
    ),
    (
        "CSV with an extra column",
        (",".join([*C, "extra"]) + "\n" + ",".join(map(str, [*R1, 7])) + "\n").encode(),
        "text/csv",
    ),
    ("CSV with an empty field", (",".join(C) + "\n,3.5,1.4,0.2\n").encode(), "text/csv"),
    ("CSV, malformed", b'a,b\n"x', "text/csv"),
    ("JSON with charset=utf-8", _j({"inputs": [R1]}), "application/json; charset=utf-8"),
    ("wrong content type (text/plain)", _j({"inputs": [R1]}), "text/plain"),
    ("JSON with charset=latin-1", _j({"inputs": [R1]}), "application/json; charset=latin-1"),
    ("JSON with a format= parameter", _j({"inputs": [R1]}), "application/json; format=split"),
    ("malformed JSON", b'{"inputs": [[1.0, 2.0', JSON),
    ("empty body", b"", JSON),
    ("a JSON list, not an object", _j([R1]), JSON),
    ("two input keys", _j({"inputs": [R1], "instances": [R1]}), JSON),
    ("no input key", _j({"data": [R1]}), JSON),
    ("missing column", _j({"dataframe_split": {"columns": C[:3], "data": [R1[:3]]}}), JSON),
    (
        "extra column",
        _j({"dataframe_split": {"columns": [*C, "extra"], "data": [[*R1, 1.0]]}}),
        JSON,
    ),
    (
        "string where double",
        _j({"dataframe_split": {"columns": C, "data": [["wide", *R1[1:]]]}}),
        JSON,
    ),
    (
        "numeric string where double",
        _j({"dataframe_split": {"columns": C, "data": [["5.1", *R1[1:]]]}}),
        JSON,
    ),
    ("integers into double", _j({"dataframe_split": {"columns": C, "data": [[5, 3, 1, 0]]}}), JSON),
    ("integers, inputs rows", _j({"inputs": [[5, 3, 1, 0], [7, 3, 5, 2]]}), JSON),
    ("null value", _j({"dataframe_split": {"columns": C, "data": [[None, *R1[1:]]]}}), JSON),
    ("boolean value", _j({"dataframe_split": {"columns": C, "data": [[True, *R1[1:]]]}}), JSON),
    ("no rows", _j({"dataframe_split": {"columns": C, "data": []}}), JSON),
    ("row too short", _j({"inputs": [[1.0, 2.0]]}), JSON),
    (
        "params (scale=2)",
        _j({"dataframe_split": {"columns": C, "data": [R1]}, "params": {"scale": 2.0}}),
        JSON,
    ),
    (
        "params of the wrong type",
        _j({"dataframe_split": {"columns": C, "data": [R1]}, "params": {"scale": "big"}}),
        JSON,
    ),
    ("params not an object", _j({"inputs": [R1], "params": [1]}), JSON),
    ("no content type", _j({"dataframe_split": {"columns": C, "data": [R1]}}), None),
]

# Where the two answer differently on purpose: MLflow's server fails (500) on a
# request without a content type; Cumulo's router reads such a body as JSON.
DIFFERENT = {"no content type"}

PARAMS_MODEL = textwrap.dedent(
    """
    import mlflow


    class Scaled(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            scale = (params or {}).get("scale", 1.0)
            return [scale * sum(row) for row in model_input.values.tolist()]


    mlflow.models.set_model(Scaled())
    """
)


def _models(root: Path, iris_dir: Path) -> dict[str, Path]:
    """The models compared: iris columns, a tensor, no signature, a params signature."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow.pyfunc
        import mlflow.sklearn
        from mlflow.models import infer_signature
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        x, y = load_iris(return_X_y=True, as_frame=True)
        array = x.to_numpy()
        plain = LogisticRegression(max_iter=500).fit(array, y)
        needs = ["scikit-learn"]  # named: inferring them takes a minute per model
        mlflow.sklearn.save_model(
            plain,
            root / "tensor",
            signature=infer_signature(array, plain.predict(array)),
            pip_requirements=needs,
        )
        mlflow.sklearn.save_model(plain, root / "nosig", pip_requirements=needs)
        code = root / "scaled.py"
        code.write_text(PARAMS_MODEL)
        mlflow.pyfunc.save_model(
            root / "params",
            python_model=str(code),
            signature=infer_signature(x, x.sum(axis=1).to_numpy(), params={"scale": 1.0}),
            pip_requirements=["mlflow"],
        )
    return {
        "columns": iris_dir,
        "tensor": root / "tensor",
        "nosig": root / "nosig",
        "params": root / "params",
    }


def _mlflow_serve(model_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    bindir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    command = [
        str(Path(bindir) / "mlflow"),
        "models",
        "serve",
        "-m",
        str(model_dir),
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def _wait_ping(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300  # four servers start at once on a busy machine
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"mlflow models serve exited: {log.read_text()[-2000:]}")
            try:
                if client.get(url + "/ping").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    raise AssertionError(f"mlflow models serve did not answer: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, mlflow_model_dir: Path, cumulo_server_url: str
) -> Iterator[dict[str, tuple[str, str]]]:
    """For each model: (MLflow's /invocations URL, the Cumulo endpoint's scoring URL)."""
    from cumulo import DeploymentConfig, Model, Workspace

    root = tmp_path_factory.mktemp("parity")
    models = _models(root, mlflow_model_dir)
    started = {name: _mlflow_serve(path, root / f"{name}.log") for name, path in models.items()}
    endpoints = []
    try:
        name = f"ws-{uuid.uuid4().hex[:10]}"
        httpx.post(f"{cumulo_server_url}/api/v1/workspaces", json={"name": name}).raise_for_status()
        ws = Workspace.connect(cumulo_server_url, name)
        urls = {}
        for key, path in models.items():
            model = Model.register(ws, path, f"parity-{key}")
            ep = Model.deploy(
                ws, f"parity-{key}", [model], deployment_config=DeploymentConfig(auth="none")
            )
            endpoints.append(ep)
            urls[key] = ep.scoring_uri
        for key, (proc, url) in started.items():
            _wait_ping(url, proc, root / f"{key}.log")
        yield {key: (started[key][1] + "/invocations", urls[key]) for key in models}
    finally:
        for ep in endpoints:
            ep.delete()
        for proc, _ in started.values():
            proc.terminate()
        for proc, _ in started.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


_KEY_SET = re.compile(r"\{'[a-z_]+'(?:, '[a-z_]+')*\}")
# For a tensor signature MLflow converts a table's columns in the order of a
# Python set, so which column a conversion error names changes per process.
_SOME_COLUMN = re.compile(r"Failed to convert column .+? to type")


def _normal(message: str) -> str:
    """A message with MLflow's set of input keys in one order, and no set-chosen column."""
    message = _KEY_SET.sub(lambda m: str(sorted(re.findall(r"'([a-z_]+)'", m.group(0)))), message)
    return _SOME_COLUMN.sub("Failed to convert column (one of them) to type", message)


def _post(client: httpx.Client, url: str, body: bytes, ctype: str | None) -> tuple[int, str, Any]:
    headers = {"content-type": ctype} if ctype else {}
    answer = client.post(url, content=body, headers=headers)
    media = answer.headers.get("content-type", "").split(";")[0].strip()
    if media == "application/json":
        data = answer.json()
        if isinstance(data, dict) and "message" in data:
            data = {k: v for k, v in data.items() if k not in ("stack_trace", "error_id")}
            data["message"] = _normal(data["message"])
        return answer.status_code, media, data
    return answer.status_code, media, answer.text


def compare(servers: dict[str, tuple[str, str]], model: str) -> list[dict[str, Any]]:
    """One row per body: what each server answered and whether the answers agree."""
    mlflow_url, cumulo_url = servers[model]
    rows = []
    with httpx.Client(timeout=60) as client:
        for name, body, ctype in BODIES:
            theirs = _post(client, mlflow_url, body, ctype)
            ours = _post(client, cumulo_url, body, ctype)
            rows.append({"body": name, "mlflow": theirs, "cumulo": ours, "same": theirs == ours})
    return rows


@pytest.mark.timeout(900)  # four `mlflow models serve` processes start in the first one
@pytest.mark.parametrize("model", ["columns", "tensor", "nosig", "params"])
def test_cumulo_answers_as_mlflow_models_serve(
    servers: dict[str, tuple[str, str]], model: str
) -> None:
    rows = compare(servers, model)
    unlike = [r for r in rows if not r["same"] and r["body"] not in DIFFERENT]
    assert not unlike, json.dumps(unlike, indent=1, default=str)[:6000]
    accepted = {r["body"] for r in rows if r["mlflow"][0] == 200}
    refused = {r["body"] for r in rows if r["mlflow"][0] != 200}
    assert "dataframe_split" in accepted and "malformed JSON" in refused  # both kinds compared
    if model == "columns":  # plain rows break a named-column signature, on both sides
        assert "inputs: list of rows" in refused and "instances: list of rows" in refused
    (different,) = [r for r in rows if r["body"] in DIFFERENT]
    assert different["mlflow"][0] == 500 and different["cumulo"][0] == 200
