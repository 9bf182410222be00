"""The agent's link to the store, and a pool node's queue: how a job's agent on this
machine (or embedded) reaches the workspace.

The scheduler names ``StoreLink`` in the agent's environment (see
``cumulo.compute.agent``); the agent builds it and runs its job through it.
"""

from __future__ import annotations

import os
import time
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx

from cumulo.compute.agent import AgentLink
from cumulo.compute.base import host_id
from cumulo.compute.environments import Log
from cumulo.compute.runner import JobChannel
from cumulo.core.errors import CumuloError, EnvironmentBuildError, InvalidState
from cumulo.core.jobs import EnvironmentInfo, JobInfo
from cumulo.core.settings import Settings, parse_urls
from cumulo.core.status import RunStatus
from cumulo.services.context import open_services
from cumulo.services.gpus import GpuGate
from cumulo.services.jobs import JobService, ServiceChannel
from cumulo.services.scheduler import Endpoint, prepare


class StoreLink(AgentLink):
    """An agent that opens the store itself: its job's reports go through ``JobService``."""

    def __init__(self) -> None:
        self.settings = Settings.load()

    @cached_property
    def jobs(self) -> JobService:
        return open_services(self.settings).jobs

    def warm(self) -> None:
        _ = self.jobs

    def channel(self, workspace: str, run_id: str) -> JobChannel:
        return ServiceChannel(self.jobs, workspace, run_id)

    def build_env(self, env_def: dict[str, Any], log: Log) -> str:
        """Build the environment, recording its status and log with it."""
        return self.jobs.environments.build(EnvironmentInfo.from_dict(env_def), log)

    def node_queue(self, workspace: str, target: str, node_id: str) -> ServiceNodeQueue:
        return ServiceNodeQueue(self.jobs, workspace, target, node_id, node_endpoint(self.settings))


def node_endpoint(settings: Settings) -> Endpoint:
    """A pool node's service: its first address, and every one it may find a server at."""
    return Endpoint(
        os.environ.get("CUMULO_URL"),
        issue_tokens=settings.auth == "token",
        urls=parse_urls(os.environ.get("CUMULO_URLS", "")),
    )


class ServiceNodeQueue:
    """A pool node's side of the store (``cumulo.compute.pool.NodeQueue``)."""

    def __init__(
        self, jobs: JobService, workspace: str, target: str, node_id: str, endpoint: Endpoint
    ) -> None:
        self.jobs = jobs
        self.workspace = workspace
        self.target = target
        self.node_id = node_id
        self.endpoint = endpoint
        self.lease_ms = int(jobs.settings.lease_seconds * 1000)
        self.host = host_id(jobs.settings.advertise_host)
        self._kind = ""
        self._checked_at = 0.0
        self._gate = GpuGate(jobs, node_id)  # this machine's GPUs, shared with its other jobs

    def set_state(self, state: str, run_id: str | None = None) -> None:
        self.jobs.store.update_node(
            self.node_id,
            state=state,
            run_id=run_id,
            clear_run=run_id is None,
            pid=os.getpid(),
            host=self.host,
        )

    def beat(self, busy: str | None) -> None:
        self.jobs.store.update_node(self.node_id)
        if busy:
            self.jobs.renew_leases(self.node_id, self.lease_ms, [busy])

    def idle_seconds(self) -> float | None:
        try:
            info = self.jobs.get_compute_target(self.workspace, self.target)
        except CumuloError:
            return None  # the target was deleted
        self._kind = info.kind
        return float(info.config["idle_seconds_before_scaledown"])

    def server_gone(self) -> bool:
        """True when no address of the service answers any more.

        A node outlives a server that died (one shutting down stops its nodes),
        and its jobs report to any server of the service. Once none answers, jobs
        it took would report to dead addresses: it stops instead, and the next
        server's scheduler starts nodes that report to it.
        """
        urls = self.endpoint.urls or ((self.endpoint.url,) if self.endpoint.url else ())
        if not urls or time.monotonic() - self._checked_at < 2.0:
            return False
        self._checked_at = time.monotonic()
        return not any(_answers(url) for url in urls)

    def take(self) -> JobInfo | None:
        return self._gate.lease(
            lambda exclude: self.jobs.lease_next(
                self.node_id,
                self.lease_ms,
                [self._kind],
                workspace=self.workspace,
                target=self.target,
                node=self.node_id,
                exclude=exclude,
            )
        )

    def prepare(self, job: JobInfo) -> tuple[Path, dict[str, Any]] | None:
        jobs = self.jobs
        try:
            jobs.set_job_status(job.workspace, job.run_id, RunStatus.PREPARING.value)
            workdir, spec, _agent = prepare(jobs, job, self.endpoint, build_here=True)
            jobs.set_job_status(job.workspace, job.run_id, RunStatus.STARTING.value)
        except EnvironmentBuildError as exc:
            error = {"code": "EnvironmentBuildFailed", "message": exc.message}
            jobs.end(job, RunStatus.FAILED, error)
            return None
        except InvalidState:
            jobs.end(job, RunStatus.CANCELED, {"code": "Canceled", "message": "Canceled."})
            return None
        except CumuloError as exc:
            jobs.end(job, RunStatus.FAILED, {"code": "StartFailed", "message": exc.message})
            return None
        return workdir, spec

    def channel(self, job: JobInfo) -> JobChannel:
        return ServiceChannel(self.jobs, job.workspace, job.run_id)

    def record_handle(self, job: JobInfo, handle: dict[str, Any]) -> bool:
        return self.jobs.record_handle(job, handle)

    def release(self, job: JobInfo) -> None:
        self.jobs.release(job, self.node_id)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url.rstrip("/") + "/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
