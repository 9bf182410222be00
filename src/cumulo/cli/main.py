"""``cumulo``: the command line, a thin layer over the SDK."""

from __future__ import annotations

import typer

from cumulo.cli import datasets, jobs, models, pipelines, server, sweeps, tracking

app = typer.Typer(
    name="cumulo",
    help="Cumulo: a self-hosted machine learning workspace.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
tracking.register(app)
server.register(app)
jobs.register(app)
models.register(app)
sweeps.register(app)
datasets.register(app)
pipelines.register(app)

if __name__ == "__main__":
    app()
