"""Who may call each route: every route declares it, or the server does not start.

A route declares its access by depending on a checker registered here with
``declares`` (the native and MLflow routers' ``Readable`` / ``Writable`` /
``Managed`` workspace arguments, the studio's page checks, and the generic
ones below). ``enforce(app)`` walks every route of the app at start-up and
refuses to serve an app in which one declares nothing: a new route cannot be
public by accident. ``route_table(app)`` lists the declarations, for the
security tests' route x identity matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.routing import iter_route_contexts
from starlette.concurrency import run_in_threadpool

from cumulo.server.auth import ALL_WORKSPACES, current_token, require, token_auth


class Access(StrEnum):
    PUBLIC = "public"  # anyone: probes, the login page, assets, "no such endpoint" answers
    SIGNED_IN = "signed-in"  # any valid token; the handler shows only what it may read
    READ = "read"  # a reader (or more) of the path's workspace
    WRITE = "write"  # a contributor (or more) of the path's workspace
    MANAGE = "manage"  # an owner of the path's workspace
    SERVER = "server"  # an owner token for every workspace
    ENDPOINT_KEY = "endpoint-key"  # the endpoint's key or a token, checked by the scoring proxy


# Ordered weakest to strongest: a route with several declarations needs the strongest.
_STRENGTH = list(Access)

# Routes of the framework and mounted apps, which take no dependencies.
MOUNTS = {
    "/openapi.json": Access.PUBLIC,
    "/docs": Access.PUBLIC,
    "/docs/oauth2-redirect": Access.PUBLIC,
    "/redoc": Access.PUBLIC,
    "/studio-static": Access.PUBLIC,
    "/endpoints": Access.ENDPOINT_KEY,
}

_declared: dict[Callable[..., Any], Access] = {}
F = TypeVar("F", bound=Callable[..., Any])


def declares(access: Access) -> Callable[[F], F]:
    """Register a dependency as the check of ``access`` (it must raise when it fails)."""

    def mark(check: F) -> F:
        _declared[check] = access
        return check

    return mark


# ------------------------------------------------------------ generic checks
@declares(Access.PUBLIC)
async def public() -> None:
    """Anyone may call it."""


@declares(Access.SIGNED_IN)
async def signed_in(request: Request) -> None:
    if token_auth(request):
        await run_in_threadpool(current_token, request)


@declares(Access.SERVER)
async def server_owner(request: Request) -> None:
    if token_auth(request):
        await run_in_threadpool(require, request, ALL_WORKSPACES, True, manage=True)


@declares(Access.ENDPOINT_KEY)
async def endpoint_key() -> None:
    """The handler checks the endpoint's key (or a workspace token) itself."""


# ------------------------------------------------------------------ checking
@dataclass(frozen=True)
class RouteAccess:
    methods: tuple[str, ...]
    path: str
    access: Access | None  # None: declares nothing


def route_table(app: FastAPI) -> list[RouteAccess]:
    """Every route of ``app`` with what it declares."""
    table = []
    for route in iter_route_contexts(app.routes):
        path = str(route.path)
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            table.append(RouteAccess(("*",), path, MOUNTS.get(path)))
            continue
        found = [_declared[c] for c in _calls(dependant) if c in _declared]
        strongest = max(found, key=_STRENGTH.index) if found else None
        table.append(RouteAccess(tuple(sorted(route.methods or ())), path, strongest))
    return table


def enforce(app: FastAPI) -> None:
    """Refuse to build an app with a route that declares no access."""
    missing = [f"{' '.join(r.methods)} {r.path}" for r in route_table(app) if r.access is None]
    if missing:
        raise RuntimeError(
            "These routes declare no access rule, so the server will not serve them: "
            + "; ".join(missing)
            + ". Give each a checker from cumulo.server.access (or a Readable/Writable argument)."
        )


def _calls(dependant: Any) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)
