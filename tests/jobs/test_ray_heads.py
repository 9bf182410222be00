"""A managed Ray head is one per cluster (workspace + target), recorded in the shared
store: servers over one database, each with a home of its own, share it."""

from __future__ import annotations

import dataclasses
import os
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.jobs.conftest import wait_until

from cumulo import ComputeTarget, RayCluster, Workspace
from cumulo.compute.base import host_id
from cumulo.core.entities import now_ms
from cumulo.services.context import Services, open_services
from cumulo.services.deployments import DeploymentService
from cumulo.services.jobs import JobService
from cumulo.services.ray_heads import StoreHeadRegistry
from cumulo.services.scheduler import Scheduler
from cumulo.services.supervisor import Hosting, Supervisor
from cumulo.store.deployments import DeploymentStore
from cumulo.store.ray_heads import RayHeadStore


def _server(services: Services, home: Path) -> JobService:
    """The job service of a server with home ``home`` over the same database."""
    settings = dataclasses.replace(services.settings, home=home)
    return JobService(
        settings, services.database, services.tracking, services.auth, services.datasets
    )


def _hosting(services: Services, jobs: JobService) -> Hosting:
    """The endpoint hosting of the server whose job service is ``jobs``."""
    store = DeploymentStore(services.database)
    deployments = DeploymentService(
        store, services.registry, services.tracking.artifacts, jobs.settings
    )
    return Hosting(deployments, services.auth, jobs)


def _ray_starts() -> set[int]:
    """The ``ray start --head`` processes that this test process started."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"start" in argv and b"--head" in argv:
            found.add(int(entry.name))
    return found


@pytest.mark.slow
def test_servers_with_their_own_homes_share_one_head_and_take_it_over(
    ws: Workspace, tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    from cumulo.compute.ray import stop_managed_heads

    ComputeTarget.create(ws, "shared-ray", RayCluster.managed(num_cpus=1))
    assert ws._settings is not None
    services = open_services(ws._settings)
    heads = RayHeadStore(services.database)

    def server(name: str) -> Scheduler:
        """A scheduler as a server with home ``name`` runs it, over the same database."""
        return Scheduler(_server(services, tmp_path / name), owner=name, lease_seconds=3.0)

    first, second = server("first"), server("second")
    before = _ray_starts()
    try:
        with ThreadPoolExecutor(2) as pool:
            addresses = list(
                pool.map(lambda s: s.backend(ws.name, "shared-ray").address, [first, second])
            )
        started = _ray_starts() - before
        assert len(started) == 1, "each server started a head"
        assert addresses[0] == addresses[1]
        address = addresses[0]
        assert address.startswith("http://127.0.0.1:")  # no advertise host: loopback
        record = heads.read(ws.name, "shared-ray")
        assert record is not None and record["address"] == address
        owner = record["owner"]
        assert owner in ("first", "second") and record["pid"] in started

        # Its owner renews the lease while it runs the head.
        time.sleep(4.0)
        record = heads.read(ws.name, "shared-ray")
        assert record is not None and record["owner"] == owner
        assert record["lease_expires_at"] > now_ms()

        # The owner goes (its server stops): the head runs on, the lease runs out, and
        # the other server takes the head over instead of starting one.
        gone, other = (first, second) if owner == "first" else (second, first)
        gone.stop()
        wait_until(
            lambda: heads.read(ws.name, "shared-ray")["lease_expires_at"] < now_ms(),  # type: ignore[index]
            30,
            "the owner's lease to run out",
        )
        assert other.backend(ws.name, "shared-ray").address == address
        record = heads.read(ws.name, "shared-ray")
        assert record is not None and record["owner"] == other.owner
        assert _ray_starts() - before == started
        time.sleep(4.0)
        record = heads.read(ws.name, "shared-ray")
        assert record is not None and record["owner"] == other.owner
        assert record["lease_expires_at"] > now_ms()
        with urllib.request.urlopen(address + "/api/version", timeout=5) as r:
            assert r.status == 200
    finally:
        stop_managed_heads()
        first.stop()
        second.stop()
    assert heads.read(ws.name, "shared-ray") is None


def test_deleting_a_target_forgets_its_head_from_a_server_that_never_used_it(
    ws: Workspace, tmp_path: Path
) -> None:
    ComputeTarget.create(ws, "gone-ray", RayCluster.managed(num_cpus=1))
    assert ws._settings is not None
    services = open_services(ws._settings)
    heads = RayHeadStore(services.database)
    assert heads.claim(ws.name, "gone-ray", "another-server", 60_000)

    other = _server(services, tmp_path / "other")  # no scheduler of its own made a backend
    other.delete_compute_target(ws.name, "gone-ray")
    # Gone from the store: the owner's lease renewal finds it so and stops its head.
    assert heads.read(ws.name, "gone-ray") is None


def test_the_replica_supervisor_uses_the_head_the_store_records(
    ws: Workspace, tmp_path: Path
) -> None:
    ComputeTarget.create(ws, "serve-ray", RayCluster.managed(num_cpus=1))
    assert ws._settings is not None
    services = open_services(ws._settings)
    heads = RayHeadStore(services.database)
    # Another server's scheduler runs the cluster's head (nothing listens there: the
    # supervisor only reads the record, it neither reaches nor starts a head).
    address = "http://127.0.0.1:9"
    here = host_id(services.settings.advertise_host)
    owner, ttl, name = "another-server", 60_000, ws.name
    assert heads.claim(name, "serve-ray", owner, ttl)
    assert heads.publish(name, "serve-ray", owner, ttl, address=address, host=here, pid=1, start=0)

    other = _server(services, tmp_path / "other")
    supervisor = Supervisor(_hosting(services, other))
    scheduler = Scheduler(other)
    before = _ray_starts()
    try:
        backend, _port = supervisor._ray_target(ws.name, "serve-ray")
        assert backend.address == address
        assert _ray_starts() == before
        registry = backend.heads
        assert isinstance(registry, StoreHeadRegistry)
        assert (registry.workspace, registry.target) == (ws.name, "serve-ray")
        assert registry.owner == supervisor._head_owner
        # The same lease and advertise host as the scheduler's registry of the target.
        theirs = scheduler.backend(ws.name, "serve-ray").heads  # type: ignore[attr-defined]
        assert registry.lease_ms == theirs.lease_ms == int(other.settings.lease_seconds * 1000)
        assert registry.advertise_host == theirs.advertise_host == other.settings.advertise_host
        record = heads.read(ws.name, "serve-ray")
        assert record is not None and record["owner"] == owner
    finally:
        scheduler.stop()
        supervisor._executor.shutdown()
        heads.release(ws.name, "serve-ray", None)
