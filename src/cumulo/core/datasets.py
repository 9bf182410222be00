"""Datastores and versioned datasets: their records, names and content digests.

A datastore is a place files live that a workspace may read and write: the
workspace's own store (``workspacestore``, always there), a folder of the
server's machine, or an S3 bucket and prefix. Its credentials are sealed at
rest and never part of ``DatastoreInfo``.

A dataset version is immutable and named by its content: the digest of its
kind, its format and, for every file, the relative path and the SHA-256 of its
bytes (``version_digest``). Registering the same content under one name again
finds the same version.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from cumulo.core import validation
from cumulo.core.entities import Record
from cumulo.core.errors import InvalidInput

FILE, TABULAR = "file", "tabular"
KINDS = (FILE, TABULAR)
DELIMITED, PARQUET = "delimited", "parquet"
LOCAL, S3, WORKSPACE_STORE = "local", "s3", "workspace"
DEFAULT_DATASTORE = "workspacestore"
LATEST = "latest"
MAX_NAME = 250
MAX_FILES = 100_000
# Where a job's script finds an input: the argument it was given is replaced by the path.
INPUT_MARK = "@cumulo-input:"
DOWNLOAD, MOUNT = "download", "mount"
# How a dataset version a run read is recorded among the run's dataset inputs.
SOURCE_TYPE = "cumulo-dataset"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def dataset_name(name: Any, what: str = "dataset") -> str:
    """Letters, digits, ``_ . -``, starting with a letter or digit (safe in a path and a URL)."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"A {what} name must be a non-empty string.")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"A {what} name is at most {MAX_NAME} characters.")
    if not _NAME_RE.match(name):
        raise InvalidInput(
            f"Invalid {what} name {name!r}: use letters, digits, '_', '.' and '-', "
            "starting with a letter or a digit."
        )
    return name


def datastore_name(name: Any) -> str:
    return dataset_name(name, "datastore")


def sha256_hex(value: Any) -> str:
    if not isinstance(value, str) or not _SHA_RE.match(value):
        raise InvalidInput(f"{value!r} is not a SHA-256 digest (64 lowercase hex digits).")
    return value


def file_path(path: Any) -> str:
    """A file's path inside a dataset: relative, no '..', no hidden characters."""
    rel = validation.artifact_path(path)
    if not rel:
        raise InvalidInput("A dataset file needs a name.")
    return rel


def parse_format(kind: str, fmt: dict[str, Any] | None) -> dict[str, Any]:
    """The reading options of a tabular dataset, checked; a file dataset has none."""
    if kind not in KINDS:
        raise InvalidInput(f"A dataset is 'file' or 'tabular', not {kind!r}.")
    if kind == FILE:
        if fmt:
            raise InvalidInput("A file dataset takes no format.")
        return {}
    fmt = dict(fmt or {})
    kind_of = fmt.get("type")
    if kind_of == PARQUET:
        if set(fmt) - {"type"}:
            raise InvalidInput(f"Unknown parquet options: {sorted(set(fmt) - {'type'})}.")
        return {"type": PARQUET}
    if kind_of == DELIMITED:
        unknown = set(fmt) - {"type", "separator", "header"}
        if unknown:
            raise InvalidInput(f"Unknown delimited-file options: {sorted(unknown)}.")
        sep = fmt.get("separator", ",")
        if not isinstance(sep, str) or len(sep) != 1 or sep in '\r\n"':
            raise InvalidInput(f"separator must be one character, got {sep!r}.")
        header = fmt.get("header", True)
        if not isinstance(header, bool):
            raise InvalidInput("header must be true or false.")
        return {"type": DELIMITED, "separator": sep, "header": header}
    raise InvalidInput(f"A tabular dataset is read as 'delimited' or 'parquet', not {kind_of!r}.")


def version_digest(kind: str, fmt: dict[str, Any], files: list[DatasetFile]) -> str:
    """The content digest of a version: kind, format and every file's path and SHA-256."""
    manifest = {
        "kind": kind,
        "format": fmt,
        "files": sorted([f.path, f.sha256] for f in files),
    }
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class DatastoreInfo(Record):
    """A datastore as shown: never its credentials, only whether it has some."""

    name: str
    workspace: str
    kind: str
    config: dict[str, Any] = field(default_factory=dict)
    has_credentials: bool = False
    is_default: bool = False
    created_at: int = 0


@dataclass(frozen=True)
class DatasetFile(Record):
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class DatasetVersionInfo(Record):
    """One immutable version of a dataset, with its files, schema and profile."""

    name: str
    workspace: str
    version: int
    kind: str
    digest: str
    files: list[dict[str, Any]] = field(default_factory=list)
    format: dict[str, Any] = field(default_factory=dict)
    schema: list[dict[str, str]] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    source: str = ""
    size: int = 0
    created_at: int = 0
    created_by: str = ""

    @property
    def file_list(self) -> list[DatasetFile]:
        return [DatasetFile.from_dict(f) for f in self.files]

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


def input_mark(name: str) -> str:
    """The argument a job's script gets in place of its input ``name``'s local path."""
    return INPUT_MARK + name


def parse_inputs(values: Any) -> list[dict[str, Any]]:
    """A job's dataset inputs: ``[{"name", "dataset", "version", "mode"}]``, checked."""
    if values is None:
        return []
    if not isinstance(values, list):
        raise InvalidInput("inputs must be a list of dataset inputs.")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in values:
        if not isinstance(item, dict) or set(item) - {"name", "dataset", "version", "mode"}:
            raise InvalidInput(f"Invalid dataset input {item!r}.")
        name = dataset_name(item.get("name"), "input")
        if name in seen:
            raise InvalidInput(f"Two inputs are named {name!r}.")
        seen.add(name)
        version = item.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidInput(f"Input {name!r} needs a dataset version number.")
        mode = item.get("mode", DOWNLOAD)
        if mode != DOWNLOAD:
            raise InvalidInput(
                f"Input {name!r}: a dataset reaches a job as a download only "
                "(as_download()); mounting is not supported."
            )
        out.append(
            {
                "name": name,
                "dataset": dataset_name(item.get("dataset")),
                "version": version,
                "mode": mode,
            }
        )
    return out
