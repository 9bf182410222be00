"""The studio: server-rendered pages over the workspace, with htmx and uPlot.

Pages live at stable URLs (``/ws/{workspace}/runs/{run_id}`` for a run),
chart and live-view data under ``/studio-data``, vendored assets under
``/studio-static``.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cumulo.server.studio import (
    audit,
    charts,
    compare,
    compute,
    data,
    datasets,
    endpoints,
    models,
    notebooks,
    pages,
    pipelines,
    runs,
    sweeps,
    web,
)


def include(app: FastAPI) -> None:
    app.mount(web.STATIC_URL, StaticFiles(directory=str(web.STATIC)), name="studio-static")
    for module in (
        pages, runs, sweeps, pipelines, charts, compare, compute, data, datasets, models,
        endpoints, audit, notebooks,
    ):  # fmt: skip
        app.include_router(module.router)
    app.include_router(endpoints.data_router)
    app.include_router(charts.data_router)


def run_url(workspace: str, run_id: str) -> str:
    """The studio path of a run's page (prefix it with the server's base URL)."""
    return f"/ws/{workspace}/runs/{run_id}"
