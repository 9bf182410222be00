"""Request body size limit (``settings.max_request_bytes``, 64 MiB by default).

A request whose ``Content-Length`` is over the limit is answered 413 before
any of its body is read; a chunked body is counted as it arrives and refused
as soon as it passes the limit, so no request can fill the server's memory.
Artifact uploads (``PUT .../artifacts/...``) stream to the artifact store as
they arrive and are not limited; model archives, endpoint code and code
snapshots stream too, each counted against its own limit by ``receive_upload``.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cumulo.core.errors import PayloadTooLarge
from cumulo.server.asgi import send_error
from cumulo.store.artifacts import storage_errors

if TYPE_CHECKING:
    from starlette.requests import Request


def is_streamed_upload(scope: Scope) -> bool:
    """Artifact, dataset and datastore files and code snapshots stream to the store; their
    routes set their own limits."""
    path = scope["path"]
    return scope["method"] == "PUT" and (
        any(part in path for part in ("/artifacts/", "/dataset-blobs/", "/files/"))
        or path.endswith("/snapshots")
    )


async def receive_upload(request: Request, out: IO[bytes], max_bytes: int, what: str) -> int:
    """Write a streamed request body to ``out``, counting it as it arrives.

    Refused (413) before reading when its ``Content-Length`` is over ``max_bytes``,
    and as soon as the bytes received pass it otherwise, so an upload never
    fills the disk before its size is known; the caller drops what ``out`` holds.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(what, max_bytes)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise _too_large(what, max_bytes)
        with storage_errors(f"receive {what}"):
            out.write(chunk)
    return received


def _too_large(what: str, max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{what[:1].upper()}{what[1:]} is larger than the limit of {_size(max_bytes)}."
    )


def _size(n: int) -> str:
    if n and n % 2**30 == 0:
        return f"{n // 2**30} GiB"
    if n and n % 2**20 == 0:
        return f"{n // 2**20} MiB"
    return f"{n:,} bytes"


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_streamed_upload(scope):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
        received = 0
        refused = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    await self._refuse(send)
                    # The app sees the client go away and stops reading.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # once refused, the app's own answer is dropped
                await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, send: Send) -> None:
        message = (
            f"The request body is larger than this server's limit of {self.max_bytes} bytes "
            "(CUMULO_MAX_REQUEST_BYTES); send smaller batches or upload files as artifacts."
        )
        await send_error(send, 413, "PAYLOAD_TOO_LARGE", message, [(b"connection", b"close")])
