"""An experiment's Charts view: one panel per metric, every shown run overlaid.

The page lists the runs its filter finds (up to a few hundred) with their
colours; each panel asks ``/studio-data`` for one metric of all those runs,
downsampled by the tracking service like a run's own charts. What is hidden,
grouped, searched or ordered is the browser's business: it keeps that view in
the URL (shareable) and per experiment in local storage.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from cumulo.core.entities import RunInfo
from cumulo.core.errors import InvalidInput
from cumulo.server.studio import web

router = APIRouter(route_class=web.PageRoute, include_in_schema=False, dependencies=[web.READ])
data_router = APIRouter(
    prefix=web.DATA_PREFIX,
    route_class=web.PageRoute,
    include_in_schema=False,
    dependencies=[web.READ],
)

SIZES = (50, 100, 200, 500)
DEFAULT_SIZE = 200


def shown_runs(
    request: Request, ws: str, experiment_id: int, filter: str, order: str, size: int
) -> list[RunInfo]:
    """The runs a view shows: its filter and order, the first ``size`` of them."""
    if size not in SIZES:
        raise InvalidInput(f"Show {', '.join(map(str, SIZES))} runs, not {size}.")
    return (
        web.services(request)
        .tracking.search_runs(
            ws,
            [experiment_id],
            filter=filter or None,
            order_by=[order] if order else None,
            max_results=size,
        )
        .runs
    )


@router.get("/ws/{ws}/experiments/{experiment_id}/charts", response_class=HTMLResponse)
def charts(
    request: Request,
    ws: str,
    experiment_id: int,
    filter: str = "",
    order: str = "",
    size: int = DEFAULT_SIZE,
) -> Response:
    experiment = web.services(request).tracking.get_experiment(ws, experiment_id)
    size = size if size in SIZES else DEFAULT_SIZE
    error = ""
    try:
        runs = shown_runs(request, ws, experiment_id, filter, order, size)
    except InvalidInput as exc:
        runs, error = [], exc.message
    return web.render(
        request,
        "charts.html",
        workspace=ws,
        experiment=experiment,
        runs=runs,
        rows=[_row(r) for r in runs],
        metric_keys=sorted({k for r in runs for k in r.metrics}),
        group_keys=_group_keys(runs),
        filter=filter,
        order=order,
        size=size,
        sizes=SIZES,
        error=error,
        nav="experiments",
        title=f"Charts · {experiment.name} · {ws}",
    )


def _row(run: RunInfo) -> dict[str, Any]:
    """What the browser needs of a run: name, colour, and what it may be grouped by."""
    return {
        "id": run.id,
        "name": run.display_name,
        "colour": web.run_colour(run.id),
        "started": run.started_at or run.created_at,
        "params": run.params,
        "tags": {k: v for k, v in run.tags.items() if not k.startswith("mlflow.")},
        "last": {k: m.value for k, m in run.metrics.items()},
    }


def _group_keys(runs: list[RunInfo]) -> list[str]:
    """Params and tags with more than one value among the runs: what grouping can split by."""
    keys = []
    for kind in ("params", "tags"):
        names = sorted({k for r in runs for k in getattr(r, kind) if not k.startswith("mlflow.")})
        for name in names:
            if len({getattr(r, kind).get(name) for r in runs}) > 1:
                keys.append(f"{kind}.{name}")
    return keys


@data_router.get("/ws/{ws}/experiments/{experiment_id}/chart", response_class=Response)
def chart(
    request: Request,
    ws: str,
    experiment_id: int,
    key: str,
    filter: str = "",
    order: str = "",
    size: int = DEFAULT_SIZE,
    axis: str = "step",
    points: int = 500,
    start: int | None = None,
    end: int | None = None,
) -> Response:
    """One metric of every shown run, each series downsampled to about ``points``.

    Serialised with orjson: hundreds of series are too many numbers for FastAPI's encoder.
    """
    tracking = web.services(request).tracking
    series = []
    for run in shown_runs(request, ws, experiment_id, filter, order, size):
        if key not in run.metrics:
            continue
        found = tracking.get_metric_chart(
            ws, run.id, key, axis=axis, start=start, end=end, points=points, run=run
        )
        series.append({"run_id": run.id, "x": found["x"], "y": found["y"], "count": found["count"]})
    body = {"key": key, "axis": axis, "series": series}
    return Response(orjson.dumps(body), media_type="application/json")
