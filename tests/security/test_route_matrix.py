"""Every route of the app x every kind of caller: each gets what the route declares.

The routes come from the app itself (``cumulo.server.access.route_table``), so
a route added tomorrow is in the matrix without anyone writing a line here,
and a route that declares no access cannot be served at all (``enforce``).
Path parameters name the caller's workspace and objects that do not exist:
what is checked is the door, not what lies behind it ("let in" means the
answer is anything but a refusal; a missing object's 404 is fine).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server
from tests.server.test_auth import new_token

from cumulo import Experiment, ScriptRunConfig, Workspace
from cumulo.core.settings import Settings
from cumulo.sdk.http import HttpTransport
from cumulo.server.access import Access, RouteAccess, enforce, route_table
from cumulo.server.app import create_app
from cumulo.services.context import open_services

IDENTITIES = (
    "none",
    "bad",
    "revoked",
    "expired",
    "reader",
    "contributor",
    "owner",
    "other_owner",
    "job",
    "other_endpoint_key",
)
UNAUTHENTICATED = {"none", "bad", "revoked", "expired", "other_endpoint_key"}
RANK = {"reader": 0, "job": 1, "contributor": 1, "owner": 2}  # a job's token is a contributor
NEEDED = {Access.READ: 0, Access.WRITE: 1, Access.MANAGE: 2}
# Framework pages that take no token by design (FastAPI's schema and docs).
FRAMEWORK = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# Values for path parameters: the caller's workspace, and objects that do not exist.
PARAMS = {"workspace": "wsa", "ws": "wsa", "experiment_id": "999999", "version": "999"}


def expected_in(access: Access, who: str, path: str, method: str) -> bool:
    """Whether ``who`` gets past the door of a route that declares ``access``."""
    if access == Access.PUBLIC:
        return True
    if who in UNAUTHENTICATED:
        return False
    if access == Access.SIGNED_IN:
        return True
    if access == Access.SERVER:
        return False  # only an owner token for every workspace; none of these is one
    if who == "other_owner" or addresses_default(path):
        return False  # every token here is of wsa or wsb, not of "default"
    if who == "job" and method in ("POST", "DELETE") and re.search(r"/compute(/|$)", path):
        return False  # compute targets are the team's: a job may not change them
    if who == "job" and re.search(r"/jobs/\{run_id\}/(status|logs)$", path) and method == "POST":
        return False  # a job reports for its own run only (this run is another)
    return RANK[who] >= NEEDED[access]


def addresses_default(path: str) -> bool:
    """MLflow's root paths (and its web UI's aliases of them) serve the ``default`` workspace."""
    mlflow_roots = (
        "/api/2.0/mlflow",
        "/api/3.0/mlflow",
        "/ajax-api/2.0/mlflow",
        "/ajax-api/3.0/mlflow",
    )
    return path.startswith(mlflow_roots) or path in (
        "/get-artifact",
        "/model-versions/get-artifact",
    )


def refused(response: httpx.Response) -> bool:
    if response.status_code in (401, 403):
        return True
    # A studio page sends a visitor without a valid token to the login page.
    location = response.headers.get("location", "")
    return response.status_code == 303 and location.startswith("/login?next=")


def concrete(path: str) -> str:
    def fill(match: re.Match[str]) -> str:
        name, kind = match.group(1), match.group(2)
        if kind == ":path":
            return "no/such/file.txt"
        return PARAMS.get(name, "nosuchthing0")

    return re.sub(r"\{(\w+)(:\w+)?\}", fill, path)


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> list[RouteAccess]:
    home = tmp_path_factory.mktemp("routes")
    app = create_app(Settings.load(home=home, auth="token"))
    return route_table(app)


@pytest.fixture(scope="module")
def callers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home, port = tmp_path_factory.mktemp("matrix") / "home", free_port()
    env = {"CUMULO_AUTH_FAILURES_PER_MINUTE": "1000000"}  # the matrix sends refused tokens
    # The server sees no JupyterLab, as one without it does: the notebooks routes answer
    # 409 past their door, and no JupyterLab starts in the background of the matrix.
    hidden = home.parent / "no-jupyterlab"
    hidden.mkdir()
    (hidden / "sitecustomize.py").write_text('import sys\nsys.modules["jupyterlab"] = None\n')
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hidden), os.environ.get("PYTHONPATH")]))
    proc = start_cumulo_server(home, port, "--auth", "token", env=env)
    url = f"http://127.0.0.1:{port}"
    admin = new_token(home, "*", "owner")
    for name in ("wsa", "wsb"):
        HttpTransport(url, token=admin).tracking.create_workspace(name)
    auth = open_services(Settings.load(home=home)).auth
    revoked_info, revoked = auth.create_token("wsa", "owner", "revoked")
    auth.revoke_token(revoked_info.id)
    _info, expired = auth.create_token("wsa", "owner", "expires", expires_in_seconds=1)
    job, cancel_job = _running_job(url, new_token(home, "wsa", "owner"), home.parent)
    tokens = {
        "bad": "cumulo_" + "x" * 43,
        "revoked": revoked,
        "expired": expired,
        "reader": new_token(home, "wsa", "reader"),
        "contributor": new_token(home, "wsa", "contributor"),
        "owner": new_token(home, "wsa", "owner"),
        "other_owner": new_token(home, "wsb", "owner"),
        "job": job,
    }
    for ws, name in (("wsa", "epa"), ("wsb", "epb")):
        made = httpx.post(
            f"{url}/api/v1/workspaces/{ws}/endpoints",
            json={"name": name},
            headers={"authorization": f"Bearer {admin}"},
        )
        assert made.status_code == 201, made.text
    keys = httpx.get(
        f"{url}/api/v1/workspaces/wsb/endpoints/epb/keys",
        headers={"authorization": f"Bearer {admin}"},
    ).json()
    tokens["other_endpoint_key"] = keys["primary"]
    time.sleep(1.1)  # the "expired" token is now past its expiry
    yield {"url": url, "tokens": tokens, "home": home}
    cancel_job()
    stop_cumulo_server(proc)


HOLDER = """
import os, sys, time
with open(sys.argv[1] + ".part", "w") as fh:
    fh.write(os.environ["CUMULO_TOKEN"])
os.rename(sys.argv[1] + ".part", sys.argv[1])
time.sleep(600)
"""


def _running_job(url: str, token: str, folder: Path) -> tuple[str, Callable[[], None]]:
    """A job of wsa that runs while the matrix is checked, and the token it was given."""
    ws = Workspace.connect(url, "wsa", token=token)
    src, out = folder / "holder", folder / "job-token"
    src.mkdir()
    (src / "hold.py").write_text(HOLDER)
    run = Experiment(ws, "matrix").submit(ScriptRunConfig(src, "hold.py", arguments=[str(out)]))
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return out.read_text(), run.cancel


def test_every_route_declares_who_may_call_it(routes: list[RouteAccess]) -> None:
    undeclared = [f"{r.methods} {r.path}" for r in routes if r.access is None]
    assert undeclared == []
    assert len(routes) > 200


def test_an_app_with_an_undeclared_route_does_not_start(tmp_path: Path) -> None:
    app = create_app(Settings.load(home=tmp_path / "home"))

    @app.get("/api/v1/workspaces/{workspace}/forgotten")
    def forgotten(workspace: str) -> dict[str, str]:
        return {"secret": workspace}

    with pytest.raises(RuntimeError, match="forgotten"):
        enforce(app)


def test_every_route_answers_every_caller_as_it_declares(
    routes: list[RouteAccess], callers: dict[str, Any]
) -> None:
    url, tokens = callers["url"], callers["tokens"]
    wrong: list[str] = []
    cases = 0
    with httpx.Client(base_url=url, timeout=30, follow_redirects=False) as client:
        for route in routes:
            if route.path in FRAMEWORK or route.methods == ("*",):
                continue  # mounts: studio assets are public, scoring is checked below
            path = concrete(route.path)
            for method in route.methods:
                if method == "HEAD" or (route.path, method) == ("/login", "POST"):
                    continue  # the login form itself answers a bad token with 401 by design
                for who in IDENTITIES:
                    headers = {}
                    if who != "none":
                        headers["authorization"] = f"Bearer {tokens[who]}"
                    response = client.request(method, path, headers=headers)
                    cases += 1
                    let_in = not refused(response)
                    if let_in != expected_in(route.access, who, route.path, method):  # type: ignore[arg-type]
                        wrong.append(
                            f"{method} {route.path} [{route.access}] as {who}: "
                            f"{response.status_code} {response.text[:120]!r}"
                        )
    assert wrong == [], f"{len(wrong)} of {cases} cases:\n" + "\n".join(wrong[:40])
    assert cases > 2000
    # The notebooks routes were let in without starting a JupyterLab (each start logs here).
    assert not list((callers["home"] / "notebooks").glob(".servers/*.log"))
    print(f"route x identity matrix: {cases} cases")


def test_scoring_refuses_another_endpoints_key(callers: dict[str, Any]) -> None:
    url, tokens = callers["url"], callers["tokens"]
    for who in ("none", "bad", "other_endpoint_key", "other_owner"):
        headers = {"authorization": f"Bearer {tokens[who]}"} if who != "none" else {}
        response = httpx.post(f"{url}/endpoints/wsa/epa/score", json={}, headers=headers)
        assert response.status_code in (401, 403), (who, response.status_code, response.text)


def test_the_studio_test_form_shows_nothing_to_a_stranger(callers: dict[str, Any]) -> None:
    url, tokens = callers["url"], callers["tokens"]
    for who in ("none", "revoked", "other_owner"):
        cookies = {"cumulo_token": tokens[who]} if who != "none" else {}
        response = httpx.post(
            f"{url}/ws/wsa/endpoints/epa/test", data={"body": "{}"}, cookies=cookies
        )
        assert response.status_code in (401, 403), (who, response.status_code)
        assert "scoring" not in response.text.lower() and "/endpoints/wsa/epa" not in response.text
    mine = httpx.post(
        f"{url}/ws/wsa/endpoints/epa/test",
        data={"body": "{}"},
        cookies={"cumulo_token": tokens["owner"]},
    )
    assert mine.status_code == 200 and "epa" in mine.text
