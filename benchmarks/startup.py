"""`cumulo server`'s start, idle memory and CPU per request; `cumulo --help`.

    python benchmarks/run.py startup [--startup-repeat 5] [--startup-requests 300]

Time on a shared machine moves with its load, so the start is given both as wall
time and as the CPU seconds the server's process tree had used when ``GET /health``
first answered 200 (from ``/proc``); requests are counted per CPU-second of the
server, not per wall second. Memory is the RSS of the process tree once it has
stopped growing after the start, then after one request to each route group
(the MLflow REST API, its ``/ajax-api/`` form, the native ``/api/v1``, the
studio, the OpenAPI description).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness as h
from servers import Server, free_port, process_tree

NAME = "startup"
# The first request to each group, in this order; RSS is read after each.
GROUPS = (
    ("MLflow API", "GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"),
    ("MLflow /ajax-api/", "GET", "/ajax-api/2.0/mlflow/experiments/search?max_results=1"),
    ("native /api/v1", "GET", "/api/v1/workspaces"),
    ("studio page", "GET", "/ws/default/experiments"),
    ("/openapi.json", "GET", "/openapi.json"),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("startup")
    group.add_argument(
        "--startup-repeat", type=int, default=5, help="server starts (the first is not timed)"
    )
    group.add_argument(
        "--startup-requests", type=int, default=300, help="requests of each kind timed for CPU"
    )


def run(args: argparse.Namespace, command: list[str]) -> str:
    started, load_at_start = time.time(), h.load()
    with tempfile.TemporaryDirectory(prefix="cumulo-bench-startup-") as tmp:
        result = measure(Path(tmp), args.startup_repeat, args.startup_requests)
    return render(result, command, started, load_at_start)


def cumulo_command() -> list[str]:
    return [str(h.cumulo_python()), "-m", "cumulo.cli.main"]


def cumulo_env() -> dict[str, str]:
    """This checkout's sources first on the path, whatever the environment installed."""
    env = h.side_env()
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(h.ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p
    )
    return env


def measure(work: Path, repeat: int, requests: int) -> dict[str, Any]:
    home = work / "home"
    starts: list[dict[str, float]] = []
    memory: dict[str, Any] = {}
    per_cpu: dict[str, float] = {}
    for i in range(max(2, repeat)):  # the first start migrates the new database
        port = free_port()
        cmd = [*cumulo_command(), "server", "--home", str(home), "--port", str(port)]
        server = Server("cumulo server", cmd, work / f"start-{i}", port, env=cumulo_env())
        try:
            wall = server.start(timeout=120)
            assert server.proc is not None
            cpu = tree_cpu(server.proc.pid)
            if i == 0:  # not timed
                continue
            starts.append({"wall": wall, "cpu": cpu})
            if i == 1:
                memory = _memory_by_group(server)
                per_cpu = _requests_per_cpu_second(server, requests)
        finally:
            server.stop()
    return {
        "start_wall": statistics.median(s["wall"] for s in starts),
        "start_cpu": statistics.median(s["cpu"] for s in starts),
        "start_wall_range": (min(s["wall"] for s in starts), max(s["wall"] for s in starts)),
        "starts": len(starts),
        "memory": memory,
        "per_cpu_second": per_cpu,
        "requests": requests,
        "help": _help_cpu(),
    }


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) used so far by a process tree, children reaped included."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after the name.
        total += sum(int(v) for v in fields[11:15])
    return total / tick


def _memory_by_group(server: Server) -> dict[str, Any]:
    rows = [("after the start", server.settled_memory(quiet=2.0)["rss"])]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    for label, method, path in GROUPS:
        conn.request(method, path)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise h.BenchError(f"{method} {path} answered {response.status}")
        rows.append((f"after a request to the {label}", server.settled_memory(quiet=2.0)["rss"]))
    conn.close()
    return {"rows": rows}


def _requests_per_cpu_second(server: Server, n: int) -> dict[str, float]:
    """Sequential requests on one kept-alive connection; the server's CPU over them."""
    assert server.proc is not None
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    headers = {"content-type": "application/json"}

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise h.BenchError(f"{method} {path} answered {response.status}: {data[:200]!r}")
        answer: dict[str, Any] = json.loads(data)
        return answer

    made = call("POST", "/api/2.0/mlflow/experiments/create", {"name": f"cpu-{time.time()}"})
    experiment = made["experiment_id"]
    create = {"experiment_id": experiment, "start_time": 0}
    run_id = call("POST", "/api/2.0/mlflow/runs/create", create)["run"]["info"]["run_id"]
    for _ in range(20):  # warm: first-use imports and caches are not what is measured
        call("POST", "/api/2.0/mlflow/runs/create", create)
        call("GET", f"/api/2.0/mlflow/runs/get?run_id={run_id}")
    out = {}
    for name, method, path, body in (
        ("runs/create", "POST", "/api/2.0/mlflow/runs/create", create),
        ("runs/get", "GET", f"/api/2.0/mlflow/runs/get?run_id={run_id}", None),
    ):
        before = tree_cpu(server.proc.pid)
        for _ in range(n):
            call(method, path, body)
        out[name] = n / max(tree_cpu(server.proc.pid) - before, 1e-9)
    conn.close()
    return out


def _help_cpu(times: int = 5) -> dict[str, float]:
    """`cumulo --help`: CPU (user + system) and wall seconds, medians of ``times``."""
    cpu, wall = [], []
    for _ in range(times):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(
            [*cumulo_command(), "--help"], env=cumulo_env(), check=True, capture_output=True
        )
        wall.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(
            after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
        )
    return {"cpu": statistics.median(cpu), "wall": statistics.median(wall)}


def render(
    result: dict[str, Any], command: list[str], started: float, load_at_start: float | None
) -> str:
    low, high = result["start_wall_range"]
    rows = [
        (
            "start: launch → `/health` 200, CPU of the process tree",
            f"{result['start_cpu']:.2f} s",
            "< 0.5 s",
        ),
        (
            "start: launch → `/health` 200, wall",
            f"{result['start_wall']:.2f} s ({low:.2f}–{high:.2f} s)",
            "< 0.5 s",
        ),
    ]
    for label, rss in result["memory"].get("rows", []):
        rows.append((f"RSS {label}", f"{rss / 2**20:.0f} MiB", "< 80 MiB" if not rows[2:] else ""))
    for name, rate in result["per_cpu_second"].items():
        rows.append((f"`{name}`, requests per CPU-second of the server", f"{rate:.0f}", ""))
    helped = result["help"]
    rows.append(
        (
            "`cumulo --help`, CPU (wall)",
            f"{helped['cpu']:.2f} s ({helped['wall']:.2f} s)",
            "< 0.3 s",
        )
    )
    body = [
        "## `cumulo server`: start, idle memory, CPU per request\n",
        h.header(
            NAME,
            command,
            started,
            [
                f"- Starts: {result['starts']} timed on one migrated SQLite database "
                "(the median; the wall range beside it); requests: "
                f"{result['requests']} of each kind, sequential, on one kept-alive connection"
            ],
            load_at_start,
        ),
        "",
        h.table(["figure", "Cumulo", "goal"], rows),
    ]
    return "\n".join(body)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    p.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="cumulo-bench-startup-") as tmp:
        result = measure(Path(tmp), args.startup_repeat, args.startup_requests)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result, ["python", "benchmarks/startup.py", *sys.argv[1:]], time.time(), None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
