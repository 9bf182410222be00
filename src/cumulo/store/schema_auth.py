"""Tables of the auth area: access tokens (stored as SHA-256 hashes, never in
clear) and the audit log of writes and refusals."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from cumulo.store.schema import Id, metadata

# One row per token. ``workspace`` is a workspace name, or "*" for a token that
# reaches every workspace (and may create workspaces when its role is owner).
# A job's token names its run (``run_id``) and is revoked when the job ends;
# a token past ``expires_at`` is refused.
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
    Column("expires_at", BigInteger),
    Column("run_id", String(32)),
    Index(None, "workspace"),
    Index(None, "run_id"),
)

# Who did what, when, with which result: every write and every refused request.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("workspace", String(64)),  # None: the server itself (or no workspace in the path)
    Column("token_id", String(32)),
    Column("client", String(64), nullable=False, default=""),
    Column("method", String(8), nullable=False),
    Column("route", String(300), nullable=False),  # the route's template: /ws/{workspace}/...
    Column("target", String(300), nullable=False, default=""),  # the object the path names
    Column("status", Integer, nullable=False),
    Column("outcome", String(64), nullable=False, default=""),  # error code, or "" when it worked
    Index(None, "workspace", "at"),
)
