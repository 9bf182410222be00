"""Export a workspace to a folder, and import such a folder into another store.

An export folder holds::

    manifest.json        format version, Cumulo version, the store's revision, the
                         workspace, per table its row count and SHA-256, the artifacts'
                         count, size and index checksum
    tables/<name>.jsonl  the workspace's rows of each table, in primary-key order
    artifacts.jsonl      one line per artifact file: its key, size and SHA-256
    artifacts/<key>      the files under the workspace's artifact prefix

The tables exported are every table of the metadata store except those in
``EXCLUDED`` (each with its reason): a table added later travels by default,
and a test fails if it cannot be scoped to a workspace.

Ids. Run, logged model and published pipeline ids (random hex, cited by users
and by MLflow URIs) are kept; where the target store already has one (a copy
imported next to its original) it gets a fresh id, replaced wherever the old
one appears in the workspace's text. Numeric ids (experiments, models,
endpoints...) are given by the target store and every reference follows.

An import checks every checksum first, copies the artifacts under the new
workspace's prefix, then writes every row in one transaction; on any failure
the transaction rolls back and the copied files are removed, so the target is
left as it was.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.metadata
import json
import math
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Integer,
    LargeBinary,
    Select,
    Table,
    func,
    insert,
    select,
)

from cumulo.core import validation
from cumulo.core.deployments import DeploymentState
from cumulo.core.entities import now_ms
from cumulo.core.errors import Conflict, InvalidInput, InvalidState, NotFound
from cumulo.core.jobs import BuildStatus, JobState
from cumulo.core.pipelines import CANCELED, ENDED_STATES
from cumulo.core.status import TERMINAL, RunStatus
from cumulo.store.artifacts import CHUNK, ArtifactStore
from cumulo.store.db import Database, current_revision, known_revisions, migration_head
from cumulo.store.deployments import new_key
from cumulo.store.driver_leases import DONE, RUNNING
from cumulo.store.tables import metadata

FORMAT = "cumulo-workspace-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARTIFACT_INDEX = "artifacts.jsonl"
BATCH = 1000  # rows per INSERT

# Tables whose rows never travel, and why.
EXCLUDED: dict[str, str] = {
    # Credentials: an export must be safe to hand around; the target's owner makes new ones.
    "auth_tokens": "access tokens are credentials of the source store",
    # The security record of the server that answered the requests, not workspace data.
    "audit_log": "the audit log belongs to the server that answered the requests",
    # Retry keys of metric batches in flight to the source; meaningless elsewhere.
    "ingested_batches": "retry keys of metric batches sent to the source",
    # Processes and leases of the source machines: pids, hosts, heartbeats.
    "pool_nodes": "worker processes of the source's managed pools",
    "ray_heads": "leases on the source's running Ray heads",
    "deployment_replicas": "replica processes of the source's endpoints",
    # Telemetry of those replicas: request counts and logged payloads, kept under retention.
    "deployment_metrics": "request metrics of the source's replicas",
    "deployment_request_logs": "logged requests of the source's replicas",
}

# References between tables that the schema does not declare as foreign keys.
UNDECLARED: dict[tuple[str, str], str] = {
    ("metric_chunks", "run_id"): "runs",
    ("job_logs", "run_id"): "runs",
    ("run_dataset_inputs", "run_id"): "runs",
    ("run_model_links", "run_id"): "runs",
    ("run_model_links", "model_id"): "logged_models",
    ("logged_models", "experiment_id"): "experiments",
    ("logged_models", "source_run_id"): "runs",
    ("logged_model_metrics", "run_id"): "runs",
    ("model_versions", "run_id"): "runs",
    ("model_versions", "logged_model_id"): "logged_models",
    ("sweeps", "run_id"): "runs",
    ("sweeps", "experiment_id"): "experiments",
    ("sweep_trials", "run_id"): "runs",
    ("pipeline_runs", "run_id"): "runs",
    ("pipeline_runs", "experiment_id"): "experiments",
    ("pipeline_runs", "resume_of"): "runs",
    ("pipeline_steps", "workspace_id"): "workspaces",
    ("pipeline_steps", "experiment_id"): "experiments",
    ("pipeline_steps", "run_id"): "runs",
    ("pipeline_steps", "reused_from"): "runs",
    ("pipeline_schedules", "pipeline_id"): "published_pipelines",
    ("pipeline_schedules", "last_run_id"): "runs",
    ("pipeline_endpoints", "default_pipeline_id"): "published_pipelines",
    ("schedule_firings", "run_id"): "runs",
    ("runs", "parent_id"): "runs",
}

# Tables whose string ids are kept across stores (random hex: unique in any store).
KEPT_IDS = ("runs", "logged_models", "published_pipelines")
_HEX_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")

# Reports progress: ``meter(label, total, unit)`` yields ``advance(n)``; unit is
# "rows" or "bytes".
Meter = Callable[[str, int, str], AbstractContextManager[Callable[[int], None]]]


@contextlib.contextmanager
def _quiet(_label: str, _total: int, _unit: str) -> Iterator[Callable[[int], None]]:
    yield lambda _n: None


@dataclass
class TransferSummary:
    """What an export or import carried."""

    workspace: str
    folder: Path
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0
    # Runs of unfinished jobs, exported with --force as canceled.
    interrupted_runs: list[str] = field(default_factory=list)
    # Ids the target store already had, given fresh ids on import (old -> new).
    renamed_ids: dict[str, str] = field(default_factory=dict)
    # Sealed credentials carried (they open only with the source home's secret.key).
    sealed_values: int = 0


# ------------------------------------------------------------------ the table graph
def references() -> dict[tuple[str, str], str]:
    """Every (table, column) that names a row of another table -> that table."""
    refs = dict(UNDECLARED)
    for table in metadata.tables.values():
        for column in table.columns:
            for fk in column.foreign_keys:
                refs[(table.name, column.name)] = fk.column.table.name
    return refs


def exported_tables() -> list[Table]:
    """The tables an export carries, parents before the tables that refer to them."""
    refs = references()
    pending = {n: t for n, t in metadata.tables.items() if n not in EXCLUDED and n != "workspaces"}
    done: set[str] = {"workspaces"}
    ordered: list[Table] = []
    while pending:
        ready = sorted(
            name
            for name in pending
            if all(
                parent in done or parent == name or parent in EXCLUDED
                for (table, _c), parent in refs.items()
                if table == name
            )
        )
        if not ready:
            raise RuntimeError(f"Tables refer to each other in a circle: {sorted(pending)}.")
        for name in ready:
            ordered.append(pending.pop(name))
            done.add(name)
    return ordered


def scope_column(table: Table) -> tuple[Column[Any], str]:
    """The column that ties a row to its workspace, and the table it names.

    ``workspace_id`` where the table has it, else its first reference to a table
    that leads to the workspace (a run, an experiment, a model...).
    """
    if "workspace_id" in table.c:
        return table.c.workspace_id, "workspaces"
    refs = references()
    for column in table.columns:
        parent = refs.get((table.name, column.name))
        if parent and parent != table.name and parent not in EXCLUDED:
            return column, parent
    raise RuntimeError(
        f"Table {table.name!r} has no column that ties its rows to a workspace: give it a "
        "workspace_id, declare its reference in store.transfer.UNDECLARED, or list it in "
        "EXCLUDED with the reason it does not travel."
    )


def _primary(table: Table) -> Column[Any]:
    return next(iter(table.primary_key.columns))


def _scoped(table: Table, ws_id: int) -> Select[Any]:
    """The workspace's rows of ``table``, in primary-key order."""
    return select(table).where(_belongs(table, ws_id)).order_by(*table.primary_key.columns)


def _belongs(table: Table, ws_id: int) -> Any:
    column, parent = scope_column(table)
    if parent == "workspaces":
        return column == ws_id
    owner = metadata.tables[parent]
    return column.in_(select(_primary(owner)).where(_belongs(owner, ws_id)))


# ------------------------------------------------------------------ row encoding
def _encode(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in row.items():
        column_type = table.c[name].type
        if value is not None and isinstance(column_type, LargeBinary):
            value = base64.b64encode(value).decode()
        elif isinstance(value, float) and isinstance(column_type, Float):
            value = value if math.isfinite(value) else str(value)  # "nan", "inf", "-inf"
        out[name] = value
    return out


def _decode(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in row.items():
        if name not in table.c:
            continue  # a column of an older schema, since dropped
        column_type = table.c[name].type
        if value is not None and isinstance(column_type, LargeBinary):
            value = base64.b64decode(value)
        elif isinstance(value, str) and isinstance(column_type, Float):
            value = float(value)
        out[name] = value
    return out


class _Writer:
    """A file written through: counts lines and hashes what passes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "wb")  # noqa: SIM115 -- closed by close(), which returns the sums
        self.sha = hashlib.sha256()
        self.lines = 0

    def write(self, value: Any) -> None:
        data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        self.fh.write(data)
        self.sha.update(data)
        self.lines += 1

    def close(self) -> dict[str, Any]:
        self.fh.close()
        return {"rows": self.lines, "sha256": self.sha.hexdigest()}


def _sha256_file(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def _version() -> str:
    try:
        return importlib.metadata.version("cumulo")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@contextlib.contextmanager
def _snapshot(db: Database) -> Iterator[Connection]:
    """One read transaction that sees the store as of its first read."""
    conn = db.engine.connect()
    if not db.is_sqlite:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    try:
        with conn.begin():
            yield conn
    finally:
        conn.close()


# ------------------------------------------------------------------------ export
def export_workspace(
    db: Database,
    artifacts: ArtifactStore,
    workspace: str,
    folder: str | Path,
    force: bool = False,
    meter: Meter | None = None,
) -> TransferSummary:
    """Write ``workspace``'s rows and artifact files to ``folder`` (new, or empty).

    Refuses while jobs of the workspace are queued or running, or sweeps or
    pipelines are being driven; with ``force`` those jobs are exported as
    ended and their runs as ``Canceled`` (the source is not changed).
    """
    meter = meter or _quiet
    dest = Path(folder).expanduser()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidInput(f"{str(dest)!r} is not an empty folder: export into a new one.")
    tmp = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    summary = TransferSummary(workspace=workspace, folder=dest)
    try:
        manifest = _export_into(db, artifacts, workspace, tmp, force, meter, summary)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if dest.exists():
            dest.rmdir()
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _export_into(
    db: Database,
    artifacts: ArtifactStore,
    workspace: str,
    tmp: Path,
    force: bool,
    meter: Meter,
    summary: TransferSummary,
) -> dict[str, Any]:
    tables = exported_tables()
    listing: dict[str, Any] = {}
    with _snapshot(db) as conn:
        ws = conn.execute(
            select(metadata.tables["workspaces"]).where(
                metadata.tables["workspaces"].c.name == workspace
            )
        ).first()
        if ws is None:
            raise NotFound(f"Workspace {workspace!r} does not exist in {db.safe_url}.")
        revision = current_revision(conn)
        interrupted = _unfinished(conn, ws.id, workspace, force)
        summary.interrupted_runs = sorted(interrupted.runs)
        counts = {t.name: _count(conn, t, ws.id) for t in tables}
        ended_at = now_ms()
        with meter(f"Exporting {workspace} (rows)", sum(counts.values()), "rows") as advance:
            for table in tables:
                writer = _Writer(tmp / "tables" / f"{table.name}.jsonl")
                try:
                    for row in conn.execute(_scoped(table, ws.id)).mappings():
                        values = _on_export(table.name, dict(row), interrupted, ended_at)
                        summary.sealed_values += sum(
                            isinstance(v, str) and "sealed:" in v for v in values.values()
                        )
                        writer.write(_encode(table, values))
                        advance(1)
                finally:
                    listing[table.name] = writer.close()
                summary.rows[table.name] = listing[table.name]["rows"]
    files, size, index_sha = _export_artifacts(artifacts, workspace, tmp, meter)
    summary.files, summary.bytes = files, size
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "cumulo_version": _version(),
        "store_revision": revision,
        "exported_at": ended_at,
        "workspace": {
            "id": ws.id,
            "name": ws.name,
            "description": ws.description,
            "created_at": ws.created_at,
        },
        "tables": listing,
        "excluded": EXCLUDED,
        "artifacts": {"files": files, "bytes": size, "index_sha256": index_sha},
        "interrupted_runs": summary.interrupted_runs,
        "sealed_values": summary.sealed_values,
    }


def _count(conn: Connection, table: Table, ws_id: int) -> int:
    return int(
        conn.execute(select(func.count()).select_from(table).where(_belongs(table, ws_id))).scalar()
        or 0
    )


@dataclass
class _Interrupted:
    """Work of the workspace that had not ended, exported as ended with ``force``."""

    runs: set[str] = field(default_factory=set)  # runs of jobs, sweeps and pipelines
    sweeps: set[int] = field(default_factory=set)  # their sweeps' row ids
    pipelines: set[int] = field(default_factory=set)  # their pipeline runs' row ids


# Sweep trial states (services.sweeps) of a trial not yet ended, and the state of one
# that ended without a result.
_TRIAL_ACTIVE, _TRIAL_FAILED = ("claimed", "submitted"), "failed"


def _unfinished(conn: Connection, ws_id: int, workspace: str, force: bool) -> _Interrupted:
    """Runs of the workspace's jobs that have not ended, and of sweeps and pipelines
    still driven: refused unless ``force``."""
    t = metadata.tables
    found = _Interrupted()
    jobs = t["jobs"]
    found.runs.update(
        conn.execute(
            select(jobs.c.run_id).where(
                jobs.c.workspace_id == ws_id, jobs.c.state != JobState.DONE.value
            )
        ).scalars()
    )
    for name, ids in (("sweeps", found.sweeps), ("pipeline_runs", found.pipelines)):
        driven = t[name]
        for row_id, run_id in conn.execute(
            select(driven.c.id, driven.c.run_id).where(
                driven.c.workspace_id == ws_id, driven.c.state == RUNNING
            )
        ):
            ids.add(row_id)
            found.runs.add(run_id)
    runs = found.runs
    if runs and not force:
        shown = ", ".join(sorted(runs)[:5]) + (" ..." if len(runs) > 5 else "")
        raise InvalidState(
            f"Workspace {workspace!r} has {len(runs)} queued or running jobs, sweeps or "
            f"pipelines ({shown}): wait for them to end or cancel them, or pass --force to "
            "export them as canceled runs."
        )
    return found


def _on_export(
    table: str, row: dict[str, Any], interrupted: _Interrupted, ended_at: int
) -> dict[str, Any]:
    """What a row becomes in the export: no credentials in clear, no leases, and with
    ``force`` the unfinished work ended: runs canceled, jobs, sweeps and pipelines
    done, their steps canceled and their trials failed, as their drivers end them."""
    if table == "endpoints":
        row["primary_key"] = row["secondary_key"] = ""  # new keys are made on import
    if "lease_owner" in row:
        row["lease_owner"] = row["lease_expires_at"] = None
    if table == "jobs":
        row["handle"] = row["node"] = None  # the source machine's process: pid, folder, host
    if table == "runs" and row["id"] in interrupted.runs and row["status"] not in TERMINAL:
        row["status"] = RunStatus.CANCELED.value
        row["ended_at"] = ended_at
        row["error"] = json.dumps(
            {"code": "Canceled", "message": "The workspace was exported while this run ran."}
        )
    if table in ("jobs", "sweeps", "pipeline_runs") and row["run_id"] in interrupted.runs:
        row["state"] = DONE
    if (
        table == "pipeline_steps"
        and row["pipeline_run_id"] in interrupted.pipelines
        and row["state"] not in ENDED_STATES
    ):
        row["state"] = CANCELED
        row["ended_at"] = ended_at
        reason = "the workspace was exported while this pipeline ran"
        row["reason"] = f"{row['reason']}; {reason}" if row["reason"] else reason
    if (
        table == "sweep_trials"
        and row["sweep_id"] in interrupted.sweeps
        and row["state"] in _TRIAL_ACTIVE
    ):
        row["state"] = _TRIAL_FAILED
    return row


def _export_artifacts(
    artifacts: ArtifactStore, workspace: str, tmp: Path, meter: Meter
) -> tuple[int, int, str]:
    files = artifacts.find(workspace, "")
    total = sum(f.size or 0 for f in files)
    index = _Writer(tmp / ARTIFACT_INDEX)
    size = 0
    with meter(f"Exporting {workspace} (files)", total, "bytes") as advance:
        for info in files:
            target = tmp / "artifacts" / info.path
            target.parent.mkdir(parents=True, exist_ok=True)
            sha = hashlib.sha256()
            written = 0
            with artifacts.open(workspace, info.path) as src, open(target, "wb") as out:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
                    sha.update(chunk)
                    written += len(chunk)
                    advance(len(chunk))
            index.write({"path": info.path, "size": written, "sha256": sha.hexdigest()})
            size += written
    return index.close()["rows"], size, index.sha.hexdigest()


# ------------------------------------------------------------------------ import
def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of an export folder, checked to be one this version reads."""
    path = Path(folder).expanduser() / MANIFEST
    if not path.is_file():
        raise NotFound(f"{str(path.parent)!r} is not a workspace export: it has no {MANIFEST}.")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise InvalidInput(f"{str(path)!r} is not a Cumulo workspace export manifest.")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise InvalidInput(
            f"The export's format version is {manifest.get('format_version')}, newer than this "
            f"Cumulo reads ({FORMAT_VERSION}): upgrade Cumulo to import it."
        )
    return manifest


def import_workspace(
    db: Database,
    artifacts: ArtifactStore,
    folder: str | Path,
    name: str | None = None,
    meter: Meter | None = None,
) -> TransferSummary:
    """Create a workspace from an export folder: as ``name``, default the exported one.

    Nothing changes in the target unless the whole import succeeds.
    """
    meter = meter or _quiet
    src = Path(folder).expanduser()
    manifest = read_manifest(src)
    _check_revision(manifest["store_revision"])
    _verify_tables(src, manifest)
    index = _artifact_index(src, manifest)
    name = validation.workspace_name(name or manifest["workspace"]["name"])
    summary = TransferSummary(workspace=name, folder=src)
    summary.sealed_values = int(manifest.get("sealed_values", 0))
    ws_table = metadata.tables["workspaces"]
    with db.transaction(write=False) as conn:
        if conn.execute(select(ws_table.c.id).where(ws_table.c.name == name)).first():
            raise Conflict(
                f"Workspace {name!r} already exists in {db.safe_url}: import it under another "
                "name (--name NEW); an import never replaces a workspace."
            )
        renamed = _renamed_ids(conn, src, manifest)
    if artifacts.find(name, ""):
        raise Conflict(
            f"The artifact store already holds files under {name + '/'!r} (left from an "
            "earlier workspace of that name): import under another name (--name NEW)."
        )
    summary.renamed_ids = renamed
    copied: list[str] = []
    try:
        _import_artifacts(artifacts, src, name, index, meter, summary, copied)
        with db.transaction() as conn:
            _import_rows(conn, src, manifest, name, renamed, meter, summary)
    except BaseException:
        _remove(artifacts, name, copied)
        raise
    return summary


def _remove(artifacts: ArtifactStore, name: str, copied: list[str]) -> None:
    """Remove the files an import copied, and the prefix too when nothing else is there."""
    for key in copied:
        artifacts.delete(name, key)
    if not artifacts.find(name, ""):
        artifacts.delete(name)  # the folders left empty


def _check_revision(revision: str) -> None:
    if revision not in known_revisions():
        raise InvalidInput(
            f"The export comes from a store at revision {revision!r}, which this Cumulo does "
            f"not know (its newest is {migration_head()!r}): upgrade Cumulo to import it."
        )


def _verify_tables(src: Path, manifest: dict[str, Any]) -> None:
    for table, entry in manifest["tables"].items():
        path = src / "tables" / f"{table}.jsonl"
        if not path.is_file() or _sha256_file(path) != entry["sha256"]:
            raise InvalidInput(
                f"The export is damaged: {str(path)!r} is missing or does not match its "
                "checksum in the manifest. Export the workspace again."
            )


def _artifact_index(src: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    path = src / ARTIFACT_INDEX
    if not path.is_file() or _sha256_file(path) != manifest["artifacts"]["index_sha256"]:
        raise InvalidInput(
            f"The export is damaged: {str(path)!r} is missing or does not match its "
            "checksum in the manifest. Export the workspace again."
        )
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _renamed_ids(conn: Connection, src: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """Kept ids the target already has (a copy next to its original): old hex -> new hex."""
    renamed: dict[str, str] = {}
    for name in KEPT_IDS:
        if name not in manifest["tables"]:
            continue
        table = metadata.tables[name]
        ids = [row["id"] for row in _lines(src / "tables" / f"{name}.jsonl")]
        for start in range(0, len(ids), 500):
            taken = conn.execute(
                select(table.c.id).where(table.c.id.in_(ids[start : start + 500]))
            ).scalars()
            for old in taken:
                hex_part = _HEX_ID.search(old)
                if hex_part:
                    renamed[hex_part.group(0)] = uuid.uuid4().hex
    return renamed


def _import_artifacts(
    artifacts: ArtifactStore,
    src: Path,
    name: str,
    index: list[dict[str, Any]],
    meter: Meter,
    summary: TransferSummary,
    copied: list[str],
) -> None:
    total = sum(int(entry["size"]) for entry in index)
    with meter(f"Importing {name} (files)", total, "bytes") as advance:
        for entry in index:
            path = src / "artifacts" / validation.artifact_path(entry["path"])
            key = _rename(entry["path"], summary.renamed_ids)  # runs/<id>/..., logged-models/
            with open(path, "rb") as fh:
                reader = _CheckedReader(fh, advance)
                artifacts.put_stream(name, key, cast(IO[bytes], reader))
            copied.append(key)
            if reader.sha.hexdigest() != entry["sha256"]:
                raise InvalidInput(
                    f"The export is damaged: {str(path)!r} does not match its checksum in "
                    f"{ARTIFACT_INDEX}. Export the workspace again."
                )
            summary.files += 1
            summary.bytes += reader.size


class _CheckedReader:
    """A file read through: hashes and counts what passes, and reports it."""

    def __init__(self, raw: Any, advance: Callable[[int], None]) -> None:
        self.raw = raw
        self.advance = advance
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.raw.read(size)
        self.sha.update(data)
        self.size += len(data)
        self.advance(len(data))
        return data


def _import_rows(
    conn: Connection,
    src: Path,
    manifest: dict[str, Any],
    name: str,
    renamed: dict[str, str],
    meter: Meter,
    summary: TransferSummary,
) -> None:
    refs = references()
    ws = manifest["workspace"]
    ws_table = metadata.tables["workspaces"]
    new_ws = conn.execute(
        insert(ws_table)
        .values(name=name, description=ws["description"], created_at=ws["created_at"])
        .returning(ws_table.c.id)
    ).scalar_one()
    # Old numeric id -> new, per table whose numeric ids other rows name.
    referenced = set(refs.values())
    ids: dict[str, dict[Any, Any]] = {
        t.name: {} for t in exported_tables() if t.name in referenced and _numeric_id(t) is not None
    }
    ids["workspaces"] = {ws["id"]: new_ws}
    old_prefix, new_prefix = ws["name"] + "/", name + "/"
    total = sum(entry["rows"] for entry in manifest["tables"].values())
    with meter(f"Importing {name} (rows)", total, "rows") as advance:
        for table in exported_tables():
            numeric = _numeric_id(table)
            keep = table.name in ids
            batch: list[dict[str, Any]] = []
            olds: list[Any] = []
            count = 0
            for raw in _lines(src / "tables" / f"{table.name}.jsonl"):
                count += 1
                row = _decode(table, raw)
                if numeric is not None:
                    olds.append(row.pop(numeric.name, None))
                _remap(table, row, refs, ids)
                _rewrite_text(row, renamed)
                _on_import(table.name, row, old_prefix, new_prefix)
                batch.append(row)
                if len(batch) >= BATCH:
                    _insert(conn, table, numeric if keep else None, batch, olds, ids)
                    advance(len(batch))
            if batch:
                _insert(conn, table, numeric if keep else None, batch, olds, ids)
                advance(len(batch))
            if count:
                summary.rows[table.name] = count


def _insert(
    conn: Connection,
    table: Table,
    numeric: Column[Any] | None,
    batch: list[dict[str, Any]],
    olds: list[Any],
    ids: dict[str, dict[Any, Any]],
) -> None:
    """Insert a batch of rows; with ``numeric``, note the ids the store gave them."""
    if numeric is not None:
        new = conn.execute(
            insert(table).returning(numeric, sort_by_parameter_order=True), batch
        ).scalars()
        ids.setdefault(table.name, {}).update(zip(olds, new, strict=True))
    else:
        conn.execute(insert(table), batch)
    batch.clear()
    olds.clear()


def _numeric_id(table: Table) -> Column[Any] | None:
    """The table's autoincrement id, given anew by the target store."""
    pk = list(table.primary_key.columns)
    if len(pk) == 1 and isinstance(pk[0].type, Integer):
        return pk[0]
    return None


def _remap(
    table: Table,
    row: dict[str, Any],
    refs: dict[tuple[str, str], str],
    ids: dict[str, dict[Any, Any]],
) -> None:
    for column in list(row):
        parent = refs.get((table.name, column))
        if parent is None or row[column] is None or parent not in ids:
            continue  # a string id (kept, or renamed with the text) or no reference
        new = ids[parent].get(row[column])
        if new is None:
            raise InvalidInput(
                f"The export is inconsistent: {table.name}.{column} names {parent} "
                f"{row[column]!r}, which it does not contain."
            )
        row[column] = new


def _rename(text: str, renamed: dict[str, str]) -> str:
    """``text`` with each renamed id in it replaced by its new one."""
    if not renamed or not _HEX_ID.search(text):
        return text
    return _HEX_ID.sub(lambda m: renamed.get(m.group(0), m.group(0)), text)


def _rewrite_text(row: dict[str, Any], renamed: dict[str, str]) -> None:
    if not renamed:
        return
    for column, value in row.items():
        if isinstance(value, str):
            row[column] = _rename(value, renamed)


def _on_import(table: str, row: dict[str, Any], old_prefix: str, new_prefix: str) -> None:
    """What a row becomes in the target: new endpoint keys, deployments brought up
    afresh by the target's hosting, artifact keys under the new workspace name."""
    if table == "endpoints":
        row["primary_key"], row["secondary_key"] = new_key(), new_key()
    elif table == "deployments":
        row["state"] = DeploymentState.CREATING.value
        row["error"] = None
    elif table == "environments" and row.get("build_status") == BuildStatus.BUILDING.value:
        row["build_status"] = BuildStatus.NOT_BUILT.value
    elif table == "model_versions" and (row.get("storage_prefix") or "").startswith(old_prefix):
        row["storage_prefix"] = new_prefix + row["storage_prefix"][len(old_prefix) :]
