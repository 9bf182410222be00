"""The FastAPI app factory: native API, MLflow-compatible API and studio pages.

No business logic here: routers parse, authorise, call a service and render.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from cumulo.core.errors import HTTP_STATUS, CumuloError
from cumulo.core.settings import Settings
from cumulo.server import access, routes
from cumulo.server.audit import AuditLog, AuditTrail
from cumulo.server.front import (
    audit_log,
    background_workers,
    check_auth,
    client_path,
    ensure_default_workspace,
)
from cumulo.server.limits import BodySizeLimit
from cumulo.server.responses import JsonResponse, internal_error
from cumulo.services.context import Services, open_services


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    with background_workers(app.state.settings, app.state.services, app.state.audit):
        yield


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """Every route in one app, with the background workers in its lifespan: for
    in-process servers and tests, and the OpenAPI description of the whole API.
    (``cumulo server`` serves ``serve.front_app``, which builds each group of routes
    on first use.)"""
    services = services or open_services(settings)
    check_auth(settings)
    ensure_default_workspace(services)
    audit = audit_log(settings, services)
    app = build_group("all", settings, services, audit, lifespan=_lifespan)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(AuditTrail, audit=audit)  # outermost: sees every answer
    return app


def build_group(
    group: str, settings: Settings, services: Services, audit: AuditLog, **options: Any
) -> FastAPI:
    """The app of one route group of ``cumulo.server.routes`` (``"all"``: every route,
    ``/health`` and the OpenAPI description and its pages, which only this one serves)."""
    whole = group == "all"
    if not whole:
        options.update(openapi_url=None, docs_url=None, redoc_url=None)
    app = _app(**options)
    app.state.settings = settings
    app.state.services = services
    app.state.auth = services.auth
    app.state.audit = audit
    _install_error_handlers(app)
    if whole:
        _health(app)
        routes.include_all(app)
    else:
        routes.include_group(app, group)
    access.enforce(app)  # a route that declares who may call it is served; others stop here
    return app


def build_docs(groups: Sequence[FastAPI]) -> FastAPI:
    """The OpenAPI description and its pages, for the routes of ``groups`` (the front's
    groups, built) and ``/health``: the same description as ``create_app``'s app. (The
    pages alone need no ``groups``: they load the description from ``/openapi.json``.)"""
    app = _app()
    _health(app)
    for group in groups:
        app.router.routes.extend(group.router.routes)
    return app


def _app(**options: Any) -> FastAPI:
    return FastAPI(
        title="Cumulo",
        version="0.1.0",
        description="A self-hosted machine learning workspace.",
        default_response_class=JsonResponse,
        **options,
    )


def _health(app: FastAPI) -> None:
    @app.get("/health", tags=["server"], dependencies=[Depends(access.public)])
    def health() -> dict[str, str]:
        return {"status": "ok"}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CumuloError)
    async def _cumulo_error(_request: Request, exc: CumuloError) -> JSONResponse:
        return JsonResponse(exc.to_dict(), status_code=HTTP_STATUS.get(exc.code, 500))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Unknown routes and methods answer JSON in the same shape, never an HTML page.
        path = client_path(request.scope)
        if exc.status_code == 404:
            code, message = "ENDPOINT_NOT_FOUND", f"No endpoint {path}."
        elif exc.status_code == 405:
            code = "ENDPOINT_NOT_FOUND"
            message = f"{request.method} is not allowed on {path}."
        elif exc.status_code < 500:
            code, message = "INVALID_PARAMETER_VALUE", f"Invalid request: {exc.detail}"
        else:
            code, message = "INTERNAL_ERROR", str(exc.detail)
        return JsonResponse(
            {"error_code": code, "message": message},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return JsonResponse(
            {"error_code": "INVALID_PARAMETER_VALUE", "message": f"Invalid request: {problems}"},
            status_code=400,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return internal_error(exc)
