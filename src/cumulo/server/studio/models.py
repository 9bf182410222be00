"""The model registry in the studio: models, their versions, lineage and where they serve.

Lineage reads left to right: the datasets a version names (and those its run
logged as inputs) -> the run that produced it (and its experiment) -> the
version -> the endpoint deployments that serve it.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from cumulo.core.datasets import SOURCE_TYPE
from cumulo.core.deployments import EndpointInfo, serving
from cumulo.core.entities import DatasetInput, FileInfo, ModelVersionInfo, RunInfo
from cumulo.core.errors import InvalidInput, NotFound
from cumulo.core.pages import encode_token
from cumulo.core.search import Clause, OrderBy
from cumulo.server.studio import files, web
from cumulo.services.context import Services

router = APIRouter(route_class=web.PageRoute, include_in_schema=False, dependencies=[web.READ])

MODELS_PAGE = 50
VERSIONS_PAGE = 50
RUN_VERSIONS = 50  # versions listed on a run's page
SHOWN_FILES = 500  # files listed on a version's page


# ------------------------------------------------------------------ helpers
def _endpoints(services: Services, ws: str) -> list[EndpointInfo]:
    return services.deployments.list_endpoints(ws)


def user_tags(version: ModelVersionInfo) -> dict[str, str]:
    """Tags a person set (framework, properties and datasets are shown apart)."""
    return version.user_tags


def properties(version: ModelVersionInfo) -> dict[str, str]:
    return version.properties


def framework(version: ModelVersionInfo) -> str:
    return version.model_framework or ""


def named_datasets(version: ModelVersionInfo) -> list[dict[str, str]]:
    """Datasets given at registration (``datasets=[("training", ds), ...]``)."""
    return version.datasets


def _runs(services: Services, ws: str, run_ids: set[str]) -> dict[str, RunInfo]:
    out: dict[str, RunInfo] = {}
    for run_id in run_ids:
        with contextlib.suppress(NotFound):  # the run may have been deleted since
            out[run_id] = services.tracking.get_run(ws, run_id)
    return out


def _lineage(
    services: Services,
    ws: str,
    versions: list[ModelVersionInfo],
    endpoints: list[EndpointInfo],
) -> dict[int, dict[str, Any]]:
    """Per version number: its datasets, run, experiment and serving deployments."""
    run_ids = {v.run_id for v in versions if v.run_id}
    runs = _runs(services, ws, run_ids)
    inputs = services.registry.lineage(ws, sorted(runs)) if runs else {}
    served = serving(endpoints)
    out: dict[int, dict[str, Any]] = {}
    for v in versions:
        datasets: list[dict[str, str]] = [
            {"name": d.get("dataset", ""), "detail": d.get("scenario", ""), "href": ""}
            for d in named_datasets(v)
        ]
        found = inputs.get(v.run_id or "")
        if found is not None:
            named = {d["name"] for d in datasets}
            datasets += [_run_input(ws, d) for d in found.datasets if d.name not in named]
        out[v.version] = {
            "datasets": datasets,
            "run": runs.get(v.run_id or ""),
            "run_id": v.run_id,
            "serving": served.get((v.name, v.version), []),
        }
    return out


def _run_input(ws: str, d: DatasetInput) -> dict[str, str]:
    """A dataset a run read; a registered dataset version links to its page."""
    if d.source_type == SOURCE_TYPE:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            version = int(json.loads(d.source)["version"])
            return {
                "name": f"{d.name}:{version}",
                "detail": "run input",
                "href": f"/ws/{quote(ws, safe='')}/datasets/{quote(d.name, safe='')}"
                f"/versions/{version}",
            }
    return {"name": d.name, "detail": f"run input · {d.digest[:8]}", "href": ""}


def versions_of_run(services: Services, ws: str, run_id: str) -> list[ModelVersionInfo]:
    """Registered versions whose files came from this run (for the run's page)."""
    clauses = [Clause("attribute", "run_id", "=", run_id)]
    order = [OrderBy("attribute", "name"), OrderBy("attribute", "version", False)]
    found, _ = services.registry.search_versions(ws, clauses, order, RUN_VERSIONS)
    return found


# -------------------------------------------------------------------- pages
@router.get("/ws/{ws}/models", response_class=HTMLResponse)
def models(
    request: Request, ws: str, q: str = "", page: int = Query(default=1, ge=1, le=100_000)
) -> Response:
    services = web.services(request)
    services.tracking.get_workspace(ws)
    clauses = [Clause("attribute", "name", "ILIKE", f"%{q.strip()}%")] if q.strip() else []
    found, more = services.registry.search_models(
        ws,
        clauses,
        [OrderBy("attribute", "updated_at", False)],
        MODELS_PAGE,
        encode_token((page - 1) * MODELS_PAGE) if page > 1 else None,
    )
    by_model: dict[str, set[str]] = {}
    for (model_name, _), where in serving(_endpoints(services, ws)).items():
        by_model.setdefault(model_name, set()).update(s["endpoint"] for s in where)
    rows = [
        {
            "model": m,
            "latest": max(m.latest_versions, key=lambda v: v.version, default=None),
            "endpoints": sorted(by_model.get(m.name, ())),
        }
        for m in found
    ]
    return web.render(
        request,
        "models.html",
        workspace=ws,
        rows=rows,
        q=q,
        page=page,
        more=more is not None,
        user_tags=user_tags,
        nav="models",
        title=f"Models · {ws}",
    )


@router.get("/ws/{ws}/models/{name}", response_class=HTMLResponse)
def model(
    request: Request, ws: str, name: str, page: int = Query(default=1, ge=1, le=100_000)
) -> Response:
    services = web.services(request)
    info = services.registry.get_model(ws, name)
    versions, more = services.registry.search_versions(
        ws,
        [Clause("attribute", "name", "=", name)],
        [OrderBy("attribute", "version", False)],
        VERSIONS_PAGE,
        encode_token((page - 1) * VERSIONS_PAGE) if page > 1 else None,
    )
    lineage = _lineage(services, ws, versions, _endpoints(services, ws))
    return web.render(
        request,
        "model.html",
        workspace=ws,
        model=info,
        versions=versions,
        lineage=lineage,
        page=page,
        more=more is not None,
        user_tags=user_tags,
        framework=framework,
        nav="models",
        title=f"{name} · models · {ws}",
    )


@router.get("/ws/{ws}/models/{name}/versions/{version}", response_class=HTMLResponse)
def version_page(request: Request, ws: str, name: str, version: int) -> Response:
    services = web.services(request)
    info = services.registry.get_version(ws, name, version)
    lineage = _lineage(services, ws, [info], _endpoints(services, ws))[info.version]
    files_ = services.registry.list_version_files(ws, name, version, recursive=True)
    signature = {
        k: _pretty(v) for k, v in (info.signature or {}).items() if v not in (None, "", [])
    }
    return web.render(
        request,
        "model_version.html",
        workspace=ws,
        version=info,
        lineage=lineage,
        files=sorted((f for f in files_ if not f.is_dir), key=lambda f: f.path),
        shown_files=SHOWN_FILES,
        signature=signature,
        tags=user_tags(info),
        properties=properties(info),
        framework=framework(info),
        nav="models",
        title=f"{name}:{version} · models · {ws}",
    )


@router.get("/ws/{ws}/models/{name}/versions/{version}/file/{path:path}")
def version_file(request: Request, ws: str, name: str, version: int, path: str) -> Response:
    return files.raw(VersionFiles(web.services(request), ws, name, version), path, True)


def _pretty(value: Any) -> str:
    """Signature parts are JSON text in an MLmodel file: indent them for reading."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return str(value)
    return json.dumps(value, indent=1)


class VersionFiles:
    """A registered version's files as a ``files.FileSource``."""

    def __init__(self, services: Services, ws: str, name: str, version: int) -> None:
        self.registry = services.registry
        self.ws, self.name, self.version = ws, name, version

    def list(self, path: str) -> list[FileInfo]:
        return self.registry.list_version_files(self.ws, self.name, self.version, path)

    def size(self, path: str) -> int:
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        for f in self.list(parent):
            if f.path == path and not f.is_dir and f.size is not None:
                return f.size
        raise NotFound(f"Version {self.version} of {self.name!r} has no file {path!r}.")

    def open(self, path: str) -> Any:
        if not path:
            raise InvalidInput("Name a file of the model version.")
        return self.registry.open_version_file(self.ws, self.name, self.version, path)
