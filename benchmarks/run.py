"""Run Cumulo's benchmarks against their rivals and write docs/benchmarks.md.

    python benchmarks/run.py             # all: store, server, tracking, startup, studio,
                                         # serving, jobs, failover, sysmetrics, sweeps, envs
    python benchmarks/run.py store jobs   # some, by name

Each benchmark rewrites only its own section of the figures file. ``studio.py``
and ``serving.py`` also run on their own (``python benchmarks/studio.py``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness


def _module_run(name: str) -> Callable[[argparse.Namespace, list[str]], str]:
    """A benchmark whose module under benchmarks/ has run(args, command) -> markdown section."""

    def run(args: argparse.Namespace, command: list[str]) -> str:
        section: str = importlib.import_module(name).run(args, command)
        return section

    return run


def run_studio(args: argparse.Namespace, command: list[str]) -> str:
    """``studio.py``'s measuring and report, with this entry point's options."""
    studio: Any = importlib.import_module("studio")
    if not Path(studio.CHROMIUM).exists():
        raise harness.BenchError(f"Chromium is missing at {studio.CHROMIUM}: run make chromium")
    opts = argparse.Namespace(
        runs=args.runs,
        metrics=args.metrics,
        points=args.chart_points,
        repeat=args.repeat,
        fresh=args.fresh,
    )
    studio.WORK.mkdir(parents=True, exist_ok=True)
    started = time.time()
    measured = studio.measure(opts)
    (studio.WORK / "last.json").write_text(json.dumps(measured, indent=2))
    section: str = studio.report(opts, measured, command, started)
    return section


def run_serving(args: argparse.Namespace, command: list[str]) -> str:
    """``serving.py``'s sides and report, with this entry point's options."""
    serving: Any = importlib.import_module("serving")
    opts = serving.parser().parse_args(
        [
            f"--requests={args.requests}",
            f"--clients={args.clients}",
            f"--seconds={args.seconds}",
            f"--batches={args.batches}",
        ]
    )
    started, load_at_start = time.time(), harness.load()
    results = serving.measure_all(opts)
    section: str = serving.report(results, command, started, load_at_start)
    return section


# name -> how to run it; the order is the order of `python benchmarks/run.py`
BENCHMARKS: dict[str, Callable[[argparse.Namespace, list[str]], str]] = {
    "store": _module_run("store"),
    "server": _module_run("server"),
    "tracking": _module_run("tracking"),
    "startup": _module_run("startup"),
    "studio": run_studio,
    "serving": run_serving,
    "jobs": _module_run("job_latency"),
    "failover": _module_run("failover"),
    "datasets": _module_run("datasets"),
    "sysmetrics": _module_run("sysmetrics_overhead"),
    "sweeps": _module_run("sweep_overhead"),
    "envs": _module_run("env_build"),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Cumulo vs MLflow side by side; figures go to docs/benchmarks.md.",
    )
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)",
    )
    p.add_argument(
        "--runs",
        type=int,
        default=10_000,
        help="runs seeded for the search (store, server, studio)",
    )
    p.add_argument("--points", type=int, default=100_000, help="metric points logged")
    p.add_argument(
        "--mlflow-calls",
        type=int,
        default=2_000,
        help="per-call mlflow.log_metric calls on the embedded store (they are slow)",
    )
    p.add_argument(
        "--server-calls",
        type=int,
        default=300,
        help="per-call mlflow.log_metric calls against each server",
    )
    p.add_argument(
        "--sdk-points",
        type=int,
        default=1_000_000,
        help="points logged through Cumulo's SDK over HTTP (the history read is this long)",
    )
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions of reads")
    p.add_argument(
        "--server-repeat", type=int, default=3, help="timed repetitions of reads through servers"
    )
    p.add_argument(
        "--servers",
        default="cumulo,mlflow,mlflow-1,fml",
        help="servers compared: cumulo, mlflow, mlflow-1 (--workers 1), fml (FastTrackML)",
    )
    importlib.import_module("tracking").add_arguments(p)
    importlib.import_module("startup").add_arguments(p)
    studio = p.add_argument_group("studio")
    studio.add_argument("--metrics", type=int, default=20, help="metrics of each seeded run")
    studio.add_argument(
        "--chart-points", type=int, default=1_000_000, help="points of the charted metric"
    )
    serving = p.add_argument_group("serving")
    serving.add_argument(
        "--requests", type=int, default=3000, help="sequential single-row requests"
    )
    serving.add_argument("--clients", type=int, default=16, help="concurrent clients")
    serving.add_argument("--seconds", type=float, default=10.0, help="length of the concurrent run")
    serving.add_argument("--batches", type=int, default=30, help="1,000-row requests")
    jobs = p.add_argument_group("jobs")
    jobs.add_argument("--submissions", type=int, default=20, help="timed submissions of each row")
    jobs.add_argument(
        "--targets", default="local,pool,ray", help="compute targets: local, pool, ray"
    )
    jobs.add_argument(
        "--gap",
        type=float,
        default=1.0,
        help="seconds between a run's end and the next spaced submission",
    )
    data = p.add_argument_group("datasets")
    data.add_argument("--gib", type=float, default=1.0, help="size of the registered file in GiB")
    sweeps = p.add_argument_group("sweeps")
    sweeps.add_argument("--trials", type=int, default=50, help="trials of the timed sweep")
    sweeps.add_argument("--concurrent", type=int, default=4, help="trials at a time")
    sweeps.add_argument("--work", type=float, default=0.5, help="seconds each trial works")
    envs = p.add_argument_group("envs")
    envs.add_argument(
        "--env-repeat", type=int, default=3, help="environment builds of each way (uv, pip)"
    )
    p.add_argument("--fresh", action="store_true", help="seed again instead of using the cache")
    p.add_argument("--keep", action="store_true", help="keep the temporary folders and logs")
    p.add_argument(
        "--doc",
        type=Path,
        default=harness.DOC,
        help="figures file to update (default: docs/benchmarks.md)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    names = args.names or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser().error(
            f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    command = ["python", "benchmarks/run.py", *argv]
    failed = 0
    for name in names:
        harness.log(f"benchmark {name}")
        environ = dict(os.environ)
        try:
            section = BENCHMARKS[name](args, command)
        except harness.BenchError as exc:
            print(f"benchmark {name} failed: {exc}", file=sys.stderr)
            failed += 1
            continue
        except Exception:  # the other benchmarks still run
            traceback.print_exc()
            print(f"benchmark {name} failed (traceback above)", file=sys.stderr)
            failed += 1
            continue
        finally:  # a benchmark run in this process may set variables the next one must not see
            os.environ.clear()
            os.environ.update(environ)
        harness.write_section(name, section, args.doc)
        print(section)
        print(f"\n(written to {args.doc})\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
