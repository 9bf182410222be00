"""``cumulo dataset ...`` and ``cumulo datastore ...`` over an embedded workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from cumulo import Workspace
from cumulo.cli.main import app

runner = CliRunner()


def cli(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, [*args, "--workspace", "cli-data"])
    assert result.exit_code == code, result.output
    return result.output


def test_dataset_and_datastore_commands(tmp_path: Path) -> None:
    Workspace.create("cli-data")
    pd.DataFrame({"a": range(40), "b": [i % 4 for i in range(40)]}).to_csv(
        tmp_path / "one.csv", index=False
    )
    pd.DataFrame({"a": range(100, 140), "b": [0] * 40}).to_csv(tmp_path / "two.csv", index=False)

    out = cli("dataset", "register", str(tmp_path / "one.csv"), "-n", "t", "--kind", "csv")
    assert "version 1" in out
    assert "version 1" in cli("dataset", "register", str(tmp_path / "one.csv"), "-n", "t",
                              "--kind", "csv")  # fmt: skip
    assert "version 2" in cli("dataset", "register", str(tmp_path / "two.csv"), "-n", "t",
                              "--kind", "csv", "--tag", "day=2")  # fmt: skip
    listed = json.loads(cli("dataset", "list", "--json"))
    assert [(d["name"], d["version"]) for d in listed] == [("t", 2)]
    assert [d["version"] for d in json.loads(cli("dataset", "list", "-n", "t", "--json"))] == [2, 1]
    shown = json.loads(cli("dataset", "show", "t:1", "--json"))
    assert shown["files"][0]["path"] == "one.csv" and shown["runs"] == []
    profile = json.loads(cli("dataset", "profile", "t", "--json"))
    assert profile["rows"] == 40 and profile["column_profiles"]["a"]["min"] == 100
    assert "b" in cli("dataset", "profile", "t:1")
    report = runner.invoke(app, ["dataset", "compare", "t:1", "t:2", "--workspace", "cli-data"])
    assert report.exit_code == 2 and "yes" in report.output  # drift: exit status 2
    cli("dataset", "download", "t:1", "--target", str(tmp_path / "got"))
    assert (tmp_path / "got" / "one.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert "must be a" in cli("dataset", "show", "t:x", code=1)

    (tmp_path / "store" / "in").mkdir(parents=True)
    (tmp_path / "store" / "in" / "x.txt").write_text("x")
    assert "(local)" in cli("datastore", "register", "land", "--path", str(tmp_path / "store"))
    stores = json.loads(cli("datastore", "list", "--json"))
    assert [(s["name"], s["is_default"]) for s in stores] == [
        ("workspacestore", True),
        ("land", False),
    ]
    assert "in/x.txt" in cli("datastore", "browse", "land", "in")
    out = cli("dataset", "register", "in", "-n", "files", "--datastore", "land")
    assert "version 1" in out and "1 files" in out
    assert "--bucket" in cli("datastore", "register", "bad", code=1)
