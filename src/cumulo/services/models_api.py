"""``ModelsApi``: the registry and endpoint calls of the SDK's ``Model`` and ``Endpoint``.

It is the embedded side of ``sdk.transport.ModelTransport`` (``HttpTransport``
is the other side, and the server's ``/models`` and ``/endpoints`` routes call
these same methods). Registration creates the model on first use; a
version's properties, framework and datasets travel as reserved tags
(``cumulo.property/<key>``, ``cumulo.framework``, ``cumulo.datasets``), so
they are searchable like any tag and are set once, at registration.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import IO, Any

from cumulo.core.deployments import DeploymentInfo, EndpointInfo
from cumulo.core.entities import FileInfo, ModelVersionInfo
from cumulo.core.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from cumulo.core.search import Clause, OrderBy
from cumulo.services.context import Services

PROPERTY_TAG = "cumulo.property/"
FRAMEWORK_TAG = "cumulo.framework"
DATASETS_TAG = "cumulo.datasets"
RESERVED = (PROPERTY_TAG, FRAMEWORK_TAG, DATASETS_TAG)


class ModelsApi:
    """Registry and endpoint calls answered in this process."""

    def __init__(self, services: Services, embedded: bool = False) -> None:
        """``embedded``: the SDK's in-process side, which serves endpoints from this process
        once it deploys one (a server hosts them from its own lifespan instead)."""
        self.services = services
        self.embedded = embedded
        self.registry = services.registry
        self.deployments = services.deployments

    # -------------------------------------------------------------- registry
    def register_version(
        self,
        workspace: str,
        name: str,
        *,
        local_dir: str | Path | None = None,
        run_id: str | None = None,
        path: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        user: str = "",
    ) -> ModelVersionInfo:
        """The next version of ``name`` (created on first use) from a folder or a run's files."""
        with contextlib.suppress(AlreadyExists, Conflict):
            self.registry.create_model(workspace, name, user=user)
        if (local_dir is None) == (run_id is None):
            raise InvalidInput("Register from a local folder or from a run's files, not both.")
        return self.registry.create_version(
            workspace,
            name,
            run_id=run_id,
            path=path if run_id is not None else None,
            local_dir=local_dir,
            description=description,
            tags=tags,
            user=user,
        )

    def get_version(
        self, workspace: str, name: str, version: int | None = None, alias: str | None = None
    ) -> ModelVersionInfo:
        return self.registry.resolve_version(workspace, name, version, alias)

    def list_versions(
        self,
        workspace: str,
        name: str | None = None,
        tags: dict[str, str] | None = None,
        run_id: str | None = None,
        latest: bool = False,
    ) -> list[ModelVersionInfo]:
        """Versions (newest first per name); ``latest`` keeps only the newest of each name."""
        clauses = [Clause("attribute", "name", "=", name)] if name else []
        clauses += [Clause("tag", k, "=", str(v)) for k, v in (tags or {}).items()]
        if run_id:
            clauses.append(Clause("attribute", "run_id", "=", run_id))
        order = [OrderBy("attribute", "name"), OrderBy("attribute", "version", False)]
        out: list[ModelVersionInfo] = []
        token: str | None = None
        while True:
            page, token = self.registry.search_versions(workspace, clauses, order, 10_000, token)
            out.extend(v for v in page if v.status == "READY")
            if token is None:
                break
        if latest:
            seen: set[str] = set()
            out = [v for v in out if not (v.name in seen or seen.add(v.name))]  # type: ignore[func-returns-value]
        return out

    def set_alias(self, workspace: str, name: str, alias: str, version: int) -> None:
        self.registry.set_alias(workspace, name, alias, version)

    def delete_alias(self, workspace: str, name: str, alias: str) -> None:
        self.registry.delete_alias(workspace, name, alias)

    def set_version_tags(
        self, workspace: str, name: str, version: int, tags: dict[str, Any]
    ) -> ModelVersionInfo:
        for key, value in tags.items():
            if str(key).startswith(RESERVED):
                raise InvalidInput(
                    f"Tag {key!r} uses a reserved prefix; it is set at registration."
                )
            self.registry.set_version_tag(workspace, name, version, key, value)
        return self.registry.get_version(workspace, name, version)

    def delete_version_tags(
        self, workspace: str, name: str, version: int, keys: list[str]
    ) -> ModelVersionInfo:
        for key in keys:
            self.registry.delete_version_tag(workspace, name, version, key)
        return self.registry.get_version(workspace, name, version)

    def delete_version(self, workspace: str, name: str, version: int) -> None:
        """Delete one version (and the model itself once it has no versions left)."""
        for ep in self.deployments.list_endpoints(workspace):
            for dep in ep.deployments:
                if any(m["name"] == name and m["version"] == version for m in dep.models):
                    raise Conflict(
                        f"Version {version} of {name!r} is served by endpoint {ep.name!r} "
                        f"(deployment {dep.name!r}); delete or update that deployment first."
                    )
        self.registry.delete_version(workspace, name, version)
        if not self.list_versions(workspace, name):
            with contextlib.suppress(NotFound):
                self.registry.delete_model(workspace, name)

    def list_version_files(self, workspace: str, name: str, version: int) -> list[FileInfo]:
        return self.registry.list_version_files(workspace, name, version, recursive=True)

    def open_version_file(self, workspace: str, name: str, version: int, path: str) -> IO[bytes]:
        return self.registry.open_version_file(workspace, name, version, path)

    # ------------------------------------------------------------- endpoints
    def serving_url(self) -> str:
        """Where this workspace's endpoints answer: hosted by this process (embedded)."""
        return self.services.hosting.serve_embedded()

    def create_endpoint(
        self,
        workspace: str,
        name: str,
        auth: str = "key",
        description: str = "",
        tags: dict[str, Any] | None = None,
    ) -> EndpointInfo:
        return self.deployments.create_endpoint(workspace, name, auth, description, tags)

    def get_endpoint(self, workspace: str, name: str) -> EndpointInfo:
        return self.deployments.get_endpoint(workspace, name)

    def list_endpoints(self, workspace: str) -> list[EndpointInfo]:
        return self.deployments.list_endpoints(workspace)

    def update_endpoint(
        self,
        workspace: str,
        name: str,
        traffic: dict[str, Any] | None = None,
        mirror_traffic: dict[str, Any] | None = None,
        auth: str | None = None,
        description: str | None = None,
        tags: dict[str, Any] | None = None,
    ) -> EndpointInfo:
        return self.deployments.update_endpoint(
            workspace, name, traffic, mirror_traffic, auth, description, tags
        )

    def delete_endpoint(self, workspace: str, name: str) -> None:
        self.deployments.delete_endpoint(workspace, name)

    def get_keys(self, workspace: str, name: str) -> dict[str, str]:
        return self.deployments.get_keys(workspace, name)

    def regenerate_key(self, workspace: str, name: str, which: str = "primary") -> dict[str, str]:
        return self.deployments.regenerate_key(workspace, name, which)

    def upload_code(self, workspace: str, endpoint: str, stream: IO[bytes]) -> str:
        return self.deployments.upload_code(workspace, endpoint, stream)

    def create_deployment(
        self,
        workspace: str,
        endpoint: str,
        name: str,
        models: list[dict[str, Any]],
        config: dict[str, Any] | None = None,
    ) -> DeploymentInfo:
        info = self.deployments.create_deployment(workspace, endpoint, name, models, config)
        if self.embedded:
            self.services.hosting.serve_embedded()
        return info

    def update_deployment(
        self,
        workspace: str,
        endpoint: str,
        name: str,
        models: list[dict[str, Any]] | None = None,
        config: dict[str, Any] | None = None,
    ) -> DeploymentInfo:
        info = self.deployments.update_deployment(workspace, endpoint, name, models, config)
        if self.embedded:
            self.services.hosting.serve_embedded()
        return info

    def delete_deployment(self, workspace: str, endpoint: str, name: str) -> None:
        self.deployments.delete_deployment(workspace, endpoint, name)

    def get_logs(
        self, workspace: str, endpoint: str, deployment: str | None = None, tail: int = 200
    ) -> str:
        return self.deployments.get_logs(workspace, endpoint, deployment, tail)

    def get_metrics(
        self, workspace: str, endpoint: str, deployment: str | None = None, minutes: int = 60
    ) -> list[dict[str, Any]]:
        self._flush()
        return self.deployments.get_metrics(workspace, endpoint, deployment, minutes)

    def get_request_logs(
        self, workspace: str, endpoint: str, deployment: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        self._flush()
        return self.deployments.get_request_logs(workspace, endpoint, deployment, limit)

    def _flush(self) -> None:
        """Metrics counted by this process's router are stored before they are read."""
        found = self.services.hosting.supervisor
        if found is not None:
            found.flush()
