"""Input the server must refuse whole: numbers beyond 64 bits, params that are not text,
names that hide or reorder characters, absolute artifact paths, and studio visits
with a token that no longer opens anything."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server
from typer.testing import CliRunner

from cumulo import Workspace
from cumulo.cli.main import app
from cumulo.core import validation
from cumulo.core.errors import InvalidInput, InvalidPath
from cumulo.sdk.workspace import Experiment
from cumulo.services.registry import model_name

MLFLOW = "/api/2.0/mlflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
WS = "default"
NATIVE = f"/api/v1/workspaces/{WS}"
BELOW = -(2**63) - 1  # JSON parsers read this as the float -2**63
ABOVE = 2**63


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("gaps") / "home"
    port = free_port()
    proc = start_cumulo_server(home, port)
    yield f"http://127.0.0.1:{port}"
    stop_cumulo_server(proc)


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


def new_run(client: httpx.Client) -> str:
    answer = client.post(f"{MLFLOW}/runs/create", json={"experiment_id": "0"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["run"]["info"]["run_id"])


def post_json(client: httpx.Client, url: str, body: Any) -> httpx.Response:
    """Numbers beyond 64 bits written out exactly, as a client in any language may send them."""
    return client.post(url, content=json.dumps(body), headers={"content-type": "application/json"})


def history(client: httpx.Client, run_id: str, key: str) -> list[Any]:
    answer = client.get(f"{NATIVE}/runs/{run_id}/metrics/history", params={"key": key})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["step"])


def run_data(client: httpx.Client, run_id: str) -> dict[str, Any]:
    answer = client.get(f"{MLFLOW}/runs/get", params={"run_id": run_id})
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["run"]["data"])


def refused(answer: httpx.Response, code: str = "INVALID_PARAMETER_VALUE") -> str:
    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == code, answer.text
    return str(answer.json()["message"])


# ------------------------------------------------------- 64-bit steps and times
OUT_OF_RANGE = [
    pytest.param(BELOW, 5, id="step-below"),
    pytest.param(ABOVE, 5, id="step-above"),
    pytest.param(3, BELOW, id="time-below"),
    pytest.param(3, ABOVE, id="time-above"),
]


@pytest.mark.parametrize(("step", "stamp"), OUT_OF_RANGE)
def test_native_rows_refuse_numbers_beyond_64_bits(
    client: httpx.Client, step: int, stamp: int
) -> None:
    run_id = new_run(client)
    batch = {"metrics": [["m", 1.0, 0, 1], ["m", 2.0, step, stamp]]}
    refused(post_json(client, f"{NATIVE}/runs/{run_id}/log-batch", batch))
    assert history(client, run_id, "m") == []  # the good point is not stored either


@pytest.mark.parametrize(("step", "stamp"), OUT_OF_RANGE)
def test_native_columns_refuse_numbers_beyond_64_bits(
    client: httpx.Client, step: int, stamp: int
) -> None:
    run_id = new_run(client)
    columns = {"key": ["m", "m"], "value": [1.0, 2.0], "step": [0, step], "timestamp": [1, stamp]}
    refused(post_json(client, f"{NATIVE}/runs/{run_id}/log-batch", {"metrics": columns}))
    assert history(client, run_id, "m") == []


@pytest.mark.parametrize(("step", "stamp"), OUT_OF_RANGE)
def test_mlflow_log_metric_and_batch_refuse_numbers_beyond_64_bits(
    client: httpx.Client, step: int, stamp: int
) -> None:
    run_id = new_run(client)
    point = {"key": "m", "value": 2.0, "step": step, "timestamp": stamp}
    refused(post_json(client, f"{MLFLOW}/runs/log-metric", {"run_id": run_id, **point}))
    good = {"key": "m", "value": 1.0, "step": 0, "timestamp": 1}
    batch = {"run_id": run_id, "metrics": [good, point], "params": [{"key": "p", "value": "1"}]}
    refused(post_json(client, f"{MLFLOW}/runs/log-batch", batch))
    assert history(client, run_id, "m") == []
    assert run_data(client, run_id).get("params", []) == []


def test_the_limits_themselves_are_accepted(client: httpx.Client) -> None:
    run_id = new_run(client)
    batch = {"metrics": [["m", 1.0, -(2**63), 0], ["m", 2.0, 2**63 - 1, 2**63 - 1]]}
    answer = post_json(client, f"{NATIVE}/runs/{run_id}/log-batch", batch)
    assert answer.status_code == 200, answer.text
    assert history(client, run_id, "m") == [-(2**63), 2**63 - 1]


def test_a_float_at_minus_2_to_the_63_is_not_taken_for_a_step() -> None:
    # Any integer a little below -2**63 arrives as this float: it stands for no one number.
    with pytest.raises(InvalidInput, match="64"):
        validation.step(-(2.0**63))
    with pytest.raises(InvalidInput, match="64"):
        validation.timestamp_ms(2.0**63)
    assert validation.step(-(2**63)) == -(2**63)
    assert validation.step(-(2.0**62)) == -(2**62)


@pytest.mark.parametrize("step", [BELOW, ABOVE, -(2.0**63)])
def test_embedded_sdk_refuses_steps_beyond_64_bits(tmp_path: Path, step: Any) -> None:
    ws = Workspace.create("embedded", home=tmp_path / "home")
    run = Experiment(ws, "steps").start_logging()
    run.log("m", 1.0, step=0)
    with pytest.raises(InvalidInput, match="64"):
        run.log("m", 2.0, step=step)
        run.flush()
    assert ws.get_run(run.id).get_metric_history("m")["step"] in ([], [0])
    service = ws.transport.tracking  # embedded: the tracking service itself
    with pytest.raises(InvalidInput):
        service.log_batch("embedded", run.id, metrics=[("k", 1.0, 0, 1), ("k", 2.0, step, 2)])
    assert list(service.get_metric_history("embedded", run.id, "k")["step"]) == []


# --------------------------------------------------------- MLflow param values
@pytest.mark.parametrize("value", [{"a": 1}, [1, 2]], ids=["object", "array"])
def test_mlflow_log_batch_refuses_a_param_that_is_not_text(
    client: httpx.Client, value: Any
) -> None:
    run_id = new_run(client)
    batch = {
        "run_id": run_id,
        "metrics": [{"key": "m", "value": 1.0, "step": 0, "timestamp": 1}],
        "params": [{"key": "fine", "value": "1"}, {"key": "config", "value": value}],
    }
    message = refused(client.post(f"{MLFLOW}/runs/log-batch", json=batch))
    assert "'config'" in message
    assert run_data(client, run_id).get("params", []) == []
    assert history(client, run_id, "m") == []
    single = {"run_id": run_id, "key": "config", "value": value}
    assert "'config'" in refused(client.post(f"{MLFLOW}/runs/log-parameter", json=single))
    tagged = {"run_id": run_id, "tags": [{"key": "note", "value": value}]}
    assert "'note'" in refused(client.post(f"{MLFLOW}/runs/log-batch", json=tagged))


def test_mlflow_params_given_as_numbers_are_kept_as_text(client: httpx.Client) -> None:
    run_id = new_run(client)
    batch = {
        "run_id": run_id,
        "params": [{"key": "depth", "value": 4}, {"key": "lr", "value": 0.5}],
    }
    assert client.post(f"{MLFLOW}/runs/log-batch", json=batch).status_code == 200
    single = {"run_id": run_id, "key": "seed", "value": 7}
    assert client.post(f"{MLFLOW}/runs/log-parameter", json=single).status_code == 200
    params = {p["key"]: p["value"] for p in run_data(client, run_id)["params"]}
    assert params == {"depth": "4", "lr": "0.5", "seed": "7"}


# -------------------------------------------------- hidden characters in names
HIDDEN = [
    ("\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("\u2066", "U+2066 LEFT-TO-RIGHT ISOLATE"),
    ("\u200f", "U+200F RIGHT-TO-LEFT MARK"),
    ("\u200b", "U+200B ZERO WIDTH SPACE"),
    ("\u2060", "U+2060 WORD JOINER"),
    ("\ufeff", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    ("\x1b", "U+001B ESCAPE"),
    ("\n", "U+000A LINE FEED"),
    ("\x7f", "U+007F DELETE"),
    ("\x85", "U+0085"),
]


@pytest.mark.parametrize(("char", "named"), HIDDEN, ids=[c[1] for c in HIDDEN])
def test_core_names_refuse_hidden_characters(char: str, named: str) -> None:
    name = f"abc{char}de"
    checks = [
        validation.experiment_name,
        validation.display_name,
        validation.key,
        validation.workspace_name,
    ]
    for check in checks:
        with pytest.raises(InvalidInput, match=f"{re.escape(named)}.* at position 4;"):
            check(name)
    with pytest.raises(InvalidInput, match=re.escape(named)):
        model_name(name)


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\n", "\x7f", "\u202e"])
def test_artifact_paths_refuse_control_characters(char: str) -> None:
    with pytest.raises(InvalidPath, match=" at position 8;"):
        validation.artifact_path(f"plots/a{char}.png")


def test_ordinary_text_in_names_is_still_fine() -> None:
    for name in ("Überblick · 学习 ✓", "résumé run #1", "run 🚀"):
        assert validation.experiment_name(name) == name
        assert validation.display_name(name) == name
    assert validation.key("accuracy/top-1 (val)".replace("(", "").replace(")", ""))
    assert validation.artifact_path("plots/Überblick 学习.png") == "plots/Überblick 学习.png"


def test_the_server_names_the_hidden_character(client: httpx.Client) -> None:
    spoof = "train\u202egnp.exe"
    answer = client.post(f"{NATIVE}/experiments", json={"name": spoof})
    assert answer.status_code == 400
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in answer.json()["message"]
    assert "position 6" in answer.json()["message"]
    assert "U+202E" in refused(client.post(f"{MLFLOW}/experiments/create", json={"name": spoof}))
    made = client.post(f"{MLFLOW}/runs/create", json={"experiment_id": "0", "run_name": spoof})
    assert "U+202E" in refused(made)
    run_id = new_run(client)
    renamed = client.post(f"{MLFLOW}/runs/update", json={"run_id": run_id, "run_name": spoof})
    assert "U+202E" in refused(renamed)
    for field in ("metrics", "params", "tags"):
        item = {"key": "lo\u200bss", "value": 1.0 if field == "metrics" else "1"}
        if field == "metrics":
            item |= {"timestamp": 1, "step": 0}
        batch = {"run_id": run_id, field: [item]}
        message = refused(client.post(f"{MLFLOW}/runs/log-batch", json=batch))
        assert "U+200B ZERO WIDTH SPACE" in message and "position 3" in message
    workspace = client.post("/api/v1/workspaces", json={"name": "team\u2066x"})
    assert workspace.status_code == 400 and "U+2066" in workspace.json()["message"]


def test_a_run_name_given_as_a_tag_is_checked_before_anything_is_written(
    client: httpx.Client,
) -> None:
    run_id = new_run(client)
    spoof = {"key": "mlflow.runName", "value": "best\u202erun"}
    metric = {"key": "m", "value": 1.0, "step": 0, "timestamp": 1}
    batch = {"run_id": run_id, "metrics": [metric], "tags": [spoof, {"key": "t", "value": "1"}]}
    assert "U+202E" in refused(client.post(f"{MLFLOW}/runs/log-batch", json=batch))
    assert "U+202E" in refused(
        client.post(f"{MLFLOW}/runs/set-tag", json={"run_id": run_id, **spoof})
    )
    data = run_data(client, run_id)
    assert history(client, run_id, "m") == []
    tags = {t["key"]: t["value"] for t in data["tags"]}
    assert "t" not in tags and "\u202e" not in tags["mlflow.runName"]


def test_artifact_uploads_refuse_control_characters(client: httpx.Client) -> None:
    run_id = new_run(client)
    native = client.put(f"{NATIVE}/runs/{run_id}/artifacts/a%1Bb.txt", content=b"x")
    assert "U+001B ESCAPE at position 2" in refused(native, "INVALID_PATH")
    tab = client.put(f"{NATIVE}/runs/{run_id}/artifacts/sub/a%09b.txt", content=b"x")
    assert "U+0009 CHARACTER TABULATION at position 6" in refused(tab, "INVALID_PATH")
    proxy = client.put(f"{PROXY}/{WS}/runs/{run_id}/a%1Bb.txt", content=b"x")
    assert "U+001B ESCAPE" in refused(proxy)
    # A line break never matches an artifact route at all.
    assert client.put(f"{NATIVE}/runs/{run_id}/artifacts/a%0Ab.txt", content=b"x").is_error
    listed = client.get(f"{NATIVE}/runs/{run_id}/artifacts").json()["files"]
    assert listed == []


# ----------------------------------------------------- absolute artifact paths
@pytest.mark.parametrize(
    "tail",
    [
        "/etc/x",
        "%2Fetc%2Fx",
        "/{ws}/runs/{run}/f.txt",
        "%2F{ws}/runs/{run}/f.txt",
        "C:/{ws}/runs/{run}/f.txt",
        "{ws}/runs/{run}/C:/f.txt",
        "{ws}/runs/{run}/sub%5Cf.txt",
    ],
)
def test_proxy_uploads_to_absolute_paths_are_refused(client: httpx.Client, tail: str) -> None:
    run_id = new_run(client)
    url = f"{PROXY}/{tail.format(ws=WS, run=run_id)}"
    message = refused(client.put(url, content=b"secret"))
    assert "path" in message.lower()
    assert client.get(f"{NATIVE}/runs/{run_id}/artifacts").json()["files"] == []


def test_proxy_uploads_to_relative_paths_still_work(client: httpx.Client) -> None:
    run_id = new_run(client)
    answer = client.put(f"{PROXY}/{WS}/runs/{run_id}/sub/f.txt", content=b"ok")
    assert answer.status_code == 200, answer.text
    assert client.get(f"{PROXY}/{WS}/runs/{run_id}/sub/f.txt").content == b"ok"


# ------------------------------------------------------- studio with bad tokens
runner = CliRunner()


def cli(home: Path, *args: str) -> str:
    result = runner.invoke(app, [*args, "--home", str(home)])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("studio") / "home"
    port = free_port()
    proc = start_cumulo_server(home, port, "--auth", "token")
    good = cli(home, "token", "create", "--workspace", "*", "--role", "owner").strip()
    revoked = cli(home, "token", "create", "--workspace", "*", "--role", "reader").strip()
    listed = json.loads(cli(home, "token", "list", "--json"))
    revoked_id = next(t["id"] for t in listed if t["role"] == "reader")
    cli(home, "token", "revoke", revoked_id)
    yield {"url": f"http://127.0.0.1:{port}", "good": good, "revoked": revoked}
    stop_cumulo_server(proc)


@pytest.mark.parametrize("which", ["unknown", "revoked"])
@pytest.mark.parametrize("how", ["cookie", "header"])
def test_studio_sends_a_bad_token_to_the_login_page(
    auth_server: dict[str, Any], which: str, how: str
) -> None:
    token = "not-a-token" if which == "unknown" else auth_server["revoked"]
    sent: dict[str, Any] = (
        {"cookies": {"cumulo_token": token}}
        if how == "cookie"
        else {"headers": {"authorization": f"Bearer {token}"}}
    )
    with httpx.Client(base_url=auth_server["url"], **sent) as visitor:
        for page, target in (("/", "/login?next=/"), ("/ws/default/experiments", None)):
            answer = visitor.get(page)
            assert answer.status_code == 303, (page, answer.status_code, answer.text[:200])
            assert answer.headers["location"] == (target or f"/login?next={page}")
        login = visitor.get("/login", params={"next": "/"})
        assert login.status_code == 200 and "token" in login.text
        if how == "cookie":  # the login page forgets the bad cookie
            assert 'cumulo_token=""' in login.headers.get("set-cookie", "")


def test_studio_still_opens_for_a_good_token(auth_server: dict[str, Any]) -> None:
    cookies = {"cumulo_token": auth_server["good"]}
    with httpx.Client(base_url=auth_server["url"], cookies=cookies) as visitor:
        assert visitor.get("/").status_code == 200
        login = visitor.get("/login")
        assert login.status_code == 200 and "set-cookie" not in login.headers
