"""``HttpModels``: the model registry calls of ``Model``, over HTTP.

Its methods take the arguments of their ``RegistryService`` twins (a test holds them to it).
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import quote

import orjson

from cumulo.core import validation
from cumulo.core.entities import FileInfo, ModelVersionInfo
from cumulo.core.errors import InvalidInput
from cumulo.sdk.http.client import HttpClient, q, read_chunks, ws_path
from cumulo.sdk.progress import CountingReader, transfer


class HttpModels:
    """Registered model versions of a ``cumulo server``'s workspace."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def _model(self, workspace: str, name: str) -> str:
        return f"{ws_path(workspace)}/models/{q(name)}"

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
    ) -> ModelVersionInfo:
        """The next version of ``name``: a run's files, or a local folder sent as one archive."""
        if run_id is not None:
            body = {
                "run_id": run_id,
                "path": path or "",
                "description": description,
                "tags": tags,
                "user": user,
            }
            data = self.client.call("POST", self._model(workspace, name) + "/versions", body)
            return ModelVersionInfo.from_dict(data)
        if local_dir is None:
            raise InvalidInput("Register from a local folder or from a run's files.")
        params = {
            "description": description,
            "tags": orjson.dumps(tags or {}).decode(),
            "user": user,
        }
        with tempfile.TemporaryFile() as archive:
            with tarfile.open(fileobj=archive, mode="w:gz") as tar:
                source = Path(local_dir)
                tar.add(source, arcname=source.name if source.is_file() else ".")
            size = archive.tell()
            archive.seek(0)
            with transfer(f"Uploading model {name}", size) as done:
                request = self.client.request(
                    "PUT",
                    self._model(workspace, name) + "/artifacts/model.tar.gz",
                    content=read_chunks(cast(IO[bytes], CountingReader(archive, done))),
                    params=params,
                    headers={"content-type": "application/gzip"},
                )
                response = self.client.send(request)
        return ModelVersionInfo.from_dict(orjson.loads(response.content))

    def resolve_version(
        self, workspace: str, name: str, version: Any = None, alias: str | None = None
    ) -> ModelVersionInfo:
        """A version by number, by alias, or the latest one when neither is given."""
        params = {"version": version, "alias": alias}
        data = self.client.call("GET", self._model(workspace, name) + "/version", params=params)
        return ModelVersionInfo.from_dict(data)

    def list_versions(
        self,
        workspace: str,
        name: str | None = None,
        tags: dict[str, str] | None = None,
        run_id: str | None = None,
        latest: bool = False,
    ) -> list[ModelVersionInfo]:
        params = {
            "name": name,
            "tags": orjson.dumps(tags or {}).decode(),
            "run_id": run_id,
            "latest": latest,
        }
        data = self.client.call("GET", ws_path(workspace) + "/model-versions", params=params)
        return [ModelVersionInfo.from_dict(v) for v in data["versions"]]

    def set_alias(self, workspace: str, name: str, alias: str, version: Any) -> None:
        path = f"{self._model(workspace, name)}/aliases/{q(alias)}"
        self.client.call("PUT", path, {"version": version})

    def delete_alias(self, workspace: str, name: str, alias: str) -> None:
        self.client.call("DELETE", f"{self._model(workspace, name)}/aliases/{q(alias)}")

    def set_version_tags(
        self, workspace: str, name: str, version: int, tags: dict[str, Any]
    ) -> ModelVersionInfo:
        path = f"{self._model(workspace, name)}/versions/{int(version)}/tags"
        return ModelVersionInfo.from_dict(self.client.call("POST", path, {"tags": tags}))

    def delete_version_tags(
        self, workspace: str, name: str, version: int, keys: list[str]
    ) -> ModelVersionInfo:
        path = f"{self._model(workspace, name)}/versions/{int(version)}/tags/delete"
        return ModelVersionInfo.from_dict(self.client.call("POST", path, {"keys": keys}))

    def unregister_version(self, workspace: str, name: str, version: int) -> None:
        """Delete one version, and the model with its last one; refused while it is served."""
        self.client.call("DELETE", f"{self._model(workspace, name)}/versions/{int(version)}")

    def list_version_files(
        self, workspace: str, name: str, version: Any, path: str = "", recursive: bool = False
    ) -> list[FileInfo]:
        url = f"{self._model(workspace, name)}/versions/{int(version)}/files"
        data = self.client.call("GET", url, params={"path": path, "recursive": recursive})
        return [FileInfo.from_dict(f) for f in data["files"]]

    def open_version_file(self, workspace: str, name: str, version: Any, path: str) -> IO[bytes]:
        rel = quote(validation.artifact_path(path), safe="/")
        url = f"{self._model(workspace, name)}/versions/{int(version)}/files/{rel}"
        return self.client.stream(self.client.request("GET", url))
