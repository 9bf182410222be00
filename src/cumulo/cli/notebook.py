"""``cumulo notebook``: JupyterLab in a folder that knows its workspace."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from cumulo.cli.common import WorkspaceOption, console, friendly_errors, open_workspace
from cumulo.core.errors import ConfigError
from cumulo.services.notebooks import jupyterlab_argv, jupyterlab_installed, missing_message


def register(app: typer.Typer) -> None:
    app.command("notebook")(notebook)


@friendly_errors
def notebook(
    directory: Path = typer.Option(Path("."), "--dir", "-d", help="The notebooks' folder."),
    port: int | None = typer.Option(None, "--port", help="Default: JupyterLab's (8888 up)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open a browser."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Start JupyterLab in a folder whose notebooks find the workspace.

    The workspace's .cumulo/config.json is written in the folder first, so
    ``Workspace.from_config()`` in any notebook there opens it.

    Example: cumulo notebook --dir notebooks -w demo
    """
    ws = open_workspace(workspace)
    directory.mkdir(parents=True, exist_ok=True)
    written = ws.write_config(directory)
    console.print(f"Workspace [bold]{ws.name}[/bold] ({ws.location}) written to {written}")
    if not jupyterlab_installed():
        raise ConfigError(
            f"{missing_message()} Or start any notebook server in {directory}: "
            "Workspace.from_config() finds the workspace there."
        )
    argv = jupyterlab_argv(directory, port=port, browser=not no_browser)
    os.execv(argv[0], argv)  # JupyterLab takes over this process, its signals too
