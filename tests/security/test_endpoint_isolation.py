"""Online endpoints stay inside their workspace, and their replicas open only to the router.

A server run with ``--auth token`` hosts two workspaces. A deployment names
its scoring code by the id the upload returned, resolved inside its own
endpoint: no path leads it to another workspace's code. Each replica answers
only calls carrying its own secret, which the router sends and nobody else
knows, so finding a replica's port does not skip the endpoint's keys; and
where replicas run (address, process id) is shown to the workspace's owners
only.
"""

from __future__ import annotations

import hashlib
import io
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server
from typer.testing import CliRunner

from cumulo.cli.main import app
from cumulo.core.deployments import code_id
from cumulo.core.errors import InvalidInput
from cumulo.sdk.http import HttpTransport

runner = CliRunner()
API = "/api/v1/workspaces"
ANSWER_OF_A = {"from": "a"}


def new_token(home: Path, workspace: str, role: str) -> str:
    args = ["token", "create", "--workspace", workspace, "--role", role, "--home", str(home)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def scoring_code(run_body: str, init_body: str = "pass") -> bytes:
    """A zip of a ``score.py`` entry script."""
    script = textwrap.dedent(
        f"""
        from pathlib import Path


        def init():
            {init_body}


        def run(raw_data):
            return {run_body}
        """
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("score.py", script)
    return out.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("endpoint-isolation")
    home = root / "home"
    port = free_port()
    proc = start_cumulo_server(home, port, "--auth", "token")
    url = f"http://127.0.0.1:{port}"
    admin = new_token(home, "*", "owner")
    for name in ("wsa", "wsb"):
        HttpTransport(url, token=admin).tracking.create_workspace(name)
    tokens = {
        (ws, role): new_token(home, ws, role)
        for ws in ("wsa", "wsb")
        for role in ("reader", "contributor", "owner")
    }
    yield {"url": url, "root": root, "tokens": tokens}
    stop_cumulo_server(proc)


def client(server: dict[str, Any], workspace: str, role: str) -> httpx.Client:
    token = server["tokens"][workspace, role]
    return httpx.Client(
        base_url=f"{server['url']}{API}/{workspace}",
        headers={"authorization": f"Bearer {token}"},
        timeout=60,
    )


def create_endpoint(api: httpx.Client, name: str) -> None:
    created = api.post("/endpoints", json={"name": name})
    assert created.status_code == 201, created.text


def upload(api: httpx.Client, endpoint: str, archive: bytes) -> str:
    uploaded = api.put(f"/endpoints/{endpoint}/artifacts/code.zip", content=archive)
    assert uploaded.status_code == 201, uploaded.text
    return str(uploaded.json()["code"])


def deploy(api: httpx.Client, endpoint: str, code: str) -> httpx.Response:
    config = {"entry_script": "score.py", "code": code}
    return api.post(f"/endpoints/{endpoint}/deployments", json={"name": "blue", "config": config})


def wait_healthy(api: httpx.Client, endpoint: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info = api.get(f"/endpoints/{endpoint}").json()
        state = info["deployments"][0]["state"]
        if state == "Healthy":
            return dict(info)
        assert state not in ("Failed", "Unhealthy"), info["deployments"][0]["error"]
        assert time.monotonic() < deadline, f"still {state}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def served(server: dict[str, Any]) -> dict[str, Any]:
    """Endpoint ``scorer`` of workspace A, Healthy, seen by its owner."""
    with client(server, "wsa", "owner") as owner:
        create_endpoint(owner, "scorer")
        code = upload(owner, "scorer", scoring_code(repr(ANSWER_OF_A)))
        assert deploy(owner, "scorer", code).status_code == 201
        info = wait_healthy(owner, "scorer")
        key = owner.get("/endpoints/scorer/keys").json()["primary"]
    return {"info": info, "key": key, "scoring_uri": f"{server['url']}{info['scoring_path']}"}


# ----------------------------------------------------------- code references
def test_a_deployment_cannot_run_another_workspaces_code(server: dict[str, Any]) -> None:
    marker = server["root"] / "code-of-b-ran"
    code_of_b = scoring_code("{'from': 'b'}", init_body=f"Path({str(marker)!r}).write_text('ran')")
    id_of_b = hashlib.sha256(code_of_b).hexdigest()[:32]  # archives are content-addressed
    with client(server, "wsb", "contributor") as b:
        create_endpoint(b, "epb")
        uploaded = upload(b, "epb", code_of_b)
    with client(server, "wsa", "contributor") as a:
        create_endpoint(a, "epa")
        own = upload(a, "epa", scoring_code(repr(ANSWER_OF_A)))
        for reference in (
            f"wsa/endpoints/epa/code/../../../../wsb/endpoints/epb/code/{id_of_b}.zip",
            f"wsa/endpoints/epa/code/../../../epb/code/{id_of_b}.zip",
            f"wsb/endpoints/epb/code/{id_of_b}.zip",
            f"/wsb/endpoints/epb/code/{id_of_b}.zip",
            f"wsa\\endpoints\\epa\\code\\..\\..\\..\\..\\wsb\\endpoints\\epb\\code\\{id_of_b}.zip",
            f"wsa/endpoints/epa/code/{own}.zip/../../../../../wsb/endpoints/epb/code/{id_of_b}.zip",
            id_of_b,  # B's id names nothing uploaded to A's endpoint
        ):
            refused = deploy(a, "epa", reference)
            assert refused.status_code == 400, (reference, refused.text)
            assert refused.json()["error_code"] == "INVALID_PARAMETER_VALUE"
            assert "code" in refused.json()["message"]
        assert a.get("/endpoints/epa").json()["deployments"] == []  # nothing left behind
    time.sleep(1.0)  # a supervisor tick or more: nothing was started
    assert not marker.exists()
    assert uploaded == id_of_b  # the upload names its archive by id, not by a path


def test_a_stored_path_to_the_endpoints_own_code_is_still_taken(server: dict[str, Any]) -> None:
    with client(server, "wsa", "contributor") as a:
        create_endpoint(a, "legacy")
        own = upload(a, "legacy", scoring_code(repr(ANSWER_OF_A)))
        created = deploy(a, "legacy", f"wsa/endpoints/legacy/code/./{own}.zip")
        assert created.status_code == 201, created.text
        assert created.json()["spec"]["code"] == own  # kept as the id


def test_code_references_resolve_inside_their_endpoint_only() -> None:
    ident = "0123456789abcdef0123456789abcdef"
    assert code_id(ident, "wsa", "epa") == ident
    assert code_id(f"wsa/endpoints/epa/code/{ident}.zip", "wsa", "epa") == ident
    assert code_id(f"wsa/endpoints/epa//code/./{ident}.zip", "wsa", "epa") == ident
    for bad in (
        f"wsa/endpoints/epa/code/../../epb/code/{ident}.zip",
        f"wsa/endpoints/epa/code/sub/../{ident}.zip",
        f"wsa/endpoints/epa/code/{ident}",
        f"wsa/endpoints/epa/code/{ident}.zip/..",
        f"wsa/endpoints/epa/code/x/{ident}.zip",
        f"wsa/endpoints/epab/code/{ident}.zip",
        f"./wsa/endpoints/epa/code/{ident}.zip/../../../../../../wsb/endpoints/epb/code/{ident}.zip",
        "wsa/endpoints/epa/code/",
        ident.upper(),
        ident + "0",
        "",
        None,
        42,
    ):
        with pytest.raises(InvalidInput, match="not a code archive of endpoint 'epa'"):
            code_id(bad, "wsa", "epa")


# ------------------------------------------------------------ replica secrets
def test_a_replica_answers_only_the_router(served: dict[str, Any]) -> None:
    replica = served["info"]["deployments"][0]["replica_states"][0]
    url = replica["url"]
    assert url and url.startswith("http://127.0.0.1:")  # the owner sees where it runs
    body = {"data": [[1, 2]]}
    for path in ("/score", "/invocations"):
        direct = httpx.post(url + path, json=body)
        assert direct.status_code == 401, direct.text
        assert direct.json()["error_code"] == "UNAUTHENTICATED"
    wrong = httpx.post(url + "/score", json=body, headers={"cumulo-replica-secret": "guess"})
    assert wrong.status_code == 401
    assert httpx.get(url + "/info").status_code == 401
    assert httpx.get(url + "/health").status_code == 401
    key = {"authorization": f"Bearer {served['key']}"}
    scored = httpx.post(served["scoring_uri"], json=body, headers=key)
    assert scored.status_code == 200 and scored.json() == ANSWER_OF_A
    assert httpx.post(served["scoring_uri"], json=body).status_code == 401


def test_only_owners_see_where_replicas_run(server: dict[str, Any], served: dict[str, Any]) -> None:
    shown = served["info"]["deployments"][0]
    replica = shown["replica_states"][0]
    assert replica["pid"] and replica["url"]
    assert not any("secret" in key for key in shown["spec"])
    for role in ("reader", "contributor"):
        with client(server, "wsa", role) as visitor:
            one = visitor.get("/endpoints/scorer").json()
            listed = visitor.get("/endpoints").json()["endpoints"]
        for info in (one, next(e for e in listed if e["name"] == "scorer")):
            seen = info["deployments"][0]["replica_states"][0]
            assert seen["state"] == "ready" and seen["slot"] == 0
            assert seen["url"] is None and seen["pid"] is None, (role, seen)
    with client(server, "wsa", "owner") as owner:
        page = owner.get(f"{server['url']}/ws/wsa/endpoints/scorer/deployments")
        assert page.status_code == 200
        assert f"<td>{replica['pid']}</td>" in page.text
    with client(server, "wsa", "reader") as reader:
        page = reader.get(f"{server['url']}/ws/wsa/endpoints/scorer/deployments")
        assert page.status_code == 200 and 'data-state="ready"' in page.text
        assert f"<td>{replica['pid']}</td>" not in page.text
        logs = reader.get("/endpoints/scorer/logs").json()["logs"]
        assert "model loaded" in logs and replica["url"].rsplit(":", 1)[1] not in logs
