"""The calls a user of the cloud service's v1 SDK already knows: accepted with the same
parameters, or refused with a CumuloError that says what to use instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from cumulo import (
    ComputeTarget,
    Environment,
    Experiment,
    InvalidInput,
    LocalPool,
    Model,
    NotFound,
    Run,
    Workspace,
)
from cumulo.serving.entry_script import ScriptPredictor


@pytest.fixture
def ws() -> Workspace:
    return Workspace.create("v1")


def test_compute_target_by_name(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    ComputeTarget.create(ws, "cpu", LocalPool(max_nodes=1))
    target = ComputeTarget(workspace=ws, name="cpu")
    assert target.kind == "pool" and ComputeTarget(ws, "cpu").name == "cpu"
    status = target.wait_for_completion(show_output=True)
    assert status["max_nodes"] == 1 and "cpu (pool) is ready" in capsys.readouterr().out
    with pytest.raises(NotFound, match="it has cpu, local"):
        ComputeTarget(workspace=ws, name="gpu")
    assert set(ws.compute_targets) == {"local", "cpu"}


def test_run_of_an_experiment_by_id(ws: Workspace) -> None:
    exp = Experiment(ws, "e")
    with exp.start_logging() as run:
        run.log("acc", 0.5)
    again = Run(exp, run.id)
    assert again.id == run.id and again.get_metrics()["acc"] == 0.5
    assert Run(exp, run.id[:8]).id == run.id
    with pytest.raises(NotFound, match="belongs to experiment 'e'"):
        Run(Experiment(ws, "other"), run.id)


def test_environment_from_a_requirements_file_path(tmp_path: Path, ws: Workspace) -> None:
    (tmp_path / "requirements.txt").write_text("six==1.17.0\n# a comment\n")
    env = Environment.from_pip_requirements("sk", file_path=tmp_path / "requirements.txt")
    assert env.pip_requirements == ["six==1.17.0"]
    env.register(ws)
    assert ws.environments["sk"].version == 1
    with pytest.raises(InvalidInput, match="file_path"):
        Environment.from_pip_requirements("sk")


def test_get_runs_by_type_and_properties(ws: Workspace) -> None:
    exp = Experiment(ws, "e")
    with exp.start_logging() as a:
        a.add_properties({"stage": "prod"})
    with exp.start_logging():
        pass
    job = ws.transport.tracking.create_run(ws.name, exp.id, kind="job", status="Completed")
    assert [r.id for r in exp.get_runs(properties={"stage": "prod"})] == [a.id]
    assert len(list(exp.get_runs(type="interactive"))) == 2
    assert [r.id for r in exp.get_runs(type="azureml.scriptrun")] == [job.id]
    assert [r.id for r in exp.get_runs(type="job")] == [job.id]
    assert list(exp.get_runs(type="hyperdrive")) == []


def test_registry_and_endpoints_by_name(tmp_path: Path, ws: Workspace) -> None:
    (tmp_path / "model.pkl").write_bytes(b"weights")
    Model.register(ws, tmp_path / "model.pkl", "m")
    Model.register(ws, tmp_path / "model.pkl", "m")
    assert ws.models["m"].version == 2
    assert ws.webservices == ws.endpoints == {}


def test_names_with_no_twin_say_what_to_use(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match=r"Workspace\.connect"):
        ws.service_context  # noqa: B018
    with pytest.raises(InvalidInput, match="log_table"):
        Experiment(ws, "e").start_logging().log_confusion_matrix("cm", {})
    assert not hasattr(ws, "linked_services")  # still an AttributeError for hasattr
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        ws.nonsense  # noqa: B018


def test_filters_name_a_misspelled_key_and_in_works_on_params(ws: Workspace) -> None:
    exp = Experiment(ws, "e")
    for lr in ("0.1", "0.2", "0.3"):
        with exp.start_logging() as run:
            run.log_params({"lr": lr})
            run.log("accuracy", float(lr))
            run.tag("size", {"0.1": "s", "0.2": "m", "0.3": "l"}[lr])
    with pytest.raises(InvalidInput, match="did you mean 'accuracy'"):
        list(exp.get_runs(filter="metrics.acuracy > 0.1"))
    picked = exp.get_runs(filter="params.lr IN ('0.1', '0.3')", order_by="params.lr")
    assert [r.get_params()["lr"] for r in picked] == ["0.1", "0.3"]
    by_metric = exp.get_runs(filter="metrics.accuracy IN (0.2, 0.3)", order_by="params.lr")
    assert [r.get_params()["lr"] for r in by_metric] == ["0.2", "0.3"]
    by_tag = exp.get_runs(filter="tags.size NOT IN ('m')", order_by="params.lr")
    assert [r.get_params()["lr"] for r in by_tag] == ["0.1", "0.3"]
    assert list(exp.get_runs(filter="metrics.accuracy > 5")) == []  # known key: just empty


def test_entry_scripts_find_the_model_folder_under_the_cloud_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUMULO_MODEL_DIR", str(tmp_path / "model"))
    (tmp_path / "score.py").write_text(
        "import os\n"
        "def init():\n    global folder\n    folder = os.environ['AZUREML_MODEL_DIR']\n"
        "def run(raw):\n    return folder\n"
    )
    assert (
        ScriptPredictor("score.py", tmp_path).predict(b"{}") == f'"{tmp_path / "model"}"'.encode()
    )
