"""Every native router, for ``routes.include_all``."""

from __future__ import annotations

from fastapi import FastAPI

from cumulo.server.api import artifacts, audit, experiments, metrics, runs, tokens, workspaces
from cumulo.server.api import datasets as datasets_api
from cumulo.server.api import jobs as jobs_api
from cumulo.server.api import notebooks as notebooks_api
from cumulo.server.api import pipelines as pipelines_api
from cumulo.server.api import sweeps as sweeps_api


def include(app: FastAPI) -> None:
    modules = (workspaces, experiments, runs, metrics, artifacts, tokens, audit, jobs_api)
    for module in (*modules, sweeps_api, datasets_api, pipelines_api, notebooks_api):
        app.include_router(module.router)
