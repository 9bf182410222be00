"""The FastAPI app factory: native API, MLflow-compatible API and studio pages.

No business logic here: routers parse, authorise, call a service and render.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, ORJSONResponse

from cumulo.core.errors import HTTP_STATUS, CumuloError
from cumulo.core.settings import Settings
from cumulo.services.context import Services, open_services

log = logging.getLogger("cumulo.server")


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    services = services or open_services(settings)
    app = FastAPI(
        title="Cumulo",
        version="0.1.0",
        description="A self-hosted machine learning workspace.",
        default_response_class=ORJSONResponse,
    )
    app.state.settings = settings
    app.state.services = services
    _install_error_handlers(app)

    @app.get("/health", tags=["server"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    # Routers are added here, one module per resource.
    from cumulo.server import routes

    routes.include_all(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CumuloError)
    async def _cumulo_error(_request: Request, exc: CumuloError) -> JSONResponse:
        return ORJSONResponse(exc.to_dict(), status_code=HTTP_STATUS.get(exc.code, 500))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return ORJSONResponse(
            {"error_code": "INVALID_PARAMETER_VALUE", "message": f"Invalid request: {problems}"},
            status_code=400,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        error_id = uuid.uuid4().hex[:12]
        log.exception("internal error %s", error_id, exc_info=exc)
        return ORJSONResponse(
            {
                "error_code": "INTERNAL_ERROR",
                "message": f"Internal server error (error id {error_id}); see the server log.",
            },
            status_code=500,
        )
