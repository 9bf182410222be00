"""Jobs, compute targets and environments on the command line.

cumulo job submit --experiment E [--compute NAME] [--env FILE] [--dir DIR] -- train.py ARGS
cumulo job submit -f job.yml
cumulo run logs RUN [--follow]        cumulo run cancel RUN
cumulo compute create|attach-ssh|list|show|delete
cumulo env list|show|build
"""

from __future__ import annotations

import sys
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
from cumulo.core.errors import InvalidInput
from cumulo.core.status import RunStatus
from cumulo.sdk import display
from cumulo.sdk.compute import ComputeTarget, LocalPool, RayCluster, SshMachine
from cumulo.sdk.jobs import Environment, ScriptRunConfig, iter_logs
from cumulo.sdk.workspace import Experiment, Workspace

job_app = typer.Typer(help="Submit scripts as jobs to compute targets.", no_args_is_help=True)
compute_app = typer.Typer(
    help="Create, list, show and delete compute targets.", no_args_is_help=True
)
env_app = typer.Typer(help="List, show and build environments.", no_args_is_help=True)

_JOB_FIELDS = {
    "experiment", "script", "arguments", "source_directory", "compute_target", "environment",
    "max_run_duration_seconds", "resources", "tags", "priority", "max_retries", "display_name",
    "system_metrics_interval",
}  # fmt: skip
_ALIASES = {"code": "source_directory", "dir": "source_directory", "compute": "compute_target",
            "args": "arguments", "timeout": "max_run_duration_seconds"}  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(job_app, name="job")
    app.add_typer(compute_app, name="compute")
    app.add_typer(env_app, name="env")
    from cumulo.cli.tracking import run_app

    run_app.command("logs")(run_logs)
    run_app.command("cancel")(run_cancel)


# ------------------------------------------------------------------- helpers
def _environment(value: Any, default_name: str, *bases: Path) -> Environment | str | None:
    """An environment from a YAML mapping, a name, a requirements file or a YAML file.

    A relative file is looked for in each of ``bases`` in turn (the source folder
    first); a value that names a file which is in none of them is an error, not a
    registered environment's name.
    """
    if value is None:
        return None
    if isinstance(value, dict):
        data = dict(value)
        name = str(data.pop("name", default_name))
        return Environment(name, **data)
    text = str(value)
    candidates = [Path(text)] if Path(text).is_absolute() else [b / text for b in bases]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        if Path(text).suffix in (".txt", ".yml", ".yaml", ".in") or "/" in text:
            looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
            raise InvalidInput(
                f"Environment file {text!r} not found (looked at {looked}). Give a path to a "
                "requirements file or environment YAML, or a registered environment's name."
            )
        return text  # a registered environment: "name" or "name:version"
    if path.suffix in (".yml", ".yaml"):
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise InvalidInput(f"{path} must hold a mapping (name, pip_requirements...).")
        return _environment(data, default_name, path.parent)
    return Environment.from_pip_requirements(default_name, path)


def _load_job_file(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise InvalidInput(f"Job file {str(file)!r} does not exist.")
    data = yaml.safe_load(file.read_text()) or {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{file} must hold a mapping of job fields.")
    data = {_ALIASES.get(k, k): v for k, v in data.items()}
    unknown = set(data) - _JOB_FIELDS
    if unknown:
        raise InvalidInput(
            f"Unknown fields in {file}: {sorted(unknown)}; known: {sorted(_JOB_FIELDS)}."
        )
    return data


def _follow(ws: Workspace, run_id: str) -> str:
    run = ws.get_run(run_id)
    for stream, text in iter_logs(run, follow=True):
        out = sys.stderr if stream == "stderr" else sys.stdout
        out.write(text)
        out.flush()
    return run.get_status()


# ----------------------------------------------------------------------- job
@job_app.command("submit")
@friendly_errors
def job_submit(
    command: list[str] = typer.Argument(None, help="The script and its arguments, after --."),
    experiment: str | None = typer.Option(None, "--experiment", "-e", help="Experiment name."),
    compute: str | None = typer.Option(None, "--compute", "-c", help="Target (default local)."),
    env: str | None = typer.Option(
        None, "--env", help="requirements.txt, an environment YAML file, or a registered name."
    ),
    directory: Path | None = typer.Option(None, "--dir", "-d", help="Source folder (default .)."),
    file: Path | None = typer.Option(None, "--file", "-f", help="A job definition (YAML)."),
    max_duration: float | None = typer.Option(None, "--max-duration", help="Seconds."),
    priority: int | None = typer.Option(None, "--priority", help="Higher runs first."),
    stream: bool = typer.Option(False, "--stream", help="Follow the logs until the run ends."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Submit a script as a job: returns the run id, or streams its logs with --stream.

    Example: cumulo job submit -e digits -c cpu-pool --env requirements.txt -- train.py
    """
    spec: dict[str, Any] = _load_job_file(file) if file else {}
    base = file.parent if file else Path.cwd()
    if command:
        spec["script"], spec["arguments"] = command[0], list(command[1:])
    for key, value in (
        ("experiment", experiment),
        ("compute_target", compute),
        ("environment", env),
        ("source_directory", str(directory) if directory else None),
        ("max_run_duration_seconds", max_duration),
        ("priority", priority),
    ):
        if value is not None:
            spec[key] = value
    if not spec.get("script"):
        raise InvalidInput("Give the script: cumulo job submit -e EXP -- train.py --lr 0.1")
    if not spec.get("experiment"):
        raise InvalidInput("Give an experiment: --experiment NAME (or 'experiment:' in the file).")
    source = Path(str(spec.get("source_directory") or "."))
    source = source if source.is_absolute() else base / source
    ws = open_workspace(workspace)
    config = ScriptRunConfig(
        source_directory=source,
        script=str(spec["script"]),
        arguments=list(spec.get("arguments") or []),
        compute_target=str(spec.get("compute_target") or "local"),
        environment=_environment(
            spec.get("environment"), f"{spec['experiment']}-env", source, base
        ),
        max_run_duration_seconds=spec.get("max_run_duration_seconds"),
        resources=spec.get("resources"),
        priority=int(spec.get("priority") or 0),
        max_retries=int(spec.get("max_retries") or 0),
        display_name=spec.get("display_name"),
        system_metrics_interval=spec.get("system_metrics_interval"),
    )
    run = Experiment(ws, str(spec["experiment"])).submit(config, tags=spec.get("tags"))
    err_console.print(
        f"Submitted run [bold]{run.id}[/bold] ({run.display_name}) to {config.compute_target}."
    )
    if stream:
        status = _follow(ws, run.id)
        err_console.print(f"Run {run.id} {status}.")
        raise typer.Exit(0 if status == RunStatus.COMPLETED.value else 1)
    if ws.url is None:
        # Embedded, this process is the scheduler: stay until the job has been handed over.
        while run.get_status() == RunStatus.QUEUED.value:
            time.sleep(0.1)
    err_console.print(f"Follow it with: cumulo run logs {run.id} --follow")
    print(run.id)


# ---------------------------------------------------------------------- runs
@friendly_errors
def run_logs(
    run_id: str,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until it ends."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Print a job's logs (stdout, stderr, environment builds); --follow streams them live.

    Example: cumulo run logs 86c92a63 --follow
    """
    ws = open_workspace(workspace)
    if follow:
        status = _follow(ws, run_id)
        err_console.print(f"Run {run_id} {status}.")
        return
    for stream, text in iter_logs(ws.get_run(run_id), follow=False):
        (sys.stderr if stream == "stderr" else sys.stdout).write(text)


@friendly_errors
def run_cancel(run_id: str, workspace: str | None = WorkspaceOption) -> None:
    """Cancel a job: a queued one at once, a running one is stopped (its outputs kept).

    Example: cumulo run cancel 86c92a63
    """
    ws = open_workspace(workspace)
    run = ws.get_run(run_id)  # a unique start of the id, as tables show, is enough
    ws.transport.host_jobs()
    info = ws.transport.jobs.cancel_job(ws.name, run.id)
    if ws.url is None and info.status == RunStatus.CANCEL_REQUESTED.value:
        while not RunStatus(run.get_status()).is_terminal:  # embedded: this process
            time.sleep(0.1)  # carries the cancel out
        info = run.info
    err_console.print(f"Run {run.id}: {info.status}.")


# ------------------------------------------------------------------- compute
@compute_app.command("create")
@friendly_errors
def compute_create(
    name: str,
    kind: str = typer.Option("pool", "--kind", help="pool or ray."),
    max_nodes: int = typer.Option(2, "--max-nodes", help="pool: jobs at once."),
    idle: float = typer.Option(120.0, "--idle-seconds", help="pool: stop idle nodes after."),
    address: str | None = typer.Option(None, "--address", help="ray: dashboard URL."),
    managed: bool = typer.Option(False, "--managed", help="ray: start a local head."),
    num_cpus: int | None = typer.Option(None, "--num-cpus", help="ray --managed: CPUs."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Create a managed pool (--kind pool) or attach a Ray cluster (--kind ray).

    Example: cumulo compute create cpu-pool --kind pool --max-nodes 2
    """
    ws = open_workspace(workspace)
    if kind == "pool":
        config: LocalPool | RayCluster = LocalPool(max_nodes, idle)
    elif kind == "ray":
        config = RayCluster.managed(num_cpus=num_cpus) if managed else RayCluster(address)
    else:
        raise InvalidInput(f"--kind must be pool or ray, got {kind!r}.")
    target = ComputeTarget.create(ws, name, config)
    err_console.print(f"Created {target.kind} target {target.name}: {target.config}")


@compute_app.command("attach-ssh")
@friendly_errors
def compute_attach_ssh(
    name: str,
    host: str = typer.Option(..., "--host", help="The machine's address."),
    user: str = typer.Option(..., "--user", help="The account jobs run as."),
    key_file: Path | None = typer.Option(None, "--key-file", help="Private key (read here)."),
    port: int = typer.Option(22, "--port", help="SSH port."),
    password: bool = typer.Option(
        False, "--password", help="Ask for the key's passphrase (or the account's password)."
    ),
    python: str = typer.Option("python3", "--python", help="The machine's Python."),
    work_dir: str = typer.Option("~/.cumulo-jobs", "--work-dir", help="Jobs' folder there."),
    max_jobs: int = typer.Option(1, "--max-concurrent-jobs", help="Jobs at once there."),
    host_key: str | None = typer.Option(
        None, "--host-key", help="'ssh-ed25519 AAAA...' to pin (else trusted on first use)."
    ),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Attach a machine reached over SSH; its secrets are stored encrypted, never shown.

    Example: cumulo compute attach-ssh gpu-box --host gpu-box.lan --user ml
    """
    secret = typer.prompt("Password", hide_input=True) if password else None
    machine = SshMachine(
        host, user, key_file=key_file, port=port, password=secret, python=python,
        work_dir=work_dir, max_concurrent_jobs=max_jobs, host_key=host_key,
    )  # fmt: skip
    target = ComputeTarget.attach(open_workspace(workspace), name, machine)
    err_console.print(f"Attached {target.kind} target {target.name}: {target.config}")


@compute_app.command("list")
@friendly_errors
def compute_list(workspace: str | None = WorkspaceOption, json: bool = JsonOption) -> None:
    """List compute targets ("local" is built in).

    Example: cumulo compute list --json
    """
    targets = ComputeTarget.list(open_workspace(workspace))
    if json:
        print_json([{"name": t.name, "kind": t.kind, "config": t.config} for t in targets])
        return
    table = Table("name", "kind", "settings")
    for t in targets:
        settings = ", ".join(f"{k}={v}" for k, v in t.config.items() if v is not None)
        table.add_row(t.name, t.kind, settings)
    console.print(table)


@compute_app.command("show")
@friendly_errors
def compute_show(
    name: str, workspace: str | None = WorkspaceOption, json: bool = JsonOption
) -> None:
    """A target's nodes, their states, and its queue.

    Example: cumulo compute show cpu-pool
    """
    status = ComputeTarget.get(open_workspace(workspace), name).get_status()
    if json:
        print_json(status)
        return
    console.print(f"[bold]{status['name']}[/bold] ({status['kind']}) {status['config']}")
    if status["kind"] == "pool":
        console.print(
            f"nodes: {status['current_node_count']} of {status['max_nodes']} "
            f"{status['node_state_counts']}"
        )
        table = Table("node", "state", "pid", "run", "started")
        for n in status["nodes"]:
            table.add_row(
                n["id"][:8], n["state"], str(n["pid"] or ""), n["run_id"] or "",
                display.when(n["started_at"]),
            )  # fmt: skip
        console.print(table)
    console.print(f"queued: {len(status['queue'])}  active: {len(status['active'])}")
    for position, run_id in enumerate(status["queue"], 1):
        console.print(f"  {position}. {run_id}")


@compute_app.command("delete")
@friendly_errors
def compute_delete(name: str, workspace: str | None = WorkspaceOption) -> None:
    """Delete a target (refused while it has queued or running jobs).

    Example: cumulo compute delete cpu-pool
    """
    ComputeTarget.get(open_workspace(workspace), name).delete()
    err_console.print(f"Deleted compute target {name}.")


# --------------------------------------------------------------- environments
@env_app.command("list")
@friendly_errors
def env_list(workspace: str | None = WorkspaceOption, json: bool = JsonOption) -> None:
    """Registered environments, every version.

    Example: cumulo env list
    """
    envs = Environment.list(open_workspace(workspace))
    if json:
        print_json([e._info.to_dict() for e in envs if e._info])
        return
    table = Table("name", "version", "build", "python", "requirements")
    for e in envs:
        table.add_row(
            e.name, str(e.version), e.build_status or "", e.python or "",
            " ".join(e.pip_requirements),
        )  # fmt: skip
    console.print(table)


@env_app.command("show")
@friendly_errors
def env_show(
    name: str,
    version: int | None = typer.Option(None, "--version", help="Default: the latest."),
    log: bool = typer.Option(False, "--log", help="Print the build log."),
    workspace: str | None = WorkspaceOption,
    json: bool = JsonOption,
) -> None:
    """One environment: its spec, build status and (with --log) its build log.

    Example: cumulo env show sk --log
    """
    env = Environment.get(open_workspace(workspace), name, version)
    assert env._info is not None
    info = env._info
    data = info.to_dict()
    build_log = data.pop("build_log")
    if json:
        print_json(data)
    else:
        spec = info.env_spec
        table = Table(show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column()
        table.add_row("environment", f"{info.name}:{info.version}")
        table.add_row("build", info.build_status)
        table.add_row("python", spec.python or "as the submitter's")
        table.add_row("created", display.when(info.created_at))
        table.add_row("build hash", info.build_hash[:20])
        for i, req in enumerate(spec.pip_requirements):
            table.add_row("pip" if i == 0 else "", req)
        for key, value in sorted(spec.environment_variables.items()):
            table.add_row(f"variable {key}", value)
        console.print(table)
    if log:
        sys.stdout.write(build_log + "\n")


@env_app.command("build")
@friendly_errors
def env_build(
    file: Path = typer.Argument(..., help="requirements.txt or an environment YAML file."),
    name: str | None = typer.Option(None, "--name", help="Default: the file's folder name."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Register and build an environment now, showing the build's progress.

    Example: cumulo env build requirements.txt --name sk
    """
    ws = open_workspace(workspace)
    env = _environment(str(file.resolve()), name or f"{file.resolve().parent.name}-env", Path.cwd())
    if not isinstance(env, Environment):
        raise InvalidInput(f"{file} is not a file.")
    if name:
        env.name = name
    env.build(ws, show_output=True)
    err_console.print(f"Environment {env.name}:{env.version} is {env.build_status}.")
