"""``tracking``: Cumulo, MLflow and FastTrackML side by side through the MLflow client,
in interleaved rounds, and the same servers under many clients at once.

Each round starts every server in turn (the order rotates from round to round) on
its own SQLite database, times launch → ``GET /health``, weighs it idle, runs one
round of the client workload (``sides/tracking_client.py``) and stops it; a figure
is the median over the rounds. The load part then starts each server setting
(Cumulo with 1, 2 and 4 workers on SQLite and on PostgreSQL, MLflow with its default
workers and with one, FastTrackML) and drives it with 16 and with 50 concurrent
MLflow clients.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import harness as h  # noqa: E402
from servers import Server, free_port  # noqa: E402

NAME = "tracking"
TITLE = "Tracking server, side by side: Cumulo vs MLflow vs FastTrackML (interleaved rounds)"
NAMES = {"cumulo": "Cumulo", "mlflow": "MLflow", "fml": "FastTrackML"}
MIB = 1024**2


def run(args: argparse.Namespace, command: list[str]) -> str:
    started, load_at_start = time.time(), h.load()
    mlflow_python = h.MLFLOW_VENV.ensure()
    fml = _fml()
    subjects = ["cumulo", "mlflow"] + (["fml"] if fml else [])
    tmp = Path(tempfile.mkdtemp(prefix="cumulo-bench-tracking-"))
    rounds: dict[str, list[dict[str, Any]]] = {s: [] for s in subjects}
    versions: dict[str, str] = {}
    try:
        for r in range(args.rounds):
            order = subjects[r % len(subjects) :] + subjects[: r % len(subjects)]
            for subject in order:
                h.log(f"tracking: round {r + 1}/{args.rounds}, {NAMES[subject]}")
                server, uri, versions[subject] = _server(subject, tmp / subject, fml)
                rounds[subject].append(
                    _round(server, uri, args, tmp / subject / f"r{r}", mlflow_python)
                )
        load = _load(args, tmp, fml, mlflow_python) if args.load_seconds > 0 else {}
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return render(rounds, load, versions, args, command, started, load_at_start, fml is not None)


def _fml() -> Path | None:
    """FastTrackML's ``fml``, installed from PyPI into a venv of its own; None if it cannot be."""
    try:
        return h.FASTTRACKML_VENV.ensure().parent / "fml"
    except h.BenchError as exc:
        h.log(f"tracking: FastTrackML could not be installed: {exc}")
        return None


def _server(
    subject: str, home: Path, fml: Path | None, workers: int = 1, database_url: str | None = None
) -> tuple[Server, str, str]:
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    if subject == "cumulo":
        cmd = [str(h.cumulo_python().parent / "cumulo"), "server", "--home", str(home / "home")]
        cmd += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
        if database_url:
            cmd += ["--database-url", database_url]
        server = Server("cumulo server", cmd, home, port, env=h.side_env())
        return server, server.url, h.git_revision()
    if subject == "mlflow":
        store = database_url or f"sqlite:///{home / 'mlflow.db'}"
        cmd = [str(h.MLFLOW_VENV.bin / "mlflow"), "server", "--backend-store-uri", store]
        cmd += ["--host", "127.0.0.1", "--port", str(port)]
        if workers:
            cmd += ["--workers", str(workers)]
        env = h.side_env(PATH=f"{h.MLFLOW_VENV.bin}:{h.side_env()['PATH']}")
        server = Server("mlflow server", cmd, home, port, env=env)
        return server, server.url, h.MLFLOW_REQUIREMENT.split("==")[1]
    assert fml is not None
    cmd = [str(fml), "server", "--listen-address", f"127.0.0.1:{port}"]
    cmd += ["--database-uri", f"sqlite://{home / 'fml.db'}", "--log-level", "warning"]
    cmd += ["--default-artifact-root", str(home / "artifacts")]
    server = Server("FastTrackML", cmd, home, port, env=h.side_env())
    return server, server.url, h.FASTTRACKML_REQUIREMENT.split("==")[1]


def _round(
    server: Server, uri: str, args: argparse.Namespace, work: Path, python: Path
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        out["start_s"] = server.start()
        out["idle"] = server.settled_memory()
        out["client"] = h.run_side(
            python,
            "tracking_client.py",
            work,
            ["--url", uri, "--runs", str(args.tracking_runs), "--repeat", str(args.server_repeat)],
        )
    finally:
        server.stop()
    return out


# ------------------------------------------------------------------- load
@contextlib.contextmanager
def _postgres() -> Iterator[str | None]:
    try:
        from tests.postgres import local_postgres
    except ImportError:
        yield None
        return
    try:
        with local_postgres(free_port()) as url:
            yield url
    except RuntimeError as exc:  # no PostgreSQL binaries here
        h.log(f"tracking: no PostgreSQL: {exc}")
        yield None


def _load(
    args: argparse.Namespace, tmp: Path, fml: Path | None, python: Path
) -> dict[str, dict[int, dict[str, Any]]]:
    out: dict[str, dict[int, dict[str, Any]]] = {}
    with _postgres() as pg:
        settings = _load_settings(args, pg, fml)
        for i, (label, subject, workers, database_url) in enumerate(settings):
            db = None
            if database_url:  # each setting on a database of its own
                db = _fresh_database(database_url, f"load{i}")
            h.log(f"tracking: {label}, {' then '.join(map(str, args.load_clients))} clients")
            home = tmp / f"load{i}"
            clients = ",".join(map(str, args.load_clients))
            server, uri, _ = _server(subject, home, fml, workers, db)
            try:
                server.start()
                loads = h.run_side(
                    python,
                    "tracking_client.py",
                    home / "client",
                    ["--url", uri, "--load", clients, "--seconds", str(args.load_seconds)],
                )["load"]
                out[label] = {r["clients"]: r for r in loads}
            except h.BenchError as exc:
                out[label] = {c: {"error": str(exc).splitlines()[0]} for c in args.load_clients}
            finally:
                server.stop()
    return out


def _load_settings(
    args: argparse.Namespace, pg: str | None, fml: Path | None
) -> list[tuple[str, str, int, str | None]]:
    """(label, server, workers, database URL) of each server setting put under load."""
    wanted = set(args.load_servers.split(","))
    plural = {w: f"{w} worker{'s' if w > 1 else ''}" for w in args.load_workers}
    settings: list[tuple[str, str, int, str | None]] = []
    if "cumulo-sqlite" in wanted:
        settings += [(f"Cumulo, SQLite, {plural[w]}", "cumulo", w, None) for w in args.load_workers]
    if "cumulo-postgres" in wanted and pg:
        settings += [
            (f"Cumulo, PostgreSQL, {plural[w]}", "cumulo", w, pg) for w in args.load_workers
        ]
    if "mlflow" in wanted:
        settings.append(("MLflow, SQLite, default workers", "mlflow", 0, None))
    if "mlflow-1" in wanted:
        settings.append(("MLflow, SQLite, 1 worker", "mlflow", 1, None))
    if "fml" in wanted and fml:
        settings.append(("FastTrackML, SQLite", "fml", 0, None))
    return settings


def _fresh_database(url: str, name: str) -> str:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return url.rsplit("/", 1)[0] + "/" + name


# -------------------------------------------------------------- rendering
def render(
    rounds: dict[str, list[dict[str, Any]]],
    load: dict[str, dict[int, dict[str, Any]]],
    versions: dict[str, str],
    args: argparse.Namespace,
    command: list[str],
    started: float,
    load_at_start: float | None,
    has_fml: bool,
) -> str:
    subjects = list(rounds)

    def med(subject: str, get: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(get(r) for r in rounds[subject])

    def cl(*keys: str) -> Callable[[dict[str, Any]], float]:
        def get(r: dict[str, Any]) -> float:
            value: Any = r["client"]
            for k in keys:
                value = value[k]
            return float(value)

        return get

    def per_s(unit: str) -> Callable[[float], str]:
        return lambda v: f"{h.rate(v)} {unit}/s"

    n = args.tracking_runs
    rows_spec: list[tuple[str, Callable[[dict[str, Any]], float], Callable[[float], str], bool]] = [
        ("`log_batch`, 10 × 1,000 points", cl("batch", "points_per_s"), per_s("pts"), True),
        ("`log_metric`, 200 calls", cl("per_call", "calls_per_s"), per_s("calls"), True),
        (f"start run + 2 params + 1 metric + end, {n} runs", cl("runs", "runs_per_s"),
         per_s("runs"), True),
        ("history, 10,000 points", cl("history", "median_s"), h.duration, False),
        (f"search {n} runs, filter on metric and param, order, 100 results",
         cl("search", "median_s"), h.duration, False),
        ("the same search: the client's own part (a null server replaying the answer)",
         cl("search", "client_only", "median_s"), h.duration, False),
        ("raw HTTP `runs/create` (median)", cl("raw", "create", "median_s"), h.duration, False),
        ("raw HTTP `runs/get` (median)", cl("raw", "get", "median_s"), h.duration, False),
        ("raw HTTP `runs/search`, 100 runs (median)", cl("raw", "search", "median_s"),
         h.duration, False),
        ("start → `/health`", lambda r: r["start_s"], h.duration, False),
        ("idle RSS (process tree)", lambda r: r["idle"]["rss"], lambda v: f"{v / MIB:.0f} MiB",
         False),
    ]  # fmt: skip
    headers = ["figure", *[f"{NAMES[s]} {versions.get(s, '')}".strip() for s in subjects]]
    headers[1] = "Cumulo"
    headers += ["Cumulo / MLflow"] + (["Cumulo / FastTrackML"] if has_fml else [])
    rows = []
    for label, get, cell, higher in rows_spec:
        values = {s: med(s, get) for s in subjects}

        rows.append(
            [label, *[cell(values[s]) for s in subjects], _ratio(values, "mlflow", higher)]
            + ([_ratio(values, "fml", higher)] if has_fml else [])
        )
    lines = [
        f"## {TITLE}",
        "",
        h.header(
            NAME,
            command,
            started,
            [
                f"- Rounds: {args.rounds}, interleaved (each round starts every server in turn, "
                "the order rotating); each figure is the median over the rounds",
                f"- Rivals: MLflow {h.MLFLOW_REQUIREMENT.split('==')[1]} (`mlflow server`, default "
                "options)"
                + (
                    f", FastTrackML {h.FASTTRACKML_REQUIREMENT.split('==')[1]} (`fml server`)"
                    if has_fml
                    else "; FastTrackML could not be installed here"
                )
                + "; all on SQLite; Cumulo `--workers 1`; one MLflow client (from "
                "`benchmarks/.work/mlflow-venv`) for every server",
            ],
            load_at_start,
        ),
        "",
        h.table(headers, rows),
    ]
    wrong = [
        NAMES[s] for s in subjects if not all(r["client"]["search"]["agrees"] for r in rounds[s])
    ]
    if wrong:
        lines += ["", f"Search returned a wrong number of runs on: {', '.join(wrong)}."]
    if load:
        lines += ["", *_load_table(load, args)]
    return "\n".join(lines)


def _ratio(values: dict[str, float], other: str, higher: bool) -> str:
    mine, theirs = values["cumulo"], values[other]
    if mine <= 0 or theirs <= 0:
        return "—"
    x = mine / theirs if higher else theirs / mine
    return f"{x:.2f}× " + ("ahead" if x > 1 else "behind")


def _load_table(load: dict[str, dict[int, dict[str, Any]]], args: argparse.Namespace) -> list[str]:
    headers = ["server"]
    for c in args.load_clients:
        headers += [f"{c} clients: req/s", f"{c} clients: p99"]
    rows = []
    for label, by_clients in load.items():
        row = [label]
        for c in args.load_clients:
            r = by_clients.get(c, {})
            if "error" in r or not r:
                row += [f"failed: {r.get('error', '?')}", "—"]
                continue
            errors = f" ({r['errors']} errors)" if r["errors"] else ""
            row += [f"{r['requests_per_s']:.0f}{errors}", h.duration(r["p99_s"])]
        rows.append(row)
    return [
        f"Many clients at once: each client (a thread of one process) creates a run, logs 5 "
        f"metrics one call at a time, logs one batch of 100 points and a param, and ends the run, "
        f"over and over for {args.load_seconds:g} s; requests per second over all clients and the "
        "99th percentile of a request's time:",
        "",
        h.table(headers, rows),
    ]


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tracking")
    g.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    g.add_argument("--tracking-runs", type=int, default=300, help="runs created, then searched")
    g.add_argument(
        "--load-clients", type=lambda s: [int(x) for x in s.split(",")], default=[16, 50]
    )
    g.add_argument(
        "--load-workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4]
    )
    g.add_argument("--load-seconds", type=float, default=20.0, help="0 leaves the load out")
    g.add_argument(
        "--load-servers",
        default="cumulo-sqlite,cumulo-postgres,mlflow,mlflow-1,fml",
        help="server settings put under load",
    )
