"""The command line and the server import only what they need: ``cumulo --help`` loads
no command module, the server module loads none of the heavy libraries that only
some requests use (those load on first use), and ``cumulo server`` answers ``/health``
before it imports the web framework or any group of routes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cumulo.cli.main import COMMANDS, load

HEAVY_FOR_THE_SERVER = {
    "alembic", "boto3", "docker", "jinja2", "mlflow", "optuna", "pandas", "paramiko",
    "pyarrow", "ray", "sklearn", "scipy", "torch",
}  # fmt: skip


def _imported_by(code: str) -> set[str]:
    """Top-level packages and cumulo modules in ``sys.modules`` after ``code``, in a fresh
    interpreter."""
    script = code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    names = json.loads(out.strip().splitlines()[-1])
    return {n if n.startswith(KEPT_WHOLE) else n.split(".")[0] for n in names}


# Modules named in full by ``_imported_by`` (others by their top-level package).
KEPT_WHOLE = ("cumulo", "sqlalchemy.dialects", "starlette.responses")


@pytest.mark.slow  # a fresh interpreter imports the web framework: seconds on a busy machine
def test_the_server_module_leaves_heavy_libraries_unloaded() -> None:
    loaded = _imported_by("import cumulo.server.app, cumulo.server.serve")
    assert "fastapi" in loaded  # the check sees what was imported
    assert not loaded & HEAVY_FOR_THE_SERVER


# Loaded where a request or a worker first uses them, never at the server's start: numpy
# (metric series, datasets), fsspec (a local artifact root), yaml (an MLmodel file),
# croniter (a schedule's ticks), httpx (a notebook server's health), psutil (a job's
# system metrics, the GPUs), pathspec (a code snapshot's ignore rules), PostgreSQL's
# dialect (a SQLite store), the web framework's responses (a route's), the SDK.
LOADED_ON_USE = {
    "numpy", "fsspec", "yaml", "croniter", "httpx", "psutil", "pathspec",
    "sqlalchemy.dialects.postgresql", "starlette.responses",
}  # fmt: skip
# The services no request to /health needs: built, with their workers, after the start.
SERVICES_AFTER_THE_START = (
    "cumulo.services.jobs", "cumulo.services.scheduler", "cumulo.services.supervisor",
    "cumulo.services.sweeps", "cumulo.services.pipelines", "cumulo.services.pipeline_driver",
    "cumulo.services.notebooks", "cumulo.services.datasets", "cumulo.services.deployments",
    "cumulo.services.registry", "cumulo.compute", "cumulo.serving", "cumulo.core.jobs",
)  # fmt: skip
# Built on a group's first request, never at the server's start.
ROUTE_GROUPS = (
    "cumulo.server.app",
    "cumulo.server.mlflow",
    "cumulo.server.api",
    "cumulo.server.studio",
)


@pytest.mark.slow  # a fresh interpreter opens the services: seconds on a busy machine
def test_the_server_answers_health_without_the_web_framework(tmp_path: Path) -> None:
    from cumulo.core.settings import Settings
    from cumulo.services.context import open_services

    open_services(Settings.load(home=tmp_path, environ={}))  # migrated, as the CLI leaves it
    loaded = _imported_by(
        "import asyncio\n"
        "import cumulo.cli.server\n"  # the command, as `cumulo server` loads it
        "from cumulo.core.settings import Settings\n"
        "from cumulo.server.serve import app_for\n"
        f"app = app_for(Settings.load(home={str(tmp_path)!r}, environ={{}}))\n"
        "sent = []\n"
        "async def receive():\n    return {'type': 'http.request', 'body': b''}\n"
        "async def send(message):\n    sent.append(message)\n"
        "scope = {'type': 'http', 'method': 'GET', 'path': '/health', 'headers': [],\n"
        "         'query_string': b'', 'client': ('127.0.0.1', 1)}\n"
        "asyncio.run(app(scope, receive, send))\n"
        "assert sent[0]['status'] == 200, sent\n"
    )
    assert {"cumulo.server.front", "cumulo.cli.server"} <= loaded  # the check sees imports
    assert not loaded & (HEAVY_FOR_THE_SERVER | {"fastapi", "pydantic", "jinja2"})
    assert not loaded & LOADED_ON_USE
    assert "sqlalchemy.dialects.sqlite" in loaded  # the store was opened
    assert not {m for m in loaded if m.startswith(SERVICES_AFTER_THE_START)}
    assert not {m for m in loaded if m.startswith(ROUTE_GROUPS)}
    assert not {m for m in loaded if m.startswith("cumulo.sdk")}


def test_the_command_list_loads_no_command_module() -> None:
    loaded = _imported_by(
        "import sys\n"
        "from cumulo.cli.main import app\n"
        "sys.argv = ['cumulo', '--help']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass"
    )
    assert "cumulo.cli.main" in loaded
    assert not {
        m for m in loaded if m.startswith(("cumulo.cli.", "cumulo.sdk", "cumulo.server"))
    } - {"cumulo.cli.main"}
    assert not loaded & {"sqlalchemy", "fastapi", "uvicorn", "httpx", "numpy"}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_listed_help_line_is_the_commands_own(name: str) -> None:
    command = load(name)
    assert command.name == name
    assert " ".join((command.help or "").split()).startswith(COMMANDS[name][1])


def test_every_command_module_is_listed() -> None:
    """A module of ``cumulo.cli`` that registers commands is loaded through ``COMMANDS``."""
    import cumulo.cli

    folder = Path(cumulo.cli.__file__).parent
    registering = {
        f"cumulo.cli.{f.stem}" for f in folder.glob("*.py") if "\ndef register(" in f.read_text()
    }
    listed = {module for modules, _ in COMMANDS.values() for module in modules}
    assert registering == listed
