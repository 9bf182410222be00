"""The registry service and its stores, on SQLite + a local folder and PostgreSQL + S3."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Table

from cumulo.core.entities import DatasetInput, ModelMetric
from cumulo.core.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from cumulo.core.search import Clause, OrderBy
from cumulo.core.settings import Settings
from cumulo.services.context import Services, open_services
from cumulo.store import schema_registry
from cumulo.store.tables import metadata

MLMODEL = """\
artifact_path: model
flavors:
  python_function: {loader_module: mlflow.sklearn, model_path: model.pkl}
  sklearn: {pickled_model: model.pkl, sklearn_version: 1.9.1}
signature:
  inputs: '[{"type": "double", "name": "x", "required": true}]'
  outputs: '[{"type": "long"}]'
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Services, str]:
    if request.param == "sqlite":
        settings = Settings.load(home=tmp_path / "home", environ={})
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        settings = Settings.load(
            home=tmp_path / "home",
            database_url=request.getfixturevalue("postgres_url"),
            artifact_root=f"s3://cumulo/{uuid.uuid4().hex[:8]}",
            environ={"CUMULO_S3_ENDPOINT_URL": endpoint},
        )
    services = open_services(settings)
    workspace = f"ws-{uuid.uuid4().hex[:8]}"
    services.tracking.create_workspace(workspace)
    return services, workspace


def _run_with_model(services: Services, workspace: str) -> str:
    exp = services.tracking.get_or_create_experiment(workspace, "train")
    run = services.tracking.create_run(workspace, exp.id)
    put = services.tracking.upload_artifact
    put(workspace, run.id, "model/MLmodel", io.BytesIO(MLMODEL.encode()))
    put(workspace, run.id, "model/model.pkl", io.BytesIO(b"\x80pickle"))
    put(workspace, run.id, "model/extra/notes.txt", io.BytesIO(b"notes"))
    return run.id


def test_a_version_has_its_own_files(env: tuple[Services, str], tmp_path: Path) -> None:
    services, ws = env
    registry = services.registry
    run_id = _run_with_model(services, ws)
    registry.create_model(ws, "iris", tags={"team": "a"})
    v = registry.create_version(ws, "iris", run_id=run_id, path="model")
    assert (v.version, v.status, v.run_id) == (1, "READY", run_id)
    assert v.storage_prefix == f"{ws}/models/iris/1"
    assert v.framework == "sklearn" and set(v.flavors) == {"python_function", "sklearn"}
    assert v.signature is not None and "double" in v.signature["inputs"]
    names = [f.path for f in registry.list_version_files(ws, "iris", 1, recursive=True)]
    assert names == ["MLmodel", "extra/notes.txt", "model.pkl"]

    services.tracking.delete_run(ws, run_id)  # for good, files included
    with registry.open_version_file(ws, "iris", 1, "model.pkl") as fh:
        assert fh.read() == b"\x80pickle"
    got = registry.download_version(ws, "iris", 1, tmp_path / "dl")
    assert sorted(p.relative_to(tmp_path / "dl").as_posix() for p in got) == names
    assert (tmp_path / "dl" / "extra" / "notes.txt").read_text() == "notes"

    # A single file registers under its own name.
    run2 = _run_with_model(services, ws)
    single = registry.create_version(ws, "iris", source=f"runs:/{run2}/model/model.pkl")
    assert [f.path for f in registry.list_version_files(ws, "iris", single.version)] == [
        "model.pkl"
    ]


def test_failed_registration_is_recorded(env: tuple[Services, str]) -> None:
    services, ws = env
    run_id = _run_with_model(services, ws)
    services.registry.create_model(ws, "m")
    with pytest.raises(NotFound):
        services.registry.create_version(ws, "m", source=f"runs:/{run_id}/nothing")
    failed = services.registry.get_version(ws, "m", 1)
    assert failed.status == "FAILED" and "no model files" in failed.status_message
    with pytest.raises(InvalidInput):
        services.registry.create_version(ws, "m")  # no files named at all
    with pytest.raises(InvalidInput):
        services.registry.create_model(ws, "a/b")
    with pytest.raises(AlreadyExists):
        services.registry.create_model(ws, "m")


def test_numbering_aliases_stages_and_deletes(env: tuple[Services, str], tmp_path: Path) -> None:
    services, ws = env
    registry = services.registry
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"w")
    registry.create_model(ws, "m")
    for _ in range(3):
        registry.create_version(ws, "m", local_dir=folder)
    assert registry.resolve_version(ws, "m").version == 3
    registry.set_alias(ws, "m", "champion", 2)
    registry.set_alias(ws, "m", "champion", 1)  # moves
    assert registry.resolve_version(ws, "m", alias="champion").version == 1
    assert registry.get_model(ws, "m").aliases == {"champion": 1}
    with pytest.raises(InvalidInput):
        registry.set_alias(ws, "m", "v3", 3)
    with pytest.raises(NotFound):
        registry.set_alias(ws, "m", "ghost", 9)

    registry.transition_stage(ws, "m", 1, "production")
    registry.transition_stage(ws, "m", 3, "Production", archive_existing=True)
    stages = {v.version: v.stage for v in registry.search_versions(ws)[0]}
    assert stages == {1: "Archived", 2: "None", 3: "Production"}
    latest = registry.latest_versions(ws, "m")
    assert [(v.stage, v.version) for v in latest] == [
        ("Archived", 1),
        ("None", 2),
        ("Production", 3),
    ]
    assert [v.version for v in registry.latest_versions(ws, "m", ["production"])] == [3]
    assert [v.version for v in registry.get_model(ws, "m").latest_versions] == [1, 2, 3]

    registry.delete_version(ws, "m", 1)
    assert registry.get_model(ws, "m").aliases == {}  # the alias went with its version
    assert not services.tracking.artifacts.exists(f"{ws}/models/m/1", "")
    assert registry.create_version(ws, "m", local_dir=folder).version == 4
    prefixes = [v.storage_prefix or "" for v in registry.search_versions(ws)[0]]
    assert len(prefixes) == 3 and all(services.tracking.artifacts.exists(p, "") for p in prefixes)
    registry.delete_model(ws, "m")
    assert not any(services.tracking.artifacts.exists(p, "") for p in prefixes)
    with pytest.raises(NotFound):
        registry.get_model(ws, "m")


def test_rename_keeps_files_and_frees_the_name(env: tuple[Services, str], tmp_path: Path) -> None:
    services, ws = env
    registry = services.registry
    (tmp_path / "a.txt").write_text("first")
    registry.create_model(ws, "old")
    registry.create_version(ws, "old", local_dir=tmp_path / "a.txt")
    registry.rename_model(ws, "old", "new")
    (tmp_path / "a.txt").write_text("second")
    registry.create_model(ws, "old")
    again = registry.create_version(ws, "old", local_dir=tmp_path / "a.txt")
    assert again.storage_prefix != registry.get_version(ws, "new", 1).storage_prefix
    with registry.open_version_file(ws, "new", 1, "a.txt") as fh:
        assert fh.read() == b"first"
    with registry.open_version_file(ws, "old", 1, "a.txt") as fh:
        assert fh.read() == b"second"
    with pytest.raises(AlreadyExists):
        registry.rename_model(ws, "new", "old")


def test_search_in_sql(env: tuple[Services, str], tmp_path: Path) -> None:
    services, ws = env
    registry = services.registry
    (tmp_path / "f").write_text("x")
    for i, name in enumerate(["alpha", "beta", "gamma", "Alphabet"]):
        registry.create_model(ws, name, tags={"team": "vision" if i % 2 else "speech"})
        for _ in range(i + 1):
            registry.create_version(ws, name, local_dir=tmp_path / "f", tags={"n": str(i)})
    registry.set_model_tag(ws, "gamma", "mlflow.prompt.is_prompt", "true")

    def models(*clauses: Clause, order: tuple[OrderBy, ...] = ()) -> list[str]:
        found, _ = registry.search_models(ws, clauses, order)
        return [m.name for m in found]

    assert models(Clause("attribute", "name", "LIKE", "alpha%")) == ["alpha"]
    assert models(Clause("attribute", "name", "ILIKE", "alpha%")) == ["Alphabet", "alpha"]
    assert models(Clause("tag", "team", "=", "vision")) == ["Alphabet", "beta"]
    # Models without the tag count as "not equal": the MLflow client's prompt filter.
    assert models(Clause("tag", "mlflow.prompt.is_prompt", "!=", "true")) == [
        "Alphabet",
        "alpha",
        "beta",
    ]
    assert models(
        Clause("attribute", "name", "IN", ("beta", "gamma")),
        order=(OrderBy("attribute", "name", False),),
    ) == ["gamma", "beta"]
    names, token = registry.search_models(ws, (), (), max_results=3)
    rest, end = registry.search_models(ws, (), (), max_results=3, page_token=token)
    assert len(names) == 3 and token and end is None
    assert {m.name for m in names + rest} == {"alpha", "beta", "gamma", "Alphabet"}

    versions, _ = registry.search_versions(
        ws,
        [Clause("attribute", "name", "=", "Alphabet"), Clause("attribute", "version", ">", 2)],
    )
    assert [v.version for v in versions] == [4, 3]
    tagged, _ = registry.search_versions(ws, [Clause("tag", "n", "=", "2")])
    assert {(v.name, v.version) for v in tagged} == {("gamma", 1), ("gamma", 2), ("gamma", 3)}
    with pytest.raises(InvalidInput):
        registry.search_versions(ws, [Clause("attribute", "color", "=", "red")])
    assert registry.list_models(ws, tags={"team": "speech"})[0].name == "alpha"


def test_logged_models_and_lineage(env: tuple[Services, str]) -> None:
    services, ws = env
    registry = services.registry
    exp = services.tracking.get_or_create_experiment(ws, "train")
    run = services.tracking.create_run(ws, exp.id)
    logged = registry.create_logged_model(
        ws, exp.id, name="model", source_run_id=run.id, params={"C": 1}, tags={"t": "1"}
    )
    assert logged.id.startswith("m-") and logged.status == "PENDING"
    registry.upload_logged_model_file(ws, logged.id, "MLmodel", io.BytesIO(MLMODEL.encode()))
    registry.log_logged_model_params(ws, logged.id, {"C": "1", "D": "2"})
    with pytest.raises(Conflict):
        registry.log_logged_model_params(ws, logged.id, {"C": "3"})
    registry.set_logged_model_tags(ws, logged.id, {"u": "2"})
    registry.delete_logged_model_tag(ws, logged.id, "t")
    registry.log_logged_model_metrics(ws, logged.id, [ModelMetric("acc", 0.9, 0, 5, run.id)])
    done = registry.finalize_logged_model(ws, logged.id, "READY")
    assert (
        done.status == "READY" and done.params == {"C": "1", "D": "2"} and done.tags == {"u": "2"}
    )
    assert [(m.key, m.value, m.run_id) for m in done.metrics] == [("acc", 0.9, run.id)]

    found, _ = registry.search_logged_models(
        ws, [exp.id], [Clause("attribute", "name", "=", "model"), Clause("param", "D", "=", "2")]
    )
    assert [m.id for m in found] == [logged.id]

    registry.create_model(ws, "from-logged")
    version = registry.create_version(ws, "from-logged", source=f"models:/{logged.id}")
    assert version.logged_model_id == logged.id and version.run_id == run.id
    assert version.framework == "sklearn"
    assert registry.get_logged_model(ws, logged.id).registrations == [
        {"name": "from-logged", "version": 1}
    ]

    registry.log_outputs(ws, run.id, [(logged.id, 3)])
    registry.log_inputs(ws, run.id, [DatasetInput("iris", "abc123", tags={"context": "train"})])
    registry.log_inputs(ws, run.id, [DatasetInput("iris", "abc123", tags={"context": "eval"})])
    lineage = registry.lineage(ws, [run.id])[run.id]
    assert lineage.model_outputs == [(logged.id, 3)]
    assert [(d.name, d.tags) for d in lineage.datasets] == [("iris", {"context": "eval"})]

    other = f"other-{uuid.uuid4().hex[:6]}"
    services.tracking.create_workspace(other)
    with pytest.raises(NotFound):
        registry.get_logged_model(other, logged.id)
    with pytest.raises(NotFound):
        registry.version_by_prefix(other, version.storage_prefix or "")
    assert registry.lineage(other, [run.id])[run.id].model_outputs == []

    registry.delete_logged_model(ws, logged.id)
    with pytest.raises(NotFound):
        registry.get_logged_model(ws, logged.id)
    assert registry.get_logged_model(ws, logged.id, allow_deleted=True).deleted
    with registry.open_version_file(ws, "from-logged", 1, "MLmodel") as fh:
        assert b"sklearn" in fh.read()


def test_a_run_of_another_workspace_is_named_never_read(env: tuple[Services, str]) -> None:
    """Run ids a version or a logged model names are recorded without a lookup (as MLflow
    does); a run of another workspace lends them neither its files nor a link."""
    services, ws = env
    registry = services.registry
    other = f"other-{uuid.uuid4().hex[:6]}"
    services.tracking.create_workspace(other)
    theirs = _run_with_model(services, other)

    registry.create_model(ws, "borrowed")
    version = registry.create_version(ws, "borrowed", source=f"runs:/{theirs}/model", run_id=theirs)
    assert version.run_id == theirs and version.storage_prefix is None
    assert registry.list_version_files(ws, "borrowed", version.version) == []
    assert registry.download_location(ws, "borrowed", version.version) == (
        f"runs:/{theirs}/model",
        False,
    )
    with pytest.raises(NotFound):
        registry.open_version_file(ws, "borrowed", version.version, "model/MLmodel")
    with pytest.raises(NotFound):  # a run id with a path means files here: looked up
        registry.create_version(ws, "borrowed", run_id=theirs, path="model")

    exp = services.tracking.get_or_create_experiment(ws, "train")
    logged = registry.create_logged_model(ws, exp.id, name="m", source_run_id=theirs)
    assert registry.get_logged_model(ws, logged.id).source_run_id == theirs
    with pytest.raises(NotFound):  # a parent is a link: it must be a run of this workspace
        services.tracking.create_run(ws, exp.id, parent_id=theirs)


def test_migration_creates_the_registry_tables(tmp_path: Path) -> None:
    services = open_services(Settings.load(home=tmp_path / "home", environ={}))
    tables = [v for v in vars(schema_registry).values() if isinstance(v, Table)]
    mine = {t.name for t in tables}
    assert len(mine) == 11

    def ours(obj: Any, _name: Any, type_: str, _reflected: bool, _other: Any) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is not None and table.name in mine

    with services.database.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": ours})
        assert compare_metadata(ctx, metadata) == []
