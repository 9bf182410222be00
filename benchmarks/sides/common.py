"""What every side of a benchmark shares: the seed data set, timing and the result file.

Each side (Cumulo, MLflow, FastTrackML) runs as its own process in its own
virtual environment, so this module uses the standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEARCH_EXPERIMENT = "bench-search"
LOG_EXPERIMENT = "bench-logging"
SEARCH_FILTER = "metrics.acc > 0.5 AND params.model = 'rf'"
SEARCH_ORDER = "metrics.acc DESC"
SEARCH_LIMIT = 100
BATCH = 1000
# A fixed timestamp keeps the seeded data identical on every side and every run.
SEED_TIME_MS = 1_790_000_000_000
MODELS = ("rf", "svm", "lr", "knn", "gbm")
TEAMS = ("vision", "nlp", "tabular")


@dataclass(frozen=True)
class SeedRun:
    name: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


def seed_runs(count: int, seed: int = 42) -> Iterator[SeedRun]:
    """The same runs on every side: 3 params, 3 metrics (one point each) and 2 tags a run."""
    rng = random.Random(seed)
    for i in range(count):
        yield SeedRun(
            name=f"run-{i:05d}",
            params={
                "model": rng.choice(MODELS),
                "lr": str(rng.choice((0.001, 0.01, 0.1))),
                "depth": str(rng.randint(2, 12)),
            },
            metrics={"acc": rng.random(), "loss": rng.random(), "f1": rng.random()},
            tags={"team": rng.choice(TEAMS), "stage": "seed"},
        )


def expected_top(count: int, seed: int = 42) -> list[str]:
    """The run names the benchmark search must return, in order, computed without a store."""
    hits = [
        r for r in seed_runs(count, seed) if r.metrics["acc"] > 0.5 and r.params["model"] == "rf"
    ]
    hits.sort(key=lambda r: -r.metrics["acc"])
    return [r.name for r in hits[:SEARCH_LIMIT]]


def history_values(points: int) -> list[float]:
    return [((i * 7919) % 1000) / 1000.0 for i in range(points)]


# ------------------------------------------------------------------- timing
def clock() -> float:
    return time.perf_counter()


def repeat(fn: Callable[[], Any], times: int, warmup: int = 1) -> tuple[list[float], Any]:
    """Seconds of each of ``times`` calls after ``warmup`` untimed ones, and the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    seconds = []
    for _ in range(times):
        start = clock()
        result = fn()
        seconds.append(clock() - start)
    return seconds, result


def summary(seconds: list[float]) -> dict[str, Any]:
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "samples": len(seconds),
    }


# ------------------------------------------------------------ seeded stores
def restore_or_seed(
    cache: Path | None, files: list[Path], seed: Callable[[], None], result: dict[str, Any]
) -> None:
    """Copy a seeded store from ``cache`` if it is there; else seed it and keep a copy.

    Seeding is not what is measured, and seeding MLflow through its own API
    takes minutes; the cache (keyed by the caller on the store's version) lets
    later runs skip it.
    """
    if cache is not None and all((cache / f.name).is_file() for f in files):
        for f in files:
            shutil.copyfile(cache / f.name, f)
        result["seed"] = {"from_cache": True, "seconds": None}
        return
    start = clock()
    seed()
    result["seed"] = {"from_cache": False, "seconds": clock() - start}
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copyfile(f, cache / f.name)


# ------------------------------------------------------------------ plumbing
def arguments(description: str, extra: Callable[[argparse.ArgumentParser], None]) -> Any:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed-cache", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    extra(parser)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    return args


def write_result(path: Path, result: dict[str, Any]) -> None:
    result["python"] = sys.version.split()[0]
    result["pid"] = os.getpid()
    path.write_text(json.dumps(result, indent=2) + "\n")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
