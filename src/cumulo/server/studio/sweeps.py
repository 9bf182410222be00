"""A sweep's page: its trials ranked by the primary metric, the best trial (or the Pareto
front), best-so-far and hyperparameter charts, and the trials stopped early and why."""

from __future__ import annotations

import math
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from cumulo.core.entities import RunInfo
from cumulo.core.errors import NotFound
from cumulo.core.sweeps import STOPPED_BY, STOPPED_REASON, TRIAL_TAG, PrimaryMetricGoal
from cumulo.server.studio import web
from cumulo.server.studio.runs import _page

router = APIRouter(route_class=web.PageRoute, include_in_schema=False, dependencies=[web.READ])

MAX_AXES = 12  # hyperparameters drawn in the parallel coordinates


@router.get("/ws/{ws}/runs/{run_id}/sweep", response_class=HTMLResponse)
def sweep_tab(request: Request, ws: str, run_id: str) -> Response:
    services = web.services(request)
    run = services.tracking.get_run(ws, run_id)
    try:
        stored = services.sweeps.get_sweep(ws, run.id)
    except NotFound:
        return _page(request, run, "sweep", "run_sweep.html", sweep=None)
    spec = stored["spec"]
    objectives = [
        (str(n), PrimaryMetricGoal.parse(g))
        for n, g in spec.get("primary_metrics")
        or [[spec["primary_metric_name"], spec["primary_metric_goal"]]]
    ]
    children = {
        int(c.tags[TRIAL_TAG]): c
        for c in services.tracking.search_runs(
            ws, parent_id=run.id, order_by=["attributes.number ASC"], max_results=1000
        ).runs
        if c.tags.get(TRIAL_TAG, "").isdigit()
    }
    front = set(stored.get("pareto_front") or [])
    trials = [_trial(t, children.get(t["number"]), objectives, front) for t in stored["trials"]]
    name, goal = objectives[0]
    ranked = _ranked(trials, name, goal)
    params = list(spec["sampling"]["space"])
    return _page(
        request,
        run,
        "sweep",
        "run_sweep.html",
        sweep=stored,
        spec=spec,
        objectives=objectives,
        multi=len(objectives) > 1,
        trials=ranked,
        params=params,
        best=None if len(objectives) > 1 else next((t for t in ranked if t["scored"]), None),
        front=[t for t in ranked if t["front"]],
        stopped=[t for t in sorted(trials, key=lambda t: t["number"]) if t["stopped_by"]],
        ended=sum(1 for t in trials if t["state"] not in ("claimed", "submitted")),
        chart=_chart(trials, objectives, params),
        parallel=_parallel(ranked, params, name),
    )


def _trial(
    stored: dict[str, Any],
    child: RunInfo | None,
    objectives: list[tuple[str, PrimaryMetricGoal]],
    front: set[int],
) -> dict[str, Any]:
    """One row: the stored trial with its run's status, metrics and any stop."""
    metrics = child.metrics if child is not None else {}
    values = {n: metrics[n].value if n in metrics else None for n, _ in objectives}
    props = child.properties if child is not None else {}
    reason: dict[str, Any] = {}
    if props.get(STOPPED_REASON):
        try:
            reason = dict(orjson.loads(props[STOPPED_REASON]))
        except (orjson.JSONDecodeError, TypeError, ValueError):
            reason = {"reason": props[STOPPED_REASON]}
    first = values[objectives[0][0]]
    return {
        "number": stored["number"],
        "state": stored["state"],
        "run": child,
        "status": child.status if child is not None else "Queued",
        "params": stored["params"],
        "values": values,
        "value": first,
        "scored": first is not None and math.isfinite(first),
        "front": stored["number"] in front,
        "stopped_by": props.get(STOPPED_BY, ""),
        "reason": reason,
    }


def _ranked(
    trials: list[dict[str, Any]], name: str, goal: PrimaryMetricGoal
) -> list[dict[str, Any]]:
    """Best first by the (first) primary metric; trials without it last, by number."""
    sign = -1.0 if goal is PrimaryMetricGoal.MAXIMIZE else 1.0
    scored = sorted(
        (t for t in trials if t["scored"]), key=lambda t: (sign * t["value"], t["number"])
    )
    for rank, t in enumerate(scored, 1):
        t["rank"] = rank
    rest = sorted((t for t in trials if not t["scored"]), key=lambda t: t["number"])
    for t in rest:
        t["rank"] = None
    return scored + rest


def _chart(
    trials: list[dict[str, Any]], objectives: list[tuple[str, PrimaryMetricGoal]], params: list[str]
) -> dict[str, Any]:
    """What sweep.js draws: each trial's value(s) by number, the goal(s), the front."""
    ordered = sorted(trials, key=lambda t: t["number"])
    return {
        "metrics": [n for n, _ in objectives],
        "goals": [g.value for _, g in objectives],
        "trials": [
            {
                "number": t["number"],
                "values": [t["values"][n] for n, _ in objectives],
                "front": t["front"],
                "stopped": bool(t["stopped_by"]),
                "label": ", ".join(f"{p}={t['params'].get(p)}" for p in params),
            }
            for t in ordered
        ],
    }


def _parallel(trials: list[dict[str, Any]], params: list[str], metric: str) -> dict[str, Any]:
    """Axes (the hyperparameters, then the primary metric) and one line per trial."""
    axes = [{"name": p, "kind": "param"} for p in params[:MAX_AXES]]
    axes.append({"name": metric, "kind": "metric"})
    lines = []
    for t in trials:
        values: list[Any] = [t["params"].get(p) for p in params[:MAX_AXES]]
        values.append(t["value"] if t["scored"] else None)
        lines.append({"run": f"trial {t['number']}", "id": t["number"], "values": values})
    return {"axes": axes, "lines": lines}
