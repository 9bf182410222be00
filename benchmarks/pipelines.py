"""``pipelines``: a chain, a fan-out and a join, Cumulo's pipelines vs Metaflow's local runtime.

    python benchmarks/pipelines.py [--work 0.2] [--workers 4]
    python benchmarks/run.py pipelines

The flow: a chain of 9 steps, then a fan-out of 10 steps reading the chain's
last output, then a join reading all ten; each step works ``--work`` seconds
(a sleep) and passes a small file on. At most ``--workers`` steps run at once:
Cumulo's steps run on a ``LocalPool`` of that many nodes, Metaflow's with
``--max-workers``. The ideal is the work along the critical path with that
many workers: 9 chain steps + ceil(10 / workers) waves of the fan-out + the
join, times ``--work``.

Measured, each in the same invocation:

- Cumulo: a warm-up run of the same shape (it starts the pool's nodes), then a
  timed run where every step runs, then the same pipeline submitted again,
  where every step is reused (decided and finished without running);
- Metaflow (in its own environment, ``benchmarks/.work/metaflow-venv``,
  created on first use): ``python flow.py --no-pylint run --max-workers N``,
  then ``python flow.py --no-pylint resume`` (every step cloned from the run).

The timed span is from the submit call (the command's start) until the run
has ended (the command has exited).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h

NAME = "pipelines"
TITLE = "Pipelines: a chain, a fan-out and a join, Cumulo vs Metaflow's local runtime"
METAFLOW = "metaflow==2.19.39"
METAFLOW_VENV = h.Venv(h.WORK / "metaflow-venv", (METAFLOW,))
CHAIN, FAN = 9, 10

STEP = """\
import argparse, pathlib, time
p = argparse.ArgumentParser()
p.add_argument("--name"); p.add_argument("--inp", action="append", default=[])
p.add_argument("--out"); p.add_argument("--work", type=float); p.add_argument("--salt")
a = p.parse_args()
time.sleep(a.work)
text = "".join(pathlib.Path(i, "data.txt").read_text() for i in a.inp)
if a.out:
    pathlib.Path(a.out, "data.txt").write_text(text[-200:] + a.name + ";")
"""

FLOW = """\
import time
from metaflow import FlowSpec, step

WORK = {work}


class ChainFanFlow(FlowSpec):
    @step
    def start(self):
        self.data = ""
        self.next(self.s1)
{chain}
    @step
    def fan(self):
        time.sleep(WORK)
        self.data += f"f{{self.input}};"
        self.next(self.join)

    @step
    def join(self, inputs):
        time.sleep(WORK)
        self.data = "".join(i.data for i in inputs)[-200:]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ChainFanFlow()
"""

CHAIN_STEP = """
    @step
    def s{i}(self):
        time.sleep(WORK)
        self.data += "s{i};"
{after}
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", type=float, default=0.2, help="seconds each step works")
    p.add_argument("--workers", type=int, default=4, help="steps at a time")
    p.add_argument("--no-metaflow", action="store_true", help="measure Cumulo only")
    return p


def ideal(work: float, workers: int) -> float:
    return (CHAIN + math.ceil(FAN / workers) + 1) * work


# ------------------------------------------------------------------ Cumulo
def measure_cumulo(work: float, workers: int, tmp: Path) -> dict[str, Any]:
    os.environ["CUMULO_HOME"] = str(tmp / "home")
    from cumulo import (
        ComputeTarget,
        Experiment,
        LocalPool,
        Pipeline,
        PipelineData,
        PythonScriptStep,
        Workspace,
    )

    src = tmp / "src"
    src.mkdir()
    (src / "step.py").write_text(STEP)
    ws = Workspace.create("bench")
    ComputeTarget.create(
        ws, "pool", LocalPool(max_nodes=workers, idle_seconds_before_scaledown=600)
    )

    def pipeline(salt: str) -> Pipeline:
        common = ["--work", work, "--salt", salt]
        steps, prev = [], None
        for i in range(1, CHAIN + 1):
            out = PipelineData(f"s{i}")
            args = [*common, "--name", f"s{i}", "--out", out]
            if prev is not None:
                args += ["--inp", prev]
            steps.append(PythonScriptStep(f"s{i}", "step.py", src, args, outputs=[out],
                                          compute_target="pool"))  # fmt: skip
            prev = out
        fans = []
        for i in range(1, FAN + 1):
            out = PipelineData(f"f{i}")
            fans.append(out)
            args = [*common, "--name", f"f{i}", "--inp", prev, "--out", out]
            steps.append(PythonScriptStep(f"f{i}", "step.py", src, args, outputs=[out],
                                          compute_target="pool"))  # fmt: skip
        join_args: list[Any] = [*common, "--name", "join"]
        for f in fans:
            join_args += ["--inp", f]
        steps.append(PythonScriptStep("join", "step.py", src, join_args, compute_target="pool"))
        return Pipeline(ws, steps)

    exp = Experiment(ws, "bench")

    def timed(p: Pipeline) -> tuple[float, Any]:
        started = time.perf_counter()
        run = exp.submit(p)
        details = run.wait_for_completion(show_output=False, timeout=600)
        took = time.perf_counter() - started
        if details["status"] != "Completed":
            raise h.BenchError(f"The pipeline ended {details['status']}: {details.get('error')}")
        return took, run

    h.log("cumulo: warm-up run (starts the pool's nodes)")
    warm, _ = timed(pipeline("warm-" + uuid.uuid4().hex))
    salt = uuid.uuid4().hex
    h.log("cumulo: timed run")
    ran, run = timed(pipeline(salt))
    steps = run.get_steps()
    if any(s["state"] != "completed" for s in steps):
        raise h.BenchError("A step of the timed run did not run.")
    h.log("cumulo: the same pipeline again (every step reused)")
    reused, again = timed(pipeline(salt))
    if any(s["state"] != "reused" for s in again.get_steps()):
        raise h.BenchError("A step of the repeated run was not reused.")
    from cumulo.services.context import close_all

    close_all(stop_nodes=True)
    return {"warm": warm, "ran": ran, "reused": reused, "steps": len(steps)}


# ---------------------------------------------------------------- Metaflow
def flow_source(work: float) -> str:
    chain = ""
    fan_out = '        self.items = list(range(10))\n        self.next(self.fan, foreach="items")'
    for i in range(1, CHAIN + 1):
        after = f"        self.next(self.s{i + 1})" if i < CHAIN else fan_out
        chain += CHAIN_STEP.format(i=i, after=after)
    return FLOW.format(work=work, chain=chain)


def measure_metaflow(work: float, workers: int, tmp: Path) -> dict[str, Any]:
    python = Path(os.environ.get("METAFLOW_PYTHON") or METAFLOW_VENV.ensure())
    folder = tmp / "metaflow"
    folder.mkdir()
    (folder / "flow.py").write_text(flow_source(work))
    env = {**h.side_env(), "USERNAME": "bench", "METAFLOW_HOME": str(folder)}

    def timed(*args: str) -> float:
        started = time.perf_counter()
        done = subprocess.run(
            [str(python), "flow.py", "--no-pylint", *args],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        took = time.perf_counter() - started
        if done.returncode != 0:
            raise h.BenchError(f"metaflow {args[0]} failed:\n{done.stderr[-2000:]}")
        return took

    h.log("metaflow: warm-up run")
    warm = timed("run", "--max-workers", str(workers))
    h.log("metaflow: timed run")
    ran = timed("run", "--max-workers", str(workers))
    h.log("metaflow: resume (every step cloned)")
    reused = timed("resume")
    version = subprocess.run(
        [str(python), "-c", "import metaflow; print(metaflow.__version__)"],
        capture_output=True,
        text=True,
        env=env,
    ).stdout.strip()
    return {"warm": warm, "ran": ran, "reused": reused, "version": version}


# ------------------------------------------------------------------ report
def report(
    args: argparse.Namespace,
    command: list[str],
    started: float,
    load_at_start: float | None,
    cumulo: dict[str, Any],
    metaflow: dict[str, Any] | None,
) -> str:
    best = ideal(args.work, args.workers)
    rows = [
        [
            "Cumulo pipeline (`LocalPool`, embedded)",
            h.duration(cumulo["ran"]),
            f"{cumulo['ran'] / best:.1f}×",
            h.duration(cumulo["reused"]),
            h.duration(cumulo["warm"]),
        ]
    ]
    if metaflow is not None:
        rows.append(
            [
                f"Metaflow {metaflow['version']} local runtime",
                h.duration(metaflow["ran"]),
                f"{metaflow['ran'] / best:.1f}×",
                h.duration(metaflow["reused"]) + " (`resume`)",
                h.duration(metaflow["warm"]),
            ]
        )
    lines = [
        f"## {TITLE}",
        "",
        h.header(
            NAME,
            command,
            started,
            [
                f"- Flow: {CHAIN} chained steps, a fan-out of {FAN}, a join; each step works "
                f"{args.work} s and passes a small file on; at most {args.workers} steps at a "
                f"time; ideal {h.duration(best)} "
                f"({CHAIN} + {math.ceil(FAN / args.workers)} + 1 steps along the critical path)",
            ],
            load_at_start,
        ),
        "",
        h.table(
            ["", "all steps run", "vs ideal", "re-run, every step reused", "first (warm-up) run"],
            rows,
        ),
        "",
        f"- Goal: within 2× of the ideal: {cumulo['ran'] / best:.1f}× — "
        f"**{'met' if cumulo['ran'] <= 2 * best else 'not met'}**; a fully reused re-run under "
        f"0.5 s: {h.duration(cumulo['reused'])} — "
        f"**{'met' if cumulo['reused'] < 0.5 else 'not met'}**",
    ]
    if metaflow is not None:
        lines.append(
            f"- Against Metaflow: all steps run {metaflow['ran'] / cumulo['ran']:.1f}× faster; "
            f"the reused re-run {metaflow['reused'] / cumulo['reused']:.1f}× faster"
        )
    else:
        lines.append("- Metaflow was not measured in this run (`--no-metaflow`).")
    lines += [
        "",
        "What is timed: from the submit call to the pipeline's run ending (Cumulo: "
        "`exp.submit(pipeline)` then `wait_for_completion`, both in the timing process, "
        "which hosts the pipeline driver and the scheduler), and Metaflow's `run` and "
        "`resume` commands from start to exit. Each Cumulo step is a job of its own on a "
        "pool node (its own Python process), its output folder packed and stored "
        "content-addressed when it ends; each Metaflow task is a process of its own too. "
        "The reused re-run submits the same pipeline again: each step's fingerprint "
        "(code, arguments, parameters, environment, inputs' content) is found completed, so "
        "it ends `Completed (reused from run ...)` without running; Metaflow's `resume` "
        "clones every task of the previous run. The warm-up runs start Cumulo's pool nodes "
        "and Metaflow's local metadata; their own figures are in the last column.",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace, command: list[str]) -> str:
    opts = parser().parse_args([])
    for k in ("work", "workers", "no_metaflow"):
        if hasattr(args, k):
            setattr(opts, k, getattr(args, k))
    return _measure(opts, command)


def _measure(args: argparse.Namespace, command: list[str]) -> str:
    started, load_at_start = time.time(), h.load()
    with tempfile.TemporaryDirectory(prefix="cumulo-bench-pipelines-") as tmp:
        cumulo = measure_cumulo(args.work, args.workers, Path(tmp))
        metaflow = (
            None if args.no_metaflow else measure_metaflow(args.work, args.workers, Path(tmp))
        )
    return report(args, command, started, load_at_start, cumulo, metaflow)


def main() -> int:
    args = parser().parse_args()
    command = ["python", "benchmarks/pipelines.py", *sys.argv[1:]]
    section = _measure(args, command)
    h.write_section(NAME, section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
