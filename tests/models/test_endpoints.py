"""Endpoints served by real replica processes, from an embedded workspace.

Scoring through the router with keys, both kinds of model, bad input, a
failing ``run()``, a failing ``init()``, a crashed replica, a rolling update
under load and a traffic split. Each test's endpoints stop with it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.models.conftest import IRIS_COLUMNS, make_script_model

from cumulo import DeploymentConfig, Endpoint, InferenceConfig, InvalidState, Model, Workspace

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def _wait(predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _script_endpoint(ws, tmp_path: Path, code: Path, name: str, **config: Any) -> Endpoint:
    model = Model.register(ws, make_script_model(tmp_path / "v1", "v1"), "scaler")
    return Model.deploy(
        ws,
        name,
        [model],
        InferenceConfig(entry_script="score.py", source_directory=code),
        DeploymentConfig(**config),
    )


def test_mlflow_model_is_served_with_mlflows_protocol(
    ws, mlflow_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = Model.register(ws, mlflow_model_dir, "iris")
    ep = Model.deploy(ws, "iris", [model], deployment_config=DeploymentConfig(request_logging=1.0))
    assert ep.state == "Healthy"
    progress = capsys.readouterr().err  # the wait said what it waited for
    assert "iris/blue: Healthy, 1 of 1 replica(s) ready" in progress
    body = {"dataframe_split": {"columns": IRIS_COLUMNS, "data": ROWS}}
    assert ep.run(body) == {"predictions": [0, 2]}
    primary, secondary = ep.get_keys()
    for key in (primary, secondary):
        answer = httpx.post(ep.scoring_uri, json=body, headers={"authorization": f"Bearer {key}"})
        assert answer.status_code == 200 and answer.json() == {"predictions": [0, 2]}
        assert answer.headers["cumulo-model-deployment"] == "blue"
    assert httpx.post(ep.scoring_uri, json=body).status_code == 401
    wrong = httpx.post(ep.scoring_uri, json=body, headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error_code"] == "UNAUTHENTICATED"
    bad = httpx.post(  # MLflow's own answer: it may wait for MLflow's path to finish loading
        ep.scoring_uri,
        json={"dataframe_split": {"columns": IRIS_COLUMNS[:2], "data": [[1.0, 2.0]]}},
        headers={"authorization": f"Bearer {primary}"},
        timeout=60,
    )
    assert bad.status_code == 400 and "missing inputs" in bad.json()["message"]

    new_primary, _ = ep.regenerate_key("primary")
    assert new_primary != primary
    old = httpx.post(ep.scoring_uri, json=body, headers={"authorization": f"Bearer {primary}"})
    assert old.status_code == 401
    assert ep.run(body) == {"predictions": [0, 2]}

    swagger = httpx.get(ep.swagger_uri).json()
    schema = swagger["paths"][f"/endpoints/{ws.name}/iris/score"]["post"]["requestBody"]
    columns = schema["content"]["application/json"]["schema"]["oneOf"][0]["properties"]
    assert columns["dataframe_split"]["properties"]["columns"]["items"]["enum"] == IRIS_COLUMNS

    metrics = ep.get_metrics()
    assert sum(m["requests"] for m in metrics) == 5  # the 401s never reached it
    assert sum(m["errors"] for m in metrics) == 0
    assert all(m["p50_ms"] is not None and m["p99_ms"] >= m["p50_ms"] for m in metrics)
    logged = ep.get_request_logs()
    assert len(logged) == 5 and {r["status"] for r in logged} == {200, 400}


def test_entry_script_bad_input_and_failures_keep_serving(ws, tmp_path, scoring_code) -> None:
    ep = _script_endpoint(ws, tmp_path, scoring_code, "scaler", auth="none")
    assert ep.run({"data": [[1, 2]]})["result"] == [6]
    bad = httpx.post(ep.scoring_uri, json={"data": [1, 2, 3]})
    assert bad.status_code == 400
    assert bad.json()["message"] == "data must be a list of rows of 2 numbers"
    malformed = httpx.post(
        ep.scoring_uri, content=b"{oops", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400 and "Malformed JSON" in malformed.json()["message"]
    failed = httpx.post(ep.scoring_uri, json={"boom": True})
    assert failed.status_code == 500
    error_id = failed.json()["error_id"]
    message = failed.json()["message"]  # the model's words; the traceback stays in the logs
    assert "RuntimeError: boom in run" in message and "Traceback" not in message
    assert ep.run({"data": [[2, 2]]})["result"] == [8]  # still serving
    logs = ep.get_logs()
    assert error_id in logs and "RuntimeError: boom in run" in logs
    assert ep.get_logs(deployment="blue", tail=5).count("\n") <= 6


def test_init_failure_is_reported_with_its_traceback(ws, tmp_path, scoring_code) -> None:
    with pytest.raises(InvalidState) as caught:
        _script_endpoint(
            ws,
            tmp_path,
            scoring_code,
            "broken",
            environment_variables={"FAIL_INIT": "disk on fire"},
        )
    message = str(caught.value)
    assert "cannot load the weights: disk on fire" in message
    assert "Traceback" in message and "score.py" in message and "in init" in message
    ep = Endpoint(ws, "broken")
    assert ep.deployments["blue"].state == "Failed"
    assert "RuntimeError: cannot load the weights" in ep.get_logs()


def test_crashed_replica_is_restarted(ws, tmp_path, scoring_code) -> None:
    ep = _script_endpoint(ws, tmp_path, scoring_code, "crashy", auth="none")
    pid = ep.run({"data": [[1, 1]]})["pid"]
    crash = httpx.post(ep.scoring_uri, json={"crash": True}, timeout=30)
    assert crash.status_code in (502, 503)

    def back() -> Any:
        answer = httpx.post(ep.scoring_uri, json={"data": [[1, 1]]}, timeout=30)
        return answer.json() if answer.status_code == 200 else None

    revived = _wait(back, what="the replica to come back")
    assert revived["pid"] != pid and revived["result"] == [4]
    replica = ep.deployments["blue"].replica_states[0]
    assert replica.restarts == 1 and replica.state == "ready"
    assert "exited with code 7" in (replica.error or "")


@pytest.mark.slow
def test_rolling_update_under_load_drops_nothing(ws, tmp_path, scoring_code) -> None:
    ep = _script_endpoint(ws, tmp_path, scoring_code, "rolling", replicas=2, auth="none")
    v2 = Model.register(ws, make_script_model(tmp_path / "v2", "v2", scale=10), "scaler")
    results: list[tuple[int, str]] = []
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(20_000):  # bounded; stopped once the update is seen through
                if stop.is_set():
                    return
                try:
                    r = client.post(ep.scoring_uri, json={"data": [[1, 2]]})
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                version = r.json().get("version", "") if r.status_code == 200 else r.text
                results.append((r.status_code, version))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        _wait(lambda: len(results) > 50, what="load to start")
        ep.update(models=[v2])
        seen = len(results)
        _wait(lambda: len(results) > seen + 100, what="load after the update")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    statuses = Counter(s for s, _ in results)
    assert not failures and statuses == {200: len(results)}, (statuses, failures[:3])
    versions = [v for _, v in results]
    assert versions[0] == "v1" and versions[-1] == "v2"
    blue = ep.deployments["blue"]
    assert blue.state == "Healthy" and blue.generation == 2
    assert sorted((r.slot, r.generation) for r in blue.replica_states) == [(0, 2), (1, 2)]


def test_traffic_split_and_targeted_deployment(ws, tmp_path, scoring_code) -> None:
    ep = _script_endpoint(ws, tmp_path, scoring_code, "split", auth="none")
    v2 = Model.register(ws, make_script_model(tmp_path / "v2", "v2"), "scaler")
    ep.add_deployment(
        "green",
        [v2],
        InferenceConfig(entry_script="score.py", source_directory=scoring_code),
    )
    assert ep.traffic == {"blue": 100}  # a new deployment takes no traffic by itself
    assert ep.run({"data": [[1, 1]]}, deployment="green")["version"] == "v2"
    ep.update_traffic({"blue": 70, "green": 30})
    seen: Counter[str] = Counter()
    with httpx.Client() as client:
        for _ in range(400):
            r = client.post(ep.scoring_uri, json={"data": [[1, 1]]})
            assert r.status_code == 200
            seen[r.headers["cumulo-model-deployment"]] += 1
    # 400 draws at 30 %: mean 120, sd 9.2; 60-180 is beyond six sd either way.
    assert 60 <= seen["green"] <= 180 and seen["blue"] + seen["green"] == 400
    with pytest.raises(Exception, match="takes 30% of the traffic"):
        ep.delete_deployment("green")
    ep.update_traffic({"blue": 100})
    ep.mirror_traffic({"green": 50})  # copies of requests; their answers are dropped
    with httpx.Client() as client:
        for _ in range(100):
            r = client.post(ep.scoring_uri, json={"data": [[1, 1]]})
            assert r.headers["cumulo-model-deployment"] == "blue"
    mirrored = _wait(
        lambda: sum(m["requests"] for m in ep.get_metrics("green")) - seen["green"] >= 15,
        what="mirrored requests",
    )
    assert mirrored
    ep.delete_deployment("green")
    assert set(ep.deployments) == {"blue"}
    ep.delete()
    assert Endpoint.list(ws) == []


def test_token_auth_takes_workspace_tokens_not_keys(ws, tmp_path, scoring_code) -> None:
    from cumulo.services.context import open_services

    auth = open_services(ws._settings).auth
    _, reader = auth.create_token(ws.name, "reader")
    other = Workspace.create(f"other-{ws.name}")
    _, stranger = auth.create_token(other.name, "owner")
    ep = _script_endpoint(ws, tmp_path, scoring_code, "tokened", auth="token")
    body = {"data": [[1, 2]]}
    assert ep.run(body, key=reader)["result"] == [6]

    def status(token: str) -> int:
        headers = {"authorization": f"Bearer {token}"}
        return httpx.post(ep.scoring_uri, json=body, headers=headers).status_code

    assert status(ep.get_keys()[0]) == 401  # keys do not open a token endpoint
    assert status(stranger) == 401  # another workspace's token neither
    ep.update(auth="key")
    assert status(ep.get_keys()[0]) == 200 and status(reader) == 401


def test_a_hung_replica_fails_its_liveness_checks_and_is_replaced(
    ws, tmp_path, scoring_code
) -> None:
    ep = _script_endpoint(
        ws,
        tmp_path,
        scoring_code,
        "hung",
        auth="none",
        liveness_period_s=0.3,
        liveness_timeout_s=0.3,
        failure_threshold=2,
    )
    pid = ep.run({"data": [[1, 1]]})["pid"]
    # The model blocks its replica; the supervisor kills it long before the 60 s are up.
    stuck = httpx.post(ep.scoring_uri, json={"sleep": 60}, timeout=50)
    assert stuck.status_code in (502, 503)  # dropped while answering, or restarting

    def replaced() -> Any:
        answer = httpx.post(ep.scoring_uri, json={"data": [[1, 1]]}, timeout=30)
        return answer.json() if answer.status_code == 200 else None

    assert _wait(replaced, what="a new replica")["pid"] != pid
    replica = ep.deployments["blue"].replica_states[0]
    assert "liveness checks" in (replica.error or "") and replica.restarts == 1


def test_an_endpoint_on_every_backend(workspace, tmp_path, scoring_code) -> None:
    """Embedded SQLite, embedded PostgreSQL + S3, and hosted by a `cumulo server`."""
    ep = _script_endpoint(workspace, tmp_path, scoring_code, "everywhere", replicas=2)
    assert ep.run({"data": [[1, 2], [3, 4]]})["result"] == [6, 14]
    blue = ep.deployments["blue"]
    assert blue.state == "Healthy" and blue.ready_replicas == 2
    assert "model loaded" in ep.get_logs()
    ep.delete()
    assert Endpoint.list(workspace) == []
