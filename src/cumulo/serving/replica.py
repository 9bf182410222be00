"""One replica process: load the model, bind a port, report, serve.

Started by the supervisor as ``python -m cumulo.serving.replica SPEC.json``.
It writes its state to the spec's status file (atomically): ``loading``, then
``ready`` with its port, or ``failed`` with the error and traceback when the
model or the entry script's ``init()`` cannot load (exit code 3). It stops
when its parent (the supervisor) is gone, and finishes in-flight requests on
SIGTERM. It answers only calls carrying the secret the supervisor put in its
environment (``CUMULO_REPLICA_SECRET``), which it takes out of the
environment before any model code runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from cumulo.core.deployments import REPLICA_SECRET_ENV
from cumulo.serving.app import ScoringApp
from cumulo.serving.errors import ModelLoadError

INIT_FAILED = 3
NO_SECRET = 2
log = logging.getLogger("cumulo.serving")


def load_predictor(spec: dict[str, Any]) -> Any:
    """The predictor a spec describes: an MLflow model or an entry script."""
    if spec["kind"] == "mlflow":
        from cumulo.serving.mlflow_model import MlflowPredictor

        return MlflowPredictor(spec["model_dir"])
    if spec["kind"] == "script":
        from cumulo.serving.entry_script import ScriptPredictor

        return ScriptPredictor(spec["entry_script"], spec.get("source_dir"))
    raise ModelLoadError(f"Unknown deployment kind {spec['kind']!r}.")


def write_status(path: str | Path, **state: Any) -> None:
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps({**state, "pid": os.getpid(), "at": int(time.time() * 1000)}))
    os.replace(tmp, target)


def bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only then
    # (otherwise each answer on a kept-alive connection waits ~40 ms for an ACK).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _watch_parent(parent: int) -> None:
    """Stop when the supervisor is gone, so no replica outlives it."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            log.warning("supervisor %s is gone; stopping", parent)
            os.kill(os.getpid(), 15)
            time.sleep(10)
            os._exit(0)


def serve(app: Any, sock: socket.socket) -> None:
    import uvicorn

    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:  # pragma: no cover - depends on the environment
        http = "h11"
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:  # pragma: no cover - depends on the environment
        loop = "asyncio"
    config = uvicorn.Config(
        app,
        http=http,
        loop=loop,
        lifespan="off",
        ws="none",  # a replica answers HTTP only: no websocket module to import
        access_log=False,
        log_level="warning",
        timeout_keep_alive=75,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=30,
    )
    uvicorn.Server(config).run(sockets=[sock])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    status = spec["status_file"]
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    secret = os.environ.pop(REPLICA_SECRET_ENV, "")  # the model's code never sees it
    if not secret:
        message = f"A replica is started with its secret in {REPLICA_SECRET_ENV}."
        sys.stderr.write(message + "\n")
        write_status(status, state="failed", error=message, traceback="")
        return NO_SECRET
    started = time.monotonic()
    write_status(status, state="loading")
    try:
        predictor = load_predictor(spec)
    except BaseException as exc:
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        message = exc.args[0] if isinstance(exc, ModelLoadError) and exc.args else repr(exc)
        write_status(status, state="failed", error=f"{message}", traceback=tb)
        return INIT_FAILED
    sock = bind(spec.get("host", "127.0.0.1"), int(spec.get("port", 0)))
    port = sock.getsockname()[1]
    app = ScoringApp(predictor, secret, {"deployment": spec.get("deployment", "")})
    load_s = time.monotonic() - started
    log.info("model loaded in %.2f s; serving", load_s)  # its port is for the owners only
    write_status(status, state="ready", port=port, load_seconds=round(load_s, 3))
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        serve(app, sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
