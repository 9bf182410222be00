"""Running the app under uvicorn, in one process or in several workers side by side.

Workers are separate processes started by uvicorn; each builds its app with
``app_from_env`` from ``CUMULO_*`` environment variables, so all of them serve
the same store. Their state lives in the store only, so several workers, or
several servers on one PostgreSQL, run safely side by side.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from cumulo.core.settings import Settings
from cumulo.server.app import create_app

try:  # the faster parser when it is installed, else the pure-Python one
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - depends on the environment
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]

# Longer than the SDK's keep-alive expiry (15 s): the client drops an idle connection
# first, so it never sends a request on one the server is closing.
KEEP_ALIVE_S = 30


class NoDelayProtocol(_Base):
    """uvicorn's HTTP protocol with Nagle's algorithm off on every connection.

    With several workers uvicorn binds the listening socket itself with protocol
    number 0, and asyncio then leaves TCP_NODELAY unset on accepted connections:
    each response on a kept-alive connection waited for the client's delayed ACK
    (about 40 ms). Setting it here makes one and several workers behave alike.
    """

    def connection_made(self, transport: Any) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            set_nodelay(sock)
        super().connection_made(transport)


def set_nodelay(sock: Any) -> None:
    """Turn Nagle's algorithm off on a TCP socket (other sockets are left alone)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that rebuild ``settings`` in a worker process."""
    env = {
        "CUMULO_HOME": str(settings.home),
        "CUMULO_DATABASE_URL": settings.database_url,
        "CUMULO_ARTIFACT_ROOT": settings.artifact_root,
        "CUMULO_AUTH": settings.auth,
        "CUMULO_MAX_REQUEST_BYTES": str(settings.max_request_bytes),
        "CUMULO_AUTH_FAILURES_PER_MINUTE": str(settings.auth_failures_per_minute),
        "CUMULO_AUDIT_RETENTION_DAYS": str(settings.audit_retention_days),
    }
    if settings.s3_endpoint_url:
        env["CUMULO_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    if settings.public_url:
        env["CUMULO_PUBLIC_URL"] = settings.public_url
    if settings.advertise_host:
        env["CUMULO_ADVERTISE_HOST"] = settings.advertise_host
    if settings.service_urls:
        env["CUMULO_SERVICE_URLS"] = ",".join(settings.service_urls)
    return env


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    overrides: dict[str, Any] = {}
    if env.get("CUMULO_MAX_REQUEST_BYTES"):
        overrides["max_request_bytes"] = int(env["CUMULO_MAX_REQUEST_BYTES"])
    return Settings.load(environ=env, **overrides)


def app_from_env() -> FastAPI:
    """The app factory uvicorn calls in each worker."""
    _log_to_stderr()
    return create_app(settings_from_env())


def _log_to_stderr() -> None:
    """The server's own messages (scheduler, supervisor, audit) with time, level and source,
    beside uvicorn's; without a handler Python would print warnings bare and drop the rest."""
    logger = logging.getLogger("cumulo")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve the workspace API until interrupted."""
    import dataclasses

    import uvicorn

    if settings.public_url is None:  # jobs started by this server report back here
        reach = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        reach = f"[{reach}]" if ":" in reach else reach
        settings = dataclasses.replace(settings, public_url=f"http://{reach}:{port}")
    os.environ.update(settings_env(settings))
    uvicorn.run(
        "cumulo.server.serve:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        http="cumulo.server.serve:NoDelayProtocol",
        log_level=log_level,
        access_log=access_log,
        timeout_keep_alive=KEEP_ALIVE_S,
        server_header=False,
    )
