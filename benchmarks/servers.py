"""Tracking servers as benchmark subjects: start, time to healthy, memory of the process tree, stop.

Every server runs in a session of its own on loopback, so stopping it stops
every process it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness import BenchError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """One server process tree, started by ``start()`` and always ended by ``stop()``."""

    name: str
    command: list[str]
    workdir: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    health_path: str = "/health"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.workdir / "server.log"

    def start(self, timeout: float = 180) -> float:
        """Launch it and return the seconds until ``GET /health`` answered 200."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")  # noqa: SIM115  (the server writes to it until stopped)
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.command,
            cwd=self.workdir,
            env=self.env or None,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with {self.proc.returncode}; see {self.log_file}"
                )
            if self.healthy():
                return time.perf_counter() - started
            time.sleep(0.02)
        self.stop()
        raise BenchError(
            f"{self.name} did not answer /health in {timeout:.0f} s; see {self.log_file}"
        )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.health_path, timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def memory(self) -> dict[str, int]:
        """RSS and PSS summed over the server's process tree, and how many processes."""
        if self.proc is None:
            return {"rss": 0, "pss": 0, "processes": 0}
        pids = process_tree(self.proc.pid)
        rss = pss = 0
        for pid in pids:
            rss += _status_kib(pid, "VmRSS") * 1024
            pss += _rollup_kib(pid, "Pss") * 1024
        return {"rss": rss, "pss": pss, "processes": len(pids)}

    def settled_memory(self, quiet: float = 3.0, limit: float = 30.0) -> dict[str, int]:
        """Memory once the tree stopped growing for ``quiet`` seconds (workers boot late)."""
        last = self.memory()
        stable_since = time.perf_counter()
        end = stable_since + limit
        while time.perf_counter() < end:
            time.sleep(0.5)
            now = self.memory()
            grew = now["processes"] != last["processes"] or now["rss"] > last["rss"] * 1.02
            if grew:
                stable_since = time.perf_counter()
            last = now
            if time.perf_counter() - stable_since >= quiet:
                break
        return last

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # its own session: the process group has the same id
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        # Workers that outlived their parent are still in the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may hold spaces.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, frontier = [root], [root]
    while frontier:
        frontier = [c for p in frontier for c in children.get(p, [])]
        tree.extend(frontier)
    return tree


def _status_kib(pid: int, key: str) -> int:
    return _field(Path(f"/proc/{pid}/status"), key)


def _rollup_kib(pid: int, key: str) -> int:
    return _field(Path(f"/proc/{pid}/smaps_rollup"), key)


def _field(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
