"""Background metric writer: logging calls enqueue and return at once.

A daemon thread drains the queue in batches (one batch per run, at most
``MAX_BATCH`` points, metrics as columns), each with a batch id chosen before
its first send, so a retried batch is recognised by the store and never
written twice. A tracking outage is retried with backoff and never raised
into the training loop; ``flush()`` waits for everything queued so far and
reports errors that retrying cannot fix.
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from cumulo.core.errors import CumuloError, InsufficientStorage, Unavailable

if TYPE_CHECKING:
    from cumulo.sdk.transport import Transport

log = logging.getLogger("cumulo.sdk")

# A request costs the server about 1.5 ms whatever its size; at 10,000 points the
# per-point work dominates (1,000 delivered about 230,000 points/s over HTTP here,
# 10,000 about 500,000; 30,000 no more).
MAX_BATCH = 10_000
INTERVAL = 0.2
# A full disk is retried too: the batch waits (with its id, so it is stored once) until
# space is freed, instead of being dropped.
_RETRYABLE = (Unavailable, InsufficientStorage, ConnectionError, TimeoutError, OSError)
_run_of = itemgetter(0)
_FIELDS = (itemgetter(1), itemgetter(2), itemgetter(3), itemgetter(4))


@dataclass
class _Batch:
    run_id: str
    batch_id: str
    # The points as columns: the form the store and the wire take fastest.
    keys: tuple[str, ...] = ()
    values: tuple[float, ...] = ()
    steps: tuple[int, ...] = ()
    stamps: tuple[int, ...] = ()
    records: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys) + len(self.records)

    def metrics(self) -> dict[str, tuple[Any, ...]]:
        return {
            "key": self.keys,
            "value": self.values,
            "step": self.steps,
            "timestamp": self.stamps,
        }


class MetricWriter:
    def __init__(self, transport: Transport, workspace: str) -> None:
        self.transport = transport
        self.workspace = workspace
        # (run_id, key, value, step, ts) for a metric point, (run_id, record) for a record.
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self._pending: list[_Batch] = []  # taken off the queue, not yet acknowledged
        self._taking = threading.Lock()  # held while items move from the queue to _pending
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._errors: list[CumuloError] = []
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="cumulo-writer", daemon=True)
        self._thread.start()
        _writers.add(self)

    # ------------------------------------------------------------ producers
    def put_metric(self, run_id: str, key: str, value: float, step: int | None, ts: int) -> None:
        self._queue.append((run_id, key, value, step, ts))
        # While the writer is behind, the queue stays long: setting an Event that is
        # already set takes its lock and notifies on every call (about 1 µs of each).
        if len(self._queue) >= MAX_BATCH and not self._wake.is_set():
            self._wake.set()

    def put_record(self, run_id: str, record: dict[str, Any]) -> None:
        self._queue.append((run_id, record))

    # ------------------------------------------------------------- flushing
    def flush(self, timeout: float | None = 60.0) -> None:
        """Block until everything queued so far is stored; raise errors retrying cannot fix."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._queue or self._pending or self._busy:
                self._wake.set()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise Unavailable(
                        f"Metrics are still buffered after {timeout:.0f}s: the tracking store "
                        "is not answering. They are kept and retried in the background."
                    )
                self._idle.wait(timeout=0.05 if remaining is None else min(remaining, 0.05))
        if self._errors:
            errors, self._errors = self._errors, []
            raise errors[0]

    @property
    def buffered(self) -> int:
        with self._taking:
            return len(self._queue) + sum(map(len, self._pending))

    def close(self) -> None:
        try:
            self.flush(timeout=30)
        except CumuloError as exc:
            log.warning("cumulo: metrics not stored at exit: %s", exc)
        self._closed = True
        self._wake.set()

    # ------------------------------------------------------------ the thread
    def _loop(self) -> None:
        backoff = 0.0
        while not self._closed:
            self._wake.wait(timeout=backoff or INTERVAL)
            self._wake.clear()
            with self._idle:
                self._busy = True
            try:
                self._take()
                ok = self._send_pending()
                backoff = 0.0 if ok else min(max(backoff * 2, 0.1), 5.0)
            finally:
                with self._idle:
                    self._busy = False
                    self._idle.notify_all()

    def _take(self) -> None:
        with self._taking:
            q = self._queue
            items = [q.popleft() for _ in range(len(q))]  # only this thread takes
            if not items:
                return
            runs = dict.fromkeys(map(_run_of, items))
            if len(runs) == 1:  # the common case: one run logging
                by_run = {items[0][0]: items}
            else:
                by_run = {run_id: [] for run_id in runs}
                for item in items:
                    by_run[item[0]].append(item)
            for run_id, run_items in by_run.items():
                for start in range(0, len(run_items), MAX_BATCH):
                    self._pending.append(_batch(run_id, run_items[start : start + MAX_BATCH]))

    def _send_pending(self) -> bool:
        while self._pending:
            batch = self._pending[0]
            try:
                self.transport.log_batch(
                    self.workspace,
                    batch.run_id,
                    metrics=batch.metrics(),
                    records=batch.records,
                    batch_id=batch.batch_id,
                )
            except _RETRYABLE as exc:
                log.debug("cumulo: will retry batch %s: %s", batch.batch_id, exc)
                return False
            except CumuloError as exc:
                if exc.code == "INTERNAL_ERROR":
                    return False
                log.error("cumulo: dropped a metric batch for run %s: %s", batch.run_id, exc)
                self._errors.append(exc)
            except Exception as exc:  # a transport failure we do not know: keep and retry
                log.debug("cumulo: will retry batch %s: %r", batch.batch_id, exc)
                return False
            self._pending.pop(0)
        return True


def _batch(run_id: str, items: list[tuple[Any, ...]]) -> _Batch:
    batch = _Batch(run_id, uuid.uuid4().hex)
    points = items
    if set(map(len, items)) != {5}:  # records among the points
        points = [item for item in items if len(item) == 5]
        batch.records = [item[1] for item in items if len(item) == 2]
    # Column by column, not zip(*points): that holds an iterator per point, which
    # outlive the garbage collector's young generations and set off full collections.
    batch.keys, batch.values, batch.steps, batch.stamps = (
        tuple(map(_field, points)) for _field in _FIELDS
    )
    return batch


_writers: weakref.WeakSet[MetricWriter] = weakref.WeakSet()


@atexit.register
def _drain_at_exit() -> None:
    for writer in list(_writers):
        writer.close()
