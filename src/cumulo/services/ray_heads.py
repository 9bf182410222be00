"""The head registry of a Ray target, over the shared store (``compute.base.HeadRegistry``).

Every scheduler over one store sees the same record, so a cluster (workspace +
target) gets one managed head however many servers (with whatever homes) need it.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import TYPE_CHECKING

from cumulo.compute.base import HeadRecord
from cumulo.store.ray_heads import RayHeadStore

if TYPE_CHECKING:
    from cumulo.services.jobs import JobService


class StoreHeadRegistry:
    """The record of one cluster's managed head, claimed and renewed as ``owner``."""

    def __init__(
        self,
        store: RayHeadStore,
        workspace: str,
        target: str,
        *,
        owner: str,
        lease_ms: int,
        advertise_host: str | None = None,
    ) -> None:
        self.store = store
        self.workspace = workspace
        self.target = target
        self.owner = owner
        self.lease_ms = lease_ms
        self.advertise_host = advertise_host

    def read(self) -> HeadRecord | None:
        row = self.store.read(self.workspace, self.target)
        if row is None:
            return None
        return HeadRecord(
            owner=row["owner"],
            lease_expires_at=int(row["lease_expires_at"]),
            address=row["address"] or "",
            host=row["host"] or "",
            pid=int(row["pid"] or 0),
            start=row["start"],
        )

    def claim(self) -> bool:
        return self.store.claim(self.workspace, self.target, self.owner, self.lease_ms)

    def publish(self, address: str, host: str, pid: int, start: int | None) -> bool:
        return self.store.publish(
            self.workspace,
            self.target,
            self.owner,
            self.lease_ms,
            address=address,
            host=host,
            pid=pid,
            start=start,
        )

    def renew(self) -> bool:
        return self.store.renew(self.workspace, self.target, self.owner, self.lease_ms)

    def release(self, any_owner: bool = False) -> bool:
        return self.store.release(self.workspace, self.target, None if any_owner else self.owner)


def head_owner(role: str) -> str:
    """A unique owner id for the leases ``role`` takes (jobs, heads).

    ``<role>-<host>-<pid>-<random>``.
    """
    return f"{role}-{socket.gethostname()[:20]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def target_heads(
    jobs: JobService, workspace: str, target: str, *, owner: str, lease_ms: int
) -> StoreHeadRegistry:
    """The registry of ``workspace``/``target``'s head over ``jobs``' store and advertise host.

    Everything in a process that makes a Ray backend (the scheduler, the replica
    supervisor) goes through the same record, so it never starts a second head.
    """
    return StoreHeadRegistry(
        RayHeadStore(jobs.store.db),
        workspace,
        target,
        owner=owner,
        lease_ms=lease_ms,
        advertise_host=jobs.settings.advertise_host,
    )
