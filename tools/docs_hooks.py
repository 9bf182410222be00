"""MkDocs hooks of the documentation site (``hooks:`` in mkdocs.yml).

The REST reference is made from the server itself: the app is built over a throwaway
home, its OpenAPI description is written into the site as ``openapi.json``, and the
``rest-api.md`` page gets one table of routes per tag in place of its marker line.
"""

from __future__ import annotations

import json
import re
import tempfile
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

REST_PAGE = "rest-api.md"
MARKER = "<!-- rest-api-tables -->"
METHODS = ("get", "post", "put", "patch", "delete")
CONVERTER = re.compile(r"\{(\w+):\w+\}")  # "{path:path}" in a route is "{path}" in OpenAPI

_spec: dict[str, Any] = {}
_access: dict[tuple[str, str], str] = {}


def describe_server() -> tuple[dict[str, Any], dict[tuple[str, str], str]]:
    """The server's OpenAPI description, and who may call each route (by method and
    path), from an app over an empty, temporary home."""
    from cumulo.core.settings import Settings
    from cumulo.server.access import route_table
    from cumulo.server.app import create_app
    from cumulo.services.context import build_services

    with tempfile.TemporaryDirectory(prefix="cumulo-docs-") as home:
        settings = Settings.load(home=home, environ={})
        services = build_services(settings)
        try:
            app = create_app(settings, services)
            access = {
                (method.lower(), CONVERTER.sub(r"{\1}", route.path)): str(route.access)
                for route in route_table(app)
                for method in route.methods
            }
            return app.openapi(), access
        finally:
            services.database.dispose()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _summary(operation: dict[str, Any]) -> str:
    """The operation's name, and the first sentence of its description when it has one."""
    summary = operation.get("summary", "")
    first = operation.get("description", "").strip().split("\n\n", 1)[0]
    first = first.replace("``", "`")
    return _cell(f"{summary}: {first}" if first else summary)


def rest_tables(spec: dict[str, Any], access: dict[tuple[str, str], str]) -> str:
    """One Markdown table per tag (in the order tags first appear): method, path, who may
    call it with token checks on, and what it does."""
    groups: dict[str, list[str]] = {}
    for path, item in spec["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            tag = (operation.get("tags") or ["other"])[0]
            who = access[(method, path)]
            groups.setdefault(tag, []).append(
                f"| `{method.upper()}` | `{path}` | {who} | {_summary(operation)} |"
            )
    head = "| method | path | access | what it does |\n|---|---|---|---|\n"
    return "\n".join(f"## {tag}\n\n{head}" + "\n".join(rows) + "\n" for tag, rows in groups.items())


def on_files(files: Files, config: MkDocsConfig) -> Files:
    spec, access = describe_server()
    _spec.clear()
    _spec.update(spec)
    _access.clear()
    _access.update(access)
    files.append(File.generated(config, "openapi.json", content=json.dumps(_spec, indent=1) + "\n"))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri != REST_PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"{REST_PAGE} lost its marker line {MARKER!r}.")
    version = _spec["info"]["version"]
    count = sum(1 for item in _spec["paths"].values() for m in METHODS if m in item)
    header = f"Version {version}: {count} operations on {len(_spec['paths'])} paths.\n\n"
    return markdown.replace(MARKER, header + rest_tables(_spec, _access))
