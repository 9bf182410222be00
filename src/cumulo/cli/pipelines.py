"""Pipelines and schedules on the command line.

cumulo pipeline submit -f pipeline.yml [-e EXPERIMENT] [-p name=value ...] [--no-wait]
cumulo pipeline show RUN [--json]
cumulo pipeline list [--json]                       published pipelines
cumulo pipeline publish -f pipeline.yml --name NAME [--version V] [--description D]
cumulo schedule create NAME --pipeline ID -e EXPERIMENT
                       (--every "5 Minute" | --cron EXPR | --on-dataset DATASET) [-p name=value ...]
cumulo schedule list [--json]
cumulo schedule disable NAME   /   cumulo schedule enable NAME

A pipeline file (``docs/pipelines.md``)::

    experiment: nightly
    parameters: {lr: 0.1}
    steps:
      prepare:
        source_directory: src
        script: prepare.py
        arguments: [--out, "${{outputs.prepared}}"]
      train:
        source_directory: src
        script: train.py
        arguments: [--data, "${{inputs.prepared}}", --lr, "${{parameters.lr}}"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml
from rich.table import Table

from cumulo.cli.common import (
    JsonOption,
    WorkspaceOption,
    console,
    err_console,
    friendly_errors,
    open_workspace,
    print_json,
)
from cumulo.core.errors import InvalidInput
from cumulo.core.status import RunStatus
from cumulo.sdk import display
from cumulo.sdk.pipelines import (
    Pipeline,
    PipelineRun,
    PublishedPipeline,
    Schedule,
    ScheduleRecurrence,
)
from cumulo.sdk.workspace import Experiment

pipeline_app = typer.Typer(
    help="Pipelines: submit one from a file, show its steps, publish it.", no_args_is_help=True
)
schedule_app = typer.Typer(
    help="Schedules: run a published pipeline on a recurrence, a cron expression or a "
    "dataset's new versions.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(pipeline_app, name="pipeline")
    app.add_typer(schedule_app, name="schedule")


def _values(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise InvalidInput(f"Write a parameter as name=value, got {pair!r}.")
        out[name] = yaml.safe_load(raw) if raw else ""
    return out


def _experiment(file: Path, given: str | None) -> str:
    if given:
        return given
    data = yaml.safe_load(file.read_text()) if file.is_file() else None
    name = data.get("experiment") if isinstance(data, dict) else None
    if not name:
        raise InvalidInput(f"Name the experiment with -e NAME or 'experiment:' in {file}.")
    return str(name)


def _print_steps(run: PipelineRun) -> None:
    info = run.refresh().info
    console.print(f"Pipeline run [bold]{info.id}[/bold] ({info.display_name}): {info.status}")
    table = Table("step", "status", "run", "why")
    for s in run.get_steps():
        why = "" if s["state"] in ("reused", "canceled") else s["reason"]
        table.add_row(s["name"], s["status"], s["run_id"] or "", why)
    console.print(table)
    if info.error:
        err_console.print(f"[red]{info.error.get('message', '')}[/red]")


# ------------------------------------------------------------------ pipeline
@pipeline_app.command("submit")
@friendly_errors
def pipeline_submit(
    file: Path = typer.Option(..., "--file", "-f", help="The pipeline definition (YAML)."),
    experiment: str | None = typer.Option(None, "--experiment", "-e", help="Experiment name."),
    param: list[str] = typer.Option([], "--param", "-p", help="A pipeline parameter, name=value."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Stay until the pipeline ends."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Submit a pipeline from a YAML file; prints its steps (and why each ran) at the end."""
    ws = open_workspace(workspace)
    pipeline = Pipeline.load_yaml(ws, file)
    run = Experiment(ws, _experiment(file, experiment)).submit(
        pipeline, pipeline_parameters=_values(param) or None
    )
    assert isinstance(run, PipelineRun)
    err_console.print(f"Submitted pipeline run [bold]{run.id}[/bold]: {len(pipeline.steps)} steps.")
    if not wait:
        print(run.id)
        return
    details = run.wait_for_completion(show_output=True)
    _print_steps(run)
    raise typer.Exit(0 if details["status"] == RunStatus.COMPLETED.value else 1)


@pipeline_app.command("show")
@friendly_errors
def pipeline_show(
    run_id: str, json: bool = JsonOption, workspace: str | None = WorkspaceOption
) -> None:
    """A pipeline run's steps: status, run, and why each ran or was reused."""
    ws = open_workspace(workspace)
    run = PipelineRun.get(ws, run_id)
    if json:
        print_json({"run_id": run.id, "status": run.get_status(), "steps": run.get_steps()})
        return
    _print_steps(run)


@pipeline_app.command("list")
@friendly_errors
def pipeline_list(json: bool = JsonOption, workspace: str | None = WorkspaceOption) -> None:
    """Published pipelines: name, version, id; the default version of each name is marked."""
    ws = open_workspace(workspace)
    found = PublishedPipeline.list(ws)
    if json:
        print_json([p._info.to_dict() for p in found])
        return
    table = Table("name", "version", "default", "id", "published", "description")
    for p in found:
        table.add_row(
            p.name,
            p.version,
            "*" if p._info.is_default else "",
            p.id,
            display.when(p._info.created_at),
            p.description,
        )
    console.print(table)


@pipeline_app.command("publish")
@friendly_errors
def pipeline_publish(
    file: Path = typer.Option(..., "--file", "-f", help="The pipeline definition (YAML)."),
    name: str = typer.Option(..., "--name", help="The name to publish it under."),
    version: str | None = typer.Option(None, "--version", help="Default: the next number."),
    description: str = typer.Option("", "--description", help="What the pipeline does."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Publish a pipeline: it can then run by id, over REST and on schedules."""
    ws = open_workspace(workspace)
    published = Pipeline.load_yaml(ws, file).publish(name, description, version)
    err_console.print(f"Published {published.name} version {published.version}.")
    if published.endpoint:
        err_console.print(f"Run it with POST {published.endpoint}")
    print(published.id)


# ------------------------------------------------------------------ schedule
@schedule_app.command("create")
@friendly_errors
def schedule_create(
    name: str,
    pipeline: str = typer.Option(..., "--pipeline", help="The published pipeline's id."),
    experiment: str = typer.Option(..., "--experiment", "-e", help="Experiment of its runs."),
    every: str | None = typer.Option(None, "--every", help='A recurrence, e.g. "5 Minute".'),
    cron: str | None = typer.Option(None, "--cron", help='A cron expression, e.g. "0 3 * * *".'),
    param: list[str] = typer.Option([], "--param", "-p", help="A pipeline parameter, name=value."),
    on_dataset: str | None = typer.Option(
        None, "--on-dataset", help="Fire once per new version of this registered dataset."
    ),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Run a published pipeline on a recurrence (--every), a cron expression (--cron), or
    each new version of a registered dataset (--on-dataset)."""
    ws = open_workspace(workspace)
    recurrence = None
    if every is not None:
        count, _, unit = every.strip().partition(" ")
        if not count.isdigit() or not unit:
            raise InvalidInput(
                f'Write --every as "INTERVAL FREQUENCY", e.g. "5 Minute"; got {every!r}.'
            )
        recurrence = ScheduleRecurrence(unit.strip().rstrip("s").title(), int(count))
    schedule = Schedule.create(
        ws, name, pipeline, experiment, recurrence, cron, _values(param) or None, on_dataset
    )
    info = schedule.info
    if info.on_dataset is not None:
        err_console.print(
            f"Schedule {info.name} fires on each version of {info.on_dataset} "
            f"after {info.dataset_version}."
        )
    else:
        err_console.print(f"Schedule {info.name} fires next at {display.when(info.next_fire_at)}.")


@schedule_app.command("list")
@friendly_errors
def schedule_list(json: bool = JsonOption, workspace: str | None = WorkspaceOption) -> None:
    """Schedules: their rule, pipeline, next and last firing."""
    ws = open_workspace(workspace)
    found = Schedule.list(ws)
    if json:
        print_json([s.info.to_dict() for s in found])
        return
    table = Table("name", "rule", "pipeline", "experiment", "enabled", "next", "last run")
    for s in found:
        i = s.info
        table.add_row(
            i.name,
            i.rule,
            i.pipeline_id,
            i.experiment_name,
            "yes" if i.enabled else "no",
            display.when(i.next_fire_at) if i.enabled else "",
            i.last_run_id or "",
        )
    console.print(table)


@schedule_app.command("disable")
@friendly_errors
def schedule_disable(name: str, workspace: str | None = WorkspaceOption) -> None:
    """Stop a schedule from firing (enable it again with `cumulo schedule enable`)."""
    Schedule.get(open_workspace(workspace), name).disable()
    err_console.print(f"Schedule {name} disabled.")


@schedule_app.command("enable")
@friendly_errors
def schedule_enable(name: str, workspace: str | None = WorkspaceOption) -> None:
    """Let a disabled schedule fire again, from its next tick on."""
    Schedule.get(open_workspace(workspace), name).enable()
    err_console.print(f"Schedule {name} enabled.")
