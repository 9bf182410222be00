"""The scheduler: leases queued jobs, prepares them, hands them to their target,
scales managed pools, and makes sure nothing stays "Running" forever.

Safe with several processes on one store: a job is taken with a lease (owner +
expiry) that its owner renews; when an owner dies its leases run out and
another scheduler takes the jobs over and finds their real state from the
target (still running, finished, or lost). A lost job fails with the reason,
or goes back to the queue while ``max_retries`` allows.

Each ``Services`` object owns one ``SchedulerWorker`` (``services.scheduler``):
the server's lifespan starts it with the server's address and stops it at
shutdown; embedded, the submitting process starts it on its first submit
(``ensure_started``) and it runs in a daemon thread while the process lives.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cumulo.compute import processes
from cumulo.compute.agent import LINK_VAR
from cumulo.compute.base import (
    JOB_FOLDER,
    Backend,
    Launch,
    NodeBackend,
    host_id,
    kinds,
    load_backend,
    on_host,
    target_type,
)
from cumulo.compute.snapshots import extract
from cumulo.core.datasets import input_mark
from cumulo.core.entities import now_ms
from cumulo.core.errors import (
    CumuloError,
    EnvironmentBuildError,
    InvalidState,
    Unavailable,
)
from cumulo.core.jobs import (
    CURRENT_ENVIRONMENT,
    JobInfo,
    JobState,
    LogStream,
    PoolNode,
    Resources,
    signal_name,
)
from cumulo.core.settings import mlflow_tracking_uri
from cumulo.core.status import RunStatus
from cumulo.services.gpus import GpuGate, gpu_variables
from cumulo.services.jobs import JobService
from cumulo.services.ray_heads import head_owner, target_heads

log = logging.getLogger("cumulo.scheduler")

POLL_SECONDS = 0.1
# With nothing in flight here a pass comes this often: a submit in this process wakes the
# scheduler at once, so only work queued by another process waits up to this long.
IDLE_SECONDS = 1.0
CANCEL_GRACE_SECONDS = 10.0
LOST_GRACE_SECONDS = 1.5
# How a job's agent reaches the workspace (see cumulo.compute.agent): the store where it
# can open it, else the service's servers through the SDK's HTTP client.
STORE_LINK = "cumulo.services.agent_link:StoreLink"
HTTP_LINK = "cumulo.sdk.agent_link:HttpLink"
# How a job of an embedded workspace reaches it through MLflow (see cumulo.server.bridge).
TRACKING_BRIDGE = "cumulo.server.bridge:open_bridge"


@dataclass
class Endpoint:
    """How jobs reach the workspace: a server URL, or the store directly.

    With ``issue_tokens`` (a server that checks tokens) each job gets a token of
    its own, scoped to its workspace and revoked when it ends; no credential is
    shared between jobs. ``urls`` lists every address of the service (``url``
    among them) where a pool node looks for a server that still answers.
    """

    url: str | None = None
    issue_tokens: bool = False
    urls: tuple[str, ...] = ()


# ------------------------------------------------------------- preparation
def job_env(
    jobs: JobService,
    run_id: str,
    workspace: str,
    remote_agent: bool,
    endpoint: Endpoint,
    token: str | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """(the script's variables, the agent's variables); ``token`` is the job's own.

    ``remote_agent``: the agent runs on another machine (see ``TargetType``).
    """
    s = jobs.settings
    store_vars = {
        "CUMULO_HOME": str(s.home),
        "CUMULO_DATABASE_URL": s.database_url,
        "CUMULO_ARTIFACT_ROOT": s.artifact_root,
    }
    if s.s3_endpoint_url:
        store_vars["CUMULO_S3_ENDPOINT_URL"] = s.s3_endpoint_url
    child = {"CUMULO_RUN_ID": run_id, "CUMULO_WORKSPACE": workspace}
    if endpoint.url:
        # The workspace's service address when one is set: the job outlives this server.
        urls = list(s.service_urls) or [endpoint.url]
        child.update(
            CUMULO_URL=urls[0],
            CUMULO_URLS=",".join(urls),
            MLFLOW_TRACKING_URI=mlflow_tracking_uri(urls[0], workspace),
            MLFLOW_RUN_ID=run_id,
        )
        if token:
            child.update(CUMULO_TOKEN=token, MLFLOW_TRACKING_TOKEN=token)
    else:
        child.update(store_vars)
    agent = {**child, "CUMULO_ENV_CACHE": str(s.env_cache_dir), LINK_VAR: HTTP_LINK}
    if not remote_agent or not endpoint.url:
        # Same machine (or embedded): the agent opens the store.
        agent.update(store_vars, **{LINK_VAR: STORE_LINK})
    return child, agent


def prepare(
    jobs: JobService, job: JobInfo, endpoint: Endpoint, *, build_here: bool
) -> tuple[Path, dict[str, Any], dict[str, str]]:
    """Unpack the snapshot into a fresh folder and write the runner's spec.

    With ``build_here`` the environment is built now (status ``Preparing``);
    otherwise the runner builds it where it runs (another machine).
    """
    cfg = job.job_config
    workdir = jobs.home / "jobs" / job.workspace / f"{job.run_id}-{job.attempts}"
    if workdir.exists():
        shutil.rmtree(workdir)
    with jobs.snapshots.open(job.workspace, cfg.snapshot) as src:
        extract(src, workdir)
    for folder, digest in cfg.data_folders.items():  # a pipeline step's data
        if digest is None:
            (workdir / folder).mkdir(parents=True, exist_ok=True)
            continue
        with jobs.snapshots.open(job.workspace, digest) as src:
            extract(src, workdir / folder)
    env_info = None
    user_vars: dict[str, str] = {}
    if cfg.environment != CURRENT_ENVIRONMENT:
        env_info = jobs.environments.get(job.workspace, cfg.environment, cfg.environment_version)
        user_vars = env_info.env_spec.environment_variables
    python = None
    if env_info is not None and build_here:

        def _log(line: str) -> None:
            jobs.store.append_logs(job.run_id, [(LogStream.SYSTEM.value, line + "\n", now_ms())])

        python = jobs.environments.build(env_info, _log)
    token = jobs.issue_job_token(job) if endpoint.url and endpoint.issue_tokens else None
    remote = target_type(job.kind).remote_agent
    child, agent = job_env(jobs, job.run_id, job.workspace, remote, endpoint, token)
    args = _fetch_inputs(jobs, job, workdir)
    child.update(gpu_variables(jobs, job))  # the GPUs it holds, and no other
    spec = {
        "run_id": job.run_id,
        "workspace": job.workspace,
        "script": cfg.script,
        "arguments": args,
        "python": python,
        "environment": env_info.to_dict() if env_info and not build_here else None,
        "env": {**user_vars, **child},
        "max_run_duration_seconds": cfg.max_run_duration_seconds,
        "delivery_seconds": jobs.settings.delivery_seconds,
        # No server to point MLflow at: the runner serves the store to the job itself.
        "tracking_bridge": None if endpoint.url else TRACKING_BRIDGE,
        "system_metrics_interval": (
            jobs.settings.system_metrics_interval
            if cfg.system_metrics_interval is None
            else cfg.system_metrics_interval
        ),
    }
    (workdir / JOB_FOLDER).mkdir(exist_ok=True)
    (workdir / JOB_FOLDER / "spec.json").write_text(json.dumps(spec))
    return workdir, spec, agent


def _fetch_inputs(jobs: JobService, job: JobInfo, workdir: Path) -> list[str]:
    """Download the job's dataset inputs into its folder; its arguments with their paths.

    Each input is ``.cumulo_job/inputs/<name>`` (relative: the folder travels with
    the job to another machine), the argument that named it replaced by that path.
    """
    cfg = job.job_config
    paths: dict[str, str] = {}
    for item in cfg.inputs:
        rel = f"{JOB_FOLDER}/inputs/{item['name']}"
        jobs.datasets.download(job.workspace, item["dataset"], item["version"], workdir / rel)
        paths[input_mark(item["name"])] = rel
    return [paths.get(a, a) for a in cfg.arguments]


def _set(
    jobs: JobService, job: JobInfo, status: RunStatus, error: dict[str, Any] | None = None
) -> None:
    jobs.set_job_status(job.workspace, job.run_id, status.value, error=error)


# --------------------------------------------------------------- scheduler
class Scheduler:
    """Hands out jobs to their targets, starts the nodes of pools, watches every job it owns."""

    def __init__(
        self,
        jobs: JobService,
        *,
        url: str | None = None,
        issue_tokens: bool = False,
        lease_seconds: float | None = None,
        owner: str | None = None,
    ) -> None:
        self.jobs = jobs
        self.endpoint = Endpoint(url.rstrip("/") if url else None, issue_tokens)
        self.lease_ms = int((lease_seconds or jobs.settings.lease_seconds) * 1000)
        self.owner = owner or head_owner("sched")
        self.gate = GpuGate(jobs, self.owner)
        # Handles it records name this machine; it looks up the processes of no other.
        self.host = host_id(self.jobs.settings.advertise_host)
        self._backends: dict[tuple[str, str], Backend] = {}
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cumulo-dispatch")
        self._dispatching: set[str] = set()
        self._node_procs: dict[str, subprocess.Popen[bytes]] = {}
        self._seen: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: dict[str, float] = {}
        self._seen_owned = True  # until its first watch pass says otherwise
        # Called with (point, run id) at the steps of a launch and a watch pass; tests
        # use it to force an interleaving of the two. None in production.
        self.interleave: Callable[[str, str], None] | None = None
        self.jobs.on_submit(self.wake)

    # --------------------------------------------------------------- control
    def start(self) -> Scheduler:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="cumulo-scheduler", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop dispatching; running jobs go on (their agents report on their own)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._executor.shutdown(wait=True, cancel_futures=False)
        with contextlib.suppress(ValueError):
            self.jobs._listeners.remove(self.wake)
        for backend in self._backends.values():
            backend.close()

    def stop_nodes(self, wait: bool = True) -> None:
        """End the pool nodes this scheduler started: each finishes the job at hand and
        takes no other. With ``wait`` (tests, an embedded process closing) wait for them,
        killing one still busy after 30 s; without (a server shutting down) only tell them,
        and each node stops on its own once its job ends."""
        for node_id, proc in list(self._node_procs.items()):
            if proc.poll() is None:
                proc.terminate()  # a node finishes the job at hand, then stops
                if not wait:
                    continue
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    processes.end_groups([proc.pid], grace=0.0)
                    proc.wait(10)
            with contextlib.suppress(CumuloError):
                self.jobs.store.update_node(node_id, state="stopped")

    def wake(self) -> None:
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            busy = True
            try:
                busy = self.tick()
            except Exception:
                log.exception("scheduler pass failed; retrying")
                self._stop.wait(1.0)
            self._wake.wait(POLL_SECONDS if busy else IDLE_SECONDS)
            self._wake.clear()

    def _every(self, name: str, seconds: float) -> bool:
        now = time.monotonic()
        if now - self._last.get(name, 0.0) >= seconds:
            self._last[name] = now
            return True
        return False

    # ------------------------------------------------------------------ pass
    def tick(self) -> bool:
        """One pass: cancel, dispatch, scale, renew, recover, watch. Returns whether anything
        is in flight here (a job it leased, is starting or watches, a pool node it started)."""
        self.jobs.cancel_queued()
        leased = self._dispatch_new()
        if self._every("pools", 0.25):
            self._scale_pools()
        if self._every("renew", self.lease_ms / 3000):
            self.jobs.renew_leases(self.owner, self.lease_ms)
        if self._every("recover", 1.0):
            for job in self.jobs.take_over_expired(self.owner, self.lease_ms):
                log.info("took over job %s from a scheduler that stopped", job.run_id)
        if self.endpoint.issue_tokens and self._every("revoke", 5.0):
            # Jobs that ended while no server ran, or by a path that forced their status.
            revoked = self.jobs.revoke_ended_job_tokens()
            if revoked:
                log.info("revoked the tokens of %d ended jobs", revoked)
        if self._every("watch", 0.3):
            self._watch()
        nodes = any(proc.poll() is None for proc in self._node_procs.values())
        return leased or bool(self._dispatching or self._seen_owned) or nodes

    # --------------------------------------------------------------- dispatch
    def _dispatch_new(self) -> bool:
        """Lease and launch what is queued for this scheduler's targets; whether it leased."""
        leased = False
        while len(self._dispatching) < 8 and not self._stop.is_set():
            job = self.gate.lease(self._lease)
            if job is None:
                break
            leased = True
            with self._lock:
                self._dispatching.add(job.run_id)
            self._executor.submit(self._launch, job)
        return leased

    def _lease(self, exclude: Sequence[str]) -> JobInfo | None:
        dispatched = kinds(pulls_from_queue=False)
        return self.jobs.lease_next(self.owner, self.lease_ms, dispatched, exclude=exclude)

    def _launch(self, job: JobInfo) -> None:
        try:
            self._start(job)
        except EnvironmentBuildError as exc:
            self.jobs.fail(job, {"code": "EnvironmentBuildFailed", "message": exc.message})
        except InvalidState:
            self.jobs.settle_cancel(job)
        except Exception as exc:
            log.exception("could not start job %s", job.run_id)
            message = (
                exc.message if isinstance(exc, CumuloError) else f"{type(exc).__name__}: {exc}"
            )
            self.jobs.fail(
                job, {"code": "StartFailed", "message": f"The job could not start: {message}"}
            )
        finally:
            with self._lock:
                self._dispatching.discard(job.run_id)
            self._at("launch-done", job.run_id)

    def _start(self, job: JobInfo) -> None:
        """Prepare the job and start its process, each step only while the job is still ours."""
        if not self._still_mine(job):
            return
        _set(self.jobs, job, RunStatus.PREPARING)
        remote = target_type(job.kind).remote_agent
        workdir, _spec, agent_env = prepare(self.jobs, job, self.endpoint, build_here=not remote)
        if not self._still_mine(job):
            return
        _set(self.jobs, job, RunStatus.STARTING)
        launch = Launch(
            run_id=job.run_id,
            workspace=job.workspace,
            attempt=job.attempts,
            workdir=workdir,
            # The agent renews the job's lease itself, as long as this scheduler would.
            env={**agent_env, "CUMULO_LEASE_SECONDS": str(self.lease_ms / 1000)},
            resources=Resources.parse(job.job_config.resources),
        )
        self._at("launch-prepared", job.run_id)
        if not self._still_mine(job):
            return
        backend = self.backend(job.workspace, job.target)
        handle = backend.submit(launch)
        if not remote:  # a remote agent's job is found through its target from any host
            handle = {**handle, "host": self.host}
        self._at("launch-started", job.run_id)
        self._record(job, backend, handle)

    def _still_mine(self, job: JobInfo) -> bool:
        """Renew the lease of a job being launched; False when someone else moved it.

        Each step of a launch runs within a lease's time of this renewal, so no
        other scheduler can take the job over before the step is done.
        """
        if self.jobs.still_leased(job, self.lease_ms):
            return True
        log.warning(
            "job %s was taken over by another scheduler during its launch; leaving it to that one",
            job.run_id,
        )
        return False

    def _record(self, job: JobInfo, backend: Backend, handle: dict[str, Any]) -> None:
        """Record the started process, or stop it when the job was given up on meanwhile.

        The lease owner may have changed (a takeover): the new owner then watches
        this process instead of retrying a job that runs.
        """
        try:
            recorded = self.jobs.record_handle(job, handle)
        except Exception:
            with contextlib.suppress(Exception):
                backend.cancel(handle, force=True)  # nobody could find it to watch it
            raise
        if not recorded:
            log.warning(
                "job %s was given up on while its process started; stopping that process",
                job.run_id,
            )
            backend.cancel(handle, force=True)

    def _at(self, point: str, run_id: str) -> None:
        if self.interleave is not None:
            self.interleave(point, run_id)

    def backend(self, workspace: str, target: str) -> Backend:
        key = (workspace, target)
        with self._lock:  # dispatch threads share one backend (and its spare agent) per target
            found = self._backends.get(key)
            if found is None:
                info = self.jobs.get_compute_target(workspace, target)
                config = {**info.config, "_key": f"{workspace}-{target}"}
                # A target's head is recorded in the store: one per cluster, whichever
                # server (with whatever home) needs it first starts it, the others use it.
                heads = (
                    target_heads(
                        self.jobs, workspace, target, owner=self.owner, lease_ms=self.lease_ms
                    )
                    if target_type(info.kind).keeps_head
                    else None
                )
                found = load_backend(info.kind, config, self.jobs.home, heads)
                self._backends[key] = found
        return found

    # ------------------------------------------------------------------ pools
    def _scale_pools(self) -> None:
        store = self.jobs.store
        for node in store.list_nodes():
            if self._node_dead(node):
                store.update_node(node.id, state="stopped")
        waiting_at = [
            found for kind in kinds(pulls_from_queue=True) for found in store.queued_by_target(kind)
        ]
        for ws, target, waiting in waiting_at:
            info = self.jobs.get_compute_target(ws, target)
            nodes = store.list_nodes(ws, target)
            free = sum(1 for n in nodes if n.state in ("starting", "idle"))
            want = min(waiting - free, int(info.config["max_nodes"]) - len(nodes))
            for _ in range(max(want, 0)):
                node_id = uuid.uuid4().hex
                if not store.add_node(ws, target, node_id, int(info.config["max_nodes"])):
                    break
                backend = self.backend(ws, target)
                assert isinstance(backend, NodeBackend), f"{info.kind} starts no nodes"
                remote = target_type(info.kind).remote_agent
                _child, agent_env = job_env(self.jobs, "", ws, remote, self.endpoint)
                env = {k: v for k, v in agent_env.items() if not k.endswith("RUN_ID")}
                env["CUMULO_LEASE_SECONDS"] = str(self.lease_ms / 1000)
                if self.jobs.settings.advertise_host:  # the node's handles name this host
                    env["CUMULO_ADVERTISE_HOST"] = self.jobs.settings.advertise_host
                if self.endpoint.issue_tokens:  # the node issues its jobs' tokens
                    env["CUMULO_AUTH"] = "token"
                proc = backend.start_node(ws, target, node_id, env)
                self._node_procs[node_id] = proc
                store.update_node(node_id, pid=proc.pid, host=self.host)

    def _node_dead(self, node: PoolNode) -> bool:
        """A node stopped: its process here ended, or its heartbeat stopped.

        Its process id is looked up only when it runs on this host; a node of
        another host is judged by its heartbeat alone.
        """
        proc = self._node_procs.get(node.id)
        if proc is not None:
            return proc.poll() is not None
        if now_ms() - node.heartbeat_at > self.lease_ms:
            return True
        here = node.host is None or node.host == self.host
        return here and node.pid is not None and not processes.alive(node.pid, None)

    # ------------------------------------------------------------------ watch
    def _watch(self) -> None:
        owned = self.jobs.store.list_jobs(states=[JobState.ACTIVE.value], owner=self.owner)
        self._seen_owned = bool(owned)
        watched = {job.run_id for job in owned}
        self._seen = {key: at for key, at in self._seen.items() if key[0] in watched}
        for job in owned:
            self._at("watch-listed", job.run_id)
            if job.run_id in self._dispatching:
                continue
            try:
                self._check(job)
            except Unavailable as exc:
                log.warning("cannot check job %s now: %s", job.run_id, exc.message)
            except CumuloError as exc:
                log.warning("checking job %s failed: %s", job.run_id, exc.message)

    def _check(self, job: JobInfo) -> None:
        run = self.jobs.meta.get_run(job.workspace, job.run_id)
        if run.run_status.is_terminal:
            self.jobs.give_up(job)
            return
        now = time.monotonic()
        if job.handle is None:
            # Its launcher (this scheduler a moment ago, or one whose lease this one
            # took over) may be between starting the process and recording it.
            first = self._seen.setdefault((job.run_id, str(job.attempts), "unstarted"), now)
            if now - first >= self.lease_ms / 1000:
                self._lost(job, "it was interrupted before it started")
            return
        if not on_host(job.handle, self.host):
            self._check_elsewhere(job, now)
            return
        backend = self.backend(job.workspace, job.target)
        state = backend.status(job.handle)
        if state.state == "running":
            self._backstops(job, run.status, run.started_at, backend, now)
            return
        first = self._seen.setdefault((job.run_id, str(job.attempts), "ended"), now)
        if now - first < LOST_GRACE_SECONDS:
            return  # the agent may be writing its last words
        run = self.jobs.meta.get_run(job.workspace, job.run_id)
        if run.run_status.is_terminal:
            self.jobs.give_up(job)
            return
        reason = state.message or "the target lost it"
        if job.node and job.node in self._node_procs:
            code = self._node_procs[job.node].poll()
            if code is not None and code < 0:
                reason = f"the pool node running it was killed by {signal_name(-code)}"
        elif job.node:
            reason = "the pool node running it stopped"
        self._lost(job, reason, exit_code=state.exit_code)

    def _check_elsewhere(self, job: JobInfo, now: float) -> None:
        """A job whose process runs on another host, taken over here: that host stopped.

        Its host's scheduler (or pool node) renewed the lease while it watched the
        process; this scheduler took the job over only once the renewals stopped.
        A process id of another host means nothing here, so the job is lost unless
        its run ends by itself (its agent reports to the service) within a grace.
        """
        first = self._seen.setdefault((job.run_id, str(job.attempts), "elsewhere"), now)
        if now - first < LOST_GRACE_SECONDS:
            return
        host = str((job.handle or {}).get("host", "")).split("/")[0]
        self._lost(job, f"its host {host} stopped renewing its lease")

    def _backstops(
        self, job: JobInfo, status: str, started_at: int | None, backend: Backend, now: float
    ) -> None:
        """Stop jobs whose agent does not obey a cancel or a time limit in time."""
        limit = job.job_config.max_run_duration_seconds
        overdue = (
            limit is not None
            and started_at is not None
            and now_ms() - started_at > (limit + CANCEL_GRACE_SECONDS) * 1000
        )
        if status != RunStatus.CANCEL_REQUESTED and not overdue:
            return
        first = self._seen.setdefault((job.run_id, "cancel"), now)
        if now - first < CANCEL_GRACE_SECONDS and not overdue:
            return
        backend.cancel(job.handle or {}, force=True)
        message = (
            f"The run exceeded max_run_duration_seconds={limit} and was canceled."
            if overdue
            else "The run was canceled by a user (its process was killed)."
        )
        error = {"code": "Timeout" if overdue else "Canceled", "message": message}
        self.jobs.end(job, RunStatus.CANCELED, error, say=False)

    def _lost(self, job: JobInfo, reason: str, exit_code: int | None = None) -> None:
        """Retry or fail a job whose process is gone; nothing when ``job`` is out of date."""
        run = self.jobs.meta.get_run(job.workspace, job.run_id)
        if run.status == RunStatus.CANCEL_REQUESTED:
            self.jobs.settle_cancel(job)
        elif job.attempts <= job.max_retries:
            self._retry(job, reason)
        else:
            self._fail_lost(job, reason, exit_code)

    def _retry(self, job: JobInfo, reason: str) -> None:
        note = f"The job was lost ({reason}); retrying, attempt {job.attempts + 1}."
        if not self.jobs.retry(job, self.owner, note):
            return  # someone else moved it since it was read
        log.warning(
            "job %s was lost (%s); queued again for attempt %d (what it had not yet "
            "reported, logs and metrics, is lost)",
            job.run_id,
            reason,
            job.attempts + 1,
        )
        self.wake()

    def _fail_lost(self, job: JobInfo, reason: str, exit_code: int | None) -> None:
        error: dict[str, Any] = {"code": "JobLost", "message": f"The job was lost: {reason}."}
        if exit_code is not None and exit_code < 0:
            error["signal"] = signal_name(-exit_code)
        if not self.jobs.end(job, RunStatus.FAILED, error):
            return  # someone else moved it since it was read
        log.warning(
            "job %s was lost (%s); its run failed (what it had not yet reported, "
            "logs and metrics, is lost)",
            job.run_id,
            reason,
        )


# ------------------------------------------------------------------- worker
class SchedulerWorker:
    """The job scheduler of one ``Services`` object, started and stopped as a whole.

    The server's lifespan starts it with the server's address (``start``); an
    embedded process starts it on its first submit (``ensure_started``). A
    started worker is returned as it is by a second start.
    """

    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs
        self.current: Scheduler | None = None
        self._lock = threading.Lock()

    def start(self, *, url: str | None = None, issue_tokens: bool = False) -> Scheduler:
        with self._lock:
            if self.current is None or not self.current.running:
                self.current = Scheduler(self.jobs, url=url, issue_tokens=issue_tokens).start()
            return self.current

    def ensure_started(self) -> Scheduler:
        """Embedded: host the scheduler in this process while it lives (a daemon thread)."""
        return self.start()

    @property
    def running(self) -> bool:
        return self.current is not None and self.current.running

    def stop(self, stop_nodes: bool = False, wait: bool = True) -> None:
        """Stop dispatching (running jobs go on); with ``stop_nodes`` end its pool nodes too
        (``wait``: see ``Scheduler.stop_nodes``)."""
        with self._lock:
            scheduler, self.current = self.current, None
        if scheduler is not None:
            scheduler.stop()
            if stop_nodes:
                scheduler.stop_nodes(wait)
