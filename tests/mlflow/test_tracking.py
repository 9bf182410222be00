"""Experiments, runs, metrics and search through the real MLflow client."""

from __future__ import annotations

import math

import httpx
import pytest
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

import mlflow


def _code(exc: pytest.ExceptionInfo[MlflowException]) -> str:
    return str(exc.value.error_code)


# --------------------------------------------------------------- experiments
def test_default_experiment_is_zero(client) -> None:
    default = client.get_experiment("0")
    assert default.name == "Default"
    assert default.lifecycle_stage == "active"
    assert client.get_experiment_by_name("Default").experiment_id == "0"


def test_experiment_lifecycle(client, name: str) -> None:
    exp_id = client.create_experiment(name, tags={"team": "vision"})
    exp = client.get_experiment(exp_id)
    assert (exp.name, exp.tags["team"], exp.lifecycle_stage) == (name, "vision", "active")
    assert client.get_experiment_by_name(name).experiment_id == exp_id
    assert client.get_experiment_by_name(name + "-missing") is None

    with pytest.raises(MlflowException) as err:
        client.create_experiment(name)
    assert _code(err) == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(MlflowException) as err:
        client.get_experiment("987654321")
    assert _code(err) == "RESOURCE_DOES_NOT_EXIST"

    client.set_experiment_tag(exp_id, "stage", "dev")
    client.rename_experiment(exp_id, name + "-renamed")
    exp = client.get_experiment(exp_id)
    assert exp.name == name + "-renamed" and exp.tags["stage"] == "dev"
    client.delete_experiment_tag(exp_id, "stage")
    assert "stage" not in client.get_experiment(exp_id).tags

    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    active = {e.experiment_id for e in client.search_experiments()}
    deleted = {e.experiment_id for e in client.search_experiments(ViewType.DELETED_ONLY)}
    assert exp_id not in active and exp_id in deleted
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"


def test_search_experiments_filter_order_and_pages(client, name: str) -> None:
    ids = [client.create_experiment(f"{name}-{i}", tags={"i": str(i)}) for i in range(5)]
    found = client.search_experiments(filter_string=f"name LIKE '{name}-%'", order_by=["name DESC"])
    assert [e.experiment_id for e in found] == ids[::-1]
    tagged = client.search_experiments(filter_string=f"name LIKE '{name}%' AND tags.i = '3'")
    assert [e.experiment_id for e in tagged] == [ids[3]]

    seen, token = [], None
    while True:
        page = client.search_experiments(
            max_results=2, filter_string=f"name ILIKE '{name.upper()}-%'", page_token=token
        )
        seen += [e.experiment_id for e in page]
        token = page.token
        if not token:
            break
    assert sorted(seen, key=int) == ids

    with pytest.raises(MlflowException) as err:
        client.search_experiments(filter_string="name ~ 'x'")
    assert _code(err) == "INVALID_PARAMETER_VALUE"


# ---------------------------------------------------------------------- runs
def test_run_lifecycle_and_system_tags(tracking_uri: str, client, name: str) -> None:
    mlflow.set_experiment(name)
    with (
        mlflow.start_run(run_name="parent") as parent,
        mlflow.start_run(run_name="child", nested=True) as child,
    ):
        pass
    with pytest.raises(RuntimeError), mlflow.start_run(run_name="broken") as broken:
        raise RuntimeError("boom")

    got = client.get_run(parent.info.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "parent"
    assert got.data.tags["mlflow.runName"] == "parent"
    assert got.data.tags["mlflow.source.type"] == "LOCAL"
    assert got.info.user_id and got.data.tags["mlflow.user"] == got.info.user_id
    assert got.info.end_time >= got.info.start_time
    assert got.info.artifact_uri == f"mlflow-artifacts:/default/runs/{got.info.run_id}"
    kid = client.get_run(child.info.run_id)
    assert kid.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert client.get_run(broken.info.run_id).info.status == "FAILED"
    # A run the client creates without system tags answers the tags it was given and
    # its name, as MLflow's server answers: its user is its user_id, not a tag more.
    plain = client.create_run(got.info.experiment_id, run_name="plain", tags={"team": "a"})
    read = client.get_run(plain.info.run_id)
    assert read.data.tags == {"team": "a", "mlflow.runName": "plain"}
    assert read.info.user_id == plain.info.user_id != ""

    run = client.create_run(got.info.experiment_id)
    assert run.info.status == "RUNNING" and run.info.run_name  # a generated name
    client.update_run(run.info.run_id, name="renamed")
    assert client.get_run(run.info.run_id).data.tags["mlflow.runName"] == "renamed"
    client.set_terminated(run.info.run_id, status="KILLED")
    assert client.get_run(run.info.run_id).info.status == "KILLED"

    client.delete_run(run.info.run_id)
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    with pytest.raises(MlflowException) as err:
        client.log_metric(run.info.run_id, "m", 1.0)
    assert _code(err) == "INVALID_PARAMETER_VALUE"
    client.restore_run(run.info.run_id)
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "active"

    client.set_tag(run.info.run_id, "temp", "1")
    client.delete_tag(run.info.run_id, "temp")
    assert "temp" not in client.get_run(run.info.run_id).data.tags
    with pytest.raises(MlflowException) as err:
        client.delete_tag(run.info.run_id, "temp")
    assert _code(err) == "RESOURCE_DOES_NOT_EXIST"


def test_params_metrics_and_special_values(tracking_uri: str, client, name: str) -> None:
    mlflow.set_experiment(name)
    with mlflow.start_run() as run:
        mlflow.log_param("lr", 0.1)
        mlflow.log_param("lr", 0.1)  # the same value again: a retry, accepted
        mlflow.log_params({"depth": 3, "model": "rf"})
        for step, value in enumerate([1.0, math.inf, -math.inf, math.nan]):
            mlflow.log_metric("odd", value, step=step)
        mlflow.log_metric("loss", 0.5, step=2**40)
        with pytest.raises(MlflowException) as err:
            mlflow.log_param("lr", 0.2)
        assert _code(err) == "INVALID_PARAMETER_VALUE"
    data = client.get_run(run.info.run_id).data
    assert data.params == {"lr": "0.1", "depth": "3", "model": "rf"}
    assert math.isnan(data.metrics["odd"])  # the latest step
    history = client.get_metric_history(run.info.run_id, "odd")
    assert [m.step for m in history] == [0, 1, 2, 3]
    assert history[0].value == 1.0 and history[1].value == math.inf
    assert history[2].value == -math.inf and math.isnan(history[3].value)
    assert client.get_metric_history(run.info.run_id, "loss")[0].step == 2**40


def test_log_batch_and_paged_history(client, name: str) -> None:
    exp_id = client.create_experiment(name)
    run_id = client.create_run(exp_id).info.run_id
    # 26,000 points: more than one page of history (25,000) for the client to follow.
    for start in range(0, 26_000, 1000):
        metrics = [
            Metric("curve", float(i), 1_700_000_000_000 + i, i) for i in range(start, start + 1000)
        ]
        client.log_batch(run_id, metrics=metrics)
    client.log_batch(
        run_id,
        params=[Param(f"p{i}", str(i)) for i in range(150)],  # the client splits at 100
        tags=[RunTag("batch", "yes")],
    )
    history = client.get_metric_history(run_id, "curve")
    assert len(history) == 26_000
    assert [m.step for m in history[24_998:25_002]] == [24_998, 24_999, 25_000, 25_001]
    run = client.get_run(run_id)
    assert len(run.data.params) == 150 and run.data.tags["batch"] == "yes"
    assert run.data.metrics["curve"] == 25_999.0


def test_server_batch_limits(tracking_uri: str, client, name: str) -> None:
    run_id = client.create_run(client.create_experiment(name)).info.run_id
    url = f"{tracking_uri}/api/2.0/mlflow/runs/log-batch"

    def batch(**fields) -> httpx.Response:
        return httpx.post(url, json={"run_id": run_id, **fields})

    point = {"key": "m", "value": 1.0, "timestamp": 1, "step": 0}
    assert batch(metrics=[point] * 1000).status_code == 200
    too_many = batch(metrics=[point] * 1001)
    assert too_many.status_code == 400
    assert too_many.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "1000" in too_many.json()["message"]
    params = [{"key": f"k{i}", "value": "v"} for i in range(101)]
    assert batch(params=params).status_code == 400
    tags = [{"key": f"t{i}", "value": "v"} for i in range(100)]
    assert batch(metrics=[point] * 901, tags=tags).status_code == 400  # 1,001 in all
    huge = batch(tags=[{"key": "big", "value": "x" * 1_000_001}])
    assert huge.status_code == 400 and "1000000" in huge.json()["message"]
    clash = batch(params=[{"key": "a", "value": "1"}, {"key": "a", "value": "2"}])
    assert clash.status_code == 400
    assert len(client.get_metric_history(run_id, "m")) == 1000  # refused batches wrote nothing


def test_history_pages_on_request(tracking_uri: str, client, name: str) -> None:
    run_id = client.create_run(client.create_experiment(name)).info.run_id
    client.log_batch(run_id, metrics=[Metric("m", float(i), 5, i) for i in range(25)])
    url = f"{tracking_uri}/api/2.0/mlflow/metrics/get-history"
    steps, token = [], None
    while True:
        params = {"run_id": run_id, "metric_key": "m", "max_results": "10"}
        if token:
            params["page_token"] = token
        body = httpx.get(url, params=params).json()
        steps += [m["step"] for m in body["metrics"]]
        token = body.get("next_page_token")
        if not token:
            break
    assert steps == list(range(25))


# -------------------------------------------------------------------- search
def test_search_runs_grammar_and_pagination(tracking_uri: str, client, name: str) -> None:
    exp_id = client.create_experiment(name)
    ids = []
    for i, model in enumerate(["rf", "rf", "svm", "knn", "rf"]):
        run = client.create_run(exp_id, run_name=f"run-{i}", tags={"team name": f"t{i % 2}"})
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("acc", 0.5 + i / 10, 0, 0)],
            params=[Param("model", model)],
        )
        if i < 4:
            client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)

    def search(flt: str = "", order: list[str] | None = None) -> list[str]:
        found = client.search_runs([exp_id], flt, order_by=order)
        return [r.info.run_id for r in found]

    assert search("metrics.acc > 0.65", ["metrics.acc DESC"]) == [ids[4], ids[3], ids[2]]
    assert set(search("params.model = 'rf' AND metrics.acc <= 0.6")) == {ids[0], ids[1]}
    assert set(search("tags.`team name` = 't1'")) == {ids[1], ids[3]}
    assert set(search("tags.\"team name\" != 't1'")) == {ids[0], ids[2], ids[4]}
    assert search("attributes.status = 'RUNNING'") == [ids[4]]
    assert search("attributes.run_name LIKE 'run-3'") == [ids[3]]
    assert search("tags.mlflow.runName = 'run-2'") == [ids[2]]
    assert search(f"attributes.run_id IN ('{ids[0]}', '{ids[2]}')", ["params.model ASC"]) == [
        ids[0],
        ids[2],
    ]
    assert search("params.model ILIKE 'R%'", ["attributes.run_name DESC"]) == [
        ids[4],
        ids[1],
        ids[0],
    ]
    with pytest.raises(MlflowException) as err:
        search("metrics.acc > 'high'")
    assert _code(err) == "INVALID_PARAMETER_VALUE"

    seen, token = [], None
    while True:
        page = client.search_runs(
            [exp_id], max_results=2, order_by=["metrics.acc"], page_token=token
        )
        seen += [r.info.run_id for r in page]
        token = page.token
        if not token:
            break
    assert seen == ids

    frame = mlflow.search_runs([exp_id], filter_string="params.model = 'svm'")
    assert list(frame["run_id"]) == [ids[2]] and list(frame["metrics.acc"]) == [0.7]

    client.delete_run(ids[0])
    assert ids[0] not in search()
    deleted = client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [ids[0]]


def test_dataset_inputs(tracking_uri: str, client, name: str) -> None:
    import pandas as pd

    frame = pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]})
    dataset = mlflow.data.from_pandas(frame, name="toy", targets="y")
    mlflow.set_experiment(name)
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
        mlflow.log_input(dataset, context="training")  # the same input again: kept once
    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    assert inputs[0].dataset.name == "toy" and inputs[0].dataset.digest == dataset.digest
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"
