"""The model registry through the SDK: versions, aliases, tags, download, lineage, MLflow models.

Runs on every backend of the ``workspace`` fixture (embedded SQLite, embedded
PostgreSQL + S3, and over HTTP to a real ``cumulo server``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.models.conftest import IRIS_COLUMNS, make_script_model

from cumulo import AlreadyExists, Experiment, InvalidInput, Model, NotFound


def test_versions_count_up_and_resolve(workspace, tmp_path: Path) -> None:
    first = Model.register(
        workspace,
        make_script_model(tmp_path / "m1", "v1"),
        "scaler",
        tags={"team": "vision"},
        properties={"accuracy": 0.9},
        description="first try",
        model_framework="Custom",
        datasets=[("training", "digits-v2")],
    )
    second = Model.register(workspace, make_script_model(tmp_path / "m2", "v2"), "scaler")
    assert (first.version, second.version) == (1, 2)
    assert first.tags == {"team": "vision"}
    assert first.properties == {"accuracy": "0.9"}
    assert first.model_framework == "Custom" and first.description == "first try"
    assert first.datasets == [{"scenario": "training", "dataset": "digits-v2"}]
    assert not first.is_mlflow and first.run is None

    assert Model(workspace, "scaler").version == 2  # latest
    assert Model(workspace, "scaler", version=1) == first
    first.set_alias("champion")
    assert Model(workspace, "scaler", alias="champion").version == 1
    second.set_alias("champion")  # an alias moves
    assert Model(workspace, "scaler", alias="champion").version == 2
    assert Model(workspace, "scaler", version=1).aliases == []

    first.add_tags({"stage": "candidate"})
    assert Model.list(workspace, "scaler", tags={"stage": "candidate"}) == [first]
    assert [m.version for m in Model.list(workspace, "scaler")] == [2, 1]
    assert [m.id for m in Model.list(workspace, latest=True)] == ["scaler:2"]
    first.remove_tags(["stage"])
    assert Model.list(workspace, tags={"stage": "candidate"}) == []
    with pytest.raises(InvalidInput, match="reserved"):
        first.add_tags({"cumulo.framework": "x"})
    with pytest.raises(NotFound):
        Model(workspace, "scaler", version=9)
    with pytest.raises(NotFound):
        Model(workspace, "no-such-model")


def test_download_and_delete(workspace, tmp_path: Path) -> None:
    src = make_script_model(tmp_path / "m", "v1")
    (src / "sub").mkdir()
    (src / "sub" / "extra.bin").write_bytes(bytes(range(256)) * 1000)
    model = Model.register(workspace, src, "files")
    assert sorted(model.get_file_names()) == ["sub/extra.bin", "weights.json"]
    out = Path(model.download(tmp_path / "out"))
    assert (out / "sub" / "extra.bin").read_bytes() == (src / "sub" / "extra.bin").read_bytes()
    with pytest.raises(AlreadyExists):
        model.download(tmp_path / "out")
    model.download(tmp_path / "out", exist_ok=True)
    single = Model.register(workspace, src / "weights.json", "files")  # a single file
    assert single.version == 2 and single.get_file_names() == ["weights.json"]
    model.delete()
    with pytest.raises(NotFound):
        Model(workspace, "files", version=1)
    assert Model(workspace, "files").version == 2


def test_register_from_run_keeps_lineage_and_files(workspace, tmp_path: Path) -> None:
    exp = Experiment(workspace, "training")
    with exp.start_logging() as run:
        run.log("accuracy", 0.93)
        weights = make_script_model(tmp_path / "m", "v1")
        run.upload_file("outputs/model/weights.json", weights / "weights.json")
        run.upload_file("outputs/model.pkl", weights / "weights.json")
    folder = run.register_model("from-run", model_path="outputs/model", tags={"k": "v"})
    single = run.register_model("from-run")  # default outputs/model.pkl
    assert folder.run_id == run.id and folder.run == run
    assert folder.experiment_name == "training"
    assert folder.get_file_names() == ["weights.json"]
    assert single.version == 2 and single.get_file_names() == ["model.pkl"]
    assert [m.id for m in Model.list(workspace, run_id=run.id)] == ["from-run:2", "from-run:1"]
    run.delete()  # the registered copy outlives the run
    out = Path(Model(workspace, "from-run", version=1).download(tmp_path / "dl"))
    assert (out / "weights.json").read_text() == (weights / "weights.json").read_text()


def test_mlflow_model_is_recognised(workspace, mlflow_model_dir: Path) -> None:
    model = Model.register(workspace, mlflow_model_dir, "iris")
    assert model.is_mlflow
    assert {"python_function", "sklearn"} <= set(model.flavors)
    assert model.model_framework == "sklearn"
    assert model.signature is not None and IRIS_COLUMNS[0] in model.signature["inputs"]
    assert "MLmodel" in model.get_file_names()
