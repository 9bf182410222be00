"""``/api/v1/workspaces/{workspace}/notebooks``: a JupyterLab server for the workspace.

``POST`` starts it (or finds the one running) and answers its URL: 200 once it
answers, 202 while it is still starting (``?wait=SECONDS`` waits for it first);
``GET`` tells its status, ``DELETE`` stops it. Its URL carries JupyterLab's
token, so only those who may change the workspace get it. A server without
JupyterLab answers 409 with what to install.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from cumulo.core.settings import Settings
from cumulo.server.api.common import WS, Writable
from cumulo.server.auth import token_auth
from cumulo.server.responses import JsonResponse
from cumulo.services.notebooks import RUNNING, NotebookServer, NotebookService

router = APIRouter(prefix=WS + "/notebooks", tags=["notebooks"])

MAX_WAIT = 300.0


def service(request: Request) -> NotebookService:
    found: NotebookService = request.app.state.services.notebooks
    return found


def open_notebooks(request: Request, workspace: str, wait: float) -> NotebookServer:
    """Start (or find) the workspace's notebook server, waiting up to ``wait`` seconds."""
    settings: Settings = request.app.state.settings
    # Its notebooks reach this server at its public URL, else at the address it was asked at.
    url = settings.public_url or str(request.base_url)
    notebooks = service(request)
    found = notebooks.open(
        workspace, url, with_token=token_auth(request), host=settings.advertise_host
    )
    return notebooks.wait(workspace, wait) if wait > 0 else found


def answer(found: NotebookServer) -> JsonResponse:
    body = {**found.to_dict(), "installed": True}
    return JsonResponse(body, status_code=200 if found.status == RUNNING else 202)


@router.post("", status_code=200, responses={202: {"description": "Still starting"}})
async def start_notebooks(
    request: Request,
    workspace: Writable,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 0,
) -> JsonResponse:
    """Start the workspace's JupyterLab, or find the one running, and answer its URL.

    200 once it answers, 202 while it still starts (``wait`` seconds are waited first).
    """
    found = await run_in_threadpool(open_notebooks, request, workspace, wait)
    return answer(found)


@router.get("")
async def notebooks_status(request: Request, workspace: Writable) -> JsonResponse:
    """The workspace's JupyterLab: stopped, starting, running (with its URL) or failed."""
    notebooks = service(request)
    found = await run_in_threadpool(notebooks.status, workspace)
    return JsonResponse({**found.to_dict(), "installed": notebooks.installed})


@router.delete("")
async def stop_notebooks(request: Request, workspace: Writable) -> JsonResponse:
    """Stop the workspace's JupyterLab and its kernels, and revoke its token."""
    stopped = await run_in_threadpool(service(request).stop, workspace)
    return JsonResponse({"workspace": workspace, "stopped": stopped})
