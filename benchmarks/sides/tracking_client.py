"""Tracking benchmark, one round against one server: the MLflow client's everyday calls,
the raw REST calls behind them, and (``--load``) many clients logging at once.

Run by ``benchmarks/tracking.py`` with the Python of ``benchmarks/.work/mlflow-venv``;
``--url`` is the server's tracking URI. Every figure is measured on data this round
logs itself, in an experiment of its own, so a round needs an empty server only for
its first start.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import threading
import time
import urllib.parse
import uuid
from typing import Any

from common import (
    SEED_TIME_MS,
    arguments,
    clock,
    history_values,
    log,
    repeat,
    summary,
    write_result,
)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from mlflow.entities import Metric, Param
from null_server import NullServer, client_search, interleaved, record_search

import mlflow
from mlflow import MlflowClient

API = "/api/2.0/mlflow"


class Rest:
    """Plain REST calls on one kept-alive connection: the server's own cost per request."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.prefix = parts.path.rstrip("/") + API
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        self.conn.request(method, self.prefix + path, body=data, headers=headers)
        resp = self.conn.getresponse()
        payload = resp.read()
        if resp.status != 200:
            raise SystemExit(f"{method} {path} answered {resp.status}: {payload[:300]!r}")
        return json.loads(payload)


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--url", required=True, help="the server's tracking URI")
        parser.add_argument("--points", type=int, default=10_000)
        parser.add_argument("--calls", type=int, default=200)
        parser.add_argument("--raw", type=int, default=200, help="raw REST calls of each kind")
        parser.add_argument(
            "--load", default="", help="concurrent clients, one load after the other (16,50)"
        )
        parser.add_argument("--seconds", type=float, default=20.0, help="length of the load")

    args = arguments("MLflow-client workload against a tracking server", extra)
    os.chdir(args.workdir)
    mlflow.set_tracking_uri(args.url)
    client = MlflowClient(args.url)
    result: dict[str, Any] = {"side": "mlflow-client", "version": mlflow.__version__}
    if args.load:
        result["load"] = [load(args.url, int(n), args.seconds) for n in args.load.split(",")]
        write_result(args.out, result)
        return
    tag = uuid.uuid4().hex[:8]
    exp_id = client.create_experiment(f"bench-{tag}")

    log(f"{args.url}: {args.points} points through log_batch")
    run_id = client.create_run(exp_id, run_name="batch").info.run_id
    values = history_values(args.points)
    batches = [
        [Metric("loss", v, SEED_TIME_MS + i, i) for i, v in enumerate(values[b : b + 1000], b)]
        for b in range(0, args.points, 1000)
    ]
    start = clock()
    for batch in batches:
        client.log_batch(run_id, metrics=batch)
    result["batch"] = {"points": args.points, "points_per_s": args.points / (clock() - start)}

    log(f"{args.url}: {args.calls} log_metric calls")
    with mlflow.start_run(experiment_id=exp_id, run_name="per-call"):
        start = clock()
        for i, v in enumerate(values[: args.calls]):
            mlflow.log_metric("m", v, step=i)
        result["per_call"] = {"calls": args.calls, "calls_per_s": args.calls / (clock() - start)}

    log(f"{args.url}: {args.runs} runs, each with 2 params and 1 metric")
    start = clock()
    for i in range(args.runs):
        with mlflow.start_run(experiment_id=exp_id, run_name=f"run-{i:04d}"):
            mlflow.log_params({"model": ("rf", "rf", "rf", "lr")[i % 4], "i": str(i)})
            mlflow.log_metric("acc", ((i * 37) % 100) / 100)
    result["runs"] = {"runs": args.runs, "runs_per_s": args.runs / (clock() - start)}

    log(f"{args.url}: history and search")
    samples, history = repeat(lambda: client.get_metric_history(run_id, "loss"), args.repeat)
    result["history"] = {"points": len(history), **summary(samples)}

    # The search, and the client's own part of it: the same call against a null server
    # that replays this server's answer (its bytes, compressed as they came), interleaved.
    headers, answer = record_search(args.url, exp_id)
    with NullServer(headers, answer) as null:
        search, null_search = client_search(args.url, exp_id), client_search(null.url, exp_id)
        found = search()
        seconds, cpu = interleaved({"server": search, "null": null_search}, args.repeat)
    # 108 of 300 runs match: the answer is a full page of 100.
    expected = [i for i in range(args.runs) if i % 4 != 3 and ((i * 37) % 100) / 100 > 0.5]
    result["search"] = {
        "returned": found,
        "agrees": found == min(100, len(expected)),
        **summary(seconds["server"]),
        "client_only": summary(seconds["null"]),
        "client_cpu": {name: statistics.median(s) for name, s in cpu.items()},
        "answer_bytes": len(answer),
        "answer_encoding": headers.get("Content-Encoding", "identity"),
    }

    log(f"{args.url}: raw REST calls")
    rest = Rest(args.url)
    made: list[str] = []

    def create() -> None:
        made.append(
            rest.call("POST", "/runs/create", {"experiment_id": exp_id})["run"]["info"]["run_id"]
        )

    raw: dict[str, Any] = {}
    raw["create"] = summary(repeat(create, args.raw, warmup=5)[0])
    raw["get"] = summary(
        repeat(lambda: rest.call("GET", f"/runs/get?run_id={run_id}"), args.raw, warmup=5)[0]
    )
    body = {"experiment_ids": [exp_id], "max_results": 100}
    got = rest.call("POST", "/runs/search", body)
    raw["search"] = summary(
        repeat(lambda: rest.call("POST", "/runs/search", body), args.raw, warmup=5)[0]
    )
    raw["search"]["returned"] = len(got.get("runs", []))
    result["raw"] = raw
    write_result(args.out, result)


def load(url: str, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` threads, each an MLflow client doing what a training script does, over
    and over: create a run, 5 ``log_metric``, one ``log_batch`` of 100 points, end the run."""
    client = MlflowClient(url)
    exp_id = client.create_experiment(f"load-{uuid.uuid4().hex[:8]}")
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def timed(fn: Any, *a: Any, **kw: Any) -> Any:
        start = clock()
        out = fn(*a, **kw)
        with lock:
            latencies.append(clock() - start)
        return out

    def worker() -> None:
        c = MlflowClient(url)
        while time.monotonic() < stop:
            try:
                run = timed(c.create_run, exp_id)
                run_id = run.info.run_id
                for i in range(5):
                    timed(c.log_metric, run_id, "loss", 1.0 / (i + 1), step=i)
                batch = [Metric("acc", i / 100, SEED_TIME_MS + i, i) for i in range(100)]
                timed(c.log_batch, run_id, metrics=batch, params=[Param("p", "1")])
                timed(c.set_terminated, run_id)
            except Exception as exc:  # counted, and the client goes on as a script's retry would
                with lock:
                    errors.append(repr(exc)[:200])

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    began = clock()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = clock() - began
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return {
        "clients": clients,
        "seconds": elapsed,
        "requests": len(latencies),
        "requests_per_s": len(latencies) / elapsed,
        "p50_s": latencies[len(latencies) // 2] if latencies else 0.0,
        "p99_s": p99,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


if __name__ == "__main__":
    main()
