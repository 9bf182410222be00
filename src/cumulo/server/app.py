"""The FastAPI app factory: native API, MLflow-compatible API and studio pages.

No business logic here: routers parse, authorise, call a service and render.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from cumulo.core.errors import HTTP_STATUS, AlreadyExists, Conflict, CumuloError
from cumulo.core.settings import DEFAULT_WORKSPACE, Settings
from cumulo.server import access
from cumulo.server.audit import AuditLog, AuditTrail
from cumulo.server.limits import BodySizeLimit
from cumulo.server.responses import JsonResponse
from cumulo.services.context import Services, open_services

log = logging.getLogger("cumulo.server")


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The server's background workers, started and stopped here only (both are safe
    in several workers and servers at once): the replica supervisor, so endpoints are
    served for as long as the server runs, and the job scheduler. With token checks on,
    each job gets a token of its own (see ``Endpoint``).
    """
    settings: Settings = app.state.settings
    services: Services = app.state.services
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
        app.state.audit.close()


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    services = services or open_services(settings)
    app = FastAPI(
        title="Cumulo",
        version="0.1.0",
        description="A self-hosted machine learning workspace.",
        default_response_class=JsonResponse,
        lifespan=_lifespan,
    )
    if settings.auth not in ("none", "token"):
        raise ValueError(f"auth must be 'none' or 'token', got {settings.auth!r}")
    app.state.settings = settings
    app.state.services = services
    app.state.auth = services.auth
    _ensure_default_workspace(services)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.state.audit = AuditLog(
        services.auth, settings.auth_failures_per_minute, settings.audit_retention_days
    )
    app.add_middleware(AuditTrail, audit=app.state.audit)  # outermost: sees every answer
    _install_error_handlers(app)

    @app.get("/health", tags=["server"], dependencies=[Depends(access.public)])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    # Routers are added here, one module per resource.
    from cumulo.server import routes

    routes.include_all(app)
    access.enforce(app)  # a route that declares who may call it is served; others stop here
    return app


def _ensure_default_workspace(services: Services) -> None:
    """Every server has a ``default`` workspace from its first start."""
    # Another worker may create it at the same moment: that is as good.
    with contextlib.suppress(AlreadyExists, Conflict):
        services.tracking.create_workspace(DEFAULT_WORKSPACE, exist_ok=True)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CumuloError)
    async def _cumulo_error(_request: Request, exc: CumuloError) -> JSONResponse:
        return JsonResponse(exc.to_dict(), status_code=HTTP_STATUS.get(exc.code, 500))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Unknown routes and methods answer JSON in the same shape, never an HTML page.
        if exc.status_code == 404:
            code, message = "ENDPOINT_NOT_FOUND", f"No endpoint {request.url.path}."
        elif exc.status_code == 405:
            code = "ENDPOINT_NOT_FOUND"
            message = f"{request.method} is not allowed on {request.url.path}."
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
        error_id = uuid.uuid4().hex[:12]
        log.exception("internal error %s", error_id, exc_info=exc)
        return JsonResponse(
            {
                "error_code": "INTERNAL_ERROR",
                "message": f"Internal server error (error id {error_id}); see the server log.",
            },
            status_code=500,
        )
