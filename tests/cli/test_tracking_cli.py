"""The tracking commands, through Typer's runner, on SQLite and on PostgreSQL + S3."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cumulo import Experiment, Workspace
from cumulo.cli.main import app
from cumulo.cli.tracking import sparkline

runner = CliRunner()


@pytest.fixture(autouse=True, params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The commands read the store from CUMULO_* variables: a fresh one for each test."""
    if request.param == "postgres":
        from sqlalchemy import create_engine, text

        url = request.getfixturevalue("postgres_url")
        endpoint = request.getfixturevalue("s3_endpoint")
        name = f"cli_{uuid.uuid4().hex[:10]}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        admin.dispose()
        monkeypatch.setenv("CUMULO_DATABASE_URL", url.rsplit("/", 1)[0] + "/" + name)
        monkeypatch.setenv("CUMULO_ARTIFACT_ROOT", f"s3://cumulo/{name}")
        monkeypatch.setenv("CUMULO_S3_ENDPOINT_URL", endpoint)
    return str(request.param)


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Workspace, list[str]]:
    ws = Workspace.create("cli")
    exp = Experiment(ws, "iris")
    ids = []
    for i in range(3):
        with exp.start_logging(display_name=f"run-{i}") as run:
            run.log_params({"c": i})
            for step in range(10):
                run.log("acc", i / 10 + step / 100)
            (tmp_path / f"m{i}.txt").write_text(f"model {i}")
            run.upload_file("outputs/model.txt", tmp_path / f"m{i}.txt")
        ids.append(run.id)
    return ws, ids


def test_workspace_commands(tmp_path: Path, store: str) -> None:
    out = cli("workspace", "create", "team", "--write-config")
    assert "team" in out and (tmp_path / ".cumulo" / "config.json").exists()
    listed = json.loads(cli("workspace", "list", "--json"))
    assert listed[0]["name"] == "team"
    assert listed[0]["location"].startswith("postgresql" if store == "postgres" else "sqlite")
    shown = json.loads(cli("workspace", "show", "--json"))  # found through config.json
    assert shown["name"] == "team" and shown["experiments"][0]["name"] == "Default"


def test_experiment_and_run_listing(seeded: tuple[Workspace, list[str]]) -> None:
    _ws, _ids = seeded
    exps = json.loads(cli("experiment", "list", "-w", "cli", "--json"))
    assert {e["name"]: e["run_count"] for e in exps} == {"Default": 0, "iris": 3}
    rows = json.loads(
        cli(
            "run",
            "list",
            "iris",
            "-w",
            "cli",
            "--filter",
            "metrics.acc > 0.15",
            "--order-by",
            "metrics.acc DESC",
            "--json",
        )
    )
    assert [r["display_name"] for r in rows] == ["run-2", "run-1"]
    table = cli("run", "list", "iris", "-w", "cli", "--limit", "1")
    assert "run-2" in table and "run-0" not in table
    chosen = runner.invoke(
        app,
        ["run", "list", "iris", "-w", "cli", "--columns", "params.c,acc"],
        env={"COLUMNS": "200"},
    ).output
    assert "params.c" in chosen and "0.29" in chosen


def test_run_list_shows_the_metrics_that_fit(seeded: tuple[Workspace, list[str]]) -> None:
    ws, _ids = seeded
    with Experiment(ws, "iris").start_logging() as run:
        run.log_metrics({f"autolog_metric_{i:02d}": float(i) for i in range(30)})
    table = runner.invoke(app, ["run", "list", "iris", "-w", "cli"], env={"COLUMNS": "120"}).output
    assert "more metric(s) not shown: choose with --columns" in table
    assert max(len(line) for line in table.splitlines()) <= 120


def test_run_show_metrics_download_delete(
    seeded: tuple[Workspace, list[str]], tmp_path: Path
) -> None:
    _ws, ids = seeded
    shown = json.loads(cli("run", "show", ids[1], "-w", "cli", "--json"))
    assert shown["params"] == {"c": "1"} and shown["status"] == "Completed"
    assert "run-1" in cli("run", "show", ids[1], "-w", "cli")
    # The short ids tables show are enough, as for every command that takes a run.
    metrics = json.loads(cli("run", "metrics", ids[1][:8], "-w", "cli", "--json"))
    assert len(metrics["series"]["acc"]["value"]) == 10
    assert "▁" in cli("run", "metrics", ids[1], "-w", "cli")
    cli("run", "download", ids[1], "-w", "cli", "--to", str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "outputs" / "model.txt").read_text() == "model 1"
    cli("run", "delete", ids[1], "-w", "cli", "--yes")
    assert len(json.loads(cli("run", "list", "iris", "-w", "cli", "--json"))) == 2


def test_experiment_delete_and_archive(seeded: tuple[Workspace, list[str]]) -> None:
    cli("experiment", "archive", "iris", "-w", "cli")
    assert [e["name"] for e in json.loads(cli("experiment", "list", "-w", "cli", "--json"))] == [
        "Default"
    ]
    cli("experiment", "delete", "iris", "-w", "cli", "--yes")
    assert len(json.loads(cli("experiment", "list", "-w", "cli", "--all", "--json"))) == 1


def test_errors_are_one_clear_line() -> None:
    result = runner.invoke(app, ["run", "show", "abc", "-w", "missing"])
    assert result.exit_code == 1
    assert "RESOURCE_DOES_NOT_EXIST" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["run", "list", "iris"])
    assert result.exit_code == 1 and "--workspace" in result.output


def test_sparkline_shape() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert len(sparkline([float(i) for i in range(1000)], width=20)) == 20
    assert sparkline([float("nan")]) == ""
