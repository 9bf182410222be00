"""Datastores: where a workspace's files live, browsed and written through fsspec.

``workspacestore`` is every workspace's own store (a folder of the artifact
store, or its bucket), always there and the default until another is made
default. A ``local`` datastore is a folder of the server's machine (registered
by a workspace owner only: it opens that folder to the workspace); an ``s3``
datastore is a bucket and prefix, with an endpoint for S3-compatible stores.
Credentials given at registration are sealed under the server's key
(``compute/secrets.py``) and never shown; without them the server's own
environment (its AWS variables or role) is used.
"""

from __future__ import annotations

import builtins
import threading
from pathlib import Path
from typing import IO, Any

import orjson

from cumulo.compute import secrets
from cumulo.core.datasets import DEFAULT_DATASTORE, LOCAL, S3, WORKSPACE_STORE, DatastoreInfo
from cumulo.core.datasets import datastore_name as check_name
from cumulo.core.entities import FileInfo
from cumulo.core.errors import InvalidInput, NotFound
from cumulo.store.artifacts import ArtifactStore
from cumulo.store.datasets import DatasetStore

CREDENTIAL_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")


def workspace_prefix(workspace: str) -> str:
    return f"{workspace}/datastore"


class Datastores:
    def __init__(self, store: DatasetStore, artifacts: ArtifactStore, home: Path) -> None:
        self.store = store
        self.artifacts = artifacts
        self.home = home
        self._opened: dict[tuple[str, str, int], ArtifactStore] = {}
        self._lock = threading.Lock()

    # --------------------------------------------------------------- records
    def builtin(self, workspace: str, is_default: bool) -> DatastoreInfo:
        root = self.artifacts.uri(workspace_prefix(workspace))
        return DatastoreInfo(
            name=DEFAULT_DATASTORE,
            workspace=workspace,
            kind=WORKSPACE_STORE,
            config={"root": root},
            is_default=is_default,
        )

    def register(
        self,
        workspace: str,
        name: str,
        kind: str,
        config: dict[str, Any],
        credentials: dict[str, str] | None = None,
    ) -> DatastoreInfo:
        check_name(name)
        if name == DEFAULT_DATASTORE:
            raise InvalidInput(f"{DEFAULT_DATASTORE!r} is the workspace's own datastore.")
        clean = _parse_config(kind, config)
        secret = None
        if credentials:
            if kind != S3:
                raise InvalidInput("Only an S3 datastore takes credentials.")
            unknown = set(credentials) - set(CREDENTIAL_KEYS)
            if unknown:
                raise InvalidInput(f"Unknown credentials: {sorted(unknown)}.")
            given = {k: str(v) for k, v in credentials.items() if v}
            if given:
                secret = secrets.seal(orjson.dumps(given).decode(), self.home)
        return self.store.create_datastore(workspace, name, kind, clean, secret)

    def get(self, workspace: str, name: str) -> DatastoreInfo:
        if name == DEFAULT_DATASTORE:
            return self.builtin(workspace, not any(d.is_default for d in self._rows(workspace)))
        return self.store.get_datastore(workspace, name)

    def _rows(self, workspace: str) -> list[DatastoreInfo]:
        return self.store.list_datastores(workspace)

    def list(self, workspace: str) -> list[DatastoreInfo]:
        rows = self._rows(workspace)
        return [self.builtin(workspace, not any(d.is_default for d in rows)), *rows]

    def default(self, workspace: str) -> DatastoreInfo:
        return next(d for d in self.list(workspace) if d.is_default)

    def set_default(self, workspace: str, name: str) -> None:
        self.store.set_default_datastore(workspace, None if name == DEFAULT_DATASTORE else name)

    # ----------------------------------------------------------------- files
    def files(self, workspace: str, name: str) -> tuple[ArtifactStore, str]:
        """The datastore's files as an ``ArtifactStore`` and the prefix they are under."""
        if name == DEFAULT_DATASTORE:
            return self.artifacts, workspace_prefix(workspace)
        info = self.store.get_datastore(workspace, name)
        key = (workspace, name, info.created_at)
        with self._lock:
            found = self._opened.get(key)
        if found is not None:
            return found, ""
        if info.kind == LOCAL:
            folder = Path(info.config["path"])
            if not folder.is_dir():
                raise NotFound(f"Datastore {name!r}: folder {str(folder)!r} does not exist.")
            opened = ArtifactStore(str(folder))
        else:
            options: dict[str, Any] = {}
            sealed = self.store.datastore_secret(workspace, name)
            if sealed:
                creds = orjson.loads(
                    secrets.unseal(sealed, self.home, f"datastore {name!r}'s credentials")
                )
                options = {
                    "key": creds.get("aws_access_key_id"),
                    "secret": creds.get("aws_secret_access_key"),
                    "token": creds.get("aws_session_token"),
                }
            options = {k: v for k, v in options.items() if v}
            root = "s3://" + "/".join(
                p for p in (info.config["bucket"], info.config["prefix"]) if p
            )
            options["skip_instance_cache"] = True  # credentials differ per datastore
            opened = ArtifactStore(root, info.config.get("endpoint_url"), options)
        with self._lock:
            self._opened[key] = opened
        return opened, ""

    def browse(
        self, workspace: str, name: str, path: str = "", recursive: bool = False
    ) -> builtins.list[FileInfo]:
        store, prefix = self.files(workspace, name)
        return store.list(prefix, path, recursive=recursive)

    def upload(self, workspace: str, name: str, path: str, stream: IO[bytes]) -> int:
        store, prefix = self.files(workspace, name)
        return store.put_stream(prefix, path, stream)


def _parse_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise InvalidInput("A datastore's config must be an object.")
    if kind == LOCAL:
        if set(config) - {"path"}:
            raise InvalidInput(
                f"Unknown settings of a local datastore: {sorted(set(config) - {'path'})}."
            )
        path = config.get("path")
        if not isinstance(path, str) or not path:
            raise InvalidInput("A local datastore needs the path of a folder.")
        folder = Path(path).expanduser()
        if not folder.is_absolute():
            raise InvalidInput(f"A local datastore's path must be absolute, got {path!r}.")
        if not folder.is_dir():
            raise NotFound(f"Folder {path!r} does not exist on the server's machine.")
        return {"path": str(folder.resolve())}
    if kind == S3:
        allowed = {"bucket", "prefix", "endpoint_url"}
        if set(config) - allowed:
            raise InvalidInput(
                f"Unknown settings of an S3 datastore: {sorted(set(config) - allowed)}."
            )
        bucket = config.get("bucket")
        if not isinstance(bucket, str) or not bucket or "/" in bucket:
            raise InvalidInput("An S3 datastore needs a bucket name (no '/').")
        prefix = config.get("prefix") or ""
        if not isinstance(prefix, str):
            raise InvalidInput("prefix must be a string.")
        endpoint = config.get("endpoint_url")
        if endpoint is not None and (
            not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://"))
        ):
            raise InvalidInput("endpoint_url must be an http:// or https:// URL.")
        return {"bucket": bucket, "prefix": prefix.strip("/"), "endpoint_url": endpoint}
    raise InvalidInput(f"A datastore is 'local' or 's3', not {kind!r}.")
