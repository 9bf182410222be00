"""A small HTTP/1.1 client for the router: kept-alive connections to each replica.

The router forwards one POST per request to a replica it knows speaks plain
HTTP/1.1 on loopback. A general client (httpx) spent about 2 ms of CPU per
forwarded request here and capped the router near 500 requests/second on two
cores; writing the request and reading the answer directly on pooled
connections costs a small fraction of that (see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from cumulo.core.deployments import REPLICA_SECRET_HEADER

MAX_IDLE = 64
_HEAD_LIMIT = 64 * 1024
_SECRET_HEADER = f"{REPLICA_SECRET_HEADER}: ".encode()


class UpstreamError(Exception):
    """The replica could not be reached, or dropped the connection.

    ``delivered`` is True when the request reached a live replica that then
    closed the connection without answering (it may have crashed on this very
    request): such a request is not sent to another replica.
    """

    def __init__(self, message: str, delivered: bool = False) -> None:
        super().__init__(message)
        self.delivered = delivered


class UpstreamTimeout(Exception):
    pass


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class Upstream:
    """Pooled connections to one replica at ``http://host:port``."""

    def __init__(self, url: str) -> None:
        address, _, base = url.removeprefix("http://").partition("/")
        host, port = address.rsplit(":", 1)
        self.host = host.strip("[]")
        self.port = int(port)
        self.base = "/" + base.strip("/") if base.strip("/") else ""  # e.g. a Serve prefix
        self.url = url
        self._idle: list[_Conn] = []
        self._host_header = f"Host: {address}\r\n".encode()

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=_HEAD_LIMIT)
        except OSError as exc:
            raise UpstreamError(f"cannot connect to {self.url}: {exc}") from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Conn(reader, writer)

    async def post(
        self, path: str, body: bytes, content_type: str, timeout: float, secret: str
    ) -> tuple[int, str, bytes]:
        """(status, content type, body) of the replica's answer; ``secret`` opens it."""
        request = b"".join(
            (
                b"POST ",
                (self.base + path).encode(),
                b" HTTP/1.1\r\n",
                self._host_header,
                _SECRET_HEADER,
                secret.encode("latin-1"),
                b"\r\nContent-Type: ",
                content_type.encode("latin-1"),
                b"\r\nContent-Length: ",
                str(len(body)).encode(),
                b"\r\n\r\n",
                body,
            )
        )
        conn = None
        while self._idle:
            idle = self._idle.pop()
            if idle.reader.at_eof() or idle.writer.is_closing():
                idle.close()  # the replica closed it while it was idle
                continue
            conn = idle
            break
        if conn is not None:
            try:
                return await self._exchange(conn, request, timeout)
            except UpstreamError:
                pass  # closed under us as we reused it: one more try on a new connection
        conn = await self._connect()
        try:
            return await self._exchange(conn, request, timeout)
        except UpstreamError as exc:
            raise UpstreamError(str(exc), delivered=True) from exc

    async def _exchange(
        self, conn: _Conn, request: bytes, timeout: float
    ) -> tuple[int, str, bytes]:
        try:
            async with asyncio.timeout(timeout):
                conn.writer.write(request)
                head = await conn.reader.readuntil(b"\r\n\r\n")
                status, length, kind, keep, chunked = _parse_head(head)
                if chunked:
                    payload = await _read_chunked(conn.reader)
                elif length is not None:
                    payload = await conn.reader.readexactly(length)
                else:
                    payload = await conn.reader.read()
                    keep = False
        except TimeoutError:
            conn.close()
            raise UpstreamTimeout(f"{self.url} did not answer within {timeout:g} s") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            conn.close()
            raise UpstreamError(f"{self.url} closed the connection: {exc!r}") from exc
        if keep and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.close()
        return status, kind, payload

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def _parse_head(head: bytes) -> tuple[int, int | None, str, bool, bool]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP answer: {lines[0][:80]!r}")
    status = int(parts[1])
    length: int | None = None
    kind = "application/json"
    keep = parts[0] == b"HTTP/1.1"
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"content-type":
            kind = value.strip().decode("latin-1")
        elif name == b"connection":
            token = value.strip().lower()
            keep = token != b"close" if parts[0] == b"HTTP/1.1" else token == b"keep-alive"
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    return status, length, kind, keep, chunked


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


class Pool:
    """One ``Upstream`` per replica URL, made on first use."""

    def __init__(self, factory: Callable[[str], Upstream] = Upstream) -> None:
        self._factory = factory
        self._upstreams: dict[str, Upstream] = {}

    def get(self, url: str) -> Upstream:
        found = self._upstreams.get(url)
        if found is None:
            found = self._upstreams[url] = self._factory(url)
        return found

    def forget(self, url: str) -> None:
        found = self._upstreams.pop(url, None)
        if found is not None:
            found.close()

    def close(self) -> None:
        for upstream in self._upstreams.values():
            upstream.close()
        self._upstreams.clear()
