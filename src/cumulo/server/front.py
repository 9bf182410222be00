"""The server's front: ``/health`` at once, each route group built on its first request.

``cumulo server`` serves this plain ASGI app, not one FastAPI app of every route:
importing the web framework and building some 400 routes with their models took
more CPU than the rest of a start together. The front opens nothing but what it was
given (the services, whose store is open and migrated) and dispatches by path
prefix to one of the groups of ``cumulo.server.routes``, each a FastAPI app built
in a worker thread on the first request that needs it (requests that arrive while
it is being built wait for it, and ``/health`` keeps answering):

==============================================================  ============
path                                                            served by
==============================================================  ============
``/health``                                                     the front
``/api/2.0/…``, ``/api/3.0/…``, ``/get-artifact``,              ``mlflow``
``/model-versions/get-artifact``, and each under ``/ws/<name>``
``/ajax-api/…`` (and under ``/ws/<name>``)                      ``mlflow``, as ``/api/…``
                                                                (but the UI's own routes)
``/api/v1/…``                                                   ``native``
``/endpoints/…`` (scoring)                                      the endpoint router
``/``, ``/login``, ``/logout``, ``/studio-data/…``,             ``studio``
``/studio-static/…``, ``/ws/<name>`` and its other pages
``/openapi.json``                                               ``openapi``
``/docs``, ``/docs/oauth2-redirect``, ``/redoc``                ``docs``
anything else                                                   404 from the front
==============================================================  ============

A run of slashes where a client joined its tracking URI with a route's path
(``/ws/<name>//model-versions/…``) counts as one, as in MLflow's server.

``/health`` answering 200 means "ready to serve": the factory opened the store,
checked its migrations and built the tracking and auth services before the socket
was bound. The background workers (job scheduler, endpoint supervisor, sweep and
pipeline drivers), which no request waits for, are started by the lifespan in a
thread of their own, so the first requests are answered meanwhile (one that needs a
worker's service waits for it to be built); if they cannot start, the error is
logged and ``/health`` answers 503 from then on. The ``openapi`` group
describes the routes of every group (building those first), so ``/openapi.json`` is
the same description as ``create_app``'s; the ``docs`` group only shows it. Writes
and refusals are audited and bodies limited here, in front of every group, as in
``create_app``'s app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from cumulo.core.errors import AlreadyExists, Conflict
from cumulo.core.settings import DEFAULT_WORKSPACE, Settings
from cumulo.server.asgi import send_error
from cumulo.server.audit import AuditLog, AuditTrail
from cumulo.server.limits import BodySizeLimit

if TYPE_CHECKING:
    from cumulo.services.context import Services

log = logging.getLogger("cumulo.server")

# The path the client sent, where the front rewrote it (an /ajax-api/ alias).
CLIENT_PATH = "cumulo.client_path"
_DOCS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
# MLflow's paths outside /api/, and the web UI's routes that exist under /ajax-api/ only
# (served as they are, not rewritten to /api/).
_MLFLOW_PATHS = frozenset(
    {"/get-artifact", "/model-versions/get-artifact", "/ajax-api/2.0/mlflow/upload-artifact"}
)
_STUDIO = frozenset({"/", "/login", "/logout"})
_STUDIO_PREFIXES = ("/studio-data/", "/studio-static/")
_HEALTH = orjson.dumps({"status": "ok"})

# The groups of routes; "openapi" (their description) is made of their routes.
GROUPS = ("mlflow", "native", "studio")
# Builds a group's app from its name and, for "openapi", the apps of GROUPS.
Builder = Callable[[str, list[Any]], ASGIApp]


def route(path: str) -> tuple[str | None, str | None]:
    """``(group, rewritten path)`` of a request path: the group is ``"mlflow"``,
    ``"native"``, ``"studio"``, ``"openapi"``, ``"docs"``, ``"scoring"``, ``"health"`` or
    None (no such route); the path is the one the group serves it at, where the front
    rewrites it."""
    joined = _joined(path)
    if joined is not None:
        group, rewritten = route(joined)
        return group, None if group is None else rewritten or joined
    if path == "/health":
        return "health", None
    workspace, rest = "", path
    if path.startswith("/ws/"):
        cut = path.find("/", 4)
        if cut == -1:
            return "studio", None  # the workspace's own page
        workspace, rest = path[:cut], path[cut:]
    if rest in _MLFLOW_PATHS:
        return "mlflow", None
    if rest.startswith("/ajax-api/"):
        return "mlflow", workspace + "/api/" + rest[len("/ajax-api/") :]
    if rest.startswith("/api/"):
        if not workspace and (rest.startswith("/api/v1/") or rest == "/api/v1"):
            return "native", None
        return "mlflow", None
    if workspace:
        return "studio", None
    if path in _STUDIO or path.startswith(_STUDIO_PREFIXES):
        return "studio", None
    if path.startswith("/endpoints/"):
        return "scoring", None
    if path == "/openapi.json":
        return "openapi", None
    if path in _DOCS:
        return "docs", None
    return None, None


def _joined(path: str) -> str | None:
    """``path`` without the run of slashes where a client joined its tracking URI (the
    server's root or ``/ws/<name>``, perhaps ending in ``/``) with a route's path, as
    MLflow's server reads it; None when there is none. Slashes further on are the
    route's (an artifact path ``//etc/x`` stays absolute, and refused)."""
    cut = 0
    if path.startswith("/ws/"):
        cut = path.find("/", 4)
        if cut == -1:
            return None
    if not path.startswith("//", cut):
        return None
    return path[:cut] + "/" + path[cut:].lstrip("/")


def client_path(scope: Scope) -> str:
    """The path as the client sent it (before an alias was rewritten)."""
    return str(scope.get(CLIENT_PATH) or scope["path"])


class Front:
    """The ASGI app ``cumulo server`` serves: audit and body limit, then the dispatch."""

    def __init__(
        self, settings: Settings, services: Services, audit: AuditLog, build: Builder
    ) -> None:
        # What create_app's app keeps in app.state, for the same readers.
        self.state = SimpleNamespace(settings=settings, services=services, auth=services.auth)
        self.state.audit = audit
        self._build = build
        self._built: dict[str, ASGIApp] = {}
        self._building: dict[str, asyncio.Future[ASGIApp]] = {}
        # Set once the lifespan's background workers have started (or failed to).
        self.workers_started = threading.Event()
        self.workers_failed: Exception | None = None
        limited = BodySizeLimit(self._dispatch, max_bytes=settings.max_request_bytes)
        self._app = AuditTrail(limited, audit=audit)  # outermost: sees every answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self._app(scope, receive, send)

    def built(self) -> frozenset[str]:
        """The groups built so far."""
        return frozenset(self._built)

    async def group(self, name: str) -> ASGIApp:
        """Group ``name``'s app, built in a worker thread on first use (once: callers that
        come while it is being built wait for the same build; a failed build is tried
        again by the next caller)."""
        found = self._built.get(name)
        if found is not None:
            return found
        task = self._building.get(name)
        if task is None:
            task = self._building[name] = asyncio.ensure_future(self._make(name))
            task.add_done_callback(lambda _done: self._building.pop(name, None))
        return await asyncio.shield(task)

    async def _make(self, name: str) -> ASGIApp:
        # The OpenAPI description lists the routes of every group: those are built first.
        parts = [await self.group(g) for g in GROUPS] if name == "openapi" else []
        loop = asyncio.get_running_loop()
        app = await loop.run_in_executor(None, self._build, name, parts)
        self._built[name] = app
        log.info("route group %s built", name)
        return app

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return
        path = scope["path"]
        group, rewritten = route(path)
        if group == "health":
            await self._health(scope, send)
            return
        if group == "scoring":
            await self.state.services.hosting.router(scope, receive, send)
            return
        if group is None:
            await _not_found(scope, send)
            return
        try:
            app = await self.group(group)
        except Exception as exc:
            await _failed(scope, send, exc)
            return
        if rewritten is None:
            await app(scope, receive, send)
            return
        scope[CLIENT_PATH] = path
        scope["path"] = rewritten
        try:
            await app(scope, receive, send)
        finally:  # what is noted of the request (the audit) names the client's path
            scope["path"] = path

    async def _health(self, scope: Scope, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "GET":
            message = f"{scope['method']} is not allowed on /health."
            await send_error(send, 405, "ENDPOINT_NOT_FOUND", message, [(b"allow", b"GET")])
            return
        if self.workers_failed is not None:
            message = f"The server's background workers did not start: {self.workers_failed}"
            await send_error(send, 503, "TEMPORARILY_UNAVAILABLE", message, [])
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", b"15")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": _HEALTH})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The background workers, run as ``create_app``'s lifespan runs them, but started
        in a thread: the server answers while they start."""
        workers = contextlib.ExitStack()
        await receive()  # lifespan.startup
        starting = threading.Thread(
            target=self._start_workers, args=(workers,), name="cumulo-start-workers", daemon=True
        )
        starting.start()
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await asyncio.to_thread(starting.join)
        workers.close()
        await send({"type": "lifespan.shutdown.complete"})

    def _start_workers(self, workers: contextlib.ExitStack) -> None:
        state = self.state
        try:
            workers.enter_context(background_workers(state.settings, state.services, state.audit))
        except Exception as exc:
            log.exception("the server's background workers did not start")
            self.workers_failed = exc
        finally:
            self.workers_started.set()


@contextlib.contextmanager
def background_workers(settings: Settings, services: Services, audit: AuditLog) -> Iterator[None]:
    """The server's background workers, started and stopped here only (both are safe
    in several workers and servers at once): the replica supervisor, so endpoints are
    served for as long as the server runs, and the job scheduler. With token checks on,
    each job gets a token of its own (see ``Endpoint``). The audit log is stored at the end.
    """
    services.hosting.start()
    try:
        services.scheduler.start(url=settings.public_url, issue_tokens=settings.auth == "token")
        services.sweeper.start()
        services.pipeliner.start()
        try:
            yield
        finally:
            services.pipeliner.stop()
            services.sweeper.stop()
            # Its pool nodes stop with it: each ends the job at hand and takes no other,
            # so no queued job starts on a node whose server is shutting down.
            services.scheduler.stop(stop_nodes=True, wait=False)
    finally:
        services.notebooks.stop_all()  # the JupyterLab servers it started end with it
        services.hosting.stop()
        audit.close()


def ensure_default_workspace(services: Services) -> None:
    """Every server has a ``default`` workspace from its first start."""
    # Another worker may create it at the same moment: that is as good.
    with contextlib.suppress(AlreadyExists, Conflict):
        services.tracking.create_workspace(DEFAULT_WORKSPACE, exist_ok=True)


def audit_log(settings: Settings, services: Services) -> AuditLog:
    return AuditLog(services.auth, settings.auth_failures_per_minute, settings.audit_retention_days)


async def _not_found(scope: Scope, send: Send) -> None:
    if scope["type"] == "http":
        message = f"No endpoint {scope['path']}."
        await send_error(send, 404, "ENDPOINT_NOT_FOUND", message, [])


async def _failed(scope: Scope, send: Send, exc: Exception) -> None:
    error_id = uuid.uuid4().hex[:12]
    log.error("internal error %s: a route group could not be built", error_id, exc_info=exc)
    if scope["type"] == "http":
        message = f"Internal server error (error id {error_id}); see the server log."
        await send_error(send, 500, "INTERNAL_ERROR", message, [])


def check_auth(settings: Settings) -> None:
    if settings.auth not in ("none", "token"):
        raise ValueError(f"auth must be 'none' or 'token', got {settings.auth!r}")
