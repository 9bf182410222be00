"""Embedded workspaces: homes, config files and the offline run context."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cumulo import AlreadyExists, ConfigError, Experiment, NotFound, OfflineRun, Run, Workspace


def test_create_get_list_in_one_home(tmp_path: Path) -> None:
    home = tmp_path / "team"
    a = Workspace.create("alpha", home=home)
    Workspace.create("beta", home=home)
    assert (home / "cumulo.db").exists() and (home / "artifacts").is_dir()
    assert [w.name for w in Workspace.list(home=home)] == ["alpha", "beta"]
    assert Workspace.get("alpha", home=home) == a
    with pytest.raises(AlreadyExists, match="exist_ok"):
        Workspace.create("alpha", home=home)
    assert Workspace.create("alpha", home=home, exist_ok=True) == a
    with pytest.raises(NotFound, match="cumulo workspace create gamma"):
        Workspace.get("gamma", home=home)


def test_default_home_comes_from_the_environment(tmp_path: Path) -> None:
    ws = Workspace.create("envhome")
    assert Path(os.environ["CUMULO_HOME"], "cumulo.db").exists()
    assert ws.location.startswith("sqlite:///")


def test_write_config_and_from_config_search_upwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace.create("proj", home=tmp_path / "h")
    file = ws.write_config(tmp_path / "repo")
    assert json.loads(file.read_text())["workspace"] == "proj"
    deep = tmp_path / "repo" / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    found = Workspace.from_config()
    assert found == ws
    assert Workspace.from_config(tmp_path / "repo" / ".cumulo" / "config.json") == ws


def test_from_config_without_a_file_says_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "nowhere"
    empty.mkdir()
    monkeypatch.chdir(empty)
    with pytest.raises(ConfigError, match="write_config"):
        Workspace.from_config()


def test_offline_run_context_prints_and_never_raises(capsys: pytest.CaptureFixture[str]) -> None:
    run = Run.get_context()
    assert isinstance(run, OfflineRun)
    run.log("loss", 0.5)
    run.log_params({"lr": 0.1})
    run.upload_file("x", "/does/not/exist")
    run.complete()
    with run:
        run.tag("a", "b")
    out = capsys.readouterr().out
    assert "[offline run] log('loss', 0.5)" in out
    assert "lr" in out and "upload_file" in out
    assert run.get_metrics() == {}


def test_migration_from_an_empty_database_and_schema_matches(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from cumulo.store.db import Database
    from cumulo.store.tables import metadata

    db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn)
        assert ctx.get_current_revision() is not None
        assert compare_metadata(ctx, metadata) == []
    db.dispose()


@pytest.mark.postgres
def test_migration_on_postgres_matches_the_schema(postgres_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, text

    from cumulo.store.db import Database
    from cumulo.store.tables import metadata

    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE migration_check"))
    admin.dispose()
    db = Database(postgres_url.rsplit("/", 1)[0] + "/migration_check")
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    db.dispose()


def test_experiment_names_are_validated(tmp_path: Path) -> None:
    from cumulo import InvalidInput

    ws = Workspace.create("names")
    with pytest.raises(InvalidInput, match="limit is 500"):
        Experiment(ws, "x" * 501)
    with pytest.raises(InvalidInput, match="non-empty"):
        Experiment(ws, " ")
