"""Serving on a Ray cluster with Ray Serve: the same predictors, replicas as Serve actors.

The supervisor deploys with a Ray job whose working directory is the
deployment's prepared folder (model files, code, ``ray-spec.json``). The job
runs ``python -m cumulo.serving.ray_serve deploy ray-spec.json``: it starts
Serve's HTTP proxy if needed and runs (or updates in place) one Serve
application per deployment at ``/<workspace>/<endpoint>/<deployment>``, then
exits; the application keeps running in the cluster. A replica that cannot
load its model fails ``serve.run``, so the job fails with the traceback in its
logs. ``delete`` removes the application. Like a local replica, the
application answers only calls carrying its secret (given to the job in its
environment, ``CUMULO_REPLICA_SECRET``): Serve's proxy port opens nothing by
itself.

Ray Serve is the path for many machines, not the default: on two cores its
proxy answered about 190 requests/second where one uvicorn process answered
thousands (see ``/docs/benchmarks.md``).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from cumulo.core.deployments import REPLICA_SECRET_ENV, REPLICA_SECRET_HEADER
from cumulo.serving.app import REFUSED, answer_async

log = logging.getLogger("cumulo.serving")

READY_LINE = "CUMULO_SERVE_READY"


class Scorer:
    """One Serve replica: loads the predictor in the job's working directory."""

    def __init__(self, spec: dict[str, Any], env: dict[str, str], secret: str) -> None:
        from cumulo.serving.replica import load_predictor

        if not secret:
            raise ValueError("A Serve replica needs a secret to check its callers against.")
        self.secret = secret.encode()
        root = Path.cwd()
        for key, value in env.items():
            # Model folders are relative to the working directory Ray unpacked.
            is_path = key in ("CUMULO_MODEL_DIR", "CUMULO_MODELS_ROOT")
            os.environ[key] = str(root / value) if is_path else value
        local = dict(spec)
        for key in ("model_dir", "source_dir"):
            if local.get(key):
                local[key] = str(root / local[key])
        self.predictor = load_predictor(local)

    async def __call__(self, request: Any) -> Any:
        from starlette.responses import Response

        given = request.headers.get(REPLICA_SECRET_HEADER, "").encode("latin-1", "replace")
        if not hmac.compare_digest(given, self.secret):
            return Response(REFUSED, status_code=401, media_type="application/json")
        if request.method == "GET":
            return Response(b"\n", media_type="application/json")
        body = await request.body()
        status, out, media_type = await answer_async(
            self.predictor, body, request.headers.get("content-type", "")
        )
        return Response(out, status_code=status, media_type=media_type)


def _connect(spec: dict[str, Any]) -> Any:
    import ray
    from ray import serve

    ray.init(address="auto", namespace="cumulo", log_to_driver=True)
    serve.start(http_options={"host": spec.get("host", "127.0.0.1"), "port": spec["port"]})
    return serve


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    action, spec = args[0], json.loads(Path(args[1]).read_text())
    serve = _connect(spec)
    if action == "delete":
        serve.delete(spec["app"])
        return 0
    deployment = serve.deployment(
        Scorer,
        name="scorer",
        num_replicas=int(spec.get("replicas", 1)),
        ray_actor_options={
            "num_cpus": float(spec.get("num_cpus", 0.5)),
            "num_gpus": int(spec.get("num_gpus", 0)),
        },
    )
    secret = os.environ.pop(REPLICA_SECRET_ENV, "")
    if not secret:
        print(f"The deploy job is started with the replicas' secret in {REPLICA_SECRET_ENV}.")
        return 2
    app = deployment.bind(spec["replica"], spec.get("env", {}), secret)
    serve.run(app, name=spec["app"], route_prefix=spec["route_prefix"], blocking=False)
    print(READY_LINE, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
