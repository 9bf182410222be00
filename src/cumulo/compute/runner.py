"""Runs one job's script and reports on it: the same code on every target.

It starts the script in its own process group (killed with the runner if the
runner dies), streams stdout and stderr live into the run's logs, uploads
``./logs`` while the script runs and ``./outputs`` when it ends (also on
failure or cancel), enforces ``max_run_duration_seconds``, obeys a cancel
request, and records the final status with a reason. It talks to the
workspace only through a ``JobChannel``, so it works embedded or over HTTP.

It outlives the script: metric batches the script could not deliver (no
server answered) wait in the job's spool, and the runner delivers them
before the final status; log lines wait, in order, until the store takes
them. What is still undelivered after the spec's ``delivery_seconds``
(``settings.delivery_seconds``) is named in the run's final report.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from cumulo.compute import processes
from cumulo.compute.base import JOB_FOLDER
from cumulo.compute.spool import ENV_DIR, Spool
from cumulo.compute.sysmetrics import Point, Sampler, Sampling
from cumulo.core import system_metrics
from cumulo.core.entities import now_ms
from cumulo.core.errors import CumuloError
from cumulo.core.jobs import LOG_TAIL_LINES, LogStream, exit_reason

log = logging.getLogger("cumulo.runner")

FLUSH_S = 0.2
CANCEL_POLL_S = 0.5
LOGS_SYNC_S = 1.0
MAX_UPLOAD_FILES = 10_000
# How long the runner keeps trying to deliver buffered metrics and log lines at the
# end of a job while no server or store answers, unless its spec says otherwise.
DELIVERY_S = 300.0
# Log lines held while the store is away; beyond this the oldest are kept, new ones counted.
MAX_PENDING_LOG_BYTES = 64 * 1024 * 1024
_STORE_VARS = (
    "CUMULO_HOME",
    "CUMULO_DATABASE_URL",
    "CUMULO_ARTIFACT_ROOT",
    "CUMULO_S3_ENDPOINT_URL",
    "CUMULO_ENV_CACHE",
)


class JobChannel(Protocol):
    """How the runner reaches the workspace (in-process services or HTTP)."""

    def get_status(self) -> str: ...
    def set_status(self, status: str, error: dict[str, Any] | None = None) -> None: ...
    def append_logs(self, chunks: list[tuple[str, str, int]]) -> None: ...
    def upload_file(self, name: str, path: Path) -> None: ...


BuildEnv = Callable[[dict[str, Any], Callable[[str], None]], str]


class LogSink:
    """Collects lines from threads; ``flush`` sends them in one call per stream run.

    Lines the store cannot take yet are kept in order and sent first next time,
    up to ``MAX_PENDING_LOG_BYTES``; lines beyond that are counted in ``lost``.
    """

    def __init__(
        self, channel: JobChannel, local_copy: Path, delivery_s: float = DELIVERY_S
    ) -> None:
        self.channel = channel
        self.delivery_s = delivery_s  # how long ``drain`` keeps trying
        self._pending: list[tuple[str, str, int]] = []
        self._pending_bytes = 0
        self.lost = 0  # lines dropped: the store was away and the buffer full
        self._lock = threading.Lock()
        self.path = local_copy
        self._file = open(local_copy, "a", encoding="utf-8")  # noqa: SIM115
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)

    def add(self, stream: str, text: str) -> None:
        with self._lock:
            self._file.write(text)
            if stream == LogStream.STDERR:
                self.stderr_tail.append(text)
            if self._pending_bytes + len(text) > MAX_PENDING_LOG_BYTES:
                self.lost += 1
                return
            self._pending.append((stream, text, now_ms()))
            self._pending_bytes += len(text)

    def system(self, line: str) -> None:
        self.add(LogStream.SYSTEM.value, line.rstrip("\n") + "\n")

    def flush(self) -> bool:
        """Send what is pending; False when the store could not take it (kept for later)."""
        with self._lock:
            pending, self._pending = self._pending, []
            sent_bytes, self._pending_bytes = self._pending_bytes, 0
            self._file.flush()
        if not pending:
            return True
        merged: list[tuple[str, str, int]] = []
        for stream, text, at in pending:
            if merged and merged[-1][0] == stream and len(merged[-1][1]) < 64_000:
                merged[-1] = (stream, merged[-1][1] + text, merged[-1][2])
            else:
                merged.append((stream, text, at))
        try:
            self.channel.append_logs(merged)
        except Exception as exc:  # the store is away: keep the lines, in order, for later
            log.warning("could not store log lines (%s); retrying", exc)
            with self._lock:
                self._pending[:0] = pending
                self._pending_bytes += sent_bytes
            return False
        return True

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._pending)

    def drain(self, seconds: float | None = None) -> None:
        """Flush, retrying with backoff: a run's last lines land before its final status."""
        deadline = time.monotonic() + (self.delivery_s if seconds is None else seconds)
        pause = 0.2
        while not self.flush() and time.monotonic() < deadline:
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 5.0)

    def close(self) -> None:
        self.flush()
        self._file.close()


class LogsFolder:
    """Uploads files of ``./logs`` when they change, under ``logs/``."""

    def __init__(self, channel: JobChannel, root: Path) -> None:
        self.channel = channel
        self.root = root
        self._seen: dict[str, tuple[int, int]] = {}

    def sync(self) -> None:
        if not self.root.is_dir():
            return
        for file in sorted(self.root.rglob("*"))[:MAX_UPLOAD_FILES]:
            if not file.is_file() or file.is_symlink():
                continue
            info = file.stat()
            rel = file.relative_to(self.root).as_posix()
            key = (info.st_size, info.st_mtime_ns)
            if self._seen.get(rel) == key:
                continue
            try:
                self.channel.upload_file(f"logs/{rel}", file)
                self._seen[rel] = key
            except Exception as exc:
                log.warning("could not upload logs/%s: %s", rel, exc)


def upload_outputs(channel: JobChannel, root: Path, sink: LogSink) -> int:
    if not root.is_dir():
        return 0
    count = 0
    real_root = root.resolve()
    for file in sorted(root.rglob("*")):
        if not file.is_file() or real_root not in file.resolve().parents:
            continue
        if count >= MAX_UPLOAD_FILES:
            sink.system(f"outputs: more than {MAX_UPLOAD_FILES} files; the rest is not uploaded.")
            break
        rel = file.relative_to(root).as_posix()
        try:
            channel.upload_file(f"outputs/{rel}", file)
            count += 1
        except Exception as exc:
            sink.system(f"outputs: could not upload {rel}: {exc}")
    return count


def _pump(stdout: IO[bytes], stderr: IO[bytes], sink: LogSink) -> None:
    """Read both streams in one thread, in the order the script wrote them.

    Whatever stderr holds was written after what stdout held when it came, so
    stdout is drained before each read of stderr: a traceback never lands above
    the lines printed before it (two reader threads would race).
    """
    names = {stdout.fileno(): "stdout", stderr.fileno(): "stderr"}
    partial = {fd: b"" for fd in names}
    open_fds = list(names)  # stdout first
    with selectors.DefaultSelector() as selector:
        for fd in open_fds:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        while open_fds:
            selector.select()
            # All of stdout, then one read of stderr; the next select comes back at once
            # while stderr has more, and stdout is drained again before it.
            for fd in list(open_fds):
                while True:
                    try:
                        data = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    if not data:  # the script closed it: its last line may lack a newline
                        if partial[fd]:
                            sink.add(names[fd], partial[fd].decode("utf-8", errors="replace"))
                        selector.unregister(fd)
                        open_fds.remove(fd)
                        break
                    *lines, partial[fd] = (partial[fd] + data).split(b"\n")
                    for line in lines:
                        sink.add(names[fd], (line + b"\n").decode("utf-8", errors="replace"))
                    if names[fd] == "stderr":
                        break
    stdout.close()
    stderr.close()


def run_job(
    spec: dict[str, Any],
    channel: JobChannel,
    workdir: Path,
    *,
    build_env: BuildEnv | None = None,
    stop: threading.Event | None = None,
    on_child: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run the job described by ``spec`` in ``workdir``; returns its result (also saved)."""
    folder = workdir / JOB_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    delivery_s = float(spec.get("delivery_seconds", DELIVERY_S))
    sink = LogSink(channel, folder / "std_log.txt", delivery_s)
    stop = stop or threading.Event()
    result: dict[str, Any]
    try:
        result = _run(spec, channel, workdir, sink, build_env, stop, on_child)
    except Exception as exc:  # a bug or a lost store: still try to say so on the run
        log.exception("job runner failed")
        result = {"status": "Failed", "error": {"code": "RunnerError", "message": str(exc)}}
        _final(channel, sink, result)
    finally:
        with contextlib.suppress(Exception):
            sink.close()
    (folder / "result.json").write_text(json.dumps(result))
    return result


def _run(
    spec: dict[str, Any],
    channel: JobChannel,
    workdir: Path,
    sink: LogSink,
    build_env: BuildEnv | None,
    stop: threading.Event,
    on_child: Callable[[int], None] | None,
) -> dict[str, Any]:
    python = spec.get("python")
    if not python:
        env_def = spec.get("environment")
        if env_def and build_env is not None:
            try:
                python = build_env(env_def, sink.system)
            except CumuloError as exc:
                sink.system(exc.message)
                result = {
                    "status": "Failed",
                    "error": {"code": "EnvironmentBuildFailed", "message": exc.message},
                }
                return _final(channel, sink, result)
        else:
            python = sys.executable
    if channel.get_status() == "CancelRequested":
        return _final(channel, sink, {"status": "Canceled", "error": _canceled()})

    spool = Spool(workdir / JOB_FOLDER / "spool")  # where the script's writer buffers
    env = {**os.environ, **spec.get("env", {}), "PYTHONUNBUFFERED": "1"}
    env[ENV_DIR] = str(spool.folder)
    bridge = _open_bridge(spec, sink)
    if bridge is not None:
        env.update(bridge.env)
    try:
        return _supervise(spec, channel, workdir, sink, stop, on_child, python, env, spool)
    finally:
        if bridge is not None:
            bridge.close()


class Bridge(Protocol):
    """What serves a job's MLflow calls when no server does (``spec["tracking_bridge"]``)."""

    env: dict[str, str]

    def close(self) -> None: ...


def _open_bridge(spec: dict[str, Any], sink: LogSink) -> Bridge | None:
    """The job's MLflow endpoint, named ``module:callable`` in its spec, unless the job's
    own variables already name one."""
    name = spec.get("tracking_bridge")
    if not name or "MLFLOW_TRACKING_URI" in spec.get("env", {}):
        return None
    module, _, attr = str(name).partition(":")
    try:
        bridge: Bridge = getattr(importlib.import_module(module), attr)(
            spec["workspace"], spec["run_id"]
        )
    except Exception as exc:
        sink.system(f"MLflow calls of this job cannot be tracked: {exc}")
        return None
    return bridge


def _supervise(
    spec: dict[str, Any],
    channel: JobChannel,
    workdir: Path,
    sink: LogSink,
    stop: threading.Event,
    on_child: Callable[[int], None] | None,
    python: str,
    env: dict[str, str],
    spool: Spool,
) -> dict[str, Any]:
    if "CUMULO_URL" in spec.get("env", {}):
        for key in _STORE_VARS:  # the script talks to the server, never to its database
            env.pop(key, None)
    argv = [python, "-u", spec["script"], *spec.get("arguments", [])]
    sink.system(f"Running {' '.join(argv[2:])} in {workdir.name}")
    try:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=processes.die_with_parent,
        )
    except OSError as exc:
        msg = f"Could not start {argv[0]}: {exc}"
        return _final(channel, sink, {"status": "Failed", "error": {"message": msg}})
    (workdir / JOB_FOLDER / "child.json").write_text(
        json.dumps({"pid": proc.pid, "pgid": proc.pid})
    )
    if on_child is not None:
        on_child(proc.pid)
    assert proc.stdout is not None and proc.stderr is not None
    readers = [threading.Thread(target=_pump, args=(proc.stdout, proc.stderr, sink), daemon=True)]
    for r in readers:
        r.start()
    with contextlib.suppress(CumuloError):
        channel.set_status("Running")
    sampling = start_system_metrics(spec, channel, spool, workdir, proc.pid, env)
    try:
        return _watch(spec, channel, workdir, sink, stop, proc, readers, spool, sampling)
    finally:
        if sampling is not None:
            sampling.stop()


def _watch(
    spec: dict[str, Any],
    channel: JobChannel,
    workdir: Path,
    sink: LogSink,
    stop: threading.Event,
    proc: subprocess.Popen[bytes],
    readers: list[threading.Thread],
    spool: Spool,
    sampling: Sampling | None,
) -> dict[str, Any]:
    started = time.monotonic()
    limit = spec.get("max_run_duration_seconds")
    logs_dir = LogsFolder(channel, workdir / "logs")
    ending: dict[str, Any] | None = None
    last_poll = last_sync = 0.0
    while proc.poll() is None:
        time.sleep(0.05)
        now = time.monotonic()
        if ending is None:
            if stop.is_set():
                ending = {"status": "Canceled", "error": _canceled("the compute target stopped it")}
            elif limit and now - started > limit:
                msg = f"The run exceeded max_run_duration_seconds={limit} and was canceled."
                ending = {"status": "Canceled", "error": {"code": "Timeout", "message": msg}}
            elif now - last_poll >= CANCEL_POLL_S:
                last_poll = now
                with contextlib.suppress(Exception):
                    if channel.get_status() in ("CancelRequested", "Canceled"):
                        ending = {"status": "Canceled", "error": _canceled()}
            if ending is not None:
                sink.system(ending["error"]["message"])
                threading.Thread(
                    target=processes.end_groups, args=([proc.pid], 5.0), daemon=True
                ).start()
        if now - last_sync >= LOGS_SYNC_S:
            last_sync = now
            logs_dir.sync()
        sink.flush()
    if sampling is not None:
        sampling.stop()  # the script ended; its last samples go before the final status
    for r in readers:
        r.join(timeout=5)
    code = proc.returncode
    processes.kill_group(proc.pid, signal.SIGKILL)  # leftovers the script started
    with contextlib.suppress(CumuloError):
        channel.set_status("Finalizing")
    logs_dir.sync()
    count = upload_outputs(channel, workdir / "outputs", sink)
    if count:
        sink.system(f"Uploaded {count} file(s) from ./outputs.")
    if ending is None:
        if code == 0:
            ending = {"status": "Completed", "error": None}
        else:
            ending = {"status": "Failed", "error": exit_reason(code, list(sink.stderr_tail))}
    ending["exit_code"] = code
    lost = deliver_spooled(channel, spool, sink)
    if lost:
        _report_lost(spec, sink, ending, lost)
    return _final(channel, sink, ending)


def start_system_metrics(
    spec: dict[str, Any],
    channel: JobChannel,
    spool: Spool,
    workdir: Path,
    pid: int,
    env: dict[str, str],
) -> Sampling | None:
    """Sample the machine and the script's processes while it runs (None: turned off).

    Each sample is one metric batch with its id, kept in the job's spool before it
    is sent, as the script's own batches are when no server answers: a sample no
    server took yet is delivered later, and at the latest before the final status.
    """
    interval = float(spec.get("system_metrics_interval", system_metrics.DEFAULT_INTERVAL) or 0)
    if interval <= 0 or "run_id" not in spec:  # off, or no run to record into
        return None
    tracking = _tracking(channel)
    try:
        sampler = Sampler(pid, workdir, env.get("CUDA_VISIBLE_DEVICES"))
    except Exception as exc:  # psutil cannot see the process: the run goes on without
        log.warning("system metrics are off for this job: %s", exc)
        return None
    run_id, workspace = spec["run_id"], spec["workspace"]

    def emit(points: list[Point]) -> None:
        entry = {
            "workspace": workspace,
            "run_id": run_id,
            "batch_id": uuid.uuid4().hex,
            "metrics": {
                "key": [p[0] for p in points],
                "value": [p[1] for p in points],
                "step": [p[2] for p in points],
                "timestamp": [p[3] for p in points],
            },
            "records": [],
        }
        if not spool.put(entry, len(points)):
            spool.note_lost(run_id, len(points), "the job's metric buffer is full")
            return
        if tracking is not None:
            spool.replay(lambda batch: _log_batch(tracking, batch))

    return Sampling(sampler, interval, emit).start()


def deliver_spooled(channel: JobChannel, spool: Spool, sink: LogSink) -> int:
    """Send the metric batches the script left in its spool; returns the points not delivered."""
    tracking = _tracking(channel)
    if spool.files() and tracking is not None:
        sink.system(f"Delivering {spool.points()} buffered metric points.")
        deadline = time.monotonic() + sink.delivery_s
        pause = 0.2
        while not spool.replay(lambda entry: _log_batch(tracking, entry)):
            if time.monotonic() >= deadline:
                break
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
    return spool.lost() + spool.points()


def _tracking(channel: JobChannel) -> Any:
    """What takes metric batches behind ``channel``: its HTTP tracking client, or the
    job service's tracking service."""
    tracking = getattr(channel, "tracking", None)
    if tracking is not None:
        return tracking
    return getattr(getattr(channel, "jobs", None), "tracking", None)


def _log_batch(tracking: Any, entry: dict[str, Any]) -> None:
    tracking.log_batch(
        entry["workspace"],
        entry["run_id"],
        metrics=entry["metrics"],
        records=entry["records"],
        batch_id=entry["batch_id"],
    )


def _report_lost(spec: dict[str, Any], sink: LogSink, ending: dict[str, Any], lost: int) -> None:
    """Say on the run that data is missing: its final error and its log."""
    message = f"{lost} metric points could not be delivered (no server took them in time)."
    sink.system(message)
    log.warning("run %s: %s", spec.get("run_id"), message)
    error = ending.get("error") or {"code": "MetricsNotDelivered", "message": message}
    ending["error"] = {**error, "undelivered_metric_points": lost}


def _canceled(by: str = "a user") -> dict[str, Any]:
    return {"code": "Canceled", "message": f"The run was canceled by {by}."}


def _final(channel: JobChannel, sink: LogSink, result: dict[str, Any]) -> dict[str, Any]:
    sink.drain()
    if sink.waiting or sink.lost:
        lines = sink.waiting + sink.lost
        message = f"{lines} log lines could not be delivered (no server took them in time)."
        log.warning("%s", message)
        error = result.get("error") or {"code": "LogsNotDelivered", "message": message}
        result["error"] = {**error, "undelivered_log_lines": lines}
    # The log's file is among the run's files before the run ends, so whoever waits
    # for the end finds it.
    try:
        channel.upload_file("user_logs/std_log.txt", sink.path)
    except Exception as exc:  # the run has its log lines already; the file is a copy
        log.warning("could not upload the job's std_log.txt: %s", exc)
    try:
        channel.set_status(result["status"], result.get("error"))
    except CumuloError as exc:
        log.warning("could not record the final status %s: %s", result["status"], exc)
    return result
