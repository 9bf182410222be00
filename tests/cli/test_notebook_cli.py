"""``cumulo notebook`` puts the workspace's config where the notebooks are."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cumulo import Workspace
from cumulo.cli.main import app


@pytest.mark.skipif(
    importlib.util.find_spec("jupyterlab") is not None, reason="JupyterLab would start"
)
def test_notebook_writes_the_config_and_names_what_is_missing(tmp_path: Path) -> None:
    Workspace.create("nb")
    result = CliRunner().invoke(app, ["notebook", "--dir", str(tmp_path / "nbs"), "-w", "nb"])
    assert result.exit_code == 1
    assert "pip install jupyterlab" in " ".join(result.output.split())
    config = json.loads((tmp_path / "nbs" / ".cumulo" / "config.json").read_text())
    assert config["workspace"] == "nb"
    assert Workspace.from_config(tmp_path / "nbs").name == "nb"
