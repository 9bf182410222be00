"""Browsing a run's files: its outputs (artifacts) and its code (the job's snapshot).

Both are a ``FileSource``: list a folder, tell a file's size, open it. Previews
read at most ``PREVIEW_BYTES``; raw files go out with headers that keep a
file from running script in the studio's origin.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import zipfile
from collections.abc import Iterator
from typing import IO, Any, Protocol, cast

from fastapi import Response
from fastapi.responses import StreamingResponse

from cumulo.core.entities import FileInfo
from cumulo.core.errors import NotFound
from cumulo.server.streams import SANDBOX
from cumulo.services.context import Services

PREVIEW_BYTES = 512 * 1024
CSV_ROWS = 500
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}


class FileSource(Protocol):
    def list(self, path: str) -> list[FileInfo]: ...
    def size(self, path: str) -> int: ...
    def open(self, path: str) -> IO[bytes]: ...


class ArtifactSource:
    """The run's files in the artifact store, seen from folder ``root`` ("" for all)."""

    def __init__(self, services: Services, workspace: str, run_id: str, root: str = "") -> None:
        self.tracking = services.tracking
        self.workspace, self.run_id, self.root = workspace, run_id, root

    def _full(self, path: str) -> str:
        path = path.strip("/")
        return f"{self.root}/{path}" if self.root and path else self.root or path

    def list(self, path: str) -> list[FileInfo]:
        entries = self.tracking.list_artifacts(self.workspace, self.run_id, self._full(path))
        cut = len(self.root) + 1 if self.root else 0
        return [FileInfo(e.path[cut:], e.is_dir, e.size) for e in entries]

    def size(self, path: str) -> int:
        return self.tracking.artifact_size(self.workspace, self.run_id, self._full(path))

    def open(self, path: str) -> IO[bytes]:
        return self.tracking.open_artifact(self.workspace, self.run_id, self._full(path))


class SnapshotSource:
    """The files of a content-addressed code snapshot (a zip kept by the job service)."""

    def __init__(self, services: Services, workspace: str, digest: str) -> None:
        self.jobs = services.jobs
        self.workspace, self.digest = workspace, digest
        info = self.jobs.get_snapshot(workspace, digest)
        self.files = {str(f["path"]): int(f["size"]) for f in info.files}

    def list(self, path: str) -> list[FileInfo]:
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        seen: dict[str, FileInfo] = {}
        for name, size in self.files.items():
            if not name.startswith(prefix):
                continue
            head, sep, _rest = name[len(prefix) :].partition("/")
            full = prefix + head
            seen[full] = FileInfo(full, True) if sep else FileInfo(full, False, size)
        return list(seen.values())

    def size(self, path: str) -> int:
        if path not in self.files:
            raise NotFound(f"The snapshot has no file {path!r}.")
        return self.files[path]

    def open(self, path: str) -> IO[bytes]:
        self.size(path)
        archive = zipfile.ZipFile(self.jobs.open_snapshot(self.workspace, self.digest))
        return cast(IO[bytes], _Member(archive, archive.open(path)))


class _Member(io.RawIOBase):
    """A zip member that closes its archive with it."""

    def __init__(self, archive: zipfile.ZipFile, member: IO[bytes]) -> None:
        self.archive, self.member = archive, member

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self.member.read(-1 if size is None else size)

    def close(self) -> None:
        self.member.close()
        self.archive.close()
        super().close()


def listing(source: FileSource, path: str) -> list[FileInfo]:
    return sorted(source.list(path), key=lambda e: (not e.is_dir, e.path))


def preview(source: FileSource, path: str) -> dict[str, Any]:
    """What the page shows of a file: an image, JSON, a CSV table, text, or nothing."""
    size = source.size(path)
    ext = posixpath.splitext(path)[1].lower()
    base: dict[str, Any] = {"path": path, "size": size, "kind": "none", "truncated": False}
    if ext in IMAGE_TYPES:
        return {**base, "kind": "image"}
    with source.open(path) as fh:
        head = fh.read(PREVIEW_BYTES + 1)
    truncated = len(head) > PREVIEW_BYTES
    head = head[:PREVIEW_BYTES]
    if b"\x00" in head[:8192]:
        return base  # binary
    text = head.decode("utf-8", "replace")
    base["truncated"] = truncated
    if ext == ".json" and not truncated:
        try:
            return {**base, "kind": "json", "text": json.dumps(json.loads(text), indent=2)}
        except ValueError:
            pass
    if ext in (".csv", ".tsv"):
        reader = csv.reader(io.StringIO(text), delimiter="\t" if ext == ".tsv" else ",")
        rows = []
        for i, row in enumerate(reader):
            if i > CSV_ROWS:
                base["truncated"] = True
                break
            rows.append(row)
        if truncated and rows:
            rows.pop()  # the last line may be cut in half
        return {**base, "kind": "csv", "header": rows[0] if rows else [], "rows": rows[1:]}
    return {**base, "kind": "text", "text": text}


def raw(source: FileSource, path: str, download: bool) -> Response:
    """A file inline (images only) or as a download, streamed in chunks."""
    size = source.size(path)
    stream = source.open(path)
    ext = posixpath.splitext(path)[1].lower()
    name = posixpath.basename(path).replace('"', "")
    inline = ext in IMAGE_TYPES and not download
    headers = {
        "Content-Length": str(size),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": SANDBOX,
    }
    if not inline:
        headers["Content-Disposition"] = f'attachment; filename="{name}"'

    def chunks() -> Iterator[bytes]:
        with stream:
            while chunk := stream.read(1024 * 1024):
                yield chunk

    media = IMAGE_TYPES[ext] if inline else "application/octet-stream"
    return StreamingResponse(chunks(), media_type=media, headers=headers)
