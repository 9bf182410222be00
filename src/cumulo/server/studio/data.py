"""JSON for the studio's charts and live views, under ``/studio-data``.

Series come downsampled by the tracking service: a chart asks for about as
many points as it has pixels, and asks again for a zoomed range.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from cumulo.core.errors import InvalidInput
from cumulo.core.status import TERMINAL
from cumulo.server.studio import logs, web

router = APIRouter(
    prefix=web.DATA_PREFIX,
    route_class=web.PageRoute,
    include_in_schema=False,
    dependencies=[web.READ],
)

MAX_COMPARED = 20


@router.get("/ws/{ws}/runs/{run_id}/series")
def series(
    request: Request,
    ws: str,
    run_id: str,
    key: str,
    axis: str = "step",
    start: int | None = None,
    end: int | None = None,
    points: int = 2000,
) -> dict[str, Any]:
    return web.services(request).tracking.get_metric_chart(
        ws, run_id, key, axis=axis, start=start, end=end, points=points
    )


@router.get("/ws/{ws}/compare/series")
def compare_series(
    request: Request,
    ws: str,
    key: str,
    runs: list[str] = Query(default=[]),
    axis: str = "step",
    start: int | None = None,
    end: int | None = None,
    points: int = 1000,
) -> dict[str, Any]:
    if not 1 <= len(runs) <= MAX_COMPARED:
        raise InvalidInput(f"Compare 1 to {MAX_COMPARED} runs, got {len(runs)}.")
    tracking = web.services(request).tracking
    out = []
    for run_id in runs:
        chart = tracking.get_metric_chart(
            ws, run_id, key, axis=axis, start=start, end=end, points=points
        )
        out.append({"run_id": run_id, **chart})
    return {"key": key, "axis": axis, "series": out}


@router.get("/ws/{ws}/runs/{run_id}/log")
def log_tail(request: Request, ws: str, run_id: str, name: str, offset: int = -1) -> dict[str, Any]:
    """New text of a log since ``offset``, and whether the run may still write more."""
    services = web.services(request)
    run = services.tracking.get_run(ws, run_id)
    piece = logs.read(services, ws, run_id, name, offset)
    return {
        "text": piece.text,
        "offset": piece.cursor,
        "more": piece.more,
        "skipped": piece.skipped,
        "status": run.status,
        "active": run.status not in {s.value for s in TERMINAL},
    }
