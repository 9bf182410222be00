"""Ingest and run creation with 1, 2 and 3 servers over one PostgreSQL.

    sudo .venv/bin/python benchmarks/multi_host.py [--clients 16]

The same harness as ``tests/server/test_multi_host.py``: each server runs on
a host of its own (a network namespace on a private bridge), all over one
PostgreSQL and one S3 API server. 16 concurrent clients (one asyncio loop,
bodies encoded before the clock starts) speak the MLflow REST API, client i
to server i mod N. Needs root (network namespaces). Writes its section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from tests.server.hosts import (  # noqa: E402
    HostNetwork,
    namespaces_unavailable,
    shared_postgres,
    shared_s3,
    start_server,
    stop_server,
    wait_healthy,
)

import harness  # noqa: E402

M = "/api/2.0/mlflow"
PORT = 8080
BATCHES, POINTS = 20, 1000  # per client
RUNS_PER_CLIENT = 30


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _measure(urls: list[str], clients: int) -> tuple[float, float]:
    """(points/s through log-batch, runs created/s), ``clients`` at once."""
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        made = await http.post(urls[0] + M + "/experiments/create", json={"name": name})
        experiment_id = made.json()["experiment_id"]
        run_ids = []
        for i in range(clients):
            body = {"experiment_id": experiment_id, "run_name": f"ingest-{i}"}
            made = await http.post(urls[i % len(urls)] + M + "/runs/create", json=body)
            run_ids.append(made.json()["run"]["info"]["run_id"])
        bodies = [
            [
                json.dumps(
                    {
                        "run_id": run_ids[i],
                        "metrics": [
                            {"key": "loss", "value": 1 / (s + 1), "timestamp": s, "step": s}
                            for s in range(b * POINTS, (b + 1) * POINTS)
                        ],
                    }
                ).encode()
                for b in range(BATCHES)
            ]
            for i in range(clients)
        ]
        headers = {"Content-Type": "application/json"}

        async def ingest(i: int) -> None:
            for body in bodies[i]:
                r = await http.post(
                    urls[i % len(urls)] + M + "/runs/log-batch", content=body, headers=headers
                )
                r.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(ingest(i) for i in range(clients)))
        points_per_s = clients * BATCHES * POINTS / (time.perf_counter() - started)

        async def create(i: int) -> None:
            body = json.dumps({"experiment_id": experiment_id}).encode()
            for _ in range(RUNS_PER_CLIENT):
                r = await http.post(
                    urls[i % len(urls)] + M + "/runs/create", content=body, headers=headers
                )
                r.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(create(i) for i in range(clients)))
        runs_per_s = clients * RUNS_PER_CLIENT / (time.perf_counter() - started)
    return points_per_s, runs_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--no-write", action="store_true", help="Print, do not write the doc.")
    args = parser.parse_args()
    reason = namespaces_unavailable()
    if reason:
        sys.exit(f"multi_host needs network namespaces: {reason}")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "testing")  # the local S3 API server takes any
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    started, load_at_start = time.time(), harness.load()
    rows = []
    for count in (1, 2, 3):
        root = Path(tempfile.mkdtemp(prefix="cumulo-bench-hosts-"))
        with contextlib.ExitStack() as stack:
            network = stack.enter_context(HostNetwork(count))
            gateway = network.gateway
            pg = stack.enter_context(
                shared_postgres(gateway, f"{network.prefix}.0/24", _free_port())
            )
            s3 = stack.enter_context(shared_s3(gateway, _free_port()))
            env = {
                "CUMULO_S3_ENDPOINT_URL": s3,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
            server_args = ["--database-url", pg, "--artifact-root", "s3://cumulo/bench"]
            servers = [
                start_server(h, PORT, root / h.name, server_args, env) for h in network.hosts
            ]
            stack.callback(lambda servers=servers: [stop_server(s) for s in servers])
            wait_healthy(servers)
            harness.log(f"{count} server(s) up; measuring")
            points, runs = asyncio.run(_measure([s.url for s in servers], args.clients))
            harness.log(f"{count} server(s): {points:,.0f} points/s, {runs:,.0f} runs/s")
            rows.append((count, points, runs))
    base_points, base_runs = rows[0][1], rows[0][2]
    table = harness.table(
        ["servers", "ingest, points/s", "vs 1 server", "run creates/s", "vs 1 server"],
        [
            (
                n,
                harness.rate(p),
                f"{p / base_points:.2f}×",
                harness.rate(r),
                f"{r / base_runs:.2f}×",
            )
            for n, p, r in rows
        ],
    )
    body = "\n\n".join(
        [
            "## Several servers over one PostgreSQL",
            harness.header(
                "multihost",
                ["python", "benchmarks/multi_host.py"],
                started,
                [
                    f"- Setup: 1, 2 and 3 `cumulo server`s (one worker each), each on a host of "
                    f"its own (a network namespace), over one PostgreSQL (fsync off) and one S3 "
                    f"API server, all on this one machine; {args.clients} concurrent clients "
                    f"(MLflow REST API, one asyncio loop), client i talking to server i mod N",
                    f"- Ingest: {args.clients} × {BATCHES} `log-batch` calls of {POINTS:,} "
                    f"points, each client into its own run; run creates: {args.clients} × "
                    f"{RUNS_PER_CLIENT} `runs/create` into one experiment",
                ],
                load_at_start,
            ),
            table,
            "All the processes share the machine's 2 cores, with other work besides (see the "
            "load average), so more servers cannot add CPU and the figures are noisy: they "
            "show that servers side by side on one database serve the same data at a "
            "comparable rate, not how far they scale. Run creates into one experiment queue "
            "on the experiment's row lock (run numbers come from its counter), so they do not "
            "grow with servers; runs in different experiments do not wait for each other.",
        ]
    )
    if args.no_write:
        print(body)
    else:
        harness.write_section("multihost", body)
        print(body)


if __name__ == "__main__":
    main()
