"""``/api/v1/workspaces/{workspace}/pipeline-runs``, ``/pipelines``, ``/pipeline-endpoints``
and ``/schedules``: run, publish and schedule pipelines (the HTTP side of
``cumulo.sdk.pipelines``).

``POST /pipelines/{id}/runs`` runs a published pipeline (``id`` may also name a
pipeline endpoint, for its default version) with ``{"experiment_name": ...,
"parameters": {...}}``; the token checks are every route's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from cumulo.core.validation import INT64_MAX
from cumulo.server.api.common import WS, Readable, Writable
from cumulo.server.auth import current_token
from cumulo.server.responses import JsonResponse, run_dict
from cumulo.services.pipelines import PipelineService

router = APIRouter(prefix=WS, tags=["pipelines"])

RunId = Annotated[str, Path(max_length=64)]
Name = Annotated[str, Path(max_length=100)]


async def _pipelines(request: Request) -> PipelineService:
    pipelines: PipelineService = request.app.state.services.pipelines
    return pipelines


Pipelines = Annotated[PipelineService, Depends(_pipelines)]
Values = dict[str, Annotated[str, Field(max_length=8000)] | int | float | bool | None]


class PipelineSubmit(BaseModel):
    experiment_id: Annotated[int, Field(ge=0, le=INT64_MAX)]
    spec: dict[str, Any]
    parameters: Values | None = None
    continue_on_step_failure: bool | None = None
    tags: dict[str, Annotated[str, Field(max_length=8000)]] | None = None
    display_name: str | None = Field(default=None, max_length=250)
    user: str = Field(default="", max_length=250)
    resume_of: str | None = Field(default=None, max_length=64)


class Publish(BaseModel):
    name: str = Field(max_length=100)
    spec: dict[str, Any]
    description: str = Field(default="", max_length=5000)
    version: str | None = Field(default=None, max_length=50)


class PublishedRun(BaseModel):
    experiment_name: str = Field(max_length=250)
    parameters: Values | None = None
    tags: dict[str, Annotated[str, Field(max_length=8000)]] | None = None
    user: str = Field(default="", max_length=250)


class DefaultVersion(BaseModel):
    pipeline_id: str = Field(max_length=64)


class ScheduleCreate(BaseModel):
    name: str = Field(max_length=100)
    pipeline_id: str = Field(max_length=64)
    experiment_name: str = Field(max_length=250)
    parameters: Values | None = None
    frequency: str | None = Field(default=None, max_length=16)
    interval: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    start_time: Annotated[int, Field(ge=0, le=INT64_MAX)] | None = None
    cron: str | None = Field(default=None, max_length=200)
    on_dataset: str | None = Field(default=None, max_length=250)


class ScheduleUpdate(BaseModel):
    enabled: bool


def _role(request: Request) -> str | None:
    who = current_token(request)
    return who.role if who else None  # caps the steps' own tokens


@router.post("/pipeline-runs", status_code=201)
def submit_pipeline(
    request: Request, body: PipelineSubmit, workspace: Writable, pipelines: Pipelines
) -> JsonResponse:
    """Start a pipeline run; the server's pipeline driver submits its steps as jobs."""
    info = pipelines.submit_pipeline(
        workspace,
        body.experiment_id,
        body.spec,
        body.parameters,
        continue_on_step_failure=body.continue_on_step_failure,
        tags=body.tags,
        display_name=body.display_name,
        user=body.user,
        resume_of=body.resume_of,
        submitter_role=_role(request),
    )
    return JsonResponse(run_dict(info), status_code=201)


@router.get("/pipeline-runs/{run_id}")
def get_pipeline_run(workspace: Readable, run_id: RunId, pipelines: Pipelines) -> JsonResponse:
    return JsonResponse(pipelines.get_pipeline_run(workspace, run_id))


@router.post("/pipeline-runs/{run_id}/cancel")
def cancel_pipeline_run(workspace: Writable, run_id: RunId, pipelines: Pipelines) -> JsonResponse:
    return JsonResponse(run_dict(pipelines.cancel_pipeline_run(workspace, run_id)))


@router.post("/pipelines", status_code=201)
def publish_pipeline(body: Publish, workspace: Writable, pipelines: Pipelines) -> JsonResponse:
    info = pipelines.publish_pipeline(
        workspace, body.name, body.spec, body.description, body.version
    )
    return JsonResponse(info.to_dict(), status_code=201)


@router.get("/pipelines")
def list_published_pipelines(
    workspace: Readable, pipelines: Pipelines, name: str | None = None
) -> JsonResponse:
    found = pipelines.list_published_pipelines(workspace, name)
    return JsonResponse({"pipelines": [p.to_dict() for p in found]})


@router.get("/pipelines/{pipeline_id}")
def get_published_pipeline(
    workspace: Readable, pipeline_id: Name, pipelines: Pipelines
) -> JsonResponse:
    return JsonResponse(pipelines.get_published_pipeline(workspace, pipeline_id).to_dict())


@router.post("/pipelines/{pipeline_id}/runs", status_code=201)
def submit_published(
    request: Request,
    body: PublishedRun,
    workspace: Writable,
    pipeline_id: Name,
    pipelines: Pipelines,
) -> JsonResponse:
    """Run a published pipeline (or a pipeline endpoint's default version)."""
    info = pipelines.submit_published(
        workspace,
        pipeline_id,
        body.experiment_name,
        body.parameters,
        tags=body.tags,
        user=body.user,
        submitter_role=_role(request),
    )
    return JsonResponse(run_dict(info), status_code=201)


@router.post("/pipeline-endpoints/{name}/default")
def set_default_pipeline(
    body: DefaultVersion, workspace: Writable, name: Name, pipelines: Pipelines
) -> JsonResponse:
    return JsonResponse(pipelines.set_default_pipeline(workspace, name, body.pipeline_id).to_dict())


@router.post("/schedules", status_code=201)
def create_schedule(
    body: ScheduleCreate, workspace: Writable, pipelines: Pipelines
) -> JsonResponse:
    info = pipelines.create_schedule(
        workspace,
        body.name,
        body.pipeline_id,
        body.experiment_name,
        parameters=body.parameters,
        frequency=body.frequency,
        interval=body.interval,
        start_time=body.start_time,
        cron=body.cron,
        on_dataset=body.on_dataset,
    )
    return JsonResponse(info.to_dict(), status_code=201)


@router.get("/schedules")
def list_schedules(workspace: Readable, pipelines: Pipelines) -> JsonResponse:
    return JsonResponse({"schedules": [s.to_dict() for s in pipelines.list_schedules(workspace)]})


@router.get("/schedules/{name}")
def get_schedule(workspace: Readable, name: Name, pipelines: Pipelines) -> JsonResponse:
    return JsonResponse(pipelines.get_schedule(workspace, name).to_dict())


@router.patch("/schedules/{name}")
def update_schedule(
    body: ScheduleUpdate, workspace: Writable, name: Name, pipelines: Pipelines
) -> JsonResponse:
    return JsonResponse(pipelines.set_schedule_enabled(workspace, name, body.enabled).to_dict())


@router.get("/schedules/{name}/firings")
def schedule_firings(workspace: Readable, name: Name, pipelines: Pipelines) -> JsonResponse:
    found = pipelines.schedule_firings(workspace, name)
    return JsonResponse({"firings": [list(f) for f in found]})
