"""The composition root: every service and background worker of a process, per store.

``open_services(settings)`` builds them once per process and store (two
settings with one ``key`` share them): tracking, registry, deployments, datasets, jobs,
environments and auth over one database engine, and the two background
workers, each with ``start()``/``stop()``:

- ``scheduler``: the job scheduler (``services/scheduler.py``), started by the
  server's lifespan, or by an embedded process on its first submit;
- ``hosting``: the replica supervisor and endpoint router
  (``services/supervisor.py``), started by the server's lifespan, or by an
  embedded process when it deploys or scores;
- ``sweeper``: the sweep driver (``services/sweeps.py``), started with the
  scheduler;
- ``pipeliner``: the pipeline driver and schedule firer
  (``services/pipeline_driver.py``), started with the scheduler;
- ``notebooks``: the JupyterLab servers the server starts per workspace
  (``services/notebooks.py``), stopped by the server's lifespan.

``Services.close()`` stops the workers and notebook servers and closes the engine.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Collection
from dataclasses import dataclass

from cumulo.core.settings import Settings
from cumulo.services.auth import AuthService
from cumulo.services.datasets import DatasetService
from cumulo.services.deployments import DeploymentService
from cumulo.services.environments import EnvironmentService
from cumulo.services.jobs import JobService
from cumulo.services.notebooks import NotebookService
from cumulo.services.pipeline_driver import PipelineWorker
from cumulo.services.pipelines import PipelineService
from cumulo.services.registry import RegistryService
from cumulo.services.scheduler import SchedulerWorker
from cumulo.services.supervisor import Hosting
from cumulo.services.sweeps import SweepService, SweepWorker
from cumulo.services.tracking import TrackingService
from cumulo.store.artifacts import ArtifactStore
from cumulo.store.audit import AuditStore
from cumulo.store.datasets import DatasetStore
from cumulo.store.db import Database
from cumulo.store.deployments import DeploymentStore
from cumulo.store.logged_models import LoggedModelStore
from cumulo.store.metadata import MetadataStore
from cumulo.store.registry import RegistryStore
from cumulo.store.tokens import TokenStore


@dataclass(eq=False)
class Services:
    settings: Settings
    database: Database
    tracking: TrackingService
    registry: RegistryService
    auth: AuthService
    jobs: JobService
    deployments: DeploymentService
    datasets: DatasetService
    scheduler: SchedulerWorker
    hosting: Hosting
    sweeps: SweepService
    sweeper: SweepWorker
    pipelines: PipelineService
    pipeliner: PipelineWorker
    notebooks: NotebookService

    @property
    def environments(self) -> EnvironmentService:
        return self.jobs.environments

    def stop_workers(self, stop_nodes: bool = False) -> None:
        """Stop the scheduler (with ``stop_nodes``, its pool nodes too) and the hosting."""
        self.pipeliner.stop()
        self.sweeper.stop()
        self.scheduler.stop(stop_nodes=stop_nodes)
        self.hosting.stop()

    def close(self, stop_nodes: bool = False) -> None:
        self.notebooks.stop_all()
        self.stop_workers(stop_nodes)
        self.database.dispose()


def build_services(settings: Settings) -> Services:
    """A new root over the settings' stores; processes use ``open_services``."""
    database = Database(settings.database_url)
    artifacts = ArtifactStore(settings.artifact_root, settings.s3_endpoint_url)
    tracking = TrackingService(MetadataStore(database), artifacts)
    registry = RegistryService(RegistryStore(database), LoggedModelStore(database), tracking)
    auth = AuthService(TokenStore(database), tracking.store, AuditStore(database))
    deployments = DeploymentService(DeploymentStore(database), registry, artifacts, settings)
    datasets = DatasetService(
        DatasetStore(database), artifacts, tracking, registry, deployments, settings.home
    )
    jobs = JobService(settings, database, tracking, auth, datasets=datasets)
    sweeps = SweepService(jobs)
    pipelines = PipelineService(jobs)
    return Services(
        settings=settings,
        database=database,
        tracking=tracking,
        registry=registry,
        auth=auth,
        jobs=jobs,
        deployments=deployments,
        datasets=datasets,
        scheduler=SchedulerWorker(jobs),
        hosting=Hosting(deployments, auth, jobs),
        sweeps=sweeps,
        sweeper=SweepWorker(sweeps),
        pipelines=pipelines,
        pipeliner=PipelineWorker(pipelines),
        notebooks=NotebookService(settings.home, tracking, auth),
    )


_open: dict[tuple[str, str], Services] = {}
_lock = threading.Lock()


def open_services(settings: Settings) -> Services:
    """The services over the settings' stores, built once per process and store."""
    with _lock:
        found = _open.get(settings.key)
        if found is None:
            found = _open[settings.key] = build_services(settings)
        return found


def open_keys() -> frozenset[tuple[str, str]]:
    """The settings keys of the services objects open in this process."""
    with _lock:
        return frozenset(_open)


def close_all(stop_nodes: bool = False, keep: Collection[tuple[str, str]] = ()) -> None:
    """Close every open services object (but those of the settings keys in ``keep``):
    its workers stop (with ``stop_nodes``, the pool nodes its scheduler started too)
    and its engine closes."""
    with _lock:
        found = [_open.pop(key) for key in list(_open) if key not in keep]
    for services in found:
        services.close(stop_nodes)


def _stop_hosting() -> None:
    """At exit no replica outlives its process; jobs go on (their agents report alone)."""
    with _lock:
        found = list(_open.values())
    for services in found:
        services.hosting.stop()


atexit.register(_stop_hosting)
