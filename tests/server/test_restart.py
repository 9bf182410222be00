"""A server killed with SIGKILL while a client logs loses nothing and duplicates nothing."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server

from cumulo import Workspace
from cumulo.sdk.http import HttpTransport
from cumulo.sdk.workspace import Experiment

pytestmark = pytest.mark.slow

POINTS = 60_000


def test_every_point_arrives_exactly_once_across_a_sigkill(tmp_path: Path) -> None:
    home, port = tmp_path / "server-home", free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_cumulo_server(home, port)
    try:
        HttpTransport(url).tracking.create_workspace("crash")
        workspace = Workspace.connect(url, "crash")
        run = Experiment(workspace, "sigkill").start_logging()
        killed_at = POINTS // 3
        for step in range(POINTS):
            run.log("loss", 1.0 / (step + 1), step=step)
            run.log("acc", step / POINTS, step=step)
            if step == killed_at:
                # The background writer is sending batches now: kill the server mid-stream.
                server.send_signal(signal.SIGKILL)
                server.wait()
        assert workspace.writer.buffered > 0  # nothing could be delivered while it was down
        server = start_cumulo_server(home, port)  # same home, same port
        run.flush(timeout=240)
        for key in ("loss", "acc"):
            history = run.get_metric_history(key)
            assert history["step"] == list(range(POINTS)), key  # each step once, in order
        assert history["value"][-1] == (POINTS - 1) / POINTS
    finally:
        stop_cumulo_server(server)
