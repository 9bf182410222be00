"""Which routers the app serves, in three groups: the MLflow-compatible API, the native
API (with the endpoints' scoring router) and the studio. Each area adds its router here.

``include_all`` puts every group in one app (``create_app``: tests, the OpenAPI
description); ``include_group`` builds one group, as ``cumulo server``'s front does on
the group's first request (see ``cumulo.server.front``).
"""

from __future__ import annotations

from fastapi import FastAPI

from cumulo.server.front import GROUPS


def include_all(app: FastAPI) -> None:
    # The MLflow-compatible API comes first: a request is matched against the routes in
    # order, and MLflow clients send most of a server's requests (their paths share no
    # prefix with the native API's or the studio's, so the order changes no match).
    for group in GROUPS:
        include_group(app, group, whole=True)


def include_group(app: FastAPI, group: str, whole: bool = False) -> None:
    """The routes of ``group``. Without ``whole``, the routes the front serves itself are
    left out: MLflow's ``/ajax-api/`` copies (the front rewrites those paths to ``/api/``)
    and the ``/endpoints`` scoring mount (the front hands those requests to it)."""
    if group == "mlflow":
        from cumulo.server import mlflow as mlflow_api

        mlflow_api.include(app, ajax_aliases=whole)
    elif group == "native":
        from cumulo.server.api import endpoints as endpoints_api
        from cumulo.server.api import router as native_api

        native_api.include(app)
        endpoints_api.include(app, scoring=whole)
    elif group == "studio":
        from cumulo.server import studio

        studio.include(app)
    else:
        raise ValueError(f"no route group {group!r}; the groups are {', '.join(GROUPS)}")
