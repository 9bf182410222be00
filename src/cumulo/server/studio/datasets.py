"""Datasets and datastores in the studio: versions, preview, profile, consuming runs,
lineage, drift between two versions, and a datastore's files."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from cumulo.core.datasets import TABULAR
from cumulo.core.errors import CumuloError, InvalidInput
from cumulo.server.studio import web

router = APIRouter(route_class=web.PageRoute, include_in_schema=False, dependencies=[web.READ])

PREVIEW_ROWS = 20
SHOWN_FILES = 200
SHOWN_ENTRIES = 500  # a datastore folder's entries


def bars(histogram: dict[str, list[float]] | None) -> list[dict[str, Any]]:
    """A histogram as bars with heights in percent of the tallest, for the profile chart."""
    if not histogram:
        return []
    counts, edges = histogram["counts"], histogram["edges"]
    top = max(counts) or 1
    return [
        {"height": round(100 * c / top, 1), "count": c, "low": edges[i], "high": edges[i + 1]}
        for i, c in enumerate(counts)
    ]


@router.get("/ws/{ws}/datasets", response_class=HTMLResponse)
def datasets(request: Request, ws: str) -> Response:
    services = web.services(request)
    found = services.datasets.list_datasets(ws, latest=True)
    return web.render(
        request, "datasets.html", workspace=ws, datasets=found, nav="data", title=f"Data · {ws}"
    )


@router.get("/ws/{ws}/datasets/{name}", response_class=HTMLResponse)
def dataset(request: Request, ws: str, name: str) -> Response:
    services = web.services(request)
    versions = services.datasets.list_datasets(ws, name)
    if not versions:
        services.datasets.get_dataset(ws, name)  # the NotFound page
    return web.render(
        request,
        "dataset.html",
        workspace=ws,
        name=name,
        versions=versions,
        nav="data",
        title=f"{name} · data · {ws}",
    )


@router.get("/ws/{ws}/datasets/{name}/versions/{version}", response_class=HTMLResponse)
def dataset_version(request: Request, ws: str, name: str, version: int) -> Response:
    services = web.services(request)
    info = services.datasets.get_dataset(ws, name, version)
    preview: dict[str, Any] | None = None
    preview_error = ""
    if info.kind == TABULAR:
        try:
            preview = services.datasets.take(ws, name, version, PREVIEW_ROWS)
        except CumuloError as exc:
            preview_error = exc.message
    graph = services.datasets.lineage(ws, dataset=name, version=version)
    runs = services.datasets.dataset_runs(ws, name, version)
    others = [v.version for v in services.datasets.list_datasets(ws, name) if v.version != version]
    columns = info.profile.get("column_profiles", {})
    return web.render(
        request,
        "dataset_version.html",
        workspace=ws,
        info=info,
        preview=preview,
        preview_error=preview_error,
        columns=columns,
        bars=bars,
        runs=runs,
        graph=_by_kind(graph),
        others=others,
        shown_files=SHOWN_FILES,
        nav="data",
        title=f"{name}:{version} · data · {ws}",
    )


def _by_kind(graph: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"dataset": [], "run": [], "model": [], "endpoint": []}
    for node in graph["nodes"]:
        out.setdefault(node["kind"], []).append(node)
    return out


@router.get("/ws/{ws}/datasets/{name}/compare", response_class=HTMLResponse)
def compare(
    request: Request,
    ws: str,
    name: str,
    base: int = Query(ge=1, le=2**31 - 1),
    other: int = Query(ge=1, le=2**31 - 1),
    threshold: float = Query(default=0.2, ge=0, le=1e6),
) -> Response:
    services = web.services(request)
    report = services.datasets.compare_datasets(ws, name, base, name, other, threshold)
    return web.render(
        request,
        "dataset_compare.html",
        workspace=ws,
        name=name,
        base=base,
        other=other,
        report=report,
        nav="data",
        title=f"{name}:{other} against {base} · data · {ws}",
    )


@router.get("/ws/{ws}/datastores", response_class=HTMLResponse)
def datastores(request: Request, ws: str) -> Response:
    services = web.services(request)
    return web.render(
        request,
        "datastores.html",
        workspace=ws,
        stores=services.datasets.list_datastores(ws),
        nav="data",
        title=f"Datastores · {ws}",
    )


@router.get("/ws/{ws}/datastores/{name}", response_class=HTMLResponse)
def datastore(
    request: Request, ws: str, name: str, path: str = Query(default="", max_length=4096)
) -> Response:
    services = web.services(request)
    info = services.datasets.get_datastore(ws, name)
    path = path.strip("/")
    entries: list[Any] = []
    error = ""
    try:
        entries = services.datasets.browse_datastore(ws, name, path)
    except InvalidInput:
        raise
    except CumuloError as exc:  # the bucket or folder cannot be read now: say so on the page
        error = exc.message
    crumbs = []
    parts = path.split("/") if path else []
    for i, part in enumerate(parts):
        crumbs.append({"name": part, "path": "/".join(parts[: i + 1])})
    with contextlib.suppress(Exception):
        entries = sorted(entries, key=lambda e: (not e.is_dir, e.path))
    return web.render(
        request,
        "datastore.html",
        workspace=ws,
        store=info,
        path=path,
        crumbs=crumbs,
        entries=entries[:SHOWN_ENTRIES],
        more=max(0, len(entries) - SHOWN_ENTRIES),
        error=error,
        nav="data",
        title=f"{name} · datastores · {ws}",
    )
