"""Where MLflow's server behaves in a way its clients and tests rely on: run ids recorded
without a lookup, its error wording, its older file routes and the web UI's aliases."""

from __future__ import annotations

import httpx
import pytest
from mlflow.exceptions import MlflowException

from mlflow import MlflowClient

API = "/api/2.0/mlflow"


def _post(uri: str, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{uri}{API}/{path}", json=body, timeout=30)


def test_run_ids_of_other_servers_are_recorded(
    tracking_uri: str, client: MlflowClient, name: str
) -> None:
    exp_id = client.create_experiment(name)
    # A model version whose run lives on another tracking server: recorded as sent.
    client.create_registered_model(name)
    version = client.create_model_version(name, "runs:/elsewhere/model", "run_id_1")
    assert (version.run_id, version.source, version.status) == (
        "run_id_1",
        "runs:/elsewhere/model",
        "READY",
    )
    assert client.get_model_version_download_uri(name, version.version) == "runs:/elsewhere/model"
    # A logged model's source run, and a parent run tag naming no run here.
    logged = client.create_logged_model(exp_id, source_run_id="123")
    assert client.get_logged_model(logged.model_id).source_run_id == "123"
    child = client.create_run(exp_id, tags={"mlflow.parentRunId": "7"})
    assert client.get_run(child.info.run_id).data.tags["mlflow.parentRunId"] == "7"
    # A parent that is a run here is still linked.
    parent = client.create_run(exp_id)
    kid = client.create_run(exp_id, tags={"mlflow.parentRunId": parent.info.run_id})
    found = client.search_runs([exp_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert [r.info.run_id for r in found] == [kid.info.run_id]
    # An id no store could hold is still refused.
    answer = _post(
        tracking_uri,
        "model-versions/create",
        {"name": name, "source": "s3://b/m", "run_id": "x" * 33},
    )
    assert answer.status_code == 400 and answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    ("path", "body", "wording"),
    [
        ("experiments/create", {"name": 123}, "Invalid value 123 for parameter 'name' supplied"),
        (
            "runs/log-metric",
            {"run_id": 31, "key": "m", "value": 1, "timestamp": 1},
            "Invalid value 31 for parameter 'run_id' supplied",
        ),
        (
            "runs/log-metric",
            {"run_id": "<run>", "key": "m", "value": 1, "timestamp": "foo"},
            "Invalid value \"foo\" for parameter 'timestamp' supplied",
        ),
        (
            "runs/log-parameter",
            {"run_id": 31, "key": "p", "value": "v"},
            "Invalid value 31 for parameter 'run_id' supplied",
        ),
        (
            "runs/set-tag",
            {"run_id": "<run>", "key": "t", "value": 41},
            "Invalid value 41 for parameter 'value' supplied",
        ),
        (
            "runs/log-batch",
            {"run_id": "<run>", "params": "foo"},
            "Invalid value \"foo\" for parameter 'params' supplied",
        ),
        (
            "runs/log-batch",
            {"run_id": "<run>", "metrics": [{"key": "m", "value": 1}]},
            "Missing value for required parameter 'metrics[0].timestamp'",
        ),
        # Checked before the run is looked up: a run that does not exist is not named.
        (
            "runs/log-metric",
            {"run_id": "no-such-run", "key": "m", "value": 1, "timestamp": "foo"},
            "Invalid value \"foo\" for parameter 'timestamp' supplied",
        ),
        (
            "runs/log-batch",
            {"run_id": "no-such-run", "metrics": [{"key": "m", "value": "x", "timestamp": 1}]},
            "Invalid value \"x\" for parameter 'value' supplied",
        ),
    ],
)
def test_wrong_values_are_refused_in_mlflows_words(
    tracking_uri: str, client: MlflowClient, path: str, body: dict[str, object], wording: str
) -> None:
    if body.get("run_id") == "<run>":
        body = body | {"run_id": client.create_run("0").info.run_id}
    answer = _post(tracking_uri, path, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert wording in answer.json()["message"]


def test_logged_models_without_a_name_or_files(client: MlflowClient, name: str) -> None:
    exp_id = client.create_experiment(name)
    names = {client.create_logged_model(exp_id).name for _ in range(3)}
    assert len(names) == 3 and "model" not in names
    # A logged model with no files yet can be registered, and lists its versions.
    model = client.create_logged_model(exp_id)
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source=model.artifact_location, model_id=model.model_id)
    assert (
        client.get_logged_model(model.model_id).tags["mlflow.modelVersions"]
        == f'[{{"name": "{name}", "version": 1}}, {{"name": "{name}", "version": 2}}]'
    )
    assert client.get_model_version(name, "2").status == "READY"


def test_logged_models_searched_by_the_datasets_of_their_metrics(
    tracking_uri: str, client: MlflowClient, name: str
) -> None:
    exp_id = client.create_experiment(name)
    scored, other, _plain = (client.create_logged_model(exp_id) for _ in range(3))
    run_id = client.create_run(exp_id).info.run_id
    for model, digest in ((scored, "123"), (other, "456")):
        client.log_metric(
            run_id, "acc", 0.5, dataset_name="eval", dataset_digest=digest, model_id=model.model_id
        )

    def names(datasets: list[dict[str, str]]) -> set[str]:
        found = client.search_logged_models(experiment_ids=[exp_id], datasets=datasets)
        return {m.name for m in found}

    assert names([{"dataset_name": "eval", "dataset_digest": "123"}]) == {scored.name}
    assert names([{"dataset_name": "eval"}]) == {scored.name, other.name}
    assert names([{"dataset_name": "train"}]) == set()
    assert len(names([])) == 3
    answer = _post(
        tracking_uri,
        "logged-models/search",
        {"experiment_ids": [exp_id], "datasets": [{"dataset_digest": "123"}]},
    )
    assert answer.status_code == 400
    assert answer.json()["message"] == "`dataset_name` in the `datasets` clause must be specified."


def test_older_file_routes_and_ui_aliases(
    tracking_uri: str, client: MlflowClient, name: str, tmp_path
) -> None:
    run_id = client.create_run(client.create_experiment(name)).info.run_id
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("hello")
    client.log_artifacts(run_id, str(tmp_path / "d"), "dir")
    listed = httpx.get(
        f"{tracking_uri}{API}/artifacts/list", params={"run_id": run_id, "path": "dir"}
    ).json()
    assert listed["root_uri"].endswith(run_id)
    assert [(f["path"], f["is_dir"], f["file_size"]) for f in listed["files"]] == [
        ("dir/a.txt", False, 5)
    ]
    got = httpx.get(f"{tracking_uri}/get-artifact", params={"run_id": run_id, "path": "dir/a.txt"})
    assert got.status_code == 200 and got.text == "hello"
    for path in (f"{API}/artifacts/list", "/get-artifact"):
        bad = httpx.get(f"{tracking_uri}{path}", params={"run_id": run_id, "path": "../x"})
        assert bad.status_code == 400 and bad.json()["message"] == "Invalid path"

    # The web UI's /ajax-api/ paths serve the same routes; unknown ones answer MLflow's JSON.
    aliased = httpx.get(f"{tracking_uri}/ajax-api/2.0/mlflow/runs/get", params={"run_id": run_id})
    assert aliased.status_code == 200 and aliased.json()["run"]["info"]["run_id"] == run_id
    missing = httpx.get(f"{tracking_uri}/ajax-api/2.0/mlflow/no-such-route")
    assert missing.status_code == 404 and missing.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_missing_things_are_named_in_mlflows_words(
    tracking_uri: str, client: MlflowClient, name: str
) -> None:
    with pytest.raises(MlflowException, match="Run with id=nothing-here not found"):
        client.delete_tag("nothing-here", "t")
    gone = client.create_run("0").info.run_id
    client.set_tag(gone, "t", "v")
    client.delete_run(gone)
    for key in ("t", "absent"):  # the run's state is named first, whether it has the tag
        with pytest.raises(MlflowException, match=f"The run {gone} must be in the 'active' st"):
            client.delete_tag(gone, key)
    with pytest.raises(MlflowException, match=f"The run {gone} must be in the 'active' state"):
        client.log_param(gone, "p", "1")
    with pytest.raises(MlflowException, match=f"Registered Model with name={name} not found"):
        client.update_registered_model(name, "d")
    client.create_registered_model(name)
    with pytest.raises(MlflowException, match=r"Registered Model \(name=.+\) already exists"):
        client.create_registered_model(name)
    model = client.create_logged_model(client.create_experiment(name))
    with pytest.raises(MlflowException, match="No tag with key 'absent'"):
        client.delete_logged_model_tag(model.model_id, "absent")
    big = httpx.get(f"{tracking_uri}{API}/experiments/search", params={"max_results": 123456789})
    assert big.status_code == 400
    assert "Invalid value 123456789 for parameter 'max_results' supplied" in big.json()["message"]


def test_ui_history_and_upload_routes(tracking_uri: str, client: MlflowClient, name: str) -> None:
    exp_id = client.create_experiment(name)
    runs = sorted(client.create_run(exp_id).info.run_id for _ in range(2))
    for n, run_id in enumerate(runs):
        for step, ts in ((3, 2), (2, 1), (3, 1)):
            client.log_metric(run_id, "m", n + step, timestamp=ts, step=step)
    bulk = f"{tracking_uri}/ajax-api/2.0/mlflow/metrics/get-history-bulk"
    got = httpx.get(bulk, params={"run_id": runs, "metric_key": "m", "max_results": 5}).json()
    assert [(m["run_id"], m["timestamp"], m["step"], m["value"]) for m in got["metrics"]] == [
        (runs[0], 1, 2, 2.0),
        (runs[0], 1, 3, 3.0),
        (runs[0], 2, 3, 3.0),
        (runs[1], 1, 2, 3.0),
        (runs[1], 1, 3, 4.0),
    ]
    refused = httpx.get(bulk, params={"metric_key": "m"})
    assert refused.status_code == 400
    assert "must specify at least one run_id" in refused.json()["message"]

    upload = f"{tracking_uri}/ajax-api/2.0/mlflow/upload-artifact"
    sent = httpx.post(upload, params={"run_uuid": runs[0], "path": "up.txt"}, content=b"hi")
    assert sent.status_code == 200
    fetched = httpx.get(
        f"{tracking_uri}/get-artifact", params={"run_uuid": runs[0], "path": "up.txt"}
    )
    assert fetched.text == "hi"
    for params, wording in (
        ({"run_uuid": runs[0]}, "Request must specify path."),
        ({"run_uuid": runs[0], "path": "../x"}, "Invalid path"),
        ({"run_uuid": runs[0], "path": "empty.txt"}, "Request must specify data."),
    ):
        answer = httpx.post(upload, params=params)
        assert answer.status_code == 400 and wording in answer.json()["message"]


def test_logged_model_files_for_the_web_ui(
    tracking_uri: str, client: MlflowClient, name: str, tmp_path
) -> None:
    model = client.create_logged_model(client.create_experiment(name))
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    client.log_model_artifact(model.model_id, str(tmp_path / "MLmodel"))
    base = f"{tracking_uri}/ajax-api/2.0/mlflow/logged-models/{model.model_id}/artifacts"
    assert [f["path"] for f in httpx.get(f"{base}/directories").json()["files"]] == ["MLmodel"]
    got = httpx.get(f"{base}/files", params={"artifact_file_path": "MLmodel"})
    assert got.status_code == 200 and got.text == "flavors: {}\n"


def test_logged_files_are_sent_as_downloads_never_as_pages(
    tracking_uri: str, client: MlflowClient, name: str, tmp_path
) -> None:
    """An HTML file someone logged would run its script on the server's origin if a route
    sent it as a page: each file route sends it as a download, sandboxed, unsniffed."""
    page = tmp_path / "page.html"
    page.write_text("<script>alert(1)</script>")
    run_id = client.create_run(client.create_experiment(name)).info.run_id
    client.log_artifact(run_id, str(page))
    model = client.create_logged_model(client.create_experiment(name + "-m"))
    client.log_model_artifact(model.model_id, str(page))
    client.create_registered_model(name)
    client.create_model_version(name, f"runs:/{run_id}", run_id)
    answers = [
        httpx.get(f"{tracking_uri}/get-artifact", params={"run_id": run_id, "path": "page.html"}),
        httpx.get(
            f"{tracking_uri}/model-versions/get-artifact",
            params={"name": name, "version": "1", "path": "page.html"},
        ),
        httpx.get(
            f"{tracking_uri}{API}/logged-models/{model.model_id}/artifacts/files",
            params={"artifact_file_path": "page.html"},
        ),
    ]
    for answer in answers:
        assert answer.status_code == 200 and answer.text == "<script>alert(1)</script>"
        assert answer.headers["content-disposition"] == 'attachment; filename="page.html"'
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["content-security-policy"].startswith("sandbox")


def test_versions_by_reference_and_their_order(
    tracking_uri: str, client: MlflowClient, name: str
) -> None:
    client.create_registered_model(name)
    first = client.create_model_version(name, "runs:/elsewhere/model", "run_id_1")
    copied = client.copy_model_version(f"models:/{name}/{first.version}", name)
    assert client.get_model_version(name, copied.version).source == f"models:/{name}/1"
    assert client.get_model_version_download_uri(name, copied.version) == "runs:/elsewhere/model"
    # Newest update first, as MLflow lists versions by default.
    client.update_model_version(name, "1", description="touched")
    listed = client.search_model_versions(f"name = '{name}'")
    assert [v.version for v in listed] == ["1", "2"]
    with pytest.raises(MlflowException, match=r"Model Version \(name=.+, version=7\) not found"):
        client.get_model_version(name, "7")
    with pytest.raises(MlflowException, match="Parameter 'version' must be an integer"):
        client.get_model_version(name, "seven")
    bad = _post(tracking_uri, "experiments/create", {"name": name + "x", "artifact_location": 9.0})
    assert bad.status_code == 400
    assert "Invalid value 9.0 for parameter 'artifact_location'" in bad.json()["message"]


def test_the_web_ui_samples_the_histories_of_runs_it_compares(
    tracking_uri: str, client: MlflowClient, name: str
) -> None:
    exp_id = client.create_experiment(name)
    short, long = (client.create_run(exp_id).info.run_id for _ in range(2))
    for run_id, steps in ((short, 10), (long, 20)):
        for step in range(steps):
            client.log_metric(run_id, "loss", 1.0, timestamp=1, step=step)
    client.log_metric(short, "loss", 2.0, timestamp=2, step=4)  # two values at step 4
    url = f"{tracking_uri}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"

    def steps(**params: object) -> list[tuple[str, int, float]]:
        answer = httpx.get(url, params={"metric_key": "loss", **params})
        assert answer.status_code == 200, answer.text
        return [(m["run_id"], m["step"], m["value"]) for m in answer.json()["metrics"]]

    # Steps chosen evenly from those either run logged, the same for both, plus each
    # run's first and last; every value at a chosen step.
    assert steps(run_ids=[short], max_results=5) == [
        (short, 0, 1.0),
        (short, 2, 1.0),
        (short, 4, 1.0),
        (short, 4, 2.0),
        (short, 6, 1.0),
        (short, 8, 1.0),
        (short, 9, 1.0),
    ]
    both = steps(run_ids=[short, long], max_results=5)
    assert [s for r, s, _ in both if r == short] == [0, 4, 4, 8, 9]
    assert [s for r, s, _ in both if r == long] == [0, 4, 8, 9, 12, 16, 19]
    assert [s for _, s, _ in steps(run_ids=[long], start_step=3, end_step=6)] == [3, 4, 5, 6]

    refusals = [
        ({"metric_key": "loss"}, "Missing value for required parameter 'run_ids'."),
        (
            {"run_ids": [f"r{i}" for i in range(101)], "metric_key": "loss"},
            "must specify at most 100 run_ids. Received 101 run_ids.",
        ),
        ({"run_ids": [short], "max_results": 5}, "required parameter 'metric_key'"),
        ({"run_ids": [short], "metric_key": "loss", "max_results": 0}, "between 1 and 2500"),
        (
            {"run_ids": [short], "metric_key": "loss", "start_step": 2, "end_step": 1},
            "end_step must be greater than start_step. Found start_step=2 and end_step=1.",
        ),
        (
            {"run_ids": [short], "metric_key": "loss", "end_step": 1},
            "If either start step or end step are specified, both must be specified.",
        ),
    ]
    for params, wording in refusals:
        answer = httpx.get(url, params=params)
        assert answer.status_code == 400
        assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert wording in answer.json()["message"]
    assert httpx.get(url, params={"run_ids": ["nope"], "metric_key": "loss"}).status_code == 404


def test_the_web_ui_lists_the_datasets_of_experiments(
    tracking_uri: str, client: MlflowClient, name: str
) -> None:
    from mlflow.entities import Dataset, DatasetInput, InputTag

    def read(run_id: str, dataset: str, context: str | None) -> None:
        tags = [] if context is None else [InputTag("mlflow.data.context", context)]
        entry = DatasetInput(Dataset(dataset, "d-" + dataset, "local", "/x"), tags)
        client.log_inputs(run_id, [entry])

    first, second = client.create_experiment(name), client.create_experiment(name + "-2")
    for exp_id in (first, second):
        run_id = client.create_run(exp_id).info.run_id
        read(run_id, "train", "training")
        read(run_id, "raw", None)
    read(client.create_run(first).info.run_id, "train", "training")  # the same, again
    url = f"{tracking_uri}/ajax-api/2.0/mlflow/experiments/search-datasets"
    answer = httpx.post(url, json={"experiment_ids": [first]})
    assert answer.status_code == 200
    assert sorted(answer.json()["dataset_summaries"], key=lambda d: d["name"]) == [
        {"experiment_id": first, "name": "raw", "digest": "d-raw"},
        {"experiment_id": first, "name": "train", "digest": "d-train", "context": "training"},
    ]
    both = httpx.post(url, json={"experiment_ids": [first, second]}).json()
    assert {d["experiment_id"] for d in both["dataset_summaries"]} == {first, second}
    for body, wording in (
        ({}, "SearchDatasets request must specify at least one experiment_id."),
        ({"experiment_ids": [str(i) for i in range(21)]}, "cannot specify more than 20"),
    ):
        refused = httpx.post(url, json=body)
        assert refused.status_code == 400 and wording in refused.json()["message"]


def test_a_versions_description_is_no_change_of_its_registered_model(
    client: MlflowClient, name: str
) -> None:
    import time

    client.create_registered_model(name)
    client.create_model_version(name, "runs:/elsewhere/model", "run_id_1")
    before = client.get_registered_model(name).last_updated_timestamp
    time.sleep(0.01)  # a later millisecond for any change
    client.update_model_version(name, "1", description="better")
    assert client.get_model_version(name, "1").description == "better"
    assert client.get_registered_model(name).last_updated_timestamp == before
    with pytest.warns(FutureWarning):  # stages are deprecated in MLflow's client
        client.transition_model_version_stage(name, "1", "Staging")
    assert client.get_registered_model(name).last_updated_timestamp > before


def test_a_deleted_versions_number_is_not_given_again(client: MlflowClient, name: str) -> None:
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, "runs:/elsewhere/model", "run_id_1")
    client.delete_model_version(name, "3")
    assert client.create_model_version(name, "runs:/elsewhere/b", "run_id_2").version == "4"
    client.delete_model_version(name, "4")
    client.delete_model_version(name, "1")
    assert client.create_model_version(name, "runs:/elsewhere/c", "run_id_2").version == "5"
    found = client.search_model_versions(f"name = '{name}'")
    assert sorted(int(v.version) for v in found) == [2, 5]
