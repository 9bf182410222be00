"""Every native router, for ``routes.include_all``."""

from __future__ import annotations

from fastapi import FastAPI

from cumulo.server.api import artifacts, experiments, metrics, runs, tokens, workspaces


def include(app: FastAPI) -> None:
    for module in (workspaces, experiments, runs, metrics, artifacts, tokens):
        app.include_router(module.router)
