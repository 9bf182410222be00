"""Tables of datastores and dataset versions.

A datastore's ``config`` is what may be shown (a folder, a bucket and prefix,
an endpoint); its credentials are in ``secret``, sealed under the server's key.
A dataset version's files, format, schema and profile are JSON text; the
unique keys make a version number and a content digest each appear once per
dataset. Times are milliseconds since the epoch.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
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

datastores = Table(
    "datastores",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("config", Text, nullable=False),
    Column("secret", Text),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("workspace_id", "name"),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("files", Text, nullable=False),
    Column("format", Text, nullable=False),
    Column("schema", Text, nullable=False),
    Column("profile", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("tags", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(250), nullable=False),
    UniqueConstraint("workspace_id", "name", "version"),
    UniqueConstraint("workspace_id", "name", "digest"),
    Index(None, "workspace_id", "digest"),
)
