"""Warm starts: replicas forked from a process that has already imported the heavy modules.

A new replica spends most of its start importing numpy, pandas, scikit-learn
and uvicorn (about two seconds on two cores), not loading its model. The
supervisor keeps one *preloader* process per interpreter: it imports those
modules once, then forks a replica per request. Once it is ready and idle
it also imports ``mlflow`` (``PRELOAD_LATER``), so that replicas forked after
that load a model or a body off the fast path without importing it. The child runs exactly what
``python -m cumulo.serving.replica SPEC`` runs, in its own session, with its
own log, working folder and environment; it is ready as soon as its model is
loaded. Restarts after a crash and rolling updates get the same benefit.

The preloader talks over its stdin/stdout, one JSON object per line:
``{"spec", "log", "cwd", "env"}`` in; ``{"pid"}`` (or ``{"error"}``) back, and
``{"exited": pid, "code": code}`` when a replica ends. It stops its replicas
and exits when the supervisor goes away (its stdin closes).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

# Imported before any fork; a missing one is simply not preloaded.
PRELOAD = (
    "numpy",
    "pandas",
    "sklearn",
    "sklearn.base",
    "sklearn.linear_model",
    "cloudpickle",
    "yaml",
    "orjson",
    "uvicorn",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.http.h11_impl",
    "uvloop",
    "cumulo.serving.replica",
    "cumulo.serving.mlflow_model",
    "cumulo.serving.entry_script",
)
# Imported once the preloader is ready and has had no request for LATER_AFTER_S:
# MLflow's full path (mlflow_model.py), which a replica needs only for a model or
# a body off the fast path. Importing it before saying ready would hold up the
# first deployment, which waits for the preloader, by about two seconds.
PRELOAD_LATER = ("mlflow.pyfunc.scoring_server", "mlflow.sklearn")
LATER_AFTER_S = 1.0


# ------------------------------------------------------------ the preloader
def _child(request: dict[str, Any]) -> int:
    """In the forked child: become a replica process."""
    os.setsid()
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.chdir(request["cwd"])
    sys.path[0:1] = [request["cwd"]]  # as `python -m` would: the working folder first
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["cumulo.serving.replica", request["spec"]]
    from cumulo.serving.replica import main

    try:
        return main([request["spec"]])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def serve_forks() -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no telemetry thread to fork
    with contextlib.suppress(Exception):
        from cumulo.serving.mlflow_model import import_skops

        import_skops()  # before anything else lists scikit-learn's estimators
    for name in PRELOAD:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    _say({"ready": True})
    later, asked = list(PRELOAD_LATER), time.monotonic()
    children: set[int] = set()
    buffer = b""
    stdin = sys.stdin.buffer.fileno()
    while True:
        readable, _, _ = select.select([stdin], [], [], 0.2)
        if not readable and later and time.monotonic() - asked >= LATER_AFTER_S:
            with contextlib.suppress(Exception):
                importlib.import_module(later.pop(0))
        if readable:
            asked = time.monotonic()
            chunk = os.read(stdin, 65536)
            if not chunk:  # the supervisor is gone: so are its replicas
                for pid in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGTERM)
                return 0
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                try:
                    request = json.loads(line)
                    pid = os.fork()
                except (ValueError, OSError) as exc:
                    _say({"error": repr(exc)})
                    continue
                if pid == 0:
                    os._exit(_child(request))
                children.add(pid)
                _say({"pid": pid})
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            _say({"exited": pid, "code": os.waitstatus_to_exitcode(status)})


# ----------------------------------------------------------- the supervisor
class PreloadedProcess:
    """A replica forked by the preloader; quacks like the ``Popen`` the supervisor uses."""

    def __init__(self, preloader: Preloader, pid: int) -> None:
        self.preloader = preloader
        self.pid = pid

    def poll(self) -> int | None:
        return self.preloader.exit_code(self.pid)

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        done = self.preloader.wait_exit(self.pid, timeout)
        if done is None:
            raise subprocess.TimeoutExpired(f"replica {self.pid}", timeout or 0)
        return done


class Preloader:
    """The supervisor's side: start the preloader, ask it for replicas, hear of their exits."""

    def __init__(self, python: str, env: dict[str, str], thread_env: dict[str, str]) -> None:
        self.python = python
        self.thread_env = thread_env  # what the preloaded math libraries were started with
        self.started = time.monotonic()
        self._proc = subprocess.Popen(
            [python, "-m", "cumulo.serving.preload"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**env, **thread_env},
            start_new_session=True,
        )
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._replies: list[dict[str, Any]] = []
        self._exits: dict[int, int] = {}
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="cumulo-preload", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def _read(self) -> None:
        out: IO[bytes] | None = self._proc.stdout
        assert out is not None
        for line in out:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            with self._changed:
                if "exited" in message:
                    self._exits[int(message["exited"])] = int(message["code"])
                elif "ready" in message:
                    self.ready.set()
                else:
                    self._replies.append(message)
                self._changed.notify_all()
        with self._changed:  # the preloader died: so did every replica it forked
            self._replies.append({"error": "the preloader exited"})
            self._changed.notify_all()

    def spawn(
        self, spec: Path, log: Path, cwd: Path, env: dict[str, str], timeout: float = 30.0
    ) -> PreloadedProcess:
        """Fork a replica; raises OSError when the preloader cannot."""
        request = {"spec": str(spec), "log": str(log), "cwd": str(cwd), "env": env}
        with self._lock:
            stdin = self._proc.stdin
            if stdin is None or not self.alive:
                raise OSError("the preloader is not running")
            stdin.write((json.dumps(request) + "\n").encode())
            stdin.flush()
            with self._changed:
                if not self._changed.wait_for(lambda: bool(self._replies), timeout):
                    raise OSError("the preloader did not answer")
                reply = self._replies.pop(0)
        if "pid" not in reply:
            raise OSError(f"the preloader could not fork: {reply.get('error')}")
        return PreloadedProcess(self, int(reply["pid"]))

    def exit_code(self, pid: int) -> int | None:
        with self._changed:
            if pid in self._exits:
                return self._exits[pid]
        if not self.alive:
            return -9
        return None

    def wait_exit(self, pid: int, timeout: float | None) -> int | None:
        with self._changed:
            self._changed.wait_for(lambda: pid in self._exits or not self.alive, timeout)
        return self.exit_code(pid)

    def stop(self) -> None:
        """Close its stdin: it stops its replicas and exits."""
        with contextlib.suppress(OSError, ValueError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        try:
            self._proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(5)


if __name__ == "__main__":
    sys.exit(serve_forks())
