"""Failover gaps of two `cumulo server`s over one PostgreSQL, in seconds.

    .venv/bin/python benchmarks/failover.py [--rounds 3] [--no-write]
    .venv/bin/python benchmarks/run.py failover

Starts a PostgreSQL from the machine's binaries (``/usr/lib/postgresql/*/bin``,
run as the ``postgres`` user when root), a shared artifact folder and two
``cumulo server``s on loopback ports over both, each told of the other through
``CUMULO_SERVICE_URLS``. Then, ``--rounds`` times each:

- Job metrics: a job submitted through server 1 logs a point every 0.05 s (its
  value the wall-clock time it was logged) for about 8 s; server 1 is killed
  with SIGKILL about 2 s after its first point shows. Server 2 is polled every
  0.05 s: the store keeps no arrival time, so a point's arrival is the first
  poll that shows it. Reported: the points stored out of those logged, the
  seconds from the kill until server 2 shows a point logged after it, and the
  largest gap between consecutive arrivals. Server 1 is started again after
  the job ends.
- Endpoint: a tiny model with an entry script, deployed through server 1, is
  scored through the server not hosting its replicas every 0.05 s; the hosting
  server is killed with SIGKILL about 10 s after the standby started (its
  replica preloader is warm by then, as a standby's is before a real failure).
  Reported: the seconds of non-200 answers until scoring works again. The
  killed server is started again and is the standby of the next round.

Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from tests.postgres import local_postgres  # noqa: E402

import harness  # noqa: E402

T = TypeVar("T")

ROUNDS = 3
POLL_S = 0.05
JOB_SECONDS = 8.0
KILL_AFTER_S = 2.0  # after the job's first point shows through server 2
STANDBY_WARM_S = 10.0
WORKSPACE = "default"
METRIC = "wall"

# Logs the wall-clock time every 0.05 s for about 8 s, step by step.
JOB_PY = f"""
import time
from cumulo import Run

run = Run.get_context()
for step in range({int(JOB_SECONDS / POLL_S)}):
    run.log("{METRIC}", time.time(), step=step)
    time.sleep({POLL_S})
"""

SCORE_PY = """
import json
import os
from pathlib import Path

weights = None


def init():
    global weights
    weights = json.loads((Path(os.environ["CUMULO_MODEL_DIR"]) / "weights.json").read_text())


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    return {"result": [weights["scale"] * (a + b) for a, b in rows]}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(condition: Callable[[], T], timeout: float, what: str, every: float = 0.2) -> T:
    """``condition()``'s first true value, polled until ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every)
    raise harness.BenchError(f"timed out after {timeout:g} s waiting for {what}")


# --------------------------------------------------------------------- servers
@dataclass
class Server:
    port: int
    home: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    starts: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, database_url: str) -> Server:
        self.home.mkdir(parents=True, exist_ok=True)
        cmd = [str(harness.cumulo_python()), "-m", "cumulo.cli.main", "server"]
        cmd += ["--port", str(self.port), "--home", str(self.home)]
        cmd += ["--database-url", database_url]
        with open(self.home / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.home
            )
        self.starts.append(time.monotonic())
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.home / "server.log").read_text()[-2000:]
                raise harness.BenchError(f"cumulo server on {self.port} exited:\n{tail}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        self.kill()
        raise harness.BenchError(f"cumulo server on {self.port} did not start; see its log")

    def kill(self) -> None:
        """SIGKILL, as a host dies: its children (jobs, replicas) are left as they are."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


# ------------------------------------------------------------------ job metrics
def _history(url: str, run_id: str) -> dict[int, float]:
    """step -> value of the run's points, as ``url`` answers now ({} while it cannot)."""
    from cumulo.sdk.http import HttpTransport

    http = HttpTransport(url, timeout=5)
    try:
        series = http.tracking.get_metric_history(WORKSPACE, run_id, METRIC)
        return dict(zip(series["step"], series["value"], strict=True))
    except Exception:  # not there yet, or the server is busy
        return {}
    finally:
        http.close()


def _status(url: str, run_id: str) -> str:
    from cumulo.sdk.http import HttpTransport

    http = HttpTransport(url, timeout=5)
    try:
        return str(http.tracking.get_run(WORKSPACE, run_id).status)
    except Exception:
        return ""
    finally:
        http.close()


def job_round(first: Server, second: Server, database_url: str, src: Path) -> dict[str, Any]:
    from cumulo import Experiment, ScriptRunConfig, Workspace

    ws = Workspace.connect(first.url, WORKSPACE)
    run = Experiment(ws, "failover").submit(ScriptRunConfig(str(src), "job.py"))
    logged = int(JOB_SECONDS / POLL_S)
    arrived: dict[int, float] = {}  # step -> wall-clock time of the first poll showing it
    values: dict[int, float] = {}
    killed_at: float | None = None
    polls = 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        seen = _history(second.url, run.id)
        now = time.time()
        for step, value in seen.items():
            if step not in arrived:
                arrived[step], values[step] = now, value
        if killed_at is None and arrived and now - min(arrived.values()) >= KILL_AFTER_S:
            first.kill()
            killed_at = time.time()
            harness.log(f"job {run.id}: server 1 killed after {len(arrived)} points")
        if killed_at is not None and len(arrived) >= logged:
            break
        polls += 1
        look = killed_at is not None and polls % 20 == 0  # about once a second
        if look and _status(second.url, run.id) in ("Completed", "Failed", "Canceled"):
            break
        time.sleep(POLL_S)
    if killed_at is None:
        raise harness.BenchError(f"job {run.id} showed no points through server 2")
    ended = _until(
        lambda: (s := _status(second.url, run.id)) in ("Completed", "Failed", "Canceled") and s,
        120,
        f"job {run.id} to end",
        every=0.5,
    )
    final = _history(second.url, run.id)
    for step, value in final.items():  # any that came after the polling stopped
        if step not in arrived:
            arrived[step], values[step] = time.time(), value
    after = [t for step, t in arrived.items() if values[step] > killed_at]
    times = sorted(arrived.values())
    logged_gaps = [b - a for a, b in itertools.pairwise(sorted(values.values()))]
    result = {
        "run_id": run.id,
        "status": ended,
        "logged": logged,
        "stored": len(final),
        "kill_to_next_point_s": (min(after) - killed_at) if after else None,
        "largest_arrival_gap_s": max(b - a for a, b in itertools.pairwise(times)),
        "largest_logging_gap_s": max(logged_gaps) if logged_gaps else None,
    }
    harness.log(f"job round: {result}")
    first.start(database_url)
    return result


# --------------------------------------------------------------------- endpoint
def _score(uri: str) -> int:
    try:
        return httpx.post(uri, json={"data": [[1, 2]]}, timeout=5).status_code
    except httpx.TransportError:
        return 599


def _lease_owner_pid(database_url: str) -> int | None:
    """The server process whose supervisor holds the deployment's lease."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.connect() as conn:
            owner = conn.execute(
                sqlalchemy.text("SELECT lease_owner FROM deployments WHERE lease_owner IS NOT NULL")
            ).scalar()
    finally:
        engine.dispose()
    return int(str(owner).split(":")[1]) if owner else None


def deploy(server: Server, work: Path) -> str:
    """A tiny scaler behind an entry script, deployed through ``server``; its scoring URI."""
    from cumulo import DeploymentConfig, InferenceConfig, Model, Workspace

    ws = Workspace.connect(server.url, WORKSPACE)
    folder = work / "model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.json").write_text(json.dumps({"scale": 2.0}))
    code = work / "serve"
    code.mkdir(parents=True, exist_ok=True)
    (code / "score.py").write_text(SCORE_PY)
    model = Model.register(ws, folder, "scaler")
    endpoint = Model.deploy(
        ws,
        "scaler",
        [model],
        InferenceConfig(entry_script="score.py", source_directory=str(code)),
        DeploymentConfig(auth="none"),
    )
    return str(endpoint.scoring_uri)


def endpoint_round(
    servers: list[Server], database_url: str, uri: str, deployed: float
) -> dict[str, Any]:
    """Kill the server hosting the replicas; score through the other until it answers again."""
    pid = _until(lambda: _lease_owner_pid(database_url), 30, "the deployment's lease")
    hosts = [s for s in servers if s.proc is not None and s.proc.pid == pid]
    if not hosts:
        raise harness.BenchError(f"no running server holds the deployment's lease (pid {pid})")
    host = hosts[0]
    standby = next(s for s in servers if s is not host)
    # A standby warms its preloader once the store has an endpoint and it has started.
    wait = STANDBY_WARM_S - (time.monotonic() - max(standby.starts[-1], deployed))
    if wait > 0:
        time.sleep(wait)
    through = uri.replace(f":{servers[0].port}/", f":{standby.port}/")
    through = through.replace(f":{servers[1].port}/", f":{standby.port}/")
    _until(lambda: _score(through) == 200, 30, "scoring through the standby")
    host.kill()
    killed = time.monotonic()
    first_failure: float | None = None
    failures = 0
    back: float | None = None
    while time.monotonic() - killed < 90:
        status = _score(through)
        now = time.monotonic()
        if status != 200:
            failures += 1
            if first_failure is None:
                first_failure = now
        elif first_failure is not None or now - killed > 5.0:
            back = now
            break
        time.sleep(POLL_S)
    if back is None:
        raise harness.BenchError("the endpoint did not answer again within 90 s of the kill")
    result = {
        "killed_port": host.port,
        "scored_through_port": standby.port,
        "non_200_s": (back - first_failure) if first_failure is not None else 0.0,
        "kill_to_200_s": back - killed,
        "failed_calls": failures,
    }
    harness.log(f"endpoint round: {result}")
    host.start(database_url)
    return result


# ---------------------------------------------------------------------- report
def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s / {max(values):.2f} s"


def report(
    measured: dict[str, Any], command: list[str], started: float, load_at_start: float | None
) -> str:
    jobs, endpoints = measured["jobs"], measured["endpoints"]
    rows = []
    stored = ", ".join(f"{j['stored']}/{j['logged']}" for j in jobs)
    statuses = ", ".join(sorted({j["status"] for j in jobs}))
    next_point = [j["kill_to_next_point_s"] for j in jobs if j["kill_to_next_point_s"] is not None]
    rows.append(
        (
            "Job metrics: kill → server 2 shows a point logged after the kill",
            _spread(next_point) if next_point else "never",
            f"points stored {stored}; jobs {statuses}",
        )
    )
    rows.append(
        (
            "Job metrics: largest gap between consecutive arrivals (polled every 0.05 s)",
            _spread([j["largest_arrival_gap_s"] for j in jobs]),
            "largest gap between logged points "
            + _spread([j["largest_logging_gap_s"] for j in jobs]),
        )
    )
    rows.append(
        (
            "Endpoint: non-200 answers, first failure → next 200",
            _spread([e["non_200_s"] for e in endpoints]),
            "failed calls " + ", ".join(str(e["failed_calls"]) for e in endpoints),
        )
    )
    rows.append(
        (
            "Endpoint: kill → next 200",
            _spread([e["kill_to_200_s"] for e in endpoints]),
            "",
        )
    )
    table = harness.table(["gap", "median / max", "notes"], rows)
    rounds = len(jobs)
    return "\n\n".join(
        [
            "## Failover between servers over one PostgreSQL",
            harness.header(
                "failover",
                command,
                started,
                [
                    "- Setup: two `cumulo server`s (one worker each) on loopback ports of this "
                    "machine, over one PostgreSQL (fsync off) and one shared artifact folder, "
                    "each given both URLs in `CUMULO_SERVICE_URLS`; default leases "
                    f"(`CUMULO_LEASE_SECONDS` unset); {rounds} rounds of each measurement, "
                    "each server killed with SIGKILL",
                    f"- Job metrics: a job submitted through server 1 logs a point every "
                    f"{POLL_S:g} s for {JOB_SECONDS:g} s ({int(JOB_SECONDS / POLL_S)} points, "
                    f"each valued with the wall-clock time it was logged); server 1 is killed "
                    f"{KILL_AFTER_S:g} s after its first point shows through server 2, which is "
                    f"polled every {POLL_S:g} s. The store keeps no arrival time: a point's "
                    "arrival is the first poll that shows it. Server 1 is started again after "
                    "the job ends",
                    f"- Endpoint: a two-number scaler with an entry script (no framework), one "
                    f"replica, deployed through server 1 after the job rounds and scored every "
                    f"{POLL_S:g} s through the server not hosting it; the hosting server (the "
                    f"holder of the deployment's lease) is killed once the standby has run "
                    f"{STANDBY_WARM_S:g} s with the endpoint in the store (its replica "
                    "preloader warm), then started again as the next round's standby",
                ],
                load_at_start,
            ),
            table,
            "Arrival gaps include the SDK's batching (a batch every 0.2 s) and the polling "
            "interval, so a gap under about 0.3 s is the ordinary rhythm. A job's script "
            "sends to the next server in `CUMULO_SERVICE_URLS` once its server stops "
            "answering; an endpoint is taken over when its host's deployment lease (3 s, "
            "renewed every second) runs out, and the standby forks the replica from its "
            "warm preloader. Both servers, PostgreSQL, the job and the replicas share the "
            "machine's cores with other work (see the load average), so the figures are "
            "noisy.",
        ]
    )


def measure(rounds: int, work: Path) -> dict[str, Any]:
    ports = [_free_port(), _free_port()]
    urls = ",".join(f"http://127.0.0.1:{p}" for p in ports)
    artifacts = work / "artifacts"
    artifacts.mkdir(parents=True)
    env = harness.side_env(CUMULO_ARTIFACT_ROOT=str(artifacts), CUMULO_SERVICE_URLS=urls)
    servers = [Server(p, work / f"home{i + 1}", env) for i, p in enumerate(ports)]
    measured: dict[str, Any] = {"jobs": [], "endpoints": []}
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(local_postgres(_free_port()))
        for server in servers:
            stack.callback(server.stop)
        first, second = servers
        first.start(database_url)
        made = httpx.post(first.url + "/api/v1/workspaces", json={"name": WORKSPACE}, timeout=30)
        if made.status_code not in (200, 201, 409):
            made.raise_for_status()
        src = work / "src"
        src.mkdir()
        (src / "job.py").write_text(JOB_PY)
        second.start(database_url)
        for i in range(rounds):
            harness.log(f"job round {i + 1}")
            measured["jobs"].append(job_round(first, second, database_url, src))
        # Deployed after the job rounds, so their kills move no replicas. Either server's
        # supervisor may take the new deployment's lease; the round kills whichever holds it.
        uri = deploy(first, work / f"endpoint-{uuid.uuid4().hex[:6]}")
        deployed = time.monotonic()
        harness.log(f"deployed {uri}")
        for i in range(rounds):
            harness.log(f"endpoint round {i + 1}")
            measured["endpoints"].append(endpoint_round(servers, database_url, uri, deployed))
    return measured


def run(args: argparse.Namespace, command: list[str]) -> str:
    """The benchmark as ``benchmarks/run.py failover`` runs it: the section's markdown."""
    rounds = int(getattr(args, "rounds", ROUNDS))
    keep = bool(getattr(args, "keep", False))
    started, load_at_start = time.time(), harness.load()
    work = Path(tempfile.mkdtemp(prefix="cumulo-bench-failover-"))
    try:
        measured = measure(rounds, work)
    finally:
        if keep:
            harness.log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    harness.log(json.dumps(measured))
    return report(measured, command, started, load_at_start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--keep", action="store_true", help="keep the folders and logs")
    parser.add_argument("--no-write", action="store_true", help="Print, do not write the doc.")
    args = parser.parse_args()
    body = run(args, ["python", "benchmarks/failover.py", *sys.argv[1:]])
    if not args.no_write:
        harness.write_section("failover", body)
    print(body)


if __name__ == "__main__":
    main()
