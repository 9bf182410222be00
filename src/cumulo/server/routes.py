"""Which routers the app serves. Each area adds its router here."""

from __future__ import annotations

from fastapi import FastAPI


def include_all(app: FastAPI) -> None:
    # The MLflow-compatible API comes first: a request is matched against the routes in
    # order, and MLflow clients send most of a server's requests (their paths share no
    # prefix with the native API's or the studio's, so the order changes no match).
    from cumulo.server import mlflow as mlflow_api

    mlflow_api.include(app)
    from cumulo.server.api import router as native_api

    native_api.include(app)
    from cumulo.server import studio

    studio.include(app)
    from cumulo.server.api import endpoints as endpoints_api

    endpoints_api.include(app)
    return None
