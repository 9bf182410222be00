"""Compute targets with their nodes, queues and jobs; environments with their builds."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from cumulo.core.entities import RunInfo
from cumulo.core.errors import NotFound
from cumulo.core.jobs import BuildStatus
from cumulo.server.studio import web

router = APIRouter(route_class=web.PageRoute, include_in_schema=False, dependencies=[web.READ])

SHOWN_JOBS = 25  # queued or running jobs listed per target
RECENT_JOBS = 10  # finished ones


@router.get("/ws/{ws}/compute", response_class=HTMLResponse)
def compute(request: Request, ws: str) -> Response:
    services = web.services(request)
    jobs = services.jobs
    tracking = services.tracking
    targets = []
    for target in jobs.list_compute_targets(ws):
        status = jobs.compute_status(ws, target.name)
        recent = tracking.search_runs(
            ws,
            filter=f"attributes.compute_target = '{target.name}'",
            statuses=["Completed", "Failed", "Canceled"],
            max_results=RECENT_JOBS,
        ).runs
        targets.append(
            {
                "info": target,
                "status": status,
                "queued": _runs(tracking, ws, status["queue"]),
                "running": _runs(tracking, ws, status["active"]),
                "recent": recent,
                "config": {k: v for k, v in target.public_config.items() if v is not None},
            }
        )
    return web.render(
        request,
        "compute.html",
        workspace=ws,
        targets=targets,
        nav="compute",
        title=f"Compute · {ws}",
    )


def _runs(tracking: Any, ws: str, run_ids: list[str]) -> list[RunInfo]:
    out = []
    for run_id in run_ids[:SHOWN_JOBS]:
        try:
            out.append(tracking.get_run(ws, run_id))
        except NotFound:  # removed while we looked
            continue
    return out


@router.get("/ws/{ws}/environments", response_class=HTMLResponse)
def environments(request: Request, ws: str) -> Response:
    infos = web.services(request).jobs.list_environments(ws)
    by_name: dict[str, list[Any]] = {}
    for e in sorted(infos, key=lambda e: (e.name, -e.version)):
        by_name.setdefault(e.name, []).append(e)
    return web.render(
        request,
        "environments.html",
        workspace=ws,
        environments=by_name,
        nav="environments",
        title=f"Environments · {ws}",
    )


@router.get("/ws/{ws}/environments/{name}", response_class=HTMLResponse)
def environment(request: Request, ws: str, name: str, version: int | None = None) -> Response:
    jobs = web.services(request).jobs
    info = jobs.get_environment(ws, name, version)
    versions = sorted(
        (e for e in jobs.list_environments(ws) if e.name == name), key=lambda e: -e.version
    )
    return web.render(
        request,
        "environment.html",
        workspace=ws,
        env=info,
        spec=json.dumps(info.spec, indent=2, sort_keys=True),
        versions=versions,
        building=info.build_status == BuildStatus.BUILDING.value,
        nav="environments",
        title=f"{name}:{info.version} · {ws}",
    )
