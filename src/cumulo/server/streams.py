"""Streaming file bodies both ways without holding them in memory."""

from __future__ import annotations

import io
import mimetypes
import posixpath
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any, cast

from anyio import from_thread
from fastapi.responses import StreamingResponse

CHUNK = 1024 * 1024
# A stored file is never a page of this server: an HTML or SVG file someone logged would
# otherwise run its scripts with the rights of whoever opens its link.
SANDBOX = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"


def file_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    """A file's bytes in chunks for a StreamingResponse; the file is closed at the end."""
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def attachment(handle: IO[bytes], path: str) -> StreamingResponse:
    """A stored file as a download, of the type its name says, never shown as a page
    (as MLflow's server sends one); the file is closed at the end."""
    name = "".join(c for c in posixpath.basename(path) if c.isascii() and c.isprintable())
    return StreamingResponse(
        file_chunks(handle),
        media_type=mimetypes.guess_type(path)[0] or "application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{name.replace(chr(34), "")}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": SANDBOX,
        },
    )


async def _next_chunk(chunks: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await chunks.__anext__()
    except StopAsyncIteration:
        return None


class _BodyReader(io.RawIOBase):
    """The request body as a blocking file, read from a worker thread as it arrives."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer and not self._done:
            chunk = from_thread.run(_next_chunk, self._chunks)
            if chunk is None:
                self._done = True
            else:
                self._buffer = chunk
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def body_reader(chunks: AsyncIterator[bytes]) -> IO[bytes]:
    """A request's streamed body as a file to read from a worker thread."""
    return cast(IO[bytes], _BodyReader(chunks))
