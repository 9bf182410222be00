"""The studio's "Open Notebooks" button: the workspace's JupyterLab, started and polled.

The page's script sends the visitor's login cookie, which the native API does
not read; these two routes answer as ``/api/v1/workspaces/{ws}/notebooks`` does,
to those who may change the workspace.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from cumulo.core.errors import CumuloError
from cumulo.server.api import notebooks as api
from cumulo.server.responses import JsonResponse
from cumulo.server.studio import web

router = APIRouter(
    prefix=web.DATA_PREFIX,
    route_class=web.PageRoute,
    include_in_schema=False,
    dependencies=[web.WRITE],
)


@dataclass(frozen=True)
class Button:
    """How the workspace page shows the button: enabled, or disabled with the reason."""

    enabled: bool
    hint: str = ""


def button(request: Request, ws: str) -> Button:
    if not api.service(request).installed:
        return Button(False, "pip install jupyterlab (or cumulo[notebook]) on the server")
    try:
        web.guard(request, ws, write=True)
    except CumuloError:
        return Button(False, "needs a token that may change this workspace")
    return Button(True)


@router.post("/ws/{ws}/notebooks")
async def open_notebooks(request: Request, ws: str) -> JsonResponse:
    """Start (or find) the notebook server; the page polls the GET below until it answers."""
    found = await run_in_threadpool(api.open_notebooks, request, ws, 0)
    return api.answer(found)


@router.get("/ws/{ws}/notebooks")
async def notebooks_status(request: Request, ws: str) -> JsonResponse:
    found = await run_in_threadpool(api.service(request).status, ws)
    return JsonResponse(found.to_dict())
