"""Datastores and datasets: versioned, content-addressed data that runs read.

Example::

    from cumulo import Dataset, Datastore, Experiment, ScriptRunConfig, Workspace

    ws = Workspace.create("demo", exist_ok=True)
    ds = Dataset.Tabular.from_delimited_files("data/train.csv")
    ds = ds.register(ws, "iris-train", description="iris, 150 rows")   # version 1
    ds.profile["rows"], ds.take(5)                                       # computed once
    config = ScriptRunConfig(
        "src", "train.py", arguments=["--data", ds.as_named_input("train").as_download()]
    )
    run = Experiment(ws, "iris").submit(config)                          # gets a local path
    ds.get_runs()                                                        # [run]

Registering the same content again gives the same version; other content the
next one. Files are hashed and sent in chunks, never whole in memory, and a file
the workspace holds already (the same bytes) is not sent again.
"""

from __future__ import annotations

import builtins
import getpass
import glob
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cumulo.core.datasets import (
    DELIMITED,
    DOWNLOAD,
    FILE,
    LATEST,
    LOCAL,
    PARQUET,
    S3,
    TABULAR,
    DatasetVersionInfo,
    DatastoreInfo,
    input_mark,
)
from cumulo.core.entities import FileInfo
from cumulo.core.errors import ConfigError, InvalidInput, InvalidState, NotFound
from cumulo.sdk import v1
from cumulo.sdk.run import RunTracking, WorkspaceRef

CHUNK = 1024 * 1024
_ENV_CREDENTIALS = {
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_session_token": "AWS_SESSION_TOKEN",
}


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:
        raise ConfigError(
            "Tabular datasets need pandas and pyarrow: pip install 'cumulo[data]'."
        ) from exc
    return pd


# ----------------------------------------------------------------- datastores
class Datastore(metaclass=v1.RefusesV1Names):
    """Where files live: the workspace's own store, a folder of the server, an S3 bucket.

    Example::

        store = Datastore.register_s3(ws, "raw", "my-bucket", "landing",
                                      endpoint_url="http://minio:9000")   # AWS_* from the env
        store.upload("local/folder", "2026-12")
        store.browse("2026-12")
        ds = Dataset.File.from_files(store.path("2026-12/*.csv")).register(ws, "raw-dec")
    """

    _v1_names = v1.DATASTORE

    def __init__(self, workspace: WorkspaceRef, info: DatastoreInfo) -> None:
        self.workspace = workspace
        self.info = info

    def __getattr__(self, name: str) -> Any:
        raise v1.refuse("Datastore", name, v1.DATASTORE)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def is_default(self) -> bool:
        return self.info.is_default

    @staticmethod
    def register_local(workspace: WorkspaceRef, name: str, path: str | Path) -> Datastore:
        """A folder of the machine that holds the workspace (the server's, when there is one)."""
        folder = str(Path(path).expanduser().resolve()) if workspace.url is None else str(path)
        info = workspace.transport.datasets.register_datastore(
            workspace.name, name, LOCAL, {"path": folder}
        )
        return Datastore(workspace, info)

    @staticmethod
    def register_s3(
        workspace: WorkspaceRef,
        name: str,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
    ) -> Datastore:
        """An S3 bucket and prefix; the credentials are read from this process's environment.

        ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), when
        set, are sent once and stored sealed; without them the server's own are used.
        """
        credentials = {k: os.environ[v] for k, v in _ENV_CREDENTIALS.items() if os.environ.get(v)}
        info = workspace.transport.datasets.register_datastore(
            workspace.name,
            name,
            S3,
            {"bucket": bucket, "prefix": prefix, "endpoint_url": endpoint_url},
            credentials or None,
        )
        return Datastore(workspace, info)

    @staticmethod
    @v1.arguments("Datastore.get", {"datastore_name": "Datastore.get(ws, name)"})
    def get(workspace: WorkspaceRef, name: str) -> Datastore:
        return Datastore(
            workspace, workspace.transport.datasets.get_datastore(workspace.name, name)
        )

    @staticmethod
    def get_default(workspace: WorkspaceRef) -> Datastore:
        info = workspace.transport.datasets.get_default_datastore(workspace.name)
        return Datastore(workspace, info)

    @staticmethod
    def list(workspace: WorkspaceRef) -> builtins.list[Datastore]:
        found = workspace.transport.datasets.list_datastores(workspace.name)
        return [Datastore(workspace, info) for info in found]

    def set_as_default(self) -> None:
        self.info = self.workspace.transport.datasets.set_default_datastore(
            self.workspace.name, self.name
        )

    def browse(self, path: str = "", recursive: bool = False) -> builtins.list[FileInfo]:
        """Files and folders under ``path`` (every file below it with ``recursive``)."""
        return self.workspace.transport.datasets.browse_datastore(
            self.workspace.name, self.name, path, recursive
        )

    def upload(
        self,
        src_dir: str | Path,
        target_path: str | None = "",
        overwrite: bool = True,
        show_progress: bool = False,
    ) -> builtins.list[str]:
        """Send a local file, or a folder's files, under ``target_path``; their paths there.

        Files already there are replaced (``overwrite=False`` is refused);
        ``show_progress`` is taken for the cloud service's callers and prints nothing.
        """
        if not overwrite:
            raise InvalidInput(
                "Datastore.upload replaces files already there: leave overwrite out, or "
                "upload under a new target_path."
            )
        target_path = target_path or ""
        source = Path(src_dir)
        if source.is_file():
            pairs = [(source, source.name)]
        elif source.is_dir():
            pairs = [(p, p.relative_to(source).as_posix()) for p in sorted(source.rglob("*"))]
            pairs = [(p, rel) for p, rel in pairs if p.is_file()]
        else:
            raise NotFound(f"{str(source)!r} does not exist.")
        out = []
        for local, rel in pairs:
            dest = f"{target_path.strip('/')}/{rel}" if target_path.strip("/") else rel
            with open(local, "rb") as fh:
                self.workspace.transport.datasets.upload_to_datastore(
                    self.workspace.name, self.name, dest, fh
                )
            out.append(dest)
        return out

    def path(self, pattern: str = "") -> tuple[Datastore, str]:
        """Files of this datastore for ``Dataset.File.from_files``: a file, a folder or a glob."""
        return (self, pattern)

    def __repr__(self) -> str:
        return f"Datastore(name={self.name!r}, kind={self.kind!r}, config={self.info.config})"


# ------------------------------------------------------------------- datasets
def _file_digest(path: Path) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def _local_files(paths: Iterable[str | os.PathLike[str]]) -> builtins.list[tuple[Path, str]]:
    """``(local file, path in the dataset)``: a file by its name, a folder's files below it."""
    out: builtins.list[tuple[Path, str]] = []
    for item in paths:
        text = str(item)
        if any(c in text for c in "*?["):
            matched = sorted(Path(p) for p in glob.glob(text, recursive=True))
            out += [(p, p.name) for p in matched if p.is_file()]
            continue
        path = Path(text).expanduser()
        if path.is_file():
            out.append((path, path.name))
        elif path.is_dir():
            out += [
                (p, p.relative_to(path).as_posix()) for p in sorted(path.rglob("*")) if p.is_file()
            ]
        else:
            raise NotFound(f"{text!r} does not exist.")
    if not out:
        raise NotFound(f"No file matches {[str(p) for p in paths]}.")
    return out


class _Source:
    """What an unregistered dataset is made of: local files, or a datastore's."""

    def __init__(self, path: Any) -> None:
        self.datastore: Datastore | None = None
        self.pattern = ""
        self.local: builtins.list[str | os.PathLike[str]] = []
        items = path if isinstance(path, list) else [path]
        for item in items:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Datastore):
                if self.datastore is not None:
                    raise InvalidInput(
                        "A dataset reads one datastore path (a glob may name many files)."
                    )
                self.datastore, self.pattern = item[0], str(item[1])
            elif isinstance(item, str | os.PathLike):
                self.local.append(item)
            else:
                raise InvalidInput(f"{item!r} is neither a local path nor (datastore, path).")
        if self.datastore is not None and self.local:
            raise InvalidInput("A dataset reads local files or a datastore's, not both.")
        if self.datastore is None and not self.local:
            raise InvalidInput("Name the files of the dataset.")


class _Dataset:
    kind = FILE

    def __init__(
        self,
        source: _Source | None = None,
        fmt: dict[str, Any] | None = None,
        *,
        workspace: WorkspaceRef | None = None,
        info: DatasetVersionInfo | None = None,
        keep: Any = None,
    ) -> None:
        self._source = source
        self._format = fmt or {}
        self.workspace = workspace
        self._info = info
        self._keep = keep  # a temporary folder the source's files live in

    # ------------------------------------------------------------ registered
    @property
    def info(self) -> DatasetVersionInfo:
        if self._info is None:
            raise InvalidState("Register the dataset first: ds = ds.register(ws, 'name').")
        return self._info

    @property
    def _ws(self) -> WorkspaceRef:
        assert self.workspace is not None
        return self.workspace

    @property
    def name(self) -> str | None:
        return self._info.name if self._info else None

    @property
    def version(self) -> int | None:
        return self._info.version if self._info else None

    @property
    def id(self) -> str | None:
        """The content digest of the version."""
        return self._info.digest if self._info else None

    @property
    def description(self) -> str:
        return self._info.description if self._info else ""

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._info.tags) if self._info else {}

    def register(
        self,
        workspace: WorkspaceRef,
        name: str,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        create_new_version: bool = True,
    ) -> Any:
        """Store this content as a version of ``name``; the same content is the same version."""
        client = workspace.transport.datasets
        if self._info is not None and self._source is None:
            raise InvalidState(f"Dataset {self._info.ref} is registered already.")
        assert self._source is not None
        kwargs: dict[str, Any] = {
            "format": self._format or None,
            "description": description or "",
            "tags": tags,
            "create_new_version": create_new_version,
            "user": _user(),
        }
        if self._source.datastore is not None:
            info = client.register_dataset(
                workspace.name,
                name,
                self.kind,
                datastore=self._source.datastore.name,
                pattern=self._source.pattern,
                **kwargs,
            )
        else:
            files = []
            for local, rel in _local_files(self._source.local):
                sha, size = _file_digest(local)
                if not client.has_dataset_file(workspace.name, sha):
                    with open(local, "rb") as fh:
                        client.upload_dataset_file(workspace.name, sha, fh)
                files.append({"path": rel, "size": size, "sha256": sha})
            source = ", ".join(str(p) for p in self._source.local)
            info = client.register_dataset(
                workspace.name, name, self.kind, files=files, source=source[:4000], **kwargs
            )
        return type(self)(workspace=workspace, info=info)

    def files(self) -> builtins.list[dict[str, Any]]:
        """The version's files: ``{"path", "size", "sha256"}`` each."""
        return list(self.info.files)

    def to_path(self) -> builtins.list[str]:
        """The paths of the version's files, as a download lays them out."""
        return ["/" + f["path"] for f in self.info.files]

    def download(
        self, target_path: str | Path | None = None, overwrite: bool = False
    ) -> builtins.list[str]:
        """Write the version's files under ``target_path`` (a new temporary folder by default)."""
        info = self.info
        target = Path(target_path) if target_path else Path(tempfile.mkdtemp(prefix="cumulo-data-"))
        out = []
        for f in info.files:
            dest = target / f["path"]
            if dest.exists() and not overwrite:
                raise InvalidState(f"{dest} exists; pass overwrite=True to replace it.")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with (
                self._ws.transport.datasets.open_dataset_file(
                    self._ws.name, info.name, info.version, f["path"]
                ) as src,
                open(dest, "wb") as fh,
            ):
                shutil.copyfileobj(src, fh, CHUNK)
            out.append(str(dest))
        return out

    def __getattr__(self, name: str) -> Any:
        raise v1.refuse(
            type(self).__name__,
            name,
            {"mount": "ds.download(target_path): mounting needs FUSE on every target"},
        )

    def as_named_input(self, name: str) -> DatasetConsumptionConfig:
        """This version as the input ``name`` of a job: ``.as_download()`` in its arguments."""
        return DatasetConsumptionConfig(name, self)

    def as_download(self) -> DatasetConsumptionConfig:
        """``ds.as_download()``: this version as an input named after the dataset."""
        return self.as_named_input(self._input_name()).as_download()

    def as_mount(self) -> DatasetConsumptionConfig:
        """Refused with what to use instead, as ``as_named_input(name).as_mount()`` is."""
        return self.as_named_input(self._input_name()).as_mount()

    def _input_name(self) -> str:
        if self.name is None:
            raise InvalidInput(
                "Register the dataset first (ds.register(ws, name)): a job reads a version."
            )
        return self.name

    def get_runs(self) -> builtins.list[RunTracking]:
        """The runs that read this version, oldest first."""
        info = self.info
        found = self._ws.transport.datasets.dataset_runs(self._ws.name, info.name, info.version)
        return [self._ws.get_run(r.id) for r in found]

    def get_lineage(self) -> dict[str, Any]:
        """The graph: this version -> runs that read it -> models -> endpoints."""
        info = self.info
        return self._ws.transport.datasets.lineage(
            self._ws.name, dataset=info.name, version=info.version
        )

    def delete(self) -> None:
        """Delete this version (refused while a registered model depends on it)."""
        info = self.info
        self._ws.transport.datasets.delete_dataset_version(self._ws.name, info.name, info.version)

    def __repr__(self) -> str:
        cls = type(self).__name__
        if self._info is None:
            return f"{cls}(unregistered)"
        info = self._info
        return f"{cls}(name={info.name!r}, version={info.version}, files={len(info.files)})"


class FileDataset(_Dataset):
    """Files, as they are: download them, or hand them to a job."""

    kind = FILE


class TabularDataset(_Dataset):
    """Rows read from delimited or parquet files, with a schema and a profile."""

    kind = TABULAR

    @property
    def schema(self) -> builtins.list[dict[str, str]]:
        return list(self.info.schema)

    @property
    def profile(self) -> dict[str, Any]:
        """Rows, columns and per column: type, count, missing, distinct, min/max/mean, histogram."""
        return dict(self.info.profile)

    def take(self, n: int = 10) -> Any:
        """The first ``n`` rows as a pandas DataFrame (read by the workspace, not downloaded)."""
        info = self.info
        data = self._ws.transport.datasets.take(self._ws.name, info.name, info.version, n)
        return _pandas().DataFrame(data["rows"], columns=data["columns"])

    def to_pandas_dataframe(self) -> Any:
        """Every row in one pandas DataFrame (downloaded to a temporary folder first)."""
        pd = _pandas()
        fmt = self.info.format
        with tempfile.TemporaryDirectory(prefix="cumulo-data-") as tmp:
            paths = sorted(self.download(tmp), key=lambda p: Path(p).relative_to(tmp).as_posix())
            frames = []
            for path in paths:
                if fmt.get("type") == PARQUET:
                    frames.append(pd.read_parquet(path))
                else:
                    header = fmt.get("header", True)
                    frame = pd.read_csv(
                        path, sep=fmt.get("separator", ","), header=0 if header else None
                    )
                    if not header:
                        frame.columns = [f"Column{i + 1}" for i in range(frame.shape[1])]
                    frames.append(frame)
        return pd.concat(frames, ignore_index=True) if len(frames) != 1 else frames[0]

    def compare(self, other: TabularDataset, threshold: float = 0.2) -> dict[str, Any]:
        """Drift of ``other`` against this version, column by column.

        Each column: ``change`` (``added``, ``removed``, ``type`` or None), ``psi``
        (population stability index), ``wasserstein`` (numeric columns, as a share of
        the range) and ``drift`` (a schema change, or ``psi`` over ``threshold``).
        """
        a, b = self.info, other.info
        return self._ws.transport.datasets.compare_datasets(
            self._ws.name, a.name, a.version, b.name, b.version, threshold
        )

    def compare_with_endpoint(
        self,
        endpoint: Any,
        deployment: str | None = None,
        limit: int = 1000,
        threshold: float = 0.2,
    ) -> dict[str, Any]:
        """Drift of an endpoint's sampled requests (``request_logging``) against this version.

        Rows sent as lists take this version's columns in order; only the columns
        the requests carry are compared. The report reads like ``compare``'s.
        """
        info = self.info
        name = endpoint if isinstance(endpoint, str) else endpoint.name
        return self._ws.transport.datasets.compare_with_endpoint(
            self._ws.name, info.name, info.version, name, deployment, limit, threshold
        )


class DatasetConsumptionConfig:
    """A dataset version as a job's named input; put it in a ``ScriptRunConfig``'s arguments."""

    def __init__(self, name: str, dataset: _Dataset, mode: str = DOWNLOAD) -> None:
        self.name = name
        self.dataset = dataset
        self.mode = mode

    def as_download(self) -> DatasetConsumptionConfig:
        """The script gets the path of a folder holding the version's files."""
        return DatasetConsumptionConfig(self.name, self.dataset, DOWNLOAD)

    def as_mount(self) -> DatasetConsumptionConfig:
        raise InvalidInput(
            "Mounting a dataset is not supported (it needs a FUSE mount on every compute "
            "target); use as_download(): the files are fetched into the job's folder first."
        )

    def to_input(self) -> dict[str, Any]:
        info = self.dataset.info
        return {"name": self.name, "dataset": info.name, "version": info.version, "mode": self.mode}

    @property
    def mark(self) -> str:
        return input_mark(self.name)

    def __repr__(self) -> str:
        return f"DatasetConsumptionConfig({self.name!r}, {self.dataset!r}, mode={self.mode!r})"


# ------------------------------------------------------------------ factories
class _FileFactory:
    @staticmethod
    def from_files(path: Any) -> FileDataset:
        """Files from a local path, a list of them, a glob, or ``(datastore, pattern)``."""
        return FileDataset(_Source(path))


class _TabularFactory:
    @staticmethod
    @v1.arguments(
        "Dataset.Tabular.from_delimited_files",
        {
            k: "leave it out: column types are read from the files (the version's profile "
            "shows them)"
            for k in (
                "infer_column_types",
                "set_column_types",
                "support_multi_line",
                "validate",
                "include_path",
                "partition_format",
                "empty_as_string",
            )
        },
    )
    def from_delimited_files(
        path: Any, separator: str = ",", header: bool = True
    ) -> TabularDataset:
        """Rows of CSV (or other delimited) files; without ``header`` columns are Column1..."""
        return TabularDataset(
            _Source(path), {"type": DELIMITED, "separator": separator, "header": header}
        )

    @staticmethod
    def from_parquet_files(path: Any) -> TabularDataset:
        return TabularDataset(_Source(path), {"type": PARQUET})

    @staticmethod
    def from_pandas_dataframe(dataframe: Any) -> TabularDataset:
        """A DataFrame, stored as one parquet file (the same frame is the same content)."""
        _pandas()
        folder = tempfile.TemporaryDirectory(prefix="cumulo-frame-")
        path = Path(folder.name) / "data.parquet"
        dataframe.to_parquet(path, index=False)
        return TabularDataset(_Source(str(path)), {"type": PARQUET}, keep=folder)


class Dataset(metaclass=v1.RefusesV1Names):
    """Entry points: ``Dataset.File``, ``Dataset.Tabular``, ``get_by_name``, ``list``."""

    _v1_names = {
        "get_all": "ws.datasets or Dataset.list(ws)",
        "get_by_id": "Dataset.get_by_name(ws, name, version)",
    }

    File = _FileFactory
    Tabular = _TabularFactory

    @staticmethod
    def get_by_name(workspace: WorkspaceRef, name: str, version: int | str = LATEST) -> Any:
        """A registered version (the latest by default), as a file or tabular dataset."""
        number = None if version == LATEST else int(version)
        info = workspace.transport.datasets.get_dataset(workspace.name, name, number)
        return _wrap(workspace, info)

    @staticmethod
    def list(workspace: WorkspaceRef) -> builtins.list[Any]:
        """The latest version of every dataset of the workspace."""
        found = workspace.transport.datasets.list_datasets(workspace.name, latest=True)
        return [_wrap(workspace, info) for info in found]

    @staticmethod
    def get_versions(workspace: WorkspaceRef, name: str) -> builtins.list[Any]:
        """Every version of ``name``, newest first."""
        found = workspace.transport.datasets.list_datasets(workspace.name, name)
        return [_wrap(workspace, info) for info in found]


def _wrap(workspace: WorkspaceRef, info: DatasetVersionInfo) -> Any:
    cls = TabularDataset if info.kind == TABULAR else FileDataset
    return cls(workspace=workspace, info=info)


def job_inputs(
    values: builtins.list[Any],
) -> tuple[builtins.list[Any], builtins.list[dict[str, Any]]]:
    """A job's arguments with its dataset inputs replaced by their marks, and the inputs."""
    args: builtins.list[Any] = []
    inputs: dict[str, dict[str, Any]] = {}
    for value in values or []:
        if isinstance(value, _Dataset):
            raise InvalidInput(
                "Give a dataset to a job as ds.as_named_input('name').as_download()."
            )
        if isinstance(value, DatasetConsumptionConfig):
            wanted = value.to_input()
            if inputs.get(value.name, wanted) != wanted:
                raise InvalidInput(f"Two inputs are named {value.name!r}.")
            inputs[value.name] = wanted
            args.append(value.mark)
        else:
            args.append(value)
    return args, list(inputs.values())


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return ""
