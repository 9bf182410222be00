"""The workspace page's "Open Notebooks" button and ``/api/v1/workspaces/{ws}/notebooks``.

The fast tests answer in-process (no JupyterLab starts); the slow one starts a real
JupyterLab from a real server, opens it from the studio in Chromium and runs a kernel in it.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psutil
import pytest
from studio_kit import LiveServer, Page

from cumulo import Workspace
from cumulo.core.errors import PermissionDenied, Unauthenticated
from cumulo.core.settings import Settings
from cumulo.server.app import create_app

BUTTON = re.compile(r'<button[^>]*id="open-notebooks"[^>]*>')


class _Client:
    """The app answering in-process, without its lifespan: nothing runs in the background."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            cookies = options.pop("cookies", None)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://studio", cookies=cookies
            ) as client:
                return await client.request(method, path, **options)

        return asyncio.run(call())

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return self.request("POST", path, **options)


@pytest.fixture(scope="module")
def inproc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One app with token checks, workspaces wsa and wsb, and tokens of wsa."""
    app = create_app(Settings.load(home=tmp_path_factory.mktemp("nb-home"), auth="token"))
    services = app.state.services
    for name in ("wsa", "wsb"):
        services.tracking.create_workspace(name, exist_ok=True)
    _info, owner = services.auth.create_token("wsa", "owner")
    _info, reader = services.auth.create_token("wsa", "reader")
    return {"client": _Client(app), "services": services, "owner": owner, "reader": reader}


def test_without_jupyterlab_the_button_is_disabled_and_the_api_says_what_to_install(
    inproc: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jupyterlab", None)  # what an interpreter without it sees
    client, services, owner = inproc["client"], inproc["services"], inproc["owner"]
    page = client.get("/ws/wsa/experiments", cookies={"cumulo_token": owner})
    button = BUTTON.search(page.text)
    assert button is not None and "disabled" in button.group(0)
    assert "pip install jupyterlab" in page.text
    for path, given in (
        ("/api/v1/workspaces/wsa/notebooks", {"headers": {"authorization": f"Bearer {owner}"}}),
        ("/studio-data/ws/wsa/notebooks", {"cookies": {"cumulo_token": owner}}),
    ):
        refused = client.post(path, **given)
        assert refused.status_code == 409, refused.text
        assert "pip install jupyterlab" in refused.json()["message"]
    status = client.get(
        "/api/v1/workspaces/wsa/notebooks", headers={"authorization": f"Bearer {owner}"}
    ).json()
    assert status["status"] == "stopped" and status["installed"] is False
    assert not services.notebooks.folder("wsa").exists()


def test_a_token_of_one_workspace_cannot_open_anothers_notebooks(inproc: dict[str, Any]) -> None:
    client, services = inproc["client"], inproc["services"]
    owner_a, reader_a = inproc["owner"], inproc["reader"]
    tokens_before = len(services.auth.list_tokens())
    api = "/api/v1/workspaces/{}/notebooks"
    for method in ("POST", "GET", "DELETE"):
        other = client.request(
            method, api.format("wsb"), headers={"authorization": f"Bearer {owner_a}"}
        )
        assert other.status_code == 403, (method, other.text)
        assert client.request(method, api.format("wsa")).status_code == 401
        weak = client.request(
            method, api.format("wsa"), headers={"authorization": f"Bearer {reader_a}"}
        )
        assert weak.status_code == 403, (method, weak.text)
    for method in ("POST", "GET"):
        studio = client.request(
            method, "/studio-data/ws/wsb/notebooks", cookies={"cumulo_token": owner_a}
        )
        assert studio.status_code == 403, (method, studio.text)
    # A reader sees the button, disabled, with the reason.
    page = client.get("/ws/wsa/experiments", cookies={"cumulo_token": reader_a})
    button = BUTTON.search(page.text)
    assert button is not None and "disabled" in button.group(0)
    assert "may change this workspace" in page.text
    mine = client.get("/ws/wsa/experiments", cookies={"cumulo_token": owner_a})
    found = BUTTON.search(mine.text)
    assert found is not None and "disabled" not in found.group(0)
    # Nothing was started for either workspace, and no token was made for one.
    assert not (services.notebooks.root / "wsb").exists()
    assert not (services.notebooks.root / "wsa").exists()
    assert len(services.auth.list_tokens()) == tokens_before


def test_notebook_servers_left_by_a_killed_server_are_stopped_with_the_next_one(
    inproc: dict[str, Any],
) -> None:
    services = inproc["services"]
    notebooks = services.notebooks
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    # Processes standing for JupyterLabs whose server was killed with SIGKILL: their
    # records name them, and a server process that no longer runs as their owner. This
    # server reuses the one of wsc, and is never asked for the one of wsd.
    left: dict[str, subprocess.Popen[bytes]] = {}
    try:
        notebooks._records.mkdir(parents=True, exist_ok=True)
        for name in ("wsc", "wsd"):
            services.tracking.create_workspace(name, exist_ok=True)
            left[name] = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
            record = {
                "pid": left[name].pid,
                "created": psutil.Process(left[name].pid).create_time(),
                "host": "127.0.0.1",
                "port": 9,
                "jupyter_token": "t",
                "started_at": 1,
                "owner": gone.pid,
                "owner_created": 1.0,
            }
            (notebooks._records / f"{name}.json").write_text(json.dumps(record))
        found = notebooks.open("wsc", "http://studio", with_token=False)
        assert found.status == "starting" and ":9/lab?token=t" in (found.url or "")
        assert left["wsc"].poll() is None  # reused, not started again
        notebooks.stop_all()  # as the server's lifespan does when it stops
        for name, process in left.items():
            assert process.wait(15) is not None, name
            assert notebooks.status(name).status == "stopped"
    finally:
        for name, process in left.items():
            notebooks.stop(name)
            process.kill()
            process.wait()


# ----------------------------------------------------------- a real JupyterLab
def _run_in_kernel(lab_url: str, code: str) -> str:
    """What ``code`` prints in a new kernel of the JupyterLab at ``lab_url`` (its folder's root)."""
    import websocket  # JupyterLab's server depends on it

    parts = urlsplit(lab_url)
    token = parse_qs(parts.query)["token"][0]
    base, headers = f"http://{parts.netloc}", {"Authorization": f"token {token}"}
    made = httpx.post(f"{base}/api/kernels", json={"name": "python3", "path": ""}, headers=headers)
    assert made.status_code == 201, made.text
    kernel = made.json()["id"]
    try:
        channel = websocket.create_connection(
            f"ws://{parts.netloc}/api/kernels/{kernel}/channels",
            header=[f"Authorization: token {token}"],
            timeout=120,
        )
        msg_id = uuid.uuid4().hex
        channel.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "session": uuid.uuid4().hex,
                        "username": "test",
                        "msg_type": "execute_request",
                        "version": "5.3",
                        "date": "",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False, "allow_stdin": False},
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        printed: list[str] = []
        while True:
            message = json.loads(channel.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                printed.append(content["text"])
            elif kind == "error":
                raise AssertionError("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                break
        channel.close()
    finally:
        httpx.delete(f"{base}/api/kernels/{kernel}", headers=headers)
    return "".join(printed)


def _pid(services: Any, workspace: str) -> int:
    record = services.notebooks.root / ".servers" / f"{workspace}.json"
    return int(json.loads(record.read_text())["pid"])


@pytest.mark.slow
def test_the_button_opens_jupyterlab_whose_kernels_open_the_workspace(
    tmp_path: Path, browser: Any
) -> None:
    settings = Settings.load(home=tmp_path / "home", auth="token")
    with LiveServer(settings) as server:
        services = server.server.config.app.state.services
        for name in ("wsa", "wsb"):
            services.tracking.create_workspace(name, exist_ok=True)
        _info, mine = services.auth.create_token("wsa", "contributor", "a person")
        api = f"{server.url}/api/v1/workspaces/wsa/notebooks"
        auth = {"authorization": f"Bearer {mine}"}

        tab = Page(browser, server.url)
        tab.context.add_cookies([{"name": "cumulo_token", "value": mine, "url": server.url}])
        page = tab.open("/ws/wsa/experiments")
        with tab.context.expect_page(timeout=120_000) as opened:
            page.click("#open-notebooks")
        page.wait_for_function(
            "document.getElementById('notebooks-status').textContent.includes('starting')"
        )
        lab = opened.value
        lab.wait_for_url(re.compile(r"/lab"), timeout=120_000)
        lab.wait_for_function("document.title.includes('JupyterLab')", timeout=60_000)
        page.wait_for_selector("#notebooks-status a[href*='/lab?token=']")
        tab.shot("notebooks-button")
        assert tab.errors == []

        status = httpx.get(api, headers=auth).json()
        assert status["status"] == "running" and lab.url.startswith(status["url"].split("?")[0])
        again = httpx.post(api, headers=auth)  # the running one is reused
        assert again.status_code == 200 and again.json()["url"] == status["url"]

        # The folder's config names the workspace on this server, with a token of its own.
        folder = Path(status["folder"])
        config_file = folder / ".cumulo" / "config.json"
        assert config_file.stat().st_mode & 0o077 == 0
        config = json.loads(config_file.read_text())
        assert config["workspace"] == "wsa" and config["url"] == server.url
        assert config["token"] != mine
        given = services.auth.authenticate(config["token"])
        assert (given.workspace, given.role) == ("wsa", "contributor")
        # JupyterLab serves that folder: a notebook made through its contents API lands there.
        lab_base, lab_token = status["url"].split("/lab?token=")
        made = httpx.post(
            f"{lab_base}/api/contents",
            json={"type": "notebook"},
            headers={"Authorization": f"token {lab_token}"},
        )
        assert made.status_code == 201, made.text
        assert (folder / made.json()["path"]).is_file()
        printed = _run_in_kernel(
            status["url"],
            "from cumulo import Workspace\n"
            "ws = Workspace.from_config()\n"
            "print(ws.name, ws.url, sorted(ws.experiments))\n",
        )
        assert printed.split()[:2] == ["wsa", server.url]
        with pytest.raises(PermissionDenied, match="wsb"):  # its token opens its own workspace only
            Workspace.connect(server.url, "wsb", token=config["token"]).experiments  # noqa: B018

        # DELETE stops it (its kernels too) and revokes its token.
        pid = _pid(services, "wsa")
        stopped = httpx.delete(api, headers=auth)
        assert stopped.json() == {"workspace": "wsa", "stopped": True}
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        with pytest.raises(Unauthenticated):
            services.auth.authenticate(config["token"])
        assert httpx.get(api, headers=auth).json()["status"] == "stopped"

        # Started again through the API, with tokens of two seconds: opened past half of
        # that, its config gets a fresh token and the old one is revoked.
        services.notebooks.token_seconds = 2
        started = httpx.post(api, params={"wait": 120}, headers=auth, timeout=130)
        assert started.status_code == 200 and started.json()["status"] == "running"
        first = json.loads(config_file.read_text())["token"]
        time.sleep(1.1)
        assert httpx.post(api, headers=auth).json()["url"] == started.json()["url"]
        renewed = json.loads(config_file.read_text())["token"]
        assert renewed != first and services.auth.authenticate(renewed).workspace == "wsa"
        with pytest.raises(Unauthenticated):
            services.auth.authenticate(first)
        # It ends with the server.
        pid = _pid(services, "wsa")
        tab.context.close()
    deadline = time.monotonic() + 15
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(pid)
