"""Open the services for a settings object, once per process and store."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from cumulo.core.settings import Settings
from cumulo.services.auth import AuthService
from cumulo.services.registry import RegistryService
from cumulo.services.tracking import TrackingService
from cumulo.store.artifacts import ArtifactStore
from cumulo.store.audit import AuditStore
from cumulo.store.db import Database
from cumulo.store.logged_models import LoggedModelStore
from cumulo.store.metadata import MetadataStore
from cumulo.store.registry import RegistryStore
from cumulo.store.tokens import TokenStore


@dataclass
class Services:
    settings: Settings
    database: Database
    tracking: TrackingService
    registry: RegistryService
    auth: AuthService

    def close(self) -> None:
        self.database.dispose()


_open: dict[tuple[str, str], Services] = {}
_lock = threading.Lock()


def open_services(settings: Settings) -> Services:
    """Services over the settings' stores; engines are shared within a process."""
    with _lock:
        found = _open.get(settings.key)
        if found is not None:
            return found
        database = Database(settings.database_url)
        artifacts = ArtifactStore(settings.artifact_root, settings.s3_endpoint_url)
        tracking = TrackingService(MetadataStore(database), artifacts)
        services = Services(
            settings=settings,
            database=database,
            tracking=tracking,
            registry=RegistryService(RegistryStore(database), LoggedModelStore(database), tracking),
            auth=AuthService(TokenStore(database), tracking.store, AuditStore(database)),
        )
        _open[settings.key] = services
        return services


def close_all() -> None:
    with _lock:
        for services in _open.values():
            services.close()
        _open.clear()
