"""Run Cumulo's benchmarks against MLflow (and FastTrackML) and write docs/benchmarks.md.

    python benchmarks/run.py              # every benchmark
    python benchmarks/run.py store        # one (or several) by name

Each benchmark rewrites only its own section of the figures file.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

# name -> module under benchmarks/; each has run(args, command) -> markdown section
BENCHMARKS = {"store": "store", "server": "server"}


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
    p.add_argument("--runs", type=int, default=10_000, help="runs seeded for the search")
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
        try:
            section = importlib.import_module(BENCHMARKS[name]).run(args, command)
        except harness.BenchError as exc:
            print(f"benchmark {name} failed: {exc}", file=sys.stderr)
            failed += 1
            continue
        harness.write_section(name, section, args.doc)
        print(section)
        print(f"\n(written to {args.doc})\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
