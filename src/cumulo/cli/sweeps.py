"""Hyperparameter sweeps on the command line.

cumulo sweep submit -f sweep.yml [--no-wait]
cumulo sweep show RUN [--top N] [--json]
cumulo sweep cancel RUN

A sweep file names the script as a job file does, plus the search::

    experiment: tune
    source_directory: src
    script: train.py
    arguments: [--epochs, 5]
    compute_target: local
    sampling: random            # random | grid | bayesian
    seed: 7
    parameters:
      lr: loguniform(-6, -1)
      batch_size: choice(16, 32, 64)
    policy: {kind: bandit, slack_factor: 0.1}
    primary_metric_name: accuracy
    primary_metric_goal: maximize
    max_total_runs: 20
    max_concurrent_runs: 4

A multi-objective sweep lists its metrics instead of ``primary_metric_name``
(``primary_metrics: {accuracy: maximize, latency_ms: minimize}``);
``resume_from: RUN`` warm-starts Bayesian sampling from an earlier sweep.
"""

from __future__ import annotations

import ast
import re
import time
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
from cumulo.cli.jobs import _environment
from cumulo.core.errors import InvalidInput
from cumulo.core.status import RunStatus
from cumulo.core.sweeps import TRIAL_TAG, ParameterExpression, Policy, Sampling
from cumulo.sdk import display
from cumulo.sdk.jobs import ScriptRunConfig
from cumulo.sdk.sweeps import HyperDriveConfig
from cumulo.sdk.workspace import Experiment, SweepRun, Workspace

sweep_app = typer.Typer(
    help="Hyperparameter sweeps: submit one, show its leaderboard, cancel it.",
    no_args_is_help=True,
)

_JOB_FIELDS = {
    "experiment", "script", "arguments", "source_directory", "compute_target", "environment",
    "max_run_duration_seconds", "resources", "tags", "display_name",
}  # fmt: skip
_SWEEP_FIELDS = {
    "sampling", "seed", "parameters", "policy", "primary_metric_name", "primary_metric_goal",
    "max_total_runs", "max_concurrent_runs", "max_duration_minutes", "primary_metrics",
    "resume_from",
}  # fmt: skip
_ALIASES = {"code": "source_directory", "dir": "source_directory", "compute": "compute_target",
            "args": "arguments", "space": "parameters", "metric": "primary_metric_name",
            "goal": "primary_metric_goal"}  # fmt: skip
_SAMPLINGS = {
    "randomparametersampling": "random",
    "gridparametersampling": "grid",
    "bayesianparametersampling": "bayesian",
}
_POLICIES = {
    "banditpolicy": "bandit",
    "medianstoppingpolicy": "median_stopping",
    "truncationselectionpolicy": "truncation_selection",
    "hyperbandpolicy": "hyperband",
}
_CALL = re.compile(r"^\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$", re.S)


def register(app: typer.Typer) -> None:
    app.add_typer(sweep_app, name="sweep")


# ------------------------------------------------------------------ the file
def expression(name: str, value: Any) -> ParameterExpression:
    """``"loguniform(-6, -1)"``, a list (a choice) or ``{kind, args}``: one parameter."""
    if isinstance(value, list):
        return ParameterExpression.parse(name, {"kind": "choice", "args": [value]})
    if isinstance(value, str):
        found = _CALL.match(value)
        if not found:
            raise InvalidInput(
                f"Parameter {name!r}: write an expression such as uniform(0, 1) or "
                f"choice(16, 32), got {value!r}."
            )
        kind, inner = found.group(1), found.group(2)
        try:
            args = ast.literal_eval(f"[{inner}]")  # literals only: nothing is run
        except (ValueError, SyntaxError):
            raise InvalidInput(
                f"Parameter {name!r}: cannot read the values in {value!r}."
            ) from None
        if kind == "choice":
            options = args[0] if len(args) == 1 and isinstance(args[0], list | tuple) else args
            return ParameterExpression.parse(name, {"kind": kind, "args": [list(options)]})
        return ParameterExpression.parse(name, {"kind": kind, "args": args})
    return ParameterExpression.parse(name, value)


def load_sweep_file(file: Path) -> tuple[str, ScriptRunConfig, HyperDriveConfig, dict[str, Any]]:
    """(experiment, run config, sweep config, tags) from a sweep file."""
    if not file.is_file():
        raise InvalidInput(f"Sweep file {str(file)!r} does not exist.")
    data = yaml.safe_load(file.read_text()) or {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{file} must hold a mapping of sweep fields.")
    data = {_ALIASES.get(k, k): v for k, v in data.items()}
    unknown = set(data) - _JOB_FIELDS - _SWEEP_FIELDS
    if unknown:
        known = sorted(_JOB_FIELDS | _SWEEP_FIELDS)
        raise InvalidInput(f"Unknown fields in {file}: {sorted(unknown)}; known: {known}.")
    for needed in ("experiment", "script", "parameters"):
        if not data.get(needed):
            raise InvalidInput(f"{file} needs '{needed}:'.")
    if not data.get("primary_metric_name") and not data.get("primary_metrics"):
        raise InvalidInput(f"{file} needs 'primary_metric_name:' (or 'primary_metrics:').")
    base = file.parent
    source = Path(str(data.get("source_directory") or "."))
    run_config = ScriptRunConfig(
        source_directory=source if source.is_absolute() else base / source,
        script=str(data["script"]),
        arguments=list(data.get("arguments") or []),
        compute_target=str(data.get("compute_target") or "local"),
        environment=_environment(data.get("environment"), f"{data['experiment']}-env", base),
        max_run_duration_seconds=data.get("max_run_duration_seconds"),
        resources=data.get("resources"),
        display_name=data.get("display_name"),
    )
    params = data["parameters"]
    if not isinstance(params, dict):
        raise InvalidInput(f"{file}: 'parameters:' maps names to expressions.")
    sampling = str(data.get("sampling") or "random")
    sampling = _SAMPLINGS.get(sampling.lower(), sampling.lower())
    policy = data.get("policy")
    if isinstance(policy, str):
        policy = {"kind": policy}
    if isinstance(policy, dict) and isinstance(policy.get("kind"), str):
        policy = {**policy, "kind": _POLICIES.get(policy["kind"].lower(), policy["kind"])}
    config = HyperDriveConfig(
        run_config=run_config,
        hyperparameter_sampling=Sampling.parse(
            {
                "kind": sampling,
                "space": {str(k): expression(str(k), v) for k, v in params.items()},
                "seed": data.get("seed"),
            }
        ),
        policy=Policy.parse(policy),
        primary_metric_name=str(data.get("primary_metric_name") or ""),
        primary_metric_goal=str(data.get("primary_metric_goal") or "maximize"),
        max_total_runs=data.get("max_total_runs", 20),
        max_concurrent_runs=data.get("max_concurrent_runs", 4),
        max_duration_minutes=data.get("max_duration_minutes"),
        primary_metrics=data.get("primary_metrics"),
        resume_from=data.get("resume_from"),
    )
    return str(data["experiment"]), run_config, config, dict(data.get("tags") or {})


# -------------------------------------------------------------------- output
def _leaderboard(sweep: SweepRun, top: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    stored = sweep.get_sweep()
    return stored, sweep.get_children_sorted_by_primary_metric(top=top)


def _print(sweep: SweepRun, top: int) -> None:
    stored, rows = _leaderboard(sweep, top)
    spec = stored["spec"]
    if "pareto_front" in stored:
        _print_front(sweep, stored)
        return
    info = sweep.refresh().info
    metric = spec["primary_metric_name"]
    done = sum(1 for t in stored["trials"] if t["state"] not in ("claimed", "submitted"))
    console.print(
        f"Sweep [bold]{info.id}[/bold] ({info.display_name}): {info.status}, "
        f"{done} of {spec['max_total_runs']} trials ended, "
        f"{spec['sampling']['kind']} sampling, {metric} ({spec['primary_metric_goal'].lower()})"
    )
    names = list(spec["sampling"]["space"])
    table = Table("rank", "trial", "status", metric, *names, "run")
    for rank, row in enumerate(rows, 1):
        value = row["primary_metric"]
        table.add_row(
            str(rank) if value is not None else "",
            str(row["number"]),
            row["status"],
            display.fmt_value(value) if value is not None else "",
            *[row["hyperparameters"].get(n, "") for n in names],
            row["run_id"],
        )
    console.print(table)
    if info.error:
        err_console.print(f"[red]{info.error.get('message', '')}[/red]")
    missing = info.properties.get("sweep.trials_without_metric")
    if missing:
        err_console.print(f"Trials that never logged {metric}: {missing}.")


def _print_front(sweep: SweepRun, stored: dict[str, Any]) -> None:
    """A multi-objective sweep: every trial with each metric, the Pareto front marked."""
    spec = stored["spec"]
    info = sweep.refresh().info
    names = [str(n) for n, _ in spec["primary_metrics"]]
    done = sum(1 for t in stored["trials"] if t["state"] not in ("claimed", "submitted"))
    goals = ", ".join(f"{n} ({str(g).lower()})" for n, g in spec["primary_metrics"])
    console.print(
        f"Sweep [bold]{info.id}[/bold] ({info.display_name}): {info.status}, "
        f"{done} of {spec['max_total_runs']} trials ended, {goals}; "
        f"{len(stored['pareto_front'])} on the Pareto front (*)"
    )
    params = list(spec["sampling"]["space"])
    table = Table("front", "trial", "status", *names, *params, "run")
    front = set(stored["pareto_front"])
    for child in sorted(sweep.get_children(), key=lambda c: int(c.info.tags.get(TRIAL_TAG, 0))):
        number = int(child.info.tags.get(TRIAL_TAG, -1))
        metrics = child.info.metrics
        table.add_row(
            "*" if number in front else "",
            str(number),
            child.info.status,
            *[display.fmt_value(metrics[n].value) if n in metrics else "" for n in names],
            *[child.info.params.get(p, "") for p in params],
            child.id,
        )
    console.print(table)
    if info.error:
        err_console.print(f"[red]{info.error.get('message', '')}[/red]")


def _wait(ws: Workspace, sweep: SweepRun) -> str:
    ws.transport.host_jobs()  # embedded: this process drives the sweep until it ends
    status = sweep.get_status()
    while not RunStatus(status).is_terminal:
        time.sleep(0.25)
        status = sweep.get_status()
    return status


# ------------------------------------------------------------------ commands
@sweep_app.command("submit")
@friendly_errors
def sweep_submit(
    file: Path = typer.Option(..., "--file", "-f", help="The sweep definition (YAML)."),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="Stay until the sweep ends (a server drives it anyway)."
    ),
    top: int = typer.Option(10, "--top", help="Rows of the leaderboard printed at the end."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Submit a sweep from a YAML file; prints the leaderboard when it ends.

    Example: cumulo sweep submit -f sweep.yml
    """
    experiment, run_config, config, tags = load_sweep_file(file)
    ws = open_workspace(workspace)
    sweep = Experiment(ws, experiment).submit(config, tags=tags or None)
    assert isinstance(sweep, SweepRun)
    spec = config.spec
    err_console.print(
        f"Submitted sweep [bold]{sweep.id}[/bold]: {spec.max_total_runs} trials of "
        f"{run_config.script} on {run_config.compute_target}, "
        f"{spec.max_concurrent_runs} at a time."
    )
    if not wait and ws.url is None:
        err_console.print(
            "This workspace has no server: the sweep goes on while a process hosts its jobs "
            f"(e.g. `cumulo sweep show {sweep.id} --follow`)."
        )
    if wait:
        status = _wait(ws, sweep)
        _print(sweep, top)
        raise typer.Exit(0 if status == RunStatus.COMPLETED.value else 1)
    print(sweep.id)


@sweep_app.command("show")
@friendly_errors
def sweep_show(
    run_id: str,
    top: int = typer.Option(0, "--top", help="Only the best N trials (0: all)."),
    follow: bool = typer.Option(False, "--follow", help="Wait until the sweep ends first."),
    json: bool = JsonOption,
    workspace: str | None = WorkspaceOption,
) -> None:
    """A sweep's leaderboard: its trials best first, with their hyperparameters.

    Example: cumulo sweep show 86c92a63 --top 5
    """
    ws = open_workspace(workspace)
    sweep = SweepRun.get(ws, run_id)
    if follow:
        _wait(ws, sweep)
    if json:
        stored, rows = _leaderboard(sweep, top)
        info = sweep.refresh().info
        print_json(
            {
                "run_id": info.id,
                "status": info.status,
                "error": info.error,
                "spec": stored["spec"],
                "leaderboard": rows,
            }
        )
        return
    _print(sweep, top)


@sweep_app.command("cancel")
@friendly_errors
def sweep_cancel(run_id: str, workspace: str | None = WorkspaceOption) -> None:
    """Cancel a sweep: its running trials are stopped, no new one starts.

    Example: cumulo sweep cancel 86c92a63
    """
    ws = open_workspace(workspace)
    sweep = SweepRun.get(ws, run_id)
    sweep.cancel()
    if ws.url is None:
        _wait(ws, sweep)  # embedded: this process carries the cancel out
    err_console.print(f"Sweep {sweep.id} {sweep.get_status()}.")
