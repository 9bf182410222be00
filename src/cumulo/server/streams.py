"""Streaming file bodies both ways without holding them in memory."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any, cast

from anyio import from_thread

CHUNK = 1024 * 1024


def file_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    """A file's bytes in chunks for a StreamingResponse; the file is closed at the end."""
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk


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
