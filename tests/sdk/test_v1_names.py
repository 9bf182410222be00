"""The calls a user of the cloud service's v1 SDK already knows: accepted with the same
parameters, or refused with a CumuloError that says what to use instead."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import cumulo
from cumulo import (
    AutoMLConfig,
    ComputeTarget,
    Dataset,
    Datastore,
    DeploymentConfig,
    Environment,
    Experiment,
    HyperDriveConfig,
    InferenceConfig,
    InvalidInput,
    LocalPool,
    Model,
    NotFound,
    Pipeline,
    PipelineData,
    PipelineEndpoint,
    PythonScriptStep,
    Run,
    Schedule,
    ScheduleRecurrence,
    ScriptRunConfig,
    Workspace,
)
from cumulo.sdk import v1
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


def _v1_calls(ws: Workspace, tmp: Path) -> list[tuple[Callable[[], object], str]]:
    """Calls of the cloud service's SDK with parameters that have no twin here, and what
    each answer must point to."""
    exp = Experiment(ws, "e")
    return [
        (lambda: Workspace.get("v1", subscription_id="s", resource_group="r"), "Workspace.connect"),
        (
            lambda: Workspace("sub", "rg", "v1"),
            r"too many .* it takes name.*Workspace\.get\(name\)",
        ),
        (
            lambda: Workspace("sub", "rg"),
            r"Workspace\('sub', 'rg', \.\.\.\):.*Workspace\.get\(name\)",
        ),
        (lambda: Run(experiment=exp, run_id="x"), r"Run\(experiment, run_id\)"),
        (lambda: ScriptRunConfig(".", "t.py", run_config=None), "compute_target"),
        (lambda: Environment("e", pip_version="23"), "pip=="),
        (lambda: LocalPool(vm_size="STANDARD_D2_V2", max_nodes=2), "resources="),
        (lambda: DeploymentConfig(cpu_cores=1, memory_gb=1), "'cpus'"),
        (lambda: InferenceConfig(entry_script="s.py", conda_file="env.yml"), "pip_requirements"),
        (lambda: PipelineData("out", datastore=None), r"PipelineData\(name\) alone"),
        (lambda: PythonScriptStep(name="s", script_name="t.py", runconfig=None), "environment="),
        (lambda: HyperDriveConfig(estimator=None), "run_config=ScriptRunConfig"),
        (lambda: AutoMLConfig("regression", None, "y", iterations=4), "max_trials="),
        (lambda: Model.register(ws, tmp, "m", model_framework_version="1"), "model_framework="),
        (lambda: Model(ws, id="m:1"), r"Model\(ws, name, version\)"),
        (lambda: Datastore.get(ws, datastore_name="workspacestore"), r"Datastore.get\(ws, name\)"),
        (
            lambda: Dataset.Tabular.from_delimited_files("d.csv", infer_column_types=True),
            "column types",
        ),
    ]


def test_v1_parameters_with_no_twin_say_what_to_use(tmp_path: Path, ws: Workspace) -> None:
    for call, use in _v1_calls(ws, tmp_path):
        with pytest.raises(InvalidInput, match=use) as caught:
            call()
        assert isinstance(caught.value, TypeError)  # `except TypeError` still catches it
    with exp_run(ws) as run:
        with pytest.raises(InvalidInput, match="show_output=True"):
            run.wait_for_completion(show_output=True, wait_post_processing=True)
        with pytest.raises(InvalidInput, match="get_children"):
            list(run.get_children(status="Completed"))


def exp_run(ws: Workspace) -> Run:
    return Experiment(ws, "e").start_logging()


def test_a_type_error_inside_the_call_is_left_as_it_was() -> None:
    @v1.arguments("f", {"old": "new="})
    def f(value: int) -> int:
        return value + "1"  # type: ignore[operator, no-any-return]

    with pytest.raises(TypeError, match="unsupported operand") as caught:
        f(1)
    assert not isinstance(caught.value, InvalidInput)
    with pytest.raises(InvalidInput, match="new="):
        f(old=1)  # type: ignore[call-arg]


def test_v1_imports_with_no_twin_say_what_to_use() -> None:
    with pytest.raises(ImportError, match=r"LocalPool\(max_nodes"):
        from cumulo import AmlCompute  # type: ignore[attr-defined]  # noqa: F401
    with pytest.raises(InvalidInput, match="DeploymentConfig"):
        from cumulo import AciWebservice  # type: ignore[attr-defined]  # noqa: F401
    with pytest.raises(InvalidInput, match="pip_requirements"):
        cumulo.CondaDependencies  # noqa: B018
    with pytest.raises(ImportError) as plain:
        from cumulo import Nonsense  # type: ignore[attr-defined]  # noqa: F401
    assert not isinstance(plain.value, InvalidInput)


def test_v1_class_names_with_no_twin_say_what_to_use(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="from_pip_requirements"):
        Environment.from_conda_specification("e", "env.yml")
    assert not hasattr(Environment, "from_conda_specification")
    with pytest.raises(InvalidInput, match="virtual environment"):
        Environment("e").docker.enabled = True
    with pytest.raises(InvalidInput, match=r"Model\.deploy"):
        Model.package(ws, [], None)
    with pytest.raises(InvalidInput, match="register_s3"):
        Datastore.register_azure_blob_container(ws, "x", "c", "a")
    with pytest.raises(InvalidInput, match=r"datastore\.upload"):
        ws.get_default_datastore().upload_files(["a"])
    with pytest.raises(InvalidInput, match=r"Dataset.list\(ws\)"):
        Dataset.get_all(ws)
    with pytest.raises(InvalidInput, match=r"src\.environment"):
        ScriptRunConfig(".", "t.py").run_config  # noqa: B018
    with exp_run(ws) as run:
        with pytest.raises(InvalidInput, match=r"get_properties\(\)"):
            run.properties  # noqa: B018
        assert Run.get(ws, run.id) == run


def test_v1_calls_accepted_with_their_parameters(tmp_path: Path, ws: Workspace) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x,y\n1,2\n3,4\n")
    store = ws.get_default_datastore()
    paths = store.upload(
        src_dir=tmp_path / "data", target_path="raw", overwrite=True, show_progress=True
    )
    assert paths == ["raw/a.csv"]
    with pytest.raises(InvalidInput, match="replaces files"):
        store.upload(src_dir=tmp_path / "data", target_path="raw", overwrite=False)
    files = Dataset.File.from_files(path=(store, "raw")).register(ws, "raw")
    assert files.as_download().name == "raw"
    with pytest.raises(InvalidInput, match="as_download"):
        files.as_mount()
    with pytest.raises(InvalidInput, match="Register the dataset first"):
        Dataset.File.from_files(path=(store, "raw")).as_download()
    Model.register(ws, tmp_path / "data", "m", tags={"stage": "prod"})
    Model.register(ws, tmp_path / "data", "m", tags={"stage": "dev"})
    assert [m.version for m in Model.list(ws, tags=[["stage", "prod"]])] == [1]
    with pytest.raises(InvalidInput, match="key and value"):
        Model.list(ws, tags=["stage"])


def test_more_v1_names_say_what_to_use(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match=r"pipeline\.publish"):
        PipelineEndpoint.publish(ws, "p", None)
    with pytest.raises(InvalidInput, match=r"ws\.experiments\[name\]"):
        Experiment.list(ws, experiment_name="e")
    with pytest.raises(InvalidInput, match=r"ds\.download"):
        Dataset.File.from_files(path="x").mount()


def test_published_pipelines_and_schedules_take_the_v1_calls(tmp_path: Path, ws: Workspace) -> None:
    (tmp_path / "step.py").write_text("print('step')\n")
    step = PythonScriptStep(name="s", script_name="step.py", source_directory=tmp_path)
    pipeline = Pipeline(ws, [step])
    with pytest.raises(InvalidInput, match="checks the graph as it is made"):
        pipeline.validate()
    published = pipeline.publish("p")
    run = published.submit(ws, "e", pipeline_parameters={})  # the cloud service's order
    assert run.wait_for_completion(show_output=False)["status"] == "Completed"
    with pytest.raises(InvalidInput, match="belongs to workspace 'v1'"):
        published.submit(Workspace.create("other"), "e")
    with pytest.raises(InvalidInput, match=r"Schedule\.disable"):
        published.disable()
    with pytest.raises(InvalidInput, match="cron="):
        ScheduleRecurrence(frequency="Week", week_days=["Monday"], time_of_day="9:30")
    with pytest.raises(InvalidInput, match="on_dataset="):
        Schedule.create(ws, "s", published.id, "e", datastore=None, polling_interval=5)
