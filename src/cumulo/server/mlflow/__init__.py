"""The MLflow-compatible API: what the MLflow 3 client calls, over Cumulo's services.

The root paths (``/api/2.0/mlflow/...``) serve the ``default`` workspace; the same
paths under ``/ws/<name>`` serve workspace ``<name>`` (tracking URI
``http://host:port/ws/<name>``). Calls this server does not implement answer
MLflow's ``ENDPOINT_NOT_FOUND`` as JSON, which the client understands. Every route is
served under ``/ajax-api/`` too, where MLflow's web UI calls it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import APIRoute

from cumulo.server import access
from cumulo.server.mlflow import artifacts, experiments, logged_models, registry, runs
from cumulo.server.mlflow.common import WORKSPACE_PREFIX, endpoint_not_found
from cumulo.server.mlflow.direct import DirectRoutes
from cumulo.server.responses import JsonResponse

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _fallback(root: str) -> APIRouter:
    """Unknown paths (and methods) under MLflow's prefixes: ENDPOINT_NOT_FOUND JSON."""
    router = APIRouter(include_in_schema=False, dependencies=[Depends(access.public)])

    async def not_found(request: Request) -> JsonResponse:
        return endpoint_not_found(request)

    for prefix in ("2.0/mlflow/", "3.0/mlflow/", "2.0/mlflow-artifacts/"):
        router.add_api_route(root + prefix + "{rest:path}", not_found, methods=_METHODS)
    return router


def _ajax_aliases(routers: list[APIRouter]) -> APIRouter:
    """MLflow's web UI calls the same routes under ``/ajax-api/``: each route again there."""
    aliases = APIRouter(include_in_schema=False)
    for source in routers:
        for route in source.routes:
            if isinstance(route, APIRoute) and route.path.startswith("/api/"):
                aliases.add_api_route(
                    "/ajax-api/" + route.path[len("/api/") :],
                    route.endpoint,
                    methods=sorted(route.methods or ()),
                    dependencies=route.dependencies,
                    status_code=route.status_code,
                    route_class_override=type(route),
                    include_in_schema=False,
                )
    return aliases


def include(app: FastAPI, ajax_aliases: bool = True) -> None:
    """MLflow's routes at the root and under ``/ws/{workspace}``; with ``ajax_aliases``,
    again under ``/ajax-api/`` (without, a front that rewrites those paths serves them)."""
    app.state.mlflow_default_experiments = {}
    served = [m.router for m in (experiments, runs, logged_models, registry, artifacts)]
    routers = [*served, _fallback("/api/")]
    if ajax_aliases:
        # The aliases come after every /api/ route, so that they cost those nothing in routing.
        routers += [_ajax_aliases(served), _fallback("/ajax-api/")]
    for prefix in ("", WORKSPACE_PREFIX):
        for router in routers:
            app.include_router(router, prefix=prefix)
    # Routes of fixed paths are answered in front of the router (read at the first request).
    inline = app.state.services.database.is_sqlite
    app.add_middleware(DirectRoutes, router=app.router, inline=inline)
