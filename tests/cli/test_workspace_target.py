"""Workspaces are created where the SDK or the CLI points: a server when one is configured."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cumulo import Workspace
from cumulo.cli.main import app
from cumulo.core.errors import InvalidInput

runner = CliRunner()


def _name() -> str:
    return f"ws-{uuid.uuid4().hex[:10]}"


@pytest.mark.slow
def test_cli_creates_on_the_server_named_by_cumulo_url(
    cumulo_server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUMULO_URL", cumulo_server_url)
    name = _name()
    result = runner.invoke(app, ["workspace", "create", name, "--write-config"])
    assert result.exit_code == 0, result.output
    assert "on the server" in result.output and cumulo_server_url in result.output
    got = httpx.get(f"{cumulo_server_url}/api/v1/workspaces/{name}")
    assert got.status_code == 200 and got.json()["name"] == name
    assert not (tmp_path / "home").exists()  # nothing written to the embedded home
    # The config written names the server, so a later command finds it there.
    monkeypatch.delenv("CUMULO_URL")
    again = Workspace.from_config()
    assert again.url == cumulo_server_url and again.name == name
    listed = runner.invoke(app, ["workspace", "list", "--url", cumulo_server_url, "--json"])
    assert name in listed.output


@pytest.mark.slow
def test_sdk_creates_gets_and_lists_on_the_server(
    cumulo_server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _name()
    ws = Workspace.create(name, url=cumulo_server_url)
    assert ws.url == cumulo_server_url
    monkeypatch.setenv("CUMULO_URL", cumulo_server_url)
    assert Workspace.create(name, exist_ok=True).url == cumulo_server_url
    assert Workspace.get(name).location == ws.location
    assert name in [w.name for w in Workspace.list()]
    assert not (tmp_path / "home").exists()
    # An explicit embedded home is never overridden by $CUMULO_URL.
    local = Workspace.create(name, home=tmp_path / "elsewhere")
    assert local.url is None and str(tmp_path / "elsewhere") in local.location


def test_without_a_server_the_cli_says_it_is_embedded(tmp_path: Path) -> None:
    result = runner.invoke(app, ["workspace", "create", "solo"])
    assert result.exit_code == 0, result.output
    assert "embedded home" in result.output and "CUMULO_URL" in result.output
    assert Workspace.get("solo").url is None


def test_a_url_and_a_home_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not both"):
        Workspace.create("x", home=tmp_path, url="http://127.0.0.1:1")
