"""The server benchmark against a real ``cumulo server`` on tiny inputs.

It checks that the workload runs end to end, that the server returns the
expected runs and history through the MLflow client and the SDK, and that the
server's process tree is measured and stopped; never how fast anything is.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
import server  # noqa: E402
import startup  # noqa: E402
from servers import Server, free_port, process_tree  # noqa: E402


def _args(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "runs": 40,
        "points": 2000,
        "server_calls": 10,
        "sdk_points": 3000,
        "server_repeat": 1,
        "servers": "cumulo",
        "keep": False,
    }
    values.update(overrides)
    return argparse.Namespace(**values)


@pytest.mark.slow
def test_cumulo_server_through_the_mlflow_client_and_the_sdk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "WORK", tmp_path / "work")  # seed cache out of the checkout
    # The test environment's MLflow plays the client (the benchmark uses its own venv).
    result = server.measure("cumulo", _args(), tmp_path / "cumulo", Path(sys.executable))

    client = result["client"]
    assert client["search"]["agrees"] and client["search"]["returned"] > 0
    assert client["history"]["complete"] and client["history"]["points"] == 2000
    assert client["batch"]["points"] == 2000 and client["per_call"]["calls"] == 10
    sdk = result["sdk"]
    assert sdk["history"]["complete"] and sdk["history"]["points"] == 3000
    assert result["start_s"] > 0
    assert result["idle"]["processes"] >= 1 and result["idle"]["rss"] > 0

    results = {"cumulo": result, "mlflow": {"error": "could not start"}}
    section = server.render(results, _args(), ["python", "benchmarks/run.py", "server"], 0.0)
    assert "| `log_batch`, points/s" in section
    assert "MLflow failed: could not start" in section
    assert "Cumulo SDK over HTTP" in section
    assert "wrong" not in section


def test_a_stopped_server_leaves_no_process(tmp_path: Path) -> None:
    port = free_port()
    code = (
        "import http.server, subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    srv = Server("toy", [sys.executable, "-c", code], tmp_path, port, env=dict(os.environ))
    assert srv.start(timeout=30) > 0
    assert srv.proc is not None
    tree = process_tree(srv.proc.pid)
    # The child may take a moment to appear; memory counts every process of the tree.
    assert srv.memory()["processes"] >= 1 and len(tree) >= 1
    srv.stop()
    assert srv.proc.poll() is not None
    assert not srv.healthy()
    # Signals are delivered asynchronously: give a loaded machine a moment to end them.
    deadline = time.monotonic() + 10
    alive = set(tree)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if Path(f"/proc/{pid}").exists() and not _zombie(pid)}
        time.sleep(0.05)
    assert not alive


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_unknown_server_is_refused() -> None:
    with pytest.raises(harness.BenchError, match="unknown server nope"):
        server.run(_args(servers="cumulo,nope"), ["python"])


@pytest.mark.slow
def test_the_start_memory_and_cpu_per_request_of_cumulo_server(tmp_path: Path) -> None:
    result = startup.measure(tmp_path, repeat=2, requests=5)
    assert result["starts"] == 1 and result["start_cpu"] > 0 and result["start_wall"] > 0
    rows = result["memory"]["rows"]
    assert rows[0][0] == "after the start" and len(rows) == 6
    assert all(rss > 0 for _, rss in rows)
    assert set(result["per_cpu_second"]) == {"runs/create", "runs/get"}
    assert result["help"]["cpu"] > 0
    section = startup.render(result, ["python", "benchmarks/run.py", "startup"], 0.0, None)
    assert "| `runs/get`, requests per CPU-second of the server |" in section
