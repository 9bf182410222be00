"""A job's buffer on disk for metric batches no server could take yet.

The script's metric writer puts a batch here when no server answers; it sends
the files back in order when one answers again, and at exit leaves what is
left for the job's runner, which outlives the script and delivers the rest
before it reports the final status. Each file holds one batch with its batch
id, so a batch delivered twice (a send whose answer was lost) is stored once.

The folder is bounded (``CUMULO_SPOOL_MAX_BYTES``, 256 MiB by default): when
full the oldest batches are kept and a new one is refused; its points are
counted in ``lost.jsonl`` so that the run's final report can say so.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from cumulo.core.entities import decode_float, encode_float
from cumulo.core.errors import CumuloError, InsufficientStorage, Unavailable

log = logging.getLogger("cumulo.spool")

ENV_DIR = "CUMULO_SPOOL_DIR"
ENV_MAX_BYTES = "CUMULO_SPOOL_MAX_BYTES"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
LOST_FILE = "lost.jsonl"
_SUFFIX = ".batch"
_sequence = itertools.count()


def is_transient(exc: BaseException) -> bool:
    """Whether sending again later may succeed (no server, a full disk, a server bug)."""
    if isinstance(exc, (Unavailable, InsufficientStorage, ConnectionError, TimeoutError, OSError)):
        return True
    if isinstance(exc, CumuloError):
        return exc.code == "INTERNAL_ERROR"
    return True  # a transport failure we do not know: keep the batch


class Spool:
    """Batches as files named ``<order>-<points>-<batch id>.batch`` in one folder."""

    def __init__(self, folder: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._size: int | None = None  # bytes in the folder, counted once, then kept up

    @classmethod
    def from_env(cls) -> Spool | None:
        """The job's spool (``CUMULO_SPOOL_DIR``, set by the runner), or None outside a job."""
        folder = os.environ.get(ENV_DIR)
        if not folder:
            return None
        limit = os.environ.get(ENV_MAX_BYTES, "")
        return cls(Path(folder), int(limit) if limit.isdigit() else DEFAULT_MAX_BYTES)

    # --------------------------------------------------------------- writing
    def put(self, entry: dict[str, Any], points: int) -> bool:
        """Keep one batch; False (and nothing kept) when the folder is full."""
        data = orjson.dumps(_encoded(entry), option=orjson.OPT_SERIALIZE_NUMPY, default=_plain)
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            if self._size is None:
                self._size = self.size()
            if self._size + len(data) > self.max_bytes:
                return False
            # Nanoseconds, then a counter: files sort in the order they were written.
            order = f"{time.time_ns():020d}{next(_sequence) % 1_000_000:06d}"
            name = f"{order}-{points}-{entry['batch_id']}{_SUFFIX}"
            partial = self.folder / (name + ".part")
            partial.write_bytes(data)
            partial.rename(self.folder / name)  # readers never see half a batch
            self._size += len(data)
        return True

    def note_lost(self, run_id: str, points: int, reason: str) -> None:
        line = orjson.dumps({"run_id": run_id, "points": points, "reason": reason})
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.folder / LOST_FILE, "ab") as fh:
            fh.write(line + b"\n")

    # --------------------------------------------------------------- reading
    def files(self) -> list[Path]:
        try:
            return sorted(p for p in self.folder.iterdir() if p.name.endswith(_SUFFIX))
        except FileNotFoundError:
            return []

    def size(self) -> int:
        total = 0
        for path in self.files():
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    def points(self) -> int:
        """Metric points and records waiting in the folder."""
        return sum(_points(path) for path in self.files())

    def lost(self) -> int:
        """Points refused so far (a full folder, a batch the store would never take)."""
        try:
            lines = (self.folder / LOST_FILE).read_bytes().splitlines()
        except FileNotFoundError:
            return 0
        return sum(int(orjson.loads(line)["points"]) for line in lines if line.strip())

    def replay(self, send: Callable[[dict[str, Any]], Any]) -> bool:
        """Send the batches in order; True when none is left, False at the first outage."""
        for path in self.files():
            try:
                entry = _decoded(orjson.loads(path.read_bytes()))
            except (FileNotFoundError, orjson.JSONDecodeError):
                continue  # sent and removed by another process, or cut short by a crash
            try:
                send(entry)
            except Exception as exc:
                if is_transient(exc):
                    log.debug("spooled batch %s waits: %s", entry["batch_id"], exc)
                    return False
                log.error("cumulo: a buffered metric batch was refused: %s", exc)
                self.note_lost(entry["run_id"], _points(path), str(exc))
            self._remove(path)
        return True

    def _remove(self, path: Path) -> None:
        with self._lock:
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                return
            if self._size is not None:
                self._size = max(0, self._size - size)


def _points(path: Path) -> int:
    try:
        return int(path.name.split("-")[1])
    except (IndexError, ValueError):
        return 0


def _encoded(entry: dict[str, Any]) -> dict[str, Any]:
    metrics = dict(entry["metrics"])
    metrics["value"] = [_finite(v) for v in metrics.get("value", ())]
    return {**entry, "metrics": metrics}


def _decoded(entry: dict[str, Any]) -> dict[str, Any]:
    values = entry["metrics"].get("value", [])
    if any(isinstance(v, str) for v in values):
        entry["metrics"]["value"] = [_number(v) for v in values]
    return entry


def _finite(value: Any) -> Any:
    # JSON has no NaN or infinity: they travel as text, as on the wire.
    if isinstance(value, float) and not math.isfinite(value):
        return encode_float(value)
    return value


def _number(value: Any) -> Any:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return decode_float(value)
    return value


def _plain(value: Any) -> Any:
    if hasattr(value, "__float__"):
        return _finite(float(value))
    return str(value)
