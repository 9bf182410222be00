"""Tables of endpoints, their deployments and replicas, request metrics and request logs.

An endpoint belongs to a workspace; its keys are kept so ``get_keys()`` can
show them (as the cloud service does). Deployments hold their spec as JSON and
a lease (owner + expiry) that makes one supervisor at a time responsible for
their replicas. Replica rows are what the router reads: only ``ready`` ones
take requests. Metrics are per minute, one row per writing process, merged
when read. Times are milliseconds since the epoch.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from cumulo.store.schema import Id, metadata

endpoints = Table(
    "endpoints",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("auth_mode", String(16), nullable=False),
    Column("primary_key", String(128), nullable=False),
    Column("secondary_key", String(128), nullable=False),
    Column("traffic", Text, nullable=False, default="{}"),  # JSON
    Column("mirror_traffic", Text, nullable=False, default="{}"),  # JSON
    Column("tags", Text, nullable=False, default="{}"),  # JSON
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("workspace_id", "name"),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("endpoint_id", Id, ForeignKey("endpoints.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("models", Text, nullable=False),  # JSON list of {"name", "version"}
    Column("spec", Text, nullable=False),  # JSON: replicas, probes, code, environment...
    Column("generation", Integer, nullable=False, default=1),
    Column("state", String(16), nullable=False),
    Column("error", Text),  # JSON: message, traceback
    Column("lease_owner", String(64)),
    Column("lease_expires_at", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("endpoint_id", "name"),
    Index(None, "lease_expires_at"),
)

deployment_replicas = Table(
    "deployment_replicas",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("deployment_id", Id, ForeignKey("deployments.id"), nullable=False),
    Column("slot", Integer, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("owner", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("pid", Integer),
    Column("url", String(512)),
    Column("restarts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("log_path", Text),
    Column("started_at", BigInteger),
    Column("ready_at", BigInteger),
    Column("updated_at", BigInteger, nullable=False),
    Index(None, "deployment_id", "state"),
)

deployment_metrics = Table(
    "deployment_metrics",
    metadata,
    Column("deployment_id", Id, ForeignKey("deployments.id"), primary_key=True),
    Column("minute", BigInteger, primary_key=True),
    Column("source", String(64), primary_key=True),
    Column("requests", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("latency_sum_ms", Float(precision=53), nullable=False),
    Column("histogram", Text, nullable=False),  # JSON: {bucket index: count}
)

deployment_request_logs = Table(
    "deployment_request_logs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("deployment_id", Id, ForeignKey("deployments.id"), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("status", Integer, nullable=False),
    Column("latency_ms", Float(precision=53), nullable=False),
    Column("request", Text, nullable=False),
    Column("response", Text, nullable=False),
    Index(None, "deployment_id", "at"),
)
