"""An MLflow tracking endpoint for one job of an embedded workspace, on a loopback port.

A job that a server schedules gets ``MLFLOW_TRACKING_URI`` pointing at that
server. A job that an embedded workspace schedules has no server to point at,
yet its runner opens the workspace's store itself: so the runner serves the
same app (MLflow-compatible API included) over that store, for that job only,
while the job runs. The port is bound at once and the app is built on the
first request, so a job that never calls MLflow pays for a socket and nothing
else. Only requests that carry the job's own secret (``MLFLOW_TRACKING_TOKEN``,
sent by the MLflow client as a bearer token) are answered.

The runner names ``cumulo.server.bridge:open_bridge`` in the job's spec and
imports it by that name: the compute layer never imports the server.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
import select
import socket
import threading
from typing import Any

from cumulo.core.settings import Settings, mlflow_tracking_uri

log = logging.getLogger("cumulo.bridge")

LOOPBACK = "127.0.0.1"


class LoopbackBridge:
    """The workspace's API on ``127.0.0.1:<free port>`` for one job; ``env`` is what the
    job's script needs to reach it, ``close`` stops it."""

    def __init__(self, workspace: str, run_id: str, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.load()
        self.secret = secrets.token_urlsafe(24)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOOPBACK, 0))
        self._sock.listen(128)
        self.url = f"http://{LOOPBACK}:{self._sock.getsockname()[1]}"
        self.env = {
            "MLFLOW_TRACKING_URI": mlflow_tracking_uri(self.url, workspace),
            "MLFLOW_TRACKING_TOKEN": self.secret,
            "MLFLOW_RUN_ID": run_id,
        }
        self._closed = threading.Event()
        self._server: Any = None
        self._thread = threading.Thread(target=self._serve, name="cumulo-bridge", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # Wait for the first connection (it waits in the backlog), then build the app.
        while not self._closed.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.2)
            if ready:
                break
        else:
            return
        try:
            import uvicorn

            from cumulo.server.app import create_app
            from cumulo.services.context import open_services

            app = create_app(self.settings, open_services(self.settings))
            config = uvicorn.Config(
                _RequireSecret(app, self.secret),
                lifespan="off",  # the runner's process hosts no scheduler nor endpoints
                log_level="warning",
                access_log=False,
            )
            self._server = uvicorn.Server(config)
            if not self._closed.is_set():
                self._server.run(sockets=[self._sock])
        except Exception:  # the job still runs; its MLflow calls fail and say so
            log.exception("the MLflow endpoint for this job could not start")

    def close(self) -> None:
        self._closed.set()
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout=10)
        with contextlib.suppress(OSError):
            self._sock.close()


class _RequireSecret:
    """Answers 401 to any HTTP request without ``Authorization: Bearer <secret>``."""

    def __init__(self, app: Any, secret: str) -> None:
        self.app = app
        self.expected = f"Bearer {secret}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = (
                    b'{"error_code": "UNAUTHENTICATED", "message": '
                    b'"This endpoint answers only the job it was started for."}'
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def open_bridge(workspace: str, run_id: str) -> LoopbackBridge:
    """The bridge for one job, over the store named by this process's ``CUMULO_*`` variables."""
    return LoopbackBridge(workspace, run_id)
