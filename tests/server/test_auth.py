"""Tokens and roles on a server run with ``--auth token``."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server
from typer.testing import CliRunner

from cumulo import Workspace
from cumulo.cli.main import app
from cumulo.core.errors import PermissionDenied, Unauthenticated
from cumulo.sdk.http import HttpTransport
from cumulo.sdk.workspace import Experiment

runner = CliRunner()


def cli(home: Path, *args: str) -> str:
    result = runner.invoke(app, [*args, "--home", str(home)])
    assert result.exit_code == 0, result.output
    return result.stdout


def new_token(home: Path, workspace: str, role: str) -> str:
    return cli(home, "token", "create", "--workspace", workspace, "--role", role).strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("auth") / "home"
    port = free_port()
    proc = start_cumulo_server(home, port, "--auth", "token")
    url = f"http://127.0.0.1:{port}"
    admin = new_token(home, "*", "owner")
    for name in ("team-a", "team-b"):
        HttpTransport(url, token=admin).tracking.create_workspace(name)
    tokens = {
        (ws, role): new_token(home, ws, role)
        for ws in ("team-a", "team-b")
        for role in ("reader", "contributor", "owner")
    }
    yield {"url": url, "home": home, "admin": admin, "tokens": tokens}
    stop_cumulo_server(proc)


def test_no_token_or_an_unknown_one_is_401(server: dict[str, Any]) -> None:
    url = server["url"]
    response = httpx.get(f"{url}/api/v1/workspaces/team-a")
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    assert httpx.get(f"{url}/api/v1/workspaces").status_code == 401
    bad = httpx.get(f"{url}/api/v1/workspaces/team-a", headers={"authorization": "Bearer nope"})
    assert bad.status_code == 401
    odd = httpx.get(f"{url}/api/v1/workspaces/team-a", headers={"authorization": "Token x"})
    assert odd.status_code == 401
    with pytest.raises(Unauthenticated):
        Workspace.connect(url, "team-a")
    assert httpx.get(f"{url}/health").status_code == 200  # probes need no token


def test_a_reader_reads_but_cannot_write(server: dict[str, Any]) -> None:
    url, tokens = server["url"], server["tokens"]
    writer = Workspace.connect(url, "team-a", token=tokens["team-a", "contributor"])
    run = Experiment(writer, "shared").start_logging()
    run.log("loss", 0.5)
    run.complete()
    reader = Workspace.connect(url, "team-a", token=tokens["team-a", "reader"])
    assert reader.get_run(run.id).get_metrics() == {"loss": 0.5}
    with pytest.raises(PermissionDenied, match="reader"):
        Experiment(reader, "new-one")
    response = httpx.post(
        f"{url}/api/v1/workspaces/team-a/runs/{run.id}/tags",
        json={"tags": {"k": "v"}},
        headers={"authorization": f"Bearer {tokens['team-a', 'reader']}"},
    )
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"


def test_a_token_for_one_workspace_cannot_reach_another(server: dict[str, Any]) -> None:
    url, tokens = server["url"], server["tokens"]
    for role in ("reader", "contributor", "owner"):
        response = httpx.get(
            f"{url}/api/v1/workspaces/team-b/experiments",
            headers={"authorization": f"Bearer {tokens['team-a', role]}"},
        )
        assert response.status_code == 403, role
    with pytest.raises(PermissionDenied, match="team-a"):
        Workspace.connect(url, "team-b", token=tokens["team-a", "owner"])
    listed = HttpTransport(url, token=tokens["team-a", "reader"]).tracking.list_workspaces()
    assert [w.name for w in listed] == ["team-a"]
    everything = HttpTransport(url, token=server["admin"]).tracking.list_workspaces()
    assert {"default", "team-a", "team-b"} <= {w.name for w in everything}


def test_only_a_server_wide_owner_creates_workspaces(server: dict[str, Any]) -> None:
    url, tokens = server["url"], server["tokens"]
    with pytest.raises(PermissionDenied):
        HttpTransport(url, token=tokens["team-a", "owner"]).tracking.create_workspace("team-c")
    assert (
        HttpTransport(url, token=server["admin"]).tracking.create_workspace("team-c").name
        == "team-c"
    )


def test_owners_manage_their_workspace_tokens(server: dict[str, Any]) -> None:
    url, tokens = server["url"], server["tokens"]
    owner = {"authorization": f"Bearer {tokens['team-a', 'owner']}"}
    contributor = {"authorization": f"Bearer {tokens['team-a', 'contributor']}"}
    base = f"{url}/api/v1/workspaces/team-a/tokens"
    assert httpx.post(base, json={"role": "reader"}, headers=contributor).status_code == 403
    other = f"{url}/api/v1/workspaces/team-b/tokens"
    assert httpx.post(other, json={"role": "reader"}, headers=owner).status_code == 403
    created = httpx.post(base, json={"role": "reader", "description": "ci"}, headers=owner)
    assert created.status_code == 201
    token, info = created.json()["token"], created.json()["info"]
    assert info["role"] == "reader" and "hash" not in str(info)
    assert HttpTransport(url, token=token).tracking.get_workspace("team-a").name == "team-a"
    listed = httpx.get(base, headers=owner).json()["tokens"]
    assert info["id"] in [t["id"] for t in listed]
    assert all(t["workspace"] == "team-a" for t in listed)
    assert httpx.delete(f"{base}/{info['id']}", headers=owner).json()["revoked_at"]
    with pytest.raises(Unauthenticated, match="revoked"):
        HttpTransport(url, token=token).tracking.get_workspace("team-a")


def test_tokens_from_the_command_line(server: dict[str, Any]) -> None:
    url, home = server["url"], server["home"]

    def listed(*extra: str) -> dict[str, dict[str, Any]]:
        out = cli(home, "token", "list", "--workspace", "team-b", "--json", *extra)
        return {t["id"]: t for t in json.loads(out)}

    before = listed()
    token = new_token(home, "team-b", "contributor")
    assert token.startswith("cumulo_")
    after = listed()
    (token_id,) = set(after) - set(before)
    assert after[token_id]["role"] == "contributor"
    assert token not in json.dumps(after)  # only its hash is stored
    assert HttpTransport(url, token=token).tracking.get_workspace("team-b").name == "team-b"
    assert "revoked" in cli(home, "token", "revoke", token_id)
    with pytest.raises(Unauthenticated, match="revoked"):
        HttpTransport(url, token=token).tracking.get_workspace("team-b")
    assert token_id not in listed() and listed("--all")[token_id]["revoked_at"]
    missing = runner.invoke(app, ["token", "revoke", "nope", "--home", str(home)])
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_basic_auth_with_the_token_as_password(server: dict[str, Any]) -> None:
    token = server["tokens"]["team-a", "reader"]
    basic = base64.b64encode(f"user:{token}".encode()).decode()
    response = httpx.get(
        f"{server['url']}/api/v1/workspaces/team-a", headers={"authorization": f"Basic {basic}"}
    )
    assert response.status_code == 200


def test_unknown_role_or_workspace_is_refused_on_the_command_line(server: dict[str, Any]) -> None:
    home = str(server["home"])
    bad_role = runner.invoke(
        app, ["token", "create", "-w", "team-a", "--role", "admin", "--home", home]
    )
    assert bad_role.exit_code == 1 and "Unknown role" in bad_role.output
    missing = runner.invoke(
        app, ["token", "create", "-w", "nowhere", "--role", "reader", "--home", home]
    )
    assert missing.exit_code == 1 and "does not exist" in missing.output
