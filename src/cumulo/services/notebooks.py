"""JupyterLab in a folder whose notebooks find their workspace.

Two ways in, one launch: ``cumulo notebook`` starts JupyterLab in the foreground
in a folder of the user's, and the server starts one JupyterLab per workspace
as a child process of its own (``NotebookService``, the studio's "Open
Notebooks" button and ``/api/v1/workspaces/{ws}/notebooks``). Both check for
JupyterLab and build its command line here (``jupyterlab_installed``,
``missing_message``, ``jupyterlab_argv``).

A workspace's notebook server, as the server starts it:

- its folder is ``<home>/notebooks/<workspace>``, holding
  ``.cumulo/config.json`` with this server's URL and the workspace's name, so
  ``Workspace.from_config()`` in a notebook there opens the workspace through
  the server. With token auth on, the file also holds a token made for it: a
  contributor token of that workspace alone, revoked when the notebook server
  stops and replaced when it is opened past half the token's 30 days (never
  the caller's own token). The file and its folder are readable by the
  server's user only;
- it listens on the server's advertise host (loopback by default) on a free
  port, opens no browser, and takes a random Jupyter token (handed over in its
  environment, not on its command line, where other users could read it);
- its record (``<home>/notebooks/.servers/<workspace>.json``, the server's
  user only) lets every worker of the server find and reuse it; opening is
  serialised per workspace by a lock file beside it;
- the server stops those it started when it stops, and any of them when asked;
  one left running by a server that was killed (its record names a server
  process that no longer runs) is taken over by the server that reuses it, and
  stopped by the next server that stops.

JupyterLab and its kernels run as the server's user, as jobs on the local
target do: whoever may change a workspace may run code there either way.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from cumulo.core import validation
from cumulo.core.entities import now_ms
from cumulo.core.errors import InvalidState
from cumulo.core.settings import CONFIG_DIR, CONFIG_FILE
from cumulo.services.auth import AuthService
from cumulo.services.tracking import TrackingService

INSTALL_HINT = "pip install jupyterlab"  # or cumulo[notebook], which pins it
# The token a notebook server's config holds: revoked at stop, and replaced by a fresh one
# when the server is opened past half its lifetime (a notebook server may run for months).
TOKEN_ROLE = "contributor"
TOKEN_SECONDS = 30 * 86400
STOP_SECONDS = 10.0  # how long JupyterLab has to shut its kernels down before it is killed
LOG_TAIL = 2000  # characters of JupyterLab's log a failed start reports

STARTING, RUNNING, FAILED, STOPPED = "starting", "running", "failed", "stopped"


def jupyterlab_installed() -> bool:
    return importlib.util.find_spec("jupyterlab") is not None


def missing_message(where: str = "here") -> str:
    return (
        f"JupyterLab is not installed {where}: `{INSTALL_HINT}` (or `pip install "
        "'cumulo[notebook]'`), then try again."
    )


def jupyterlab_argv(
    folder: Path, *, port: int | None = None, ip: str | None = None, browser: bool = True
) -> list[str]:
    """The command that starts JupyterLab on ``folder`` with this interpreter.

    Its kernels run this interpreter too, so ``import cumulo`` works in them.
    """
    argv = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={folder.resolve()}"]
    if ip is not None:
        argv.append(f"--ip={ip}")
    if port is not None:
        argv += [f"--port={port}", "--port-retries=0"]
    if not browser:
        argv.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")  # JupyterLab refuses root without it (containers, CI)
    return argv


def write_config(folder: Path, config: dict[str, Any]) -> Path:
    """Write ``<folder>/.cumulo/config.json``, readable by this user only (it may hold a token)."""
    directory = folder / CONFIG_DIR
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    file = directory / CONFIG_FILE
    descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        os.fchmod(out.fileno(), 0o600)  # a file written before, with wider rights
        out.write(json.dumps(config, indent=2) + "\n")
    return file


@dataclass(frozen=True)
class NotebookServer:
    """A workspace's notebook server as its callers see it."""

    workspace: str
    status: str  # starting | running | failed | stopped
    url: str | None = None  # JupyterLab in a browser, its token included
    folder: str | None = None
    started_at: int | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "status": self.status,
            "url": self.url,
            "folder": self.folder,
            "started_at": self.started_at,
            "message": self.message,
        }


@dataclass
class _Record:
    """What the server keeps about a notebook server it started (in its record file)."""

    pid: int
    created: float  # the process's start time: a reused pid is not taken for it
    host: str
    port: int
    jupyter_token: str
    started_at: int
    token_id: str | None = None
    token_expires_at: int | None = None
    ended: bool = False
    # The server process that started (or took over) it, and that process's start time.
    owner: int = 0
    owner_created: float = 0.0

    @property
    def base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class NotebookService:
    """One JupyterLab per workspace, started by this server and stopped with it."""

    def __init__(self, home: Path, tracking: TrackingService, auth: AuthService) -> None:
        self.tracking = tracking
        self.auth = auth
        self.root = home / "notebooks"
        self._records = self.root / ".servers"
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._adopted: set[str] = set()  # those taken over from a server that is gone
        self._guard = threading.Lock()
        self.token_seconds = TOKEN_SECONDS

    @property
    def installed(self) -> bool:
        return jupyterlab_installed()

    def folder(self, workspace: str) -> Path:
        return self.root / validation.workspace_name(workspace)

    # ------------------------------------------------------------- opening
    def open(
        self, workspace: str, server_url: str, *, with_token: bool, host: str | None = None
    ) -> NotebookServer:
        """The workspace's notebook server, started unless one runs (it may still be starting).

        ``server_url`` is where its notebooks reach this server; ``with_token``: the server
        checks tokens, so the notebooks get one of their own; ``host``: the address
        JupyterLab listens on and browsers reach it at (default: loopback).
        """
        self.tracking.get_workspace(workspace)  # NotFound names how to create it
        if not self.installed:
            raise InvalidState(missing_message("on this server"))
        with self._locked(workspace):
            record = self._read(workspace)
            if record is not None and not record.ended and self._alive(record):
                if not _running(record.owner, record.owner_created):
                    self._adopt(workspace, record)
                self._refresh(workspace, record, server_url, with_token)
                return self._describe(workspace, record)
            if record is not None:
                self._end(workspace, record)
            return self._describe(
                workspace, self._start(workspace, server_url, with_token, host or "127.0.0.1")
            )

    def _start(self, workspace: str, server_url: str, with_token: bool, host: str) -> _Record:
        folder = self.folder(workspace)
        folder.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {"workspace": workspace, "url": server_url.rstrip("/")}
        token_id = expires_at = None
        if with_token:
            config["token"], token_id, expires_at = self._new_token(workspace)
        write_config(folder, config)
        jupyter_token = secrets.token_urlsafe(32)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUMULO_")}
        env["JUPYTER_TOKEN"] = jupyter_token
        self._records.mkdir(parents=True, exist_ok=True)
        self._records.chmod(0o700)
        port = _free_port(host)
        try:
            log = os.open(self._log(workspace), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(log, "wb") as out:
                proc = subprocess.Popen(
                    jupyterlab_argv(folder, port=port, ip=host, browser=False),
                    cwd=folder,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # the server's Ctrl-C is not JupyterLab's
                )
        except BaseException:
            if token_id is not None:
                self.auth.revoke_token(token_id)
            raise
        created = 0.0  # a process gone at once counts as exited
        with contextlib.suppress(psutil.Error):
            created = psutil.Process(proc.pid).create_time()
        record = _Record(
            pid=proc.pid,
            created=created,
            host=host,
            port=port,
            jupyter_token=jupyter_token,
            started_at=now_ms(),
            token_id=token_id,
            token_expires_at=expires_at,
            owner=os.getpid(),
            owner_created=_own_start(),
        )
        with self._guard:
            self._children[workspace] = proc
        self._write(workspace, record)
        return record

    def _adopt(self, workspace: str, record: _Record) -> None:
        """Take over a notebook server whose server is gone: this one stops it when it stops."""
        record.owner, record.owner_created = os.getpid(), _own_start()
        self._write(workspace, record)
        with self._guard:
            self._adopted.add(workspace)

    def _new_token(self, workspace: str) -> tuple[str, str, int | None]:
        info, token = self.auth.create_token(
            workspace,
            TOKEN_ROLE,
            f"notebooks of workspace {workspace}",
            expires_in_seconds=self.token_seconds,
        )
        return token, info.id, info.expires_at

    def _refresh(self, workspace: str, record: _Record, server_url: str, with_token: bool) -> None:
        """Keep a running notebook server's config current: this server's URL, and a fresh
        token once the old one is past half its lifetime (the old one is then revoked)."""
        file = self.folder(workspace) / CONFIG_DIR / CONFIG_FILE
        try:
            config = json.loads(file.read_text())
        except (OSError, ValueError):
            config = {"workspace": workspace}
        wanted = {**config, "url": server_url.rstrip("/")}
        old = record.token_id
        ends = record.token_expires_at
        if with_token and (
            old is None or (ends and ends - now_ms() < self.token_seconds * 1000 / 2)
        ):
            wanted["token"], record.token_id, record.token_expires_at = self._new_token(workspace)
        if wanted == config:
            return
        write_config(self.folder(workspace), wanted)
        self._write(workspace, record)
        if old is not None and record.token_id != old:
            self.auth.revoke_token(old)

    def wait(self, workspace: str, timeout: float) -> NotebookServer:
        """The notebook server once it answers, or as it is after ``timeout`` seconds.

        Raises ``InvalidState`` with the end of JupyterLab's log when it exited instead.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.status(workspace)
            if found.status == FAILED:
                raise InvalidState(found.message)
            if found.status != STARTING or time.monotonic() >= deadline:
                return found
            time.sleep(0.2)

    # -------------------------------------------------------------- status
    def status(self, workspace: str) -> NotebookServer:
        record = self._read(workspace)
        if record is None:
            return NotebookServer(workspace, STOPPED, folder=str(self.folder(workspace)))
        if not record.ended and not self._alive(record):
            with self._locked(workspace):
                record = self._read(workspace)
                if record is not None and not record.ended and not self._alive(record):
                    self._end(workspace, record, keep=True)
            return self.status(workspace)
        return self._describe(workspace, record)

    def _describe(self, workspace: str, record: _Record) -> NotebookServer:
        folder = str(self.folder(workspace))
        if record.ended:
            return NotebookServer(
                workspace,
                FAILED,
                folder=folder,
                started_at=record.started_at,
                message="JupyterLab exited: " + self._log_tail(workspace),
            )
        answering = _answers(record)
        return NotebookServer(
            workspace,
            RUNNING if answering else STARTING,
            url=f"{record.base}/lab?token={record.jupyter_token}",
            folder=folder,
            started_at=record.started_at,
        )

    # ------------------------------------------------------------ stopping
    def stop(self, workspace: str, *, orphaned: bool = False) -> bool:
        """Stop the workspace's notebook server; False when none ran. With ``orphaned``,
        only one whose owning server process is gone."""
        validation.workspace_name(workspace)
        with self._locked(workspace):
            record = self._read(workspace)
            if record is None:
                return False
            if orphaned and _running(record.owner, record.owner_created):
                return False
            ran = not record.ended and self._alive(record)
            self._end(workspace, record)
            return ran

    def stop_all(self) -> None:
        """Stop every notebook server this process started or took over, and those left
        by a server that is gone (the server's lifespan)."""
        with self._guard:
            started = {*self._children, *self._adopted}
        others = {file.stem for file in self._records.glob("*.json")} - started
        for workspace in sorted(started) + sorted(others):
            with contextlib.suppress(Exception):  # one that fails to stop stops no other
                self.stop(workspace, orphaned=workspace in others)

    def _end(self, workspace: str, record: _Record, keep: bool = False) -> None:
        """Stop the process (its kernels too), revoke its token, forget (or mark) it."""
        with self._guard:
            child = self._children.pop(workspace, None)
            self._adopted.discard(workspace)
        if self._alive(record):
            _terminate(record.pid)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(1)  # reaped: no zombie is left behind
        if record.token_id is not None:
            with contextlib.suppress(Exception):
                self.auth.revoke_token(record.token_id)
            record.token_id = None
        if keep:
            record.ended = True
            self._write(workspace, record)
        else:
            self._record(workspace).unlink(missing_ok=True)

    # -------------------------------------------------------------- files
    def _record(self, workspace: str) -> Path:
        return self._records / f"{validation.workspace_name(workspace)}.json"

    def _log(self, workspace: str) -> Path:
        return self._records / f"{workspace}.log"

    def _log_tail(self, workspace: str) -> str:
        try:
            text = self._log(workspace).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text[-LOG_TAIL:].strip()

    def _read(self, workspace: str) -> _Record | None:
        try:
            data = json.loads(self._record(workspace).read_text())
            return _Record(**data)
        except (OSError, ValueError, TypeError):
            return None

    def _write(self, workspace: str, record: _Record) -> None:
        file = self._record(workspace)
        part = file.with_suffix(".part")
        descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(record.__dict__, out)
        os.replace(part, file)

    @contextlib.contextmanager
    def _locked(self, workspace: str) -> Iterator[None]:
        """One opener or stopper of a workspace's notebook server at a time, across workers."""
        self._records.mkdir(parents=True, exist_ok=True)
        self._records.chmod(0o700)
        lock = self._records / f"{validation.workspace_name(workspace)}.lock"
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _alive(self, record: _Record) -> bool:
        with self._guard:
            for child in self._children.values():
                if child.pid == record.pid and child.poll() is not None:
                    return False  # exited (and reaped just now)
        return _running(record.pid, record.created)


def _running(pid: int, created: float) -> bool:
    """Whether the process ``pid`` that started at ``created`` still runs (not a reused pid)."""
    try:
        process = psutil.Process(pid)
        return bool(
            abs(process.create_time() - created) < 1 and process.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.Error:
        return False


def _own_start() -> float:
    """This process's start time (read here, not at import: a forked worker has its own)."""
    return float(psutil.Process().create_time())


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _answers(record: _Record) -> bool:
    import httpx  # only asking a notebook server: not at a server's start

    try:
        reply = httpx.get(
            f"{record.base}/api/status",
            headers={"Authorization": f"token {record.jupyter_token}"},
            timeout=2,
        )
    except httpx.HTTPError:
        return False
    return reply.status_code == 200


def _terminate(pid: int) -> None:
    """SIGTERM JupyterLab (it shuts its kernels down), then kill whatever of it is left."""
    try:
        process = psutil.Process(pid)
        family = [process, *process.children(recursive=True)]
    except psutil.Error:
        return
    with contextlib.suppress(psutil.Error):
        process.send_signal(signal.SIGTERM)
    _gone, alive = psutil.wait_procs([process], timeout=STOP_SECONDS)
    leftover = [p for p in family if p.is_running()] if alive or len(family) > 1 else []
    for member in leftover:
        with contextlib.suppress(psutil.Error):
            member.kill()
    psutil.wait_procs(leftover, timeout=5)
