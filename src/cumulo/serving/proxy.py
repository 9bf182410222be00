"""The endpoint router: one stable scoring URL in front of an endpoint's replicas.

``POST /endpoints/<workspace>/<endpoint>/score`` checks the caller's key (or
workspace token), picks a deployment by the traffic split (or the one named in
the ``cumulo-model-deployment`` header), picks one of its *ready* replicas in
turn and forwards the body over a kept-alive connection. ``GET .../swagger.json``
describes the endpoint's input and output. The routing table of an endpoint
is read from the store at most once a second; a replica that refuses the
connection (stopped during an update, crashed) is skipped and the request
goes to another ready one, so callers see no error while replicas change.
Each forwarded call carries the replica's own secret (from the routing
table), without which the replica answers nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from cumulo.core.errors import HTTP_STATUS, CumuloError, NotFound, Unauthenticated, Unavailable
from cumulo.serving.app import Receive, Scope, Send, read_body, run_lifespan, send_answer
from cumulo.serving.metrics import MetricsBuffer
from cumulo.serving.openapi import endpoint_openapi
from cumulo.serving.upstream import Pool, UpstreamError, UpstreamTimeout

log = logging.getLogger("cumulo.serving")

DEPLOYMENT_HEADERS = (b"cumulo-model-deployment", b"azureml-model-deployment")
TABLE_TTL_S = 1.0
LOG_BODY_LIMIT = 10_000
_JSON = [(b"content-type", b"application/json")]

# resolve(workspace, endpoint) -> the routing table (store.routes); runs in a thread.
Resolver = Callable[[str, str], dict[str, Any]]
# token_ok(workspace, token) -> whether a workspace token may score; runs in a thread.
TokenCheck = Callable[[str, str], bool]


@dataclass
class _Table:
    data: dict[str, Any]
    fetched: float
    counters: dict[str, Any] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)

    def urls(self, deployment: str) -> list[str]:
        dep = self.data["deployments"].get(deployment)
        return list(dep["urls"]) if dep else []

    def secret(self, deployment: str, url: str) -> str:
        """What the replica at ``url`` takes as proof that the call comes from here."""
        return str(self.data["deployments"][deployment]["secrets"][url])


class EndpointRouter:
    """ASGI app serving ``/endpoints/...`` (mounted in the server, or alone when embedded)."""

    def __init__(
        self,
        resolve: Resolver,
        token_ok: TokenCheck | None = None,
        metrics: MetricsBuffer | None = None,
    ) -> None:
        self.resolve = resolve
        self.token_ok = token_ok
        self.metrics = metrics or MetricsBuffer()
        self._tables: dict[tuple[str, str], _Table] = {}
        self._pending: dict[tuple[str, str], asyncio.Future[_Table]] = {}
        self._upstreams: Pool | None = None
        self._shadows: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root) and not path.startswith("/endpoints/"):
            path = path[len(root) :]
        parts = path.strip("/").split("/")
        method = scope["method"]
        try:
            if len(parts) != 4 or parts[0] != "endpoints":
                raise NotFound(f"No route {method} {path}.")
            _, workspace, endpoint, action = parts
            if action in ("score", "invocations") and method == "POST":
                await self._score(scope, receive, send, workspace, endpoint)
            elif action == "swagger.json" and method == "GET":
                table = await self._table(workspace, endpoint)
                doc = endpoint_openapi(workspace, endpoint, table.data)
                await send_answer(send, 200, orjson.dumps(doc), _JSON)
            elif action in ("health", "ping") and method == "GET":
                table = await self._table(workspace, endpoint)
                ready = {n: len(d["urls"]) for n, d in table.data["deployments"].items()}
                status = 200 if any(ready.values()) else 503
                await send_answer(send, status, orjson.dumps({"ready_replicas": ready}), _JSON)
            else:
                raise NotFound(f"No route {method} {path}.")
        except CumuloError as exc:
            headers = list(_JSON)
            if isinstance(exc, Unauthenticated):
                headers.append((b"www-authenticate", b"Bearer"))
            await send_answer(
                send, HTTP_STATUS.get(exc.code, 500), orjson.dumps(exc.to_dict()), headers
            )

    def invalidate(self) -> None:
        """Forget every routing table (after a change made in this process)."""
        self._tables.clear()

    # --------------------------------------------------------------- routing
    async def _table(self, workspace: str, endpoint: str, fresh: bool = False) -> _Table:
        key = (workspace, endpoint)
        table = self._tables.get(key)
        now = time.monotonic()
        if table is not None and not fresh and now - table.fetched < TABLE_TTL_S:
            return table
        pending = self._pending.get(key)
        if pending is not None:  # one read at a time per endpoint
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Table] = loop.create_future()
        self._pending[key] = future
        try:
            data = await loop.run_in_executor(None, self.resolve, workspace, endpoint)
            fetched = _Table(data, time.monotonic())
            if table is not None:
                fetched.counters = table.counters
                if table.data.get("keys") == data.get("keys"):
                    fetched.tokens = table.tokens
            self._tables[key] = fetched
            future.set_result(fetched)
            return fetched
        except BaseException as exc:
            self._tables.pop(key, None)
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning
            raise
        finally:
            self._pending.pop(key, None)

    async def _authorize(self, scope: Scope, table: _Table, workspace: str, endpoint: str) -> None:
        mode = table.data["auth_mode"]
        if mode == "none":
            return
        token = _bearer(scope)
        if token is None:
            raise Unauthenticated(
                f"Endpoint {endpoint!r} needs 'Authorization: Bearer <key>' (get the keys with "
                "endpoint.get_keys() or `cumulo endpoint show --keys`)."
            )
        if mode == "key":
            primary, secondary = table.data["keys"]
            ok = hmac.compare_digest(token.encode(), primary.encode()) or hmac.compare_digest(
                token.encode(), secondary.encode()
            )
        else:
            ok = token in table.tokens
            if not ok and self.token_ok is not None:
                loop = asyncio.get_running_loop()
                ok = await loop.run_in_executor(None, self.token_ok, workspace, token)
                if ok:
                    table.tokens.add(token)
        if not ok:
            raise Unauthenticated(f"The key or token does not open endpoint {endpoint!r}.")

    def _choose(self, scope: Scope, table: _Table, endpoint: str) -> str:
        wanted = _header(scope, DEPLOYMENT_HEADERS)
        deployments = table.data["deployments"]
        if wanted is not None:
            if wanted not in deployments:
                raise NotFound(f"Endpoint {endpoint!r} has no deployment {wanted!r}.")
            return wanted
        traffic = table.data["traffic"]
        live = [(n, w) for n, w in traffic.items() if w > 0 and deployments.get(n, {}).get("urls")]
        if not live:
            # Nothing ready where the traffic goes: say why instead of timing out.
            if not traffic:
                raise Unavailable(
                    f"Endpoint {endpoint!r} sends no traffic to any deployment yet; set it "
                    "with endpoint.update_traffic({...})."
                )
            raise Unavailable(
                f"No replica of endpoint {endpoint!r} is ready to take traffic "
                f"({', '.join(traffic)}); see endpoint.get_logs() and its deployments' state."
            )
        if len(live) == 1:
            return str(live[0][0])
        pick = random.random() * sum(w for _, w in live)
        for name, weight in live:
            pick -= weight
            if pick < 0:
                return str(name)
        return str(live[-1][0])

    def _replicas(self, table: _Table, deployment: str) -> list[str]:
        urls = table.urls(deployment)
        if len(urls) <= 1:
            return urls
        counter = table.counters.setdefault(deployment, itertools.count())
        start = next(counter) % len(urls)
        return urls[start:] + urls[:start]

    # --------------------------------------------------------------- scoring
    async def _score(
        self, scope: Scope, receive: Receive, send: Send, workspace: str, endpoint: str
    ) -> None:
        started = time.perf_counter()
        table = await self._table(workspace, endpoint)
        await self._authorize(scope, table, workspace, endpoint)
        body = await read_body(receive)
        if body is None:
            msg = {"error_code": "PAYLOAD_TOO_LARGE", "message": "The body is over 100 MiB."}
            await send_answer(send, 413, orjson.dumps(msg), _JSON)
            return
        content_type = _header(scope, (b"content-type",)) or "application/json"
        deployment = self._choose(scope, table, endpoint)
        status, payload, kind = await self._forward(
            table, workspace, endpoint, deployment, body, content_type
        )
        dep = table.data["deployments"].get(deployment)
        headers = [
            (b"content-type", kind.encode()),
            (b"cumulo-model-deployment", deployment.encode()),
        ]
        if dep is not None:
            latency = (time.perf_counter() - started) * 1000
            self.metrics.record(dep["id"], status, latency)
            rate = float(dep["spec"].get("request_logging", 0) or 0)
            if rate and random.random() < rate:
                self.metrics.log_request(
                    {
                        "deployment_id": dep["id"],
                        "at": int(time.time() * 1000),
                        "status": status,
                        "latency_ms": latency,
                        "request": body[:LOG_BODY_LIMIT].decode("utf-8", "replace"),
                        "response": payload[:LOG_BODY_LIMIT].decode("utf-8", "replace"),
                    }
                )
        await send_answer(send, status, payload, headers)
        mirror = table.data.get("mirror_traffic") or {}
        for name, percent in mirror.items():
            if name != deployment and random.random() * 100 < percent:
                task = asyncio.get_running_loop().create_task(
                    self._shadow(table, workspace, endpoint, name, body, content_type)
                )
                self._shadows.add(task)  # held until done, so it is not collected early
                task.add_done_callback(self._shadows.discard)

    async def _shadow(
        self, table: _Table, workspace: str, endpoint: str, name: str, body: bytes, ctype: str
    ) -> None:
        started = time.perf_counter()
        status, _, _ = await self._forward(table, workspace, endpoint, name, body, ctype)
        dep = table.data["deployments"].get(name)
        if dep is not None:
            self.metrics.record(dep["id"], status, (time.perf_counter() - started) * 1000)

    async def _forward(
        self,
        table: _Table,
        workspace: str,
        endpoint: str,
        deployment: str,
        body: bytes,
        content_type: str,
    ) -> tuple[int, bytes, str]:
        pool = self._pool()
        spec = table.data["deployments"][deployment]["spec"]
        timeout = float(spec.get("request_timeout_ms", 60_000)) / 1000
        tried: set[str] = set()
        for attempt in range(3):
            urls = [u for u in self._replicas(table, deployment) if u not in tried]
            if not urls and attempt:
                # Every replica we knew refused: the table is stale (an update), read it again.
                table = await self._table(workspace, endpoint, fresh=True)
                urls = [u for u in self._replicas(table, deployment) if u not in tried]
            for url in urls:
                tried.add(url)
                try:
                    status, kind, payload = await pool.get(url).post(
                        "/invocations", body, content_type, timeout, table.secret(deployment, url)
                    )
                    return status, payload, kind
                except UpstreamError as exc:
                    pool.forget(url)
                    if exc.delivered:
                        log.warning(
                            "replica %s of %s/%s dropped a request: %s",
                            url,
                            endpoint,
                            deployment,
                            exc,
                        )
                        msg = {
                            "error_code": "BAD_GATEWAY",
                            "message": (
                                "The replica closed the connection while answering (it may have "
                                "crashed on this request; see the deployment's logs). The request "
                                "was not retried."
                            ),
                        }
                        return 502, orjson.dumps(msg), "application/json"
                    # Gone between the table read and now (replaced or stopped): next one.
                    log.info("replica %s of %s/%s refused: %s", url, endpoint, deployment, exc)
                    continue
                except UpstreamTimeout:
                    msg = {
                        "error_code": "TIMEOUT",
                        "message": f"The model took longer than {timeout:g} s to answer.",
                    }
                    return 504, orjson.dumps(msg), "application/json"
        msg = {
            "error_code": "TEMPORARILY_UNAVAILABLE",
            "message": f"No replica of deployment {deployment!r} answered; it may be restarting.",
        }
        return 503, orjson.dumps(msg), "application/json"

    def _pool(self) -> Pool:
        loop = asyncio.get_running_loop()
        if self._upstreams is None or self._loop is not loop:
            self._upstreams = Pool()
            self._loop = loop
        return self._upstreams

    def close(self) -> None:
        if self._upstreams is not None:
            self._upstreams.close()
            self._upstreams = None


def _header(scope: Scope, names: tuple[bytes, ...]) -> str | None:
    for name, value in scope["headers"]:
        if name in names:
            return str(value.decode("latin-1"))
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, (b"authorization",))
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
