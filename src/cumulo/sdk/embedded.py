"""``EmbeddedTransport``: a workspace home answered in this process by the services themselves.

The one SDK module that imports ``cumulo.services`` (an import-linter contract
holds the rest of the SDK to that). Its sub-clients are the services, with the
signatures of their HTTP twins in ``sdk/http/``: ``tracking`` is the
``TrackingService``, ``jobs`` the ``JobService``, ``models`` the
``RegistryService``, ``endpoints`` the ``DeploymentService``, ``sweeps``
the ``SweepService``, ``datasets`` the ``DatasetService`` and ``pipelines`` the
``PipelineService``. What a server
does for its clients, this process does for itself: it runs queued jobs once it
submits or waits for one, and serves endpoints once it deploys one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cumulo.core.settings import Settings
from cumulo.services.context import Services, open_services

if TYPE_CHECKING:  # each service is built, and its module loaded, where it is first used
    from cumulo.services.datasets import DatasetService
    from cumulo.services.deployments import DeploymentService
    from cumulo.services.jobs import JobService
    from cumulo.services.pipelines import PipelineService
    from cumulo.services.registry import RegistryService
    from cumulo.services.sweeps import SweepService
    from cumulo.services.tracking import TrackingService


class EmbeddedTransport:
    """The services over ``settings``' stores (shared by every workspace of this process)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services: Services = open_services(settings)

    @property
    def tracking(self) -> TrackingService:
        return self.services.tracking

    @property
    def jobs(self) -> JobService:
        return self.services.jobs

    @property
    def models(self) -> RegistryService:
        return self.services.registry

    @property
    def endpoints(self) -> DeploymentService:
        return self.services.deployments

    @property
    def sweeps(self) -> SweepService:
        return self.services.sweeps

    @property
    def datasets(self) -> DatasetService:
        return self.services.datasets

    @property
    def pipelines(self) -> PipelineService:
        return self.services.pipelines

    def serving_url(self) -> str:
        """Endpoints are served by this process from now on, while it lives."""
        return self.services.hosting.serve_embedded()

    def host_jobs(self) -> None:
        """Queued jobs run, and sweeps and pipelines are driven, from this process from now
        on, while it lives."""
        self.services.scheduler.ensure_started()
        self.services.sweeper.ensure_started()
        self.services.pipeliner.ensure_started()

    def __repr__(self) -> str:
        return f"EmbeddedTransport({self.settings.database_url!r})"
