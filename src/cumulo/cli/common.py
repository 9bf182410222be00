"""Shared CLI plumbing: finding the workspace, printing JSON, turning errors into messages."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import typer
from rich.console import Console

from cumulo.core.errors import ConfigError, CumuloError

if TYPE_CHECKING:
    from cumulo.sdk.workspace import Workspace

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

WorkspaceOption = typer.Option(
    None,
    "--workspace",
    "-w",
    help="Workspace name (default: $CUMULO_WORKSPACE, then .cumulo/config.json).",
)
HomeOption = typer.Option(None, "--home", help="Embedded home folder (default: $CUMULO_HOME).")
JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")


def friendly_errors(fn: F) -> F:
    """Print a CumuloError as one red line and exit 1, instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CumuloError as exc:
            err_console.print(f"[red]error[/red] ({exc.code}): {exc.message}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def open_workspace(name: str | None, home: str | None = None) -> Workspace:
    """The workspace a command works on: on $CUMULO_URL's server when set, unless --home."""
    from cumulo.sdk.workspace import Workspace  # the SDK: not on `cumulo server`'s path

    name = name or os.environ.get("CUMULO_WORKSPACE")
    if name:
        return Workspace.get(name, home=home)
    try:
        return Workspace.from_config()
    except ConfigError as exc:
        raise ConfigError(
            "No workspace given: pass --workspace NAME, set CUMULO_WORKSPACE, or run "
            "`cumulo workspace create NAME --write-config` here. " + exc.message
        ) from None


def print_json(value: Any) -> None:
    sys.stdout.write(
        orjson.dumps(
            value, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY, default=str
        ).decode()
        + "\n"
    )
