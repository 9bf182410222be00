"""Server benchmark, Cumulo's own SDK over HTTP: points delivered, and a long history read.

Run by ``benchmarks/run.py server`` with the project's own Python against ``cumulo server``.
"""

from __future__ import annotations

from typing import Any

from common import arguments, clock, history_values, log, repeat, summary, write_result

import cumulo
from cumulo import Experiment, Workspace


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--url", required=True, help="the server's base URL")
        parser.add_argument("--workspace", default="bench")
        parser.add_argument("--points", type=int, default=1_000_000)

    args = arguments("Cumulo SDK over HTTP", extra)
    result: dict[str, Any] = {"side": "cumulo-sdk", "version": cumulo.__version__}
    ws = Workspace.connect(args.url, args.workspace)
    run = Experiment(ws, "bench-sdk").start_logging(display_name="sdk")
    values = history_values(args.points)

    # Delivered: from the first run.log until flush() says the server stored every point.
    log(f"sdk: {args.points} run.log calls over HTTP")
    start = clock()
    for v in values:
        run.log("loss", v)
    enqueued = clock()
    run.flush(timeout=600)
    done = clock()
    result["logging"] = {
        "points": args.points,
        "call_us": (enqueued - start) / args.points * 1e6,
        "total_s": done - start,
        "points_per_s": args.points / (done - start),
    }
    run.complete()

    log("sdk: reading the history")
    samples, history = repeat(lambda: run.get_metric_history("loss"), args.repeat)
    result["history"] = {
        "points": len(history["value"]),
        "complete": history["value"] == values and history["step"] == list(range(args.points)),
        **summary(samples),
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
