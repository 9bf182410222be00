"""Datasets and datastores on the command line: ``cumulo dataset ...``, ``cumulo datastore ...``.

A dataset is named ``NAME`` (its latest version) or ``NAME:VERSION``.
"""

from __future__ import annotations

from typing import Any

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
from cumulo.sdk.datasets import Dataset, Datastore

dataset_app = typer.Typer(
    help="Register, list, show, download, profile and compare datasets.", no_args_is_help=True
)
datastore_app = typer.Typer(help="Register, list and browse datastores.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(dataset_app, name="dataset")
    app.add_typer(datastore_app, name="datastore")


def _dataset(ws: Any, ref: str) -> Any:
    name, sep, version = ref.rpartition(":")
    if not sep:
        return Dataset.get_by_name(ws, ref)
    if not version.isdigit():
        raise InvalidInput(f"Dataset {ref!r}: the version after ':' must be a number.")
    return Dataset.get_by_name(ws, name, int(version))


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


# ------------------------------------------------------------------ datasets
@dataset_app.command("register")
@friendly_errors
def dataset_register(
    paths: list[str] = typer.Argument(..., help="Local files, folders or globs."),
    name: str = typer.Option(..., "--name", "-n", help="The dataset's name."),
    kind: str = typer.Option(
        "file", "--kind", help="file, csv (delimited text) or parquet: how the files are read."
    ),
    datastore: str | None = typer.Option(
        None, "--datastore", help="Read PATH in this datastore instead of local files."
    ),
    separator: str = typer.Option(",", "--separator", help="The delimiter of --kind csv."),
    no_header: bool = typer.Option(False, "--no-header", help="--kind csv files have no header."),
    description: str = typer.Option("", "--description", help="What this version holds."),
    tag: list[str] | None = typer.Option(None, "--tag", help="KEY=VALUE (repeat)."),
    workspace: str | None = WorkspaceOption,
    json: bool = JsonOption,
) -> None:
    """Register files as a version of a dataset (the same content is the same version)."""
    ws = open_workspace(workspace)
    source: Any = list(paths)
    if datastore is not None:
        if len(paths) != 1:
            raise InvalidInput("With --datastore give one path (a file, a folder or a glob).")
        source = Datastore.get(ws, datastore).path(paths[0])
    ds: Any
    if kind == "file":
        ds = Dataset.File.from_files(source)
    elif kind == "csv":
        ds = Dataset.Tabular.from_delimited_files(source, separator, header=not no_header)
    elif kind == "parquet":
        ds = Dataset.Tabular.from_parquet_files(source)
    else:
        raise InvalidInput(f"--kind is file, csv or parquet, not {kind!r}.")
    tags = {}
    for item in tag or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"Tag {item!r} is not KEY=VALUE.")
        tags[key] = value
    registered = ds.register(ws, name, description=description, tags=tags)
    if json:
        print_json(registered.info.to_dict())
        return
    info = registered.info
    console.print(
        f"Dataset [bold]{info.name}[/bold] version {info.version} ({info.kind}, "
        f"{len(info.files)} files, {_size(info.size)}, digest {info.digest[:12]})"
    )


@dataset_app.command("list")
@friendly_errors
def dataset_list(
    name: str | None = typer.Option(None, "--name", "-n", help="Every version of this dataset."),
    workspace: str | None = WorkspaceOption,
    json: bool = JsonOption,
) -> None:
    """The latest version of each dataset (or every version of --name)."""
    ws = open_workspace(workspace)
    found = Dataset.get_versions(ws, name) if name else Dataset.list(ws)
    if json:
        print_json([d.info.to_dict() for d in found])
        return
    table = Table("dataset", "version", "kind", "files", "size", "rows", "registered")
    for d in found:
        info = d.info
        rows = info.profile.get("rows")
        table.add_row(
            info.name,
            str(info.version),
            info.kind,
            str(len(info.files)),
            _size(info.size),
            "" if rows is None else str(rows),
            display.when(info.created_at),
        )
    console.print(table)


@dataset_app.command("show")
@friendly_errors
def dataset_show(
    dataset: str = typer.Argument(..., help="NAME or NAME:VERSION."),
    workspace: str | None = WorkspaceOption,
    json: bool = JsonOption,
) -> None:
    """One version: files, schema, and the runs that read it."""
    ds = _dataset(open_workspace(workspace), dataset)
    info = ds.info
    runs = ds.get_runs()
    if json:
        print_json({**info.to_dict(), "runs": [r.id for r in runs]})
        return
    console.print(f"[bold]{info.name}[/bold] version {info.version} · {info.kind}")
    console.print(f"digest {info.digest}  ·  {_size(info.size)}  ·  from {info.source or '-'}")
    if info.description:
        console.print(info.description)
    for key, value in info.tags.items():
        console.print(f"  tag {key} = {value}")
    if info.schema:
        console.print("columns: " + ", ".join(f"{c['name']} ({c['type']})" for c in info.schema))
    files = Table("file", "size", "sha256")
    for f in info.files[:50]:
        files.add_row(f["path"], _size(f["size"]), f["sha256"][:16])
    console.print(files)
    if len(info.files) > 50:
        console.print(f"... and {len(info.files) - 50} more files")
    console.print("read by runs: " + (", ".join(r.id for r in runs) or "none"))


@dataset_app.command("download")
@friendly_errors
def dataset_download(
    dataset: str = typer.Argument(..., help="NAME or NAME:VERSION."),
    target: str = typer.Option(".", "--target", "-t", help="The folder to write the files in."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace files already there."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Write a version's files into a folder."""
    ds = _dataset(open_workspace(workspace), dataset)
    written = ds.download(target, overwrite=overwrite)
    console.print(f"Wrote {len(written)} files of {ds.name}:{ds.version} to {target}")


@dataset_app.command("profile")
@friendly_errors
def dataset_profile(
    dataset: str = typer.Argument(..., help="NAME or NAME:VERSION of a tabular dataset."),
    workspace: str | None = WorkspaceOption,
    json: bool = JsonOption,
) -> None:
    """The profile computed at registration: per column type, missing, distinct, range."""
    ds = _dataset(open_workspace(workspace), dataset)
    profile = ds.info.profile
    if not profile:
        raise InvalidInput(f"Dataset {ds.name}:{ds.version} is a file dataset: it has no profile.")
    if json:
        print_json(profile)
        return
    console.print(f"{profile['rows']} rows, {profile['columns']} columns")
    table = Table("column", "type", "count", "missing", "distinct", "min", "max", "mean")
    for name, col in profile["column_profiles"].items():
        table.add_row(
            name,
            col["type"],
            str(col["count"]),
            str(col["missing"]),
            "many" if col["distinct"] is None else str(col["distinct"]),
            *(_number(col.get(k)) for k in ("min", "max", "mean")),
        )
    console.print(table)


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.6g}"


@dataset_app.command("compare")
@friendly_errors
def dataset_compare(
    base: str = typer.Argument(..., help="NAME:VERSION, the baseline."),
    other: str | None = typer.Argument(None, help="NAME:VERSION to compare with it."),
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="Compare the endpoint's sampled requests instead."
    ),
    deployment: str | None = typer.Option(None, "--deployment", help="One deployment's."),
    threshold: float = typer.Option(0.2, "--threshold", help="PSI over which a column drifted."),
    workspace: str | None = WorkspaceOption,
    json: bool = JsonOption,
) -> None:
    """Drift column by column: schema changes, PSI, Wasserstein distance (exit 2 on drift)."""
    ws = open_workspace(workspace)
    if (other is None) == (endpoint is None):
        raise InvalidInput("Compare with another version (OTHER) or with --endpoint, one of them.")
    ds = _dataset(ws, base)
    if other is None:
        assert endpoint is not None
        report = ds.compare_with_endpoint(endpoint, deployment, threshold=threshold)
    else:
        report = ds.compare(_dataset(ws, other), threshold=threshold)
    if json:
        print_json(report)
    else:
        table = Table("column", "change", "psi", "wasserstein", "drift")
        for c in report["columns"]:
            table.add_row(
                c["column"],
                c["change"] or "",
                _number(c["psi"]),
                _number(c["wasserstein"]),
                "[red]yes[/red]" if c["drift"] else "no",
            )
        console.print(f"{report['other']} against {report['base']} (PSI > {threshold}):")
        console.print(table)
    if report["drift"]:
        raise typer.Exit(2)


# ---------------------------------------------------------------- datastores
@datastore_app.command("register")
@friendly_errors
def datastore_register(
    name: str = typer.Argument(..., help="The datastore's name."),
    path: str | None = typer.Option(None, "--path", help="A folder of the workspace's machine."),
    bucket: str | None = typer.Option(None, "--bucket", help="An S3 bucket (AWS_* from the env)."),
    prefix: str = typer.Option("", "--prefix", help="A prefix in --bucket."),
    endpoint_url: str | None = typer.Option(
        None, "--endpoint-url", help="The S3 API of an S3-compatible store."
    ),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Register a folder (--path) or an S3 bucket and prefix (--bucket) under NAME."""
    ws = open_workspace(workspace)
    if (path is None) == (bucket is None):
        raise InvalidInput("Give --path (a folder) or --bucket (S3), one of them.")
    if path is not None:
        store = Datastore.register_local(ws, name, path)
    else:
        assert bucket is not None
        store = Datastore.register_s3(ws, name, bucket, prefix, endpoint_url)
    creds = " (credentials sealed)" if store.info.has_credentials else ""
    console.print(f"Datastore [bold]{store.name}[/bold] ({store.kind}){creds}")


@datastore_app.command("list")
@friendly_errors
def datastore_list(workspace: str | None = WorkspaceOption, json: bool = JsonOption) -> None:
    """The workspace's datastores; the default is marked."""
    stores = Datastore.list(open_workspace(workspace))
    if json:
        print_json([s.info.to_dict() for s in stores])
        return
    table = Table("datastore", "kind", "where", "default")
    for s in stores:
        cfg = s.info.config
        where = (
            cfg.get("path") or cfg.get("root") or f"s3://{cfg.get('bucket')}/{cfg.get('prefix')}"
        )
        table.add_row(s.name, s.kind, str(where), "*" if s.is_default else "")
    console.print(table)


@datastore_app.command("browse")
@friendly_errors
def datastore_browse(
    name: str = typer.Argument(..., help="The datastore."),
    path: str = typer.Argument("", help="A folder in it."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Folders' contents too."),
    workspace: str | None = WorkspaceOption,
    json: bool = JsonOption,
) -> None:
    """Files and folders of a datastore."""
    found = Datastore.get(open_workspace(workspace), name).browse(path, recursive)
    if json:
        print_json([f.to_dict() for f in found])
        return
    table = Table("path", "size")
    for f in found:
        table.add_row(f.path + ("/" if f.is_dir else ""), "" if f.size is None else _size(f.size))
    console.print(table)
