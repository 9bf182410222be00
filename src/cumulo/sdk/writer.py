"""Background metric writer: logging calls enqueue and return at once.

A daemon thread drains the queue in batches (one batch per run, at most
``MAX_BATCH`` points, metrics as columns), each with a batch id chosen before
its first send, so a retried batch is recognised by the store and never
written twice. A tracking outage is retried with backoff and never raised
into the training loop; ``flush()`` waits for everything queued so far and
reports errors that retrying cannot fix.

In a job (``CUMULO_SPOOL_DIR`` set by its runner) batches no server takes go
to a bounded folder on disk instead of memory and are sent from there, in
order, when a server answers again; at exit what is still there is left for
the runner, which outlives the script and delivers it before the run ends.
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

from cumulo.compute.spool import Spool
from cumulo.core.errors import CumuloError, InsufficientStorage, Unavailable

if TYPE_CHECKING:
    from cumulo.sdk.transport import TrackingClient

log = logging.getLogger("cumulo.sdk")

# A request costs the server about 1.5 ms whatever its size; at 10,000 points the
# per-point work dominates (1,000 delivered about 230,000 points/s over HTTP here,
# 10,000 about 500,000; 30,000 no more).
MAX_BATCH = 10_000
INTERVAL = 0.2
# At exit with a spool the runner delivers what is left: the script need not wait long.
CLOSE_WAIT_SPOOLED = 5.0
CLOSE_WAIT = 30.0
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
    def __init__(
        self, transport: TrackingClient, workspace: str, spool: Spool | None = None
    ) -> None:
        self.transport = transport
        self.workspace = workspace
        self._spool = spool if spool is not None else Spool.from_env()
        # Batches wait on disk: they go before any new one.
        self._spooled = self._spool is not None and bool(self._spool.files())
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
            while self._queue or self._pending or self._busy or self._spooled:
                self._wake.set()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self._raise_errors()  # data already dropped matters more than a wait
                    where = "on disk" if self._spooled else "in memory"
                    raise Unavailable(
                        f"Metrics are still buffered after {timeout:.0f}s: the tracking store "
                        f"is not answering. They are kept {where} and retried in the background."
                    )
                self._idle.wait(timeout=0.05 if remaining is None else min(remaining, 0.05))
        self._raise_errors()

    def _raise_errors(self) -> None:
        if self._errors:
            errors, self._errors = self._errors, []
            raise errors[0]

    @property
    def buffered(self) -> int:
        with self._taking:
            in_memory = len(self._queue) + sum(map(len, self._pending))
        on_disk = self._spool.points() if self._spool is not None and self._spooled else 0
        return in_memory + on_disk

    def close(self) -> None:
        try:
            self.flush(timeout=CLOSE_WAIT if self._spool is None else CLOSE_WAIT_SPOOLED)
        except CumuloError as exc:
            if self._spool is None or not isinstance(exc, Unavailable):
                log.warning("cumulo: metrics not stored at exit: %s", exc)
        self._closed = True
        self._wake.set()
        if self._spool is not None:
            self._leave_for_runner(self._spool)

    def _leave_for_runner(self, spool: Spool) -> None:
        """Put what is not stored yet into the spool: the job's runner delivers it."""
        self._thread.join(timeout=10)
        self._take()
        self._spill(spool)
        waiting = spool.points() if self._spooled else 0
        if waiting:
            log.warning(
                "cumulo: %d metric points are not stored yet; they are kept in %s and the "
                "job's runner delivers them.",
                waiting,
                spool.folder,
            )

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
                ok = self._deliver()
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

    def _deliver(self) -> bool:
        """Send what is pending; True when nothing is left to send."""
        spool = self._spool
        if spool is None:
            return self._send_pending()
        if self._spooled:  # an outage left batches on disk: they go first, in order
            self._spooled = not spool.replay(self._send_entry)
            if self._spooled:
                self._spill(spool)
                return False
        if self._send_pending():
            return True
        self._spill(spool)  # no server: wait on disk, not in memory
        return False

    def _spill(self, spool: Spool) -> None:
        with self._taking:
            batches, self._pending = self._pending, []
        for batch in batches:
            entry = {
                "workspace": self.workspace,
                "run_id": batch.run_id,
                "batch_id": batch.batch_id,
                "metrics": batch.metrics(),
                "records": batch.records,
            }
            if spool.put(entry, len(batch)):
                self._spooled = True
                continue
            message = (
                f"The metric buffer {spool.folder} is full ({spool.max_bytes} bytes) while no "
                f"server answers: {len(batch)} metric points of run {batch.run_id} are dropped."
            )
            log.error("cumulo: %s", message)
            spool.note_lost(batch.run_id, len(batch), message)
            self._errors.append(InsufficientStorage(message))

    def _send_entry(self, entry: dict[str, Any]) -> None:
        self.transport.log_batch(
            entry["workspace"],
            entry["run_id"],
            metrics=entry["metrics"],
            records=entry["records"],
            batch_id=entry["batch_id"],
        )

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
