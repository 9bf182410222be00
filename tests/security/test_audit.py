"""The audit log: every write and every refusal, who and when, for owners only;
a client that keeps sending refused tokens is slowed down."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server
from tests.server.test_auth import cli, new_token

from cumulo import Experiment, Workspace
from cumulo.core.entities import AuditEntry, now_ms
from cumulo.core.settings import Settings
from cumulo.sdk.http import HttpTransport
from cumulo.server.audit import AuditLog
from cumulo.services.context import open_services


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home, port = tmp_path_factory.mktemp("audit") / "home", free_port()
    env = {"CUMULO_AUTH_FAILURES_PER_MINUTE": "5"}
    proc = start_cumulo_server(home, port, "--auth", "token", env=env)
    url = f"http://127.0.0.1:{port}"
    admin = new_token(home, "*", "owner")
    HttpTransport(url, token=admin).tracking.create_workspace("team-a")
    tokens = {role: new_token(home, "team-a", role) for role in ("reader", "contributor", "owner")}
    yield {"url": url, "home": home, "tokens": tokens}
    stop_cumulo_server(proc)


def _id_of(home: Path, token: str, role: str) -> str:
    listed = json.loads(cli(home, "token", "list", "--workspace", "team-a", "--json"))
    return str(next(t["id"] for t in listed if t["role"] == role))


def test_writes_and_refusals_are_recorded_with_who_did_them(server: dict[str, Any]) -> None:
    url, tokens = server["url"], server["tokens"]
    ws = Workspace.connect(url, "team-a", token=tokens["contributor"])
    with Experiment(ws, "audited").start_logging() as run:
        run.log("loss", 0.5)
    denied = httpx.post(
        f"{url}/api/v1/workspaces/team-a/experiments",
        json={"name": "nope"},
        headers={"authorization": f"Bearer {tokens['reader']}"},
    )
    assert denied.status_code == 403
    owner = {"authorization": f"Bearer {tokens['owner']}"}
    answer = httpx.get(f"{url}/api/v1/workspaces/team-a/audit", headers=owner)
    assert answer.status_code == 200
    entries = answer.json()["entries"]
    writer = _id_of(server["home"], tokens["contributor"], "contributor")
    reader = _id_of(server["home"], tokens["reader"], "reader")
    mine = [e for e in entries if e["token_id"] == writer]
    assert any(e["route"].endswith("/experiments") and e["method"] == "POST" for e in mine)
    assert any(f"run_id={run.id}" in e["target"] for e in mine)
    assert all(e["status"] < 400 and e["outcome"] == "ok" for e in mine)
    refused = [e for e in entries if e["token_id"] == reader]
    assert [(e["method"], e["status"], e["outcome"]) for e in refused] == [("POST", 403, "refused")]
    only_refused = httpx.get(
        f"{url}/api/v1/workspaces/team-a/audit", params={"refused_only": True}, headers=owner
    ).json()["entries"]
    assert only_refused and all(e["status"] in (401, 403, 429) for e in only_refused)
    # Readers and contributors may not read it; the CLI reads it on the server's store.
    for role in ("reader", "contributor"):
        other = {"authorization": f"Bearer {tokens[role]}"}
        assert httpx.get(f"{url}/api/v1/workspaces/team-a/audit", headers=other).status_code == 403
    printed = json.loads(
        cli(server["home"], "audit", "list", "--workspace", "team-a", "--limit", "500", "--json")
    )
    assert {e["id"] for e in entries} <= {e["id"] for e in printed}


def test_owners_see_the_audit_page_in_the_studio(server: dict[str, Any]) -> None:
    url, tokens = server["url"], server["tokens"]
    page = httpx.get(f"{url}/ws/team-a/audit", cookies={"cumulo_token": tokens["owner"]})
    assert page.status_code == 200
    assert "Audit log" in page.text and "/api/v1/workspaces/team-a" in page.text
    home = httpx.get(f"{url}/ws/team-a/experiments", cookies={"cumulo_token": tokens["owner"]})
    assert 'href="/ws/team-a/audit"' in home.text
    reader = httpx.get(f"{url}/ws/team-a/audit", cookies={"cumulo_token": tokens["reader"]})
    assert reader.status_code == 403
    seen = httpx.get(f"{url}/ws/team-a/experiments", cookies={"cumulo_token": tokens["reader"]})
    assert 'href="/ws/team-a/audit"' not in seen.text


def test_a_client_sending_refused_tokens_is_slowed_down(server: dict[str, Any]) -> None:
    url = server["url"]
    bad = {"authorization": "Bearer cumulo_guess"}
    answers = [
        httpx.get(f"{url}/api/v1/workspaces/team-a", headers=bad).status_code for _ in range(7)
    ]
    assert answers[:5] == [401] * 5
    assert answers[5:] == [429, 429]
    limited = httpx.get(f"{url}/api/v1/workspaces/team-a", headers=bad)
    assert int(limited.headers["retry-after"]) >= 1
    assert "Too many refused tokens" in limited.json()["message"]
    # Requests without a token are not guesses; they still get their plain 401.
    assert httpx.get(f"{url}/api/v1/workspaces/team-a").status_code == 401
    # The server stores its entries once a second: the refusals are there soon after.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        printed = json.loads(cli(server["home"], "audit", "list", "--refused", "--json"))
        if any(e["status"] == 429 and e["outcome"] == "rate-limited" for e in printed):
            break
        time.sleep(0.3)
    assert any(e["status"] == 429 and e["outcome"] == "rate-limited" for e in printed)


def test_entries_past_the_retention_period_are_deleted(tmp_path: Path) -> None:
    auth = open_services(Settings.load(home=tmp_path / "home")).auth
    day = 86_400_000

    def entry(age_days: float) -> AuditEntry:
        at = now_ms() - int(age_days * day)
        return AuditEntry(at, "default", None, "127.0.0.1", "POST", "/x", "", 201, "ok")

    auth.record([entry(40), entry(29), entry(0)])
    trail = AuditLog(auth, failures_per_minute=30, retention_days=30)
    trail._prune()
    assert sorted(round((now_ms() - e.at) / day) for e in auth.audit_log(None)) == [0, 29]
