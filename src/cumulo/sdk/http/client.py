"""``HttpClient``: one connection to a ``cumulo server``'s ``/api/v1``, shared by the sub-clients.

Errors come back as the server raised them (rebuilt from their ``error_code``),
and a server that cannot be reached raises ``Unavailable``, which the
background writer retries with the same batch id.

A client may know several servers of one workspace (its service address):
when one does not answer, a call goes to the next, and the one that answered
is tried first from then on. A call moves on after an answer was possibly
lost only if repeating it is harmless (reads, PUT and DELETE, metric batches
with a batch id, status and tag sets); any call moves on when the connection
was never made.
"""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, cast
from urllib.parse import quote

import httpx
import orjson

from cumulo.core.errors import (
    CumuloError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    from_code,
)

CHUNK = 1024 * 1024
# Answers of a proxy or load balancer whose server is away: another server may answer.
_AWAY = (502, 503, 504)
_REPEATABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# POSTs that set a value (or read): sent twice, they leave the same state.
_REPEATABLE_POSTS = ("/status", "/tags", "/tags/delete", "/runs/search", "/runs/find")
_JSON = {"content-type": "application/json"}
_DUMPS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def q(part: str) -> str:
    """One path segment, escaped (names are checked by the server, not trusted here)."""
    return quote(str(part), safe="")


def ws_path(workspace: str) -> str:
    return f"/workspaces/{q(workspace)}"


class HttpClient:
    """The connection pool and failover of the HTTP sub-clients.

    Example::

        client = HttpClient("http://127.0.0.1:5000", token="cumulo_...")
        client.call("GET", "/workspaces")
    """

    def __init__(
        self, url: str | Sequence[str], token: str | None = None, timeout: float = 120.0
    ) -> None:
        self.urls = service_urls(url)
        self._current = 0  # the server that answered last
        headers = {"accept": "application/json", "user-agent": "cumulo-sdk"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        # Nagle's algorithm would hold a request's body back until the server's
        # delayed ACK of its headers: about 40 ms per call on a kept-alive connection.
        transport = httpx.HTTPTransport(
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            limits=httpx.Limits(max_connections=32, keepalive_expiry=15.0),
        )
        self._client = httpx.Client(
            base_url=self.urls[0] + "/api/v1",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )

    @property
    def url(self) -> str:
        """The server this transport talks to now (the first of its servers that answers)."""
        return self.urls[self._current]

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"HttpClient({self.url!r})"

    # ------------------------------------------------------------- plumbing
    def send(
        self,
        request: httpx.Request,
        stream: bool = False,
        *,
        repeatable: bool | None = None,
        rebuild: Callable[[], httpx.Request] | None = None,
    ) -> httpx.Response:
        """Send to the current server, then to the others while they do not answer.

        ``repeatable`` says whether the call may be sent again after its answer
        was lost (by default: by its method and path); ``rebuild`` makes a fresh
        request when the body is a stream that was read.
        """
        if repeatable is None:
            repeatable = _repeatable(request)
        failures: list[str] = []
        response = None
        for attempt, index in enumerate(self._failover_order()):
            if attempt and rebuild is not None:
                request = rebuild()
            # Requests are built on the first server's address; others get them moved.
            target = request if index == 0 else self._rebase(request, index)
            try:
                answer = self._client.send(target, stream=stream)
            except (httpx.TransportError, httpx.StreamConsumed) as exc:
                failures.append(f"{self.urls[index]}: {type(exc).__name__}: {exc}")
                if not _may_resend(exc, repeatable, request, rebuild):
                    break
                continue
            if answer.status_code in _AWAY and repeatable and attempt < len(self.urls) - 1:
                failures.append(f"{self.urls[index]}: answered {answer.status_code}")
                _discard(answer, stream)
                continue
            self._current = index
            response = answer
            break
        if response is None:
            raise Unavailable(
                f"Cannot reach the Cumulo server at {' or '.join(self.urls)} "
                f"({'; '.join(failures)}); check that `cumulo server` is running there."
            )
        if response.status_code >= 400:
            _discard(response, stream)
            raise _error(response)
        return response

    def _failover_order(self) -> list[int]:
        n = len(self.urls)
        return [(self._current + k) % n for k in range(n)]

    def _rebase(self, request: httpx.Request, index: int) -> httpx.Request:
        """``request`` sent to another server: same path under that server's address."""
        built_on = str(request.url)
        base = str(self._client.base_url).rstrip("/")
        tail = built_on[len(base) :] if built_on.startswith(base) else request.url.raw_path.decode()
        url = httpx.URL(self.urls[index] + "/api/v1" + tail)
        headers = request.headers.copy()
        headers["host"] = url.netloc.decode("ascii")
        return httpx.Request(
            request.method,
            url,
            headers=headers,
            stream=request.stream,
            extensions=request.extensions,
        )

    def call(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        try:
            content = None if body is None else orjson.dumps(body, option=_DUMPS)
        except orjson.JSONEncodeError as exc:
            raise InvalidInput(f"Cannot send this value to the server: {exc}") from exc
        clean = None if params is None else {k: v for k, v in params.items() if v is not None}
        request = self._client.build_request(
            method, path, content=content, params=clean, headers=_JSON if content else None
        )
        response = self.send(request)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise Unavailable(
                f"The server at {self.url} answered {path} with something that is not JSON; "
                "is it a Cumulo server?"
            ) from exc

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Request:
        """A request on the first server's address (``send`` moves it to the one that answers)."""
        return self._client.build_request(method, path, **kwargs)

    def stream(self, request: httpx.Request) -> IO[bytes]:
        """A file-like object reading the answer's body as it streams from the server."""
        response = self.send(request, stream=True)
        return cast(IO[bytes], io.BufferedReader(_ResponseReader(response), CHUNK))


def service_urls(url: str | Sequence[str]) -> list[str]:
    """The servers a transport may use: ``url`` (one, a comma-separated list, or a list),
    then, when ``url`` is one of a job's ``CUMULO_URLS``, the others of that list."""
    parts = url.split(",") if isinstance(url, str) else list(url)
    urls = [p.strip().rstrip("/") for p in parts if p.strip()]
    if not urls:
        raise InvalidInput("Give the address of a Cumulo server.")
    fellows = [u.strip().rstrip("/") for u in os.environ.get("CUMULO_URLS", "").split(",")]
    if urls[0] in fellows:
        urls += [u for u in fellows if u]
    return list(dict.fromkeys(urls))


def _repeatable(request: httpx.Request) -> bool:
    if request.method in _REPEATABLE_METHODS:
        return True
    path = request.url.path
    if request.method == "POST" and path.endswith("/log-batch"):
        # Stored once per batch id: a batch sent twice is written once.
        return b'"batch_id":"' in (request.content if _has_bytes(request) else b"")
    return request.method == "POST" and path.endswith(_REPEATABLE_POSTS)


def _has_bytes(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


def _may_resend(
    exc: Exception,
    repeatable: bool,
    request: httpx.Request,
    rebuild: Callable[[], httpx.Request] | None,
) -> bool:
    """Whether another server may get this request after ``exc``."""
    # Never connected: the server cannot have seen the request, nor read its body.
    never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
    body_again = _has_bytes(request) or rebuild is not None or never_sent
    return body_again and (repeatable or never_sent)


def _discard(response: httpx.Response, stream: bool) -> None:
    """Read and close a response that will not be returned (a streamed one holds a connection)."""
    if not stream:
        return
    try:
        response.read()
    except httpx.TransportError:
        pass
    finally:
        response.close()


def _error(response: httpx.Response) -> CumuloError:
    """The error the server raised, rebuilt from its JSON body."""
    try:
        body = orjson.loads(response.content)
        code, message = str(body["error_code"]), str(body["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        pass
    else:
        if code == "ENDPOINT_NOT_FOUND":  # e.g. an id with a "/" in it: no such thing
            return NotFound(message)
        details = body.get("details")
        return from_code(code, message, details if isinstance(details, dict) else None)
    status = response.status_code
    text = response.text[:300]
    if status in (502, 503, 504):
        return Unavailable(f"The server answered {status}; try again later. {text}")
    if status == 401:
        return Unauthenticated(f"The server needs a token (401). {text}")
    if status == 403:
        return PermissionDenied(f"The server refused access (403). {text}")
    if status == 404:
        return NotFound(f"Not found on the server (404): {response.request.url.path}")
    return CumuloError(f"The server answered {status}: {text}")


def read_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


class _ResponseReader(io.RawIOBase):
    """A streamed response body as a raw file; closing it closes the response."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._chunks = response.iter_bytes(CHUNK)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
            except httpx.TransportError as exc:
                raise Unavailable(f"The download was cut off: {exc}") from exc
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()


def stream_position(stream: IO[bytes]) -> int | None:
    """Where a stream that can be read again from there stands (None: it cannot).

    Plain readers (a progress counter, a socket) have no ``seekable``: their upload
    is not resent to another server.
    """
    seekable = getattr(stream, "seekable", None)
    return stream.tell() if seekable is not None and seekable() else None
