"""Run details: overview, metrics, images, logs, outputs, code and child runs."""

from __future__ import annotations

import contextlib
import posixpath
import re
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse

from cumulo.core import system_metrics
from cumulo.core.entities import MetricRecord, RunInfo, gather_records
from cumulo.core.errors import CumuloError
from cumulo.core.jobs import JOB_RUN_KIND
from cumulo.core.pipelines import PIPELINE_RUN_KIND
from cumulo.core.status import TERMINAL
from cumulo.core.sweeps import SWEEP_RUN_KIND
from cumulo.server.studio import files, logs, models, web

router = APIRouter(route_class=web.PageRoute, include_in_schema=False, dependencies=[web.READ])

TABS = [
    ("overview", "Overview"),
    ("metrics", "Metrics"),
    ("system", "System"),
    ("images", "Images"),
    ("logs", "Logs"),
    ("outputs", "Outputs"),
    ("code", "Code"),
    ("children", "Child runs"),
]
SNAPSHOT_PREFIX = "snapshot"
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>.+)$')


def _run(request: Request, ws: str, run_id: str) -> RunInfo:
    return web.services(request).tracking.get_run(ws, run_id)


CHILDREN_COUNTED = 100  # more child runs than this read as "100+" on the tab


def _counts(request: Request, run: RunInfo, records: list[MetricRecord] | None) -> dict[str, str]:
    """What each tab holds, for its label: the run's metrics and tables, its system
    metrics, images, logs, child runs. ``records``: the run's, where the tab read them."""
    services = web.services(request)
    tracking = services.tracking
    if records is None:
        records = tracking.get_run_records(run.workspace, run.id)
    tables = {r.name for r in records if r.kind != "image"}
    machine = sum(1 for k in run.metrics if system_metrics.is_system(k))
    children = tracking.search_runs(
        run.workspace, parent_id=run.id, max_results=CHILDREN_COUNTED + 1
    ).runs
    counts = {
        "metrics": len(set(run.metrics) | tables) - machine,
        "system": machine,
        "images": sum(1 for r in records if r.kind == "image"),
        "logs": len(logs.log_names(services, run.workspace, run.id, run.kind)),
        "children": len(children),
    }
    shown = {key: str(n) for key, n in counts.items() if n}
    if len(children) > CHILDREN_COUNTED:
        shown["children"] = f"{CHILDREN_COUNTED}+"
    return shown


def _tabs(kind: str) -> list[tuple[str, str]]:
    """A sweep's and a pipeline's runs have a tab of their own after the overview."""
    own = {SWEEP_RUN_KIND: ("sweep", "Sweep"), PIPELINE_RUN_KIND: ("pipeline", "Pipeline")}
    return [TABS[0], own[kind], *TABS[1:]] if kind in own else TABS


def _page(
    request: Request,
    run: RunInfo,
    tab: str,
    template: str,
    records: list[MetricRecord] | None = None,
    **context: Any,
) -> Response:
    return web.render(
        request,
        template,
        workspace=run.workspace,
        run=run,
        tab=tab,
        tabs=_tabs(run.kind),
        counts=_counts(request, run, records),
        active=run.status not in {s.value for s in TERMINAL},
        nav="experiments",
        title=f"{run.display_name} · {run.experiment_name}",
        **context,
    )


# ------------------------------------------------------------------ overview
@router.get("/ws/{ws}/runs/{run_id}", response_class=HTMLResponse)
def overview(request: Request, ws: str, run_id: str) -> Response:
    run = _run(request, ws, run_id)
    tracking = web.services(request).tracking
    page = tracking.search_runs(ws, parent_id=run_id, order_by=["attributes.number ASC"])
    parent = tracking.get_run(ws, run.parent_id) if run.parent_id else None
    # Errors differ by who wrote them (a script's fail(), a job's runner, a cancel).
    error = {k: (run.error or {}).get(k) or "" for k in ("code", "message", "traceback")}
    return _page(
        request,
        run,
        "overview",
        "run_overview.html",
        children=page.runs[:20],
        child_count=len(page.runs),
        parent=parent,
        error=error,
        frames=failing_lines(error["traceback"]),
        details=_details(run),
        registered=models.versions_of_run(web.services(request), ws, run_id),
    )


@router.get("/ws/{ws}/runs/{run_id}/header", response_class=HTMLResponse)
def header(request: Request, ws: str, run_id: str) -> Response:
    """The live part of every run page: status, times; polled while the run is active."""
    run = _run(request, ws, run_id)
    return web.render(
        request,
        "run_header.html",
        run=run,
        workspace=ws,
        active=run.status not in {s.value for s in TERMINAL},
    )


def _details(run: RunInfo) -> list[tuple[str, Any]]:
    props = run.properties
    environment = props.get("environment") or run.tags.get("environment") or ""
    snapshot = props.get("snapshot") or props.get("snapshot_id") or ""
    return [
        ("Run id", run.id),
        ("Experiment", run.experiment_name),
        ("Kind", run.kind),
        ("Submitted by", run.user or "—"),
        ("Created", web.when(run.created_at)),
        ("Started", web.when(run.started_at) or "—"),
        ("Ended", web.when(run.ended_at) or "—"),
        ("Duration", web.duration(run.duration) or "—"),
        ("Compute", run.compute_target or "local"),
        ("Environment", environment or "—"),
        ("Snapshot", snapshot or "—"),
    ]


def failing_lines(traceback: str) -> list[dict[str, Any]]:
    """Frames of a Python traceback, the last one (where it failed) marked."""
    frames: list[dict[str, Any]] = []
    lines = traceback.splitlines()
    for i, text in enumerate(lines):
        match = _FRAME.match(text)
        if not match:
            continue
        code = lines[i + 1].strip() if i + 1 < len(lines) and not _FRAME.match(lines[i + 1]) else ""
        frames.append({**match.groupdict(), "code": code, "last": False})
    if frames:
        frames[-1]["last"] = True
    return frames[-6:]


# ------------------------------------------------------------------- metrics
@router.get("/ws/{ws}/runs/{run_id}/metrics", response_class=HTMLResponse)
def metrics(request: Request, ws: str, run_id: str) -> Response:
    run = _run(request, ws, run_id)
    records = web.services(request).tracking.get_run_records(ws, run_id)
    return _page(
        request,
        run,
        "metrics",
        "run_metrics.html",
        records,
        keys=sorted(k for k in run.metrics if not system_metrics.is_system(k)),
        tables=_tables(records),
    )


@router.get("/ws/{ws}/runs/{run_id}/system", response_class=HTMLResponse)
def system(request: Request, ws: str, run_id: str) -> Response:
    """The machine beside the run's own metrics: every chart on one time axis."""
    run = _run(request, ws, run_id)
    keys = [k for k in run.metrics if system_metrics.is_system(k)]
    return _page(
        request,
        run,
        "system",
        "run_system.html",
        groups=_system_groups(keys),
        own=sorted(k for k in run.metrics if not system_metrics.is_system(k)),
        span=[run.started_at or run.created_at, run.ended_at],
    )


# The System tab's sections, in order, and the start of the names each holds.
_SYSTEM_GROUPS = (
    ("GPUs", ("system/gpu_",)),
    ("CPU", ("system/cpu_", "system/process_cpu")),
    ("Memory", ("system/process_rss", "system/system_memory")),
    ("Disk", ("system/disk_",)),
    ("Network", ("system/network_",)),
)


def _system_groups(keys: list[str]) -> list[tuple[str, list[str]]]:
    groups = []
    for title, starts in _SYSTEM_GROUPS:
        found = sorted(k for k in keys if k.startswith(starts))
        if found:
            groups.append((title, found))
    return groups


def _tables(records: list[MetricRecord]) -> list[dict[str, Any]]:
    """Lists, rows and tables as ``{name, columns, rows}`` for HTML tables."""
    out: dict[str, dict[str, Any]] = {}
    for name, (kind, value) in gather_records(records).items():
        if kind == "row":
            out[name] = {"name": name, "kind": "row", "columns": value}
        elif kind == "list":
            out[name] = {"name": name, "kind": "list", "columns": {name: list(value)}}
        elif kind != "image":
            cols = {k: list(v) for k, v in dict(value).items()}
            out[name] = {"name": name, "kind": "table", "columns": cols}
    tables = []
    for t in out.values():
        names = list(t["columns"])
        n = max((len(v) for v in t["columns"].values()), default=0)
        rows = [[_at(t["columns"][c], i) for c in names] for i in range(n)]
        tables.append({"name": t["name"], "kind": t["kind"], "columns": names, "rows": rows})
    return sorted(tables, key=lambda t: t["name"])


def _at(values: list[Any], i: int) -> Any:
    return values[i] if i < len(values) else None


@router.get("/ws/{ws}/runs/{run_id}/images", response_class=HTMLResponse)
def images(request: Request, ws: str, run_id: str) -> Response:
    run = _run(request, ws, run_id)
    records = web.services(request).tracking.get_run_records(ws, run_id)
    gallery = image_gallery(records)
    views = [
        image_steps(name, [{"label": "", "run_id": run.id, "items": items}])
        for name, items in gallery.items()
    ]
    return _page(request, run, "images", "run_images.html", records, gallery=gallery, views=views)


def image_gallery(records: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """A run's images by name, in step order: each image's file, step, time and caption
    (an image logged without a step counts on from the one before)."""
    gallery: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.kind == "image" and isinstance(r.value, dict) and r.value.get("path"):
            items = gallery.setdefault(r.name, [])
            step = r.value.get("step")
            if not isinstance(step, int):
                step = items[-1]["step"] + 1 if items else 0
            items.append(
                {
                    "path": r.value["path"],
                    "step": step,
                    "at": r.timestamp,
                    "description": r.description,
                }
            )
    for items in gallery.values():
        items.sort(key=lambda item: item["step"])
    return gallery


def image_steps(name: str, columns: list[dict[str, Any]]) -> dict[str, Any]:
    """One image name across runs (a column each: ``label``, ``run_id``, ``items``), with
    every step any of them has: what one step slider moves through side by side."""
    steps = sorted({item["step"] for c in columns for item in c["items"]})
    return {"name": name, "steps": steps, "columns": columns}


# ---------------------------------------------------------------------- logs
@router.get("/ws/{ws}/runs/{run_id}/logs", response_class=HTMLResponse)
def logs_tab(request: Request, ws: str, run_id: str, name: str = "") -> Response:
    run = _run(request, ws, run_id)
    names = logs.log_names(web.services(request), ws, run_id, run.kind)
    chosen = name if name in names else (names[0] if names else "")
    return _page(request, run, "logs", "run_logs.html", names=names, chosen=chosen)


# ------------------------------------------------------------ outputs, code
@router.get("/ws/{ws}/runs/{run_id}/outputs", response_class=HTMLResponse)
def outputs(request: Request, ws: str, run_id: str, path: str = "", file: str = "") -> Response:
    run = _run(request, ws, run_id)
    source = files.ArtifactSource(web.services(request), ws, run_id)
    return _browser(request, run, "outputs", source, "file", path, file)


@router.get("/ws/{ws}/runs/{run_id}/code", response_class=HTMLResponse)
def code(request: Request, ws: str, run_id: str, path: str = "", file: str = "") -> Response:
    run = _run(request, ws, run_id)
    source = _code(request, run)
    if not path and not file:  # the code opens on the script the run ran
        file = _entry_script(request, run, source)
        path = posixpath.dirname(file)
    return _browser(request, run, "code", source, "code-file", path, file)


def _entry_script(request: Request, run: RunInfo, source: files.FileSource) -> str:
    """The script a run ran, where its code has it: a job's script, or the file MLflow
    named as the source; else the only Python file at the top. "" when none is known."""
    named = ""
    if run.kind == JOB_RUN_KIND:
        with contextlib.suppress(CumuloError):
            job = web.services(request).jobs.get_job(run.workspace, run.id)
            named = str(job.config.get("script") or "")
    else:
        named = posixpath.basename(run.tags.get("mlflow.source.name", ""))
    try:
        top = [e.path for e in source.list("") if not e.is_dir]
        if named and posixpath.dirname(named):
            top += [e.path for e in source.list(posixpath.dirname(named)) if not e.is_dir]
    except CumuloError:
        return ""
    if named in top:
        return named
    scripts = [p for p in top if p.endswith(".py")]
    return scripts[0] if len(scripts) == 1 else ""


def _code(request: Request, run: RunInfo) -> files.FileSource:
    """A job's snapshot, or the ``snapshot/`` folder an interactive run uploaded."""
    digest = run.properties.get("snapshot")
    if digest:
        return files.SnapshotSource(web.services(request), run.workspace, digest)
    return files.ArtifactSource(web.services(request), run.workspace, run.id, SNAPSHOT_PREFIX)


def _browser(
    request: Request,
    run: RunInfo,
    tab: str,
    source: files.FileSource,
    raw: str,
    path: str,
    file: str,
) -> Response:
    parts = [p for p in path.split("/") if p]
    crumbs = [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]
    return _page(
        request,
        run,
        tab,
        "run_files.html",
        raw=f"/ws/{run.workspace}/runs/{run.id}/{raw}/",
        path=path,
        crumbs=crumbs,
        entries=files.listing(source, path),
        file=file,
        preview=files.preview(source, file) if file else None,
        parent=posixpath.dirname(path.rstrip("/")),
    )


@router.get("/ws/{ws}/runs/{run_id}/file/{path:path}")
def raw_file(request: Request, ws: str, run_id: str, path: str, download: bool = False) -> Response:
    """A run's file: inline for images, otherwise as a download."""
    return files.raw(files.ArtifactSource(web.services(request), ws, run_id), path, download)


@router.get("/ws/{ws}/runs/{run_id}/code-file/{path:path}")
def code_file(
    request: Request, ws: str, run_id: str, path: str, download: bool = False
) -> Response:
    run = _run(request, ws, run_id)
    return files.raw(_code(request, run), path, download)


@router.get("/ws/{ws}/runs/{run_id}/job-log")
def job_log(request: Request, ws: str, run_id: str, name: str = "job/output") -> Response:
    """A job's whole log as a text file."""
    services = web.services(request)
    _run(request, ws, run_id)

    def chunks() -> Iterator[bytes]:
        cursor = 0
        while True:
            piece = logs.read(services, ws, run_id, name, cursor)
            yield piece.text.encode()
            if not piece.more:
                return
            cursor = piece.cursor

    filename = name.replace("/", "-") + ".txt"
    return StreamingResponse(
        chunks(),
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# ------------------------------------------------------------------ children
@router.get("/ws/{ws}/runs/{run_id}/children", response_class=HTMLResponse)
def children(request: Request, ws: str, run_id: str) -> Response:
    run = _run(request, ws, run_id)
    page = web.services(request).tracking.search_runs(
        ws, parent_id=run_id, order_by=["attributes.number ASC"], max_results=1000
    )
    keys = sorted({k for r in page.runs for k in r.metrics})[:6]
    params = sorted({k for r in page.runs for k in r.params})[:6]
    return _page(
        request,
        run,
        "children",
        "run_children.html",
        children=page.runs,
        metric_keys=keys,
        param_keys=params,
    )
