"""A pipeline run's page: its steps as a graph with live statuses, a timeline of the steps,
and each step's run, status and reason (why it ran, what it reused, why it was canceled);
and the workspace's published pipelines, their endpoints and schedules.

The graph is server-rendered SVG: each step sits in the column of its longest
path from a step without inputs, and links to its run (logs, outputs, metrics).
The graph card reloads itself every two seconds while the pipeline runs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from cumulo.core.entities import RunInfo, now_ms
from cumulo.core.errors import NotFound
from cumulo.core.pipelines import PUBLISHED_TAG, PublishedPipelineInfo, ScheduleInfo
from cumulo.core.status import TERMINAL
from cumulo.server.studio import web
from cumulo.server.studio.endpoints import base_url
from cumulo.server.studio.runs import _page

router = APIRouter(route_class=web.PageRoute, include_in_schema=False, dependencies=[web.READ])

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 170, 46, 60, 18, 10
RECENT_RUNS = 5  # runs shown per published pipeline
RECENT_FIRINGS = 5  # firings shown per schedule
STATES = {  # state -> (label, css class of its box)
    "waiting": ("Waiting", "waiting"),
    "submitting": ("Queued", "running"),
    "running": ("Running", "running"),
    "completed": ("Completed", "completed"),
    "reused": ("Reused", "reused"),
    "failed": ("Failed", "failed"),
    "canceled": ("Canceled", "canceled"),
}


def layout(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Boxes (x, y) and edges for the steps, columns by longest path from a source."""
    depth: dict[str, int] = {}
    by_name = {s["name"]: s for s in steps}

    def level(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in depth:
            ups = [u for u in by_name[name]["upstream"] if u in by_name and u not in seen]
            depth[name] = 1 + max((level(u, seen | {name}) for u in ups), default=-1)
        return depth[name]

    rows: dict[int, int] = {}
    boxes = []
    for s in steps:
        col = level(s["name"])
        row = rows.get(col, 0)
        rows[col] = row + 1
        label, css = STATES.get(s["state"], (s["state"], "waiting"))
        boxes.append(
            {
                **s,
                "x": PAD + col * (BOX_W + GAP_X),
                "y": PAD + row * (BOX_H + GAP_Y),
                "label": label,
                "css": css,
            }
        )
    at = {b["name"]: b for b in boxes}
    edges = [
        {
            "x1": at[u]["x"] + BOX_W,
            "y1": at[u]["y"] + BOX_H / 2,
            "x2": b["x"],
            "y2": b["y"] + BOX_H / 2,
        }
        for b in boxes
        for u in b["upstream"]
        if u in at
    ]
    width = PAD * 2 + (max(depth.values(), default=0) + 1) * (BOX_W + GAP_X) - GAP_X
    height = PAD * 2 + max(rows.values(), default=1) * (BOX_H + GAP_Y) - GAP_Y
    return {"boxes": boxes, "edges": edges, "width": width, "height": height}


def timeline(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars from each step's start to its end (now while it runs), scaled to 600 px."""
    started = [s["started_at"] for s in steps if s.get("started_at")]
    if not started:
        return {"bars": [], "seconds": 0.0}
    t0, now = min(started), now_ms()
    end = max((s.get("ended_at") or now) for s in steps if s.get("started_at"))
    span = max(end - t0, 1)
    bars = []
    for i, s in enumerate(s for s in steps if s.get("started_at")):
        stop = s.get("ended_at") or now
        bars.append(
            {
                "name": s["name"],
                "y": i * 22,
                "x": 120 + 600 * (s["started_at"] - t0) / span,
                "w": max(2.0, 600 * (stop - s["started_at"]) / span),
                "seconds": (stop - s["started_at"]) / 1000,
                "css": STATES.get(s["state"], ("", "waiting"))[1],
            }
        )
    return {"bars": bars, "seconds": span / 1000, "height": len(bars) * 22}


def _context(request: Request, ws: str, run_id: str) -> dict[str, Any]:
    services = web.services(request)
    run = services.tracking.get_run(ws, run_id)
    try:
        stored = services.pipelines.get_pipeline_run(ws, run.id)
    except NotFound:
        return {"run": run, "pipeline": None}
    steps = stored["steps"]
    return {
        "run": run,
        "pipeline": stored,
        "steps": steps,
        "graph": layout(steps),
        "timeline": timeline(steps),
        "box_w": BOX_W,
        "box_h": BOX_H,
        "live": run.status not in {s.value for s in TERMINAL},
    }


@router.get("/ws/{ws}/runs/{run_id}/pipeline", response_class=HTMLResponse)
def pipeline_tab(request: Request, ws: str, run_id: str) -> Response:
    context = _context(request, ws, run_id)
    run = context.pop("run")
    return _page(request, run, "pipeline", "run_pipeline.html", **context)


@router.get("/ws/{ws}/runs/{run_id}/pipeline/graph", response_class=HTMLResponse)
def pipeline_graph(request: Request, ws: str, run_id: str) -> Response:
    """The graph card alone, for the page's live reload."""
    context = _context(request, ws, run_id)
    return web.render(
        request, "_pipeline_graph.html", workspace=ws, run=context.pop("run"), **context
    )


@router.get("/ws/{ws}/pipelines", response_class=HTMLResponse)
def published(request: Request, ws: str) -> Response:
    """Published pipelines by endpoint (name), each version with its REST URL and recent runs;
    the schedules with their rule, next tick and last firings."""
    services = web.services(request)
    base = base_url(request)
    endpoints: dict[str, dict[str, Any]] = {}
    for p in services.pipelines.list_published_pipelines(ws):
        endpoint = endpoints.setdefault(p.name, {"name": p.name, "default": None, "versions": []})
        if p.is_default:
            endpoint["default"] = p
        endpoint["versions"].append(_version(services, ws, base, p))
    for endpoint in endpoints.values():
        endpoint["versions"].reverse()  # newest first
    names = {v["info"].id: v["info"] for e in endpoints.values() for v in e["versions"]}
    found = [_schedule(services, ws, s, names) for s in services.pipelines.list_schedules(ws)]
    return web.render(
        request,
        "pipelines.html",
        workspace=ws,
        endpoints=list(endpoints.values()),
        schedules=found,
        base=base,
        nav="pipelines",
        title=f"Pipelines · {ws}",
    )


def _version(services: Any, ws: str, base: str, p: PublishedPipelineInfo) -> dict[str, Any]:
    runs = services.tracking.search_runs(
        ws, tags={PUBLISHED_TAG: p.id}, max_results=RECENT_RUNS
    ).runs
    return {
        "info": p,
        "steps": [s.get("name", "") for s in p.spec.get("steps", [])],
        "rest": f"{base}/api/v1/workspaces/{ws}/pipelines/{p.id}/runs",
        "runs": runs,
    }


def _schedule(
    services: Any, ws: str, info: ScheduleInfo, names: dict[str, PublishedPipelineInfo]
) -> dict[str, Any]:
    firings = []
    for tick, run_id in reversed(
        services.pipelines.schedule_firings(ws, info.name)[-RECENT_FIRINGS:]
    ):
        run: RunInfo | None = None
        if run_id:
            try:
                run = services.tracking.get_run(ws, run_id)
            except NotFound:  # deleted since
                run = None
        firings.append({"tick": tick, "run_id": run_id, "run": run})
    return {
        "info": info,
        "rule": info.rule,
        "pipeline": names.get(info.pipeline_id),
        "firings": firings,
    }
