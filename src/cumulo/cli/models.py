"""Models and endpoints on the command line: ``cumulo model ...``, ``cumulo endpoint ...``.

Endpoints created from an embedded workspace live only as long as the
process that serves them; with ``CUMULO_URL`` set (or a config naming a
server) they are hosted by ``cumulo server`` and outlive the command.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.table import Table

from cumulo.cli.common import (
    JsonOption,
    WorkspaceOption,
    console,
    friendly_errors,
    open_workspace,
    print_json,
)
from cumulo.core.errors import InvalidInput
from cumulo.sdk import display
from cumulo.sdk.endpoints import DeploymentConfig, Endpoint, InferenceConfig
from cumulo.sdk.models import Model

model_app = typer.Typer(
    help="Register, list, show, download and delete models.", no_args_is_help=True
)
endpoint_app = typer.Typer(
    help="Create, list, invoke and delete scoring endpoints.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
    app.add_typer(endpoint_app, name="endpoint")


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{what} {item!r} is not KEY=VALUE.")
        out[key] = value
    return out


def _model_ref(ws: Any, ref: str) -> Model:
    """``name``, ``name:3`` or ``name@champion``."""
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return Model(ws, name, alias=alias)
    if ":" in ref:
        name, version = ref.rsplit(":", 1)
        if not version.isdigit():
            raise InvalidInput(f"Model {ref!r}: the version after ':' must be a number.")
        return Model(ws, name, int(version))
    return Model(ws, ref)


def _print_models(models: list[Model]) -> None:
    table = Table("model", "version", "aliases", "framework", "run", "registered")
    for m in models:
        table.add_row(
            m.name,
            str(m.version),
            ", ".join(m.aliases),
            m.model_framework or "",
            m.run_id or "",
            display.when(m.created_time),
        )
    console.print(table)


# ---------------------------------------------------------------------- model
@model_app.command("register")
@friendly_errors
def model_register(
    path: str = typer.Argument(..., help="A local file or folder, or a path in --run's outputs."),
    name: str = typer.Option(..., "--name", "-n", help="The model's name."),
    run: str | None = typer.Option(None, "--run", help="Register PATH from this run's files."),
    tag: list[str] | None = typer.Option(None, "--tag", help="KEY=VALUE (repeat)."),
    prop: list[str] | None = typer.Option(None, "--property", help="KEY=VALUE (repeat)."),
    description: str = typer.Option("", "--description", help="What this version is."),
    framework: str | None = typer.Option(
        None, "--framework", help="e.g. scikit-learn (default: read from an MLflow model)."
    ),
    workspace: str | None = WorkspaceOption,
    json: bool = JsonOption,
) -> None:
    """Register a file or folder as the next version of a model.

    Example: cumulo model register outputs/model.pkl --name digits
    """
    ws = open_workspace(workspace)
    tags, props = _pairs(tag, "Tag"), _pairs(prop, "Property")
    if run:
        model = ws.get_run(run).register_model(
            name, path, tags=tags, properties=props, description=description,
            model_framework=framework,
        )  # fmt: skip
    else:
        model = Model.register(
            ws, path, name, tags=tags, properties=props, description=description,
            model_framework=framework,
        )  # fmt: skip
    if json:
        print_json(model.serialize())
    else:
        console.print(f"Registered [bold]{model.name}[/bold] version {model.version}.")


@model_app.command("list")
@friendly_errors
def model_list(
    name: str | None = typer.Option(None, "--name", "-n", help="Only this model's versions."),
    tag: list[str] | None = typer.Option(None, "--tag", help="KEY=VALUE (repeat; all match)."),
    latest: bool = typer.Option(False, "--latest", help="Only the newest version of each."),
    workspace: str | None = WorkspaceOption,
    json: bool = JsonOption,
) -> None:
    """List model versions, newest first.

    Example: cumulo model list --name digits
    """
    models = Model.list(open_workspace(workspace), name, _pairs(tag, "Tag"), latest=latest)
    if json:
        print_json([m.serialize() for m in models])
    else:
        _print_models(models)


@model_app.command("show")
@friendly_errors
def model_show(
    model: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS."),
    workspace: str | None = WorkspaceOption,
    json: bool = JsonOption,
) -> None:
    """Show one version: tags, properties, flavors, signature and lineage.

    Example: cumulo model show digits:2
    """
    found = _model_ref(open_workspace(workspace), model)
    data = found.serialize()
    data["files"] = found.get_file_names()
    data["experiment"] = found.experiment_name
    if json:
        print_json(data)
        return
    console.print(f"[bold]{found.name}[/bold] version {found.version}")
    for key in ("aliases", "framework", "flavors", "run_id", "experiment", "created_time"):
        if data.get(key):
            value = data[key]
            console.print(f"  {key}: {', '.join(value) if isinstance(value, list) else value}")
    for section in ("tags", "properties"):
        for k, v in sorted(data[section].items()):
            console.print(f"  {section[:-1] if section == 'tags' else 'property'} {k}: {v}")
    console.print(f"  files: {len(data['files'])}")


@model_app.command("download")
@friendly_errors
def model_download(
    model: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS."),
    target: str = typer.Option(".", "--dir", "-d", help="Folder to write the files to."),
    exist_ok: bool = typer.Option(False, "--exist-ok", help="Overwrite files already there."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Download a version's files.

    Example: cumulo model download digits@champion --dir ./model
    """
    found = _model_ref(open_workspace(workspace), model)
    folder = found.download(target, exist_ok=exist_ok)
    console.print(f"Downloaded {found.id} to {folder}.")


@model_app.command("alias")
@friendly_errors
def model_alias(
    name: str,
    alias: str,
    version: int | None = typer.Option(None, "--version", "-v", help="Point ALIAS here."),
    delete: bool = typer.Option(False, "--delete", help="Remove the alias."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Point an alias (e.g. champion) at a version, or remove it.

    Example: cumulo model alias digits champion --version 2
    """
    ws = open_workspace(workspace)
    if delete:
        Model(ws, name, alias=alias).remove_alias(alias)
        console.print(f"Removed alias {alias!r} of {name}.")
        return
    if version is None:
        raise InvalidInput("Give --version N (or --delete).")
    Model(ws, name, version).set_alias(alias)
    console.print(f"{name}@{alias} -> version {version}.")


@model_app.command("delete")
@friendly_errors
def model_delete(
    model: str = typer.Argument(..., help="NAME:VERSION or NAME@ALIAS."),
    workspace: str | None = WorkspaceOption,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a model version and its files.

    Example: cumulo model delete digits:1 --yes
    """
    if ":" not in model and "@" not in model:
        raise InvalidInput("Name the version to delete: NAME:VERSION or NAME@ALIAS.")
    found = _model_ref(open_workspace(workspace), model)
    if not yes:
        typer.confirm(f"Delete {found.id} and its files?", abort=True)
    found.delete()
    console.print(f"Deleted {found.id}.")


# ------------------------------------------------------------------- endpoint
def _endpoint_dict(ep: Endpoint) -> dict[str, Any]:
    data = ep.info.to_dict()
    # An embedded workspace's endpoints answer only in the process that serves them.
    data["scoring_uri"] = ep.scoring_uri if ep.workspace.url else ep.info.scoring_path
    data["swagger_uri"] = ep.swagger_uri if ep.workspace.url else ep.info.swagger_path
    return data


@endpoint_app.command("create")
@friendly_errors
def endpoint_create(
    name: str,
    model: list[str] = typer.Option(..., "--model", "-m", help="NAME[:VERSION|@ALIAS] (repeat)."),
    deployment: str = typer.Option("blue", "--deployment", "-d", help="The deployment's name."),
    entry_script: str | None = typer.Option(
        None, "--entry-script", help="score.py with init() and run() (not for MLflow models)."
    ),
    source_dir: str | None = typer.Option(
        None, "--source-dir", help="The folder holding the entry script."
    ),
    replicas: int = typer.Option(1, "--replicas", help="Replica processes to serve it."),
    auth: str = typer.Option("key", "--auth", help="key, token or none."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Update it if it exists."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds to wait until healthy."),
    workspace: str | None = WorkspaceOption,
    json: bool = JsonOption,
) -> None:
    """Deploy models at an endpoint (an MLflow model needs no entry script).

    Example: cumulo endpoint create digits -m digits:2 --entry-script score.py --source-dir serve
    """
    ws = open_workspace(workspace)
    models = [_model_ref(ws, m) for m in model]
    inference = InferenceConfig(entry_script, source_dir) if entry_script else None
    ep = Model.deploy(
        ws,
        name,
        models,
        inference,
        DeploymentConfig(replicas=replicas, auth=auth),
        deployment_name=deployment,
        overwrite=overwrite,
        timeout=timeout,
    )
    if json:
        print_json(_endpoint_dict(ep))
    else:
        console.print(f"Endpoint [bold]{ep.name}[/bold] is {ep.state}: {ep.scoring_uri}")


@endpoint_app.command("list")
@friendly_errors
def endpoint_list(workspace: str | None = WorkspaceOption, json: bool = JsonOption) -> None:
    """List endpoints with their deployments and traffic.

    Example: cumulo endpoint list
    """
    endpoints = Endpoint.list(open_workspace(workspace))
    if json:
        print_json([e.info.to_dict() for e in endpoints])
        return
    table = Table("endpoint", "auth", "deployments", "traffic")
    for e in endpoints:
        info = e.info
        table.add_row(
            info.name,
            info.auth_mode,
            ", ".join(f"{d.name} ({d.state})" for d in info.deployments),
            ", ".join(f"{k} {v}%" for k, v in info.traffic.items()),
        )
    console.print(table)


@endpoint_app.command("show")
@friendly_errors
def endpoint_show(
    name: str,
    keys: bool = typer.Option(False, "--keys", help="Also print the keys."),
    workspace: str | None = WorkspaceOption,
    json: bool = JsonOption,
) -> None:
    """Show an endpoint: URL, deployments, replicas, traffic (and keys).

    Example: cumulo endpoint show digits --keys
    """
    ep = Endpoint(open_workspace(workspace), name)
    data = _endpoint_dict(ep)
    if keys:
        data["keys"] = dict(zip(("primary", "secondary"), ep.get_keys(), strict=True))
    if json:
        print_json(data)
        return
    console.print(f"[bold]{ep.name}[/bold] ({ep.auth} auth) {data['scoring_uri']}")
    table = Table("deployment", "state", "models", "ready", "traffic", "error")
    for d in ep.info.deployments:
        table.add_row(
            d.name,
            d.state,
            ", ".join(f"{m['name']}:{m['version']}" for m in d.models) or d.kind,
            f"{d.ready_replicas}/{d.replicas}",
            f"{ep.info.traffic.get(d.name, 0)}%",
            (d.error or {}).get("message", ""),
        )
    console.print(table)
    for k, v in (data.get("keys") or {}).items():
        console.print(f"  {k} key: {v}")


@endpoint_app.command("invoke")
@friendly_errors
def endpoint_invoke(
    name: str,
    data: str | None = typer.Option(None, "--data", help="The JSON body."),
    file: str | None = typer.Option(None, "--file", help="A file holding the JSON body."),
    deployment: str | None = typer.Option(
        None, "--deployment", "-d", help="Default: as the traffic split sends it."
    ),
    key: str | None = typer.Option(None, "--key", help="Key or token (default: the primary)."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Send one scoring request and print the answer.

    Example: cumulo endpoint invoke digits --data '{"data": [[0.0, 1.0]]}'
    """
    if (data is None) == (file is None):
        raise InvalidInput("Give the body with --data JSON or --file PATH (one of them).")
    body = data.encode() if data is not None else Path(file or "").read_bytes()
    ep = Endpoint(open_workspace(workspace), name)
    if not ep.workspace.url:  # embedded: this process serves it, once its replicas are up
        ep.wait_for_deployment(deployment)
    answer = ep.run(body, deployment=deployment, key=key)
    sys.stdout.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode() + "\n")


@endpoint_app.command("logs")
@friendly_errors
def endpoint_logs(
    name: str,
    deployment: str | None = typer.Option(
        None, "--deployment", "-d", help="Only this deployment (default: every one)."
    ),
    tail: int = typer.Option(200, "--tail", "-n", help="The last N lines."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Print the last lines of each replica's log.

    Example: cumulo endpoint logs digits --tail 50
    """
    sys.stdout.write(Endpoint(open_workspace(workspace), name).get_logs(deployment, tail))


@endpoint_app.command("traffic")
@friendly_errors
def endpoint_traffic(
    name: str,
    split: list[str] = typer.Argument(..., help="DEPLOYMENT=PERCENT ..., adding up to 100."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Split traffic between deployments, e.g. ``blue=90 green=10``.

    Example: cumulo endpoint traffic digits blue=90 green=10
    """
    traffic = {}
    for k, v in _pairs(split, "Traffic").items():
        if not v.isdigit():
            raise InvalidInput(f"Traffic for {k!r} must be a whole percent, got {v!r}.")
        traffic[k] = int(v)
    ep = Endpoint(open_workspace(workspace), name).update_traffic(traffic)
    console.print(", ".join(f"{k} {v}%" for k, v in ep.info.traffic.items()))


@endpoint_app.command("delete")
@friendly_errors
def endpoint_delete(
    name: str,
    deployment: str | None = typer.Option(None, "--deployment", "-d", help="Only this one."),
    workspace: str | None = WorkspaceOption,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete an endpoint (or one of its deployments) and stop its replicas.

    Example: cumulo endpoint delete digits --yes
    """
    ep = Endpoint(open_workspace(workspace), name)
    what = f"deployment {deployment!r} of endpoint {name!r}" if deployment else f"endpoint {name!r}"
    if not yes:
        typer.confirm(f"Delete {what}?", abort=True)
    if deployment:
        ep.delete_deployment(deployment)
    else:
        ep.delete()
    console.print(f"Deleted {what}.")
