"""``cumulo``: the command line, a thin layer over the SDK.

Each command's module loads when the command runs: ``cumulo --help`` and
``cumulo run list`` do not import the server, and ``cumulo server`` does not
import the job or model commands.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

# Command -> (the modules that register it, in order; its one-line help for listings).
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "server": (
        ("cumulo.cli.server",),
        "Serve the workspaces of one store over HTTP (native API, MLflow API, studio).",
    ),
    "workspace": (
        ("cumulo.cli.tracking",),
        "Create, list, show, export and import workspaces.",
    ),
    "experiment": (("cumulo.cli.tracking",), "List, archive and delete experiments."),
    "run": (
        ("cumulo.cli.tracking", "cumulo.cli.jobs"),
        "List, inspect, download and delete runs.",
    ),
    "token": (
        ("cumulo.cli.server",),
        "Create, list and revoke access tokens (for servers run with --auth token).",
    ),
    "audit": (
        ("cumulo.cli.server",),
        "Read the audit log: every write and every refused request a server answered.",
    ),
    "notebook": (
        ("cumulo.cli.notebook",),
        "Start JupyterLab in a folder whose notebooks find the workspace.",
    ),
    "job": (("cumulo.cli.jobs",), "Submit scripts as jobs to compute targets."),
    "compute": (("cumulo.cli.jobs",), "Create, list, show and delete compute targets."),
    "env": (("cumulo.cli.jobs",), "List, show and build environments."),
    "model": (("cumulo.cli.models",), "Register, list, show, download and delete models."),
    "endpoint": (("cumulo.cli.models",), "Create, list, invoke and delete scoring endpoints."),
    "sweep": (
        ("cumulo.cli.sweeps",),
        "Hyperparameter sweeps: submit one, show its leaderboard, cancel it.",
    ),
    "dataset": (
        ("cumulo.cli.datasets",),
        "Register, list, show, download, profile and compare datasets.",
    ),
    "datastore": (("cumulo.cli.datasets",), "Register, list and browse datastores."),
    "pipeline": (
        ("cumulo.cli.pipelines",),
        "Pipelines: submit one from a file, show its steps, publish it.",
    ),
    "schedule": (
        ("cumulo.cli.pipelines",),
        "Schedules: run a published pipeline on a recurrence, a cron expression or a "
        "dataset's new versions.",
    ),
}


def load(name: str) -> Any:
    """The click command ``name`` as its modules register it (each module loads once)."""
    for module in COMMANDS[name][0]:
        if module not in _loaded:
            importlib.import_module(module).register(_registered)
            _loaded.add(module)
    return typer.main.get_group(_registered).commands[name]


_registered = typer.Typer()
_loaded: set[str] = set()


class Commands(TyperGroup):
    """The top-level group: listings show each command's help line without loading it;
    running a command loads its module."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(n for n in super().list_commands(ctx) if n not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            return TyperCommand(name=cmd_name, help=COMMANDS[cmd_name][1])
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in COMMANDS and args[0] not in self.commands:
            self.commands[args[0]] = load(args[0])
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="cumulo",
    help=(
        "Cumulo: a self-hosted machine learning workspace.\n\n"
        "Example: cumulo workspace create demo --write-config && cumulo run list digits"
    ),
    cls=Commands,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from cumulo import __version__

        typer.echo(f"cumulo {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Cumulo: a self-hosted machine learning workspace."""


if __name__ == "__main__":
    app()
