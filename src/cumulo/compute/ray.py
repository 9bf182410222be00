"""``RayCluster``: jobs through Ray's Jobs API; optionally a managed local head.

The job's folder (snapshot + ``.cumulo_job/spec.json``, unique per attempt so
two runs never share Ray's extracted working dir) is the ``working_dir``; the
entrypoint is the cumulo agent, which streams logs and uploads outputs like on
every other target. Resources map to ``entrypoint_num_cpus`` (at least 1, so
drivers spread over nodes and queue on CPUs), ``entrypoint_num_gpus`` and
``entrypoint_memory``. Cancel is ``stop_job``. Ray nodes need ``cumulo``
installed (``pip install 'cumulo[ray]'``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from cumulo.compute import processes
from cumulo.compute.base import (
    AGENT_MODULE,
    JOB_FOLDER,
    LOOPBACK,
    Capacity,
    HeadRecord,
    HeadRegistry,
    Launch,
    TargetState,
    TargetType,
    host_id,
)
from cumulo.core.errors import ConfigError, InvalidInput, Unavailable
from cumulo.core.settings import Settings

_ENDED = {"SUCCEEDED", "FAILED", "STOPPED"}
# The heads this process runs as owner, by ``<home>/ray/<workspace>-<target>.json``.
_heads: dict[str, _Managed] = {}
_registries: dict[str, HeadRegistry] = {}  # the shared record of each, where one is kept
_key_locks: dict[str, threading.Lock] = {}
_heads_lock = threading.Lock()


def _job_submission() -> Any:
    try:
        from ray import job_submission
    except ImportError as exc:
        raise ConfigError(
            "Ray targets need Ray: install it with pip install 'cumulo[ray]'."
        ) from exc
    return job_submission


class RayBackend:
    kind = "ray"

    def __init__(
        self, config: dict[str, Any], home: Path, heads: HeadRegistry | None = None
    ) -> None:
        self.config = config
        self.home = home
        # Where a managed head is recorded for every server over the store; None: this home.
        self.heads = heads
        self._client: Any = None
        self._client_address = ""

    # ---------------------------------------------------------------- client
    @property
    def _key(self) -> str:
        return str(self.config.get("_key", "managed"))

    @property
    def address(self) -> str:
        if self.config.get("address"):
            return str(self.config["address"])
        state = self.home / "ray" / f"{self._key}.json"
        if self.heads is not None:
            return shared_head(state, self.config, self.heads)
        return managed_head(state, self.config).address

    def client(self) -> Any:
        address = self.address
        if self._client is None or address != self._client_address:  # a head taken over
            js = _job_submission()
            headers = {}
            if self.config.get("token"):
                headers["Authorization"] = f"Bearer {self.config['token']}"
            try:
                self._client = js.JobSubmissionClient(address, headers=headers or None)
            except Exception as exc:
                raise Unavailable(
                    f"Cannot reach the Ray cluster at {address}: {exc}. Check that its "
                    "dashboard (Jobs API) is up."
                ) from exc
            self._client_address = address
        return self._client

    # ------------------------------------------------------------ interface
    def submit(self, launch: Launch) -> dict[str, Any]:
        res = launch.resources
        python = self.config.get("python") or (sys.executable if self._is_loopback() else "python")
        kwargs: dict[str, Any] = {
            "entrypoint_num_cpus": max(res.cpus or 1.0, 0.001),
            "entrypoint_num_gpus": res.gpus or None,
        }
        if res.memory_mb:
            kwargs["entrypoint_memory"] = res.memory_mb * 1024 * 1024
        sid = launch.submission_id
        try:
            self.client().submit_job(
                entrypoint=f"{python} -m {AGENT_MODULE} run .",
                submission_id=sid,
                runtime_env={"working_dir": str(launch.workdir), "env_vars": launch.env},
                metadata={"cumulo_run_id": launch.run_id, "workspace": launch.workspace},
                **{k: v for k, v in kwargs.items() if v is not None},
            )
        except Exception as exc:
            if "already exists" not in str(exc):
                raise Unavailable(f"Ray refused the job: {exc}") from exc
        return {"submission_id": sid, "address": self.address}

    def status(self, handle: dict[str, Any]) -> TargetState:
        try:
            info = self.client().get_job_info(handle["submission_id"])
        except Unavailable:
            raise
        except Exception as exc:
            if "does not exist" in str(exc) or "404" in str(exc):
                return TargetState("unknown", None, "the Ray cluster no longer knows the job")
            raise Unavailable(f"Cannot ask Ray about the job: {exc}") from exc
        status = str(getattr(info.status, "value", info.status))
        if status not in _ENDED:
            return TargetState("running", None, status)
        code = info.driver_exit_code
        return TargetState("ended", code, f"Ray says {status}: {info.message or ''}".strip())

    def logs(self, handle: dict[str, Any]) -> str:
        try:
            return str(self.client().get_job_logs(handle["submission_id"]))
        except Exception:
            return ""

    def cancel(self, handle: dict[str, Any], force: bool = False) -> None:
        try:
            self.client().stop_job(handle["submission_id"])
        except Exception as exc:
            raise Unavailable(f"Ray did not stop the job: {exc}") from exc

    def close(self) -> None:
        """Drop the client; a managed head this backend owns runs on, its lease left to lapse."""
        self._client = None
        if self.heads is not None and not self.config.get("address"):
            leave_head(self.home, self._key)

    def _is_loopback(self) -> bool:
        address = self.address
        return "://127." in address or "://localhost" in address


# ------------------------------------------------------------- managed head
def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: each socket stays bound until all are chosen (one at a
    time, the system may hand the same port out twice)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
        return ports


def head_environment() -> dict[str, str]:
    """Settings that keep a local head on loopback, quiet and patient with queued jobs."""
    autoscaler_metrics, dashboard_metrics = _free_ports(2)
    return {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_JOB_START_TIMEOUT_SECONDS": "86400",
        "AUTOSCALER_METRIC_PORT": str(autoscaler_metrics),
        "DASHBOARD_METRIC_PORT": str(dashboard_metrics),
    }


class ManagedRayHead:
    """A single-node Ray head (``ray start --head --block``), ours to stop.

    It binds to ``host`` (the advertise host, so that other machines reach it), or
    to 127.0.0.1 without one.
    """

    def __init__(
        self, num_cpus: int | None = None, num_gpus: int | None = None, host: str | None = None
    ) -> None:
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.bind = host or LOOPBACK
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""
        self.temp = ""
        self.pid = 0
        self.start_ticks: int | None = None  # the process's start time (processes.start_time)
        self.local = True  # its process runs on this host (else only its address is ours)
        self.host = ""  # compute.base.host_id of its host, where recorded

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        if self.local:
            return bool(self.pid) and processes.alive(self.pid, self.start_ticks)
        return _answers(self.address)

    def start(self, timeout: float = 90.0) -> ManagedRayHead:
        ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
        if not Path(ray_bin).exists():
            raise ConfigError("Ray is not installed: pip install 'cumulo[ray]'.")
        self.temp = tempfile.mkdtemp(prefix="cray", dir="/tmp")  # socket paths must be short
        gcs, dash, client, agent = _free_ports(4)
        try:
            ip = socket.gethostbyname(self.bind)
        except OSError as exc:
            raise ConfigError(f"The advertise host {self.bind!r} does not resolve: {exc}") from exc
        argv = [
            ray_bin, "start", "--head", "--block", f"--node-ip-address={ip}",
            f"--port={gcs}", "--include-dashboard=true", f"--dashboard-host={ip}",
            f"--dashboard-port={dash}", f"--ray-client-server-port={client}",
            f"--dashboard-agent-listen-port={agent}", f"--temp-dir={self.temp}",
            "--disable-usage-stats",
        ]  # fmt: skip
        if self.num_cpus is not None:
            argv.append(f"--num-cpus={self.num_cpus}")
        if self.num_gpus is not None:
            argv.append(f"--num-gpus={self.num_gpus}")
        env = {**os.environ, **head_environment()}
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        with open(Path(self.temp) / "head.log", "ab") as log:
            self.proc = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        self.pid = self.proc.pid
        self.start_ticks = processes.start_time(self.pid)
        self.address = f"http://{self.bind}:{dash}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (Path(self.temp) / "head.log").read_text(errors="replace")[-2000:]
                raise Unavailable(f"The Ray head exited at start:\n{tail}")
            try:
                with urllib.request.urlopen(self.address + "/api/version", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise Unavailable(f"The Ray head did not answer within {timeout:.0f}s.")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                processes.end_groups([self.proc.pid], grace=0.0)
        elif self.pid and not self.proc and self.local:
            processes.end_groups([self.pid], grace=10.0)
        if self.temp and self.local:
            _kill_mentioning(self.temp)
            shutil.rmtree(self.temp, ignore_errors=True)


def _kill_mentioning(text: str) -> None:
    """Ray processes left behind by a head we started (they name its temp dir)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmd and int(entry.name) != os.getpid():
            processes.kill_group(int(entry.name), 9)
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), 9)


def managed_head(state: Path, config: dict[str, Any]) -> ManagedRayHead:
    """The managed head of a target known to this home only (no shared store to record it):
    reused while alive (even across restarts), else started."""
    key = str(state)
    with _key_lock(key), _heads_lock:
        entry = _heads.get(key)
        if entry is not None and entry.head.running():
            return entry.head
        saved = processes.read_json(state)
        if saved and processes.alive(int(saved["pid"]), saved.get("start")):
            head = ManagedRayHead(config.get("num_cpus"), config.get("num_gpus"))
            head.address, head.pid, head.temp = saved["address"], saved["pid"], saved["temp"]
            head.start_ticks = saved.get("start")
            _heads[key] = _Managed(head)
            return head
        head = ManagedRayHead(config.get("num_cpus"), config.get("num_gpus")).start()
        _remember(state, head)
        _heads[key] = _Managed(head)
        return head


class _Managed:
    """A head this process uses as its owner; with a registry, a thread renews its lease."""

    def __init__(self, head: ManagedRayHead, registry: HeadRegistry | None = None) -> None:
        self.head = head
        self.registry = registry
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def renew_in_background(self, key: str) -> None:
        self.thread = threading.Thread(
            target=self._renew, args=(key,), name="cumulo-ray-head-lease", daemon=True
        )
        self.thread.start()

    def stop_renewing(self) -> None:
        self.done.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(10)

    def _renew(self, key: str) -> None:
        registry = self.registry
        assert registry is not None
        period = max(registry.lease_ms / 3000, 0.05)
        while not self.done.wait(period):
            try:
                if self.head.address and not self.head.running():
                    registry.release()  # the head ended: the next user starts one
                    lost = True
                else:
                    lost = not registry.renew()
            except Exception:  # the store is away a moment: the lease has slack
                continue
            if not lost:
                continue
            with _heads_lock:
                if _heads.get(key) is self:
                    del _heads[key]
            if self.head.address and self.head.running():
                with contextlib.suppress(Exception):
                    record = registry.read()
                    if record is None or record.address != self.head.address:
                        self.head.stop()  # its target is gone, or another head replaced it
            return


def _usable(record: HeadRecord, here: str) -> bool:
    """Whether this machine can reach the recorded head (loopback only on its own host)."""
    host = record.address.split("://", 1)[-1].rsplit(":", 1)[0]
    return record.host == here or host not in ("127.0.0.1", "localhost")


def _answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(address + "/api/version", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _temp_dir(pid: int) -> str:
    """The temp dir a running head on this host was started with (its processes name it)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return ""
    return next((a.split("=", 1)[1] for a in argv if a.startswith("--temp-dir=")), "")


def shared_head(
    state: Path, config: dict[str, Any], registry: HeadRegistry, timeout: float = 180.0
) -> str:
    """The address of a cluster's managed head, recorded in the shared store: one per cluster.

    A live record is used as it is (waiting while its owner starts the head); with
    none, or once its owner's lease ran out, this process claims it: it takes over
    the head if that still answers, else starts one, and renews the lease while
    it runs. ``state`` names the head in this process and this home.
    """
    key = str(state)
    _registries[key] = registry
    here = host_id(registry.advertise_host)
    deadline = time.monotonic() + timeout
    with _key_lock(key):
        while True:
            with _heads_lock:
                entry = _heads.get(key)
            if entry is not None and entry.head.running():
                return entry.head.address
            record = registry.read()
            now = time.time() * 1000
            if (
                record is not None
                and record.lease_expires_at > now
                and record.owner != registry.owner
            ):
                if record.address:
                    if _usable(record, here):
                        return record.address
                    raise Unavailable(
                        f"The managed Ray head runs on another machine ({record.host}) at a "
                        f"loopback address ({record.address}); set CUMULO_ADVERTISE_HOST on the "
                        "servers so that their heads are reachable."
                    )
            elif registry.claim():
                return _own(state, config, registry, record, here)
            if time.monotonic() > deadline:
                raise Unavailable(f"The managed Ray head did not come up within {timeout:.0f}s.")
            time.sleep(0.3)  # another process is starting the head, or just claimed it


def _own(
    state: Path,
    config: dict[str, Any],
    registry: HeadRegistry,
    record: HeadRecord | None,
    here: str,
) -> str:
    """Run the head as its owner: take over the recorded one if it still answers, else start one."""
    key = str(state)
    head = ManagedRayHead(
        config.get("num_cpus"), config.get("num_gpus"), host=registry.advertise_host
    )
    entry = _Managed(head, registry)
    entry.renew_in_background(key)  # the lease is kept while the head starts
    try:
        if record and record.address and _usable(record, here) and _answers(record.address):
            head.address, head.pid, head.start_ticks = record.address, record.pid, record.start
            head.host, head.local = record.host, record.host == here
            head.temp = _temp_dir(record.pid) if head.local else ""
        else:
            head.start()
            head.host = here
        if not registry.publish(head.address, head.host, head.pid, head.start_ticks):
            raise Unavailable("Another process took over the managed Ray head as it started.")
    except BaseException:
        entry.stop_renewing()
        with contextlib.suppress(Exception):
            registry.release()
        if head.proc is not None:
            head.stop()
        raise
    if head.proc is not None:
        _remember(state, head)
    with _heads_lock:
        _heads[key] = entry
    return head.address


def _remember(state: Path, head: ManagedRayHead) -> None:
    """Note the head this home started (its processes are this host's to stop)."""
    state.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "address": head.address,
        "pid": head.pid,
        "start": head.start_ticks,
        "temp": head.temp,
    }
    state.write_text(json.dumps(record))


def _key_lock(key: str) -> threading.Lock:
    with _heads_lock:
        return _key_locks.setdefault(key, threading.Lock())


def leave_head(home: Path, key: str) -> None:
    """Stop renewing the lease of target ``key``'s head here; the head goes on, and
    another process takes it over once the lease runs out."""
    state = str(home / "ray" / f"{key}.json")
    with _heads_lock:
        entry = _heads.get(state)
        if entry is None or entry.registry is None:
            return
        del _heads[state]
    entry.stop_renewing()


def stop_managed_head(home: Path, key: str) -> bool:
    """Stop the managed head of target ``key`` (``<workspace>-<target>``), if it runs.

    Its record in the shared store goes too: an owner elsewhere then stops its head.
    """
    state = home / "ray" / f"{key}.json"
    with _heads_lock:
        entry = _heads.pop(str(state), None)
        registry = _registries.pop(str(state), None)
    head = None
    if entry is not None:
        entry.stop_renewing()
        head = entry.head
        registry = entry.registry or registry
    saved = processes.read_json(state)
    if head is None and saved and processes.alive(int(saved["pid"]), saved.get("start")):
        head = ManagedRayHead()
        head.pid, head.temp, head.address = saved["pid"], saved["temp"], saved["address"]
    if registry is not None:
        with contextlib.suppress(Exception):
            registry.release(any_owner=True)
    state.unlink(missing_ok=True)
    if head is None:
        return False
    head.stop()
    return True


def stop_managed_heads() -> None:
    with _heads_lock:
        entries = list(_heads.values())
        _heads.clear()
    for entry in entries:
        entry.stop_renewing()
        if entry.registry is not None:
            with contextlib.suppress(Exception):
                entry.registry.release()
        entry.head.stop()


def parse_config(config: dict[str, Any]) -> dict[str, Any]:
    address, managed = config.get("address"), bool(config.get("managed", False))
    if managed == bool(address):
        raise InvalidInput(
            "A Ray target needs either address='http://HEAD:8265' (an existing cluster) "
            "or managed=True (a local head started for the workspace)."
        )
    if address is not None and (
        not isinstance(address, str) or not address.startswith(("http://", "https://"))
    ):
        raise InvalidInput(
            f"Ray address must be the dashboard URL, e.g. http://127.0.0.1:8265; got {address!r}."
        )
    out: dict[str, Any] = {"address": address, "managed": managed}
    for key in ("num_cpus", "num_gpus"):
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidInput(f"{key} must be an integer, got {value!r}.")
        out[key] = value
    if config.get("token") is not None:
        out["token"] = str(config["token"])
    return out


def _on_delete(config: dict[str, Any], home: Path, key: str) -> None:
    if config.get("managed"):
        stop_managed_head(home, key)


def _capacity(config: dict[str, Any], settings: Settings) -> Capacity:
    """A managed head's declared GPUs and CPUs; an existing cluster's are Ray's to know
    (a job asking more than it has waits in Ray's queue)."""
    if not config.get("managed"):
        return Capacity()
    return Capacity(gpus=config.get("num_gpus"), cpus=config.get("num_cpus"))


TARGET = TargetType(
    kind="ray",
    backend=RayBackend,
    parse_config=parse_config,
    remote_agent=True,
    keeps_head=True,
    serves_deployments=True,
    on_delete=_on_delete,
    capacity=_capacity,
)


__all__ = [
    "JOB_FOLDER",
    "TARGET",
    "ManagedRayHead",
    "RayBackend",
    "head_environment",
    "leave_head",
    "parse_config",
    "shared_head",
    "stop_managed_head",
    "stop_managed_heads",
]
