"""The MLflow-compatible API: what the MLflow 3 client calls, over Cumulo's services.

The root paths (``/api/2.0/mlflow/...``) serve the ``default`` workspace; the same
paths under ``/ws/<name>`` serve workspace ``<name>`` (tracking URI
``http://host:port/ws/<name>``). Calls this server does not implement answer
MLflow's ``ENDPOINT_NOT_FOUND`` as JSON, which the client understands.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request

from cumulo.server import access
from cumulo.server.mlflow import artifacts, experiments, logged_models, registry, runs
from cumulo.server.mlflow.common import endpoint_not_found
from cumulo.server.responses import JsonResponse

WORKSPACE_PREFIX = "/ws/{workspace}"
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _fallback() -> APIRouter:
    """Unknown paths (and methods) under MLflow's prefixes: ENDPOINT_NOT_FOUND JSON."""
    router = APIRouter(include_in_schema=False, dependencies=[Depends(access.public)])

    async def not_found(request: Request) -> JsonResponse:
        return endpoint_not_found(request)

    for prefix in ("/api/2.0/mlflow/", "/api/3.0/mlflow/", "/api/2.0/mlflow-artifacts/"):
        router.add_api_route(prefix + "{rest:path}", not_found, methods=_METHODS)
    return router


def include(app: FastAPI) -> None:
    app.state.mlflow_default_experiments = {}
    modules = (experiments, runs, logged_models, registry, artifacts)
    fallback = _fallback()
    for prefix in ("", WORKSPACE_PREFIX):
        for module in modules:
            app.include_router(module.router, prefix=prefix)
        app.include_router(fallback, prefix=prefix)
