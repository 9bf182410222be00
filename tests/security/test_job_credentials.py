"""Each job holds a token of its own: its workspace only, no stronger than a
contributor, revoked when the job ends, also when the server crashed meanwhile."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server
from tests.server.test_auth import cli, new_token

from cumulo import Experiment, ScriptRunConfig, Workspace
from cumulo.sdk.http import HttpTransport

# The script tries to reach past its workspace and leaves its token where the test finds it.
PROBE = """
import json, os, sys
import httpx
from cumulo import Run

url, token = os.environ["CUMULO_URL"], os.environ["CUMULO_TOKEN"]
headers = {"authorization": f"Bearer {token}"}
api = url + "/api/v1/workspaces"
seen = {
    "read_other": httpx.get(f"{api}/team-b/experiments", headers=headers).status_code,
    "write_other": httpx.post(
        f"{api}/team-b/experiments", json={"name": "stolen"}, headers=headers
    ).status_code,
    "read_own": httpx.get(f"{api}/team-a/experiments", headers=headers).status_code,
    "list_tokens": httpx.get(f"{api}/team-a/tokens", headers=headers).status_code,
    "create_target": httpx.post(
        f"{api}/team-a/compute", json={"name": "mine", "kind": "local"}, headers=headers
    ).status_code,
}
Run.get_context().log("probed", 1.0)
with open(sys.argv[1], "w") as fh:
    json.dump({"token": token, "seen": seen}, fh)
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    home, port = tmp_path / "home", free_port()
    env = {"CUMULO_LEASE_SECONDS": "2"}  # a crashed server's jobs are taken over quickly
    proc = start_cumulo_server(home, port, "--auth", "token", env=env)
    url = f"http://127.0.0.1:{port}"
    admin = new_token(home, "*", "owner")
    for name in ("team-a", "team-b"):
        HttpTransport(url, token=admin).tracking.create_workspace(name)
    state = {"url": url, "home": home, "port": port, "proc": proc, "env": env}
    yield state
    stop_cumulo_server(state["proc"])


def _submit(server: dict[str, Any], tmp_path: Path, script: str, *args: str) -> Any:
    token = new_token(server["home"], "team-a", "owner")
    ws = Workspace.connect(server["url"], "team-a", token=token)
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "job.py").write_text(script)
    return Experiment(ws, "probe").submit(ScriptRunConfig(src, "job.py", arguments=list(args)))


def _status(url: str, token: str) -> int:
    headers = {"authorization": f"Bearer {token}"}
    return httpx.get(f"{url}/api/v1/workspaces/team-a/experiments", headers=headers).status_code


@pytest.mark.slow
def test_a_jobs_token_reaches_only_its_own_workspace_and_ends_with_it(
    server: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "probe.json"
    run = _submit(server, tmp_path, PROBE, str(out))
    details = run.wait_for_completion(show_output=False)
    assert details["status"] == "Completed", run.get_logs()
    probe = json.loads(out.read_text())
    assert probe["seen"] == {
        "read_other": 403,
        "write_other": 403,
        "read_own": 200,
        "list_tokens": 403,  # an owner submitted it, yet its job is a contributor at most
        "create_target": 403,
    }
    assert run.get_metrics() == {"probed": 1.0}
    # Its token died with the job; no token reaches every workspace but the admin's.
    assert _status(server["url"], probe["token"]) == 401
    listed = json.loads(cli(server["home"], "token", "list", "--all", "--json"))
    job_tokens = [t for t in listed if t["run_id"] == run.id]
    assert len(job_tokens) == 1 and job_tokens[0]["revoked_at"] is not None
    assert job_tokens[0]["workspace"] == "team-a" and job_tokens[0]["role"] == "contributor"
    assert [t["role"] for t in listed if t["workspace"] == "*"] == ["owner"]


SLEEPER = """
import json, os, sys, time
with open(sys.argv[1], "w") as fh:
    json.dump({"token": os.environ["CUMULO_TOKEN"], "pid": os.getpid()}, fh)
time.sleep(float(sys.argv[2]))
"""


@pytest.mark.slow
def test_a_jobs_token_is_revoked_after_a_crash_of_its_server(
    server: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "token.json"
    _submit(server, tmp_path, SLEEPER, str(out), "600")
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    held = json.loads(out.read_text())
    assert _status(server["url"], held["token"]) == 200  # live while the job runs
    server["proc"].send_signal(signal.SIGKILL)  # the server dies without a word...
    server["proc"].wait()
    os.kill(held["pid"], signal.SIGKILL)  # ...and the job ends while no server runs
    server["proc"] = start_cumulo_server(
        server["home"], server["port"], "--auth", "token", env=server["env"]
    )
    deadline = time.monotonic() + 30
    while _status(server["url"], held["token"]) != 401 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _status(server["url"], held["token"]) == 401


def test_a_token_past_its_expiry_is_refused(server: dict[str, Any]) -> None:
    result = cli(
        server["home"],
        "token",
        "create",
        "--workspace",
        "team-a",
        "--role",
        "reader",
        "--expires-in",
        "2s",
    )
    token = result.strip()
    assert _status(server["url"], token) == 200
    time.sleep(2.2)
    response = httpx.get(
        f"{server['url']}/api/v1/workspaces/team-a/experiments",
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401
    assert "expired" in response.json()["message"]
