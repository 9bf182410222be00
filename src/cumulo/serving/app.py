"""The lean scoring server of one replica: a bare ASGI app around a predictor.

No framework and no per-request allocations beyond the body and the answer:
it runs under uvicorn (httptools and uvloop when installed) and answers

- ``POST /invocations`` and ``POST /score``: the model's answer;
- ``GET /ping``, ``GET /health``: 200 once the model is loaded (MLflow's probes);
- ``GET /version``: the server's version; ``GET /info``: what is served.

Every call must carry the replica's secret (``cumulo-replica-secret``), which
only the router and the supervisor know: a process that finds the replica's
port gets a 401 instead of skipping the endpoint's keys.

A ``ScoringError`` becomes its status (400 bad input, 415 media type) with
its body (JSON, or MLflow's text answers as text); any other exception is a 500 whose body gives the
exception's type and message and an error id, logged with the traceback; the
replica goes on serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

import orjson

from cumulo.core.deployments import REPLICA_SECRET_HEADER
from cumulo.serving.errors import LoadFirst, ScoringError

MAX_MESSAGE = 2000  # characters of a model's exception message a caller is given
log = logging.getLogger("cumulo.serving")

MAX_BODY = 100 * 1024 * 1024
VERSION = b"cumulo-scoring 0.1.0"
_JSON = [(b"content-type", b"application/json")]
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_SECRET_HEADER = REPLICA_SECRET_HEADER.encode()
REFUSED = orjson.dumps(  # the answer to a call without the replica's secret
    {
        "error_code": "UNAUTHENTICATED",
        "message": "Replicas answer their endpoint's router only: call the endpoint's "
        "scoring URL with its key.",
    }
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Predictor(Protocol):
    kind: str

    def predict(self, body: bytes, content_type: str = ...) -> bytes: ...


class ScoringApp:
    """ASGI app answering scoring requests with ``predictor``."""

    def __init__(
        self, predictor: Predictor, secret: str, info: dict[str, Any] | None = None
    ) -> None:
        if not secret:
            raise ValueError("A replica needs a secret to check its callers against.")
        self.predictor = predictor
        self.secret = secret.encode()
        self.info = orjson.dumps({"kind": predictor.kind, "pid": os.getpid(), **(info or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await run_lifespan(receive, send)
            return
        if kind != "http":
            return
        if not self._trusted(scope):
            await send_answer(send, 401, REFUSED, _JSON)
            return
        method, path = scope["method"], scope["path"]
        if method == "POST" and path in ("/invocations", "/score"):
            await self._score(scope, receive, send)
        elif method == "GET" and path in ("/ping", "/health"):
            await send_answer(send, 200, b"\n", _JSON)
        elif method == "GET" and path == "/version":
            await send_answer(send, 200, VERSION, _TEXT)
        elif method == "GET" and path == "/info":
            await send_answer(send, 200, self.info, _JSON)
        else:
            body = orjson.dumps(
                {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No route {method} {path}."}
            )
            await send_answer(send, 404, body, _JSON)

    def _trusted(self, scope: Scope) -> bool:
        """Whether the call carries this replica's secret (compared in constant time)."""
        for name, value in scope["headers"]:
            if name == _SECRET_HEADER:
                return hmac.compare_digest(value, self.secret)
        return False

    async def _score(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        if body is None:
            msg = {"error_code": "PAYLOAD_TOO_LARGE", "message": "The body is over 100 MiB."}
            await send_answer(send, 413, orjson.dumps(msg), _JSON)
            return
        content_type = ""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
                break
        status, out, media_type = await answer_async(self.predictor, body, content_type)
        headers = _JSON if media_type == "application/json" else _typed(media_type)
        await send_answer(send, status, out, headers)


def _typed(media_type: str) -> list[tuple[bytes, bytes]]:
    if media_type.startswith("text/") and "charset" not in media_type:
        media_type += "; charset=utf-8"
    return [(b"content-type", media_type.encode("latin-1"))]


async def answer_async(
    predictor: Predictor, body: bytes, content_type: str
) -> tuple[int, bytes, str]:
    """``answer`` on an event loop: a slow load a body needs first runs in a thread.

    The loop goes on answering other requests meanwhile (an MLflow model's
    fast-path bodies while the first body off it waits for MLflow's path).
    """
    try:
        return answer(predictor, body, content_type, defer=True)
    except LoadFirst as first:
        with contextlib.suppress(Exception):  # a failed load answers below, as it fails
            await asyncio.to_thread(first.load)
        return answer(predictor, body, content_type)


def answer(
    predictor: Predictor, body: bytes, content_type: str, defer: bool = False
) -> tuple[int, bytes, str]:
    """(status, body, media type) of one scoring request; a model failure is logged with an id.

    ``defer``: raise ``LoadFirst`` instead of loading inline, where the predictor can.
    """
    predict = getattr(predictor, "predict_or_defer", None) if defer else None
    try:
        return 200, (predict or predictor.predict)(body, content_type), "application/json"
    except LoadFirst:
        raise
    except ScoringError as exc:
        return exc.status, exc.body(), exc.media_type
    except Exception as exc:
        error_id = uuid.uuid4().hex[:12]
        log.exception("scoring failed, error id %s", error_id)
        # The model's own words, as the cloud service and `mlflow models serve` give them;
        # the traceback stays in the deployment's logs.
        said = f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE]
        message = (
            f"The model failed on this request: {said} (error id {error_id}; the traceback "
            "is in the deployment's logs)."
        )
        return (
            500,
            orjson.dumps(
                {"error_code": "INTERNAL_ERROR", "message": message, "error_id": error_id}
            ),
            "application/json",
        )


async def read_body(receive: Receive) -> bytes | None:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        parts.append(chunk)
    return b"".join(parts)


async def send_answer(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def run_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
