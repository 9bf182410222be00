"""Where a run's logs are read from: log files among its artifacts, read from an offset.

A log is named by its path among the run's files (``logs/...``, ``user_logs/...``,
``system_logs/...``). Reading from an offset lets the page tail a growing log
without fetching it again.
"""

from __future__ import annotations

from dataclasses import dataclass

from cumulo.services.context import Services

LOG_FOLDERS = ("logs", "user_logs", "system_logs")
TAIL_BYTES = 64 * 1024  # a first look at a long log starts this far from its end
READ_BYTES = 256 * 1024  # the most one poll returns


@dataclass(frozen=True)
class LogChunk:
    text: str
    offset: int  # where the next read starts
    size: int
    skipped: int  # bytes left out at the start of a long log


def log_names(services: Services, workspace: str, run_id: str) -> list[str]:
    tracking = services.tracking
    names: list[str] = []
    for folder in LOG_FOLDERS:
        names += [f.path for f in tracking.list_artifacts(workspace, run_id, folder, True)]
    return names


def read(services: Services, workspace: str, run_id: str, name: str, offset: int) -> LogChunk:
    """Bytes of log ``name`` from ``offset`` (``-1``: the last part of it), as text."""
    if not name.startswith(tuple(f"{f}/" for f in LOG_FOLDERS)):
        return LogChunk("", 0, 0, 0)
    tracking = services.tracking
    size = tracking.artifact_size(workspace, run_id, name)
    skipped = 0
    if offset < 0 or offset > size:  # first read, or the log was replaced by a shorter one
        offset = skipped = max(0, size - TAIL_BYTES)
    if offset >= size:
        return LogChunk("", size, size, skipped)
    with tracking.open_artifact(workspace, run_id, name) as fh:
        fh.seek(offset)
        data = fh.read(min(READ_BYTES, size - offset))
    # Stop at the last complete line (or character) so a line is never split in two reads.
    cut = data.rfind(b"\n") + 1 if offset + len(data) < size else len(data)
    data = data[:cut] if cut > 0 else data
    return LogChunk(data.decode("utf-8", "replace"), offset + len(data), size, skipped)
