"""``/api/v1/workspaces/{workspace}/...``: jobs, their logs, compute targets,
environments and code snapshots (the HTTP side of ``cumulo.sdk.jobs``)."""

from __future__ import annotations

import tempfile
from typing import IO, Annotated, Any, cast

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cumulo.core.errors import PermissionDenied
from cumulo.core.jobs import SNAPSHOT_MAX_BYTES
from cumulo.core.validation import INT64_MAX
from cumulo.server.api.common import WS, Readable, Writable
from cumulo.server.auth import current_token
from cumulo.server.limits import receive_upload
from cumulo.server.responses import JsonResponse, run_dict
from cumulo.services.auth import AuthService
from cumulo.services.jobs import JobService

router = APIRouter(prefix=WS, tags=["jobs"])

# A zip of a snapshot at its size limit, with room for the zip's own records.
MAX_SNAPSHOT_UPLOAD = SNAPSHOT_MAX_BYTES + 16 * 2**20
SPOOL_BYTES = 8 * 2**20  # kept in memory below this, on disk above

RunId = Annotated[str, Path(max_length=64)]
Name = Annotated[str, Path(max_length=64)]
Digest = Annotated[str, Path(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$")]
Int64 = Annotated[int, Field(ge=0, le=INT64_MAX)]


async def _jobs(request: Request) -> JobService:
    jobs: JobService = request.app.state.services.jobs
    return jobs


Jobs = Annotated[JobService, Depends(_jobs)]


async def _own_run(request: Request, run_id: RunId) -> str:
    """A job's token reports the status and logs of its own run only."""
    who = await run_in_threadpool(current_token, request)
    if who is not None:
        AuthService.authorize_job_report(who, run_id)
    return run_id


async def _not_a_job(request: Request) -> None:
    """Compute targets are the team's: a job's token may not change them."""
    who = await run_in_threadpool(current_token, request)
    if who is not None and who.run_id is not None:
        raise PermissionDenied(f"Token {who.id} belongs to a job, which cannot change targets.")


OwnRunId = Annotated[str, Depends(_own_run)]
NOT_A_JOB = Depends(_not_a_job)


class JobSubmit(BaseModel):
    experiment_id: Int64
    config: dict[str, Any]
    tags: dict[str, Annotated[str, Field(max_length=8000)]] | None = None
    properties: dict[str, Annotated[str, Field(max_length=8000)]] | None = None
    display_name: str | None = Field(default=None, max_length=250)
    user: str = Field(default="", max_length=250)
    priority: int = Field(default=0, ge=-1000, le=1000)
    max_retries: int = Field(default=0, ge=0, le=10)


class LogAppend(BaseModel):
    chunks: list[tuple[str, Annotated[str, Field(max_length=1_000_000)], Int64 | None]]


class JobStatus(BaseModel):
    status: str = Field(max_length=32)
    error: dict[str, Any] | None = None


class TargetCreate(BaseModel):
    name: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    config: dict[str, Any] = Field(default_factory=dict)


class EnvironmentCreate(BaseModel):
    name: str = Field(max_length=64)
    spec: dict[str, Any]


# ---------------------------------------------------------------------- jobs
@router.post("/jobs", status_code=201)
def submit_job(request: Request, body: JobSubmit, workspace: Writable, jobs: Jobs) -> JsonResponse:
    """Queue a script run; the server's scheduler dispatches it."""
    who = current_token(request)
    info = jobs.submit_job(
        workspace,
        body.experiment_id,
        body.config,
        tags=body.tags,
        properties=body.properties,
        display_name=body.display_name,
        user=body.user,
        priority_=body.priority,
        max_retries_=body.max_retries,
        submitter_role=who.role if who else None,  # caps the job's own token
    )
    return JsonResponse(run_dict(info), status_code=201)


@router.get("/jobs")
def list_jobs(
    workspace: Readable,
    jobs: Jobs,
    target: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
) -> JsonResponse:
    found = jobs.list_jobs(workspace, target=target, states=[state] if state else None)
    return JsonResponse({"jobs": [j.to_dict() for j in found]})


@router.get("/jobs/{run_id}")
def get_job(workspace: Readable, run_id: RunId, jobs: Jobs) -> JsonResponse:
    return JsonResponse(jobs.get_job(workspace, run_id).to_dict())


@router.post("/jobs/{run_id}/cancel")
def cancel_job(workspace: Writable, run_id: RunId, jobs: Jobs) -> JsonResponse:
    return JsonResponse(run_dict(jobs.cancel_job(workspace, run_id)))


@router.post("/jobs/{run_id}/status")
def set_job_status(
    body: JobStatus, workspace: Writable, run_id: OwnRunId, jobs: Jobs
) -> JsonResponse:
    """The status a job's runner reports; unlike a run's, it may end the job."""
    return JsonResponse(run_dict(jobs.set_job_status(workspace, run_id, body.status, body.error)))


@router.get("/jobs/{run_id}/logs")
def get_logs(
    workspace: Readable,
    run_id: RunId,
    jobs: Jobs,
    after: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 5000,
) -> JsonResponse:
    """Log chunks after sequence number ``after``; poll with ``next_seq`` to follow."""
    return JsonResponse(jobs.get_logs(workspace, run_id, after=after, limit=limit).to_dict())


@router.post("/jobs/{run_id}/logs")
def append_logs(body: LogAppend, workspace: Writable, run_id: OwnRunId, jobs: Jobs) -> JsonResponse:
    jobs.append_logs(workspace, run_id, body.chunks)
    return JsonResponse({})


# ------------------------------------------------------------------- compute
@router.post("/compute", status_code=201, dependencies=[NOT_A_JOB])
def create_target(body: TargetCreate, workspace: Writable, jobs: Jobs) -> JsonResponse:
    info = jobs.create_compute_target(workspace, body.name, body.kind, body.config)
    return JsonResponse(info.to_dict(), status_code=201)


@router.get("/compute")
def list_targets(workspace: Readable, jobs: Jobs) -> JsonResponse:
    return JsonResponse({"targets": [t.to_dict() for t in jobs.list_compute_targets(workspace)]})


@router.get("/compute/{name}")
def get_target(workspace: Readable, name: Name, jobs: Jobs) -> JsonResponse:
    return JsonResponse(jobs.get_compute_target(workspace, name).to_dict())


@router.get("/compute/{name}/status")
def target_status(workspace: Readable, name: Name, jobs: Jobs) -> JsonResponse:
    return JsonResponse(jobs.compute_status(workspace, name))


@router.delete("/compute/{name}", dependencies=[NOT_A_JOB])
def delete_target(workspace: Writable, name: Name, jobs: Jobs) -> JsonResponse:
    jobs.delete_compute_target(workspace, name)
    return JsonResponse({})


# -------------------------------------------------------------- environments
@router.post("/environments", status_code=201)
def register_environment(body: EnvironmentCreate, workspace: Writable, jobs: Jobs) -> JsonResponse:
    info = jobs.register_environment(workspace, body.name, body.spec)
    return JsonResponse(info.to_dict(), status_code=201)


@router.get("/environments")
def list_environments(workspace: Readable, jobs: Jobs) -> JsonResponse:
    envs = jobs.list_environments(workspace)
    return JsonResponse({"environments": [e.to_dict() for e in envs]})


@router.get("/environments/{name}")
def get_environment(
    workspace: Readable,
    name: Name,
    jobs: Jobs,
    version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> JsonResponse:
    return JsonResponse(jobs.get_environment(workspace, name, version).to_dict())


@router.post("/environments/{name}/build")
def build_environment(
    workspace: Writable,
    name: Name,
    jobs: Jobs,
    version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> JsonResponse:
    """Build on the server now (or find the cached build); the log comes back with it."""
    return JsonResponse(jobs.build_environment(workspace, name, version).to_dict())


# ----------------------------------------------------------------- snapshots
@router.put("/snapshots", status_code=201)
async def put_snapshot(request: Request, workspace: Writable, jobs: Jobs) -> JsonResponse:
    """Store a snapshot zip (streamed, up to the snapshot limit); its id is its content's hash."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
        await receive_upload(request, body, MAX_SNAPSHOT_UPLOAD, "the snapshot upload")
        body.seek(0)
        info = await run_in_threadpool(jobs.put_snapshot, workspace, cast(IO[bytes], body))
    return JsonResponse(info.to_dict(), status_code=201)


@router.get("/snapshots")
def list_snapshots(workspace: Readable, jobs: Jobs) -> JsonResponse:
    return JsonResponse({"snapshots": [s.to_dict() for s in jobs.list_snapshots(workspace)]})


@router.get("/snapshots/{digest}")
def get_snapshot(workspace: Readable, digest: Digest, jobs: Jobs) -> JsonResponse:
    return JsonResponse(jobs.get_snapshot(workspace, digest).to_dict())


@router.get("/snapshots/{digest}/zip")
def download_snapshot(workspace: Readable, digest: Digest, jobs: Jobs) -> Response:
    with jobs.open_snapshot(workspace, digest) as fh:
        data = fh.read()
    return Response(data, media_type="application/zip")
