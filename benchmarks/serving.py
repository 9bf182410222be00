"""Serving benchmark: one scikit-learn model served by Cumulo and by ``mlflow models serve``.

    python benchmarks/serving.py            # figures into docs/benchmarks.md (bench:serving)

The model (iris, LogisticRegression) is logged once with ``mlflow.sklearn.log_model``
to a local file store. Then, side by side in this one run, each server is
started, timed until it answers, measured, and stopped:

- Cumulo's replica (the lean scoring server, what each deployment runs), and
  the same model deployed at an endpoint (its router in front, key checked);
- ``mlflow models serve --env-manager local`` from its own virtual environment.

Figures: time to ready, memory (RSS and PSS of the server's processes),
single-row latency p50/p99 sent one at a time, requests/second with 16
concurrent clients on kept-alive connections, and a 1,000-row request.
The clients run in this process: a few lines of asyncio on raw sockets, so
they cost the servers as little of the machine's two cores as possible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from cumulo.core.deployments import REPLICA_SECRET_ENV, REPLICA_SECRET_HEADER

COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROW = [5.1, 3.5, 1.4, 0.2]
TARGETS = {"rps": 10.0, "p99": 1 / 3, "ready_s": 2.0}


# ----------------------------------------------------------------- model
def log_model(folder: Path) -> Path:
    """Train and log the model with mlflow.sklearn.log_model; returns its downloaded folder."""
    os.environ.update(
        MLFLOW_ALLOW_FILE_STORE="true", MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true"
    )
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import mlflow

    x, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    mlflow.set_tracking_uri((folder / "mlruns").as_uri())
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model, name="model", signature=infer_signature(x, model.predict(x))
        )
    target = folder / "model"
    mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(target))
    return target


# ---------------------------------------------------------------- clients
class Client:
    """Raw HTTP/1.1 on one kept-alive connection (cheap enough not to be the bottleneck)."""

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.port = port
        self.path = path
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    async def open(self) -> Client:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    async def post(self, body: bytes) -> tuple[int, bytes]:
        self.writer.write(
            (
                f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.headers}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(head.split(b" ", 2)[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def body(rows: list[list[float]]) -> bytes:
    return json.dumps({"dataframe_split": {"columns": COLUMNS, "data": rows}}).encode()


async def off_fast_path(port: int, path: str, headers: dict[str, str]) -> float:
    """One body that only MLflow's path answers (it names ``params``): seconds to the answer."""
    client = await Client(port, path, headers).open()
    payload = json.dumps(
        {"dataframe_split": {"columns": COLUMNS, "data": [ROW]}, "params": {}}
    ).encode()
    started = time.perf_counter()
    status, answer = await client.post(payload)
    took = time.perf_counter() - started
    assert status == 200 and json.loads(answer)["predictions"] == [0], (status, answer)
    client.close()
    return took


async def sequential(port: int, path: str, headers: dict[str, str], n: int) -> list[float]:
    client = await Client(port, path, headers).open()
    payload = body([ROW])
    out = []
    for _ in range(n):
        t = time.perf_counter()
        status, _ = await client.post(payload)
        out.append(time.perf_counter() - t)
        assert status == 200, status
    client.close()
    return out


async def concurrent(
    port: int, path: str, headers: dict[str, str], clients: int, seconds: float
) -> tuple[float, int]:
    payload = body([ROW])
    done = 0
    errors = 0

    async def one() -> None:
        nonlocal done, errors
        client = await Client(port, path, headers).open()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            status, _ = await client.post(payload)
            done += 1
            errors += status != 200
        client.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    return done / (time.perf_counter() - started), errors


async def batch(port: int, path: str, headers: dict[str, str], rows: int, n: int) -> list[float]:
    client = await Client(port, path, headers).open()
    payload = body([[ROW[j] + (i % 7) * 0.1 for j in range(4)] for i in range(rows)])
    out = []
    for _ in range(n):
        t = time.perf_counter()
        status, answer = await client.post(payload)
        out.append(time.perf_counter() - t)
        assert status == 200 and len(json.loads(answer)["predictions"]) == rows
    client.close()
    return out


# ---------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(
    port: int,
    path: str,
    proc: subprocess.Popen[bytes] | None,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> None:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise harness.BenchError(f"the server exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(
                    f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n".encode()
                )
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.01)
    raise harness.BenchError(f"nothing answered 200 on port {port}{path} in {timeout:g} s")


def tree(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        p, pp = map(int, line.split())
        children.setdefault(pp, []).append(p)
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of a process and its children, MiB."""
    rss = pss = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss / 1024, pss / 1024


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


# A replica answers only calls that carry its secret (the router sends it).
REPLICA_SECRET = secrets.token_hex(16)
REPLICA_HEADERS = {REPLICA_SECRET_HEADER: REPLICA_SECRET}


def start_cumulo_replica(model: Path, work: Path) -> tuple[subprocess.Popen[bytes], int, float]:
    status = work / "status.json"
    spec = work / "spec.json"
    spec.write_text(
        json.dumps({"kind": "mlflow", "model_dir": str(model), "status_file": str(status)})
    )
    env = harness.side_env(
        OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", **{REPLICA_SECRET_ENV: REPLICA_SECRET}
    )
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(harness.cumulo_python()), "-m", "cumulo.serving.replica", str(spec)],
        stdout=open(work / "replica.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            state = json.loads(status.read_text())
        except (OSError, ValueError):
            state = {}
        if state.get("state") == "ready":
            port = int(state["port"])
            wait_ready(port, "/ping", proc, 30, REPLICA_HEADERS)
            return proc, port, time.perf_counter() - started
        if state.get("state") == "failed" or proc.poll() is not None:
            raise harness.BenchError(f"Cumulo's replica failed: {state.get('error')}")
        time.sleep(0.005)
    raise harness.BenchError("Cumulo's replica did not get ready in 60 s")


def start_mlflow(model: Path, work: Path) -> tuple[subprocess.Popen[bytes], int, float]:
    python = harness.MLFLOW_VENV.ensure()
    port = free_port()
    env = harness.side_env(
        PATH=f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true",
    )
    cmd = [str(python.parent / "mlflow"), "models", "serve", "-m", str(model)]
    cmd += ["-h", "127.0.0.1", "-p", str(port), "--env-manager", "local"]
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=open(work / "mlflow.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    wait_ready(port, "/ping", proc, 120)
    return proc, port, time.perf_counter() - started


# ---------------------------------------------------------------- measure
def measure(
    port: int, path: str, headers: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    asyncio.run(sequential(port, path, headers, 200))  # warm up
    lat = sorted(asyncio.run(sequential(port, path, headers, args.requests)))
    rps, errors = asyncio.run(concurrent(port, path, headers, args.clients, args.seconds))
    big = asyncio.run(batch(port, path, headers, 1000, args.batches))
    return {
        "p50_ms": lat[len(lat) // 2] * 1000,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000,
        "rps": rps,
        "errors": errors,
        "batch_ms": statistics.median(big) * 1000,
    }


def side(
    name: str,
    start: Callable[[], tuple[subprocess.Popen[bytes], int, float]],
    path: str,
    args: argparse.Namespace,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    harness.log(f"serving: starting {name}")
    proc, port, ready = start()
    try:
        rss, pss = memory_mib(proc.pid)
        harness.log(f"serving: measuring {name} (ready in {ready:.2f} s)")
        found = measure(port, path, headers or {}, args)
        found.update(ready_s=ready, rss_mib=rss, pss_mib=pss)
        # Last: the first body off the fast path (a replica loads MLflow's path for it).
        found["off_path_first_s"] = asyncio.run(off_fast_path(port, path, headers or {}))
        found["off_path_next_s"] = asyncio.run(off_fast_path(port, path, headers or {}))
        return found
    finally:
        stop(proc)


def endpoint_side(model: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The same model behind an endpoint of an embedded workspace: router, key, replica."""
    os.environ["CUMULO_HOME"] = str(work / "home")
    from cumulo import DeploymentConfig, Model, Workspace

    ws = Workspace.create(f"bench-{uuid.uuid4().hex[:6]}")
    registered = Model.register(ws, model, "iris")
    started = time.perf_counter()
    ep = Model.deploy(ws, "iris", [registered], deployment_config=DeploymentConfig(auth="key"))
    deployed = time.perf_counter() - started
    port = int(ep.scoring_uri.split(":")[2].split("/")[0])
    path = ep.scoring_uri.split(str(port), 1)[1]
    headers = {"Authorization": f"Bearer {ep.get_keys()[0]}"}
    harness.log(f"serving: measuring the endpoint (deployed in {deployed:.2f} s)")
    # The router runs in this process, with the clients: measured from a separate one.
    cmd = [str(harness.cumulo_python()), __file__, "--client-only", str(port), path]
    cmd += ["--header", headers["Authorization"], *_passthrough(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise harness.BenchError(f"the endpoint's clients failed: {proc.stderr[-1500:]}")
    found: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    found["ready_s"] = deployed
    # A second deployment forks its replica from the warm preloader.
    started = time.perf_counter()
    second = Model.deploy(ws, "iris-2", [registered])
    found["warm_ready_s"] = time.perf_counter() - started
    second.delete()
    ep.delete()
    from cumulo.services.context import close_all

    close_all()
    return found


def server_side(model: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The same model deployed on a `cumulo server`, scored through the server's own port."""
    from cumulo import DeploymentConfig, Model, Workspace

    port = free_port()
    home = work / "server-home"
    cmd = [str(harness.cumulo_python()), "-m", "cumulo.cli.main", "server"]
    cmd += ["--port", str(port), "--home", str(home)]
    proc = subprocess.Popen(
        cmd,
        stdout=open(work / "server.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        env=harness.side_env(),
        start_new_session=True,
    )
    try:
        wait_ready(port, "/health", proc, 120)
        url = f"http://127.0.0.1:{port}"
        ws = Workspace.connect(url, "default")
        registered = Model.register(ws, model, "iris")
        started = time.perf_counter()
        ep = Model.deploy(ws, "iris", [registered], deployment_config=DeploymentConfig(auth="key"))
        deployed = time.perf_counter() - started
        headers = {"Authorization": f"Bearer {ep.get_keys()[0]}"}
        harness.log(f"serving: measuring the server's endpoint (deployed in {deployed:.2f} s)")
        found = measure(port, ep.scoring_uri[len(url) :], headers, args)
        found["ready_s"] = deployed
        return found
    finally:
        stop(proc)


def _passthrough(args: argparse.Namespace) -> list[str]:
    return [
        f"--requests={args.requests}",
        f"--clients={args.clients}",
        f"--seconds={args.seconds}",
        f"--batches={args.batches}",
    ]


# ----------------------------------------------------------------- report
def report(
    results: dict[str, dict[str, Any]], command: list[str], started: float, load0: float | None
) -> str:
    c, e, m = results["cumulo"], results["endpoint"], results["mlflow"]
    srv = results["server"]

    def row(label: str, key: str, fmt: Callable[[float], str], better: str) -> list[str]:
        ratio = (c[key] / m[key]) if better == "higher" else (m[key] / c[key])
        return [
            label,
            fmt(c[key]),
            fmt(e[key]) if key in e else "—",
            fmt(srv[key]) if key in srv else "—",
            fmt(m[key]),
            harness.ratio(ratio),
        ]

    ms = lambda v: f"{v:.2f} ms"  # noqa: E731
    rows = [
        row("time to ready", "ready_s", lambda v: f"{v:.2f} s", "lower"),
        [
            "time to ready, warm (next deployment)",
            "—",
            f"{e['warm_ready_s']:.2f} s",
            "—",
            "—",
            harness.ratio(m["ready_s"] / e["warm_ready_s"]),
        ],
        row("memory per replica, RSS", "rss_mib", lambda v: f"{v:.0f} MiB", "lower"),
        row("memory per replica, PSS", "pss_mib", lambda v: f"{v:.0f} MiB", "lower"),
        row("single row, p50 (sequential)", "p50_ms", ms, "lower"),
        row("single row, p99 (sequential)", "p99_ms", ms, "lower"),
        row(f"requests/s, {results['clients']} clients", "rps", harness.rate, "higher"),
        row("1,000-row request (median)", "batch_ms", ms, "lower"),
        [
            "first body off the fast path (then the next one)",
            f"{c['off_path_first_s'] * 1000:.0f} ms ({c['off_path_next_s'] * 1000:.1f} ms)",
            "—",
            "—",
            f"{m['off_path_first_s'] * 1000:.0f} ms ({m['off_path_next_s'] * 1000:.1f} ms)",
            "—",
        ],
    ]
    rps_x = c["rps"] / m["rps"]
    p99_x = c["p99_ms"] / m["p99_ms"]
    goals = [
        f"- requests/second at least {TARGETS['rps']:g}× MLflow's: {harness.ratio(rps_x)} "
        f"(replica), {harness.ratio(e['rps'] / m['rps'])} (embedded endpoint), "
        f"{harness.ratio(srv['rps'] / m['rps'])} (server endpoint) — "
        f"{harness.verdict(rps_x, TARGETS['rps'])}",
        f"- p99 at most a third of MLflow's: {p99_x:.2f} of it — "
        f"{'**met**' if p99_x <= TARGETS['p99'] else '**not met**'}",
        f"- ready in under {TARGETS['ready_s']:g} s: {c['ready_s']:.2f} s for a fresh "
        f"interpreter — {'**met**' if c['ready_s'] < TARGETS['ready_s'] else '**not met**'}; "
        f"{e['warm_ready_s']:.2f} s for a deployment forked from the warm preloader — "
        f"{'**met**' if e['warm_ready_s'] < TARGETS['ready_s'] else '**not met**'}",
        f"- errors under load: {c['errors']} (replica), {e['errors']} (embedded endpoint), "
        f"{srv['errors']} (server endpoint), "
        f"{m['errors']} (MLflow)",
    ]
    notes = (
        "The replica is what each deployment runs (`python -m cumulo.serving.replica`). The "
        "endpoints are the same model deployed with `Model.deploy` and scored through the "
        "router with a key, which adds a hop: embedded (the router in the deploying process) "
        "and on a `cumulo server` (the router mounted in the server's app, one worker). Their "
        '"time to ready" is the whole `Model.deploy` call: registry copy, replica start, '
        "health check; the first one also starts the supervisor and its preloader (which "
        "imports numpy, scikit-learn and uvicorn once), later ones fork from it. "
        '"First body off the fast path" is one body that names `params`, sent after the '
        "other measurements: only MLflow's own scoring code answers it, and a replica "
        "loads that path (imports `mlflow`, loads its pyfunc model) when a body first "
        "needs it. MLflow is "
        "`mlflow models serve --env-manager local` "
        f"({harness.MLFLOW_REQUIREMENT}, its own virtual environment, one worker). The clients "
        "share the machine's cores with the servers, as they would in a test on one machine."
    )
    return "\n".join(
        [
            "## Serving: one scikit-learn model, Cumulo vs `mlflow models serve`",
            "",
            harness.header("serving", command, started, load_at_start=load0),
            "",
            harness.table(
                [
                    "",
                    "Cumulo replica",
                    "Cumulo endpoint (embedded)",
                    "Cumulo endpoint (server)",
                    "MLflow",
                    "replica vs MLflow",
                ],
                rows,
            ),
            "",
            *goals,
            "",
            notes,
        ]
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmarks/serving.py", description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=3000, help="sequential single-row requests")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0, help="length of the concurrent run")
    p.add_argument("--batches", type=int, default=30, help="1,000-row requests")
    p.add_argument("--doc", type=Path, default=harness.DOC)
    p.add_argument("--client-only", nargs=2, metavar=("PORT", "PATH"), help=argparse.SUPPRESS)
    p.add_argument("--header", default=None, help=argparse.SUPPRESS)
    return p


def measure_all(args: argparse.Namespace) -> dict[str, Any]:
    """Every side, one after the other, on one logged model: MLflow's server, the bare
    replica (with its secret), an embedded endpoint and a server's endpoint."""
    with tempfile.TemporaryDirectory(prefix="cumulo-bench-serving-") as tmp:
        work = Path(tmp)
        model = log_model(work)
        results: dict[str, Any] = {"clients": args.clients}
        results["mlflow"] = side(
            "mlflow models serve", lambda: start_mlflow(model, work), "/invocations", args
        )
        results["cumulo"] = side(
            "Cumulo's replica",
            lambda: start_cumulo_replica(model, work),
            "/invocations",
            args,
            REPLICA_HEADERS,
        )
        results["endpoint"] = endpoint_side(model, work, args)
        results["server"] = server_side(model, work, args)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.client_only:
        headers = {"Authorization": args.header} if args.header else {}
        port, path = int(args.client_only[0]), args.client_only[1]
        print(json.dumps(measure(port, path, headers, args)))
        return 0
    command = ["python", "benchmarks/serving.py", *argv]
    started, load0 = time.time(), harness.load()
    results = measure_all(args)
    text = report(results, command, started, load0)
    harness.write_section("serving", text, args.doc)
    print(text)
    print(json.dumps(results, indent=2), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
