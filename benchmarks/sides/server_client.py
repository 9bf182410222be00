"""Server benchmark, the MLflow-client workload: the same calls against any tracking server.

Run by ``benchmarks/run.py server`` with the Python of ``benchmarks/.work/mlflow-venv``
once per server (Cumulo, MLflow, FastTrackML); ``--url`` is its tracking URI.
"""

from __future__ import annotations

import os
from typing import Any

from common import (
    BATCH,
    LOG_EXPERIMENT,
    SEARCH_EXPERIMENT,
    SEARCH_FILTER,
    SEARCH_LIMIT,
    SEARCH_ORDER,
    SEED_TIME_MS,
    arguments,
    clock,
    expected_top,
    history_values,
    log,
    repeat,
    summary,
    write_result,
)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from mlflow.entities import Metric

import mlflow
from mlflow import MlflowClient


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--url", required=True, help="the server's tracking URI")
        parser.add_argument("--points", type=int, default=100_000)
        parser.add_argument("--calls", type=int, default=300)

    args = arguments("MLflow-client workload against a tracking server", extra)
    os.chdir(args.workdir)
    mlflow.set_tracking_uri(args.url)
    client = MlflowClient(args.url)
    result: dict[str, Any] = {"side": "mlflow-client", "version": mlflow.__version__}
    values = history_values(args.points)

    exp_id = mlflow.set_experiment(LOG_EXPERIMENT).experiment_id
    log(f"{args.url}: {args.points} points through MlflowClient.log_batch")
    run_id = client.create_run(exp_id, run_name="batch").info.run_id
    batches = [
        [Metric("loss", v, SEED_TIME_MS + i, i) for i, v in enumerate(values[b : b + BATCH], b)]
        for b in range(0, args.points, BATCH)
    ]
    start = clock()
    for batch in batches:
        client.log_batch(run_id, metrics=batch)
    seconds = clock() - start
    result["batch"] = {
        "points": args.points,
        "batch": BATCH,
        "seconds": seconds,
        "points_per_s": args.points / seconds,
    }
    client.set_terminated(run_id)

    log(f"{args.url}: {args.calls} mlflow.log_metric calls")
    with mlflow.start_run(run_name="per-call"):
        start = clock()
        for i, v in enumerate(values[: args.calls]):
            mlflow.log_metric("loss", v, step=i)
        seconds = clock() - start
    result["per_call"] = {
        "calls": args.calls,
        "seconds": seconds,
        "calls_per_s": args.calls / seconds,
        "call_ms": seconds / args.calls * 1000,
    }

    log(f"{args.url}: searching")
    search_exp = client.get_experiment_by_name(SEARCH_EXPERIMENT)
    if search_exp is None:
        raise SystemExit(f"{args.url} has no experiment {SEARCH_EXPERIMENT!r}: not seeded")

    def search() -> list[str]:
        runs = client.search_runs(
            [search_exp.experiment_id],
            SEARCH_FILTER,
            order_by=[SEARCH_ORDER],
            max_results=SEARCH_LIMIT,
        )
        return [r.info.run_name for r in runs]

    samples, names = repeat(search, args.repeat)
    result["search"] = {
        "runs": args.runs,
        "returned": len(names),
        "agrees": names == expected_top(args.runs),
        **summary(samples),
    }

    log(f"{args.url}: reading the history")
    samples, history = repeat(lambda: client.get_metric_history(run_id, "loss"), args.repeat)
    ordered = sorted(history, key=lambda m: m.step)
    result["history"] = {
        "points": len(history),
        "complete": [m.value for m in ordered] == values,
        **summary(samples),
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
