"""The composition root: one services object per store, owning its two background workers."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx

from cumulo.core.settings import Settings
from cumulo.server.app import create_app
from cumulo.services.context import close_all, open_keys, open_services


def _worker_threads() -> set[threading.Thread]:
    names = ("cumulo-scheduler", "cumulo-supervisor", "cumulo-supervisor-lease")
    return {t for t in threading.enumerate() if t.name in names and t.is_alive()}


def test_one_root_hands_back_the_same_services_and_workers(tmp_path: Path) -> None:
    settings = Settings.load(home=tmp_path / "home")
    services = open_services(settings)
    again = open_services(Settings.load(home=tmp_path / "home"))
    assert again is services
    assert again.jobs is services.jobs
    assert again.deployments is services.deployments
    assert again.scheduler is services.scheduler
    assert again.hosting is services.hosting
    assert services.environments is services.jobs.environments
    # The workers work on the root's own services, not on copies.
    assert services.scheduler.jobs is services.jobs
    assert services.hosting.service is services.deployments
    assert services.hosting.jobs is services.jobs
    assert services.jobs.auth is services.auth
    assert services.deployments.registry is services.registry


def test_each_store_has_its_own_workers_and_close_stops_them(tmp_path: Path) -> None:
    before = _worker_threads()
    first = open_services(Settings.load(home=tmp_path / "one"))
    second = open_services(Settings.load(home=tmp_path / "two"))
    assert first is not second
    assert first.scheduler is not second.scheduler
    assert first.hosting is not second.hosting

    one = first.scheduler.ensure_started()
    assert first.scheduler.ensure_started() is one  # a second start: the running one
    two = second.scheduler.ensure_started()
    assert one is not two and one.jobs is first.jobs and two.jobs is second.jobs
    supervisor = first.hosting.start()
    assert first.hosting.start() is supervisor
    assert second.hosting.supervisor is None
    started = _worker_threads() - before
    assert len(started) == 4  # two schedulers, one supervisor with its lease thread
    assert first.scheduler.running and second.scheduler.running and supervisor.running

    first.close()
    assert not first.scheduler.running and first.hosting.supervisor is None
    assert not one.running and not supervisor.running
    assert second.scheduler.running  # the other store's worker goes on
    alive = _worker_threads() - before
    assert alive == {two._thread}

    close_all()
    assert not second.scheduler.running
    assert _worker_threads() - before == set()
    assert open_keys() == frozenset()
    assert open_services(Settings.load(home=tmp_path / "one")) is not first


def test_the_server_lifespan_starts_and_stops_both_workers(tmp_path: Path) -> None:
    settings = Settings.load(home=tmp_path / "home", public_url="http://127.0.0.1:9")
    services = open_services(settings)
    app = create_app(settings)
    assert app.state.services is services
    assert not services.scheduler.running and services.hosting.supervisor is None
    seen: list[bool] = []

    async def serve_once() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
                assert (await client.get("/health")).status_code == 200
            current = services.scheduler.current
            supervisor = services.hosting.supervisor
            seen.append(services.scheduler.running)
            seen.append(current is not None and current.endpoint.url == "http://127.0.0.1:9")
            seen.append(supervisor is not None and supervisor.running)

    asyncio.run(serve_once())
    assert seen == [True, True, True]
    assert not services.scheduler.running
    assert services.hosting.supervisor is None
