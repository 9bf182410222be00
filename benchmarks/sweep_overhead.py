"""``sweeps``: what running a sweep costs beyond the trials' own work, against Optuna alone
and Ray Tune driving the same script.

    python benchmarks/run.py sweeps [--trials 50] [--concurrent 4] [--work 0.5]

A script that works ``--work`` seconds (it sleeps) and reports one value is
run ``--trials`` times, ``--concurrent`` at a time, with a random ``--x`` each
time; the ideal wall time is ``trials * work / concurrent``. Three drivers:

- Cumulo: a ``HyperDriveConfig`` sweep (random sampling) on a ``LocalPool``
  of ``--concurrent`` nodes, each trial a job whose script logs the value with
  ``run.log``; timed from the submit call until the parent run ended (a
  four-trial sweep first starts the pool's nodes, timed apart).
- Optuna alone: ``study.optimize(n_jobs=concurrent)``, each trial running the
  script in a subprocess and reading the value it prints; once more with the
  script importing Cumulo and logging to an offline run (what a tracked
  script pays for the import).
- Ray Tune (if ``ray[tune]`` imports): ``Tuner`` with ``max_concurrent_trials``,
  each trial running the script in a subprocess; timed with ``ray.init``
  (a local cluster started and stopped by the run).

The measuring runs in a process of its own (this file with ``--side``) with an
embedded workspace in a temporary ``CUMULO_HOME``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h

NAME = "sweeps"
TITLE = "Sweeps: orchestration overhead, Cumulo vs Optuna alone vs Ray Tune"
GOAL = 1.2  # Cumulo's wall time within this many times the ideal
SCRIPT = "work.py"
# The same script for every driver: as a Cumulo job it logs its value, otherwise it prints it.
SCRIPT_TEXT = """\
import argparse, os, time
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
p.add_argument("--work", type=float)
a = p.parse_args()
time.sleep(a.work)
value = (a.x - 0.3) ** 2
if os.environ.get("CUMULO_RUN_ID") or os.environ.get("BENCH_LOG_WITH_CUMULO"):
    from cumulo import Run
    Run.get_context().log("loss", value)  # outside a job: an offline run
if not os.environ.get("CUMULO_RUN_ID"):
    print(f"RESULT loss={value}")
"""


# ------------------------------------------------------------------ parent
def run(args: argparse.Namespace, command: list[str]) -> str:
    started, load_at_start = time.time(), h.load()
    tmp = Path(tempfile.mkdtemp(prefix="cumulo-bench-sweeps-"))
    ok = False
    try:
        h.log(f"sweeps: {args.trials} trials of {args.work} s, {args.concurrent} at a time")
        result = h.run_side(
            h.cumulo_python(),
            str(Path(__file__).resolve()),
            tmp / "side",
            [
                "--side",
                f"--trials={args.trials}",
                f"--concurrent={args.concurrent}",
                f"--work={args.work}",
            ],
            env=h.side_env(CUMULO_HOME=str(tmp / "home")),
            timeout=1800,
        )
        ok = True
    finally:
        if ok and not getattr(args, "keep", False):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            h.log(f"sweeps: work folder and logs kept in {tmp}")
    return render(result, command, started, load_at_start)


# -------------------------------------------------------------------- side
def side(workdir: Path, out: Path, trials: int, concurrent: int, work: float) -> None:
    src = workdir / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / SCRIPT).write_text(SCRIPT_TEXT)
    result: dict[str, Any] = {"trials": trials, "concurrent": concurrent, "work_s": work}
    result["ideal_s"] = trials * work / concurrent
    drivers: list[tuple[str, Any]] = [
        ("cumulo", cumulo_side),
        ("optuna", optuna_side),
        ("optuna_cumulo", lambda *a: optuna_side(*a, with_cumulo=True)),
        ("ray", ray_side),
    ]
    for name, measure in drivers:
        h.log(f"sweeps: {name}")
        try:
            result[name] = measure(src, trials, concurrent, work)
        except Exception as exc:  # one driver failing leaves the others' figures
            h.log(f"sweeps: {name} failed: {type(exc).__name__}: {exc}")
            result[name] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    out.write_text(json.dumps(result, indent=2))


def cumulo_side(src: Path, trials: int, concurrent: int, work: float) -> dict[str, Any]:
    import optuna

    from cumulo import (
        ComputeTarget,
        Experiment,
        HyperDriveConfig,
        LocalPool,
        RandomParameterSampling,
        ScriptRunConfig,
        Workspace,
        uniform,
    )
    from cumulo.services.context import close_all

    ws = Workspace.create("bench-sweeps", exist_ok=True)
    ComputeTarget.create(
        ws, "pool", LocalPool(max_nodes=concurrent, idle_seconds_before_scaledown=600)
    )
    exp = Experiment(ws, "overhead")

    def sweep(total: int) -> tuple[float, Any]:
        config = HyperDriveConfig(
            run_config=ScriptRunConfig(
                src, SCRIPT, arguments=["--work", str(work)], compute_target="pool"
            ),
            hyperparameter_sampling=RandomParameterSampling({"x": uniform(0, 1)}, seed=1),
            primary_metric_name="loss",
            primary_metric_goal="minimize",
            max_total_runs=total,
            max_concurrent_runs=concurrent,
        )
        t0 = time.perf_counter()
        parent = exp.submit(config)
        while parent.refresh().info.status not in ("Completed", "Failed", "Canceled"):
            time.sleep(0.02)
        return time.perf_counter() - t0, parent

    try:
        warm_s, _ = sweep(concurrent)  # starts the pool's nodes
        wall, parent = sweep(trials)
        info = parent.refresh().info
        children = list(parent.get_children())
        best = parent.get_best_run_by_primary_metric()
        return {
            "wall_s": wall,
            "warmup_s": warm_s,
            "status": info.status,
            "trials": len(children),
            "completed": sum(c.info.status == "Completed" for c in children),
            "best_loss": best.get_metrics()["loss"] if best else None,
            "optuna": optuna.__version__,
            **_breakdown(ws, parent, concurrent),
        }
    finally:
        close_all(stop_nodes=True)


def _breakdown(ws: Any, parent: Any, concurrent: int) -> dict[str, Any]:
    """Where a trial's time went, from the runs' status histories (milliseconds, stamped where
    each change happened): the sweep driver's share and the job's."""
    tracking = ws.transport.tracking
    runs = [tracking.get_run(ws.name, c.id) for c in parent.get_children()]
    runs.sort(key=lambda r: r.created_at)
    at = [{c.status: c.at for c in r.status_history} for r in runs]
    ends = sorted(r.ended_at for r in runs if r.ended_at)
    # trial n takes the slot of the n-concurrent'th trial to end: the driver's reaction time
    dispatch = [
        (runs[n].created_at - ends[n - concurrent]) / 1000 for n in range(concurrent, len(runs))
    ]
    first = (runs[0].created_at - parent.info.created_at) / 1000 if runs else 0.0
    closing = ((parent.refresh().info.ended_at or 0) - ends[-1]) / 1000 if ends else 0.0

    def median(key_from: str, key_to: str) -> float | None:
        spans = [(a[key_to] - a[key_from]) / 1000 for a in at if key_from in a and key_to in a]
        return statistics.median(spans) if spans else None

    return {
        "dispatch_median_s": statistics.median(dispatch) if dispatch else None,
        "first_trial_s": first,
        "closing_s": closing,
        "queued_to_running_s": median("Queued", "Running"),
        "running_s": median("Running", "Finalizing"),
        "finalizing_s": median("Finalizing", "Completed"),
    }


def _script_trial(src: Path, x: float, work: float, with_cumulo: bool = False) -> float:
    env = dict(os.environ, BENCH_LOG_WITH_CUMULO="1") if with_cumulo else None
    proc = subprocess.run(
        [sys.executable, str(src / SCRIPT), "--x", repr(x), "--work", str(work)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return float(proc.stdout.rsplit("RESULT loss=", 1)[1].split()[0])


def optuna_side(
    src: Path, trials: int, concurrent: int, work: float, with_cumulo: bool = False
) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        return _script_trial(src, trial.suggest_float("x", 0, 1), work, with_cumulo)

    t0 = time.perf_counter()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(1))
    # a script that fails (the machine may be overloaded) is a failed trial, as in a sweep
    study.optimize(
        objective, n_trials=trials, n_jobs=concurrent, catch=(subprocess.CalledProcessError,)
    )
    wall = time.perf_counter() - t0
    failed = sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials)
    return {
        "wall_s": wall,
        "trials": len(study.trials),
        "failed": failed,
        "best_loss": study.best_value,
    }


def ray_side(src: Path, trials: int, concurrent: int, work: float) -> dict[str, Any]:
    try:
        import ray
        from ray import tune
    except ImportError as exc:
        return {"skipped": f"Ray Tune is not installed ({exc.name})"}

    def trainable(config: dict[str, Any]) -> dict[str, float]:
        return {"loss": _script_trial(src, config["x"], work)}

    t0 = time.perf_counter()
    ray.init(num_cpus=concurrent, include_dashboard=False, log_to_driver=False)
    try:
        t_init = time.perf_counter() - t0
        tuner = tune.Tuner(
            trainable,
            param_space={"x": tune.uniform(0, 1)},
            tune_config=tune.TuneConfig(
                num_samples=trials,
                max_concurrent_trials=concurrent,
                metric="loss",
                mode="min",
            ),
            run_config=tune.RunConfig(storage_path=str(src.parent / "ray-results"), verbose=0),
        )
        grid = tuner.fit()
        wall = time.perf_counter() - t0
        best = grid.get_best_result()
        return {
            "wall_s": wall,
            "init_s": t_init,
            "trials": len(grid),
            "best_loss": best.metrics["loss"],
            "ray": ray.__version__,
        }
    finally:
        ray.shutdown()


# ------------------------------------------------------------------ report
def render(result: dict[str, Any], command: list[str], started: float, load: float | None) -> str:
    ideal = result["ideal_s"]
    c, o, r = result["cumulo"], result["optuna"], result["ray"]
    lines = [
        f"## {TITLE}",
        "",
        h.header(
            NAME,
            command,
            started,
            [
                f"- Work: {result['trials']} trials of a script that sleeps {result['work_s']} s, "
                f"{result['concurrent']} at a time: ideal {ideal:.2f} s",
                f"- Optuna {c.get('optuna', '?')}; Ray "
                + (r.get("ray") or ("not installed" if "skipped" in r else "(failed, below)")),
            ],
            load_at_start=load,
        ),
        "",
        "| driver | wall time | × ideal | trials | best loss | note |",
        "|---|---|---|---|---|---|",
    ]

    def row(name: str, m: dict[str, Any], note: str) -> str:
        if "wall_s" not in m:
            return f"| {name} | — | — | — | — | {m.get('error') or m.get('skipped')} |"
        if m.get("failed"):
            note += f"; {m['failed']} trials failed"
        return (
            f"| {name} | {m['wall_s']:.2f} s | {m['wall_s'] / ideal:.2f}× | {m['trials']} | "
            f"{m['best_loss']:.4f} | {note} |"
        )

    lines.append(
        row(
            "Cumulo sweep on a `LocalPool`",
            c,
            f"each trial a job; pool started by a {result['concurrent']}-trial warm-up sweep "
            f"({c.get('warmup_s', 0):.2f} s)",
        )
    )
    lines.append(row("Optuna alone, `n_jobs`", o, "a subprocess per trial"))
    lines.append(
        row(
            "Optuna alone, the script logging with Cumulo",
            result.get("optuna_cumulo", {}),
            "as above, the script importing Cumulo and logging to an offline run",
        )
    )
    lines.append(
        row(
            "Ray Tune `Tuner`",
            r,
            f"a subprocess per trial; `ray.init` included ({r.get('init_s', 0):.2f} s)",
        )
    )
    if "wall_s" in c:
        lines += [
            "",
            "Where a Cumulo trial's time goes (medians over the timed sweep's trials):",
            "",
            "| sweep driver: a trial ends → the next one's job submitted | submit → first "
            "trial | last trial ends → sweep ends | job: queued → running | job: running "
            "(the script) | job: finalizing |",
            "|---|---|---|---|---|---|",
            "| "
            + " | ".join(
                f"{c[k]:.2f} s" if c.get(k) is not None else "—"
                for k in (
                    "dispatch_median_s",
                    "first_trial_s",
                    "closing_s",
                    "queued_to_running_s",
                    "running_s",
                    "finalizing_s",
                )
            )
            + " |",
        ]
        ratio = c["wall_s"] / ideal
        verdict = "**met**" if ratio <= GOAL else "**not met**"
        lines += ["", f"- Goal: Cumulo within {GOAL}× of the ideal: {ratio:.2f}× — {verdict}"]
        if "wall_s" in o:
            lines.append(f"- Cumulo vs Optuna alone: {c['wall_s'] / o['wall_s']:.2f}× its time")
        oc = result.get("optuna_cumulo", {})
        if "wall_s" in oc:
            lines.append(
                "- Cumulo vs Optuna alone driving the same script logging with Cumulo: "
                f"{c['wall_s'] / oc['wall_s']:.2f}× its time"
            )
        if "wall_s" in r:
            lines.append(f"- Cumulo vs Ray Tune: {c['wall_s'] / r['wall_s']:.2f}× its time")
    lines += [
        "",
        "What is timed: from the call that starts the search until its last trial's result is "
        "in. Cumulo: `exp.submit(HyperDriveConfig(...))` until the parent run ended, its "
        "trials claimed by the sweep driver, each submitted as a job the pool's nodes run "
        "and whose logged value the driver reads back; the script is the same file for every "
        "driver (as a Cumulo job it logs its value with `run.log`, otherwise it prints it). "
        "The breakdown reads each trial run's status history: the sweep driver's part is the "
        "time from a trial's end to the next trial's job, the job's part the script's own run "
        "(a Python process importing Cumulo to log its value) and the node picking it up. "
        "The second Optuna row runs the script as a tracked script would (importing Cumulo "
        "and logging), so the distance between it and Cumulo is what the sweep service and "
        "the jobs add; the distance between the two Optuna rows is what importing Cumulo in "
        "each trial costs on this machine at this load.",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--side", action="store_true")
    p.add_argument("--workdir", type=Path)
    p.add_argument("--out", type=Path)
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--concurrent", type=int, default=4)
    p.add_argument("--work", type=float, default=0.5)
    args = p.parse_args()
    if args.side:
        side(args.workdir, args.out, args.trials, args.concurrent, args.work)
        return
    print(run(args, ["python", "benchmarks/sweep_overhead.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
