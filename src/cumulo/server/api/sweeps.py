"""``/api/v1/workspaces/{workspace}/sweeps``: submit, read and cancel hyperparameter sweeps
(the HTTP side of ``cumulo.sdk.sweeps``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from cumulo.core.validation import INT64_MAX
from cumulo.server.api.common import WS, Readable, Writable
from cumulo.server.auth import current_token
from cumulo.server.responses import JsonResponse, run_dict
from cumulo.services.sweeps import SweepService

router = APIRouter(prefix=WS, tags=["sweeps"])

RunId = Annotated[str, Path(max_length=64)]


async def _sweeps(request: Request) -> SweepService:
    sweeps: SweepService = request.app.state.services.sweeps
    return sweeps


Sweeps = Annotated[SweepService, Depends(_sweeps)]


class SweepSubmit(BaseModel):
    experiment_id: Annotated[int, Field(ge=0, le=INT64_MAX)]
    spec: dict[str, Any]
    config: dict[str, Any]
    tags: dict[str, Annotated[str, Field(max_length=8000)]] | None = None
    display_name: str | None = Field(default=None, max_length=250)
    user: str = Field(default="", max_length=250)


@router.post("/sweeps", status_code=201)
def submit_sweep(
    request: Request, body: SweepSubmit, workspace: Writable, sweeps: Sweeps
) -> JsonResponse:
    """Start a sweep; the server's sweep driver submits its trials as jobs."""
    who = current_token(request)
    info = sweeps.submit_sweep(
        workspace,
        body.experiment_id,
        body.spec,
        body.config,
        tags=body.tags,
        display_name=body.display_name,
        user=body.user,
        submitter_role=who.role if who else None,  # caps its trials' own tokens
    )
    return JsonResponse(run_dict(info), status_code=201)


@router.get("/sweeps/{run_id}")
def get_sweep(workspace: Readable, run_id: RunId, sweeps: Sweeps) -> JsonResponse:
    return JsonResponse(sweeps.get_sweep(workspace, run_id))


@router.post("/sweeps/{run_id}/cancel")
def cancel_sweep(workspace: Writable, run_id: RunId, sweeps: Sweeps) -> JsonResponse:
    return JsonResponse(run_dict(sweeps.cancel_sweep(workspace, run_id)))
