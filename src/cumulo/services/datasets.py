"""Datasets: immutable, content-addressed versions; datastores; what read them; lineage.

A version's files are stored once per content, as ``<ws>/datasets/blobs/<sha256>``
in the artifact store: a client sends a file only when no blob has its digest
(``has_dataset_file``), and ``upload_dataset_file`` refuses bytes whose digest is
not the one named. Every file is read once, hashed as it is copied under a
staging name, and takes its digest's name only then, so a blob always holds the
bytes its name says (files of a datastore too: the server reads them).
Registering then names the files; the version's digest
(``core.datasets.version_digest``) makes the same content under one name the
same version. A tabular version's schema and profile are
computed once, here, when it is first registered.

A job that reads a version records it among its run's dataset inputs
(``record_inputs``, at submission), which is what ``dataset_runs``, the lineage
graph and the refusal to delete a version a registered model depends on read.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import uuid
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import IO, Any

import orjson

from cumulo.core.datasets import (
    FILE,
    MAX_FILES,
    SOURCE_TYPE,
    TABULAR,
    DatasetFile,
    DatasetVersionInfo,
    DatastoreInfo,
    dataset_name,
    file_path,
    parse_format,
    parse_inputs,
    sha256_hex,
    version_digest,
)
from cumulo.core.deployments import serving
from cumulo.core.entities import (
    DATASET_CONTEXT_TAG,
    DatasetInput,
    FileInfo,
    ModelVersionInfo,
    RunInfo,
    check_user_tags,
)
from cumulo.core.errors import Conflict, CumuloError, InvalidInput, NotFound
from cumulo.services import dataset_tables
from cumulo.services.datastores import Datastores
from cumulo.services.deployments import DeploymentService
from cumulo.services.registry import RegistryService
from cumulo.services.tracking import TrackingService
from cumulo.store.artifacts import ArtifactStore
from cumulo.store.datasets import DatasetStore

MAX_TAKE = 10_000


def blob_prefix(workspace: str) -> str:
    return f"{workspace}/datasets/blobs"


def blob_path(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256}"


class _Hashing:
    """A stream read through: hashes what passes."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.sha.update(data)
        return data


class DatasetService:
    def __init__(
        self,
        store: DatasetStore,
        artifacts: ArtifactStore,
        tracking: TrackingService,
        registry: RegistryService,
        deployments: DeploymentService,
        home: Path,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.tracking = tracking
        self.registry = registry
        self.deployments = deployments
        self.datastores = Datastores(store, artifacts, home)

    # ------------------------------------------------------------ datastores
    def register_datastore(
        self,
        workspace: str,
        name: str,
        kind: str,
        config: dict[str, Any],
        credentials: dict[str, str] | None = None,
    ) -> DatastoreInfo:
        """A local folder of this machine or an S3 bucket and prefix, under ``name``."""
        return self.datastores.register(workspace, name, kind, config, credentials)

    def get_datastore(self, workspace: str, name: str) -> DatastoreInfo:
        return self.datastores.get(workspace, name)

    def list_datastores(self, workspace: str) -> list[DatastoreInfo]:
        return self.datastores.list(workspace)

    def get_default_datastore(self, workspace: str) -> DatastoreInfo:
        return self.datastores.default(workspace)

    def set_default_datastore(self, workspace: str, name: str) -> DatastoreInfo:
        self.datastores.set_default(workspace, name)
        return self.datastores.get(workspace, name)

    def browse_datastore(
        self, workspace: str, name: str, path: str = "", recursive: bool = False
    ) -> list[FileInfo]:
        return self.datastores.browse(workspace, name, path, recursive)

    def upload_to_datastore(self, workspace: str, name: str, path: str, stream: IO[bytes]) -> int:
        return self.datastores.upload(workspace, name, path, stream)

    # ----------------------------------------------------------------- files
    def has_dataset_file(self, workspace: str, sha256: str) -> bool:
        """Whether the workspace holds a file with this content already."""
        self.tracking.get_workspace(workspace)
        return self.artifacts.exists(blob_prefix(workspace), blob_path(sha256_hex(sha256)))

    def upload_dataset_file(self, workspace: str, sha256: str, stream: IO[bytes]) -> int:
        """Store a file's bytes under their digest; refused when they hash to another."""
        sha256_hex(sha256)
        self.tracking.get_workspace(workspace)
        prefix, rel = blob_prefix(workspace), blob_path(sha256)
        if self.artifacts.exists(prefix, rel):
            return self.artifacts.size(prefix, rel)  # the same bytes are there already
        return self._store_blob(workspace, stream, sha256)[1]

    def _store_blob(
        self, workspace: str, stream: IO[bytes], expected: str | None = None
    ) -> tuple[str, int]:
        """Copy a stream into the blobs in one pass, hashing it on the way: its digest and size.

        The bytes are written under a staging name and renamed to their digest
        once it is known (and is ``expected``, when one is named).
        """
        prefix = blob_prefix(workspace)
        staging = f"incoming/{uuid.uuid4().hex}"
        reader = _Hashing(stream)
        try:
            size = self.artifacts.put_stream(prefix, staging, reader)  # type: ignore[arg-type]
            sha = reader.sha.hexdigest()
            if expected is not None and sha != expected:
                raise InvalidInput(f"The file sent hashes to {sha}, not {expected}; send it again.")
            if not self.artifacts.exists(prefix, blob_path(sha)):
                self.artifacts.move(prefix, staging, blob_path(sha))
        finally:
            self.artifacts.delete(prefix, staging)  # left only when refused or held already
        return sha, size

    def _from_datastore(self, workspace: str, datastore: str, pattern: str) -> list[DatasetFile]:
        """The files a pattern of a datastore names, copied into the workspace's blobs."""
        store, prefix = self.datastores.files(workspace, datastore)
        found = store.find(prefix, pattern)
        if not found:
            raise NotFound(f"Nothing in datastore {datastore!r} matches {pattern!r}.")
        if len(found) > MAX_FILES:
            raise InvalidInput(f"A dataset holds at most {MAX_FILES} files.")
        base = _base(pattern, [f.path for f in found])
        out = []
        for f in found:
            with store.open(prefix, f.path) as fh:
                sha, size = self._store_blob(workspace, fh)
            out.append(DatasetFile(f.path[len(base) :].lstrip("/"), size, sha))
        return out

    # --------------------------------------------------------------- versions
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
        """The version of ``name`` holding these files: a new one, or the one with this content.

        ``files`` (``{"path", "size", "sha256"}`` each) name files uploaded with
        ``upload_dataset_file``; ``datastore`` and ``pattern`` name files of a datastore.
        """
        dataset_name(name)
        fmt = parse_format(kind, format)
        tags = {str(k): str(v) for k, v in (tags or {}).items()}
        check_user_tags(tags)
        if (files is None) == (datastore is None):
            raise InvalidInput("A dataset is made of uploaded files or of a datastore's files.")
        if datastore is not None:
            listed = self._from_datastore(workspace, datastore, pattern or "")
            source = source or f"datastore {datastore}: {pattern or '/'}"
        else:
            listed = self._uploaded(workspace, files or [])
        if not listed:
            raise InvalidInput("A dataset needs at least one file.")
        paths = [f.path for f in listed]
        if len(set(paths)) != len(paths):
            raise InvalidInput("Two files of the dataset have one path.")
        digest = version_digest(kind, fmt, listed)
        found = self.store.find_digest(workspace, name, digest)
        if found is not None:
            return found
        schema: list[dict[str, str]] = []
        profile: dict[str, Any] = {}
        ordered = sorted(listed, key=lambda f: f.path)
        if kind == TABULAR:
            schema, profile = dataset_tables.profile(
                self._rows(workspace, fmt, [f.sha256 for f in ordered])
            )
        info, _ = self.store.add_version(
            workspace,
            {
                "name": name,
                "kind": kind,
                "digest": digest,
                "files": [f.to_dict() for f in ordered],
                "format": fmt,
                "schema": schema,
                "profile": profile,
                "description": description,
                "tags": tags,
                "source": source,
                "size": sum(f.size for f in listed),
                "created_by": user,
            },
            create_new_version,
        )
        return info

    def _uploaded(self, workspace: str, files: Sequence[dict[str, Any]]) -> list[DatasetFile]:
        if len(files) > MAX_FILES:
            raise InvalidInput(f"A dataset holds at most {MAX_FILES} files.")
        out = []
        for item in files:
            if not isinstance(item, dict):
                raise InvalidInput("Each file is {'path', 'size', 'sha256'}.")
            f = DatasetFile(
                file_path(item.get("path")),
                int(item.get("size", -1)),
                sha256_hex(item.get("sha256")),
            )
            prefix, rel = blob_prefix(workspace), blob_path(f.sha256)
            try:
                size = self.artifacts.size(prefix, rel)
            except NotFound:
                raise InvalidInput(
                    f"File {f.path!r} was not uploaded (no file has digest {f.sha256}); "
                    "upload it first."
                ) from None
            if size != f.size:
                raise InvalidInput(f"File {f.path!r} is {size} bytes, not {f.size}.")
            out.append(f)
        return out

    def _rows(
        self, workspace: str, fmt: dict[str, Any], digests: list[str]
    ) -> dataset_tables.Frames:
        """The rows of the blobs ``digests``, read as ``fmt`` says."""
        prefix = blob_prefix(workspace)

        def _open(sha256: str) -> IO[bytes]:
            return self.artifacts.open(prefix, blob_path(sha256))

        return dataset_tables.frames(fmt, digests, _open)

    def _version_rows(self, info: DatasetVersionInfo) -> dataset_tables.Frames:
        return self._rows(info.workspace, info.format, [f.sha256 for f in info.file_list])

    def get_dataset(
        self, workspace: str, name: str, version: int | None = None
    ) -> DatasetVersionInfo:
        """A version by number, or the latest."""
        return self.store.get_version(workspace, name, version)

    def list_datasets(
        self, workspace: str, name: str | None = None, latest: bool = False
    ) -> list[DatasetVersionInfo]:
        """Versions of ``name`` (newest first), or of every dataset; ``latest``: one each."""
        self.tracking.get_workspace(workspace)
        return self.store.list_versions(workspace, name, latest)

    def open_dataset_file(self, workspace: str, name: str, version: int, path: str) -> IO[bytes]:
        info = self.store.get_version(workspace, name, version)
        for f in info.file_list:
            if f.path == path:
                return self.artifacts.open(blob_prefix(workspace), blob_path(f.sha256))
        raise NotFound(f"Dataset {info.ref} has no file {path!r}.")

    def take(self, workspace: str, name: str, version: int, n: int = 10) -> dict[str, Any]:
        """The first ``n`` rows of a tabular version: ``{"columns": [...], "rows": [...]}``."""
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_TAKE:
            raise InvalidInput(f"n must be an integer from 0 to {MAX_TAKE}.")
        info = self.store.get_version(workspace, name, version)
        if info.kind != TABULAR:
            raise InvalidInput(f"Dataset {info.ref} is a file dataset: it has no rows.")
        return dataset_tables.head(self._version_rows(info), n)

    def delete_dataset_version(self, workspace: str, name: str, version: int) -> None:
        """Remove a version; refused while a registered model was trained from it."""
        info = self.store.get_version(workspace, name, version)
        models = self._models_of_runs(workspace, [r for r, _ in self._consumers(info)])
        models += [m for m in self._models_naming(info) if m not in models]
        if models:
            names = ", ".join(f"{m.name}:{m.version}" for m in models)
            raise Conflict(
                f"Dataset {info.ref} cannot be deleted: registered model {names} depends on it "
                "(trained by a run that read it, or registered naming it). Delete those model "
                "versions first."
            )
        self.store.delete_version(workspace, name, version)
        in_use = self.store.files_in_use(workspace)
        for f in info.file_list:
            if f.sha256 not in in_use:
                self.artifacts.delete(blob_prefix(workspace), blob_path(f.sha256))

    # ------------------------------------------------------------------- jobs
    def resolve_inputs(self, workspace: str, inputs: Any) -> list[dict[str, Any]]:
        """A job's inputs checked: every dataset version exists."""
        checked = parse_inputs(inputs)
        for item in checked:
            self.store.get_version(workspace, item["dataset"], item["version"])
        return checked

    def record_inputs(self, workspace: str, run_id: str, inputs: list[dict[str, Any]]) -> None:
        """Record on the run which dataset versions it reads (its dataset inputs)."""
        found = []
        for item in inputs:
            info = self.store.get_version(workspace, item["dataset"], item["version"])
            found.append(
                DatasetInput(
                    name=info.name,
                    digest=info.digest,
                    source_type=SOURCE_TYPE,
                    source=orjson.dumps(
                        {"version": info.version, "input": item["name"], "mode": item["mode"]}
                    ).decode(),
                    schema=orjson.dumps({"columns": info.schema}).decode() if info.schema else "",
                    tags={DATASET_CONTEXT_TAG: item["name"]},
                )
            )
        if found:
            self.registry.logged.add_dataset_inputs(workspace, run_id, found)

    def download(self, workspace: str, name: str, version: int, target: Path) -> Path:
        """Write a version's files under ``target`` (a new folder); returns it."""
        info = self.store.get_version(workspace, name, version)
        target.mkdir(parents=True, exist_ok=True)
        for f in info.file_list:
            self.artifacts.get_file(blob_prefix(workspace), blob_path(f.sha256), target / f.path)
        return target

    # ---------------------------------------------------------------- lineage
    def _consumers(self, info: DatasetVersionInfo) -> list[tuple[str, dict[str, Any]]]:
        return self.store.consumers(info.workspace, info.name, info.digest)

    def dataset_runs(self, workspace: str, name: str, version: int) -> list[RunInfo]:
        """The runs that read a version, oldest first."""
        info = self.store.get_version(workspace, name, version)
        out = []
        for run_id in dict.fromkeys(r for r, _ in self._consumers(info)):
            with contextlib.suppress(NotFound):  # a deleted run
                out.append(self.tracking.get_run(workspace, run_id))
        return out

    def _models_of_runs(self, workspace: str, run_ids: Sequence[str]) -> list[ModelVersionInfo]:
        out = []
        for run_id in dict.fromkeys(run_ids):
            out += self.registry.list_versions(workspace, run_id=run_id)
        return out

    def _models_naming(self, info: DatasetVersionInfo) -> list[ModelVersionInfo]:
        """Model versions registered with ``datasets=[(..., this version)]``."""
        return [
            m
            for m in self.registry.list_versions(info.workspace)
            if any(_names(d, info) for d in m.datasets)
        ]

    def _named_datasets(self, m: ModelVersionInfo) -> list[DatasetVersionInfo]:
        out = []
        for d in m.datasets:
            if str(d.get("version", "")).isdigit():
                with contextlib.suppress(NotFound):  # deleted since, or named only
                    out.append(self.store.get_version(m.workspace, d["dataset"], int(d["version"])))
        return out

    def _run_datasets(self, workspace: str, run_id: str) -> list[DatasetVersionInfo]:
        lineage = self.registry.lineage(workspace, [run_id]).get(run_id)
        out = []
        for d in lineage.datasets if lineage else []:
            if d.source_type != SOURCE_TYPE:
                continue
            found = self.store.find_digest(workspace, d.name, d.digest)
            if found is not None:
                out.append(found)
        return out

    def lineage(
        self,
        workspace: str,
        dataset: str | None = None,
        version: int | None = None,
        model: str | None = None,
        model_version: int | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """The graph around a dataset version, a model version or a run.

        ``{"nodes": [{"id", "kind", "label", ...}], "edges": [{"from", "to"}]}``:
        dataset version -> run that read it -> model version registered from
        the run -> endpoint deployment serving it.
        """
        graph = _Graph()
        runs: list[str] = []
        graph_models: list[ModelVersionInfo] = []  # and the models that name their data
        if dataset is not None:
            info = self.store.get_version(workspace, dataset, version)
            graph.dataset(info)
            for r, _ in self._consumers(info):
                runs.append(r)
                graph.edge(_dataset_id(info), f"run:{r}")
            graph_models = self._models_naming(info)
        elif model is not None:
            found = self.registry.resolve_version(workspace, model, model_version)
            for ds in self._named_datasets(found):
                graph.dataset(ds)
            if found.run_id:
                runs.append(found.run_id)
            graph_models = [found]
        elif run_id is not None:
            self.tracking.get_run(workspace, run_id)
            runs.append(run_id)
        else:
            raise InvalidInput("Ask for the lineage of a dataset, a model or a run.")
        try:
            served = serving(self.deployments.list_endpoints(workspace))
        except CumuloError:
            served = {}
        for r in dict.fromkeys(runs):
            try:
                run = self.tracking.get_run(workspace, r)
            except NotFound:
                continue
            read = self._run_datasets(workspace, r)
            for ds in read:  # nodes in reading order: data, run, model, endpoint
                graph.dataset(ds)
            graph.run(run)
            for ds in read:
                graph.edge(_dataset_id(ds), f"run:{r}")
            for m in self._models_of_runs(workspace, [r]):
                graph.model(m)
                graph.edge(f"run:{r}", _model_id(m))
        for m in graph_models:
            graph.model(m)
            for ds in self._named_datasets(m):
                if _dataset_id(ds) in graph.nodes:
                    graph.edge(_dataset_id(ds), _model_id(m))
        for node in list(graph.nodes.values()):
            if node["kind"] != "model":
                continue
            for where in served.get((node["name"], node["version"]), []):
                node_id = f"endpoint:{where['endpoint']}/{where['deployment']}"
                graph.add(
                    node_id,
                    "endpoint",
                    f"{where['endpoint']}/{where['deployment']}",
                    endpoint=where["endpoint"],
                    deployment=where["deployment"],
                    traffic=where["traffic"],
                )
                graph.edge(node["id"], node_id)
        return graph.to_dict()

    # ------------------------------------------------------------------ drift
    def compare_datasets(
        self,
        workspace: str,
        name: str,
        version: int,
        other_name: str,
        other_version: int,
        threshold: float = dataset_tables.PSI_THRESHOLD,
    ) -> dict[str, Any]:
        """Column by column drift of ``other`` against ``name:version`` (the baseline)."""
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold < 0:
            raise InvalidInput("threshold must be a number >= 0.")
        a = self.store.get_version(workspace, name, version)
        b = self.store.get_version(workspace, other_name, other_version)
        for info in (a, b):
            if info.kind != TABULAR:
                raise InvalidInput(f"Dataset {info.ref} is a file dataset: only tables compare.")
        columns = dataset_tables.compare(
            (self._version_rows(a), a.profile), (self._version_rows(b), b.profile), float(threshold)
        )
        return {
            "base": a.ref,
            "other": b.ref,
            "threshold": float(threshold),
            "drift": any(c["drift"] for c in columns),
            "rows": [a.profile.get("rows"), b.profile.get("rows")],
            "columns": columns,
        }

    def compare_with_endpoint(
        self,
        workspace: str,
        name: str,
        version: int,
        endpoint: str,
        deployment: str | None = None,
        limit: int = 1000,
        threshold: float = dataset_tables.PSI_THRESHOLD,
    ) -> dict[str, Any]:
        """Drift of an endpoint's sampled requests against ``name:version``, per column.

        Only the columns the requests carry are compared (a label the model
        predicts is not in them); a column the dataset lacks is ``added``.
        """
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold < 0:
            raise InvalidInput("threshold must be a number >= 0.")
        base = self.store.get_version(workspace, name, version)
        if base.kind != TABULAR:
            raise InvalidInput(f"Dataset {base.ref} is a file dataset: only tables compare.")
        logs = self.deployments.get_request_logs(workspace, endpoint, deployment, limit)
        columns = [c["name"] for c in base.schema]
        frame = dataset_tables.request_rows([str(r["request"]) for r in logs], columns)
        requests = partial(iter, [frame])  # the sampled rows, one DataFrame
        _, sampled = dataset_tables.profile(requests)
        present = set(sampled["column_profiles"])
        kept = {k: v for k, v in base.profile.get("column_profiles", {}).items() if k in present}
        result = dataset_tables.compare(
            (self._version_rows(base), {**base.profile, "column_profiles": kept}),
            (requests, sampled),
            float(threshold),
        )
        where = endpoint + (f"/{deployment}" if deployment else "")
        return {
            "base": base.ref,
            "other": f"requests to {where}",
            "threshold": float(threshold),
            "drift": any(c["drift"] for c in result),
            "rows": [base.profile.get("rows"), sampled["rows"]],
            "columns": result,
        }


class _Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: list[dict[str, str]] = []

    def add(self, node_id: str, kind: str, label: str, **extra: Any) -> None:
        self.nodes.setdefault(node_id, {"id": node_id, "kind": kind, "label": label, **extra})

    def dataset(self, info: DatasetVersionInfo) -> None:
        self.add(_dataset_id(info), "dataset", info.ref, name=info.name, version=info.version)

    def run(self, run: RunInfo) -> None:
        label = run.display_name or run.id[:8]
        self.add(f"run:{run.id}", "run", label, run_id=run.id, status=run.status)

    def model(self, m: ModelVersionInfo) -> None:
        self.add(_model_id(m), "model", f"{m.name}:{m.version}", name=m.name, version=m.version)

    def edge(self, a: str, b: str) -> None:
        if {"from": a, "to": b} not in self.edges:
            self.edges.append({"from": a, "to": b})

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": list(self.nodes.values()), "edges": self.edges}


def _dataset_id(info: DatasetVersionInfo) -> str:
    return f"dataset:{info.name}:{info.version}"


def _model_id(m: ModelVersionInfo) -> str:
    return f"model:{m.name}:{m.version}"


def _names(ref: dict[str, str], info: DatasetVersionInfo) -> bool:
    return ref.get("dataset") == info.name and ref.get("version") == str(info.version)


def _base(pattern: str, paths: list[str]) -> str:
    """The folder the dataset's paths are relative to: the pattern's part before any wildcard."""
    pattern = pattern.strip("/")
    if len(paths) == 1 and paths[0] == pattern:
        return posixpath.dirname(pattern)
    fixed = []
    for part in pattern.split("/"):
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    base = "/".join(fixed)
    if len(fixed) == len(pattern.split("/")) and any(c in pattern for c in "*?["):
        base = posixpath.dirname(base)
    return base


__all__ = ["FILE", "TABULAR", "DatasetService", "blob_path", "blob_prefix"]
