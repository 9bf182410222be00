"""Workspaces, experiments and runs on the command line."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich import filesize
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from cumulo.cli.common import (
    HomeOption,
    JsonOption,
    WorkspaceOption,
    console,
    err_console,
    friendly_errors,
    open_workspace,
    print_json,
)
from cumulo.core import system_metrics
from cumulo.core.entities import RunInfo, encode_float
from cumulo.core.errors import InvalidInput
from cumulo.core.settings import Settings
from cumulo.sdk import display
from cumulo.sdk.progress import transfer
from cumulo.sdk.workspace import Experiment, Workspace

workspace_app = typer.Typer(
    help="Create, list, show, export and import workspaces.", no_args_is_help=True
)
experiment_app = typer.Typer(help="List, archive and delete experiments.", no_args_is_help=True)
run_app = typer.Typer(help="List, inspect, download and delete runs.", no_args_is_help=True)

ROWS_WORTH_A_BAR = 50_000  # below this an export's rows are written before a bar helps


def register(app: typer.Typer) -> None:
    app.add_typer(workspace_app, name="workspace")
    app.add_typer(experiment_app, name="experiment")
    app.add_typer(run_app, name="run")


# ------------------------------------------------------------------ workspace
@workspace_app.command("create")
@friendly_errors
def workspace_create(
    name: str,
    home: str | None = HomeOption,
    database_url: str | None = typer.Option(None, help="PostgreSQL URL instead of SQLite."),
    artifact_root: str | None = typer.Option(None, help="Artifact folder or s3://bucket/prefix."),
    url: str | None = typer.Option(
        None, "--url", help="Create it on this server (default: $CUMULO_URL when set)."
    ),
    exist_ok: bool = typer.Option(False, "--exist-ok", help="Succeed if it already exists."),
    write_config: bool = typer.Option(
        False, "--write-config", help="Write .cumulo/config.json here so commands find it."
    ),
) -> None:
    """Create a workspace: on the server at --url or $CUMULO_URL, else in an embedded home.

    Example: cumulo workspace create demo --exist-ok --write-config
    """
    ws = Workspace.create(
        name,
        home=home,
        exist_ok=exist_ok,
        database_url=database_url,
        artifact_root=artifact_root,
        url=url,
    )
    if ws.url:
        console.print(f"Workspace [bold]{ws.name}[/bold] on the server {ws.url}")
    else:
        console.print(
            f"Workspace [bold]{ws.name}[/bold] in an embedded home, {ws.location} "
            "(no server: pass --url or set CUMULO_URL to create it on one)"
        )
    if write_config:
        console.print(f"Wrote {ws.write_config('.')}")


@workspace_app.command("list")
@friendly_errors
def workspace_list(
    home: str | None = HomeOption,
    url: str | None = typer.Option(
        None, "--url", help="List a server's workspaces (default: $CUMULO_URL when set)."
    ),
    json: bool = JsonOption,
) -> None:
    """List the workspaces of a server, or of an embedded home.

    Example: cumulo workspace list --url http://ml-server:5000
    """
    workspaces = Workspace.list(home=home, url=url)
    if json:
        print_json([{"name": w.name, "location": w.location} for w in workspaces])
        return
    table = Table("name", "location")
    for w in workspaces:
        table.add_row(w.name, w.location)
    console.print(table)


@workspace_app.command("show")
@friendly_errors
def workspace_show(
    name: str | None = typer.Argument(None), home: str | None = HomeOption, json: bool = JsonOption
) -> None:
    """Show a workspace and its experiments.

    Example: cumulo workspace show demo --json
    """
    ws = open_workspace(name, home)
    exps = Experiment.list(ws, include_archived=True)
    if json:
        print_json(
            {"name": ws.name, "location": ws.location, "experiments": [_exp(e) for e in exps]}
        )
        return
    console.print(f"Workspace [bold]{ws.name}[/bold] at {ws.location}")
    _print_experiments(exps)


@workspace_app.command("export")
@friendly_errors
def workspace_export(
    folder: Path = typer.Argument(..., help="A new (or empty) folder to write the export to."),
    workspace: str | None = typer.Option(
        None, "--workspace", "-w", help="Workspace to export (default: $CUMULO_WORKSPACE)."
    ),
    home: str | None = HomeOption,
    database_url: str | None = typer.Option(
        None, help="The store's PostgreSQL URL (default: $CUMULO_DATABASE_URL, else SQLite)."
    ),
    artifact_root: str | None = typer.Option(
        None, help="The store's artifact folder or s3://bucket/prefix (default: the home's)."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Export even while jobs, sweeps or pipelines run: they come out as canceled runs.",
    ),
) -> None:
    """Write a workspace (runs, metrics, artifacts, models, datasets, pipelines, endpoint
    definitions; no tokens) to a folder that `cumulo workspace import` reads.

    Reads the store directly (embedded home, or --database-url and --artifact-root);
    it does not go through a server's --url. See docs/backup.md.

    Example: cumulo workspace export backups/demo-2026-12-07 -w demo
    """
    from cumulo.store.transfer import export_workspace

    name = workspace or os.environ.get("CUMULO_WORKSPACE")
    if not name:
        raise InvalidInput("No workspace given: pass --workspace NAME or set CUMULO_WORKSPACE.")
    db, artifacts = _open_store(home, database_url, artifact_root)
    try:
        done = export_workspace(db, artifacts, name, folder, force=force, meter=_meter)
    finally:
        db.dispose()
    console.print(
        f"Exported workspace [bold]{done.workspace}[/bold] to {done.folder}: "
        f"{sum(done.rows.values())} rows, {done.files} files ({filesize.decimal(done.bytes)})"
    )
    if done.interrupted_runs:
        console.print(
            f"{len(done.interrupted_runs)} unfinished runs are exported as canceled: "
            + ", ".join(done.interrupted_runs)
        )


@workspace_app.command("import")
@friendly_errors
def workspace_import(
    folder: Path = typer.Argument(..., help="A folder written by `cumulo workspace export`."),
    name: str | None = typer.Option(
        None, "--name", help="Name of the new workspace (default: the exported workspace's)."
    ),
    home: str | None = HomeOption,
    database_url: str | None = typer.Option(
        None, help="The target's PostgreSQL URL (default: $CUMULO_DATABASE_URL, else SQLite)."
    ),
    artifact_root: str | None = typer.Option(
        None, help="The target's artifact folder or s3://bucket/prefix (default: the home's)."
    ),
) -> None:
    """Create a workspace from an export folder, in an embedded home or a PostgreSQL store.

    Refuses a name that exists (pick another with --name); all or nothing: on any
    error the target is left as it was. Endpoints get new keys and start on the
    target's server; tokens are not carried. See docs/backup.md.

    Example: cumulo workspace import backups/demo-2026-12-07 --name demo-restored
    """
    from cumulo.store.transfer import import_workspace

    db, artifacts = _open_store(home, database_url, artifact_root)
    try:
        done = import_workspace(db, artifacts, folder, name=name, meter=_meter)
    finally:
        db.dispose()
    console.print(
        f"Imported workspace [bold]{done.workspace}[/bold] into {db.safe_url}: "
        f"{sum(done.rows.values())} rows, {done.files} files ({filesize.decimal(done.bytes)})"
    )
    if done.renamed_ids:
        console.print(
            f"{len(done.renamed_ids)} ids already existed in this store and were given new ones:"
        )
        for old, new in sorted(done.renamed_ids.items()):
            console.print(f"  {old} -> {new}")
    if done.sealed_values:
        err_console.print(
            f"{done.sealed_values} sealed credentials (datastores, SSH targets) open only with "
            "the source home's secret.key: copy it to this home, or register them again."
        )


def _open_store(
    home: str | None, database_url: str | None, artifact_root: str | None
) -> tuple[Any, Any]:
    from cumulo.store.artifacts import ArtifactStore
    from cumulo.store.db import Database

    settings = Settings.load(home=home, database_url=database_url, artifact_root=artifact_root)
    if os.environ.get("CUMULO_URL") and not (home or database_url or artifact_root):
        err_console.print(
            f"Reading the store directly ({settings.database_url} + {settings.artifact_root}), "
            "not the server at $CUMULO_URL: exports and imports do not go through a server.",
            soft_wrap=True,
        )
    return (
        Database(settings.database_url),
        ArtifactStore(settings.artifact_root, settings.s3_endpoint_url),
    )


@contextlib.contextmanager
def _meter(label: str, total: int, unit: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal for long exports and imports: bytes as uploads show
    them, rows counted."""
    if unit == "bytes":
        with transfer(label, total) as advance:
            yield advance
        return
    if total < ROWS_WORTH_A_BAR or not err_console.is_terminal:
        yield lambda _n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err_console) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


# ----------------------------------------------------------------- experiment
def _exp(e: Experiment) -> dict[str, Any]:
    return e._info.to_dict()


def _print_experiments(exps: list[Experiment]) -> None:
    table = Table("id", "name", "runs", "last activity", "archived")
    for e in exps:
        i = e._info
        table.add_row(
            str(i.id),
            i.name,
            str(i.run_count),
            display.when(i.last_activity),
            "yes" if i.archived else "",
        )
    console.print(table)


@experiment_app.command("list")
@friendly_errors
def experiment_list(
    workspace: str | None = WorkspaceOption,
    all: bool = typer.Option(False, "--all", help="Include archived experiments."),
    json: bool = JsonOption,
) -> None:
    """List experiments with run counts and last activity.

    Example: cumulo experiment list -w demo --all
    """
    exps = Experiment.list(open_workspace(workspace), include_archived=all)
    if json:
        print_json([_exp(e) for e in exps])
    else:
        _print_experiments(exps)


@experiment_app.command("archive")
@friendly_errors
def experiment_archive(name: str, workspace: str | None = WorkspaceOption) -> None:
    """Hide an experiment from listings (its runs are kept).

    Example: cumulo experiment archive old-tries -w demo
    """
    ws = open_workspace(workspace)
    ws.transport.tracking.get_experiment(ws.name, name=name)
    Experiment(ws, name).archive()
    console.print(f"Archived experiment {name!r}.")


@experiment_app.command("delete")
@friendly_errors
def experiment_delete(
    name: str,
    workspace: str | None = WorkspaceOption,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete an experiment, all its runs and their files, for good.

    Example: cumulo experiment delete old-tries -w demo --yes
    """
    ws = open_workspace(workspace)
    info = ws.transport.tracking.get_experiment(ws.name, name=name)
    if not yes:
        typer.confirm(
            f"Delete experiment {name!r} and its {info.run_count} runs for good?", abort=True
        )
    ws.transport.tracking.delete_experiment(ws.name, info.id)
    console.print(f"Deleted experiment {name!r} ({info.run_count} runs).")


# ----------------------------------------------------------------------- runs
def _run_dict(info: RunInfo) -> dict[str, Any]:
    data = info.to_dict()
    for m in data["metrics"].values():
        m["value"] = encode_float(m["value"])
    return data


@run_app.command("list")
@friendly_errors
def run_list(
    experiment: str,
    workspace: str | None = WorkspaceOption,
    filter: str | None = typer.Option(None, "--filter", help='e.g. "metrics.acc > 0.9"'),
    order_by: list[str] = typer.Option([], "--order-by", help='e.g. "metrics.acc DESC"'),
    limit: int = typer.Option(50, "--limit", min=1, max=50_000, help="At most this many runs."),
    columns: str | None = typer.Option(
        None,
        "--columns",
        help="Comma-separated metrics (or params.X, tags.X) to show; "
        "default: as many metrics as fit the terminal.",
    ),
    json: bool = JsonOption,
) -> None:
    """List the runs of an experiment, filtered and ordered like MLflow's search.

    Example: cumulo run list digits --filter "metrics.acc > 0.9" --order-by "metrics.acc DESC"
    """
    ws = open_workspace(workspace)
    ws.transport.tracking.get_experiment(ws.name, name=experiment)
    runs = list(
        Experiment(ws, experiment).get_runs(
            filter=filter, order_by=order_by or None, max_results=limit, include_children=True
        )
    )
    if json:
        print_json([_run_dict(r.info) for r in runs])
        return
    metric_keys = sorted({k for r in runs for k in r.info.metrics})
    if columns:
        chosen = [_column(c) for c in columns.split(",") if c.strip()]
    else:
        room = max(console.width - FIXED_WIDTH, 0) // METRIC_WIDTH
        chosen = [("metric", k) for k in metric_keys[:room]]
    table = Table("#", "id", "name", "status", "started", "duration")
    for kind, key in chosen:
        table.add_column(key if kind == "metric" else f"{kind}s.{key}", overflow="fold")
    for r in runs:
        i = r.info
        table.add_row(
            str(i.number),
            i.id[:8],
            i.display_name,
            i.status,
            display.when(i.started_at),
            display.duration(i.duration),
            *[_cell(i, kind, key) for kind, key in chosen],
        )
    console.print(table)
    left = len(metric_keys) - sum(1 for kind, _ in chosen if kind == "metric")
    if left > 0 and not columns:
        console.print(
            f"{left} more metric(s) not shown: choose with --columns "
            f"(e.g. --columns {','.join(metric_keys[-2:])}), or --json for all."
        )


FIXED_WIDTH = 70  # "#", id, name, status, started and duration, as a table draws them
METRIC_WIDTH = 12


def _column(text: str) -> tuple[str, str]:
    kind, dot, key = text.strip().partition(".")
    if dot and kind in ("metrics", "params", "tags"):
        return kind[:-1], key
    return "metric", text.strip()


def _cell(info: RunInfo, kind: str, key: str) -> str:
    if kind == "metric":
        return display.fmt_value(info.metrics[key].value) if key in info.metrics else ""
    return (info.params if kind == "param" else info.tags).get(key, "")


@run_app.command("show")
@friendly_errors
def run_show(run_id: str, workspace: str | None = WorkspaceOption, json: bool = JsonOption) -> None:
    """Show a run: status, times, params, tags, properties, latest metrics, error.

    Example: cumulo run show 86c92a63
    """
    run = open_workspace(workspace).get_run(run_id)
    details = run.get_details()
    if json:
        print_json({**details, "metrics": _run_dict(run.info)["metrics"]})
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key in ("runId", "displayName", "experiment", "status", "user", "target",
                "startTimeUtc", "endTimeUtc", "parentRunId"):  # fmt: skip
        table.add_row(key, str(details[key] or ""))
    table.add_row("duration", display.duration(details["durationSeconds"]))
    for section in ("params", "tags", "properties"):
        for k, v in details[section].items():
            table.add_row(f"{section[:-1] if section != 'properties' else 'property'} {k}", v)
    for k, m in sorted(run.info.metrics.items()):
        table.add_row(f"metric {k}", f"{display.fmt_value(m.value)} (step {m.step})")
    if details["error"]:
        table.add_row("[red]error[/red]", str(details["error"].get("message", "")))
    console.print(table)


_SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 24) -> str:
    finite = [v for v in values if not (math.isnan(v) or math.isinf(v))]
    if not finite:
        return ""
    if len(values) > width:  # mean of equal buckets
        size = len(values) / width
        values = [
            sum(values[int(i * size) : max(int((i + 1) * size), int(i * size) + 1)])
            / max(int((i + 1) * size) - int(i * size), 1)
            for i in range(width)
        ]
    lo, hi = min(finite), max(finite)
    span = (hi - lo) or 1.0
    out = []
    for v in values:
        if math.isnan(v) or math.isinf(v):
            out.append(" ")
        else:
            out.append(_SPARKS[min(int((v - lo) / span * (len(_SPARKS) - 1)), len(_SPARKS) - 1)])
    return "".join(out)


@run_app.command("metrics")
@friendly_errors
def run_metrics(
    run_id: str,
    workspace: str | None = WorkspaceOption,
    json: bool = JsonOption,
    system: bool = typer.Option(
        False, "--system", help="The run's system metrics (CPU, memory, disk, network, GPUs)."
    ),
) -> None:
    """Show a run's metrics: last value, count, min, max and a sparkline per series.

    Example: cumulo run metrics 86c92a63 --json
    """
    ws = open_workspace(workspace)
    run_id = ws.get_run(run_id).id  # a unique start of the id, as tables show, is enough
    data = ws.transport.tracking.get_run_metrics(ws.name, run_id)
    data = {
        "series": {
            k: s for k, s in data["series"].items() if system_metrics.is_system(k) == system
        },
        "records": [r for r in data["records"] if system_metrics.is_system(r["name"]) == system],
    }
    if system and not data["series"]:
        err_console.print(
            "No system metrics: a job samples them every 10 s while it runs "
            "(system_metrics_interval), an interactive run with start_logging(system_metrics=True)."
        )
    if json:
        series = {
            k: {**s, "value": [encode_float(v) for v in s["value"]]}
            for k, s in data["series"].items()
        }
        print_json({"series": series, "records": data["records"]})
        return
    table = Table("system metric" if system else "metric", "last", "points", "min", "max", "trend")
    for key, s in sorted(data["series"].items()):
        values = s["value"]
        finite = [v for v in values if not math.isnan(v)]
        table.add_row(
            key.removeprefix(system_metrics.PREFIX) if system else key,
            display.fmt_value(values[-1]),
            str(len(values)),
            display.fmt_value(min(finite)) if finite else "",
            display.fmt_value(max(finite)) if finite else "",
            sparkline(values),
        )
    for rec in data["records"]:
        table.add_row(rec["name"], f"({rec['kind']})", "", "", "", str(rec["value"])[:40])
    console.print(table)


@run_app.command("download")
@friendly_errors
def run_download(
    run_id: str,
    workspace: str | None = WorkspaceOption,
    prefix: str = typer.Option("", "--prefix", help="Only files under this path."),
    to: Path = typer.Option(Path("."), "--to", help="Folder to download into."),
) -> None:
    """Download a run's files.

    Example: cumulo run download 86c92a63 --prefix outputs --to ./best
    """
    run = open_workspace(workspace).get_run(run_id)
    paths = run.download_files(prefix=prefix, output_directory=to)
    for p in paths:
        console.print(str(p))
    console.print(f"{len(paths)} file(s) downloaded to {to}")


@run_app.command("delete")
@friendly_errors
def run_delete(
    run_id: str,
    workspace: str | None = WorkspaceOption,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a run, its child runs and their files, for good.

    Example: cumulo run delete 86c92a63 --yes
    """
    ws = open_workspace(workspace)
    run = ws.get_run(run_id)
    if not yes:
        typer.confirm(f"Delete run {run.display_name!r} ({run.id}) for good?", abort=True)
    removed = ws.transport.tracking.delete_run(ws.name, run.id)
    console.print(f"Deleted {len(removed)} run(s).")
