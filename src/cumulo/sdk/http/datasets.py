"""``HttpDatasets``: datastores and datasets over HTTP.

Its methods take the arguments of their ``DatasetService`` twins (a test holds them to it).
Files travel as streamed request and response bodies, never whole in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any
from urllib.parse import quote

import httpx
import orjson

from cumulo.core import validation
from cumulo.core.datasets import DatasetVersionInfo, DatastoreInfo
from cumulo.core.entities import FileInfo, RunInfo
from cumulo.sdk.http.client import HttpClient, q, read_chunks, stream_position, ws_path


class HttpDatasets:
    """Datastores and dataset versions of a ``cumulo server``'s workspace."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def _store(self, workspace: str, name: str) -> str:
        return f"{ws_path(workspace)}/datastores/{q(name)}"

    def _version(self, workspace: str, name: str, version: int) -> str:
        return f"{ws_path(workspace)}/datasets/{q(name)}/versions/{int(version)}"

    def _put(self, url: str, stream: IO[bytes]) -> dict[str, Any]:
        start = stream_position(stream)

        def build() -> httpx.Request:
            if start is not None:
                stream.seek(start)  # another server gets the whole file again
            return self.client.request(
                "PUT",
                url,
                content=read_chunks(stream),
                headers={"content-type": "application/octet-stream"},
            )

        response = self.client.send(build(), rebuild=build if start is not None else None)
        data: dict[str, Any] = orjson.loads(response.content)
        return data

    # ------------------------------------------------------------ datastores
    def register_datastore(
        self,
        workspace: str,
        name: str,
        kind: str,
        config: dict[str, Any],
        credentials: dict[str, str] | None = None,
    ) -> DatastoreInfo:
        body = {"name": name, "kind": kind, "config": config, "credentials": credentials}
        data = self.client.call("POST", f"{ws_path(workspace)}/datastores", body)
        return DatastoreInfo.from_dict(data)

    def get_datastore(self, workspace: str, name: str) -> DatastoreInfo:
        return DatastoreInfo.from_dict(self.client.call("GET", self._store(workspace, name)))

    def list_datastores(self, workspace: str) -> list[DatastoreInfo]:
        data = self.client.call("GET", f"{ws_path(workspace)}/datastores")
        return [DatastoreInfo.from_dict(d) for d in data["datastores"]]

    def get_default_datastore(self, workspace: str) -> DatastoreInfo:
        data = self.client.call("GET", f"{ws_path(workspace)}/default-datastore")
        return DatastoreInfo.from_dict(data)

    def set_default_datastore(self, workspace: str, name: str) -> DatastoreInfo:
        data = self.client.call("PUT", f"{ws_path(workspace)}/default-datastore", {"name": name})
        return DatastoreInfo.from_dict(data)

    def browse_datastore(
        self, workspace: str, name: str, path: str = "", recursive: bool = False
    ) -> list[FileInfo]:
        params = {"path": path, "recursive": recursive}
        data = self.client.call("GET", self._store(workspace, name) + "/browse", params=params)
        return [FileInfo.from_dict(f) for f in data["files"]]

    def upload_to_datastore(self, workspace: str, name: str, path: str, stream: IO[bytes]) -> int:
        rel = quote(validation.artifact_path(path), safe="/")
        return int(self._put(f"{self._store(workspace, name)}/files/{rel}", stream)["size"])

    # ----------------------------------------------------------------- files
    def has_dataset_file(self, workspace: str, sha256: str) -> bool:
        data = self.client.call("GET", f"{ws_path(workspace)}/dataset-blobs/{q(sha256)}")
        return bool(data["exists"])

    def upload_dataset_file(self, workspace: str, sha256: str, stream: IO[bytes]) -> int:
        return int(self._put(f"{ws_path(workspace)}/dataset-blobs/{q(sha256)}", stream)["size"])

    # -------------------------------------------------------------- versions
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
    ) -> DatasetVersionInfo:
        body = {
            "kind": kind,
            "files": list(files) if files is not None else None,
            "datastore": datastore,
            "pattern": pattern,
            "format": format,
            "description": description,
            "tags": tags,
            "create_new_version": create_new_version,
            "source": source,
            "user": user,
        }
        data = self.client.call("POST", f"{ws_path(workspace)}/datasets/{q(name)}/versions", body)
        return DatasetVersionInfo.from_dict(data)

    def get_dataset(
        self, workspace: str, name: str, version: int | None = None
    ) -> DatasetVersionInfo:
        which = "latest" if version is None else str(int(version))
        data = self.client.call("GET", f"{ws_path(workspace)}/datasets/{q(name)}/versions/{which}")
        return DatasetVersionInfo.from_dict(data)

    def list_datasets(
        self, workspace: str, name: str | None = None, latest: bool = False
    ) -> list[DatasetVersionInfo]:
        params = {"name": name, "latest": latest}
        data = self.client.call("GET", f"{ws_path(workspace)}/datasets", params=params)
        return [DatasetVersionInfo.from_dict(d) for d in data["versions"]]

    def open_dataset_file(self, workspace: str, name: str, version: int, path: str) -> IO[bytes]:
        rel = quote(validation.artifact_path(path), safe="/")
        url = f"{self._version(workspace, name, version)}/files/{rel}"
        return self.client.stream(self.client.request("GET", url))

    def take(self, workspace: str, name: str, version: int, n: int = 10) -> dict[str, Any]:
        url = self._version(workspace, name, version) + "/take"
        data: dict[str, Any] = self.client.call("GET", url, params={"n": n})
        return data

    def delete_dataset_version(self, workspace: str, name: str, version: int) -> None:
        self.client.call("DELETE", self._version(workspace, name, version))

    def dataset_runs(self, workspace: str, name: str, version: int) -> list[RunInfo]:
        data = self.client.call("GET", self._version(workspace, name, version) + "/runs")
        return [RunInfo.from_dict(r) for r in data["runs"]]

    def lineage(
        self,
        workspace: str,
        dataset: str | None = None,
        version: int | None = None,
        model: str | None = None,
        model_version: int | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        params = {
            "dataset": dataset,
            "version": version,
            "model": model,
            "model_version": model_version,
            "run_id": run_id,
        }
        data: dict[str, Any] = self.client.call(
            "GET", f"{ws_path(workspace)}/lineage", params=params
        )
        return data

    def compare_datasets(
        self,
        workspace: str,
        name: str,
        version: int,
        other_name: str,
        other_version: int,
        threshold: float = 0.2,
    ) -> dict[str, Any]:
        params = {"other": other_name, "other_version": other_version, "threshold": threshold}
        url = self._version(workspace, name, version) + "/compare"
        data: dict[str, Any] = self.client.call("GET", url, params=params)
        return data

    def compare_with_endpoint(
        self,
        workspace: str,
        name: str,
        version: int,
        endpoint: str,
        deployment: str | None = None,
        limit: int = 1000,
        threshold: float = 0.2,
    ) -> dict[str, Any]:
        params = {
            "endpoint": endpoint,
            "deployment": deployment,
            "limit": limit,
            "threshold": threshold,
        }
        url = self._version(workspace, name, version) + "/compare-endpoint"
        data: dict[str, Any] = self.client.call("GET", url, params=params)
        return data
