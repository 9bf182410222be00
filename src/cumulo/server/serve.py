"""Running the app under uvicorn, in one process or in several workers side by side.

Workers are separate processes started by uvicorn; each builds its app with
``app_for`` from the settings the server was started with (uvicorn hands them
to the worker with its configuration), so all of them serve the same store.
Their state lives in the store only, so several workers, or several servers on
one PostgreSQL, run safely side by side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import socket
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from cumulo.core.settings import Settings

if TYPE_CHECKING:
    from cumulo.server.front import Front
    from cumulo.services.context import Services

try:  # the faster parser when it is installed, else the pure-Python one
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - depends on the environment
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]

# Longer than the SDK's keep-alive expiry (15 s): the client drops an idle connection
# first, so it never sends a request on one the server is closing.
KEEP_ALIVE_S = 30
STARTUP_FAILURE = 3  # uvicorn's exit status when the server could not start


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


def app_for(settings: Settings) -> Front:
    """The app factory uvicorn calls in each worker process, with the server's settings:
    the front (``cumulo.server.front``), which builds each group of routes on first use."""
    # Imported when called: a new worker imports this module to receive its configuration
    # and must answer uvicorn's first health check (5 s) before the app is built.
    from cumulo.services.context import open_services

    _log_to_stderr()
    return front_app(settings, open_services(settings))


def front_app(settings: Settings, services: Services) -> Front:
    """The front over ``services``, its groups built by ``cumulo.server.app.build_group``
    (imported at the first build: the front itself needs no web framework)."""
    from cumulo.server.front import Front, audit_log, check_auth, ensure_default_workspace

    check_auth(settings)
    ensure_default_workspace(services)
    audit = audit_log(settings, services)

    def build(name: str, parts: list[Any]) -> Any:
        from cumulo.server.app import build_docs, build_group

        if name in ("docs", "openapi"):  # the pages need no routes; the description does
            return build_docs(parts)
        return build_group(name, settings, services, audit)

    return Front(settings, services, audit, build)


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
    if settings.public_url is None:  # jobs started by this server report back here
        reach = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        reach = f"[{reach}]" if ":" in reach else reach
        settings = dataclasses.replace(settings, public_url=f"http://{reach}:{port}")
    config = worker_config(
        settings,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=access_log,
    )
    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    if config.workers == 1 and not server.started:
        raise SystemExit(STARTUP_FAILURE)


def worker_config(settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration of the server's workers.

    A worker is a fresh process that uvicorn hands this configuration to; the app
    factory in it carries the settings along, so each worker builds its app from
    the very settings the server was started with.
    """
    return uvicorn.Config(
        functools.partial(app_for, settings),
        factory=True,
        http="cumulo.server.serve:NoDelayProtocol",
        timeout_keep_alive=KEEP_ALIVE_S,
        server_header=False,
        ws="none",  # no route takes a WebSocket: its protocol module is not loaded
        **options,
    )
