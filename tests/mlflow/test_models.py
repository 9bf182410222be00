"""``log_model`` (MLflow 3 logged models), ``pyfunc.load_model`` and the model registry."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LogisticRegression

import mlflow
from cumulo.core.settings import Settings
from cumulo.services.context import open_services

X = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.2], [0.9, 0.9], [0.1, 0.4], [0.7, 0.3]])
Y = np.array([0, 1, 1, 0, 0, 1])


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    return LogisticRegression().fit(X, Y)


def _code(exc: pytest.ExceptionInfo[MlflowException]) -> str:
    return str(exc.value.error_code)


@pytest.mark.slow
def test_log_model_and_load_it_every_way(
    tracking_uri: str, client, name: str, model: LogisticRegression, server
) -> None:
    mlflow.set_experiment(name)
    with mlflow.start_run() as run:
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("acc", 0.83)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=name,
            input_example=X[:2],
            pip_requirements=["scikit-learn"],  # skips a slow requirements probe
        )
    run_id = run.info.run_id
    assert info.model_uri.startswith("models:/m-") and str(info.registered_model_version) == "1"

    logged = client.get_logged_model(info.model_id)
    assert logged.status == "READY" and logged.source_run_id == run_id
    assert logged.params == {"C": "1.0"}
    assert [(m.key, m.value) for m in logged.metrics] == [("acc", 0.83)]
    assert len(client.get_metric_history(run_id, "acc")) == 1  # not logged twice on the run
    outputs = client.get_run(run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [info.model_id]
    found = client.search_logged_models([run.info.experiment_id], filter_string="name = 'model'")
    assert [m.model_id for m in found] == [info.model_id]

    version = client.get_model_version(name, "1")
    assert version.status == "READY" and version.run_id == run_id
    assert version.source == info.model_uri
    uri = client.get_model_version_download_uri(name, "1")
    assert uri == f"mlflow-artifacts:/default/models/{name}/1"

    client.set_registered_model_alias(name, "champion", "1")
    expected = model.predict(X).tolist()
    for model_uri in (
        f"runs:/{run_id}/model",
        info.model_uri,
        f"models:/{name}/1",
        f"models:/{name}@champion",
        f"models:/{name}/latest",
    ):
        loaded = mlflow.pyfunc.load_model(model_uri)
        assert loaded.predict(X).tolist() == expected, model_uri

    # The registered version has its own copy: deleting the run and the logged model
    # (for good, through Cumulo) leaves it loadable.
    services = open_services(Settings.load(home=server.home, environ={}))
    services.tracking.delete_run("default", run_id)
    client.delete_logged_model(info.model_id)
    with pytest.raises(MlflowException):
        client.get_logged_model(info.model_id)
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/1")
    assert loaded.predict(X).tolist() == expected
    flavors = services.registry.get_version("default", name, 1).flavors
    assert {"python_function", "sklearn"} <= set(flavors)


def test_register_from_run_files(tracking_uri: str, client, name: str, tmp_path) -> None:
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "weights.txt").write_text("0.1 0.2")
    mlflow.set_experiment(name)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(model_dir), artifact_path="my-model")
    source = f"runs:/{run.info.run_id}/my-model"
    client.create_registered_model(name)
    first = client.create_model_version(name, source, run_id=run.info.run_id)
    second = client.create_model_version(name, source)
    assert (first.version, second.version) == ("1", "2")
    path = mlflow.artifacts.download_artifacts(f"models:/{name}/2", dst_path=str(tmp_path / "o"))
    assert (tmp_path / "o" / "weights.txt").read_text() == "0.1 0.2", path

    with pytest.raises(MlflowException) as err:
        client.create_model_version(name, f"runs:/{run.info.run_id}/nothing-here")
    assert _code(err) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as err:
        client.create_model_version(name + "-missing", source)
    assert _code(err) == "RESOURCE_DOES_NOT_EXIST"


# Stages are deprecated in MLflow (still served here): the client warns on every call.
@pytest.mark.filterwarnings("ignore:.*is deprecated since:FutureWarning")
def test_registry_calls(tracking_uri: str, client, name: str, tmp_path) -> None:
    weights = tmp_path / "w.txt"
    weights.write_text("w")
    mlflow.set_experiment(name)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(weights), "model")
    source = f"runs:/{run.info.run_id}/model"

    created = client.create_registered_model(name, tags={"team": "a"}, description="first")
    assert (created.name, created.description, created.tags) == (name, "first", {"team": "a"})
    with pytest.raises(MlflowException) as err:
        client.create_registered_model(name)
    assert _code(err) == "RESOURCE_ALREADY_EXISTS"
    for _ in range(3):
        client.create_model_version(name, source, run_id=run.info.run_id, tags={"k": "v"})

    client.update_registered_model(name, description="second")
    client.set_registered_model_tag(name, "owner", "me")
    client.delete_registered_model_tag(name, "team")
    got = client.get_registered_model(name)
    assert got.description == "second" and got.tags == {"owner": "me"}

    client.update_model_version(name, "2", description="v2")
    client.set_model_version_tag(name, "2", "approved", "yes")
    client.delete_model_version_tag(name, "2", "k")
    v2 = client.get_model_version(name, "2")
    assert v2.description == "v2" and v2.tags == {"approved": "yes"}

    client.transition_model_version_stage(name, "1", "Production")
    client.transition_model_version_stage(name, "2", "Staging")
    moved = client.transition_model_version_stage(
        name, "3", "Production", archive_existing_versions=True
    )
    assert moved.current_stage == "Production"
    assert client.get_model_version(name, "1").current_stage == "Archived"
    latest = client.get_latest_versions(name, stages=["Production", "Staging"])
    assert sorted((v.current_stage, v.version) for v in latest) == [
        ("Production", "3"),
        ("Staging", "2"),
    ]

    client.set_registered_model_alias(name, "champion", "2")
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    assert client.get_registered_model(name).aliases == {"champion": "2"}
    assert client.get_model_version(name, "2").aliases == ["champion"]
    with pytest.raises(MlflowException) as err:
        client.set_registered_model_alias(name, "latest", "1")
    assert _code(err) == "INVALID_PARAMETER_VALUE"

    found = client.search_model_versions(f"name = '{name}' AND version_number >= 2")
    assert sorted(v.version for v in found) == ["2", "3"]
    by_run = client.search_model_versions(f"run_id = '{run.info.run_id}'")
    assert len(by_run) == 3
    tagged = client.search_model_versions(f"name = '{name}' AND tags.approved = 'yes'")
    assert [v.version for v in tagged] == ["2"]

    client.create_registered_model(name + "-b", tags={"team": "b"})
    models = client.search_registered_models(f"name LIKE '{name}%'", order_by=["name DESC"])
    assert [m.name for m in models] == [name + "-b", name]
    assert [m.name for m in client.search_registered_models("tags.team = 'b'")][-1:] == [
        name + "-b"
    ]
    page = client.search_registered_models(f"name LIKE '{name}%'", max_results=1)
    assert len(page) == 1 and page.token
    rest = client.search_registered_models(
        f"name LIKE '{name}%'", max_results=1, page_token=page.token
    )
    assert {page[0].name, rest[0].name} == {name, name + "-b"}

    client.rename_registered_model(name, name + "-r")
    assert client.get_registered_model(name + "-r").description == "second"
    # Files registered before the rename still load.
    path = mlflow.artifacts.download_artifacts(f"models:/{name}-r/1", dst_path=str(tmp_path / "d"))
    assert (tmp_path / "d" / "w.txt").read_text() == "w", path
    # A new model under the old name gets its own storage.
    client.create_registered_model(name)
    client.create_model_version(name, source)
    assert client.get_model_version_download_uri(
        name, "1"
    ) != client.get_model_version_download_uri(name + "-r", "1")

    copy = client.copy_model_version(f"models:/{name}-r/2", name + "-copy")
    assert copy.version == "1" and copy.run_id == run.info.run_id
    assert client.get_model_version(name + "-copy", "1").tags == {"approved": "yes"}
    path = mlflow.artifacts.download_artifacts(
        f"models:/{name}-copy/1", dst_path=str(tmp_path / "c")
    )
    assert (tmp_path / "c" / "w.txt").read_text() == "w", path

    client.delete_registered_model_alias(name + "-r", "champion")
    client.delete_model_version(name + "-r", "1")
    with pytest.raises(MlflowException) as err:
        client.get_model_version(name + "-r", "1")
    assert _code(err) == "RESOURCE_DOES_NOT_EXIST"
    client.delete_registered_model(name + "-r")
    with pytest.raises(MlflowException) as err:
        client.get_registered_model(name + "-r")
    assert _code(err) == "RESOURCE_DOES_NOT_EXIST"
