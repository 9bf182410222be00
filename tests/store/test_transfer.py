"""Workspace export and import: a rich workspace moved between homes and stores, compared
table by table and through the SDK; what is refused, and that a failed import leaves
nothing behind."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Integer, select
from typer.testing import CliRunner

from cumulo import Dataset, Experiment, ScriptRunConfig, Workspace
from cumulo.cli.main import app
from cumulo.core.errors import Conflict, InvalidInput, InvalidState
from cumulo.core.settings import Settings
from cumulo.sdk.endpoints import Endpoint
from cumulo.sdk.models import Model
from cumulo.sdk.pipelines import Pipeline, PipelineParameter, PythonScriptStep, Schedule
from cumulo.services.context import open_services
from cumulo.store import transfer
from cumulo.store.artifacts import ArtifactStore
from cumulo.store.db import Database, migration_head
from cumulo.store.jobs import JobStore
from cumulo.store.tables import metadata


class Store:
    """A metadata database and artifact root, as the CLI opens them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self.artifacts = ArtifactStore(settings.artifact_root, settings.s3_endpoint_url)

    def workspace(self, name: str) -> Workspace:
        s = self.settings
        return Workspace.get(
            name, home=s.home, database_url=s.database_url, artifact_root=s.artifact_root
        )

    def workspace_names(self) -> set[str]:
        ws = metadata.tables["workspaces"]
        with self.db.transaction(write=False) as conn:
            return set(conn.execute(select(ws.c.name)).scalars())


def build_source(root: Path) -> tuple[Store, str]:
    """A workspace with runs, metrics, artifacts, models, datasets and an endpoint."""
    store = Store(Settings.load(home=root / "home-a"))
    name = f"lab-{uuid.uuid4().hex[:6]}"
    ws = Workspace.create(name, home=store.settings.home)
    exp = Experiment(ws, "train")
    run = exp.start_logging(display_name="first")
    run.log_params({"lr": 0.1, "layers": 3})
    for step in range(20):
        run.log("loss", 1.0 / (step + 1), step=step)
    run.log("odd", float("nan"))
    run.log("big", float("inf"))
    run.log_row("table", a=1, b="x")
    run.tag("stage", "dev")
    files = root / "files"
    (files / "model").mkdir(parents=True)
    (files / "model" / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
    )
    (files / "model" / "weights.bin").write_bytes(bytes(range(256)) * 40)
    run.upload_folder("outputs/model", str(files / "model"))
    child = run.child_run("child")
    child.log("acc", 0.5, step=1)
    child.complete()
    run.complete()
    registered = run.register_model("clf", model_path="outputs/model", tags={"k": "v"})
    registered.set_alias("champion")
    Model.register(ws, files / "model" / "weights.bin", "raw-weights", description="direct")
    (files / "data").mkdir()
    (files / "data" / "a.csv").write_text("x,y\n1,2\n")
    Dataset.File.from_files(files / "data").register(ws, "table")
    (files / "data" / "a.csv").write_text("x,y\n1,2\n3,4\n")
    Dataset.File.from_files(files / "data").register(ws, "table", tags={"v": "2"})
    Endpoint.create(ws, "scorer", description="the scorer")
    ws.transport.endpoints.create_deployment(
        name, "scorer", "blue", [{"name": "clf", "version": registered.version}], {}
    )
    (files / "steps").mkdir()
    (files / "steps" / "noop.py").write_text("print('tick')\n")
    step = PythonScriptStep("only", "noop.py", files / "steps", ["--x", PipelineParameter("x", 1)])
    published = Pipeline(ws, [step]).publish("nightly", description="one step")
    Schedule.create(ws, "yearly", published.id, "scheduled", cron="0 3 1 1 *").disable()
    open_services(store.settings).auth.create_token(name, "reader", "a reader")
    return store, name


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("transfer")


@pytest.fixture(scope="module")
def source(root: Path) -> Iterator[tuple[Store, str, Path]]:
    mp = pytest.MonkeyPatch()
    mp.setenv("CUMULO_HOME", str(root / "home-a"))
    try:
        store, name = build_source(root)
        folder = root / "export"
        transfer.export_workspace(store.db, store.artifacts, name, folder)
        yield store, name, folder
    finally:
        mp.undo()


# ------------------------------------------------------------------ comparison
def table_rows(folder: Path, workspace: str) -> dict[str, list[str]]:
    """Each table's rows of an export, without the ids a store gives (numeric ids and
    references to them), with the workspace's name as ``<ws>``, sorted."""
    refs = transfer.references()
    numeric = {t.name for t in metadata.tables.values() if transfer._numeric_id(t) is not None}
    out = {}
    for table in transfer.exported_tables():
        rows = []
        for line in (folder / "tables" / f"{table.name}.jsonl").read_text().splitlines():
            row: dict[str, Any] = json.loads(line)
            for column in list(row):
                is_id = column == "id" and table.name in numeric
                if is_id or refs.get((table.name, column)) in numeric:
                    del row[column]
            rows.append(json.dumps(row, sort_keys=True).replace(f'"{workspace}/', '"<ws>/'))
        out[table.name] = sorted(rows)
    return out


def sdk_view(ws: Workspace) -> dict[str, Any]:
    """What a user sees of the workspace through the SDK, ids and bytes included."""
    view: dict[str, Any] = {
        "runs": {},
        "models": {},
        "datasets": {},
        "endpoints": {},
        "schedules": {},
    }
    for exp in Experiment.list(ws):
        for run in exp.get_runs(include_children=True):
            artifacts = {}
            for path in run.get_file_names():
                target = Path(f"dl-{uuid.uuid4().hex[:6]}")
                run.download_file(path, str(target))
                artifacts[path] = target.read_bytes()
            details = run.get_details()
            view["runs"][run.id] = {
                "experiment": exp.name,
                "parent": details.pop("parentRunId"),
                "details": {k: v for k, v in details.items() if k not in ("runId", "workspace")},
                "metrics": {  # as JSON: NaN equals NaN there
                    k: json.dumps(run.get_metric_history(k)) for k in sorted(run.get_metrics())
                },
                "artifacts": artifacts,
            }
    for model in Model.list(ws):
        folder = Path(model.download(f"m-{uuid.uuid4().hex[:6]}"))
        files = {
            str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()
        }
        view["models"][(model.name, model.version)] = {
            "tags": model.tags,
            "aliases": model.aliases,
            "run_id": model.run_id,
            "files": files,
        }
    for version in Dataset.get_versions(ws, "table"):
        target = Path(f"d-{uuid.uuid4().hex[:6]}")
        paths = version.download(target)
        view["datasets"][version.version] = sorted(Path(p).read_bytes() for p in paths)
    for schedule in Schedule.list(ws):
        info = schedule.info
        view["schedules"][schedule.name] = (info.pipeline_id, info.rule, info.enabled)
    for ep in Endpoint.list(ws):
        view["endpoints"][ep.name] = {
            "description": ep.info.description,
            "traffic": ep.traffic,
            "deployments": {n: (d.models, d.spec) for n, d in ep.deployments.items()},
        }
    return view


# ------------------------------------------------------------------ the tests
def test_every_table_is_exported_or_excluded() -> None:
    exported = {t.name for t in transfer.exported_tables()}
    assert exported | set(transfer.EXCLUDED) | {"workspaces"} == set(metadata.tables)
    assert not exported & set(transfer.EXCLUDED)
    refs = transfer.references()
    for table in transfer.exported_tables():
        transfer.scope_column(table)  # raises for a table no row of which leads to a workspace
        for column in table.columns:
            if column.name.endswith("_id") and isinstance(column.type, Integer):
                assert (table.name, column.name) in refs, f"{table.name}.{column.name}"


def test_manifest_counts_checksums_and_no_credentials(source: tuple[Store, str, Path]) -> None:
    _store, name, folder = source
    manifest = transfer.read_manifest(folder)
    assert manifest["workspace"]["name"] == name
    assert manifest["store_revision"] == migration_head()
    assert manifest["tables"]["runs"]["rows"] == 2
    assert manifest["tables"]["model_versions"]["rows"] == 2
    assert manifest["tables"]["dataset_versions"]["rows"] == 2
    assert manifest["tables"]["published_pipelines"]["rows"] == 1
    assert manifest["tables"]["pipeline_schedules"]["rows"] == 1
    assert manifest["artifacts"]["files"] == len(
        (folder / "artifacts.jsonl").read_text().splitlines()
    )
    for table, entry in manifest["tables"].items():
        lines = (folder / "tables" / f"{table}.jsonl").read_text().splitlines()
        assert len(lines) == entry["rows"]
    assert not (folder / "tables" / "auth_tokens.jsonl").exists()
    assert "auth_tokens" in manifest["excluded"]
    endpoint = json.loads((folder / "tables" / "endpoints.jsonl").read_text())
    assert endpoint["primary_key"] == endpoint["secondary_key"] == ""


def test_round_trip_to_another_home(
    source: tuple[Store, str, Path], root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_a, name, folder = source
    store_b = Store(Settings.load(home=root / "home-b"))
    done = transfer.import_workspace(store_b.db, store_b.artifacts, folder)
    assert done.workspace == name and not done.renamed_ids
    again = root / "export-b"
    transfer.export_workspace(store_b.db, store_b.artifacts, name, again)
    assert table_rows(again, name) == table_rows(folder, name)
    assert (again / "artifacts.jsonl").read_text() == (folder / "artifacts.jsonl").read_text()

    view_a = sdk_view(store_a.workspace(name))
    view_b = sdk_view(store_b.workspace(name))
    assert view_b == view_a
    run = next(r for r in view_b["runs"].values() if r["details"]["number"] == 1)
    assert json.loads(run["metrics"]["loss"])["step"] == list(range(20))
    assert run["artifacts"]["outputs/model/weights.bin"] == bytes(range(256)) * 40
    ep = store_b.workspace(name).transport.endpoints.get_endpoint(name, "scorer")
    assert ep.deployments[0].state == "Creating"
    keys_a = Endpoint(store_a.workspace(name), "scorer").get_keys()
    keys_b = Endpoint(store_b.workspace(name), "scorer").get_keys()
    assert all(keys_b) and not set(keys_a) & set(keys_b)
    tokens = metadata.tables["auth_tokens"]
    with store_b.db.transaction(write=False) as conn:
        assert conn.execute(select(tokens.c.id).where(tokens.c.workspace == name)).first() is None


def test_copy_next_to_its_original_gets_new_run_ids(source: tuple[Store, str, Path]) -> None:
    store, name, folder = source
    with pytest.raises(Conflict, match="already exists"):
        transfer.import_workspace(store.db, store.artifacts, folder)
    done = transfer.import_workspace(store.db, store.artifacts, folder, name=f"{name}-copy")
    original, copy = sdk_view(store.workspace(name)), sdk_view(store.workspace(f"{name}-copy"))
    new_ids = done.renamed_ids
    (pipeline_id, rule, enabled), *_ = original["schedules"].values()
    assert set(new_ids) == {*original["runs"], pipeline_id}
    assert copy["schedules"]["yearly"] == (new_ids[pipeline_id], rule, enabled)
    for old_id, seen in original["runs"].items():
        parent = new_ids[seen["parent"]] if seen["parent"] else None
        assert copy["runs"][new_ids[old_id]] == {**seen, "parent": parent}
    for key, model in original["models"].items():
        run_id = new_ids[model["run_id"]] if model["run_id"] else None
        assert copy["models"][key] == {**model, "run_id": run_id}


@pytest.mark.slow
def test_an_s3_artifact_root_exports_and_imports(
    source: tuple[Store, str, Path], root: Path, s3_endpoint: str
) -> None:
    _store, name, folder = source
    settings = Settings.load(
        home=root / "home-s3",
        artifact_root=f"s3://cumulo/{uuid.uuid4().hex[:8]}",
        environ={"CUMULO_S3_ENDPOINT_URL": s3_endpoint},
    )
    s3 = Store(settings)
    done = transfer.import_workspace(s3.db, s3.artifacts, folder)
    assert done.files == transfer.read_manifest(folder)["artifacts"]["files"] > 0
    again = root / "export-s3"
    transfer.export_workspace(s3.db, s3.artifacts, name, again)
    assert (again / "artifacts.jsonl").read_text() == (folder / "artifacts.jsonl").read_text()
    assert table_rows(again, name) == table_rows(folder, name)
    key = next(f.path for f in s3.artifacts.find(name, "") if f.path.endswith("weights.bin"))
    with s3.artifacts.open(name, key) as fh:
        assert fh.read() == bytes(range(256)) * 40


def test_damaged_or_newer_exports_are_refused(source: tuple[Store, str, Path], root: Path) -> None:
    store, _name, folder = source
    before = store.workspace_names()
    newer = root / "newer"
    shutil.copytree(folder, newer)
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["store_revision"] = "9999"
    (newer / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidInput, match="upgrade Cumulo"):
        transfer.import_workspace(store.db, store.artifacts, newer, name="newer")
    damaged = root / "damaged"
    shutil.copytree(folder, damaged)
    with open(damaged / "tables" / "params.jsonl", "a") as fh:
        fh.write('{"run_id": "x", "key": "k", "value": "v"}\n')
    with pytest.raises(InvalidInput, match="damaged"):
        transfer.import_workspace(store.db, store.artifacts, damaged, name="damaged")
    assert store.workspace_names() == before


def test_an_export_of_an_older_store_revision_is_read(
    source: tuple[Store, str, Path], root: Path
) -> None:
    _store, name, folder = source
    older = root / "older"
    shutil.copytree(folder, older)
    # As revision 0013 wrote it: schedules without the columns 0014 added, and a column
    # that a later revision dropped.
    path = older / "tables" / "pipeline_schedules.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        assert row.pop("on_dataset") is None and row.pop("dataset_version") is None
        row["retired"] = "x"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = json.loads((older / "manifest.json").read_text())
    manifest["store_revision"] = "0013"
    manifest["tables"]["pipeline_schedules"]["sha256"] = transfer._sha256_file(path)
    (older / "manifest.json").write_text(json.dumps(manifest))

    target = Store(Settings.load(home=root / "home-older"))
    done = transfer.import_workspace(target.db, target.artifacts, older)
    assert done.rows["pipeline_schedules"] == len(rows) == 1
    (schedule,) = Schedule.list(target.workspace(name))
    assert schedule.name == "yearly" and schedule.info.enabled is False


def test_failure_midway_leaves_the_target_untouched(
    source: tuple[Store, str, Path], root: Path
) -> None:
    _store, _name, folder = source
    broken = root / "broken"
    shutil.copytree(folder, broken)
    # A row late in the order that the database refuses (a tag without a value), with
    # checksums that match: the artifacts are copied and most rows inserted first.
    path = broken / "tables" / "model_version_tags.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["value"] = None
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["tables"]["model_version_tags"]["sha256"] = transfer._sha256_file(path)
    (broken / "manifest.json").write_text(json.dumps(manifest))

    target = Store(Settings.load(home=root / "home-broken"))
    before = target.workspace_names()
    with pytest.raises(Conflict):
        transfer.import_workspace(target.db, target.artifacts, broken, name="restored")
    assert target.workspace_names() == before
    assert target.artifacts.find("restored", "") == []
    with target.db.transaction(write=False) as conn:
        for table in transfer.exported_tables():
            assert conn.execute(select(table)).first() is None, table.name


def test_unfinished_jobs_refuse_the_export_unless_forced(
    source: tuple[Store, str, Path], root: Path
) -> None:
    store, name, _folder = source
    ws = Workspace.create(f"{name}-busy", home=store.settings.home)
    run = Experiment(ws, "queue").start_logging()
    JobStore(store.db).create_job(
        ws.name, run.id, target="local", kind="script", config={"script": "x.py"}
    )
    with pytest.raises(InvalidState, match="--force"):
        transfer.export_workspace(store.db, store.artifacts, ws.name, root / "busy")
    assert not (root / "busy").exists()
    done = transfer.export_workspace(store.db, store.artifacts, ws.name, root / "busy", force=True)
    assert done.interrupted_runs == [run.id]
    runs = [json.loads(x) for x in (root / "busy/tables/runs.jsonl").read_text().splitlines()]
    assert runs[0]["status"] == "Canceled" and "exported" in runs[0]["error"]
    job = json.loads((root / "busy/tables/jobs.jsonl").read_text())
    assert job["state"] == "done"
    assert store.workspace(ws.name).get_run(run.id).get_status() == "Running"


def test_a_forced_export_ends_the_steps_and_trials_of_interrupted_work(
    source: tuple[Store, str, Path], root: Path
) -> None:
    store, name, _folder = source
    ws = Workspace.create(f"{name}-driven", home=store.settings.home)
    exp = Experiment(ws, "driven")
    pipeline, sweep = exp.start_logging(), exp.start_logging()
    t = metadata.tables
    with store.db.transaction() as conn:
        ws_id, exp_id = conn.execute(
            select(t["experiments"].c.workspace_id, t["experiments"].c.id).where(
                t["experiments"].c.name == "driven"
            )
        ).one()
        common = {"workspace_id": ws_id, "experiment_id": exp_id, "created_at": 1}
        pr_id = conn.execute(
            t["pipeline_runs"]
            .insert()
            .values(
                run_id=pipeline.id,
                spec="{}",
                parameters="{}",
                template="{}",
                state="running",
                updated_at=1,
                **common,
            )
            .returning(t["pipeline_runs"].c.id)
        ).scalar_one()
        for position, state in enumerate(["completed", "running", "waiting"]):
            conn.execute(
                t["pipeline_steps"]
                .insert()
                .values(
                    pipeline_run_id=pr_id,
                    workspace_id=ws_id,
                    experiment_id=exp_id,
                    position=position,
                    name=f"s{position}",
                    state=state,
                    reason="",
                )
            )
        sweep_id = conn.execute(
            t["sweeps"]
            .insert()
            .values(
                run_id=sweep.id,
                spec="{}",
                job_config="{}",
                state="running",
                updated_at=1,
                **common,
            )
            .returning(t["sweeps"].c.id)
        ).scalar_one()
        for number, state in enumerate(["completed", "submitted", "claimed"]):
            conn.execute(
                t["sweep_trials"]
                .insert()
                .values(
                    sweep_id=sweep_id,
                    number=number,
                    params="{}",
                    internal="{}",
                    system_attrs="{}",
                    state=state,
                    created_at=1,
                )
            )
    folder = root / "driven"
    done = transfer.export_workspace(store.db, store.artifacts, ws.name, folder, force=True)
    assert done.interrupted_runs == sorted([pipeline.id, sweep.id])

    def rows(table: str) -> list[dict[str, Any]]:
        lines = (folder / "tables" / f"{table}.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    assert [r["state"] for r in rows("pipeline_runs")] == ["done"]
    steps = rows("pipeline_steps")
    assert [s["state"] for s in steps] == ["completed", "canceled", "canceled"]
    assert all(s["ended_at"] and "exported" in s["reason"] for s in steps[1:])
    assert [r["state"] for r in rows("sweeps")] == ["done"]
    assert [r["state"] for r in rows("sweep_trials")] == ["completed", "failed", "failed"]


def test_cli_export_and_import(source: tuple[Store, str, Path], root: Path) -> None:
    store, name, _folder = source
    runner = CliRunner()
    home_a, home_c = str(store.settings.home), str(root / "home-c")
    out = runner.invoke(
        app, ["workspace", "export", str(root / "cli"), "-w", name, "--home", home_a]
    )
    assert out.exit_code == 0, out.output
    assert "Exported workspace" in out.output
    out = runner.invoke(
        app, ["workspace", "import", str(root / "cli"), "--name", "moved", "--home", home_c]
    )
    assert out.exit_code == 0, out.output
    out = runner.invoke(
        app, ["workspace", "import", str(root / "cli"), "--name", "moved", "--home", home_c]
    )
    assert out.exit_code == 1 and "already exists" in out.output
    # The way out it names is one there is: Cumulo has no command that deletes a workspace.
    assert "--name" in out.output and "delete" not in out.output


@pytest.mark.slow
def test_a_finished_job_travels_with_its_logs_and_snapshot(tmp_path: Path) -> None:
    source = Store(Settings.load(home=tmp_path / "job-home"))
    ws = Workspace.create("jobs", home=source.settings.home)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "hello.py").write_text("print('hello from the job')\n")
    run = Experiment(ws, "jobs").submit(ScriptRunConfig(tmp_path / "src", "hello.py"))
    assert run.wait_for_completion(show_output=False)["status"] == "Completed"
    folder = tmp_path / "export"
    done = transfer.export_workspace(source.db, source.artifacts, "jobs", folder)
    assert done.rows["jobs"] == 1 and done.rows["job_logs"] >= 1 and done.rows["snapshots"] == 1

    target = Store(Settings.load(home=tmp_path / "other-home"))
    transfer.import_workspace(target.db, target.artifacts, folder, name="jobs-moved")
    moved = target.workspace("jobs-moved").get_run(run.id)
    assert moved.get_status() == "Completed"
    assert "hello from the job" in moved.get_logs()
    snapshot = moved.restore_snapshot(tmp_path / "restored")
    assert (snapshot / "hello.py").read_text() == "print('hello from the job')\n"


@pytest.mark.slow
@pytest.mark.postgres
def test_sqlite_to_postgres_and_back(
    source: tuple[Store, str, Path], root: Path, postgres_url: str
) -> None:
    _store, name, folder = source
    pg = Store(Settings.load(home=root / "home-pg", database_url=postgres_url))
    transfer.import_workspace(pg.db, pg.artifacts, folder)
    from_pg = root / "export-pg"
    transfer.export_workspace(pg.db, pg.artifacts, name, from_pg)
    assert table_rows(from_pg, name) == table_rows(folder, name)
    back = Store(Settings.load(home=root / "home-back"))
    transfer.import_workspace(back.db, back.artifacts, from_pg, name="back")
    assert sdk_view(back.workspace("back")) == sdk_view(pg.workspace(name))
