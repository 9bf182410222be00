"""Tables of the jobs area: jobs and their leases, logs, targets, pool nodes,
environments and snapshots. Times are milliseconds since the epoch."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from cumulo.store.schema import Id, metadata

# One row per submitted run. ``state`` is the scheduler's view (queued, active,
# done); a lease (owner + expiry) makes one process at a time responsible for it.
jobs = Table(
    "jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False, unique=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("target", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("config", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_retries", Integer, nullable=False, default=0),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", BigInteger),
    Column("handle", Text),
    Column("node", String(64)),
    # The submitter's role caps the job's own token (None: submitted with no token checks).
    Column("submitter_role", String(16)),
    Column("submitted_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index(None, "workspace_id", "target", "state", "priority"),
    Index(None, "state", "lease_expires_at"),
)

# The run's stdout, stderr and system messages, appended live in chunks.
job_logs = Table(
    "job_logs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("stream", String(8), nullable=False),
    Column("text", Text, nullable=False),
    Index(None, "run_id", "id"),
)

compute_targets = Table(
    "compute_targets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("config", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("workspace_id", "name"),
)

# Worker processes of managed pools; a node runs one job at a time.
pool_nodes = Table(
    "pool_nodes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("target", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("pid", Integer),
    Column("host", String(255)),  # where ``pid`` means something (compute.base.host_id)
    Column("run_id", String(32)),
    Column("started_at", BigInteger, nullable=False),
    Column("heartbeat_at", BigInteger, nullable=False),
    Column("stopped_at", BigInteger),
    Index(None, "workspace_id", "target", "state"),
)

environments = Table(
    "environments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("spec", Text, nullable=False),
    Column("spec_hash", String(64), nullable=False),
    Column("build_hash", String(64), nullable=False),
    Column("build_status", String(16), nullable=False),
    Column("build_log", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("workspace_id", "name", "version"),
)

# Content-addressed code snapshots: the zip lives in the artifact store.
snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("files", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("workspace_id", "hash"),
)

# The managed Ray head of a cluster (workspace + target): one per cluster, shared by
# every server over the store. Its owner started or took over the head and renews
# the lease while it runs it; ``address`` is NULL while the head starts.
ray_heads = Table(
    "ray_heads",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("target", String(64), nullable=False),
    Column("owner", String(64), nullable=False),
    Column("lease_expires_at", BigInteger, nullable=False),
    Column("address", String(255)),
    Column("host", String(255)),  # where ``pid`` means something (compute.base.host_id)
    Column("pid", Integer),
    Column("start", BigInteger),  # the process's start time, in clock ticks since boot
    UniqueConstraint("workspace_id", "target"),
)
