"""Several "hosts" on one machine: network namespaces on a private bridge, and a balancer.

``HostNetwork`` makes a bridge in the root namespace holding the subnet's ``.1``
address, and one network namespace per host (``.11``, ``.12``, ...) joined to it
by a veth pair. The namespaces get no default route: they reach the root
namespace's ``.1`` and each other, nothing else. Everything is removed on exit.

``RoundRobinProxy`` is a TCP load balancer: each new client connection goes to
the next backend that accepts a connection; a backend that refuses (a killed
server) is skipped.

``shared_postgres`` and ``shared_s3`` start the one database and the one bucket
the hosts share, listening on the root namespace's bridge address too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.postgres import local_postgres

PREFIX = "cmh"  # every namespace and link this module makes starts with it


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def namespaces_unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    probe = f"{PREFIX}-probe-{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace (needs root / CAP_NET_ADMIN): {made.stderr}"
    _ip("netns", "del", probe, check=False)
    bridge = f"{PREFIX}p{os.getpid() % 100000}"
    made = _ip("link", "add", bridge, "type", "bridge", check=False)
    if made.returncode != 0:
        return f"cannot create a bridge: {made.stderr.strip()}"
    _ip("link", "del", bridge, check=False)
    return None


def _subnet_in_use(prefix: str) -> bool:
    return f"inet {prefix}." in _ip("-4", "addr", "show").stdout


@dataclass
class Host:
    name: str  # the namespace
    address: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.name, *argv]


@dataclass
class HostNetwork:
    """A bridge at ``<prefix>.1`` and ``count`` namespaces at ``<prefix>.11``, ``.12``..."""

    count: int
    prefix: str = ""
    hosts: list[Host] = field(default_factory=list)
    bridge: str = ""

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge: where shared services listen."""
        return f"{self.prefix}.1"

    def __enter__(self) -> HostNetwork:
        tag = os.getpid() % 100000
        if not self.prefix:
            # A /24 under 10.213.0.0/16 that no interface here uses yet.
            for third in [7, *range(8, 250)]:
                if not _subnet_in_use(f"10.213.{third}"):
                    self.prefix = f"10.213.{third}"
                    break
        self.bridge = f"{PREFIX}b{tag}"
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in range(1, self.count + 1):
                name, outer = f"{PREFIX}{tag}-{i}", f"{PREFIX}{tag}v{i}"
                host = Host(name, f"{self.prefix}.{10 + i}")
                _ip("netns", "add", name)
                self.hosts.append(host)
                _ip("link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", name)
                _ip("link", "set", outer, "master", self.bridge)
                _ip("link", "set", outer, "up")
                _ip("-n", name, "addr", "add", f"{host.address}/24", "dev", "eth0")
                _ip("-n", name, "link", "set", "eth0", "up")
                _ip("-n", name, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End what still runs in the namespaces, then remove them and the bridge."""
        for host in self.hosts:
            pids = _ip("netns", "pids", host.name, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            _ip("netns", "del", host.name, check=False)  # takes its veth pair with it
        self.hosts = []
        if self.bridge:
            _ip("link", "del", self.bridge, check=False)


# ------------------------------------------------------------------ balancer
class RoundRobinProxy:
    """A TCP round-robin balancer on ``(host, port)``; ``connections[i]`` counts backend i's."""

    def __init__(
        self, backends: Sequence[tuple[str, int]], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.backends = list(backends)
        self.connections = [0] * len(self.backends)
        self.skipped = [0] * len(self.backends)
        self._next = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server((host, port), backlog=256)
        self.address = self._listener.getsockname()[:2]
        self._stopped = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _connect(self) -> socket.socket | None:
        """The next backend that accepts, or None when none does."""
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self.backends)
        for k in range(len(self.backends)):
            i = (start + k) % len(self.backends)
            try:
                upstream = socket.create_connection(self.backends[i], timeout=2)
            except OSError:
                with self._lock:
                    self.skipped[i] += 1
                continue
            upstream.settimeout(None)
            with self._lock:
                self.connections[i] += 1
            return upstream
        return None

    def _serve(self, client: socket.socket) -> None:
        upstream = self._connect()
        if upstream is None:
            client.close()
            return
        with self._lock:
            self._open.update((client, upstream))
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        back.start()
        self._pump(client, upstream)
        back.join()
        with self._lock:
            self._open.difference_update((client, upstream))
        client.close()
        upstream.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            # A side broke (a killed backend resets): end both, so the client sees it at once.
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return
        with contextlib.suppress(OSError):  # an orderly end: pass the half-close on
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)


# ------------------------------------------------------------ shared services
def shared_postgres(
    address: str, subnet: str, port: int = 5432
) -> contextlib.AbstractContextManager[str]:
    """A PostgreSQL listening on loopback and ``address``, open (trust) to ``subnet``."""
    return local_postgres(port, ("127.0.0.1", address), trust_subnet=subnet, max_connections=300)


@contextlib.contextmanager
def shared_s3(address: str, port: int, bucket: str = "cumulo") -> Iterator[str]:
    """moto's S3 API server on ``address:port`` with one bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=address, port=port, verbose=False)
    server.start()
    endpoint = f"http://{address}:{port}"
    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()


# ----------------------------------------------------------------- servers
@dataclass
class HostServer:
    host: Host
    port: int
    home: Path
    proc: subprocess.Popen[bytes]
    args: list[str]
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://{self.host.address}:{self.port}"

    def log(self) -> str:
        path = self.home / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it does nothing, its scheduler included, until resumed.

        Its port still takes connections (the kernel queues them): send it nothing meanwhile.
        """
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)


def start_server(
    host: Host, port: int, home: Path, args: Sequence[str], env: dict[str, str]
) -> HostServer:
    """``cumulo server`` inside ``host``'s namespace, listening on its address (not waited for)."""
    home.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CUMULO_", "MLFLOW_"))}
    clean.update(env)
    argv = [sys.executable, "-m", "cumulo.cli.main", "server", "--host", host.address]
    argv += ["--port", str(port), "--home", str(home), *args]
    with open(home / "server.log", "ab") as log:
        proc = subprocess.Popen(
            host.command(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean,
            start_new_session=True,
        )
    return HostServer(host, port, home, proc, list(args), dict(env))


def wait_healthy(servers: Sequence[HostServer], timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    waiting = list(servers)
    while waiting and time.monotonic() < deadline:
        for server in list(waiting):
            if server.proc.poll() is not None:
                raise RuntimeError(f"server on {server.url} exited:\n{server.log()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                    waiting.remove(server)
        time.sleep(0.2)
    if waiting:
        raise RuntimeError(
            "servers did not start: " + "\n".join(f"{s.url}:\n{s.log()}" for s in waiting)
        )


def stop_server(server: HostServer) -> None:
    if server.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, 15)
        try:
            server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.proc.pid, 9)
            server.proc.wait()
