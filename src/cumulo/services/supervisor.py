"""Hosting endpoints from a process: the supervisor of replicas, the router, the embedded host.

The supervisor is a background thread. Several processes may run one on the
same store (server workers, several servers): each deployment is leased by
one supervisor at a time (a lease in the store, renewed every second on a
thread of its own, taken over 3 s after its holder stops renewing, so an
endpoint whose host died is served again within seconds). A supervisor whose
store has endpoints keeps a warm preloader even while others host them, so a
takeover forks its replicas at once. For each leased deployment it prepares
the generation's files (model versions from the registry, the scoring code,
the environment) in a worker thread, then moves its replicas there
(``serving.local.LocalReplicaSet``), writing replica and deployment states to
the store, where the router of every process reads them. Request metrics
counted by this process's router are written once every few seconds.

Each ``Services`` object owns one ``Hosting`` (``services.hosting``): the
server's lifespan calls its ``start()`` and ``stop()`` and mounts its
``router``; an embedded workspace calls its ``serve_embedded()``: the same
supervisor and router, hosted by the calling process on a loopback port.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sys
import threading
import time
import uuid
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cumulo.core.deployments import DeploymentState, code_archive, code_id, code_prefix
from cumulo.core.errors import CumuloError, InvalidInput, NotFound, Unauthenticated
from cumulo.core.jobs import Resources
from cumulo.services.auth import AuthService
from cumulo.services.deployments import DeploymentService
from cumulo.services.gpus import ReplicaGpus
from cumulo.services.jobs import JobService
from cumulo.services.ray_heads import head_owner, target_heads
from cumulo.services.ray_serving import RayServeSet, serve_port
from cumulo.serving.local import LocalReplicaSet, Summary, Want, listen_address, replica_url
from cumulo.serving.metrics import MetricsBuffer
from cumulo.serving.preload import Preloader
from cumulo.serving.proxy import EndpointRouter

log = logging.getLogger("cumulo.deployments")

LOOPBACK = "127.0.0.1"  # where replicas listen when no advertise host is set

LEASE_TTL_MS = 3_000
LEASE_EVERY_S = 1.0  # on its own thread: a slow reconcile never lets the lease lapse
TICK_S = 0.2
FLUSH_EVERY_S = 5.0
# Replicas answer small requests fastest with one math thread each.
THREAD_DEFAULTS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Replicas fork from a preloader that imported numpy, scikit-learn and uvicorn once
# (unless ``settings.serving_preload`` is off: each one starts as a fresh interpreter).


class Supervisor:
    """Keeps the replicas of every deployment it leases where their spec wants them."""

    def __init__(self, hosting: Hosting) -> None:
        self.hosting = hosting
        self.store = hosting.service.store
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._sets: dict[int, LocalReplicaSet | RayServeSet] = {}
        self._ray: dict[int, tuple[Any, int]] = {}  # deployment -> (Ray backend, Serve port)
        self._head_owner = head_owner("serve")  # of the managed Ray heads it starts
        self._wants: dict[int, Want] = {}
        self._prepared: dict[tuple[int, int], Future[Want]] = {}
        self._states: dict[int, tuple[str, Any]] = {}
        self._leased: dict[int, dict[str, Any]] = {}
        self._renewed: dict[int, dict[str, Any]] | None = None  # the lease thread's latest
        self._standby = False  # the store has endpoints, hosted here or elsewhere
        self._wake = threading.Event()
        self._lease_now = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease_thread: threading.Thread | None = None
        self._executor = ThreadPoolExecutor(2, thread_name_prefix="cumulo-prepare")
        self._preload: Preloader | None = None
        self._next_flush = time.monotonic() + FLUSH_EVERY_S
        self.preloading = hosting.service.settings.serving_preload
        self._gpus = ReplicaGpus(hosting.jobs)  # shared with this machine's jobs

    def _preloader(self) -> Preloader | None:
        """The warm-start preloader of this interpreter (started again if it died)."""
        if self._preload is None or not self._preload.alive:
            try:
                env = {**os.environ, "PYTHONUNBUFFERED": "1"}
                self._preload = Preloader(sys.executable, env, THREAD_DEFAULTS)
            except OSError:
                log.warning("cannot start the preloader; replicas start cold", exc_info=True)
                self._preload = None
            for replica_set in self._sets.values():
                if isinstance(replica_set, LocalReplicaSet):
                    replica_set.preloader = self._preload
        return self._preload

    def start(self) -> Supervisor:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="cumulo-supervisor", daemon=True
            )
            self._thread.start()
            self._lease_thread = threading.Thread(
                target=self._lease_loop, name="cumulo-supervisor-lease", daemon=True
            )
            self._lease_thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        self._lease_now.set()
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every replica this supervisor runs and give its leases back."""
        self._stop.set()
        self._wake.set()
        self._lease_now.set()
        for thread in (self._thread, self._lease_thread):
            if thread is not None:
                thread.join(timeout)
        self._thread = self._lease_thread = None
        for replica_set in self._sets.values():
            replica_set.stop_all()
        self._sets.clear()
        if self._preload is not None:
            self._preload.stop()
            self._preload = None
        self._executor.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            self.flush()
        with contextlib.suppress(Exception):
            self.store.release_leases(self.owner)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a store hiccup must not end supervision
                log.exception("supervisor tick failed")
            self._wake.wait(TICK_S)
            self._wake.clear()

    def _lease_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._renew()
            except Exception:  # a store hiccup must not end renewing
                log.exception("renewing the deployment leases failed")
            self._lease_now.wait(LEASE_EVERY_S)
            self._lease_now.clear()

    def _renew(self) -> None:
        """Take or renew the leases; the tick picks up what this supervisor holds."""
        leased = self.store.lease_deployments(self.owner, LEASE_TTL_MS)
        self._standby = self.store.has_local_deployments()
        self._renewed = {d["id"]: d for d in leased}
        self._wake.set()

    # ------------------------------------------------------------------ tick
    def tick(self) -> None:
        now = time.monotonic()
        renewed, self._renewed = self._renewed, None
        if renewed is not None:
            self._leased = renewed
        if self._standby and self.preloading:
            self._preloader()  # warm for a takeover, or for this supervisor's next replica
        for dep in list(self._leased.values()):
            if self._stop.is_set():
                return
            try:
                self._reconcile(dep)
            except NotFound:
                self._leased.pop(dep["id"], None)
        for dep_id in set(self._sets) - set(self._leased):
            self._forget(dep_id)
        if now >= self._next_flush:
            self._next_flush = now + FLUSH_EVERY_S
            self.flush()

    def _reconcile(self, dep: dict[str, Any]) -> None:
        dep_id, generation = dep["id"], dep["generation"]
        want = self._wants.get(dep_id)
        problem: dict[str, Any] | None = None
        if want is None or want.generation != generation:
            key = (dep_id, generation)
            future = self._prepared.get(key)
            if future is None:
                future = self._prepared[key] = self._executor.submit(self._prepare, dep)
            if future.done():
                try:
                    want = self._wants[dep_id] = future.result()
                except Exception as exc:
                    message = exc.message if isinstance(exc, CumuloError) else repr(exc)
                    problem = {"message": f"Preparing the deployment failed: {message}"}
        if want is None:
            if problem is not None:
                self._set_state(dep_id, Summary(DeploymentState.FAILED.value, problem))
            return
        replica_set = self._sets.get(dep_id)
        if replica_set is None:
            name = f"{dep['workspace']}/{dep['endpoint']}/{dep['name']}"
            ray = self._ray.get(dep_id)
            if ray is not None:
                backend, port = ray
                replica_set = RayServeSet(
                    name, f"cumulo-{dep_id}", backend, port, self._reporter(dep_id)
                )
            else:
                preloader = self._preloader() if self.preloading else None
                replica_set = LocalReplicaSet(name, self._reporter(dep_id), preloader, self._gpus)
            self._sets[dep_id] = replica_set
        summary = replica_set.reconcile(want)
        if problem is not None:
            problem["message"] += " The previous version keeps serving."
            summary = Summary(DeploymentState.FAILED.value, problem)
        self._set_state(dep_id, summary)

    def _reporter(self, dep_id: int) -> Any:
        def report(slot: int, generation: int, remove: bool = False, **values: Any) -> None:
            if remove:
                self.store.remove_replica(dep_id, slot, generation)
            else:
                self.store.save_replica(dep_id, self.owner, slot, generation=generation, **values)
            if remove or values.get("state") != "starting":
                # This process's router sees the change at once (others within a second).
                self.hosting.router.invalidate()

        return report

    def _set_state(self, dep_id: int, summary: Summary) -> None:
        key = (summary.state, summary.error)
        if self._states.get(dep_id) == key:
            return
        self.store.set_deployment_state(dep_id, summary.state, summary.error)
        self._states[dep_id] = key

    def _forget(self, dep_id: int) -> None:
        """The deployment was deleted (or its lease lost): stop its replicas."""
        replica_set = self._sets.pop(dep_id, None)
        want = self._wants.pop(dep_id, None)
        if isinstance(replica_set, RayServeSet):
            replica_set.delete(want)
        elif replica_set is not None:
            replica_set.stop_all()
        self._ray.pop(dep_id, None)
        self._states.pop(dep_id, None)
        for key in [k for k in self._prepared if k[0] == dep_id]:
            self._prepared.pop(key)
        if want is not None and dep_id not in self._leased:
            shutil.rmtree(want.workdir.parent, ignore_errors=True)

    def flush(self) -> None:
        rows, logs = self.hosting.router.metrics.drain()
        if not rows and not logs:
            return
        try:
            self.store.add_metrics(self.owner, rows)
            self.store.add_request_logs(logs)
        except CumuloError:
            self.hosting.router.metrics.restore(rows, logs)
            raise

    # --------------------------------------------------------------- prepare
    def _prepare(self, dep: dict[str, Any]) -> Want:
        """Lay out one generation's files; returns what its replicas run."""
        settings = self.hosting.service.settings
        spec = dep["spec"]
        label = f"{dep['workspace']}-{dep['endpoint']}-{dep['name']}-{dep['id']}"
        root = Path(settings.home) / "serving" / label
        gen_dir = root / f"g{dep['generation']}"
        models_root = gen_dir / "models"
        gen_dir.mkdir(parents=True, exist_ok=True)
        registry = self.hosting.service.registry
        model_dirs = []
        for ref in dep["models"]:
            target = _inside(models_root, models_root / str(ref["name"]) / str(ref["version"]))
            if not (target / ".complete").exists():
                shutil.rmtree(target, ignore_errors=True)
                registry.download_version(dep["workspace"], ref["name"], ref["version"], target)
                (target / ".complete").write_text("")
            model_dirs.append(target)
        code_dir = gen_dir / "code"
        if spec.get("code") and not (code_dir / ".complete").exists():
            shutil.rmtree(code_dir, ignore_errors=True)
            archive = gen_dir / "code.zip"
            # Found by its id under this deployment's own endpoint, whatever the row says.
            found = code_id(spec["code"], dep["workspace"], dep["endpoint"])
            prefix = code_prefix(dep["workspace"], dep["endpoint"])
            self.hosting.service.artifacts.get_file(prefix, code_archive(found), archive)
            _extract(archive, code_dir)
            archive.unlink()
            (code_dir / ".complete").write_text("")
        env: dict[str, str] = dict(THREAD_DEFAULTS)
        python = sys.executable
        if spec.get("environment"):
            python, env_vars = self._environment(spec["environment"], gen_dir)
            env.update(env_vars)
        env.update(spec.get("environment_variables") or {})
        env["PYTHONUNBUFFERED"] = "1"
        env["CUMULO_MODELS_ROOT"] = str(models_root)
        env["CUMULO_MODEL_DIR"] = str(model_dirs[0] if len(model_dirs) == 1 else models_root)
        env["CUMULO_DEPLOYMENT"] = f"{dep['workspace']}/{dep['endpoint']}/{dep['name']}"
        if dep["kind"] == "mlflow":
            replica = {"kind": "mlflow", "model_dir": str(model_dirs[0])}
        else:
            replica = {
                "kind": "script",
                "entry_script": spec["entry_script"],
                "source_dir": str(code_dir),
            }
        if spec.get("compute_target"):
            self._ray[dep["id"]] = self._ray_target(dep["workspace"], spec["compute_target"])
        return Want(
            generation=dep["generation"],
            replicas=int(spec.get("replicas", 1)),
            spec=replica,
            workdir=gen_dir,
            cwd=code_dir if code_dir.is_dir() else gen_dir,
            secret=dep["secret"],
            env=env,
            python=python,
            period_s=float(spec.get("liveness_period_s", 5.0)),
            timeout_s=float(spec.get("liveness_timeout_s", 2.0)),
            failure_threshold=int(spec.get("failure_threshold", 3)),
            startup_timeout_s=float(spec.get("startup_timeout_s", 600.0)),
            host=settings.advertise_host or LOOPBACK,
            gpus=Resources.parse(spec.get("resources")).gpus,
        )

    def _ray_target(self, workspace: str, target: str) -> tuple[Any, int]:
        """A Ray target's Jobs API client (a managed head starts if none runs) and Serve's port."""
        from cumulo.compute.base import load_backend, target_type

        jobs = self.hosting.jobs
        info = jobs.get_compute_target(workspace, target)
        if not target_type(info.kind).serves_deployments:
            raise InvalidInput(
                f"Compute target {target!r} is a {info.kind} target; deployments run on this "
                "machine (no compute_target) or on a Ray cluster target."
            )
        home = Path(self.hosting.service.settings.home)
        key = f"{workspace}-{target}"
        # The head is the cluster's, recorded in the store as the scheduler records it:
        # one that any server (this one's scheduler too) runs already is used, not doubled.
        heads = target_heads(
            jobs,
            workspace,
            target,
            owner=self._head_owner,
            lease_ms=int(jobs.settings.lease_seconds * 1000),
        )
        backend: Any = load_backend(info.kind, {**info.config, "_key": key}, home, heads)
        _ = backend.address  # starts a managed head now, in this worker thread
        return backend, serve_port(home, key)

    def _environment(
        self, environment: dict[str, Any], gen_dir: Path
    ) -> tuple[str, dict[str, str]]:
        from cumulo.compute.environments import ensure_environment
        from cumulo.core.jobs import EnvironmentSpec

        spec = EnvironmentSpec.parse(environment.get("spec") or {})
        build_log = gen_dir / "environment.log"
        with open(build_log, "a") as fh:

            def _log(line: str) -> None:
                fh.write(line.rstrip("\n") + "\n")
                fh.flush()

            python = ensure_environment(
                spec,
                self.hosting.service.settings.env_cache_dir,
                _log,
                label=f"environment {environment.get('name', '')}",
            )
        return python, dict(spec.environment_variables or {})


def _inside(root: Path, path: Path) -> Path:
    """``path``, refused unless it lies under ``root`` (a model's files stay in its folder)."""
    if root.resolve() not in path.resolve().parents:
        raise InvalidInput(f"A model reference leads out of the deployment's folder: {path}.")
    return path


def _extract(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            target = (dest / member.filename).resolve()
            if target != root and root not in target.parents:
                raise InvalidInput(f"The code archive holds {member.filename!r}, outside its root.")
        zf.extractall(dest)


class EmbeddedHost:
    """The router served from this process on a port of the advertise address (loopback
    unless one is set), for embedded workspaces."""

    def __init__(self, app: Any, host: str = LOOPBACK) -> None:
        import uvicorn

        from cumulo.serving.replica import bind

        sock = bind(listen_address(host), 0)
        self.url = replica_url(host, sock.getsockname()[1])
        http = "httptools"
        try:
            import httptools  # noqa: F401
        except ImportError:  # pragma: no cover - depends on the environment
            http = "h11"
        config = uvicorn.Config(
            app,
            http=http,
            loop="auto",
            lifespan="off",
            access_log=False,
            log_level="warning",
            server_header=False,
            timeout_keep_alive=75,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name="cumulo-endpoints", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)


class Hosting:
    """What serves endpoints from one process over one store."""

    def __init__(self, service: DeploymentService, auth: AuthService, jobs: JobService) -> None:
        self.service = service
        self.auth = auth
        self.jobs = jobs  # a deployment on a Ray target finds the target's cluster through it
        self.router = EndpointRouter(self.service.store.routes, self._token_ok, MetricsBuffer())
        self.service.listeners.append(self.router.invalidate)
        self.supervisor: Supervisor | None = None
        self.host: EmbeddedHost | None = None
        self._lock = threading.Lock()

    def _token_ok(self, workspace: str, token: str) -> bool:
        try:
            who = self.auth.authenticate(token)
        except Unauthenticated:
            return False
        return AuthService.can_read(who, workspace)

    def start(self) -> Supervisor:
        """Start supervising replicas for the endpoints in the store (a second call: no-op)."""
        with self._lock:
            if self.supervisor is None or not self.supervisor.running:
                self.supervisor = Supervisor(self).start()
                self.service.listeners.append(self.supervisor.wake)
                self.service.before_reading.append(self.supervisor.flush)
            return self.supervisor

    def stop(self) -> None:
        """Stop this process's replicas, supervisor and embedded host."""
        with self._lock:
            supervisor, self.supervisor = self.supervisor, None
            host, self.host = self.host, None
        if supervisor is not None:
            with contextlib.suppress(ValueError):
                self.service.listeners.remove(supervisor.wake)
            with contextlib.suppress(ValueError):
                self.service.before_reading.remove(supervisor.flush)
            supervisor.stop()
        if host is not None:
            host.stop()

    def serve_embedded(self) -> str:
        """Host endpoints from this process; returns the base URL of their scoring URIs."""
        self.start()
        with self._lock:
            if self.host is None:
                advertise = self.service.settings.advertise_host or LOOPBACK
                self.host = EmbeddedHost(self.router, advertise)
            return self.host.url
