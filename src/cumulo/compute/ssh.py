"""``ssh``: jobs on a machine of one's own, reached over SSH (paramiko).

What the machine holds, under ``work_dir`` (``~/.cumulo-jobs`` by default)::

    runtime/deps-<hash>/     a virtual environment with cumulo's requirements,
                             made once per (python, requirements) by ``python -m venv``
    runtime/cumulo-<hash>/   this cumulo's own source, copied once per content
    envs/                    the jobs' environments, built and cached there
    slots/<n>.lock           at most ``max_concurrent_jobs`` jobs run at once
    jobs/<submission id>/    a job's folder: its snapshot and ``.cumulo_job``, removed
                             a week after the job ended

A job's folder (snapshot and spec, prepared by the scheduler) is copied over
with the agent's variables (a file only its user reads), and a supervisor
starts there, detached from the SSH session. It waits for a free slot (shared
by every server that submits to the machine), then runs the job's agent in a
process group of its own. The agent builds the job's environment on the
machine, runs the script and reports status, logs and ``./outputs`` to the
workspace's server over HTTP, with the job's own token: the machine must reach
the server's address (``CUMULO_PUBLIC_URL``).

Each status check renews a heartbeat file in the job's folder. When none came
for ``lost_after_seconds`` (the machine lost the server) the supervisor ends
the job's process groups; the server counts the job lost when it could not
reach the machine for as long, so both sides agree and no job runs on unseen.
Cancel sends SIGTERM to the agent's group (it stops the script, uploads
``./outputs`` and records ``Canceled``); a forced cancel kills both groups.

On attach the machine's runtime is made and its GPUs are counted there
(``find_gpus``); the count is kept in the target's config and is what a job
may ask for at most (``capacity``).

Secrets: the private key and password are stored encrypted (Fernet: AES-128-CBC
with HMAC-SHA256) under a key kept in the server's home (``secret.key``, mode
0600), and the API shows them as ``"***"``. The machine's host key is pinned on
first contact in ``<home>/ssh/known_hosts`` unless ``host_key`` gives it; a
different key later is refused.

The same module runs on the machine as the supervisor (``python -m
cumulo.compute.ssh supervise ...``), where only cumulo's base requirements are
installed: paramiko and cryptography are imported where they are used.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cumulo.compute import processes, secrets
from cumulo.compute.base import (
    AGENT_MODULE,
    JOB_FOLDER,
    Capacity,
    HeadRegistry,
    Launch,
    TargetState,
    TargetType,
)
from cumulo.core.errors import ConfigError, CumuloError, InvalidInput, Unavailable
from cumulo.core.jobs import SEALED
from cumulo.core.settings import Settings

log = logging.getLogger("cumulo.compute")

KIND = "ssh"
SECRET_FIELDS = ("private_key", "password")
DEFAULTS: dict[str, Any] = {
    "port": 22,
    "python": "python3",
    "work_dir": "~/.cumulo-jobs",
    "max_concurrent_jobs": 1,
    "lost_after_seconds": 60.0,
}
CONNECT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 60.0
# A status check runs in the scheduler's watch pass, beside every other job's: it is
# kept short, and a machine that did not answer is tried again only after a pause.
STATUS_TIMEOUT_S = 10.0
RECONNECT_PAUSE_S = 5.0
RUNTIME_TIMEOUT_S = 1800.0  # installing cumulo's requirements on a fresh machine
KEEP_ENDED_S = 7 * 86400  # a job's folder stays on the machine this long after it ended
# The agent's variables that name this machine's store: the remote agent reports over HTTP.
_LOCAL_VARS = (
    "CUMULO_HOME",
    "CUMULO_DATABASE_URL",
    "CUMULO_ARTIFACT_ROOT",
    "CUMULO_S3_ENDPOINT_URL",
    "CUMULO_ENV_CACHE",
)


# ------------------------------------------------------------------ config
def parse_config(config: dict[str, Any]) -> dict[str, Any]:
    """The settings checked, defaults filled in.

    ``private_key`` is the key's text (``SshMachine`` reads its ``key_file``);
    ``seal`` then encrypts it, and ``password``, before they are stored.
    """
    cfg = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    unknown = set(cfg) - {*DEFAULTS, "host", "user", "host_key", *SECRET_FIELDS}
    if unknown:
        raise InvalidInput(f"Unknown settings for an SSH machine: {sorted(unknown)}.")
    for key in ("host", "user", "python", "work_dir"):
        if not isinstance(cfg.get(key), str) or not cfg[key].strip():
            raise InvalidInput(f"An SSH machine needs {key} (a non-empty string).")
    port = cfg["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidInput(f"port must be an integer from 1 to 65535, got {port!r}.")
    slots = cfg["max_concurrent_jobs"]
    if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= 1024:
        raise InvalidInput(f"max_concurrent_jobs must be an integer from 1 to 1024, got {slots!r}.")
    lost = cfg["lost_after_seconds"]
    if isinstance(lost, bool) or not isinstance(lost, int | float) or lost <= 0:
        raise InvalidInput(f"lost_after_seconds must be a number > 0, got {lost!r}.")
    cfg["lost_after_seconds"] = float(lost)
    if cfg.get("host_key") is not None and len(str(cfg["host_key"]).split()) < 2:
        raise InvalidInput("host_key must read like 'ssh-ed25519 AAAA...' (type and key).")
    if not cfg.get("private_key") and not cfg.get("password"):
        raise InvalidInput("An SSH machine needs a private key (key_file=...) or a password.")
    for key in SECRET_FIELDS:
        value = cfg.get(key)
        if value is not None and (not isinstance(value, str) or value.startswith(SEALED)):
            raise InvalidInput(f"{key} must be given as plain text (it is stored encrypted).")
    if cfg.get("private_key"):
        _load_key(cfg["private_key"], cfg.get("password"))  # refuse a key that cannot be used
    return cfg


def seal_config(config: dict[str, Any], home: Path) -> dict[str, Any]:
    """``config`` with its secrets encrypted under the server's key (``<home>/secret.key``)."""
    return {
        k: secrets.seal(v, home) if k in SECRET_FIELDS and isinstance(v, str) else v
        for k, v in config.items()
    }


# ----------------------------------------------------------------- secrets
def _paramiko() -> Any:
    try:
        import paramiko  # the server's side only (see the docstring)
    except ImportError as exc:
        raise ConfigError("SSH machines need paramiko: pip install 'cumulo[ssh]'.") from exc
    return paramiko


def unseal(value: str, home: Path) -> str:
    return secrets.unseal(value, home, "the SSH machine's secrets")


def _load_key(text: str, password: str | None) -> Any:
    paramiko = _paramiko()
    errors = []
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text), password)
        except paramiko.PasswordRequiredException:
            raise InvalidInput("The private key is encrypted: give its password.") from None
        except (paramiko.SSHException, ValueError) as exc:
            errors.append(f"{cls.__name__}: {exc}")
    raise InvalidInput("The private key could not be read (" + "; ".join(errors) + ").")


# ----------------------------------------------------------------- runtime
def _requirements() -> list[str]:
    """cumulo's own requirements (no extras), installed on the machine as here."""
    try:
        reqs = importlib.metadata.requires("cumulo") or []
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError("cumulo is not installed (pip install cumulo); its requirements "
                          "are what an SSH machine installs.") from None  # fmt: skip
    return [r for r in reqs if "extra ==" not in r]


@functools.cache
def _source() -> tuple[str, bytes]:
    """This cumulo's package as a tar archive, and the hash of its content."""
    root = Path(__file__).resolve().parents[1]  # the cumulo package
    files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in files:
            name = "cumulo/" + path.relative_to(root).as_posix()
            data = path.read_bytes()
            digest.update(name.encode() + b"\0" + data + b"\0")
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return digest.hexdigest()[:16], buffer.getvalue()


# Run by the machine's python with the runtime folder, its source archive and
# the requirements as arguments: makes the runtime once, under a lock.
_BOOTSTRAP = """\
import fcntl, os, subprocess, sys, tarfile
runtime, deps, source, archive = sys.argv[1:5]
reqs = sys.argv[5:]
os.makedirs(runtime, exist_ok=True)
with open(os.path.join(runtime, ".lock"), "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not os.path.exists(os.path.join(deps, ".ready")):
        print("Installing cumulo's requirements on the machine (once).", flush=True)
        subprocess.run([sys.executable, "-m", "venv", deps], check=True)
        py = os.path.join(deps, "bin", "python")
        subprocess.run([py, "-m", "pip", "install", "--disable-pip-version-check",
                        "--no-input", "--progress-bar", "off", "-q", *reqs], check=True)
        open(os.path.join(deps, ".ready"), "w").close()
    if not os.path.exists(os.path.join(source, ".ready")):
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
                tar.extractall(source, filter="data")
            else:
                tar.extractall(source)
        open(os.path.join(source, ".ready"), "w").close()
    if os.path.exists(archive):
        os.remove(archive)
"""


@dataclass(frozen=True)
class _Runtime:
    """Where cumulo lives on the machine: its folder, interpreter and source."""

    work: str
    python: str
    pythonpath: str


# ------------------------------------------------------------------ backend
class SshBackend:
    """Runs each job on the machine under a supervisor; one SSH connection, reused."""

    kind = KIND

    def __init__(
        self, config: dict[str, Any], home: Path, heads: HeadRegistry | None = None
    ) -> None:
        self.config = {**DEFAULTS, **config}
        self.home = home
        self.lost_after = float(self.config["lost_after_seconds"])
        self._client: Any = None
        self._runtime: _Runtime | None = None
        self._lock = threading.Lock()
        self._runtime_lock = threading.Lock()
        self._unreachable: dict[str, float] = {}  # job folder -> when checks began to fail
        self._failed: tuple[float, str] | None = None  # the last failed connect: when, why

    @property
    def destination(self) -> str:
        return f"{self.config['user']}@{self.config['host']}:{self.config['port']}"

    # ------------------------------------------------------------ interface
    def submit(self, launch: Launch) -> dict[str, Any]:
        if not launch.env.get("CUMULO_URL"):
            raise ConfigError(
                "A job on an SSH machine reports to the workspace's server over HTTP: "
                "run `cumulo server` (its address, CUMULO_PUBLIC_URL, reachable from the "
                "machine) and submit through it."
            )
        self._reach()
        runtime = self.runtime()
        job = f"{runtime.work}/jobs/{launch.submission_id}"
        env = {k: v for k, v in launch.env.items() if k not in _LOCAL_VARS}
        env.update(CUMULO_ENV_CACHE=f"{runtime.work}/envs", PYTHONPATH=runtime.pythonpath)
        archive = f"{job}.tar"
        self._put(archive, _pack(launch.workdir))
        q = shlex.quote
        folder = f"{job}/{JOB_FOLDER}"
        command = (
            f"set -e; rm -rf {q(job)}; mkdir -p {q(job)}; tar -xf {q(archive)} -C {q(job)}; "
            f"rm -f {q(archive)}; umask 077; cat > {q(folder)}/env.json; "
            f"cd {q(job)}; PYTHONPATH={q(runtime.pythonpath)} nohup {q(runtime.python)} "
            f"-m cumulo.compute.ssh supervise {q(job)} {q(runtime.work + '/slots')} "
            f"{int(self.config['max_concurrent_jobs'])} {self.lost_after} "
            f"</dev/null >{q(folder)}/supervisor.log 2>&1 & echo $!"
        )
        out = self._run(command, stdin=json.dumps(env).encode())
        return {
            "machine": self.destination,
            "job_dir": job,
            "pid": int(out.split()[-1]),
            "submission_id": launch.submission_id,
            "python": runtime.python,
            "pythonpath": runtime.pythonpath,
        }

    def status(self, handle: dict[str, Any]) -> TargetState:
        q = shlex.quote
        job, pid = handle["job_dir"], int(handle["pid"])
        folder = f"{job}/{JOB_FOLDER}"
        command = (
            f"touch {q(folder)}/heartbeat 2>/dev/null; "
            f"if [ -f {q(folder)}/exit.json ]; then cat {q(folder)}/exit.json; "
            f"elif [ -d /proc/self ]; then grep -aqF -- {q(job)} /proc/{pid}/cmdline 2>/dev/null "
            f"&& echo running || echo gone; "
            f"elif kill -0 {pid} 2>/dev/null; then echo running; else echo gone; fi"
        )
        try:
            out = self._run(command, timeout=STATUS_TIMEOUT_S).strip()
        except Unavailable as exc:
            first = self._unreachable.setdefault(job, time.monotonic())
            if time.monotonic() - first < self.lost_after:
                raise
            return TargetState(
                "unknown",
                None,
                f"the SSH connection to {self.destination} was lost for more than "
                f"{self.lost_after:g}s ({exc.message}); the machine stops the job itself",
            )
        self._unreachable.pop(job, None)
        if out == "running":
            return TargetState("running")
        if out == "gone":
            return TargetState(
                "unknown", None, f"the job's supervisor on {self.destination} is gone"
            )
        try:
            ended = json.loads(out)
        except ValueError:
            return TargetState("unknown", None, f"{self.destination} answered {out[:200]!r}")
        code = ended.get("code")
        return TargetState("ended", code, ended.get("message") or "the job's agent finished")

    def logs(self, handle: dict[str, Any]) -> str:
        q = shlex.quote
        try:
            return self._run(f"cat {q(handle['job_dir'] + '/' + JOB_FOLDER)}/agent.log")
        except Unavailable:
            return ""

    def cancel(self, handle: dict[str, Any], force: bool = False) -> None:
        q = shlex.quote
        pythonpath, python = handle["pythonpath"], handle["python"]
        self._run(
            f"PYTHONPATH={q(pythonpath)} {q(python)} -m cumulo.compute.ssh cancel "
            f"{q(handle['job_dir'])} {int(handle['pid'])} {'force' if force else 'term'}"
        )

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _reach(self) -> None:
        """Connect, waiting up to ``lost_after_seconds`` for a machine that is away a moment."""
        deadline = time.monotonic() + self.lost_after
        while True:
            with self._lock:
                self._failed = None  # here each second, not after the status checks' pause
            try:
                self._connected()
                return
            except Unavailable:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(1.0)

    # ------------------------------------------------------------ runtime
    def runtime(self) -> _Runtime:
        """Make sure the machine has this cumulo and its requirements (once per version)."""
        with self._runtime_lock:
            if self._runtime is not None:
                return self._runtime
            work = self.config["work_dir"]
            if work == "~" or work.startswith("~/"):
                work = self._run("cd && pwd").strip() + work[1:]
            python = self.config["python"]
            reqs = _requirements()
            tag = self._run(
                f"{shlex.quote(python)} -c 'import sys; print(sys.version.split()[0])'"
            ).strip()
            deps_key = hashlib.sha256("\n".join([tag, *reqs]).encode()).hexdigest()[:16]
            source_key, archive = _source()
            deps = f"{work}/runtime/deps-{deps_key}"
            source = f"{work}/runtime/cumulo-{source_key}"
            q = shlex.quote
            ready = self._run(
                f"mkdir -p {q(work)}/runtime {q(work)}/jobs && test -f {q(deps)}/.ready "
                f"&& test -f {q(source)}/.ready && echo ready || true"
            )
            if ready.strip() != "ready":
                upload = f"{work}/runtime/cumulo-{source_key}.{uuid.uuid4().hex[:8]}.tar"
                self._put(upload, archive)
                args = " ".join(q(a) for a in (f"{work}/runtime", deps, source, upload, *reqs))
                self._run(
                    f"{q(python)} - {args}", stdin=_BOOTSTRAP.encode(), timeout=RUNTIME_TIMEOUT_S
                )
            self._runtime = _Runtime(work, f"{deps}/bin/python", source)
            return self._runtime

    # ---------------------------------------------------------- transport
    def _connected(self) -> Any:
        paramiko = _paramiko()
        with self._lock:
            client = self._client
            transport = client.get_transport() if client is not None else None
            if transport is not None and transport.is_active():
                return client
            if client is not None:
                client.close()
            self._client = None
            if self._failed and time.monotonic() - self._failed[0] < RECONNECT_PAUSE_S:
                raise Unavailable(self._failed[1])
            cfg = self.config
            password = unseal(cfg["password"], self.home) if cfg.get("password") else None
            key = (
                _load_key(unseal(cfg["private_key"], self.home), password)
                if cfg.get("private_key")
                else None
            )
            client = paramiko.SSHClient()
            known = self.home / "ssh" / "known_hosts"
            if cfg.get("host_key"):
                client.set_missing_host_key_policy(_Pinned(str(cfg["host_key"])))
            else:
                known.parent.mkdir(parents=True, exist_ok=True)
                known.touch(exist_ok=True)
                client.load_host_keys(str(known))
                client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            try:
                client.connect(
                    cfg["host"],
                    port=int(cfg["port"]),
                    username=cfg["user"],
                    pkey=key,
                    password=password if key is None else None,
                    timeout=CONNECT_TIMEOUT_S,
                    banner_timeout=CONNECT_TIMEOUT_S,
                    auth_timeout=CONNECT_TIMEOUT_S,
                    allow_agent=False,
                    look_for_keys=False,
                )
            except paramiko.BadHostKeyException as exc:
                client.close()
                raise ConfigError(
                    f"{self.destination} presented another host key than the one recorded "
                    f"({exc}); if the machine was rebuilt, remove its line from {known}."
                ) from exc
            except paramiko.AuthenticationException as exc:
                client.close()
                raise ConfigError(f"{self.destination} refused the key: {exc}") from exc
            except (paramiko.SSHException, OSError) as exc:
                client.close()
                message = f"cannot connect to {self.destination}: {exc}"
                self._failed = (time.monotonic(), message)
                raise Unavailable(message) from exc
            self._failed = None
            if not cfg.get("host_key"):
                with contextlib.suppress(OSError):
                    client.save_host_keys(str(known))
            transport = client.get_transport()
            if transport is not None:
                transport.set_keepalive(15)
            self._client = client
            return client

    def _run(
        self, command: str, stdin: bytes | None = None, timeout: float = COMMAND_TIMEOUT_S
    ) -> str:
        """Run ``command`` on the machine; its output (stdout and stderr together)."""
        paramiko = _paramiko()
        client = self._connected()
        try:
            channel = client.get_transport().open_session(timeout=CONNECT_TIMEOUT_S)
            channel.settimeout(timeout)
            channel.set_combine_stderr(True)
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            chunks = []
            while True:
                data = channel.recv(65536)
                if not data:
                    break
                chunks.append(data)
            code = channel.recv_exit_status()
            channel.close()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._drop()
            raise Unavailable(f"the SSH connection to {self.destination} failed: {exc}") from exc
        out = b"".join(chunks).decode(errors="replace")
        if code != 0:
            raise Unavailable(
                f"a command on {self.destination} failed with code {code}: {out[-2000:].strip()}"
            )
        return out

    def _put(self, path: str, data: bytes) -> None:
        paramiko = _paramiko()
        client = self._connected()
        try:
            with client.open_sftp() as sftp:
                with sftp.open(path, "wb") as fh:
                    fh.set_pipelined(True)
                    fh.write(data)
                sftp.chmod(path, 0o600)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._drop()
            raise Unavailable(f"copying to {self.destination}:{path} failed: {exc}") from exc

    def _drop(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


class _Pinned:
    """A host key policy that accepts exactly the key given in the config."""

    def __init__(self, expected: str) -> None:
        self.expected = expected.split()

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        paramiko = _paramiko()
        given = [key.get_name(), key.get_base64()]
        if self.expected[:2] != given:
            raise paramiko.BadHostKeyException(hostname, key, key)


def _pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname=".")
    return buffer.getvalue()


# ------------------------------------------------------- on the machine
def supervise(job: Path, slots: Path, max_jobs: int, lost_after: float) -> int:
    """Wait for a slot, run the job's agent, end it when the server stops checking on it."""
    with contextlib.suppress(OSError):
        os.setsid()  # out of the SSH session's process group
    folder = job / JOB_FOLDER
    heartbeat = folder / "heartbeat"
    heartbeat.touch()
    _prune(job.parent)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    env = json.loads((folder / "env.json").read_text())
    slot = _take_slot(slots, max_jobs, heartbeat, lost_after, stop)
    if slot is None:
        why = "it was canceled" if stop.is_set() else _stale_message(lost_after)
        return _finish(folder, None, f"the job ended before it started: {why}")
    with open(folder / "agent.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", AGENT_MODULE, "run", str(job)],
            cwd=job,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    (folder / "agent.pid").write_text(str(proc.pid))
    message = ""
    while proc.poll() is None:
        if stop.wait(0.5):
            stop.clear()
            processes.kill_group(proc.pid, signal.SIGTERM)  # the agent stops the script
        if not message and _stale(heartbeat, lost_after):
            # Killed outright: the agent reports nothing, and the server (which lost the
            # machine as long) counts the job lost, retrying it when the job allows.
            message = _stale_message(lost_after)
            _kill_job(folder, proc.pid)
    code = proc.wait()
    slot.close()
    return _finish(folder, code, message or _exit_message(code))


def _prune(jobs: Path) -> None:
    """Remove the folders of jobs that ended more than ``KEEP_ENDED_S`` ago."""
    now = time.time()
    for folder in jobs.iterdir():
        with contextlib.suppress(OSError):
            if now - (folder / JOB_FOLDER / "exit.json").stat().st_mtime > KEEP_ENDED_S:
                shutil.rmtree(folder, ignore_errors=True)


def _take_slot(
    slots: Path, max_jobs: int, heartbeat: Path, lost_after: float, stop: threading.Event
) -> Any:
    import fcntl

    slots.mkdir(parents=True, exist_ok=True)
    while not stop.is_set() and not _stale(heartbeat, lost_after):
        for n in range(max_jobs):
            fh = open(slots / f"{n}.lock", "a")  # noqa: SIM115 (held while the job runs)
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fh
            except BlockingIOError:
                fh.close()
        stop.wait(0.2)
    return None


def _stale(heartbeat: Path, lost_after: float) -> bool:
    try:
        return time.time() - heartbeat.stat().st_mtime > lost_after
    except OSError:
        return True


def _stale_message(lost_after: float) -> str:
    return f"no server checked on it for {lost_after:g}s (the connection was lost)"


def _exit_message(code: int) -> str:
    if code < 0:
        return f"the job's agent was killed by {signal.Signals(-code).name}"
    return f"the job's agent exited with code {code}"


def _kill_job(folder: Path, agent: int) -> None:
    processes.kill_group(agent, signal.SIGKILL)
    child = processes.read_json(folder / "child.json")
    if child and child.get("pgid"):
        processes.kill_group(int(child["pgid"]), signal.SIGKILL)


def _end_job(folder: Path, agent: int) -> None:
    groups = [agent]
    child = processes.read_json(folder / "child.json")
    if child and child.get("pgid"):
        groups.append(int(child["pgid"]))
    processes.end_groups(groups, grace=2.0)


def _finish(folder: Path, code: int | None, message: str) -> int:
    partial = folder / "exit.json.part"
    partial.write_text(json.dumps({"code": code, "message": message}))
    partial.rename(folder / "exit.json")
    return 0


def cancel(job: Path, supervisor: int, force: bool) -> int:
    folder = job / JOB_FOLDER
    try:
        agent = int((folder / "agent.pid").read_text())
    except (OSError, ValueError):  # still waiting for a slot: its supervisor ends it
        processes.kill_group(supervisor, signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisor, signal.SIGTERM)
        return 0
    if force:
        _end_job(folder, agent)
    else:
        processes.kill_group(agent, signal.SIGTERM)
    return 0


# ------------------------------------------------------------------- GPUs
# Run by the machine's cumulo runtime on attach: how many GPUs it offers.
_COUNT_GPUS = "from cumulo.compute.gpus import gpus_here; print(gpus_here())"


def find_gpus(config: dict[str, Any], home: Path) -> dict[str, Any]:
    """``config`` with the GPUs the machine has (``gpus``), asked of it now through its
    runtime (NVML there, or its ``CUMULO_LOCAL_GPUS``). A machine that cannot be
    reached now is attached all the same, declaring nothing."""
    backend = SshBackend(config, home)
    try:
        runtime = backend.runtime()
        q = shlex.quote
        out = backend._run(
            f"PYTHONPATH={q(runtime.pythonpath)} {q(runtime.python)} -c {q(_COUNT_GPUS)}"
        )
        gpus = int(out.strip().splitlines()[-1])
    except (CumuloError, ValueError, IndexError) as exc:
        why = exc.message if isinstance(exc, CumuloError) else repr(exc)
        log.warning("could not count the GPUs of %s: %s", backend.destination, why)
        return config
    finally:
        backend.close()
    return {**config, "gpus": gpus}


def capacity(config: dict[str, Any], settings: Settings) -> Capacity:
    """The GPUs found on attach (nothing declared when they could not be counted)."""
    gpus = config.get("gpus")
    return Capacity(gpus=gpus if isinstance(gpus, int) else None)


TARGET = TargetType(
    kind=KIND,
    backend=SshBackend,
    parse_config=parse_config,
    remote_agent=True,
    seal=seal_config,
    on_attach=find_gpus,
    capacity=capacity,
)


def main(argv: list[str]) -> int:
    if len(argv) == 5 and argv[0] == "supervise":
        return supervise(Path(argv[1]), Path(argv[2]), int(argv[3]), float(argv[4]))
    if len(argv) == 4 and argv[0] == "cancel":
        return cancel(Path(argv[1]), int(argv[2]), argv[3] == "force")
    print("usage: python -m cumulo.compute.ssh supervise|cancel ...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
