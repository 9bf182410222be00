"""Answers written straight to ASGI, by the front and the middleware in front of the route
groups: they import no web framework (a server answers ``/health`` before it loads one)."""

from __future__ import annotations

import orjson
from starlette.types import Send


async def send_error(
    send: Send, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]]
) -> None:
    """An error answer written straight to ASGI, for middleware that answers before a route."""
    data = orjson.dumps({"error_code": code, "message": message})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
