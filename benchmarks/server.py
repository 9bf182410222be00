"""``server``: the same MLflow-client workload against ``cumulo server``, ``mlflow server``
and FastTrackML, all on SQLite on loopback, plus Cumulo's own SDK over HTTP.

Each server is started on its own copy of a database seeded with the same
10,000 runs, timed from launch to ``GET /health`` answering 200, weighed once
idle (memory summed over its process tree), driven by one client process with
MLflow's client, weighed again and stopped.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness as h
from servers import Server, free_port

NAME = "server"
TITLE = "Tracking server: Cumulo vs MLflow vs FastTrackML, through the MLflow client"
SUBJECTS = {
    "cumulo": "Cumulo",
    "mlflow": "MLflow",
    "mlflow-1": "MLflow `--workers 1`",
    "fml": "FastTrackML",
}
MLFLOWS = ("mlflow", "mlflow-1")
FASTER = ("faster", "slower")
LESS = ("less", "more")
FEWER = ("fewer", "more")
GIB = 1024**3
MIB = 1024**2


def run(args: argparse.Namespace, command: list[str]) -> str:
    started, load_at_start = time.time(), h.load()
    selected = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in selected if s not in SUBJECTS]
    if unknown:
        raise h.BenchError(
            f"unknown server {', '.join(unknown)}; choose from {', '.join(SUBJECTS)}"
        )
    mlflow_python = h.MLFLOW_VENV.ensure()
    tmp = Path(tempfile.mkdtemp(prefix="cumulo-bench-server-"))
    results: dict[str, dict[str, Any]] = {}
    failed = False
    for subject in selected:
        h.log(f"server: {SUBJECTS[subject]}")
        try:
            results[subject] = measure(subject, args, tmp / subject, mlflow_python)
        except h.BenchError as exc:
            h.log(f"server: {SUBJECTS[subject]} failed: {exc}")
            lines = str(exc).strip().splitlines()
            results[subject] = {"error": lines[0] + (f" … {lines[-1]}" if len(lines) > 1 else "")}
            failed = True
    if failed or args.keep:
        h.log(f"server: logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return render(results, args, command, started, load_at_start)


# ---------------------------------------------------------------- measuring
def measure(
    subject: str, args: argparse.Namespace, workdir: Path, mlflow_python: Path
) -> dict[str, Any]:
    server, tracking_uri, version = prepare(subject, args, workdir, mlflow_python)
    out: dict[str, Any] = {"version": version}
    try:
        out["start_s"] = server.start()
        out["idle"] = server.settled_memory()
        out["client"] = h.run_side(
            mlflow_python,
            "server_client.py",
            workdir / "client",
            [
                "--url",
                tracking_uri,
                "--points",
                str(args.points),
                "--calls",
                str(args.server_calls),
                "--repeat",
                str(args.server_repeat),
                "--runs",
                str(args.runs),
            ],
        )
        if subject == "cumulo":
            out["sdk"] = h.run_side(
                h.cumulo_python(),
                "server_sdk.py",
                workdir / "sdk",
                [
                    "--url",
                    server.url,
                    "--points",
                    str(args.sdk_points),
                    "--repeat",
                    str(args.server_repeat),
                ],
            )
        out["after"] = server.memory()
    finally:
        server.stop()
    return out


def prepare(
    subject: str, args: argparse.Namespace, workdir: Path, mlflow_python: Path
) -> tuple[Server, str, str]:
    """A server of this kind on a freshly seeded database: (server, tracking URI, version)."""
    seed_args = ["--seed-only", "--runs", str(args.runs)]
    port = free_port()
    if subject == "cumulo":
        cache = h.seed_cache("cumulo", h.cumulo_schema_hash(), args.runs)
        h.run_side(
            h.cumulo_python(),
            "store_cumulo.py",
            workdir / "seed",
            [*seed_args, "--seed-cache", str(cache)],
        )
        cumulo = h.cumulo_python().parent / "cumulo"
        home = workdir / "seed" / "home"
        cmd = [str(cumulo), "server", "--home", str(home), "--port", str(port), "--workers", "1"]
        server = Server("cumulo server", cmd, workdir, port, env=h.side_env())
        return server, f"{server.url}/ws/bench", h.git_revision()
    if subject in MLFLOWS:
        version = h.MLFLOW_REQUIREMENT.split("==")[1]
        cache = h.seed_cache("mlflow", version, args.runs)
        h.run_side(
            mlflow_python,
            "store_mlflow.py",
            workdir / "seed",
            [*seed_args, "--seed-cache", str(cache)],
        )
        db = workdir / "seed" / "mlflow.db"
        cmd = [
            str(h.MLFLOW_VENV.bin / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{db}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        if subject == "mlflow-1":
            cmd += ["--workers", "1"]
        env = h.side_env(PATH=f"{h.MLFLOW_VENV.bin}:{h.side_env()['PATH']}")
        server = Server(SUBJECTS[subject], cmd, workdir, port, env=env)
        return server, server.url, version
    if subject == "fml":
        fml = h.FASTTRACKML_VENV.ensure().parent / "fml"
        version = h.FASTTRACKML_REQUIREMENT.split("==")[1]
        db = workdir / "fml.db"
        seed_fml(fml, db, h.seed_cache("fml", version, args.runs), args, mlflow_python)
        cmd = [
            str(fml),
            "server",
            "--listen-address",
            f"127.0.0.1:{port}",
            "--database-uri",
            f"sqlite://{db}",
            "--default-artifact-root",
            str(workdir / "artifacts"),
            "--log-level",
            "warning",
        ]
        server = Server("FastTrackML", cmd, workdir, port, env=h.side_env())
        return server, server.url, version
    raise h.BenchError(f"unknown server {subject}")


def seed_fml(
    fml: Path, db: Path, cache: Path, args: argparse.Namespace, mlflow_python: Path
) -> None:
    """FastTrackML's database is written only by its server: seed it over HTTP, once."""
    db.parent.mkdir(parents=True, exist_ok=True)
    if (cache / db.name).is_file():
        for f in cache.iterdir():
            shutil.copyfile(f, db.parent / f.name)
        return
    port = free_port()
    cmd = [
        str(fml),
        "server",
        "--listen-address",
        f"127.0.0.1:{port}",
        "--database-uri",
        f"sqlite://{db}",
        "--log-level",
        "warning",
    ]
    seeder = Server("FastTrackML (seeding)", cmd, db.parent / "seeding", port, env=h.side_env())
    try:
        seeder.start()
        h.log(f"server: seeding FastTrackML with {args.runs} runs over HTTP")
        h.run_side(
            mlflow_python,
            "seed_http.py",
            db.parent / "seeding",
            ["--url", seeder.url, "--runs", str(args.runs)],
        )
    finally:
        seeder.stop()
    cache.mkdir(parents=True, exist_ok=True)
    for f in db.parent.glob(db.name + "*"):
        if not f.name.endswith("-shm"):
            shutil.copyfile(f, cache / f.name)


# --------------------------------------------------------------- rendering
def render(
    results: dict[str, dict[str, Any]],
    args: argparse.Namespace,
    command: list[str],
    started: float,
    load_at_start: float | None = None,
) -> str:
    ok = {k: v for k, v in results.items() if "error" not in v}
    c = ok.get("cumulo")
    subjects = list(results)
    headers = ["", *[_title(s, results[s]) for s in subjects], "Cumulo vs MLflow", "vs FastTrackML"]
    headers.append("target")

    def row(
        label: str,
        value: Callable[[dict[str, Any]], float],
        cell: Callable[[float], str],
        words: tuple[str, str] | None,
        target: Callable[[float, float | None, float | None], str] | None = None,
    ) -> list[str]:
        """One measure across servers; ``words`` (e.g. faster/slower) mark lower-is-better."""
        higher_is_better = words is None
        values = {s: value(ok[s]) for s in ok}
        cells = [cell(values[s]) if s in values else "failed" for s in subjects]
        best_mlflow = _best([values[s] for s in MLFLOWS if s in values], higher_is_better)
        vs_m = vs_f = None
        if c is not None:
            mine = values["cumulo"]
            vs_m = _ratio(mine, best_mlflow, higher_is_better)
            vs_f = _ratio(mine, values.get("fml"), higher_is_better)
        return [
            label,
            *cells,
            h.compare(vs_m, words),
            h.compare(vs_f, words),
            target(values.get("cumulo", 0.0), vs_m, vs_f) if target and c else "",
        ]

    def at_least(times: float, beat_fml: bool = False) -> Callable[..., str]:
        def check(_mine: float, vs_m: float | None, vs_f: float | None) -> str:
            text = f"≥ {times:g}× MLflow"
            met = vs_m is not None and vs_m >= times
            if beat_fml:
                text += ", ahead of FastTrackML"
                met = met and vs_f is not None and vs_f > 1
            return f"{text}: {h.verdict(1 if met else 0, 1)}"

        return check

    def start_target(mine: float, _vs_m: float | None, _vs_f: float | None) -> str:
        return f"< 2 s: {h.verdict(1 if mine < 2 else 0, 1)}"

    def memory_target(_mine: float, vs_m: float | None, _vs_f: float | None) -> str:
        return f"< 1/5 of MLflow's: {h.verdict(vs_m or 0, 5)}"

    cl = "client"
    rows = [
        row(
            f"`log_batch`, points/s ({args.points:,} points, 1,000 a batch)",
            lambda r: r[cl]["batch"]["points_per_s"],
            h.rate,
            None,
            at_least(5, beat_fml=True),
        ),
        row(
            f"`mlflow.log_metric`, calls/s ({args.server_calls} calls)",
            lambda r: r[cl]["per_call"]["calls_per_s"],
            h.rate,
            None,
        ),
        row(
            f"`search_runs` over {args.runs:,} runs, top 100, median",
            lambda r: r[cl]["search"]["median_s"],
            h.duration,
            FASTER,
            at_least(5),
        ),
        row(
            f"`get_metric_history`, {args.points:,} points, median",
            lambda r: r[cl]["history"]["median_s"],
            h.duration,
            FASTER,
            at_least(3),
        ),
        row(
            "start: launch → `/health` 200",
            lambda r: r["start_s"],
            h.duration,
            FASTER,
            start_target,
        ),
        row(
            "idle memory, RSS summed over the process tree",
            lambda r: r["idle"]["rss"],
            _bytes,
            LESS,
            memory_target,
        ),
        row("idle memory, PSS", lambda r: r["idle"]["pss"], _bytes, LESS),
        row("processes", lambda r: r["idle"]["processes"], lambda v: f"{v:.0f}", FEWER),
        row("RSS after the workload", lambda r: r["after"]["rss"], _bytes, LESS),
    ]
    lines = [
        f"## {TITLE}",
        "",
        h.header(
            NAME,
            command,
            started,
            [
                f"- Rivals: MLflow {h.MLFLOW_REQUIREMENT.split('==')[1]} (`mlflow server`, "
                "default options, and with `--workers 1`), FastTrackML "
                f"{h.FASTTRACKML_REQUIREMENT.split('==')[1]} (`fml server`), each on SQLite; "
                "the client is MLflow "
                f"{_client_version(ok)} from `benchmarks/.work/mlflow-venv` for every server",
            ],
            load_at_start,
        ),
        "",
        h.table(headers, rows),
    ]
    if c is not None and "sdk" in c:
        lines += ["", *_sdk_table(c["sdk"])]
    lines += ["", *_notes(results, args)]
    return "\n".join(lines)


def _sdk_table(sdk: dict[str, Any]) -> list[str]:
    logging, history = sdk["logging"], sdk["history"]
    delivered = logging["points_per_s"]
    read = history["median_s"]
    rows = [
        [
            f"points delivered, `run.log` × {logging['points']:,} + `flush()`",
            f"{h.rate(delivered)} points/s ({logging['call_us']:.1f} µs a call)",
            f"≥ 200,000 points/s: {h.verdict(delivered, 200_000)}",
        ],
        [
            f"read a {history['points']:,}-point history, median",
            h.duration(read) + (" ✓" if history["complete"] else " (**wrong result**)"),
            f"< 1 s: {h.verdict(1 if read < 1 else 0, 1)}",
        ],
    ]
    return [
        "Cumulo's own SDK against the same `cumulo server` (`Workspace.connect`):",
        "",
        h.table(["", "Cumulo SDK over HTTP", "target"], rows),
    ]


def _notes(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[str]:
    notes = [
        "What each line measures:",
        "",
        "- Every server starts on its own copy of a database seeded with the same "
        f"{args.runs:,} runs (3 params, 3 metrics, 2 tags each; the store benchmark's data), "
        "serves loopback only, and is stopped at the end. Cumulo runs with `--workers 1`; "
        "the Cumulo-vs-MLflow ratio compares with the better of the two MLflow figures.",
        "- *`log_batch`*: pre-built batches of 1,000 points of one series, one "
        "`MlflowClient.log_batch` call each. *`mlflow.log_metric`*: synchronous calls inside "
        "`mlflow.start_run()`. *`search_runs`*: `metrics.acc > 0.5 AND params.model = 'rf'` "
        f"ordered by `metrics.acc DESC`, 100 results, median of {args.server_repeat} after "
        f"one warm-up. *History*: the {args.points:,} points logged by the `log_batch` step, "
        f"median of {args.server_repeat} after one warm-up.",
        "- *Start*: from launching the command to the first `GET /health` answered 200, on the "
        "seeded (already migrated) database. *Idle memory*: once the process tree stopped "
        "growing for 3 s after start; RSS counts shared pages once per process, PSS shares them.",
    ]
    for s, r in results.items():
        if "error" in r:
            notes.append(f"- {SUBJECTS[s]} failed: {r['error']}")
            continue
        cl = r["client"]
        wrong = [
            what
            for what, ok in (
                ("search results", cl["search"]["agrees"]),
                ("history", cl["history"]["complete"]),
            )
            if not ok
        ]
        if wrong:
            notes.append(f"- {SUBJECTS[s]} returned a **wrong** {' and '.join(wrong)}.")
    if all("error" not in r and r["client"]["search"]["agrees"] for r in results.values()):
        notes.append(
            "- Every server returned the expected 100 runs in the expected order, "
            "and every history came back complete."
            if all(
                "error" not in r and r["client"]["history"]["complete"] for r in results.values()
            )
            else "- Every server returned the expected 100 runs in the expected order."
        )
    return notes


def _title(subject: str, result: dict[str, Any]) -> str:
    if subject == "cumulo":
        return "Cumulo"
    version = result.get("version")
    return (
        f"{SUBJECTS[subject]} {version}" if version and subject != "mlflow-1" else SUBJECTS[subject]
    )


def _client_version(ok: dict[str, dict[str, Any]]) -> str:
    for r in ok.values():
        return str(r["client"]["version"])
    return h.MLFLOW_REQUIREMENT.split("==")[1]


def _best(values: list[float], higher_is_better: bool) -> float | None:
    if not values:
        return None
    return max(values) if higher_is_better else min(values)


def _ratio(mine: float, other: float | None, higher_is_better: bool) -> float | None:
    if other is None or mine <= 0 or other <= 0:
        return None
    return mine / other if higher_is_better else other / mine


def _bytes(value: float) -> str:
    if value >= GIB:
        return f"{value / GIB:.2f} GiB"
    return f"{value / MIB:.0f} MiB"
