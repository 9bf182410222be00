"""Compare runs: metrics overlaid, params and tags side by side, parallel coordinates."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from cumulo.core.entities import RunInfo
from cumulo.core.errors import InvalidInput
from cumulo.server.studio import web
from cumulo.server.studio.data import MAX_COMPARED
from cumulo.server.studio.runs import image_gallery, image_steps

router = APIRouter(route_class=web.PageRoute, include_in_schema=False, dependencies=[web.READ])


@router.get("/ws/{ws}/compare", response_class=HTMLResponse)
def compare(
    request: Request, ws: str, runs: list[str] = Query(default=[]), metric: str = ""
) -> Response:
    ids = list(dict.fromkeys(r for r in runs if r))
    if not 1 <= len(ids) <= MAX_COMPARED:
        raise InvalidInput(
            f"Pick 1 to {MAX_COMPARED} runs to compare (got {len(ids)}): tick them in a runs table."
        )
    tracking = web.services(request).tracking
    infos = [tracking.get_run(ws, run_id) for run_id in ids]
    metric_keys = sorted({k for r in infos for k in r.metrics})
    # Open on a metric with a history (a chart of lines), not on a number logged once.
    series = [k for k in metric_keys if any(r.metrics[k].step > 0 for r in infos if k in r.metrics)]
    chosen = metric if metric in metric_keys else next(iter(series or metric_keys), "")
    return web.render(
        request,
        "compare.html",
        workspace=ws,
        runs=infos,
        metric=chosen,
        metric_keys=metric_keys,
        params=_side_by_side(infos, "params"),
        tags=_side_by_side(infos, "tags"),
        metrics=_metric_rows(tracking, ws, infos),
        parallel=_parallel(infos, chosen),
        analysis=_analysis(infos),
        images=_images(tracking, ws, infos),
        nav="experiments",
        title=f"Compare {len(infos)} runs · {ws}",
    )


def _side_by_side(runs: list[RunInfo], kind: str) -> list[dict[str, Any]]:
    """One row per param or tag: the value in each run, and whether they differ."""
    rows = []
    for key in sorted({k for r in runs for k in getattr(r, kind)}):
        values = [getattr(r, kind).get(key) for r in runs]
        distinct = {repr(v) for v in values}
        rows.append({"key": key, "values": values, "differs": len(distinct) > 1})
    return rows


def _parallel(runs: list[RunInfo], metric: str) -> dict[str, Any]:
    """Axes (params that vary, then the metric) and one line per run, for the chart."""
    keys = sorted({k for r in runs for k in r.params})
    varying = [k for k in keys if len({r.params.get(k) for r in runs}) > 1] or keys
    axes = [{"name": k, "kind": "param"} for k in varying[:12]]
    if metric:
        axes.append({"name": metric, "kind": "metric"})
    lines = []
    for r in runs:
        values: list[Any] = [r.params.get(k) for k in varying[:12]]
        if metric:
            values.append(_last(r, metric))
        lines.append({"run": r.display_name, "id": r.id, "values": values})
    return {"axes": axes, "lines": lines}


def _metric_rows(tracking: Any, ws: str, runs: list[RunInfo]) -> list[dict[str, Any]]:
    """One row per metric with each run's last value; a metric with a history (more than
    one point in some run) gets its smallest and largest value in rows of their own."""
    rows = []
    for key in sorted({k for r in runs for k in r.metrics}):
        summaries = [
            tracking.get_metric_summary(r.workspace, r.id, key) if key in r.metrics else None
            for r in runs
        ]
        history = any(s is not None and s["count"] > 1 for s in summaries)
        for what in ("last", "min", "max") if history else ("last",):
            values = [None if s is None else s[what] for s in summaries]
            label = f"{key} · {what}" if history else key
            differs = len({repr(v) for v in values}) > 1
            rows.append({"key": label, "values": values, "differs": differs, "stat": what})
    return rows


def _analysis(runs: list[RunInfo]) -> dict[str, Any]:
    """What the browser draws scalar bars and the scatter from: each run's name and colour,
    and every param and metric (its last value) of the runs, a value a run."""
    fields = []
    for kind in ("metrics", "params"):
        for key in sorted({k for r in runs for k in getattr(r, kind)}):
            values: list[Any] = [
                _last(r, key) if kind == "metrics" else r.params.get(key) for r in runs
            ]
            fields.append({"key": f"{kind}.{key}", "kind": kind[:-1], "values": values})
    return {
        "runs": [
            {"id": r.id, "name": r.display_name, "colour": web.run_colour(r.id)} for r in runs
        ],
        "fields": fields,
    }


def _images(tracking: Any, ws: str, runs: list[RunInfo]) -> list[dict[str, Any]]:
    """Each image name the runs logged, the runs that have it side by side."""
    galleries = [(r, image_gallery(tracking.get_run_records(ws, r.id))) for r in runs]
    names = sorted({name for _, gallery in galleries for name in gallery})
    return [
        image_steps(
            name,
            [
                {"label": r.display_name, "run_id": r.id, "items": gallery[name]}
                for r, gallery in galleries
                if name in gallery
            ],
        )
        for name in names
    ]


def _last(run: RunInfo, key: str) -> float | None:
    """A metric's last value in the run; None where it has none or it is not finite."""
    m = run.metrics.get(key)
    return None if m is None or not math.isfinite(m.value) else m.value
