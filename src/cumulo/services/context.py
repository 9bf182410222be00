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

Each part is built, and its modules imported, on its first use (once, under the
services' lock): a server opens the store and the tracking and auth services before
it answers ``/health``, and the rest (jobs, the workers...) only after, or when a
request needs them; a command that reads runs never imports the scheduler.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from cumulo.core.settings import Settings

if TYPE_CHECKING:
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
    from cumulo.store.db import Database

T = TypeVar("T")


class _Part(Generic[T]):
    """A part of ``Services``, built by ``build`` on its first use, once: later reads
    find it in the instance's ``__dict__`` (this descriptor defines no ``__set__``)."""

    def __init__(self, build: Callable[[Services], T]) -> None:
        self._build = build
        self._name = build.__name__

    @overload
    def __get__(self, services: None, owner: type[Any]) -> _Part[T]: ...
    @overload
    def __get__(self, services: Services, owner: type[Any]) -> T: ...
    def __get__(self, services: Services | None, owner: type[Any]) -> _Part[T] | T:
        if services is None:
            return self
        with services._lock:
            built = services.__dict__.get(self._name, _UNBUILT)
            if built is _UNBUILT:
                built = services.__dict__[self._name] = self._build(services)
        return built  # type: ignore[no-any-return]

    def built(self, services: Services) -> bool:
        return self._name in services.__dict__


_UNBUILT = object()


class Services:
    """The services and workers over one store (``open_services`` gives a process's)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()

    @_Part
    def database(self) -> Database:
        from cumulo.store.db import Database

        return Database(self.settings.database_url)

    @_Part
    def artifacts(self) -> ArtifactStore:
        from cumulo.store.artifacts import ArtifactStore

        return ArtifactStore(self.settings.artifact_root, self.settings.s3_endpoint_url)

    @_Part
    def tracking(self) -> TrackingService:
        from cumulo.services.tracking import TrackingService
        from cumulo.store.metadata import MetadataStore

        return TrackingService(MetadataStore(self.database), self.artifacts)

    @_Part
    def registry(self) -> RegistryService:
        return self._models[0]

    @_Part
    def auth(self) -> AuthService:
        from cumulo.services.auth import AuthService
        from cumulo.store.audit import AuditStore
        from cumulo.store.tokens import TokenStore

        database = self.database
        return AuthService(TokenStore(database), self.tracking.store, AuditStore(database))

    @_Part
    def deployments(self) -> DeploymentService:
        return self._models[1]

    @_Part
    def _models(self) -> tuple[RegistryService, DeploymentService]:
        """The registry and the deployment service, built together: the latter guards
        the former (a version an endpoint serves is not deleted)."""
        from cumulo.services.deployments import DeploymentService
        from cumulo.services.registry import RegistryService
        from cumulo.store.deployments import DeploymentStore
        from cumulo.store.logged_models import LoggedModelStore
        from cumulo.store.registry import RegistryStore

        database = self.database
        registry = RegistryService(
            RegistryStore(database), LoggedModelStore(database), self.tracking
        )
        deployments = DeploymentService(
            DeploymentStore(database), registry, self.artifacts, self.settings
        )
        return registry, deployments

    @_Part
    def datasets(self) -> DatasetService:
        from cumulo.services.datasets import DatasetService
        from cumulo.store.datasets import DatasetStore

        return DatasetService(
            DatasetStore(self.database),
            self.artifacts,
            self.tracking,
            self.registry,
            self.deployments,
            self.settings.home,
        )

    @_Part
    def jobs(self) -> JobService:
        from cumulo.services.jobs import JobService

        return JobService(
            self.settings, self.database, self.tracking, self.auth, datasets=self.datasets
        )

    @_Part
    def scheduler(self) -> SchedulerWorker:
        from cumulo.services.scheduler import SchedulerWorker

        return SchedulerWorker(self.jobs)

    @_Part
    def hosting(self) -> Hosting:
        from cumulo.services.supervisor import Hosting

        return Hosting(self.deployments, self.auth, self.jobs)

    @_Part
    def sweeps(self) -> SweepService:
        from cumulo.services.sweeps import SweepService

        return SweepService(self.jobs)

    @_Part
    def sweeper(self) -> SweepWorker:
        from cumulo.services.sweeps import SweepWorker

        return SweepWorker(self.sweeps)

    @_Part
    def pipelines(self) -> PipelineService:
        from cumulo.services.pipelines import PipelineService

        return PipelineService(self.jobs)

    @_Part
    def pipeliner(self) -> PipelineWorker:
        from cumulo.services.pipeline_driver import PipelineWorker

        return PipelineWorker(self.pipelines)

    @_Part
    def notebooks(self) -> NotebookService:
        from cumulo.services.notebooks import NotebookService

        return NotebookService(self.settings.home, self.tracking, self.auth)

    @property
    def environments(self) -> EnvironmentService:
        return self.jobs.environments

    def built(self, name: str) -> bool:
        """Whether part ``name`` (``"scheduler"``, ``"hosting"``...) was built yet."""
        part = type(self).__dict__[name]
        assert isinstance(part, _Part)
        return part.built(self)

    def stop_workers(self, stop_nodes: bool = False) -> None:
        """Stop the scheduler (with ``stop_nodes``, its pool nodes too) and the hosting
        (those that were built: one never built never ran)."""
        if self.built("pipeliner"):
            self.pipeliner.stop()
        if self.built("sweeper"):
            self.sweeper.stop()
        if self.built("scheduler"):
            self.scheduler.stop(stop_nodes=stop_nodes)
        if self.built("hosting"):
            self.hosting.stop()

    def close(self, stop_nodes: bool = False) -> None:
        if self.built("notebooks"):
            self.notebooks.stop_all()
        self.stop_workers(stop_nodes)
        if self.built("database"):
            self.database.dispose()


def build_services(settings: Settings) -> Services:
    """A new root over the settings' stores, its database open and migrated (the other
    parts are built on first use); processes use ``open_services``."""
    services = Services(settings)
    services.database  # noqa: B018 - opening it migrates it, or fails here
    return services


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
        if services.built("hosting"):
            services.hosting.stop()


atexit.register(_stop_hosting)
