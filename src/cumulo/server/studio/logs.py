"""Where a run's logs are read from, a piece at a time so a page can tail them.

Two sources: a submitted job's output, kept by the job service as numbered
chunks (``job/output`` is every stream in order, ``job/stderr`` and
``job/system`` one stream each); and log files among the run's artifacts
(``logs/...``, ``user_logs/...``, ``system_logs/...``), read from a byte offset.
A cursor of ``-1`` asks for the last part of a long log.
"""

from __future__ import annotations

from dataclasses import dataclass

from cumulo.core.errors import NotFound
from cumulo.services.context import Services

LOG_FOLDERS = ("logs", "user_logs", "system_logs")
JOB_LOGS = {"job/output": None, "job/stderr": "stderr", "job/system": "system"}
TAIL_BYTES = 64 * 1024  # a first look at a long log file starts this far from its end
READ_BYTES = 256 * 1024  # the most one read of a file returns
READ_CHUNKS = 2000  # the most job log chunks one read returns


@dataclass(frozen=True)
class LogPiece:
    text: str
    cursor: int  # where the next read starts
    more: bool  # more is there to read now
    skipped: int = 0  # bytes left out at the start of a long log file


def log_names(services: Services, workspace: str, run_id: str, kind: str) -> list[str]:
    names: list[str] = []
    if kind == "job":
        names += list(JOB_LOGS)
    tracking = services.tracking
    for folder in LOG_FOLDERS:
        names += [f.path for f in tracking.list_artifacts(workspace, run_id, folder, True)]
    return names


def read(services: Services, workspace: str, run_id: str, name: str, cursor: int) -> LogPiece:
    if name in JOB_LOGS:
        return _read_job(services, workspace, run_id, JOB_LOGS[name], max(cursor, 0))
    if name.startswith(tuple(f"{f}/" for f in LOG_FOLDERS)):
        return _read_file(services, workspace, run_id, name, cursor)
    raise NotFound(f"Run {run_id} has no log named {name!r}.")


def _read_job(
    services: Services, workspace: str, run_id: str, stream: str | None, after: int
) -> LogPiece:
    page = services.jobs.get_logs(workspace, run_id, after=after, limit=READ_CHUNKS)
    text = "".join(c.text for c in page.chunks if stream is None or c.stream == stream)
    return LogPiece(text, max(page.next_seq, after), len(page.chunks) >= READ_CHUNKS)


def _read_file(services: Services, workspace: str, run_id: str, name: str, offset: int) -> LogPiece:
    tracking = services.tracking
    size = tracking.artifact_size(workspace, run_id, name)
    skipped = 0
    if offset < 0 or offset > size:  # first read, or the log was replaced by a shorter one
        offset = skipped = max(0, size - TAIL_BYTES)
    if offset >= size:
        return LogPiece("", size, False, skipped)
    with tracking.open_artifact(workspace, run_id, name) as fh:
        fh.seek(offset)
        data = fh.read(min(READ_BYTES, size - offset))
    more = offset + len(data) < size
    if more:  # stop at a line end, so no line or character is split between two reads
        cut = data.rfind(b"\n") + 1
        data = data[:cut] if cut > 0 else data
    return LogPiece(data.decode("utf-8", "replace"), offset + len(data), more, skipped)
