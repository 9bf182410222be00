"""``cumulo server`` and ``cumulo token``: serve a workspace store, manage access tokens."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from typing import Any

import typer

from cumulo.cli.common import (
    HomeOption,
    JsonOption,
    console,
    err_console,
    friendly_errors,
    print_json,
)
from cumulo.core.errors import InvalidInput
from cumulo.core.settings import Settings
from cumulo.services.auth import ALL_WORKSPACES, ROLES, AuthService
from cumulo.services.context import open_services

token_app = typer.Typer(
    help="Create, list and revoke access tokens (for servers run with --auth token).",
    no_args_is_help=True,
)
audit_app = typer.Typer(
    help="Read the audit log: every write and every refused request a server answered.",
    no_args_is_help=True,
)
DatabaseOption = typer.Option(None, "--database-url", help="PostgreSQL URL instead of SQLite.")


def register(app: typer.Typer) -> None:
    app.command("server")(server)
    app.add_typer(token_app, name="token")
    app.add_typer(audit_app, name="audit")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_advertise_host(listen: str) -> str:
    """The address other machines reach this one at: loopback when listening on loopback,
    else the listening address, else the address of the interface that routes outward."""
    if is_loopback(listen):
        return "127.0.0.1"
    if listen not in ("0.0.0.0", "::", ""):
        return listen
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        address = str(probe.getsockname()[0])
        if not ipaddress.ip_address(address).is_loopback:
            return address
    return socket.gethostname()


@friendly_errors
def server(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(5000, help="Port to listen on."),
    home: str | None = HomeOption,
    database_url: str | None = DatabaseOption,
    artifact_root: str | None = typer.Option(
        None, "--artifact-root", help="Artifact folder or s3://bucket/prefix."
    ),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes."),
    auth: str = typer.Option("none", help="none, or token: every request needs a bearer token."),
    max_request_bytes: int | None = typer.Option(
        None, help="Largest request body accepted (default 64 MiB); artifact uploads stream."
    ),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request."),
    advertise_host: str | None = typer.Option(
        None,
        "--advertise-host",
        envvar="CUMULO_ADVERTISE_HOST",
        help="Address other machines reach this one at; endpoint replicas listen on it "
        "(default: loopback when --host is, else this machine's outward address).",
    ),
) -> None:
    """Serve the workspaces of one store over HTTP (native API, MLflow API, studio)."""
    from cumulo.server.serve import serve

    if auth not in ("none", "token"):
        raise InvalidInput(f"--auth must be none or token, got {auth!r}.")
    overrides: dict[str, Any] = {
        "auth": auth,
        "advertise_host": advertise_host or default_advertise_host(host),
    }
    if max_request_bytes is not None:
        overrides["max_request_bytes"] = max_request_bytes
    settings = Settings.load(
        home=home, database_url=database_url, artifact_root=artifact_root, **overrides
    )
    if auth == "none" and not is_loopback(host):
        err_console.print(
            "[bold red]WARNING: listening on "
            f"{host} with --auth none: anyone who can reach this address can read, change "
            "and delete every workspace. Use --auth token (and `cumulo token create`) "
            "on any network you do not control.[/bold red]"
        )
    open_services(settings)  # migrate once here, before workers start side by side
    console.print(
        f"Cumulo server on http://{host}:{port} (auth {auth}, {workers} worker"
        f"{'s' if workers > 1 else ''}) over {settings.database_url} + {settings.artifact_root}",
        soft_wrap=True,
    )
    serve(
        settings, host=host, port=port, workers=workers, log_level=log_level, access_log=access_log
    )


def _auth_service(home: str | None, database_url: str | None) -> AuthService:
    services = open_services(Settings.load(home=home, database_url=database_url))
    return services.auth


@token_app.command("create")
@friendly_errors
def token_create(
    workspace: str = typer.Option(
        ..., "--workspace", "-w", help=f"Workspace the token opens ({ALL_WORKSPACES!r}: all)."
    ),
    role: str = typer.Option(..., help=f"One of {', '.join(ROLES)}."),
    description: str = typer.Option("", help="What the token is for."),
    expires_in: str | None = typer.Option(
        None, "--expires-in", help="Lifetime, e.g. 3600s, 90m, 12h or 30d (default: no expiry)."
    ),
    home: str | None = HomeOption,
    database_url: str | None = DatabaseOption,
) -> None:
    """Create a token and print it (once: only its hash is stored).

    Example: cumulo token create --workspace team --role reader --expires-in 30d
    """
    lifetime = _seconds(expires_in) if expires_in else None
    info, token = _auth_service(home, database_url).create_token(
        workspace, role, description, lifetime
    )
    until = f", expires {_when(info.expires_at)}" if info.expires_at else ""
    err_console.print(
        f"Token {info.id} ({info.role} of {info.workspace}{until}). "
        "It is shown only now; keep it safe:"
    )
    typer.echo(token)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(text: str) -> int:
    """``90m`` -> 5400; a bare number is seconds."""
    value, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    if not value.isdigit() or int(value) == 0:
        raise InvalidInput(
            f"--expires-in {text!r} is not a lifetime; write a whole number and a unit "
            "(s, m, h or d), e.g. 30d."
        )
    return int(value) * _UNITS[unit]


@token_app.command("list")
@friendly_errors
def token_list(
    workspace: str | None = typer.Option(None, "--workspace", "-w", help="Only this workspace."),
    all_: bool = typer.Option(False, "--all", help="Include revoked tokens."),
    home: str | None = HomeOption,
    database_url: str | None = DatabaseOption,
    as_json: bool = JsonOption,
) -> None:
    """List tokens (never the tokens themselves).

    Example: cumulo token list
    """
    found = _auth_service(home, database_url).list_tokens(workspace, include_revoked=all_)
    if as_json:
        print_json([t.to_dict() for t in found])
        return
    from rich.table import Table

    table = Table("id", "workspace", "role", "created", "expires", "revoked", "description")
    for t in found:
        table.add_row(
            t.id,
            t.workspace,
            t.role,
            _when(t.created_at),
            _when(t.expires_at),
            _when(t.revoked_at),
            t.description,
        )
    console.print(table)


@token_app.command("revoke")
@friendly_errors
def token_revoke(
    token_id: str = typer.Argument(..., help="The token's id (see `cumulo token list`)."),
    home: str | None = HomeOption,
    database_url: str | None = DatabaseOption,
) -> None:
    """Revoke a token: requests with it are refused from now on.

    Example: cumulo token revoke 3f2a9c
    """
    info = _auth_service(home, database_url).revoke_token(token_id)
    console.print(f"Token {info.id} ({info.role} of {info.workspace}) is revoked.")


def _when(ms: int | None, seconds: bool = False) -> str:
    if ms is None:
        return ""
    at = time.localtime(ms / 1000)
    if seconds and time.strftime("%Y%m%d", at) == time.strftime("%Y%m%d"):
        return time.strftime("%H:%M:%S", at)  # today: the time says enough
    return time.strftime("%Y-%m-%d %H:%M", at)


@audit_app.command("list")
@friendly_errors
def audit_list(
    workspace: str | None = typer.Option(
        None, "--workspace", "-w", help="Only this workspace (default: the whole server)."
    ),
    limit: int = typer.Option(50, help="How many entries, newest first."),
    refused: bool = typer.Option(False, "--refused", help="Only refused requests (401/403/429)."),
    home: str | None = HomeOption,
    database_url: str | None = DatabaseOption,
    as_json: bool = JsonOption,
) -> None:
    """Who did what, when, and how it ended (newest first).

    Example: cumulo audit list --workspace team --refused
    """
    found = _auth_service(home, database_url).audit_log(
        workspace, limit=limit, refused_only=refused
    )
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    from rich.table import Table

    table = Table("when", "workspace", "token", "client", "request", "status")
    for e in found:
        table.add_row(
            _when(e.at, seconds=True),
            e.workspace or "",
            e.token_id or "",
            e.client,
            f"{e.method} {_short_route(e.route, e.workspace)}",
            f"{e.status} {e.outcome}",
        )
    console.print(table)


def _short_route(route: str, workspace: str | None) -> str:
    """The path without its workspace prefix (the workspace has a column of its own)."""
    for prefix in (f"/api/v1/workspaces/{workspace}", f"/ws/{workspace}"):
        if workspace and route.startswith(prefix + "/"):
            return "…" + route[len(prefix) :]
    return route
