"""The front of `cumulo server`: ``/health`` at once, each route group built on first use,
MLflow's ``/ajax-api/`` paths rewritten to ``/api/``, and every route of the whole app
served by the group its path leads to."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from cumulo.core.settings import Settings
from cumulo.server.access import MOUNTS, route_table
from cumulo.server.app import build_group, create_app
from cumulo.server.front import Front, route
from cumulo.server.serve import front_app
from cumulo.services.context import Services, close_all, open_keys, open_services


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def opened(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Services]:
    settings = Settings.load(home=tmp_path_factory.mktemp("front") / "home", environ={})
    return settings, open_services(settings)


@pytest.fixture
def front(opened: tuple[Settings, Services]) -> Front:
    """A fresh front (no group built yet) over the module's store."""
    return front_app(*opened)


@pytest.fixture
async def client(front: Front) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=front)
    async with httpx.AsyncClient(transport=transport, base_url="http://front") as c:
        yield c


@pytest.mark.parametrize(
    ("path", "group", "rewritten"),
    [
        ("/health", "health", None),
        ("/api/2.0/mlflow/runs/get", "mlflow", None),
        ("/api/3.0/mlflow/traces", "mlflow", None),
        ("/ajax-api/2.0/mlflow/runs/get", "mlflow", "/api/2.0/mlflow/runs/get"),
        ("/ws/team/ajax-api/2.0/mlflow/runs/get", "mlflow", "/ws/team/api/2.0/mlflow/runs/get"),
        ("/ws/team/api/2.0/mlflow/runs/get", "mlflow", None),
        ("/ajax-api/2.0/mlflow/upload-artifact", "mlflow", None),  # the web UI's own route
        ("/get-artifact", "mlflow", None),
        ("/ws/team/model-versions/get-artifact", "mlflow", None),
        ("/api/v1/workspaces", "native", None),
        ("/ws/team/api/v1/workspaces", "mlflow", None),  # only MLflow's API is under /ws/
        ("/", "studio", None),
        ("/login", "studio", None),
        ("/ws/team", "studio", None),
        ("/ws/team/runs/abc", "studio", None),
        ("/studio-static/studio.js", "studio", None),
        ("/studio-data/ws/team/runs/abc/series", "studio", None),
        ("/endpoints/team/shop/score", "scoring", None),
        ("/openapi.json", "openapi", None),
        ("/docs", "docs", None),
        ("/redoc", "docs", None),
        # Where a client joined its tracking URI with a route's path, a run of slashes is
        # one, as MLflow's server reads it; further on, slashes are the route's.
        (
            "/ws/team//model-versions/get-artifact",
            "mlflow",
            "/ws/team/model-versions/get-artifact",
        ),
        ("///ajax-api/2.0/mlflow/runs/get", "mlflow", "/api/2.0/mlflow/runs/get"),
        ("//nothing/here", None, None),
        (
            "/api/2.0/mlflow-artifacts/artifacts//etc/x",
            "mlflow",
            None,
        ),
        ("/nothing/here", None, None),
        ("/endpointsx", None, None),
    ],
)
def test_each_path_goes_to_its_group(path: str, group: str | None, rewritten: str | None) -> None:
    assert route(path) == (group, rewritten)


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: "a/b" if m.group(2) else "x1", path)


@pytest.mark.slow  # builds the whole app and every group: seconds on a busy machine
def test_every_route_of_the_whole_app_is_in_the_group_its_path_leads_to(
    opened: tuple[Settings, Services],
) -> None:
    settings, services = opened
    whole = create_app(settings, services)
    audit = whole.state.audit
    groups = {g: build_group(g, settings, services, audit) for g in ("mlflow", "native", "studio")}
    served = {
        name: {(str(r.path), m) for r in iter_route_contexts(app.routes) for m in r.methods or ()}
        for name, app in groups.items()
    }
    checked = 0
    for entry in route_table(whole):
        group, rewritten = route(_concrete(entry.path))
        if entry.path in MOUNTS:  # the framework's pages, or mounted apps (a path under)
            mounted = {"/endpoints": "scoring", "/studio-static": "studio"}
            probe = entry.path + "/x" if entry.path in mounted else entry.path
            expected = "openapi" if entry.path == "/openapi.json" else "docs"
            assert route(probe)[0] == mounted.get(entry.path, expected), entry
            continue
        assert group is not None, entry
        if group == "health":
            continue
        path = entry.path
        if rewritten is not None:  # the same route at /api/ serves the alias
            path = path.replace("/ajax-api/", "/api/", 1)
        for method in entry.methods:
            assert (path, method) in served[group], (entry, group)
            checked += 1
    assert checked > 300
    # Fewer routes to match: the aliases are not routes of the MLflow group (but for the
    # web UI's one route that exists under /ajax-api/ only).
    ajax = {path for path, _ in served["mlflow"] if "/ajax-api/" in path}
    assert {path.split("/ajax-api/")[1] for path in ajax} == {"2.0/mlflow/upload-artifact"}


def test_a_server_started_on_an_old_database_migrates_it_first(tmp_path: Path) -> None:
    """The start reads the database's revision without alembic; one behind the newest
    migration is upgraded before anything is served."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from cumulo.server.serve import app_for
    from cumulo.store.db import MIGRATIONS, current_revision, migration_head

    settings = Settings.load(home=tmp_path, environ={})
    engine = create_engine(settings.database_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")  # an old store, before run numbers
    try:
        front = app_for(settings)  # what each worker of `cumulo server` opens
        with engine.connect() as conn:
            assert current_revision(conn) == migration_head() != "0006"
        assert front.state.services.tracking.get_workspace("default").name == "default"
    finally:
        close_all(keep=open_keys() - {settings.key})
        engine.dispose()


@pytest.mark.anyio
async def test_health_answers_without_building_any_group(
    client: httpx.AsyncClient, front: Front
) -> None:
    got = await client.get("/health")
    assert got.status_code == 200 and got.json() == {"status": "ok"}
    refused = await client.post("/health")
    assert refused.status_code == 405 and refused.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    missing = await client.get("/nothing/here")
    assert missing.status_code == 404
    assert missing.json() == {
        "error_code": "ENDPOINT_NOT_FOUND",
        "message": "No endpoint /nothing/here.",
    }
    assert front.built() == frozenset()


@pytest.mark.anyio
async def test_a_group_is_built_on_its_first_request_only(
    client: httpx.AsyncClient, front: Front
) -> None:
    got = await client.get("/api/v1/workspaces")
    assert got.status_code == 200 and "default" in {w["name"] for w in got.json()["workspaces"]}
    assert front.built() == {"native"}
    page = await client.get("/login")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert front.built() == {"native", "studio"}


@pytest.mark.anyio
async def test_ajax_api_paths_answer_as_the_api_paths(
    client: httpx.AsyncClient, front: Front
) -> None:
    made = await client.post("/ajax-api/2.0/mlflow/experiments/create", json={"name": "aliased"})
    assert made.status_code == 200
    experiment_id = made.json()["experiment_id"]
    query = {"experiment_id": experiment_id}
    direct = await client.get("/api/2.0/mlflow/experiments/get", params=query)
    aliased = await client.get("/ajax-api/2.0/mlflow/experiments/get", params=query)
    assert aliased.status_code == 200 and aliased.json() == direct.json()
    missing = await client.get("/ws/default/ajax-api/2.0/mlflow/no-such-route")
    assert missing.status_code == 404
    assert missing.json()["message"] == (
        "This server does not implement GET /ws/default/ajax-api/2.0/mlflow/no-such-route."
    )
    # The audit trail names the path the client sent.
    front.state.audit.flush()
    routes = [e.route for e in front.state.auth.audit_log(None, limit=20)]
    assert "/ajax-api/2.0/mlflow/experiments/create" in routes
    assert front.built() == {"mlflow"}


@pytest.mark.anyio
async def test_a_doubled_slash_reaches_the_route_as_one(client: httpx.AsyncClient) -> None:
    """A client that joins a tracking URI with a path may send ``//``: MLflow's server
    reads the two as one where the URI and the path meet, and so does the front (the
    path checks still apply)."""
    refused = await client.get(
        "/ws/default//model-versions/get-artifact",
        params={"name": "model", "version": "1", "path": "../path"},
    )
    assert refused.status_code == 400
    assert refused.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"}
    made = await client.post(
        "/ws/default//api/2.0/mlflow/experiments/create", json={"name": "slashes"}
    )
    assert made.status_code == 200
    got = await client.get(
        "/api/2.0/mlflow/experiments/get", params={"experiment_id": made.json()["experiment_id"]}
    )
    assert got.json()["experiment"]["name"] == "slashes"


@pytest.mark.slow  # builds every group: seconds on a busy machine
@pytest.mark.anyio
async def test_the_openapi_description_lists_every_route_of_the_whole_app(
    client: httpx.AsyncClient, front: Front, opened: tuple[Settings, Services]
) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text
    assert front.built() == {"docs"}  # the page alone needs no route
    got = await client.get("/openapi.json")
    assert got.status_code == 200
    assert got.json() == create_app(*opened).openapi()
    assert front.built() == {"docs", "openapi", "mlflow", "native", "studio"}


@pytest.mark.anyio
async def test_requests_that_come_during_a_build_wait_for_that_one_build(
    opened: tuple[Settings, Services],
) -> None:
    settings, services = opened
    real = front_app(settings, services)
    started, release = threading.Event(), threading.Event()
    builds: list[str] = []

    def slow_build(name: str, parts: list[Any]) -> Any:
        builds.append(name)
        started.set()
        release.wait(30)
        return real._build(name, parts)

    front = Front(settings, services, real.state.audit, slow_build)
    transport = httpx.ASGITransport(app=front)
    async with httpx.AsyncClient(transport=transport, base_url="http://front") as c:
        first = asyncio.ensure_future(c.get("/api/v1/workspaces"))
        second = asyncio.ensure_future(c.get("/api/v1/workspaces/default"))
        await asyncio.to_thread(started.wait, 30)
        health = await c.get("/health")  # the loop is free while a group is built
        assert health.status_code == 200 and not first.done()
        release.set()
        answers = await asyncio.gather(first, second)
    assert [a.status_code for a in answers] == [200, 200]
    assert builds == ["native"]


@pytest.mark.anyio
async def test_a_group_that_fails_to_build_answers_500_and_is_tried_again(
    opened: tuple[Settings, Services],
) -> None:
    settings, services = opened
    real = front_app(settings, services)
    tries: list[str] = []

    def flaky_build(name: str, parts: list[Any]) -> Any:
        tries.append(name)
        if len(tries) == 1:
            raise RuntimeError("broken route")
        return real._build(name, parts)

    front = Front(settings, services, real.state.audit, flaky_build)
    transport = httpx.ASGITransport(app=front)
    async with httpx.AsyncClient(transport=transport, base_url="http://front") as c:
        failed = await c.get("/api/v1/workspaces")
        assert failed.status_code == 500 and failed.json()["error_code"] == "INTERNAL_ERROR"
        assert "broken route" not in failed.text
        assert (await c.get("/api/v1/workspaces")).status_code == 200
    assert tries == ["native", "native"]


class Lifespan:
    """The ASGI lifespan of ``front``, driven as uvicorn drives it; ``sent`` lists what
    the front answered."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.sent: list[str] = []
        self.task: asyncio.Future[None] | None = None

    async def _send(self, message: dict[str, Any]) -> None:
        self.sent.append(message["type"])

    async def start(self) -> None:
        scope = {"type": "lifespan"}
        self.task = asyncio.ensure_future(self.front(scope, self.inbox.get, self._send))
        await self.inbox.put({"type": "lifespan.startup"})

    async def shut_down(self) -> None:
        assert self.task is not None
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.task


async def _health(front: Front) -> httpx.Response:
    transport = httpx.ASGITransport(app=front)
    async with httpx.AsyncClient(transport=transport, base_url="http://front") as c:
        return await c.get("/health")


@pytest.mark.anyio
async def test_health_answers_503_when_the_background_workers_did_not_start(
    front: Front, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_options: Any) -> None:
        raise RuntimeError("no scheduler today")

    monkeypatch.setattr(front.state.services.scheduler, "start", broken)
    lifespan = Lifespan(front)
    await lifespan.start()
    assert await asyncio.to_thread(front.workers_started.wait, 30)
    answer = await _health(front)
    assert answer.status_code == 503 and "no scheduler today" in answer.json()["message"]
    await lifespan.shut_down()
    assert lifespan.sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.anyio
async def test_the_front_runs_the_background_workers_in_its_lifespan(front: Front) -> None:
    scheduler = front.state.services.scheduler
    lifespan = Lifespan(front)
    await lifespan.start()
    while not lifespan.sent:
        await asyncio.sleep(0.01)
    assert lifespan.sent == ["lifespan.startup.complete"]  # without waiting for the workers
    assert await asyncio.to_thread(front.workers_started.wait, 30)
    assert front.workers_failed is None and scheduler.running
    assert (await _health(front)).status_code == 200
    await lifespan.shut_down()
    assert lifespan.sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    for _ in range(500):  # the scheduler's thread ends on its own (stop does not wait)
        if not scheduler.running:
            break
        await asyncio.sleep(0.02)
    assert not scheduler.running
