"""MLflow's routes of fixed paths answered in front of the router (``server/mlflow/direct.py``):
which routes the table holds, where their handlers run, and that a failure answers as the
router's handlers answer it."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cumulo.core.settings import Settings
from cumulo.server.app import create_app
from cumulo.server.mlflow.direct import DirectRoutes
from cumulo.services.context import Services, open_services

P = "/api/2.0/mlflow"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Services:
    settings = Settings.load(home=tmp_path_factory.mktemp("direct") / "home", environ={})
    return open_services(settings)


@pytest.fixture
def app(services: Services) -> FastAPI:
    return create_app(services.settings, services)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://direct") as c:
        yield c


def direct_of(app: FastAPI) -> DirectRoutes:
    """The app's DirectRoutes middleware (the stack is built at the first request)."""
    layer = app.middleware_stack
    while layer is not None and not isinstance(layer, DirectRoutes):
        layer = getattr(layer, "app", None)
    assert layer is not None, "the MLflow routes have no DirectRoutes in front of them"
    return layer


async def new_run(client: httpx.AsyncClient) -> str:
    found = await client.get(P + "/experiments/get-by-name", params={"experiment_name": "d"})
    if found.status_code == 200:
        exp = found.json()["experiment"]["experiment_id"]
    else:
        exp = (await client.post(P + "/experiments/create", json={"name": "d"})).json()[
            "experiment_id"
        ]
    made = await client.post(P + "/runs/create", json={"experiment_id": exp})
    assert made.status_code == 200, made.text
    return str(made.json()["run"]["info"]["run_id"])


@pytest.mark.anyio
async def test_the_table_holds_the_fixed_paths_and_leaves_the_rest_to_the_router(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await new_run(client)
    direct = direct_of(app)
    for method, path in [
        ("POST", P + "/runs/create"),
        ("GET", P + "/runs/get"),
        ("POST", P + "/runs/update"),
        ("POST", P + "/runs/log-metric"),
        ("POST", P + "/runs/log-batch"),
        ("POST", P + "/runs/search"),
        ("GET", P + "/registered-models/get"),
    ]:
        assert (method, path) in direct.root, path
        assert (method, path) in direct.in_workspace, path
    point = {path for (_, path), entry in direct.root.items() if entry.point}
    assert {P + "/runs/create", P + "/runs/get", P + "/runs/log-metric"} <= point
    assert P + "/runs/search" not in point  # unbounded work stays off the event loop
    # A path with parameters, and an async handler, are the router's.
    assert not any("{" in path for _, path in direct.root)
    assert ("POST", "/api/2.0/mlflow-artifacts/artifacts") not in direct.root


@pytest.mark.anyio
async def test_point_routes_run_on_the_event_loop_on_sqlite_and_the_rest_in_threads(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await new_run(client)
    seen: dict[str, str] = {}
    tracking = services.tracking
    get_run, search_runs = tracking.get_run, tracking.search_runs

    def noting_get(*args: Any, **kwargs: Any) -> Any:
        seen["get"] = threading.current_thread().name
        return get_run(*args, **kwargs)

    def noting_search(*args: Any, **kwargs: Any) -> Any:
        seen["search"] = threading.current_thread().name
        return search_runs(*args, **kwargs)

    monkeypatch.setattr(tracking, "get_run", noting_get)
    monkeypatch.setattr(tracking, "search_runs", noting_search)
    assert (await client.get(P + "/runs/get", params={"run_id": run_id})).status_code == 200
    assert (await client.post(P + "/runs/search", json={})).status_code == 200
    here = threading.current_thread().name
    assert seen["get"] == here
    assert seen["search"] != here


@pytest.mark.anyio
async def test_a_workspace_path_reaches_its_workspace_and_errors_answer_in_mlflow_words(
    client: httpx.AsyncClient,
) -> None:
    run_id = await new_run(client)
    got = await client.get("/ws/default" + P + "/runs/get", params={"run_id": run_id})
    assert got.status_code == 200 and got.json()["run"]["info"]["run_id"] == run_id
    other = await client.get("/ws/nowhere" + P + "/runs/get", params={"run_id": run_id})
    assert other.status_code == 404
    assert other.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    missing = await client.get(P + "/runs/get", params={"run_id": "nope"})
    assert missing.status_code == 404
    assert missing.json() == {
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "message": "Run with id=nope not found",
    }
    bad = await client.post(P + "/runs/log-metric", content=b"{not json")
    assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"


@pytest.mark.anyio
async def test_an_unexpected_failure_answers_500_with_an_error_id_and_no_trace(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await new_run(client)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret detail of a bug")

    monkeypatch.setattr(services.tracking, "get_run", broken)
    answer = await client.get(P + "/runs/get", params={"run_id": run_id})
    assert answer.status_code == 500
    body = answer.json()
    assert body["error_code"] == "INTERNAL_ERROR"
    assert "error id" in body["message"] and "secret detail" not in answer.text
