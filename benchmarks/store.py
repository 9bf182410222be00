"""``store``: Cumulo's embedded store against MLflow's embedded SQLite store.

Both sides get the same work in the same run, each in a fresh process on a
SQLite file in a temporary folder: 100,000 metric points through the natural
per-call API and through the batch API, a filtered and ordered search over
10,000 identically seeded runs, and reads of a 100,000-point history.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import harness as h

NAME = "store"
TITLE = "Embedded store: Cumulo vs MLflow on SQLite"
FASTER = ("faster", "slower")
TARGETS = {"per_call": 50.0, "batch": 5.0, "search": 5.0, "history": 5.0}


def run(args: argparse.Namespace, command: list[str]) -> str:
    started, load_at_start = time.time(), h.load()
    mlflow_python = h.MLFLOW_VENV.ensure()
    cumulo_cache = h.seed_cache("cumulo", h.cumulo_schema_hash(), args.runs)
    mlflow_cache = h.seed_cache("mlflow", h.MLFLOW_REQUIREMENT.split("==")[1], args.runs)
    if args.fresh:
        for cache in (cumulo_cache, mlflow_cache):
            shutil.rmtree(cache, ignore_errors=True)
    h.prune_caches(cumulo_cache)
    shared = ["--runs", str(args.runs), "--repeat", str(args.repeat), "--points", str(args.points)]
    tmp = Path(tempfile.mkdtemp(prefix="cumulo-bench-store-"))
    try:
        h.log("store: Cumulo side")
        cumulo = h.run_side(
            h.cumulo_python(),
            "store_cumulo.py",
            tmp / "cumulo",
            [*shared, "--seed-cache", str(cumulo_cache)],
        )
        h.log("store: MLflow side")
        mlflow = h.run_side(
            mlflow_python,
            "store_mlflow.py",
            tmp / "mlflow",
            [*shared, "--seed-cache", str(mlflow_cache), "--calls", str(args.mlflow_calls)],
        )
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return render(cumulo, mlflow, command, started, load_at_start)


def render(
    c: dict[str, Any],
    m: dict[str, Any],
    command: list[str],
    started: float,
    load_at_start: float | None = None,
) -> str:
    mv = f"MLflow {m['version']}"
    per_call = c["per_call"]["points_per_s"] / m["per_call"]["points_per_s"]
    batch = c["batch"]["points_per_s"] / m["batch"]["points_per_s"]
    search = m["search"]["median_s"] / c["search"]["median_s"]
    history = m["history"]["median_s"] / c["history"]["median_s"]
    rows = [
        [
            "per-call logging, points/s",
            f"{h.rate(c['per_call']['points_per_s'])} "
            f"({c['per_call']['points']:,} `run.log` + `flush()`)",
            f"{h.rate(m['per_call']['points_per_s'])} "
            f"({m['per_call']['points']:,} `mlflow.log_metric`)",
            h.ratio(per_call),
            f"≥ {TARGETS['per_call']:.0f}×: {h.verdict(per_call, TARGETS['per_call'])}",
        ],
        [
            "cost of one logging call",
            f"{c['per_call']['call_us']:.1f} µs",
            f"{m['per_call']['call_us']:,.0f} µs",
            h.compare(m["per_call"]["call_us"] / c["per_call"]["call_us"], ("less", "more")),
            "",
        ],
        [
            f"batch ingest, points/s ({c['batch']['batch']:,} a batch)",
            f"{h.rate(c['batch']['points_per_s'])} (`TrackingService.log_batch`)",
            f"{h.rate(m['batch']['points_per_s'])} (`MlflowClient.log_batch`)",
            h.ratio(batch),
            f"≥ {TARGETS['batch']:.0f}×: {h.verdict(batch, TARGETS['batch'])}",
        ],
        [
            f"search {c['search']['runs']:,} runs, top {c['search']['returned']}, median",
            h.duration(c["search"]["median_s"]) + _check(c["search"]["agrees"]),
            h.duration(m["search"]["median_s"]) + _check(m["search"]["agrees"]),
            h.compare(search, FASTER),
            f"≥ {TARGETS['search']:.0f}×: {h.verdict(search, TARGETS['search'])}",
        ],
        [
            f"read a {c['history']['points']:,}-point history, median",
            h.duration(c["history"]["median_s"]) + _check(c["history"]["complete"]),
            h.duration(m["history"]["median_s"]) + _check(m["history"]["complete"]),
            h.compare(history, FASTER),
            f"≥ {TARGETS['history']:.0f}×: {h.verdict(history, TARGETS['history'])}",
        ],
    ]
    notes = [
        "",
        h.table(["", "Cumulo", mv, "Cumulo vs MLflow", "target"], rows),
        "",
        "What each line measures:",
        "",
        "- *Per-call logging*: Cumulo's `run.log(name, value)` in a loop, then `run.flush()` "
        "(the time until every point is stored); MLflow's `mlflow.log_metric` inside "
        "`mlflow.start_run()`, which writes synchronously. MLflow takes tens of minutes for "
        f"100,000 calls, so it logs {m['per_call']['points']:,} points and the rate is "
        "compared. *Cost of one call*: the time the training loop spends in one call "
        "(for Cumulo, enqueueing; a background thread stores the points meanwhile).",
        "- *Batch ingest*: pre-built batches of 1,000 points of one series, one "
        "`log_batch` call each, into a store that already holds the seeded runs.",
        f"- *Search*: `{_filter()}` ordered by `metrics.acc DESC`, "
        f"first {c['search']['returned']} runs with their params, tags and latest metrics "
        f"(`Experiment.get_runs` / `MlflowClient.search_runs`); median of {c['search']['samples']}"
        " after one warm-up. Both stores hold the same seeded runs (3 params, 3 metrics, "
        "2 tags each); ✓ means the run names returned, in order, equal the expected ones.",
        "- *History*: all points of the series logged by the batch step "
        "(`Run.get_metric_history` / `MlflowClient.get_metric_history`); median of "
        f"{c['history']['samples']} after one warm-up; ✓ means every value came back.",
        f"- Seeding: Cumulo {_seed(c)}, MLflow {_seed(m)} (not part of any figure).",
    ]
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            h.header(
                NAME,
                command,
                started,
                [f"- Rival: {mv} (`benchmarks/.work/mlflow-venv`), `sqlite:///` tracking URI"],
                load_at_start,
            ),
            *notes,
        ]
    )


def _check(ok: bool) -> str:
    return " ✓" if ok else " (**wrong result**)"


def _filter() -> str:
    return "metrics.acc > 0.5 AND params.model = 'rf'"


def _seed(result: dict[str, Any]) -> str:
    seed = result.get("seed") or {}
    if seed.get("from_cache"):
        return "copied from the seed cache"
    return f"seeded in {seed.get('seconds', 0):.0f} s"
