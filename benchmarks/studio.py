"""Studio benchmark: Cumulo's studio and MLflow's UI in headless Chromium, same data.

    .venv/bin/python benchmarks/studio.py [--runs 10000] [--points 1000000] [--fresh]

Seeds 10,000 runs with 20 metrics each and one run with a 1,000,000-point
metric into each side (Cumulo through its embedded SDK transport, MLflow
through ``MlflowClient`` on its embedded ``sqlite:///`` store, in MLflow's own
environment), starts each server, then measures in Debian's Chromium:

- time to a usable runs table: navigation until the first page of runs is
  shown (and, for Cumulo, the page's script is ready);
- time to a drawn chart of the 1,000,000-point metric;
- server time of the page's data requests (request sent to response end, as
  the browser's resource timing reports it).

Each figure is the median of ``--repeat`` cold loads (a new browser context
each time), Cumulo and MLflow alternating. The section ``studio`` of
``docs/benchmarks.md`` is rewritten.

    .venv/bin/python benchmarks/studio.py --charts [--chart-runs 200]

measures instead an experiment's charts of many runs: ``--chart-runs`` runs
× 5 metrics × 1,000 points on each side, Cumulo's Charts view (every run drawn
in every panel) against MLflow's chart view (``compareRunsMode=CHART``, with
the runs MLflow shows by default), until every panel is drawn; it rewrites
the section ``studio-charts``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # the benchmarks' shared plumbing, beside this file

WORK = harness.WORK / "studio"
SEED_T0 = 1_700_000_000_000
METRIC_KEY = "big"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TARGET_SECONDS = 1.0
TARGET_RATIO = 5.0

MLFLOW_SEED = r"""
import json, math, sys
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
uri = sys.argv[1]
runs, metrics, points, t0 = (int(a) for a in sys.argv[2:6])
client = MlflowClient(uri)
eid = client.create_experiment("studio-bench")
for i in range(runs):
    tags = {"team": "vision"}
    run = client.create_run(eid, run_name=f"run-{i:05d}", tags=tags, start_time=t0 + i)
    rid = run.info.run_id
    client.log_batch(
        rid,
        metrics=[
            Metric(f"m{k:02d}", ((i * 31 + k * 17) % 1000) / 1000, t0 + i, 0)
            for k in range(metrics)
        ],
        params=[
            Param("lr", str([0.1, 0.01, 0.001][i % 3])),
            Param("model", ["rf", "svm", "mlp"][i % 3]),
        ],
    )
    client.set_terminated(rid, "FINISHED", end_time=t0 + i + 1000)
    if i % 1000 == 0:
        print("mlflow seeded", i, flush=True)
long = client.create_run(eid, run_name="long", start_time=t0 + runs).info.run_id
for b in range(0, points, 1000):
    client.log_batch(long, metrics=[
        Metric("big", 1 / (1 + s / 1e5) + 0.05 * math.sin(s / 500), t0 + s, s)
        for s in range(b, min(points, b + 1000))
    ])
client.set_terminated(long, "FINISHED")
print(json.dumps({"experiment_id": eid, "long_run": long}), flush=True)
"""


MLFLOW_CHARTS_SEED = r"""
import json, math, sys
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
uri = sys.argv[1]
runs, metrics, points, t0 = (int(a) for a in sys.argv[2:6])
client = MlflowClient(uri)
eid = client.create_experiment("charts-bench")
for i in range(runs):
    rid = client.create_run(eid, run_name=f"run-{i:03d}", start_time=t0 + i).info.run_id
    client.log_batch(rid, params=[Param("lr", str([0.1, 0.01, 0.001][i % 3])),
                                  Param("opt", ["adam", "sgd"][i % 2])])
    for k in range(metrics):
        client.log_batch(rid, metrics=[
            Metric(f"m{k}", math.exp(-s / (100 + i)) + 0.01 * k + 0.001 * math.sin(s),
                   t0 + i + s * 10, s)
            for s in range(points)
        ])
    client.set_terminated(rid, "FINISHED", end_time=t0 + i + points * 10)
print(json.dumps({"experiment_id": eid}), flush=True)
"""


# ------------------------------------------------------------------ seeding
def seed_cumulo_charts(home: Path, runs: int, metrics: int, points: int) -> dict[str, Any]:
    """The same runs as ``MLFLOW_CHARTS_SEED``: every metric a full series of ``points``."""
    from cumulo import Workspace

    ws = Workspace.create("bench", home=home, exist_ok=True)
    t = ws.transport.tracking
    exp = t.get_or_create_experiment(ws.name, "charts-bench")
    for i in range(runs):
        run = t.create_run(ws.name, exp.id, display_name=f"run-{i:03d}", start_time=SEED_T0 + i)
        series = [
            (f"m{k}", math.exp(-s / (100 + i)) + 0.01 * k + 0.001 * math.sin(s), s, SEED_T0 + s)
            for k in range(metrics)
            for s in range(points)
        ]
        params = {"lr": [0.1, 0.01, 0.001][i % 3], "opt": ["adam", "sgd"][i % 2]}
        t.log_batch(ws.name, run.id, metrics=series, params=params)
        t.set_run_status(ws.name, run.id, "Completed")
    return {"workspace": ws.name, "experiment_id": exp.id}


def seed_cumulo(home: Path, runs: int, metrics: int, points: int) -> dict[str, Any]:
    from cumulo import Workspace

    ws = Workspace.create("bench", home=home, exist_ok=True)
    t = ws.transport.tracking
    exp = t.get_or_create_experiment(ws.name, "studio-bench")
    for i in range(runs):
        run = t.create_run(
            ws.name,
            exp.id,
            display_name=f"run-{i:05d}",
            status="Running",
            tags={"team": "vision"},
            start_time=SEED_T0 + i,
        )
        t.log_batch(
            ws.name,
            run.id,
            metrics=[
                (f"m{k:02d}", ((i * 31 + k * 17) % 1000) / 1000, 0, SEED_T0 + i)
                for k in range(metrics)
            ],
            params={"lr": [0.1, 0.01, 0.001][i % 3], "model": ["rf", "svm", "mlp"][i % 3]},
        )
        t.set_run_status(ws.name, run.id, "Completed", at=SEED_T0 + i + 1000)
        if i % 1000 == 0:
            harness.log(f"cumulo seeded {i}")
    long = t.create_run(ws.name, exp.id, display_name="long", start_time=SEED_T0 + runs)
    for b in range(0, points, 20_000):
        t.log_batch(
            ws.name,
            long.id,
            metrics=[
                (METRIC_KEY, 1 / (1 + s / 1e5) + 0.05 * math.sin(s / 500), s, SEED_T0 + s)
                for s in range(b, min(points, b + 20_000))
            ],
        )
    t.set_run_status(ws.name, long.id, "Completed")
    return {"workspace": ws.name, "experiment_id": exp.id, "long_run": long.id}


def seeded(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], Path, Path]:
    """Both seeds, cached under benchmarks/.work/studio; MLflow seeds in the background."""
    key = f"{args.runs}runs-{args.metrics}metrics-{args.points}points"
    # Cumulo's seed is keyed by its store's sources too: a new storage layout seeds again.
    store = harness.source_hash(harness.ROOT / "src" / "cumulo" / "store")
    cumulo_dir, mlflow_dir = WORK / f"cumulo-{store}-{key}", WORK / f"mlflow-{key}"
    if args.fresh:
        shutil.rmtree(cumulo_dir, ignore_errors=True)
        shutil.rmtree(mlflow_dir, ignore_errors=True)
    proc = None
    if not (mlflow_dir / "seed.json").exists():
        shutil.rmtree(mlflow_dir, ignore_errors=True)
        mlflow_dir.mkdir(parents=True)
        script = mlflow_dir / "seed_mlflow.py"
        script.write_text(MLFLOW_SEED)
        python = harness.MLFLOW_VENV.ensure()
        harness.log(f"mlflow: seeding {args.runs} runs and {args.points:,} points (slow)")
        cmd = [str(python), str(script), f"sqlite:///{mlflow_dir / 'mlflow.db'}"]
        cmd += [str(args.runs), str(args.metrics), str(args.points), str(SEED_T0)]
        proc = subprocess.Popen(
            cmd,
            cwd=mlflow_dir,
            env=harness.side_env(),
            stdout=subprocess.PIPE,
            stderr=open(mlflow_dir / "seed.log", "w"),  # noqa: SIM115
            text=True,
        )
    if not (cumulo_dir / "seed.json").exists():
        shutil.rmtree(cumulo_dir, ignore_errors=True)
        started = time.perf_counter()
        info = seed_cumulo(cumulo_dir / "home", args.runs, args.metrics, args.points)
        harness.log(f"cumulo: seeded in {time.perf_counter() - started:.0f} s")
        (cumulo_dir / "seed.json").write_text(json.dumps(info))
    if proc is not None:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise harness.BenchError(f"MLflow seeding failed; see {mlflow_dir / 'seed.log'}")
        (mlflow_dir / "seed.json").write_text(out.strip().splitlines()[-1])
    return (
        json.loads((cumulo_dir / "seed.json").read_text()),
        json.loads((mlflow_dir / "seed.json").read_text()),
        cumulo_dir,
        mlflow_dir,
    )


# ------------------------------------------------------------------ servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, name: str, cmd: list[str], port: int, log: Path, cwd: Path) -> None:
        self.name, self.port, self.url = name, port, f"http://127.0.0.1:{port}"
        self.log = log
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=harness.side_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
            stdout=open(log, "w"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait(self, timeout: float = 120) -> Server:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise harness.BenchError(f"{self.name} server exited; see {self.log}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise harness.BenchError(f"{self.name} server did not start in {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


# ---------------------------------------------------------------- measuring
def data_time(page: Any, marker: str) -> float:
    """Seconds the server took for the page's data requests (sum of request-to-end)."""
    entries = page.evaluate(
        "m => performance.getEntriesByType('resource').concat(performance.getEntriesByType"
        "('navigation')).filter(e => e.name.includes(m)).map(e => e.responseEnd - e.requestStart)",
        marker,
    )
    return float(sum(entries)) / 1000


def timed(
    browser: Any, url: str, ready: str, marker: str, timeout: float = 120, extra: str | None = None
) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        started = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_function(ready, timeout=timeout * 1000, polling="raf")
        elapsed = time.perf_counter() - started
        found = page.evaluate(extra) if extra else None
        return {
            "seconds": elapsed,
            "data": data_time(page, marker),
            "errors": errors,
            "extra": found,
        }
    finally:
        context.close()


CUMULO_TABLE = (
    "document.body && document.body.dataset.ready === 'true' && "
    "document.querySelectorAll('#runs tbody tr').length >= 50"
)
CUMULO_CHART = (
    "document.querySelector('.chart[data-key=big][data-drawn]') !== null && "
    "document.querySelector('.chart[data-key=big] canvas') !== null"
)
# MLflow's runs table is an ag-grid that renders the rows in view: usable once run links show.
MLFLOW_TABLE = (
    "Array.from(document.querySelectorAll('a')).filter(a => /^run-\\d{5}$/.test("
    "a.textContent.trim())).length >= 10"
)
# MLflow draws metric charts with Plotly: a drawn trace path with points in it.
MLFLOW_CHART = (
    "Array.from(document.querySelectorAll('.js-plotly-plot .scatterlayer path.js-line'))"
    ".some(p => (p.getAttribute('d') || '').length > 200)"
)


def servers(cumulo_dir: Path, mlflow_dir: Path) -> tuple[Server, Server]:
    """Cumulo's and MLflow's servers over their seeded folders (not started yet)."""
    cport, mport = free_port(), free_port()
    cumulo_bin = harness.cumulo_python().parent / "cumulo"
    cumulo = Server(
        "cumulo",
        [str(cumulo_bin), "server", "--home", str(cumulo_dir / "home"), "--port", str(cport)],
        cport,
        WORK / "cumulo-server.log",
        cumulo_dir,
    )
    mlflow_bin = harness.MLFLOW_VENV.ensure().parent / "mlflow"
    mlflow = Server(
        "mlflow",
        [
            str(mlflow_bin),
            "server",
            "--backend-store-uri",
            f"sqlite:///{mlflow_dir / 'mlflow.db'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(mport),
            "--workers",
            "1",
        ],
        mport,
        WORK / "mlflow-server.log",
        mlflow_dir,
    )
    return cumulo, mlflow


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    cumulo_seed, mlflow_seed, cumulo_dir, mlflow_dir = seeded(args)
    cumulo, mlflow = servers(cumulo_dir, mlflow_dir)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {"cumulo": {}, "mlflow": {}}
    for side in results.values():
        side.update(table=[], chart=[])
    try:
        cumulo.wait()
        mlflow.wait()
        ws, eid = cumulo_seed["workspace"], cumulo_seed["experiment_id"]
        urls = {
            ("cumulo", "table"): f"{cumulo.url}/ws/{ws}/experiments/{eid}",
            ("cumulo", "chart"): f"{cumulo.url}/ws/{ws}/runs/{cumulo_seed['long_run']}/metrics",
            ("mlflow", "table"): f"{mlflow.url}/#/experiments/{mlflow_seed['experiment_id']}/runs",
            ("mlflow", "chart"): (
                f"{mlflow.url}/#/experiments/{mlflow_seed['experiment_id']}/runs/"
                f"{mlflow_seed['long_run']}/model-metrics"
            ),
        }
        ready = {
            ("cumulo", "table"): (CUMULO_TABLE, f"/ws/{ws}/experiments/"),
            ("cumulo", "chart"): (CUMULO_CHART, "/studio-data/"),
            ("mlflow", "table"): (MLFLOW_TABLE, "/ajax-api/"),
            ("mlflow", "chart"): (MLFLOW_CHART, "/ajax-api/"),
        }
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for what in ("table", "chart"):
                for side in ("cumulo", "mlflow"):  # the first load after the server started
                    r = timed(browser, urls[(side, what)], *ready[(side, what)])
                    harness.log(f"{side} {what} first: {r['seconds']:.3f} s")
                    results[side][f"{what}_first"] = [r]
                for i in range(args.repeat):
                    for side in ("cumulo", "mlflow") if i % 2 == 0 else ("mlflow", "cumulo"):
                        r = timed(browser, urls[(side, what)], *ready[(side, what)])
                        harness.log(f"{side} {what}: {r['seconds']:.3f} s (data {r['data']:.3f} s)")
                        results[side][what].append(r)
            browser.close()
    finally:
        cumulo.stop()
        mlflow.stop()
    return {"results": results, "cumulo_seed": cumulo_seed, "mlflow_seed": mlflow_seed}


CHART_METRICS, CHART_POINTS = 5, 1000


def charts_seeded(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], Path, Path]:
    """The charts data on both sides, cached under benchmarks/.work/studio like ``seeded``."""
    key = f"charts-{args.chart_runs}runs"
    store = harness.source_hash(harness.ROOT / "src" / "cumulo" / "store")
    cumulo_dir, mlflow_dir = WORK / f"cumulo-{store}-{key}", WORK / f"mlflow-{key}"
    if args.fresh:
        shutil.rmtree(cumulo_dir, ignore_errors=True)
        shutil.rmtree(mlflow_dir, ignore_errors=True)
    if not (cumulo_dir / "seed.json").exists():
        shutil.rmtree(cumulo_dir, ignore_errors=True)
        info = seed_cumulo_charts(cumulo_dir / "home", args.chart_runs, CHART_METRICS, CHART_POINTS)
        (cumulo_dir / "seed.json").write_text(json.dumps(info))
    if not (mlflow_dir / "seed.json").exists():
        shutil.rmtree(mlflow_dir, ignore_errors=True)
        mlflow_dir.mkdir(parents=True)
        script = mlflow_dir / "seed_mlflow.py"
        script.write_text(MLFLOW_CHARTS_SEED)
        harness.log(f"mlflow: seeding {args.chart_runs} runs for the charts (slow)")
        cmd = [
            str(harness.MLFLOW_VENV.ensure()),
            str(script),
            f"sqlite:///{mlflow_dir / 'mlflow.db'}",
        ]
        cmd += [str(args.chart_runs), str(CHART_METRICS), str(CHART_POINTS), str(SEED_T0)]
        out = subprocess.run(
            cmd, cwd=mlflow_dir, env=harness.side_env(), capture_output=True, text=True, check=True
        )
        (mlflow_dir / "seed.json").write_text(out.stdout.strip().splitlines()[-1])
    return (
        json.loads((cumulo_dir / "seed.json").read_text()),
        json.loads((mlflow_dir / "seed.json").read_text()),
        cumulo_dir,
        mlflow_dir,
    )


def cumulo_charts_ready(runs: int) -> str:
    return (
        f"document.querySelectorAll('.panel[data-drawn=\"{runs}\"] canvas').length === "
        f"{CHART_METRICS}"
    )


# MLflow's chart view: a Plotly chart per metric, each with its traces drawn.
MLFLOW_CHARTS_READY = (
    "(() => { const charts = Array.from(document.querySelectorAll('.js-plotly-plot'));"
    f" return charts.length === {CHART_METRICS} && charts.every(c => Array.from("
    "c.querySelectorAll('.scatterlayer path.js-line')).some(p => (p.getAttribute('d') || '')"
    ".length > 200)); })()"
)
MLFLOW_TRACES = (
    "Array.from(document.querySelectorAll('.js-plotly-plot'))"
    ".map(c => c.querySelectorAll('.scatterlayer .trace').length)"
)


def measure_charts(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    cumulo_seed, mlflow_seed, cumulo_dir, mlflow_dir = charts_seeded(args)
    cumulo, mlflow = servers(cumulo_dir, mlflow_dir)
    ws, eid = cumulo_seed["workspace"], cumulo_seed["experiment_id"]
    urls = {
        "cumulo": f"{cumulo.url}/ws/{ws}/experiments/{eid}/charts",
        "mlflow": f"{mlflow.url}/#/experiments/{mlflow_seed['experiment_id']}/runs"
        "?compareRunsMode=CHART",
    }
    ready = {
        "cumulo": (cumulo_charts_ready(args.chart_runs), "/studio-data/"),
        "mlflow": (MLFLOW_CHARTS_READY, "/ajax-api/"),
    }
    results: dict[str, list[dict[str, Any]]] = {"cumulo": [], "mlflow": []}
    traces: list[int] = []
    try:
        cumulo.wait()
        mlflow.wait()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for i in range(args.repeat):
                for side in ("cumulo", "mlflow") if i % 2 == 0 else ("mlflow", "cumulo"):
                    extra = MLFLOW_TRACES if side == "mlflow" else None
                    r = timed(browser, urls[side], *ready[side], timeout=600, extra=extra)
                    if extra:
                        traces = r["extra"]
                    harness.log(f"{side} charts: {r['seconds']:.3f} s (data {r['data']:.3f} s)")
                    results[side].append(r)
            browser.close()
    finally:
        cumulo.stop()
        mlflow.stop()
    return {"results": results, "mlflow_traces": traces}


def report_charts(
    args: argparse.Namespace, measured: dict[str, Any], command: list[str], t0: float
) -> str:
    res = measured["results"]
    c, m = median(res["cumulo"], "seconds"), median(res["mlflow"], "seconds")
    cd, md = median(res["cumulo"], "data"), median(res["mlflow"], "data")
    shown = measured["mlflow_traces"]
    head = harness.header(
        "studio-charts",
        command,
        t0,
        [
            "- Rival: MLflow 3.17.2 UI chart view (`#/experiments/<id>/runs?compareRunsMode=CHART`,"
            " `mlflow server --workers 1`, SQLite)",
            f"- Data, same on both sides: {args.chart_runs} runs × {CHART_METRICS} metrics × "
            f"{CHART_POINTS:,} points (+2 params)",
            f"- Browser: Debian's Chromium, headless, 1366×768; median of {args.repeat} loads "
            "each in a new browser context, Cumulo and MLflow alternating",
        ],
    )
    rows = [
        [
            f"{CHART_METRICS} metric panels drawn",
            f"{harness.duration(c)} ({args.chart_runs} runs a panel)",
            f"{harness.duration(m)} (Plotly traces a panel: {', '.join(map(str, shown)) or '?'})",
            harness.ratio(m / c),
            harness.duration(cd),
            harness.duration(md),
        ]
    ]
    return "\n".join(
        [
            "## Charts of many runs: Studio's Charts view vs MLflow's chart view",
            "",
            head,
            "",
            harness.table(
                [
                    "what",
                    "Cumulo Charts view",
                    "MLflow chart view",
                    "Cumulo faster by",
                    "Cumulo data requests (server)",
                    "MLflow data requests (server)",
                ],
                rows,
            ),
            "",
            f"- Charts view drawn {harness.ratio(m / c)} faster than MLflow's chart view "
            f"(target ≥ 5×: {harness.verdict(m / c, TARGET_RATIO)}).",
            "",
            "What is timed: from navigation start until every metric panel is drawn: Cumulo's "
            f"Charts view with all {args.chart_runs} runs in each of its {CHART_METRICS} panels "
            "(each series whole, 1,000 points a run); MLflow's chart view as it opens, which "
            "draws only the runs it shows by default (the Plotly trace counts above), so MLflow "
            "draws fewer series than Cumulo here. Data requests: resource timing (request sent "
            "to response end) summed over the page's `/studio-data` or `/ajax-api` requests; "
            "they overlap, so the sum can exceed the time to drawn.",
        ]
    )


def median(items: list[dict[str, Any]], key: str) -> float:
    return statistics.median(item[key] for item in items)


def report(
    args: argparse.Namespace, measured: dict[str, Any], command: list[str], t0: float
) -> str:
    res = measured["results"]
    rows = []
    verdicts = []
    chart = f"{args.points:,}-point chart drawn"
    first = " (first load after server start)"
    for what, label in (
        ("table", "Runs table usable"),
        ("chart", chart),
        ("table_first", "Runs table usable" + first),
        ("chart_first", chart + first),
    ):
        c, m = median(res["cumulo"][what], "seconds"), median(res["mlflow"][what], "seconds")
        cd, md = median(res["cumulo"][what], "data"), median(res["mlflow"][what], "data")
        rows.append(
            [
                label,
                harness.duration(c),
                harness.duration(m),
                harness.ratio(m / c),
                harness.duration(cd),
                harness.duration(md),
            ]
        )
        if what.endswith("_first"):
            continue
        verdicts.append(
            f"- {label}: {harness.duration(c)} (target < 1 s: "
            f"{'**met**' if c < TARGET_SECONDS else '**not met**'}), "
            f"{harness.ratio(m / c)} faster than MLflow's UI (target ≥ 5×: "
            f"{harness.verdict(m / c, TARGET_RATIO)})"
        )
    errors = sorted(
        {e for side in res.values() for w in side.values() for r in w for e in r["errors"]}
    )
    head = harness.header(
        "studio",
        command,
        t0,
        [
            "- Rival: MLflow 3.17.2 UI (`mlflow server --workers 1`, "
            "`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`, SQLite), from "
            "`benchmarks/.work/mlflow-venv`",
            f"- Data, same on both sides: {args.runs:,} runs × {args.metrics} metrics "
            f"(+2 params, 1 tag) and one run with a {args.points:,}-point metric",
            f"- Browser: Debian's Chromium, headless, 1366×768; median of {args.repeat} loads "
            "each in a new browser context (empty browser cache), after a first load (shown "
            "apart: it also pays for server-side caches being empty)",
        ],
    )
    body = [
        "## Studio vs MLflow's UI",
        "",
        head,
        "",
        harness.table(
            [
                "what",
                "Cumulo studio",
                "MLflow UI",
                "Cumulo faster by",
                "Cumulo data requests (server)",
                "MLflow data requests (server)",
            ],
            rows,
        ),
        "",
        *verdicts,
        "",
        "What is timed: from navigation start until the runs table shows its first page of "
        "runs (Cumulo: 50 rows and the page script ready; MLflow: 10 run links in its grid, which "
        "renders only the rows in view), and "
        "until the metric's chart is drawn (Cumulo: the metrics tab of the run, whose chart "
        "data the server downsamples to a few thousand points; MLflow: the run's "
        "*Model metrics* tab, Plotly trace drawn). Data requests: the browser's resource "
        "timing (request sent to response end) of the page's own data: Cumulo's server-rendered "
        "page plus `/studio-data` requests, MLflow's `/ajax-api` requests. Cumulo keeps the "
        "downsampled chart of a finished run in memory, so repeat loads skip the database; the "
        "first-load rows show the uncached cost.",
    ]
    if errors:
        body += ["", "JavaScript errors seen: " + "; ".join(errors[:5])]
    return "\n".join(body)


def main() -> None:
    p = argparse.ArgumentParser(prog="benchmarks/studio.py", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=10_000)
    p.add_argument("--metrics", type=int, default=20)
    p.add_argument("--points", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--fresh", action="store_true", help="seed again instead of using the cache")
    p.add_argument("--doc", type=Path, default=harness.DOC)
    p.add_argument("--dry", action="store_true", help="print the section, do not write it")
    p.add_argument("--charts", action="store_true", help="measure the charts of many runs")
    p.add_argument("--chart-runs", type=int, default=200)
    args = p.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit("Chromium is missing: apt-get install chromium")
    WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.charts:
        measured = measure_charts(args)
        (WORK / "last-charts.json").write_text(json.dumps(measured, indent=2))
        command = ["python", "benchmarks/studio.py", *sys.argv[1:]]
        section = report_charts(args, measured, command, t0)
        print(section)
        if not args.dry:
            harness.write_section("studio-charts", section, args.doc)
        return
    measured = measure(args)
    (WORK / "last.json").write_text(json.dumps(measured, indent=2))
    section = report(args, measured, ["python", "benchmarks/studio.py", *sys.argv[1:]], t0)
    print(section)
    if not args.dry:
        harness.write_section("studio", section, args.doc)


if __name__ == "__main__":
    main()
