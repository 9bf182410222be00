"""The seam under the SDK: one ``Transport``, a sub-client per resource.

``transport.tracking``, ``.jobs``, ``.models``, ``.endpoints``, ``.sweeps``,
``.datasets`` and ``.pipelines`` answer the
same calls in-process (``sdk/embedded.py``: the services themselves) or over
HTTP (``sdk/http/``: a client per resource). The SDK and the CLI reach a
workspace only through ``Workspace.transport``. A test holds both sides of
every sub-client to the same signatures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from cumulo.core.datasets import DatasetVersionInfo, DatastoreInfo
from cumulo.core.deployments import DeploymentInfo, EndpointInfo
from cumulo.core.entities import (
    ExperimentInfo,
    FileInfo,
    ModelVersionInfo,
    RunInfo,
    RunPage,
    WorkspaceInfo,
)
from cumulo.core.jobs import ComputeTargetInfo, EnvironmentInfo, JobInfo, LogPage, SnapshotInfo
from cumulo.core.pipelines import PublishedPipelineInfo, ScheduleInfo


class Transport(Protocol):
    """A workspace home's calls, by resource: embedded or on a ``cumulo server``."""

    @property
    def tracking(self) -> TrackingClient: ...
    @property
    def jobs(self) -> JobClient: ...
    @property
    def models(self) -> ModelClient: ...
    @property
    def endpoints(self) -> EndpointClient: ...
    @property
    def sweeps(self) -> SweepClient: ...
    @property
    def datasets(self) -> DatasetClient: ...
    @property
    def pipelines(self) -> PipelineClient: ...

    def serving_url(self) -> str:
        """Where endpoints answer; an embedded home serves them from this process from now on."""
        ...

    def host_jobs(self) -> None:
        """An embedded home runs its queued jobs from this process from now on (a server does)."""
        ...


class TrackingClient(Protocol):
    """Workspaces, experiments, runs, metrics and files (``TrackingService``, ``HttpTracking``)."""

    def create_workspace(
        self, name: str, exist_ok: bool = False, description: str = ""
    ) -> WorkspaceInfo: ...
    def get_workspace(self, name: str) -> WorkspaceInfo: ...
    def list_workspaces(self) -> list[WorkspaceInfo]: ...

    def get_or_create_experiment(self, workspace: str, name: str) -> ExperimentInfo: ...
    def get_experiment(
        self, workspace: str, experiment_id: int | None = None, name: str | None = None
    ) -> ExperimentInfo: ...
    def list_experiments(
        self, workspace: str, include_archived: bool = False, view: str = "active"
    ) -> list[ExperimentInfo]: ...
    def update_experiment(
        self,
        workspace: str,
        experiment_id: int,
        name: str | None = None,
        archived: bool | None = None,
        deleted: bool | None = None,
    ) -> ExperimentInfo: ...
    def delete_experiment(self, workspace: str, experiment_id: int) -> list[str]: ...

    def create_run(
        self,
        workspace: str,
        experiment_id: int,
        display_name: str | None = None,
        parent_id: str | None = None,
        kind: str = "interactive",
        status: str = "Running",
        tags: dict[str, str] | None = None,
        user: str = "",
        compute_target: str | None = None,
        start_time: int | None = None,
    ) -> RunInfo: ...
    def get_run(self, workspace: str, run_id: str) -> RunInfo: ...
    def find_run(self, workspace: str, id_or_start: str) -> RunInfo: ...
    def run_keys(self, workspace: str, experiment_id: int) -> dict[str, list[str]]: ...
    def search_runs(
        self,
        workspace: str,
        experiment_ids: Sequence[int] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
        statuses: Sequence[str] | None = None,
        tags: dict[str, str | None] | None = None,
        parent_id: str | None = None,
        top_level_only: bool = False,
        view: str = "active",
    ) -> RunPage: ...
    def set_run_status(
        self,
        workspace: str,
        run_id: str,
        status: str,
        error: dict[str, Any] | None = None,
        at: int | None = None,
    ) -> RunInfo: ...
    def update_run(
        self,
        workspace: str,
        run_id: str,
        display_name: str | None = None,
        deleted: bool | None = None,
    ) -> RunInfo: ...
    def delete_run(self, workspace: str, run_id: str) -> list[str]: ...

    def log_batch(
        self,
        workspace: str,
        run_id: str,
        metrics: Iterable[Sequence[Any]] | Mapping[str, Sequence[Any]] = (),  # rows or columns
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        records: Iterable[Any] = (),
        batch_id: str | None = None,
    ) -> bool: ...
    def set_tags(self, workspace: str, run_id: str, tags: dict[str, Any]) -> None: ...
    def delete_tags(self, workspace: str, run_id: str, keys: list[str]) -> None: ...
    def add_properties(self, workspace: str, run_id: str, properties: dict[str, Any]) -> None: ...

    def get_metric_history(
        self,
        workspace: str,
        run_id: str,
        key: str,
        start_step: int | None = None,
        end_step: int | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> dict[str, list[Any]]: ...
    def get_run_metrics(self, workspace: str, run_id: str) -> dict[str, Any]: ...

    def upload_artifact(self, workspace: str, run_id: str, path: str, stream: IO[bytes]) -> int: ...
    def list_artifacts(
        self, workspace: str, run_id: str, path: str = "", recursive: bool = False
    ) -> list[FileInfo]: ...
    def open_artifact(self, workspace: str, run_id: str, path: str) -> IO[bytes]: ...
    def artifact_size(self, workspace: str, run_id: str, path: str) -> int: ...


class JobClient(Protocol):
    """Snapshots, environments, compute targets and jobs (``JobService``, ``HttpJobs``)."""

    def take_snapshot(self, workspace: str, source: str | Path) -> SnapshotInfo: ...
    def put_snapshot(self, workspace: str, stream: IO[bytes]) -> SnapshotInfo: ...
    def get_snapshot(self, workspace: str, digest: str) -> SnapshotInfo: ...
    def list_snapshots(self, workspace: str) -> list[SnapshotInfo]: ...
    def open_snapshot(self, workspace: str, digest: str) -> IO[bytes]: ...
    def register_environment(
        self, workspace: str, name: str, spec: dict[str, Any]
    ) -> EnvironmentInfo: ...
    def get_environment(
        self, workspace: str, name: str, version: int | None = None
    ) -> EnvironmentInfo: ...
    def list_environments(self, workspace: str) -> list[EnvironmentInfo]: ...
    def build_environment(
        self, workspace: str, name: str, version: int | None = None, log: Any = None
    ) -> EnvironmentInfo: ...
    def create_compute_target(
        self, workspace: str, name: str, kind: str, config: dict[str, Any] | None = None
    ) -> ComputeTargetInfo: ...
    def get_compute_target(self, workspace: str, name: str) -> ComputeTargetInfo: ...
    def list_compute_targets(self, workspace: str) -> list[ComputeTargetInfo]: ...
    def delete_compute_target(self, workspace: str, name: str) -> None: ...
    def compute_status(self, workspace: str, name: str) -> dict[str, Any]: ...
    def submit_job(
        self,
        workspace: str,
        experiment_id: int,
        config: dict[str, Any],
        *,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        display_name: str | None = None,
        user: str = "",
        priority_: int = 0,
        max_retries_: int = 0,
    ) -> RunInfo: ...
    def get_job(self, workspace: str, run_id: str) -> JobInfo: ...
    def cancel_job(self, workspace: str, run_id: str) -> RunInfo: ...
    def get_logs(
        self, workspace: str, run_id: str, after: int = 0, limit: int = 5000
    ) -> LogPage: ...


class ModelClient(Protocol):
    """Registered model versions (``RegistryService``, ``HttpModels``)."""

    def register_version(
        self,
        workspace: str,
        name: str,
        *,
        local_dir: str | None = None,
        run_id: str | None = None,
        path: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        user: str = "",
    ) -> ModelVersionInfo: ...
    def resolve_version(
        self, workspace: str, name: str, version: Any = None, alias: str | None = None
    ) -> ModelVersionInfo: ...
    def list_versions(
        self,
        workspace: str,
        name: str | None = None,
        tags: dict[str, str] | None = None,
        run_id: str | None = None,
        latest: bool = False,
    ) -> list[ModelVersionInfo]: ...
    def set_alias(self, workspace: str, name: str, alias: str, version: Any) -> None: ...
    def delete_alias(self, workspace: str, name: str, alias: str) -> None: ...
    def set_version_tags(
        self, workspace: str, name: str, version: int, tags: dict[str, Any]
    ) -> ModelVersionInfo: ...
    def delete_version_tags(
        self, workspace: str, name: str, version: int, keys: list[str]
    ) -> ModelVersionInfo: ...
    def unregister_version(self, workspace: str, name: str, version: int) -> None: ...
    def list_version_files(
        self, workspace: str, name: str, version: Any, path: str = "", recursive: bool = False
    ) -> list[FileInfo]: ...
    def open_version_file(
        self, workspace: str, name: str, version: Any, path: str
    ) -> IO[bytes]: ...


class EndpointClient(Protocol):
    """Endpoints, their keys and deployments (``DeploymentService``, ``HttpEndpoints``)."""

    def create_endpoint(
        self,
        workspace: str,
        name: str,
        auth: str = "key",
        description: str = "",
        tags: dict[str, Any] | None = None,
    ) -> EndpointInfo: ...
    def get_endpoint(self, workspace: str, name: str) -> EndpointInfo: ...
    def list_endpoints(self, workspace: str) -> list[EndpointInfo]: ...
    def update_endpoint(
        self,
        workspace: str,
        name: str,
        traffic: dict[str, Any] | None = None,
        mirror_traffic: dict[str, Any] | None = None,
        auth: str | None = None,
        description: str | None = None,
        tags: dict[str, Any] | None = None,
    ) -> EndpointInfo: ...
    def delete_endpoint(self, workspace: str, name: str) -> None: ...
    def get_keys(self, workspace: str, name: str) -> dict[str, str]: ...
    def regenerate_key(
        self, workspace: str, name: str, which: str = "primary"
    ) -> dict[str, str]: ...
    def upload_code(self, workspace: str, endpoint: str, stream: IO[bytes]) -> str: ...
    def create_deployment(
        self,
        workspace: str,
        endpoint: str,
        name: str,
        models: list[dict[str, Any]],
        config: dict[str, Any] | None = None,
    ) -> DeploymentInfo: ...
    def update_deployment(
        self,
        workspace: str,
        endpoint: str,
        name: str,
        models: list[dict[str, Any]] | None = None,
        config: dict[str, Any] | None = None,
    ) -> DeploymentInfo: ...
    def delete_deployment(self, workspace: str, endpoint: str, name: str) -> None: ...
    def get_logs(
        self, workspace: str, endpoint: str, deployment: str | None = None, tail: int = 200
    ) -> str: ...
    def get_metrics(
        self, workspace: str, endpoint: str, deployment: str | None = None, minutes: int = 60
    ) -> list[dict[str, Any]]: ...
    def get_request_logs(
        self, workspace: str, endpoint: str, deployment: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]: ...


class SweepClient(Protocol):
    """Hyperparameter sweeps (``SweepService``, ``HttpSweeps``)."""

    def submit_sweep(
        self,
        workspace: str,
        experiment_id: int,
        spec: dict[str, Any],
        config: dict[str, Any],
        *,
        tags: dict[str, str] | None = None,
        display_name: str | None = None,
        user: str = "",
    ) -> RunInfo: ...
    def get_sweep(self, workspace: str, run_id: str) -> dict[str, Any]: ...
    def cancel_sweep(self, workspace: str, run_id: str) -> RunInfo: ...


class DatasetClient(Protocol):
    """Datastores, dataset versions, lineage and drift (``DatasetService``, ``HttpDatasets``)."""

    def register_datastore(
        self,
        workspace: str,
        name: str,
        kind: str,
        config: dict[str, Any],
        credentials: dict[str, str] | None = None,
    ) -> DatastoreInfo: ...
    def get_datastore(self, workspace: str, name: str) -> DatastoreInfo: ...
    def list_datastores(self, workspace: str) -> list[DatastoreInfo]: ...
    def get_default_datastore(self, workspace: str) -> DatastoreInfo: ...
    def set_default_datastore(self, workspace: str, name: str) -> DatastoreInfo: ...
    def browse_datastore(
        self, workspace: str, name: str, path: str = "", recursive: bool = False
    ) -> list[FileInfo]: ...
    def upload_to_datastore(
        self, workspace: str, name: str, path: str, stream: IO[bytes]
    ) -> int: ...
    def has_dataset_file(self, workspace: str, sha256: str) -> bool: ...
    def upload_dataset_file(self, workspace: str, sha256: str, stream: IO[bytes]) -> int: ...
    def register_dataset(
        self,
        workspace: str,
        name: str,
        kind: str,
        *,
        files: Sequence[dict[str, Any]] | None = None,
        datastore: str | None = None,
        pattern: str | None = None,
        format: dict[str, Any] | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        create_new_version: bool = True,
        source: str = "",
        user: str = "",
    ) -> DatasetVersionInfo: ...
    def get_dataset(
        self, workspace: str, name: str, version: int | None = None
    ) -> DatasetVersionInfo: ...
    def list_datasets(
        self, workspace: str, name: str | None = None, latest: bool = False
    ) -> list[DatasetVersionInfo]: ...
    def open_dataset_file(
        self, workspace: str, name: str, version: int, path: str
    ) -> IO[bytes]: ...
    def take(self, workspace: str, name: str, version: int, n: int = 10) -> dict[str, Any]: ...
    def delete_dataset_version(self, workspace: str, name: str, version: int) -> None: ...
    def dataset_runs(self, workspace: str, name: str, version: int) -> list[RunInfo]: ...
    def lineage(
        self,
        workspace: str,
        dataset: str | None = None,
        version: int | None = None,
        model: str | None = None,
        model_version: int | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]: ...
    def compare_datasets(
        self,
        workspace: str,
        name: str,
        version: int,
        other_name: str,
        other_version: int,
        threshold: float = 0.2,
    ) -> dict[str, Any]: ...
    def compare_with_endpoint(
        self,
        workspace: str,
        name: str,
        version: int,
        endpoint: str,
        deployment: str | None = None,
        limit: int = 1000,
        threshold: float = 0.2,
    ) -> dict[str, Any]: ...


class PipelineClient(Protocol):
    """Pipeline runs, published pipelines and schedules (``PipelineService``, ``HttpPipelines``)."""

    def submit_pipeline(
        self,
        workspace: str,
        experiment_id: int,
        spec: dict[str, Any],
        parameters: dict[str, Any] | None = None,
        *,
        continue_on_step_failure: bool | None = None,
        tags: dict[str, str] | None = None,
        display_name: str | None = None,
        user: str = "",
        resume_of: str | None = None,
    ) -> RunInfo: ...
    def get_pipeline_run(self, workspace: str, run_id: str) -> dict[str, Any]: ...
    def cancel_pipeline_run(self, workspace: str, run_id: str) -> RunInfo: ...
    def publish_pipeline(
        self,
        workspace: str,
        name: str,
        spec: dict[str, Any],
        description: str = "",
        version: str | None = None,
    ) -> PublishedPipelineInfo: ...
    def get_published_pipeline(self, workspace: str, pipeline_id: str) -> PublishedPipelineInfo: ...
    def list_published_pipelines(
        self, workspace: str, name: str | None = None
    ) -> list[PublishedPipelineInfo]: ...
    def set_default_pipeline(
        self, workspace: str, name: str, pipeline_id: str
    ) -> PublishedPipelineInfo: ...
    def submit_published(
        self,
        workspace: str,
        pipeline_id: str,
        experiment_name: str,
        parameters: dict[str, Any] | None = None,
        *,
        tags: dict[str, str] | None = None,
        user: str = "",
    ) -> RunInfo: ...
    def create_schedule(
        self,
        workspace: str,
        name: str,
        pipeline_id: str,
        experiment_name: str,
        *,
        parameters: dict[str, Any] | None = None,
        frequency: str | None = None,
        interval: int = 1,
        start_time: int | None = None,
        cron: str | None = None,
        on_dataset: str | None = None,
    ) -> ScheduleInfo: ...
    def list_schedules(self, workspace: str) -> list[ScheduleInfo]: ...
    def get_schedule(self, workspace: str, name: str) -> ScheduleInfo: ...
    def set_schedule_enabled(self, workspace: str, name: str, enabled: bool) -> ScheduleInfo: ...
    def schedule_firings(self, workspace: str, name: str) -> list[tuple[int, str | None]]: ...
