"""Replicas of one deployment as local processes, moved step by step toward what is wanted.

``LocalReplicaSet.reconcile(want)`` is called by the supervisor a few times a
second. It never blocks on a replica: it starts processes, reads their status
files, probes ``/health``, and stops processes with SIGTERM (SIGKILL later).

- Readiness: a replica takes traffic once its status file says ``ready`` and
  ``/health`` answers 200 (reported as state ``ready`` with its URL).
- Liveness: a ready replica is probed every ``period_s``; ``failure_threshold``
  failed probes in a row, or the process exiting, make it ``crashed``; it is
  restarted after a backoff (0.5 s doubling up to 30 s).
- ``init()`` failures: the replica reports the error and traceback and exits;
  the deployment is ``Failed`` with that traceback (retried twice more).
- Rolling update: for each slot, a replica of the new generation starts next
  to the old one; only when it is ready is the old one drained (no new
  requests, then SIGTERM, which lets in-flight requests finish). One new
  replica starts at a time. If the new generation cannot start, the old one
  keeps serving and the deployment is ``Failed`` with the new one's error.
- Secrets: each replica gets its own secret in its environment and answers
  only calls that carry it; the probes here send it, as the router does.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from cumulo.core.deployments import (
    REPLICA_SECRET_ENV,
    REPLICA_SECRET_HEADER,
    DeploymentState,
    ReplicaState,
    replica_secret,
)
from cumulo.core.entities import now_ms
from cumulo.serving.preload import PreloadedProcess, Preloader

log = logging.getLogger("cumulo.serving")

DRAIN_S = 3.0  # longer than the router's table cache, so no new request reaches it
STOP_GRACE_S = 30.0
MAX_BACKOFF_S = 30.0
INIT_ATTEMPTS = 3
LOG_TAIL = 30
WARMING_WAIT_S = 30.0  # past this, a replica starts cold rather than wait for the preloader

Report = Callable[..., None]  # report(slot, generation, **values); values=None removes
GPU_RECHECK_S = 1.0  # how soon a replica waiting for GPUs looks again


class GpuSource(Protocol):
    """Hands out this machine's GPUs, each to one job or replica at a time."""

    def take(self, holder: str, count: int) -> tuple[int, ...] | None:
        """``count`` GPUs for ``holder`` (its own if it holds them), or None while
        fewer are free."""
        ...

    def release(self, holder: str) -> None: ...


@dataclass(frozen=True)
class Want:
    """What the deployment should run: its generation, replica count and replica spec."""

    generation: int
    replicas: int
    spec: dict[str, Any]  # for cumulo.serving.replica: kind, model_dir, entry_script, ...
    workdir: Path  # status, spec and log files
    cwd: Path
    secret: str = field(repr=False)  # the deployment's; each replica's is derived from it
    env: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable
    period_s: float = 5.0
    timeout_s: float = 2.0
    failure_threshold: int = 3
    startup_timeout_s: float = 600.0
    # The address other machines reach this one at: replicas listen on it and are
    # registered under it (each refuses calls without its secret).
    host: str = "127.0.0.1"
    gpus: int = 0  # each replica's, taken from the machine's GpuSource


@dataclass
class _Replica:
    slot: int
    want: Want
    state: str = ReplicaState.STARTING.value
    proc: subprocess.Popen[bytes] | PreloadedProcess | None = None
    log_fh: IO[bytes] | None = None
    url: str | None = None
    restarts: int = 0
    attempts: int = 0
    fails: int = 0
    next_start: float = 0.0
    next_probe: float = 0.0
    started: float = 0.0
    ready_since: float | None = None
    drain_until: float | None = None
    error: str | None = None
    traceback: str | None = None
    holder: str = ""  # the name its GPUs are held under

    @property
    def generation(self) -> int:
        return self.want.generation

    @property
    def log_path(self) -> Path:
        return self.want.workdir / f"replica-{self.slot}-g{self.generation}.log"

    @property
    def status_path(self) -> Path:
        return self.want.workdir / f"replica-{self.slot}-g{self.generation}.status.json"

    @property
    def secret(self) -> str:
        return replica_secret(self.want.secret, self.slot)


@dataclass
class Summary:
    state: str
    error: dict[str, Any] | None = None


class LocalReplicaSet:
    """The replica processes of one deployment on this machine."""

    def __init__(
        self,
        name: str,
        report: Report,
        preloader: Preloader | None = None,
        gpus: GpuSource | None = None,
    ) -> None:
        self.name = name
        self.report = report
        self.preloader = preloader  # forks warm replicas for the default interpreter
        # The machine's GPUs: each replica gets CUDA_VISIBLE_DEVICES with those it
        # holds (none when it asked for none); None leaves the variable as it is.
        self.gpus = gpus
        self.replicas: list[_Replica] = []
        self._stopping: list[tuple[subprocess.Popen[bytes] | PreloadedProcess, float, str]] = []
        self._ever_ready: set[int] = set()

    # -------------------------------------------------------------- reconcile
    def reconcile(self, want: Want) -> Summary:
        now = time.monotonic()
        for r in list(self.replicas):
            self._check(r, now)
        current = {r.slot: r for r in self.replicas if r.generation == want.generation}
        older = [r for r in self.replicas if r.generation != want.generation]
        starting = any(r.state == ReplicaState.STARTING for r in current.values())
        failed_new = any(r.state == ReplicaState.FAILED for r in current.values())
        for slot in range(want.replicas):
            if slot in current or failed_new:
                continue
            # During an update, start one new replica at a time; at creation, all at once.
            if older and starting:
                break
            if self._preloader_warming(want):
                break  # it will fork this replica in far less time than a cold start takes
            r = _Replica(slot, want)
            self.replicas.append(r)
            current[slot] = r
            self._start(r, now)
            starting = True
        for r in older:
            twin = current.get(r.slot)
            replaced = twin is not None and twin.state == ReplicaState.READY
            if (replaced or r.slot >= want.replicas) and r.drain_until is None:
                self._drain(r, now)
        for r in current.values():
            if r.slot >= want.replicas and r.drain_until is None:
                self._drain(r, now)
        self._reap(now)
        return self._summary(want)

    def _summary(self, want: Want) -> Summary:
        current = [r for r in self.replicas if r.generation == want.generation]
        failed = next((r for r in current if r.state == ReplicaState.FAILED), None)
        # Updating until the old replicas are gone: once Healthy, nothing old takes requests.
        older = [r for r in self.replicas if r.generation != want.generation]
        if failed is not None:
            message = failed.error or "The model could not load."
            if any(r.drain_until is None for r in older):
                message += " The previous version keeps serving."
            return Summary(
                DeploymentState.FAILED.value,
                {"message": message, "traceback": failed.traceback, "replica": failed.slot},
            )
        if older:
            return Summary(DeploymentState.UPDATING.value)
        ready = [r for r in current if r.state == ReplicaState.READY and r.slot < want.replicas]
        if len(ready) >= want.replicas:
            return Summary(DeploymentState.HEALTHY.value)
        crashed = next((r for r in current if r.error), None)
        error = {"message": crashed.error, "traceback": crashed.traceback} if crashed else None
        if want.generation not in self._ever_ready and crashed is None:
            return Summary(DeploymentState.CREATING.value)
        return Summary(DeploymentState.UNHEALTHY.value, error)

    # ------------------------------------------------------------- processes
    def _start(self, r: _Replica, now: float) -> None:
        want = r.want
        want.workdir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            r.status_path.unlink()
        spec_path = want.workdir / f"replica-{r.slot}-g{r.generation}.json"
        spec_path.write_text(
            json.dumps(
                {
                    **want.spec,
                    "host": listen_address(want.host),
                    "status_file": str(r.status_path),
                    "deployment": self.name,
                }
            )
        )
        if r.log_fh is None:
            r.log_fh = open(r.log_path, "ab")  # noqa: SIM115 - kept open while it runs
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        r.log_fh.write(
            f"--- {stamp} starting replica {r.slot} (attempt {r.attempts + 1})\n".encode()
        )
        r.log_fh.flush()
        env = {**os.environ, **want.env, REPLICA_SECRET_ENV: r.secret}
        if self.gpus is not None:
            r.holder = f"replica {self.name} {r.slot} g{r.generation}"
            held = self.gpus.take(r.holder, want.gpus) if want.gpus else ()
            if held is None:
                self._wait_for_gpus(r, now)
                return
            if r.error == _waiting(r):
                r.error = None
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, held))
        try:
            r.proc = self._warm(want, spec_path, r.log_path, env) or subprocess.Popen(
                [want.python, "-m", "cumulo.serving.replica", str(spec_path)],
                stdout=r.log_fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(want.cwd),
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            r.proc = None
            self._release(r.holder)
            self._set(r, ReplicaState.FAILED, now, error=f"Cannot start the replica: {exc}")
            return
        r.attempts += 1
        r.started = now
        r.fails = 0
        r.url = None
        r.state = ReplicaState.STARTING.value
        self.report(
            r.slot,
            r.generation,
            state=r.state,
            pid=r.proc.pid,
            url=None,
            restarts=r.restarts,
            error=r.error,
            log_path=str(r.log_path),
            started_at=now_ms(),
        )

    def _wait_for_gpus(self, r: _Replica, now: float) -> None:
        """No start yet: the GPUs it asks for are all held; it looks again shortly."""
        error = _waiting(r)
        if r.error != error:
            self._set(r, ReplicaState.STARTING, now, error=error)
        r.next_start = now + GPU_RECHECK_S

    def _release(self, holder: str) -> None:
        if self.gpus is not None and holder:
            self.gpus.release(holder)

    def _preloader_warming(self, want: Want) -> bool:
        pre = self.preloader
        return (
            pre is not None
            and pre.python == want.python
            and pre.alive
            and not pre.ready.is_set()
            and time.monotonic() - pre.started < WARMING_WAIT_S
        )

    def _warm(
        self, want: Want, spec: Path, log_path: Path, env: dict[str, str]
    ) -> PreloadedProcess | None:
        """A replica forked from the preloader, when it runs this interpreter and settings."""
        pre = self.preloader
        if pre is None or pre.python != want.python or not pre.alive or not pre.ready.is_set():
            return None
        # Thread counts are read when numpy loads: the preloader's must be the ones wanted.
        if any(env.get(k) != v for k, v in pre.thread_env.items()):
            return None
        try:
            return pre.spawn(spec, log_path, want.cwd, env)
        except OSError as exc:
            log.warning("warm start failed (%s); starting replica %s cold", exc, self.name)
            return None

    def _check(self, r: _Replica, now: float) -> None:
        if r.drain_until is not None:
            if now >= r.drain_until and r.proc is not None:
                self._stop(r)
            return
        if r.state in (ReplicaState.CRASHED, ReplicaState.FAILED):
            if r.proc is None and now >= r.next_start and self._may_retry(r):
                r.restarts += 1
                self._start(r, now)
            return
        proc = r.proc
        if proc is None:
            if r.state == ReplicaState.STARTING and now >= r.next_start:
                self._start(r, now)  # it waited for GPUs
            return
        code = proc.poll()
        if code is not None:
            self._exited(r, code, now)
            return
        if r.state == ReplicaState.STARTING:
            status = _read_json(r.status_path)
            if status.get("state") == "ready" and status.get("port"):
                url = replica_url(r.want.host, int(status["port"]))
                if _probe(url, r.secret, r.want.timeout_s):
                    r.url = url
                    r.ready_since = now
                    r.next_probe = now + r.want.period_s
                    self._ever_ready.add(r.generation)
                    self._set(r, ReplicaState.READY, now, url=url, ready_at=now_ms())
            elif now - r.started > r.want.startup_timeout_s:
                self._kill(r)
                self._crash(r, now, f"did not become ready within {r.want.startup_timeout_s:g} s")
            return
        if r.state == ReplicaState.READY and now >= r.next_probe:
            r.next_probe = now + r.want.period_s
            if r.url and _probe(r.url, r.secret, r.want.timeout_s):
                r.fails = 0
                if r.ready_since is not None and now - r.ready_since > 60:
                    r.attempts = 0  # a long healthy run forgives earlier crashes
                return
            r.fails += 1
            if r.fails >= r.want.failure_threshold:
                self._kill(r)
                self._crash(r, now, f"failed {r.fails} liveness checks in a row")

    def _exited(self, r: _Replica, code: int, now: float) -> None:
        r.proc = None
        self._release(r.holder)
        status = _read_json(r.status_path)
        if status.get("state") == "failed":
            r.traceback = status.get("traceback")
            self._set(
                r,
                ReplicaState.FAILED,
                now,
                error=f"init failed: {status.get('error', '')}".strip(),
            )
            r.next_start = now + self._backoff(r)
            return
        self._crash(r, now, f"exited with code {code}")

    def _crash(self, r: _Replica, now: float, why: str) -> None:
        r.proc = None
        self._release(r.holder)
        r.url = None
        r.ready_since = None
        tail = _tail(r.log_path, LOG_TAIL)
        r.traceback = tail or None
        log.warning("replica %s of %s %s; restarting", r.slot, self.name, why)
        self._set(r, ReplicaState.CRASHED, now, error=f"Replica {r.slot} {why}.", url=None)
        r.next_start = now + self._backoff(r)

    def _may_retry(self, r: _Replica) -> bool:
        return r.state == ReplicaState.CRASHED or r.attempts < INIT_ATTEMPTS

    @staticmethod
    def _backoff(r: _Replica) -> float:
        return float(min(MAX_BACKOFF_S, 0.5 * 2 ** max(0, r.attempts - 1)))

    def _set(self, r: _Replica, state: str, now: float, **values: Any) -> None:
        r.state = state
        if "error" in values:
            r.error = values["error"]
        self.report(r.slot, r.generation, state=state, restarts=r.restarts, **values)

    def _drain(self, r: _Replica, now: float) -> None:
        r.drain_until = now + DRAIN_S
        r.state = ReplicaState.DRAINING.value
        if r.proc is None:
            r.drain_until = now
        self.report(r.slot, r.generation, state=r.state)

    def _stop(self, r: _Replica) -> None:
        proc, r.proc = r.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            self._stopping.append((proc, time.monotonic() + STOP_GRACE_S, r.holder))
        else:
            self._release(r.holder)

    def _kill(self, r: _Replica) -> None:
        proc, r.proc = r.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self._release(r.holder)

    def _reap(self, now: float) -> None:
        for r in list(self.replicas):
            if r.drain_until is not None and now >= r.drain_until and r.proc is None:
                self.replicas.remove(r)
                if r.log_fh is not None:
                    r.log_fh.close()
                self.report(r.slot, r.generation, remove=True)
        still = []
        for proc, deadline, holder in self._stopping:
            if proc.poll() is not None:
                self._release(holder)
                continue
            if now >= deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                self._release(holder)
                continue
            still.append((proc, deadline, holder))
        self._stopping = still

    def stop_all(self, wait_s: float = 10.0) -> None:
        """Stop every replica (SIGTERM, then SIGKILL after ``wait_s``)."""
        procs = [p for _, p in ((r, r.proc) for r in self.replicas) if p is not None]
        procs += [p for p, _, _ in self._stopping]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
        for r in self.replicas:
            r.proc = None
            self._release(r.holder)
            if r.log_fh is not None:
                r.log_fh.close()
        for _, _, holder in self._stopping:
            self._release(holder)
        self.replicas.clear()
        self._stopping.clear()


def _waiting(r: _Replica) -> str:
    count = r.want.gpus
    return f"Replica {r.slot} is waiting for {count} GPU" + ("" if count == 1 else "s")


def listen_address(host: str) -> str:
    """Where a replica advertised as ``host`` listens: that address, or every interface
    when ``host`` is a name (it resolves to an address of this machine for the others)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "0.0.0.0"
    return host.strip("[]")


def replica_url(host: str, port: int) -> str:
    host = host.strip("[]")
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _probe(url: str, secret: str, timeout: float) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
    try:
        conn.request("GET", "/health", headers={REPLICA_SECRET_HEADER: secret})
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
