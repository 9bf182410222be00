"""What every native router shares: access checks, the service, limits for numbers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from cumulo.server.access import Access, declares
from cumulo.server.auth import require, token_auth
from cumulo.services.tracking import TrackingService

PREFIX = "/api/v1"
WS = PREFIX + "/workspaces/{workspace}"

WorkspaceName = Annotated[str, Path(max_length=200)]


async def check(request: Request, workspace: str, write: bool, manage: bool = False) -> None:
    """``require`` without a thread hop when the server checks no tokens (the hot path)."""
    if token_auth(request):
        await run_in_threadpool(require, request, workspace, write, manage=manage)


@declares(Access.READ)
async def _read(request: Request, workspace: WorkspaceName) -> str:
    await check(request, workspace, write=False)
    return workspace


@declares(Access.WRITE)
async def _write(request: Request, workspace: WorkspaceName) -> str:
    await check(request, workspace, write=True)
    return workspace


@declares(Access.MANAGE)
async def _manage(request: Request, workspace: WorkspaceName) -> str:
    await check(request, workspace, write=True, manage=True)
    return workspace


# A route takes one of these as its ``workspace`` argument: checked, then passed on.
Readable = Annotated[str, Depends(_read)]
Writable = Annotated[str, Depends(_write)]
Managed = Annotated[str, Depends(_manage)]


async def tracking(request: Request) -> TrackingService:
    service: TrackingService = request.app.state.services.tracking
    return service


Tracking = Annotated[TrackingService, Depends(tracking)]
