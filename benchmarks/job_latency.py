"""``jobs``: how soon a submitted script runs, on each compute target, against Ray's own tools.

    python benchmarks/run.py jobs [--submissions 20] [--targets local,pool,ray] [--gap 1]

A trivial script (one ``print``) is submitted ``--submissions`` times to each
target with ``exp.submit(ScriptRunConfig(...))`` in the ``current``
environment (the submitter's interpreter: nothing to build), and each run's
status history gives the time from the submit call to ``Running`` and to
``Completed``. On the local target and a ``LocalPool`` every submission is
timed twice: once after a pause of ``--gap`` seconds (the target has settled:
the local target's warm spare agent is ready) and once back to back (submitted
the moment the previous run completed). On a managed Ray head
(``RayCluster.managed``), the same script is also submitted with Ray's own
``ray job submit --no-wait`` CLI and with ``JobSubmissionClient.submit_job``,
interleaved with Cumulo's submissions, and followed through
``JobSubmissionClient.get_job_info``. Each target's first submission is a
warm-up, shown apart (it pays for starting the spare agent, the pool node or
the Ray head).

The measuring runs in a process of its own (this file with ``--side``) with
an embedded workspace in a temporary ``CUMULO_HOME``; it stops the pool nodes
and the Ray head it started, and the parent stops that head again if the side
was cut short.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h

NAME = "jobs"
TITLE = "Jobs: submit → Running → Completed, Cumulo's targets vs Ray's `ray job submit`"
TARGETS = ("local", "pool", "ray")
TARGET_RUNNING_S = 0.5  # local target, submit → Running
POLL_S = 0.02  # how often the side looks at a run or a Ray job
SCRIPT = "hello.py"
SCRIPT_TEXT = 'print("hello from a job")\n'
ENDED = {"Completed", "Failed", "Canceled"}
RAY_ENDED = {"SUCCEEDED", "FAILED", "STOPPED"}


# ------------------------------------------------------------------ parent
def run(args: argparse.Namespace, command: list[str]) -> str:
    """Measure in a side process; returns the markdown section."""
    started, load_at_start = time.time(), h.load()
    targets = _targets(args.targets)
    tmp = Path(tempfile.mkdtemp(prefix="cumulo-bench-jobs-"))
    home = tmp / "home"
    side_args = [
        "--side",
        f"--submissions={args.submissions}",
        f"--targets={','.join(targets)}",
        f"--gap={args.gap}",
    ]
    timeout = 300 + args.submissions * (30 if "ray" in targets else 6)
    ok = False
    try:
        h.log(f"jobs: {args.submissions} submissions each on {', '.join(targets)}")
        # This file is its own side: run_side takes an absolute path as it is.
        result = h.run_side(
            h.cumulo_python(),
            str(Path(__file__).resolve()),
            tmp / "side",
            side_args,
            env=h.side_env(CUMULO_HOME=str(home)),
            timeout=timeout,
        )
        ok = True
    finally:
        _stop_heads_left(home)
        if ok and not getattr(args, "keep", False):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            h.log(f"jobs: work folder and logs kept in {tmp}")
    return render(result, command, started, load_at_start)


def _targets(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in TARGETS]
    if unknown or not names:
        raise h.BenchError(
            f"unknown target {', '.join(unknown) or '(none)'}; choose from {', '.join(TARGETS)}"
        )
    return names


def _stop_heads_left(home: Path) -> None:
    """A side cut short leaves its managed Ray head running: stop it (only ours, by its pid)."""
    folder = home / "ray"
    if not folder.is_dir():
        return
    from cumulo.compute.ray import stop_managed_head

    for state in folder.glob("*.json"):
        if stop_managed_head(home, state.stem):
            h.log(f"jobs: stopped the Ray head the side left ({state.stem})")


# -------------------------------------------------------------------- side
def side(workdir: Path, out: Path, submissions: int, targets: list[str], gap: float) -> None:
    """Runs in a fresh process with ``CUMULO_HOME`` set: every measurement, as JSON."""
    import cumulo
    from cumulo import Experiment, Workspace
    from cumulo.services.context import close_all

    src = workdir / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / SCRIPT).write_text(SCRIPT_TEXT)
    ws = Workspace.create("bench-jobs", exist_ok=True)
    exp = Experiment(ws, "latency")
    result: dict[str, Any] = {
        "submissions": submissions,
        "gap_s": gap,
        "targets": targets,
        "cumulo_version": cumulo.__version__,
        "rows": [],
    }
    try:
        for target in targets:
            h.log(f"jobs: target {target}")
            try:
                if target == "ray":
                    result["rows"] += ray_rows(ws, exp, src, submissions, gap, result)
                else:
                    result["rows"] += cumulo_rows(ws, exp, src, target, submissions, gap)
            except Exception as exc:  # one target failing leaves the others' figures
                h.log(f"jobs: target {target} failed: {type(exc).__name__}: {exc}")
                result["rows"].append(
                    {"key": target, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
                )
    finally:
        close_all(stop_nodes=True)
    out.write_text(json.dumps(result, indent=2))


def _samples() -> dict[str, Any]:
    return {"running": [], "completed": [], "submit": [], "failures": []}


def _config(src: Path, target: str) -> Any:
    from cumulo import ScriptRunConfig

    return ScriptRunConfig(src, SCRIPT, compute_target=target)


def submit_and_wait(exp: Any, config: Any, timeout: float = 180) -> dict[str, Any]:
    """One Cumulo submission: seconds from the submit call to Running and to Completed."""
    t0 = time.time()
    run = exp.submit(config)
    submitted = time.time() - t0
    deadline = time.monotonic() + timeout
    while (info := run.refresh().info).status not in ENDED:
        if time.monotonic() > deadline:
            run.cancel()
            return {"failure": f"still {info.status} after {timeout:.0f} s", "run": run.id}
        time.sleep(POLL_S)
    if info.status != "Completed":
        message = (info.error or {}).get("message", "")
        return {"failure": f"{info.status}: {message}".strip(), "run": run.id}
    # The status history's times are stamped where each change happened (milliseconds).
    at: dict[str, int] = {}
    for change in info.status_history:
        at.setdefault(change.status, change.at)
    return {
        "submit": submitted,
        "running": at["Running"] / 1000 - t0,
        "completed": at["Completed"] / 1000 - t0,
        "run": run.id,
    }


def _add(samples: dict[str, Any], one: dict[str, Any]) -> None:
    if "failure" in one:
        samples["failures"].append(one["failure"])
        return
    for key in ("running", "completed", "submit"):
        if one.get(key) is not None:
            samples[key].append(one[key])


def cumulo_rows(
    ws: Any, exp: Any, src: Path, target: str, n: int, gap: float
) -> list[dict[str, Any]]:
    """Local or pool: ``n`` spaced and ``n`` back-to-back submissions, interleaved."""
    from cumulo import ComputeTarget, LocalPool

    name = "local"
    if target == "pool":
        name = "bench-pool"
        ComputeTarget.create(ws, name, LocalPool(max_nodes=1, idle_seconds_before_scaledown=120))
    config = _config(src, name)
    try:
        cold = submit_and_wait(exp, config)
        spaced, back = _samples(), _samples()
        for i in range(n):
            time.sleep(gap)
            _add(spaced, submit_and_wait(exp, config))
            _add(back, submit_and_wait(exp, config))
            h.log(f"jobs: {target} {i + 1}/{n}")
        status = ComputeTarget.get(ws, name).get_status() if target == "pool" else {}
    finally:
        if target == "pool":
            ComputeTarget.get(ws, name).delete()  # its node stops when its target is gone
    extra = {"nodes": status.get("current_node_count")} if target == "pool" else {}
    return [
        {"key": f"{target}-spaced", "target": target, "mode": "spaced", "cold": cold}
        | spaced
        | extra,
        {"key": f"{target}-back", "target": target, "mode": "back-to-back"} | back | extra,
    ]


def ray_rows(
    ws: Any, exp: Any, src: Path, n: int, gap: float, result: dict[str, Any]
) -> list[dict[str, Any]]:
    """A managed head: Cumulo's submissions, ``ray job submit`` and ``submit_job``, interleaved."""
    import ray
    from ray.job_submission import JobSubmissionClient

    from cumulo import ComputeTarget, RayCluster

    result["ray_version"] = ray.__version__
    target = ComputeTarget.create(ws, "bench-ray", RayCluster.managed(num_cpus=2))
    try:
        config = _config(src, "bench-ray")
        cold = submit_and_wait(exp, config, timeout=300)  # starts the head
        if "failure" in cold:
            raise h.BenchError(f"the first Ray job did not complete: {cold['failure']}")
        handle = ws.transport.jobs.get_job(ws.name, cold["run"]).handle or {}
        address = handle["address"]
        client = JobSubmissionClient(address)
        cli_cold = ray_cli(client, address, src)
        sdk_cold = ray_sdk(client, src)
        cumulo_s, cli_s, sdk_s = _samples(), _samples(), _samples()
        for i in range(n):
            time.sleep(gap)
            _add(cumulo_s, submit_and_wait(exp, config))
            time.sleep(gap)
            _add(cli_s, ray_cli(client, address, src))
            time.sleep(gap)
            _add(sdk_s, ray_sdk(client, src))
            h.log(f"jobs: ray {i + 1}/{n}")
    finally:
        target.delete()  # stops the managed head (ours alone: by its pid)
    return [
        {"key": "ray-cumulo", "target": "ray", "mode": "spaced", "cold": cold} | cumulo_s,
        {"key": "ray-cli", "target": "ray", "mode": "spaced", "cold": cli_cold} | cli_s,
        {"key": "ray-sdk", "target": "ray", "mode": "spaced", "cold": sdk_cold} | sdk_s,
    ]


def _ray_env() -> dict[str, str]:
    return {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }


def ray_cli(client: Any, address: str, src: Path) -> dict[str, Any]:
    """``ray job submit --no-wait``, timed from invoking the command."""
    ray_bin = Path(sys.executable).with_name("ray")
    sid = f"bench-cli-{uuid.uuid4().hex[:10]}"
    argv = [
        str(ray_bin), "job", "submit", "--address", address, "--submission-id", sid,
        "--no-wait", "--working-dir", str(src), "--entrypoint-num-cpus", "1",
        "--", sys.executable, SCRIPT,
    ]  # fmt: skip
    t0 = time.time()
    proc = subprocess.Popen(argv, env=_ray_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    one = follow_ray(client, sid, t0, proc)
    output, _ = proc.communicate(timeout=60)
    one["submit"] = one.pop("exited", None)
    if proc.returncode != 0:
        tail = output.decode(errors="replace").strip().splitlines()[-3:]
        return {"failure": f"ray job submit exited {proc.returncode}: {' | '.join(tail)}"}
    return one


def ray_sdk(client: Any, src: Path) -> dict[str, Any]:
    """``JobSubmissionClient.submit_job`` in this process, timed from the call."""
    sid = f"bench-sdk-{uuid.uuid4().hex[:10]}"
    t0 = time.time()
    client.submit_job(
        entrypoint=f"{sys.executable} {SCRIPT}",
        submission_id=sid,
        runtime_env={"working_dir": str(src)},
        entrypoint_num_cpus=1,
    )
    submitted = time.time() - t0
    one = follow_ray(client, sid, t0)
    one["submit"] = submitted
    return one


def follow_ray(
    client: Any, sid: str, t0: float, proc: subprocess.Popen[bytes] | None = None
) -> dict[str, Any]:
    """Poll a Ray job every ``POLL_S``: when it was first seen RUNNING, and when it ended."""
    running = exited = None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc is not None and exited is None and proc.poll() is not None:
            exited = time.time() - t0
            if proc.returncode != 0:
                return {"failure": f"exit {proc.returncode}"}
        try:
            info = client.get_job_info(sid)
        except Exception:  # not there yet: the CLI is still starting
            info = None
        now = time.time()
        if info is not None:
            status = str(getattr(info.status, "value", info.status))
            if status == "RUNNING" and running is None:
                running = now - t0
            if status in RAY_ENDED:
                if status != "SUCCEEDED":
                    return {"failure": f"Ray says {status}: {info.message or ''}".strip()}
                # Ray stamps the end itself (milliseconds); Running is as first seen.
                completed = info.end_time / 1000 - t0 if info.end_time else now - t0
                return {
                    "running": running if running is not None else completed,
                    "completed": completed,
                    "exited": exited,
                }
        time.sleep(POLL_S)
    client.stop_job(sid)
    return {"failure": "not ended after 180 s"}


# ------------------------------------------------------------------ report
def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def p90(values: list[float]) -> float | None:
    """Nearest-rank 90th percentile (for 20 values: the second highest)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def secs(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


LABELS = {
    "local-spaced": ("`local`", "Cumulo `exp.submit`, {gap} s apart"),
    "local-back": ("`local`", "Cumulo `exp.submit`, back to back"),
    "pool-spaced": ("`LocalPool` (1 node)", "Cumulo `exp.submit`, {gap} s apart"),
    "pool-back": ("`LocalPool` (1 node)", "Cumulo `exp.submit`, back to back"),
    "ray-cumulo": ("managed Ray head", "Cumulo `exp.submit`"),
    "ray-cli": ("same Ray head", "`ray job submit --no-wait` (CLI)"),
    "ray-sdk": ("same Ray head", "`JobSubmissionClient.submit_job`"),
    "local": ("`local`", "Cumulo `exp.submit`"),
    "pool": ("`LocalPool` (1 node)", "Cumulo `exp.submit`"),
    "ray": ("managed Ray head", "Cumulo `exp.submit` and Ray's own tools"),
}


def render(
    result: dict[str, Any],
    command: list[str],
    started: float,
    load_at_start: float | None = None,
) -> str:
    n, gap = result["submissions"], result["gap_s"]
    rows = {r["key"]: r for r in result["rows"]}
    lines = []
    for key, row in rows.items():
        where, how = (s.format(gap=f"{gap:g}") for s in LABELS.get(key, (key, "")))
        if "error" in row:
            lines.append([where, how, f"failed: {row['error']}", "", "", "", "", ""])
            continue
        cold = row.get("cold") or {}
        counted = f"{len(row['running'])}" + (
            f" ({len(row['failures'])} failed)" if row["failures"] else ""
        )
        lines.append(
            [
                where,
                how,
                f"{secs(median(row['running']))} / {secs(p90(row['running']))}",
                f"{secs(median(row['completed']))} / {secs(p90(row['completed']))}",
                secs(median(row["submit"])),
                f"{secs(cold.get('running'))} / {secs(cold.get('completed'))}"
                if "failure" not in cold
                else f"failed: {cold['failure']}",
                counted,
            ]
        )
    verdicts = _verdicts(rows)
    extra = [
        f"- Script: `{SCRIPT_TEXT.strip()}`, environment `current` (the submitter's "
        f"interpreter, nothing to build); Cumulo embedded (the submitting process hosts the "
        f"scheduler, SQLite store); {n} timed submissions per row after one warm-up"
    ]
    if result.get("ray_version"):
        extra.append(
            f"- Rival: Ray {result['ray_version']} on the head Cumulo manages "
            "(`RayCluster.managed(num_cpus=2)`, loopback), every job asking for 1 CPU"
        )
    failures = sorted({f for r in rows.values() for f in r.get("failures", [])})
    body = [
        f"## {TITLE}",
        "",
        h.header(NAME, command, started, extra, load_at_start),
        "",
        h.table(
            [
                "target",
                "submitted with",
                "submit → Running, median / p90",
                "submit → Completed, median / p90",
                "submit call returns, median",
                "first submission (warm-up) → Running / Completed",
                "timed",
            ],
            lines,
        ),
        "",
        *verdicts,
        "",
        "What is timed: from the moment the submitting code calls `exp.submit` (or starts "
        "`ray job submit`, or calls `submit_job`) until the run's status became `Running` "
        "(the script's process started) and `Completed` (its logs and outputs stored). "
        "Cumulo's times come from each run's status history, stamped in milliseconds where "
        "the change happened; Ray's `RUNNING` is when `get_job_info`, polled every "
        f"{POLL_S * 1000:.0f} ms, first reported it, and its end is Ray's own `end_time`. "
        f"*{gap:g} s apart*: submitted {gap:g} s after the previous run ended; *back to back*: "
        "submitted the moment the previous run was seen ended (each spaced submission is "
        "followed by a back-to-back one). The local target keeps two spare agents that "
        "have already imported Cumulo and hands each job to one, starting a replacement at "
        "once; back to back, the second spare is ready while the replacement imports "
        "(the warm-up row shows what a cold agent costs). A pool node stays up and looks "
        "for queued jobs every 0.1 s, so it starts the script soon either way. "
        "On Ray, Cumulo's job is its agent, a Python process importing Cumulo on the node, "
        "which then starts the script; Ray's own jobs run `python hello.py` straight away. "
        "The CLI's *submit call* is the `ray job submit` process's whole run, interpreter "
        "start included. The warm-up rows pay for starting the spare agent, the pool node "
        "and, on Ray, the head itself (Cumulo's first Ray job starts it).",
    ]
    if failures:
        body += ["", "Failed submissions: " + "; ".join(failures[:5])]
    return "\n".join(body)


def _medians(row: dict[str, Any] | None) -> tuple[float, float] | None:
    """Median seconds to Running and to Completed of a row that has figures."""
    if not row or "error" in row or not row["running"] or not row["completed"]:
        return None
    return statistics.median(row["running"]), statistics.median(row["completed"])


def _verdicts(rows: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    local = [
        (label, median(rows[k]["running"]))
        for k, label in (("local-spaced", "spaced"), ("local-back", "back to back"))
        if k in rows and "error" not in rows[k] and rows[k]["running"]
    ]
    if local:
        figures = "; ".join(
            f"{secs(v)} {label} — "
            + ("**met**" if v is not None and v < TARGET_RUNNING_S else "**not met**")
            for label, v in local
        )
        out.append(
            f"- Target: under {TARGET_RUNNING_S:g} s from submit to `Running` on `local`: {figures}"
        )
    ours, cli, sdk = (_medians(rows.get(k)) for k in ("ray-cumulo", "ray-cli", "ray-sdk"))
    if ours and cli:
        words = ("faster", "slower")
        line = (
            f"- On Ray, Cumulo vs `ray job submit`: to `Running` "
            f"{h.compare(cli[0] / ours[0], words)}, to `Completed` "
            f"{h.compare(cli[1] / ours[1], words)}"
        )
        if sdk:
            line += f"; vs `submit_job`: {h.compare(sdk[0] / ours[0], words)} to `Running`"
        out.append(line)
    return out


# -------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--side" not in argv:  # run on its own: the entry point does the rest
        import run as entry

        return entry.main(["jobs", *argv])
    p = argparse.ArgumentParser(prog="benchmarks/job_latency.py --side")
    p.add_argument("--side", action="store_true")
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--submissions", type=int, default=20)
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--gap", type=float, default=1.0)
    args = p.parse_args(argv)
    side(args.workdir, args.out, args.submissions, _targets(args.targets), args.gap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
