"""MLflow's routes of fixed paths, called without the web framework's routing.

An MLflow client sends a few small requests per run (create, log, get, update), so
the fixed cost of each request bounds what a team's logging gets from the server:
matching the path against every route in turn, resolving each route's dependencies
anew, and handing the sync handler to a worker thread cost more than most handlers.
``DirectRoutes`` sits inside the MLflow group's app, in front of its router. At its
first request it reads the router's routes once: each route of a fixed path (at the
root, under ``/ws/{workspace}`` and under ``/ajax-api/``) whose handler takes only
what an MLflow route takes — the request, the checked workspace (``Readable`` /
``Writable``), the message (``Msg``) and the services (``Tracking`` / ``Registry``) —
goes into a table keyed by method and path, with its arguments' makers listed once.
A request found there is answered from the table: the same handler, the same access
check, the same MLflow error answers as through the router. Anything else (a path
with parameters, an async handler, an unknown path) goes on to the router unchanged.

Where the store is SQLite, the point routes (``point_route``: one run's create, get,
update and logging, bounded work of a few statements) run on the event loop itself:
a SQLite statement is a function call, shorter than the hop to a worker thread and
back. Every other route, and every route on PostgreSQL, runs in a worker thread as
the framework runs it.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.concurrency import run_in_threadpool
from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Scope, Send

from cumulo.core.errors import CumuloError
from cumulo.server.mlflow.common import (
    WORKSPACE_PREFIX,
    Message,
    MlflowRoute,
    check_workspace,
    mlflow_error,
    read_checked,
    read_message,
    registry_service,
    tracking_service,
    write_checked,
)
from cumulo.server.responses import internal_error

F = TypeVar("F", bound=Callable[..., Any])
_POINT: set[Callable[..., Any]] = set()


def point_route(handler: F) -> F:
    """Mark a handler as a point route: bounded work, run on the event loop on SQLite."""
    _POINT.add(handler)
    return handler


# An argument's maker: given the request and whether the handler runs on the event loop.
Maker = Callable[[Request, bool], Awaitable[Any]]


async def _request(request: Request, _inline: bool) -> Request:
    return request


async def _message(request: Request, _inline: bool) -> Message:
    return await read_message(request)


async def _readable(request: Request, inline: bool) -> str:
    return await check_workspace(request, write=False, inline=inline)


async def _writable(request: Request, inline: bool) -> str:
    return await check_workspace(request, write=True, inline=inline)


async def _tracking(request: Request, _inline: bool) -> Any:
    return await tracking_service(request)


async def _registry(request: Request, _inline: bool) -> Any:
    return await registry_service(request)


# The maker of each kind of argument an MLflow route takes, by its dependency.
_BY_DEPENDENCY: dict[Any, Maker] = {
    read_checked: _readable,
    write_checked: _writable,
    read_message: _message,
    tracking_service: _tracking,
    registry_service: _registry,
}


class _Direct:
    __slots__ = ("handler", "makers", "point")

    def __init__(self, handler: Callable[..., Any], makers: dict[str, Maker]) -> None:
        self.handler = handler
        self.makers = makers
        self.point = handler in _POINT


def _makers(route: APIRoute) -> dict[str, Maker] | None:
    """The makers of ``route``'s arguments, or None when the route needs the router
    (an argument of another kind, route-level dependencies, an async handler)."""
    handler = route.endpoint
    if route.dependencies or inspect.iscoroutinefunction(handler):
        return None
    makers: dict[str, Maker] = {}
    for name, hint in typing.get_type_hints(handler, include_extras=True).items():
        if name == "return":
            continue
        if hint is Request:
            makers[name] = _request
            continue
        depends = [m for m in getattr(hint, "__metadata__", ()) if hasattr(m, "dependency")]
        maker = _BY_DEPENDENCY.get(depends[0].dependency) if len(depends) == 1 else None
        if maker is None:
            return None
        makers[name] = maker
    if set(makers) != set(inspect.signature(handler).parameters):
        return None
    return makers


class DirectRoutes:
    """The middleware: a request to a route of the table is answered here (see above)."""

    def __init__(self, app: ASGIApp, router: Router, inline: bool) -> None:
        self.app = app
        self.inline = inline
        self.root: dict[tuple[str, str], _Direct] = {}
        self.in_workspace: dict[tuple[str, str], _Direct] = {}
        for context in iter_route_contexts(router.routes):
            route = context.original_route
            if not isinstance(route, MlflowRoute) or context.path is None:
                continue
            path, table = context.path, self.root
            if path.startswith(WORKSPACE_PREFIX + "/"):
                path, table = path[len(WORKSPACE_PREFIX) :], self.in_workspace
            makers = None if "{" in path or context.dependencies else _makers(route)
            if makers is not None:
                for method in context.methods or ():
                    table.setdefault((method, path), _Direct(route.endpoint, makers))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self._find(scope) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        inline = self.inline and found.point
        try:
            kwargs = {name: await make(request, inline) for name, make in found.makers.items()}
            if inline:
                response = found.handler(**kwargs)
            else:
                response = await run_in_threadpool(found.handler, **kwargs)
        except CumuloError as exc:
            response = mlflow_error(exc)
        except Exception as exc:  # the router's last handler answers the same
            response = internal_error(exc)
        assert isinstance(response, Response)
        await response(scope, receive, send)

    def _find(self, scope: Scope) -> _Direct | None:
        path: str = scope["path"]
        method: str = scope["method"]
        if not path.startswith("/ws/"):
            return self.root.get((method, path))
        cut = path.find("/", 4)
        if cut <= 4:
            return None
        found = self.in_workspace.get((method, path[cut:]))
        if found is not None:  # what the router would have matched, for the handler and audit
            scope["path_params"] = {"workspace": path[4:cut]}
        return found
