"""Seed a tracking server with the benchmark's runs through the MLflow client.

Used for FastTrackML, whose database only its own server writes; the seeded
database is then kept in the seed cache.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from common import SEARCH_EXPERIMENT, SEED_TIME_MS, SeedRun, arguments, log, seed_runs, write_result

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from mlflow.entities import Metric, Param

from mlflow import MlflowClient


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--url", required=True)
        parser.add_argument("--threads", type=int, default=4)

    args = arguments("Seed a tracking server over HTTP", extra)
    client = MlflowClient(args.url)
    eid = client.create_experiment(SEARCH_EXPERIMENT)

    def one(r: SeedRun) -> None:
        run = client.create_run(eid, run_name=r.name, tags=r.tags, start_time=SEED_TIME_MS)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, SEED_TIME_MS, 0) for k, v in r.metrics.items()],
            params=[Param(k, v) for k, v in r.params.items()],
        )
        client.set_terminated(run.info.run_id, "FINISHED", end_time=SEED_TIME_MS + 1000)

    log(f"seeding {args.runs} runs into {args.url}")
    with ThreadPoolExecutor(args.threads) as pool:
        for _ in pool.map(one, seed_runs(args.runs)):
            pass
    write_result(args.out, {"side": "seed", "runs": args.runs})


if __name__ == "__main__":
    main()
