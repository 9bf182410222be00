"""The audit trail of a server, and the brake on token guessing.

``AuditTrail`` is a plain ASGI middleware: after each request it notes every
write (any method but GET, HEAD and OPTIONS) and every refusal (401, 403, 429)
with who sent it (the token's id, the client address), what (method, path, the
objects the path names), when and the status. Entries are queued in memory and
stored in batches by ``AuditLog``'s thread, so a metric upload pays for a list
append, not a database write; its ``close()`` at shutdown stores the rest.

A client address whose requests carried a refused token more than
``auth_failures_per_minute`` times in the last minute gets 429 answers, with
``Retry-After``, until the minute has passed.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cumulo.core.entities import AuditEntry, now_ms
from cumulo.core.settings import DEFAULT_WORKSPACE
from cumulo.server.asgi import send_error
from cumulo.services.auth import AuthService

log = logging.getLogger("cumulo.audit")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REFUSALS = {401: "unauthenticated", 403: "refused", 429: "rate-limited"}
FLUSH_SECONDS = 1.0
PRUNE_SECONDS = 3600.0
MAX_QUEUED = 100_000  # past this (the store is down), entries are dropped with a warning
_MLFLOW_ROOT = ("/api/2.0/mlflow", "/api/3.0/mlflow")
WINDOW_SECONDS = 60.0


class FailureLimiter:
    """Counts refused tokens per client address over a sliding minute."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try again (0: now)."""
        with self._lock:
            times = self._recent(client)
            if len(times) < self.per_minute:
                return 0
            return max(1, int(times[0] + WINDOW_SECONDS - time.monotonic()) + 1)

    def failed(self, client: str) -> None:
        with self._lock:
            times = self._recent(client)
            times.append(time.monotonic())
            if len(self._seen) > 10_000:  # forget the quiet ones: memory stays bounded
                for key in [k for k, v in self._seen.items() if not v]:
                    del self._seen[key]

    def _recent(self, client: str) -> collections.deque[float]:
        times = self._seen.setdefault(client, collections.deque())
        cutoff = time.monotonic() - WINDOW_SECONDS
        while times and times[0] < cutoff:
            times.popleft()
        return times


class AuditLog:
    """Entries waiting to be stored, and the thread that stores them each second."""

    def __init__(
        self, auth: AuthService, failures_per_minute: int, retention_days: int = 90
    ) -> None:
        self.auth = auth
        self.limiter = FailureLimiter(failures_per_minute)
        self.retention_ms = retention_days * 86_400_000
        self._pruned_at = 0.0
        self._queue: list[AuditEntry] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def note(self, entry: AuditEntry) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._flush_loop, name="cumulo-audit", daemon=True
                )
                self._thread.start()
            if len(self._queue) < MAX_QUEUED:
                self._queue.append(entry)
                return
        log.warning("audit queue full: an entry for %s %s was dropped", entry.method, entry.route)

    def _flush_loop(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()
            if time.monotonic() - self._pruned_at > PRUNE_SECONDS:
                self._pruned_at = time.monotonic()
                self._prune()

    def _prune(self) -> None:
        """Entries past the retention period go (an hour's pass; several servers may race)."""
        try:
            self.auth.forget_audit_before(now_ms() - self.retention_ms)
        except Exception:
            log.warning("could not delete old audit entries; trying again later", exc_info=True)

    def flush(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            self.auth.record(batch)
        except Exception:  # the store may be away for a moment: keep the entries for later
            log.warning("could not store %d audit entries; retrying", len(batch), exc_info=True)
            with self._lock:
                self._queue[:0] = batch[: MAX_QUEUED - len(self._queue)]

    def close(self) -> None:
        """Store what is queued and stop (the server's shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with contextlib.suppress(Exception):
            self.flush()


class AuditTrail:
    """The middleware: notes writes and refusals, and applies the failure brake."""

    def __init__(self, app: ASGIApp, audit: AuditLog) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = _client(scope)
        limiter = self.audit.limiter
        wait = limiter.retry_after(client)
        if wait and _carries_credentials(scope):
            await _too_many(send, wait)
            self.audit.note(_entry(scope, client, 429))
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            if status == 401 and _carries_credentials(scope):
                limiter.failed(client)
            if scope["method"] not in SAFE_METHODS or status in REFUSALS:
                self.audit.note(_entry(scope, client, status))


def _entry(scope: Scope, client: str, status: int) -> AuditEntry:
    params: dict[str, Any] = scope.get("path_params") or {}
    path: str = scope["path"]
    workspace = params.get("workspace") or params.get("ws")
    if workspace is None and path.startswith(_MLFLOW_ROOT):
        workspace = DEFAULT_WORKSPACE
    token = (scope.get("state") or {}).get("cumulo_token")
    target = " ".join(f"{k}={v}" for k, v in params.items() if k not in ("workspace", "ws", "rest"))
    return AuditEntry(
        at=now_ms(),
        workspace=str(workspace)[:64] if workspace else None,
        token_id=getattr(token, "id", None),
        client=client[:64],
        method=str(scope["method"])[:8],
        route=path[:300],
        target=target[:300],
        status=status,
        outcome=REFUSALS.get(status, "failed" if status >= 400 else "ok"),
    )


def _client(scope: Scope) -> str:
    found = scope.get("client")
    return str(found[0]) if found else "unknown"


def _carries_credentials(scope: Scope) -> bool:
    """Only requests that present a token or a login cookie can be guesses."""
    for name, value in scope["headers"]:
        if name == b"authorization" or (name == b"cookie" and b"cumulo_token=" in value):
            return True
    return bool(scope["method"] == "POST" and scope["path"] == "/login")


async def _too_many(send: Send, wait: int) -> None:
    message = f"Too many refused tokens from this address; retry in {wait} s."
    await send_error(send, 429, "RATE_LIMITED", message, [(b"retry-after", str(wait).encode())])
