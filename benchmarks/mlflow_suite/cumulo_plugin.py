"""A pytest plugin that points MLflow's own server tests at ``cumulo server``.

MLflow's ``tests/tracking/test_rest_tracking.py`` and ``test_model_registry.py`` start their
server with ``ServerThread(app, port)`` from ``tests/tracking/integration_test_utils.py``
(each test on a fresh copy of an empty database). This plugin replaces only that class; the
test bodies and the rest of MLflow's fixtures run unchanged. Each test gets an empty store
of its own in one of two ways (``CUMULO_SUITE_ISOLATION``):

- ``workspace`` (default): one ``cumulo server`` process for the session, a new workspace
  per test; the client's tracking URI is ``http://127.0.0.1:<port>/ws/<workspace>``;
- ``process``: a new ``cumulo server`` process on an empty home per test (slower: each
  start imports and migrates; one spare is kept starting in the background).
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

ISOLATION = os.environ.get("CUMULO_SUITE_ISOLATION", "workspace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Process:
    """One ``cumulo server`` on its own home folder and port."""

    def __init__(self) -> None:
        self.home = tempfile.mkdtemp(prefix="cumulo-suite-")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "cumulo.cli.main",
            "server",
            "--home",
            self.home,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        self.log = open(os.path.join(self.home, "server.log"), "wb")  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        # The tests' working folder, as for MLflow's in-process server: relative artifact
        # locations resolve against it.
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.healthy = False

    def wait_healthy(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as reply:
                    self.healthy = reply.status == 200
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        if not self.healthy:
            self.stop()
            with open(os.path.join(self.home, "server.log"), errors="replace") as f:
                raise RuntimeError(f"cumulo server did not come up:\n{f.read()}")

    def new_workspace(self, name: str) -> str:
        request = urllib.request.Request(
            self.url + "/api/v1/workspaces",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            assert reply.status == 201, reply.read()
        return f"{self.url}/ws/{name}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


_shared: _Process | None = None  # workspace isolation: the session's server
_spare: _Process | None = None  # process isolation: the next test's server, starting
_numbers = itertools.count(1)


def _take_process() -> _Process:
    global _spare
    taken = _spare or _Process()
    _spare = _Process()
    return taken


@atexit.register
def _stop_all() -> None:
    global _shared, _spare
    for server in (_shared, _spare):
        if server is not None:
            server.stop()
    _shared = _spare = None


class CumuloServerThread:
    """Stands in for MLflow's ``ServerThread``: ``with ServerThread(app, port) as url``.

    The app and port MLflow's fixture passes are its own in-process server's; Cumulo's
    server picks a free port and keeps its own store.
    """

    def __init__(self, app: Any = None, port: int | None = None) -> None:
        self._own: _Process | None = None
        self.url = ""

    def __enter__(self) -> str:
        global _shared
        if ISOLATION == "process":
            self._own = _take_process()
            self._own.wait_healthy()
            self.url = self._own.url
        else:
            if _shared is None:
                _shared = _Process()
            _shared.wait_healthy()
            self.url = _shared.new_workspace(f"t{next(_numbers)}")
        return self.url

    def __exit__(self, *exc: object) -> None:
        if self._own is not None:
            self._own.stop()
            self._own = None


def pytest_sessionstart(session: Any) -> None:
    from tests.tracking import integration_test_utils

    integration_test_utils.ServerThread = CumuloServerThread  # type: ignore[misc,assignment]


def pytest_sessionfinish(session: Any) -> None:
    _stop_all()


def pytest_report_header(config: Any) -> str:
    return f"server under test: cumulo server ({ISOLATION} isolation per test)"
