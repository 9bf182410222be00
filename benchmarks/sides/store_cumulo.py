"""Store benchmark, Cumulo side: the embedded SQLite store through the SDK and the service.

Run by ``benchmarks/run.py store`` with the project's own Python.
"""

from __future__ import annotations

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

import cumulo
from cumulo import Experiment, Workspace
from cumulo.core.settings import Settings
from cumulo.services.context import close_all, open_services

WORKSPACE = "bench"


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--points", type=int, default=100_000)
        parser.add_argument("--seed-only", action="store_true", help="seed the store and stop")

    args = arguments("Cumulo embedded store benchmark", extra)
    home = args.workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    settings = Settings.load(home=home)
    result: dict[str, Any] = {"side": "cumulo", "version": cumulo.__version__}

    def seed() -> None:
        log(f"cumulo: seeding {args.runs} runs")
        Workspace.create(WORKSPACE, home=home, exist_ok=True)
        svc = open_services(settings).tracking
        exp = svc.get_or_create_experiment(WORKSPACE, SEARCH_EXPERIMENT)
        for r in seed_runs(args.runs):
            info = svc.create_run(
                WORKSPACE, exp.id, display_name=r.name, tags=r.tags, start_time=SEED_TIME_MS
            )
            svc.log_batch(
                WORKSPACE,
                info.id,
                metrics=[(k, v, 0, SEED_TIME_MS) for k, v in r.metrics.items()],
                params=r.params,
            )
            svc.set_run_status(WORKSPACE, info.id, "Completed", at=SEED_TIME_MS + 1000)
        close_all()  # closes the engine, so the WAL is folded into the file we copy

    restore_or_seed(args.seed_cache, [home / "cumulo.db"], seed, result)
    if args.seed_only:  # the server benchmark serves this seeded store
        write_result(args.out, result)
        return

    ws = Workspace.get(WORKSPACE, home=home)
    exp = Experiment(ws, LOG_EXPERIMENT)
    values = history_values(args.points)

    # Per-call: run.log enqueues and returns; flush() waits until the writer stored all.
    log(f"cumulo: {args.points} run.log calls")
    run = exp.start_logging(display_name="per-call")
    start = clock()
    for v in values:
        run.log("loss", v)
    enqueued = clock()
    run.flush()
    done = clock()
    result["per_call"] = {
        "points": args.points,
        "call_us": (enqueued - start) / args.points * 1e6,
        "enqueue_s": enqueued - start,
        "total_s": done - start,
        "points_per_s": args.points / (done - start),
    }
    run.complete()

    # Batch: the service's log_batch, 1,000 points a call, as the writer sends them.
    log(f"cumulo: {args.points} points through log_batch")
    svc = open_services(settings).tracking
    run = exp.start_logging(display_name="batch")
    batches = [
        [("loss", v, i, SEED_TIME_MS + i) for i, v in enumerate(values[b : b + BATCH], b)]
        for b in range(0, args.points, BATCH)
    ]
    start = clock()
    for batch in batches:
        svc.log_batch(WORKSPACE, run.id, metrics=batch)
    seconds = clock() - start
    result["batch"] = {
        "points": args.points,
        "batch": BATCH,
        "seconds": seconds,
        "points_per_s": args.points / seconds,
    }
    run.complete()

    log("cumulo: reading the history")
    samples, history = repeat(lambda: run.get_metric_history("loss"), args.repeat)
    result["history"] = {
        "points": len(history["value"]),
        "complete": history["value"] == values and history["step"] == list(range(args.points)),
        **summary(samples),
    }

    log("cumulo: searching")
    search_exp = Experiment(ws, SEARCH_EXPERIMENT)

    def search() -> list[str]:
        runs = search_exp.get_runs(
            filter=SEARCH_FILTER, order_by=SEARCH_ORDER, max_results=SEARCH_LIMIT
        )
        return [r.display_name for r in runs]

    samples, names = repeat(search, args.repeat)
    result["search"] = {
        "runs": args.runs,
        "returned": len(names),
        "agrees": names == expected_top(args.runs),
        **summary(samples),
    }
    ws.flush()
    write_result(args.out, result)


if __name__ == "__main__":
    main()
