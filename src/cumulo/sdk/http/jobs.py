"""``HttpJobs``: snapshots, environments, compute targets and jobs over HTTP.

Its methods take the arguments of their ``JobService`` twins (a test holds them
to it); the server's routes are ``server/api/jobs.py``. ``HttpChannel`` is a job
runner's line to its workspace through a server.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, cast

import orjson

from cumulo.compute.snapshots import pack
from cumulo.core.entities import RunInfo
from cumulo.core.errors import NotFound
from cumulo.core.jobs import ComputeTargetInfo, EnvironmentInfo, JobInfo, LogPage, SnapshotInfo
from cumulo.core.settings import Settings
from cumulo.sdk.http.client import HttpClient, read_chunks, ws_path
from cumulo.sdk.http.tracking import HttpTracking
from cumulo.sdk.progress import CountingReader, transfer


class HttpJobs:
    """``JobTransport`` over a ``cumulo server``'s ``/api/v1`` (its routes: ``server/api/jobs``)."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client
        self.show_progress: bool | None = None  # None: a bar for big uploads on a terminal

    def take_snapshot(self, workspace: str, source: str | Path) -> SnapshotInfo:
        """Pack ``source`` here and upload it, unless the server holds the same code already."""
        with tempfile.TemporaryDirectory(prefix="cumulo-snap-") as tmp:
            zip_path = Path(tmp) / "snapshot.zip"
            # The limit of this process's settings; the server checks its own on upload.
            digest, _files = pack(source, zip_path, Settings.load().snapshot_max_bytes)
            try:
                return self.get_snapshot(workspace, digest)  # the same code is sent once
            except NotFound:
                size = zip_path.stat().st_size
                label = "Uploading the code snapshot"
                with (
                    open(zip_path, "rb") as fh,
                    transfer(label, size, self.show_progress) as done,
                ):
                    return self.put_snapshot(workspace, cast(IO[bytes], CountingReader(fh, done)))

    def put_snapshot(self, workspace: str, stream: IO[bytes]) -> SnapshotInfo:
        request = self.client.request(
            "PUT",
            ws_path(workspace) + "/snapshots",
            content=read_chunks(stream),
            headers={"content-type": "application/zip"},
        )
        return SnapshotInfo.from_dict(orjson.loads(self.client.send(request).content))

    def get_snapshot(self, workspace: str, digest: str) -> SnapshotInfo:
        return SnapshotInfo.from_dict(
            self.client.call("GET", f"{ws_path(workspace)}/snapshots/{digest}")
        )

    def list_snapshots(self, workspace: str) -> list[SnapshotInfo]:
        data = self.client.call("GET", f"{ws_path(workspace)}/snapshots")
        return [SnapshotInfo.from_dict(s) for s in data["snapshots"]]

    def open_snapshot(self, workspace: str, digest: str) -> IO[bytes]:
        request = self.client.request("GET", f"{ws_path(workspace)}/snapshots/{digest}/zip")
        return io.BytesIO(self.client.send(request).content)

    def register_environment(
        self, workspace: str, name: str, spec: dict[str, Any]
    ) -> EnvironmentInfo:
        body = {"name": name, "spec": spec}
        return EnvironmentInfo.from_dict(
            self.client.call("POST", f"{ws_path(workspace)}/environments", body)
        )

    def get_environment(
        self, workspace: str, name: str, version: int | None = None
    ) -> EnvironmentInfo:
        data = self.client.call(
            "GET", f"{ws_path(workspace)}/environments/{name}", params={"version": version}
        )
        return EnvironmentInfo.from_dict(data)

    def list_environments(self, workspace: str) -> list[EnvironmentInfo]:
        data = self.client.call("GET", f"{ws_path(workspace)}/environments")
        return [EnvironmentInfo.from_dict(e) for e in data["environments"]]

    def build_environment(
        self, workspace: str, name: str, version: int | None = None, log: Any = None
    ) -> EnvironmentInfo:
        data = self.client.call(
            "POST",
            f"{ws_path(workspace)}/environments/{name}/build",
            params={"version": version},
        )
        info = EnvironmentInfo.from_dict(data)
        if log is not None:
            for line in info.build_log.splitlines():
                log(line)
        return info

    def create_compute_target(
        self, workspace: str, name: str, kind: str, config: dict[str, Any] | None = None
    ) -> ComputeTargetInfo:
        body = {"name": name, "kind": kind, "config": config or {}}
        return ComputeTargetInfo.from_dict(
            self.client.call("POST", f"{ws_path(workspace)}/compute", body)
        )

    def get_compute_target(self, workspace: str, name: str) -> ComputeTargetInfo:
        return ComputeTargetInfo.from_dict(
            self.client.call("GET", f"{ws_path(workspace)}/compute/{name}")
        )

    def list_compute_targets(self, workspace: str) -> list[ComputeTargetInfo]:
        data = self.client.call("GET", f"{ws_path(workspace)}/compute")
        return [ComputeTargetInfo.from_dict(t) for t in data["targets"]]

    def delete_compute_target(self, workspace: str, name: str) -> None:
        self.client.call("DELETE", f"{ws_path(workspace)}/compute/{name}")

    def compute_status(self, workspace: str, name: str) -> dict[str, Any]:
        return cast(
            dict[str, Any], self.client.call("GET", f"{ws_path(workspace)}/compute/{name}/status")
        )

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
    ) -> RunInfo:
        body = {
            "experiment_id": experiment_id,
            "config": config,
            "tags": tags,
            "properties": properties,
            "display_name": display_name,
            "user": user,
            "priority": priority_,
            "max_retries": max_retries_,
        }
        return RunInfo.from_dict(self.client.call("POST", f"{ws_path(workspace)}/jobs", body))

    def get_job(self, workspace: str, run_id: str) -> JobInfo:
        return JobInfo.from_dict(self.client.call("GET", f"{ws_path(workspace)}/jobs/{run_id}"))

    def cancel_job(self, workspace: str, run_id: str) -> RunInfo:
        return RunInfo.from_dict(
            self.client.call("POST", f"{ws_path(workspace)}/jobs/{run_id}/cancel")
        )

    def set_job_status(
        self, workspace: str, run_id: str, status: str, error: dict[str, Any] | None = None
    ) -> RunInfo:
        body = {"status": status, "error": error}
        data = self.client.call("POST", f"{ws_path(workspace)}/jobs/{run_id}/status", body)
        return RunInfo.from_dict(data)

    def get_logs(self, workspace: str, run_id: str, after: int = 0, limit: int = 5000) -> LogPage:
        data = self.client.call(
            "GET",
            f"{ws_path(workspace)}/jobs/{run_id}/logs",
            params={"after": after, "limit": limit},
        )
        return LogPage.from_dict(data)

    def append_logs(self, workspace: str, run_id: str, chunks: Sequence[Sequence[Any]]) -> None:
        body = {"chunks": [list(c) for c in chunks]}
        self.client.call("POST", f"{ws_path(workspace)}/jobs/{run_id}/logs", body)


class HttpChannel:
    """The job runner's line to the workspace through a server (a remote Ray node)."""

    def __init__(self, url: str, token: str | None, workspace: str, run_id: str) -> None:
        client = HttpClient(url, token=token)
        self.tracking = HttpTracking(client)
        self.jobs = HttpJobs(client)
        self.workspace = workspace
        self.run_id = run_id

    def get_status(self) -> str:
        return self.tracking.get_run(self.workspace, self.run_id).status

    def set_status(self, status: str, error: dict[str, Any] | None = None) -> None:
        self.jobs.set_job_status(self.workspace, self.run_id, status, error)

    def append_logs(self, chunks: list[tuple[str, str, int]]) -> None:
        self.jobs.append_logs(self.workspace, self.run_id, chunks)

    def upload_file(self, name: str, path: Path) -> None:
        with open(path, "rb") as fh:
            self.tracking.upload_artifact(self.workspace, self.run_id, name, fh)
