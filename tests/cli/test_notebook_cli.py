"""``cumulo notebook`` puts the workspace's config where the notebooks are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import free_port
from typer.testing import CliRunner

from cumulo import Workspace
from cumulo.cli.main import app


def test_notebook_writes_the_config_and_names_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jupyterlab", None)  # what an interpreter without it sees
    Workspace.create("nb")
    result = CliRunner().invoke(app, ["notebook", "--dir", str(tmp_path / "nbs"), "-w", "nb"])
    assert result.exit_code == 1
    assert "pip install jupyterlab" in " ".join(result.output.split())
    config = json.loads((tmp_path / "nbs" / ".cumulo" / "config.json").read_text())
    assert config["workspace"] == "nb"
    assert Workspace.from_config(tmp_path / "nbs").name == "nb"


@pytest.mark.slow
def test_notebook_starts_jupyterlab_in_the_folder(tmp_path: Path) -> None:
    Workspace.create("nb")
    port, token = free_port(), "cli-test-token"
    folder = tmp_path / "nbs"
    command = ["notebook", "--dir", str(folder), "--port", str(port), "--no-browser", "-w", "nb"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cumulo.cli.main", *command],
        env={**os.environ, "JUPYTER_TOKEN": token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        headers = {"Authorization": f"token {token}"}
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "cumulo notebook exited"
            try:
                made = httpx.post(
                    f"http://127.0.0.1:{port}/api/contents", json={"type": "notebook"},
                    headers=headers,
                )  # fmt: skip
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "JupyterLab did not answer"
                time.sleep(0.2)
        # JupyterLab serves the folder the workspace's config was written in.
        assert made.status_code == 201, made.text
        assert (folder / made.json()["path"]).is_file()
        assert Workspace.from_config(folder).name == "nb"
    finally:
        proc.terminate()
        proc.wait(30)
