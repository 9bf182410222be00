"""Store benchmark, MLflow side: MLflow's embedded SQLite store through its own client.

Run by ``benchmarks/run.py store`` with the Python of ``benchmarks/.work/mlflow-venv``.
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
    restore_or_seed,
    seed_runs,
    summary,
    write_result,
)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from mlflow.entities import Metric, Param

import mlflow
from mlflow import MlflowClient


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--points", type=int, default=100_000)
        parser.add_argument("--seed-only", action="store_true", help="seed the store and stop")
        parser.add_argument("--calls", type=int, default=2_000)

    args = arguments("MLflow embedded SQLite store benchmark", extra)
    os.chdir(args.workdir)  # MLflow's default artifact folder (./mlruns) lands here
    db = args.workdir / "mlflow.db"
    uri = f"sqlite:///{db}"
    result: dict[str, Any] = {"side": "mlflow", "version": mlflow.__version__}

    def seed() -> None:
        log(f"mlflow: seeding {args.runs} runs")
        client = MlflowClient(uri)
        eid = client.create_experiment(SEARCH_EXPERIMENT)
        for r in seed_runs(args.runs):
            run = client.create_run(
                eid,
                run_name=r.name,
                tags=r.tags,
                start_time=SEED_TIME_MS,
            )
            client.log_batch(
                run.info.run_id,
                metrics=[Metric(k, v, SEED_TIME_MS, 0) for k, v in r.metrics.items()],
                params=[Param(k, v) for k, v in r.params.items()],
            )
            client.set_terminated(run.info.run_id, "FINISHED", end_time=SEED_TIME_MS + 1000)

    restore_or_seed(args.seed_cache, [db], seed, result)
    if args.seed_only:  # the server benchmark serves this seeded store
        write_result(args.out, result)
        return

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    mlflow.set_experiment(LOG_EXPERIMENT)
    values = history_values(args.points)

    # Per-call: mlflow.log_metric writes synchronously, one transaction a call.
    calls = min(args.calls, args.points)
    log(f"mlflow: {calls} mlflow.log_metric calls")
    with mlflow.start_run(run_name="per-call"):
        start = clock()
        for i, v in enumerate(values[:calls]):
            mlflow.log_metric("loss", v, step=i)
        seconds = clock() - start
    result["per_call"] = {
        "points": calls,
        "call_us": seconds / calls * 1e6,
        "total_s": seconds,
        "points_per_s": calls / seconds,
    }

    log(f"mlflow: {args.points} points through MlflowClient.log_batch")
    exp = client.get_experiment_by_name(LOG_EXPERIMENT)
    assert exp is not None
    run_id = client.create_run(exp.experiment_id, run_name="batch").info.run_id
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

    log("mlflow: reading the history")
    samples, history = repeat(lambda: client.get_metric_history(run_id, "loss"), args.repeat)
    ordered = sorted(history, key=lambda m: m.step)
    result["history"] = {
        "points": len(history),
        "complete": [m.value for m in ordered] == values,
        **summary(samples),
    }

    log("mlflow: searching")
    search_exp = client.get_experiment_by_name(SEARCH_EXPERIMENT)
    assert search_exp is not None

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
    write_result(args.out, result)


if __name__ == "__main__":
    main()
