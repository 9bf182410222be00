"""Workspaces, experiments and runs on the command line."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    return None
