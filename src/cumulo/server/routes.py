"""Which routers the app serves. Each area adds its router here."""

from __future__ import annotations

from fastapi import FastAPI


def include_all(app: FastAPI) -> None:
    # Native API, MLflow-compatible API and studio routers are included here.
    from cumulo.server.api import router as native_api

    native_api.include(app)
    from cumulo.server import mlflow as mlflow_api

    mlflow_api.include(app)
    from cumulo.server import studio

    studio.include(app)
    from cumulo.server.api import endpoints as endpoints_api

    endpoints_api.include(app)
    return None
