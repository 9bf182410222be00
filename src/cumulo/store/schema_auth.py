"""Tables of the auth area: access tokens, stored as SHA-256 hashes, never in clear."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table, Text

from cumulo.store.schema import metadata

# One row per token. ``workspace`` is a workspace name, or "*" for a token that
# reaches every workspace (and may create workspaces when its role is owner).
auth_tokens = Table(
    "auth_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("workspace", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Index(None, "workspace"),
)
