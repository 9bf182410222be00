"""Deployments on a Ray cluster target (``DeploymentConfig(compute_target="my-ray")``).

``RayServeSet`` has the interface of ``serving.local.LocalReplicaSet``:
``reconcile(want)`` a few times a second. For each generation it submits one
Ray job that deploys (or updates in place) the deployment's Serve application
(``serving/ray_serve.py``), then waits for the job to end and for the
application to answer; the router then sends requests to Serve's HTTP proxy
at the application's prefix. A job that fails (the model or ``init()`` cannot
load) fails the deployment with the job's log, traceback included. Serve
restarts crashed replicas itself; the supervisor probes the application and
reports it unhealthy while it does not answer. The application is replica 0
of the deployment: it gets that replica's secret (through the deploy job's
environment) and the probes here send it, as the router does.
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from cumulo.core.deployments import (
    REPLICA_SECRET_ENV,
    REPLICA_SECRET_HEADER,
    DeploymentState,
    ReplicaState,
    replica_secret,
)
from cumulo.core.entities import now_ms
from cumulo.core.errors import CumuloError
from cumulo.serving.local import Report, Summary, Want
from cumulo.serving.ray_serve import READY_LINE

POLL_S = 1.0
SERVE_PORTS = "serve-ports.json"


def serve_port(home: Path, target_key: str) -> int:
    """The HTTP port of Serve's proxy on a target: chosen once, remembered in the home."""
    file = home / "serving" / SERVE_PORTS
    try:
        ports = json.loads(file.read_text())
    except (OSError, ValueError):
        ports = {}
    if target_key not in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports[target_key] = int(s.getsockname()[1])
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(ports))
    return int(ports[target_key])


class RayServeSet:
    """One deployment's Serve application on a Ray cluster."""

    def __init__(self, name: str, app: str, backend: Any, port: int, report: Report) -> None:
        self.name = name
        self.app = app
        self.backend = backend  # compute.ray.RayBackend: the Jobs API client
        self.port = port
        self.report = report
        self.host = backend.address.split("://", 1)[-1].rsplit(":", 1)[0]
        self._jobs: dict[int, str] = {}  # generation -> submission id
        self._ready: dict[int, bool] = {}
        self._errors: dict[int, dict[str, Any]] = {}
        self._next_poll = 0.0
        self._ever_ready = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/{self.app}"

    def _spec(self, want: Want, action: str) -> str:
        root = want.workdir
        replica = dict(want.spec)
        for key in ("model_dir", "source_dir"):
            if replica.get(key):
                replica[key] = str(Path(replica[key]).relative_to(root))
        env = dict(want.env)
        for key in ("CUMULO_MODEL_DIR", "CUMULO_MODELS_ROOT"):
            if key in env:
                env[key] = str(Path(env[key]).relative_to(root))
        spec = {
            "app": self.app,
            "route_prefix": f"/{self.app}",
            "port": self.port,
            "host": "127.0.0.1" if self.host in ("127.0.0.1", "localhost") else "0.0.0.0",
            "replicas": want.replicas,
            "num_gpus": want.gpus,
            "replica": replica,
            "env": env,
        }
        name = f"ray-{action}.json"
        (root / name).write_text(json.dumps(spec))
        return name

    def _submit(self, want: Want, action: str) -> str:
        spec_file = self._spec(want, action)
        sid = f"cumulo-serve-{self.app}-g{want.generation}-{action}-{uuid.uuid4().hex[:6]}"
        python = sys.executable if self.backend._is_loopback() else "python"
        # The secret goes in the job's environment, not in the spec file it uploads.
        env_vars = {"PYTHONUNBUFFERED": "1", REPLICA_SECRET_ENV: replica_secret(want.secret, 0)}
        self.backend.client().submit_job(
            entrypoint=f"{python} -m cumulo.serving.ray_serve {action} {spec_file}",
            submission_id=sid,
            runtime_env={"working_dir": str(want.workdir), "env_vars": env_vars},
            entrypoint_num_cpus=0.01,
        )
        return sid

    def reconcile(self, want: Want) -> Summary:
        gen = want.generation
        log_path = want.workdir / "ray-serve.log"
        if gen not in self._jobs:
            try:
                self._jobs[gen] = self._submit(want, "deploy")
            except CumuloError as exc:
                return Summary(DeploymentState.FAILED.value, {"message": exc.message})
            except Exception as exc:
                return Summary(DeploymentState.FAILED.value, {"message": f"Ray: {exc}"})
            self.report(0, gen, state=ReplicaState.STARTING.value, url=None,
                        log_path=str(log_path), started_at=now_ms())  # fmt: skip
        now = time.monotonic()
        if now >= self._next_poll:
            self._next_poll = now + POLL_S
            self._poll(want, log_path)
        if gen in self._errors:
            return Summary(DeploymentState.FAILED.value, self._errors[gen])
        if self._ready.get(gen):
            return Summary(DeploymentState.HEALTHY.value)
        if any(g < gen and ok for g, ok in self._ready.items()):
            return Summary(DeploymentState.UPDATING.value)
        return Summary(DeploymentState.CREATING.value if not self._ever_ready else "Unhealthy")

    def _poll(self, want: Want, log_path: Path) -> None:
        gen = want.generation
        if gen in self._errors:
            return
        if not self._ready.get(gen):
            sid = self._jobs[gen]
            client = self.backend.client()
            status = str(getattr(client.get_job_status(sid), "value", ""))
            if status in ("PENDING", "RUNNING"):
                return
            logs = str(client.get_job_logs(sid))
            log_path.write_text(logs)
            if status != "SUCCEEDED" or READY_LINE not in logs:
                tail = "\n".join(logs.strip().splitlines()[-40:])
                self._errors[gen] = {
                    "message": f"Deploying to Ray Serve failed (job {sid} {status}).",
                    "traceback": tail,
                }
                self.report(0, gen, state=ReplicaState.FAILED.value, error=tail[-2000:])
                return
        healthy = _probe(self.url, replica_secret(want.secret, 0))
        if healthy and not self._ready.get(gen):
            self._ready[gen] = True
            self._ever_ready = True
            for old in [g for g in self._ready if g < gen]:
                self._ready.pop(old)
                self.report(0, old, remove=True)
            self.report(0, gen, state=ReplicaState.READY.value, url=self.url, ready_at=now_ms())
        elif not healthy and self._ready.get(gen):
            self._ready[gen] = False
            self.report(0, gen, state=ReplicaState.CRASHED.value, error="Serve does not answer")

    def stop_all(self, wait_s: float = 10.0) -> None:
        """The application stays on the cluster when this supervisor stops."""

    def delete(self, want: Want | None) -> None:
        """Remove the application from the cluster (the deployment was deleted)."""
        if want is not None:
            try:
                self._submit(want, "delete")
            except Exception:  # the cluster is gone: nothing left to remove
                return


def _probe(url: str, secret: str) -> bool:
    host, _, rest = url.removeprefix("http://").partition(":")
    port, _, path = rest.partition("/")
    conn = http.client.HTTPConnection(host, int(port), timeout=2)
    try:
        conn.request("GET", f"/{path}/health", headers={REPLICA_SECRET_HEADER: secret})
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
