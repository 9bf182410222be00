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
from cumulo.compute.base import AGENT_MODULE, JOB_FOLDER, Launch, TargetState
from cumulo.core.errors import ConfigError, Unavailable

_ENDED = {"SUCCEEDED", "FAILED", "STOPPED"}
_heads: dict[str, ManagedRayHead] = {}
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

    def __init__(self, config: dict[str, Any], home: Path) -> None:
        self.config = config
        self.home = home
        self._client: Any = None

    # ---------------------------------------------------------------- client
    @property
    def address(self) -> str:
        if self.config.get("address"):
            return str(self.config["address"])
        state = self.home / "ray" / f"{self.config.get('_key', 'managed')}.json"
        head = managed_head(state, self.config)
        return head.address

    def client(self) -> Any:
        if self._client is None:
            js = _job_submission()
            headers = {}
            if self.config.get("token"):
                headers["Authorization"] = f"Bearer {self.config['token']}"
            try:
                self._client = js.JobSubmissionClient(self.address, headers=headers or None)
            except Exception as exc:
                raise Unavailable(
                    f"Cannot reach the Ray cluster at {self.address}: {exc}. Check that its "
                    "dashboard (Jobs API) is up."
                ) from exc
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
        self._client = None

    def _is_loopback(self) -> bool:
        address = self.address
        return "://127." in address or "://localhost" in address


# ------------------------------------------------------------- managed head
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def head_environment() -> dict[str, str]:
    """Settings that keep a local head on loopback, quiet and patient with queued jobs."""
    return {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_JOB_START_TIMEOUT_SECONDS": "86400",
        "AUTOSCALER_METRIC_PORT": str(_free_port()),
        "DASHBOARD_METRIC_PORT": str(_free_port()),
    }


class ManagedRayHead:
    """A single-node Ray head on 127.0.0.1 (``ray start --head --block``), ours to stop."""

    def __init__(self, num_cpus: int | None = None, num_gpus: int | None = None) -> None:
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""
        self.temp = ""
        self.pid = 0

    def start(self, timeout: float = 90.0) -> ManagedRayHead:
        ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
        if not Path(ray_bin).exists():
            raise ConfigError("Ray is not installed: pip install 'cumulo[ray]'.")
        self.temp = tempfile.mkdtemp(prefix="cray", dir="/tmp")  # socket paths must be short
        gcs, dash, client, agent = (_free_port() for _ in range(4))
        argv = [
            ray_bin, "start", "--head", "--block", "--node-ip-address=127.0.0.1",
            f"--port={gcs}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
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
        self.address = f"http://127.0.0.1:{dash}"
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
        elif self.pid and not self.proc:
            processes.end_groups([self.pid], grace=10.0)
        if self.temp:
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
    """The managed head of a target: reused while alive (even across restarts), else started."""
    key = str(state)
    with _heads_lock:
        head = _heads.get(key)
        if head is not None and head.proc is not None and head.proc.poll() is None:
            return head
        saved = processes.read_json(state)
        if saved and processes.alive(int(saved["pid"]), saved.get("start")):
            head = ManagedRayHead(config.get("num_cpus"), config.get("num_gpus"))
            head.address, head.pid, head.temp = saved["address"], saved["pid"], saved["temp"]
            _heads[key] = head
            return head
        head = ManagedRayHead(config.get("num_cpus"), config.get("num_gpus")).start()
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(
            json.dumps(
                {
                    "address": head.address,
                    "pid": head.pid,
                    "start": processes.start_time(head.pid),
                    "temp": head.temp,
                }
            )
        )
        _heads[key] = head
        return head


def stop_managed_head(home: Path, key: str) -> bool:
    """Stop the managed head of target ``key`` (``<workspace>-<target>``), if it runs."""
    state = home / "ray" / f"{key}.json"
    with _heads_lock:
        head = _heads.pop(str(state), None)
    saved = processes.read_json(state)
    if head is None and saved and processes.alive(int(saved["pid"]), saved.get("start")):
        head = ManagedRayHead()
        head.pid, head.temp, head.address = saved["pid"], saved["temp"], saved["address"]
    state.unlink(missing_ok=True)
    if head is None:
        return False
    head.stop()
    return True


def stop_managed_heads() -> None:
    with _heads_lock:
        heads = list(_heads.values())
        _heads.clear()
    for head in heads:
        head.stop()


__all__ = [
    "JOB_FOLDER",
    "ManagedRayHead",
    "RayBackend",
    "head_environment",
    "stop_managed_head",
    "stop_managed_heads",
]
