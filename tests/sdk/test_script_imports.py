"""A tracked script pays only for what it uses: ``from cumulo import Run`` loads neither the
HTTP client (a server's workspace loads it when it connects), nor the terminal library
(progress bars, an environment's build output), nor the code-snapshot packer and its ignore
rules (a submit), nor psutil (a run that samples its own system metrics)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

LOADED_ON_USE = {
    "httpx", "rich", "pathspec", "psutil", "cumulo.compute.snapshots", "cumulo.sdk.http",
}  # fmt: skip


def test_a_script_importing_run_leaves_submit_and_terminal_libraries_unloaded() -> None:
    script = (
        "import sys, json\n"
        "from cumulo import Run, Experiment, Workspace, ScriptRunConfig\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out.strip().splitlines()[-1]))
    assert "cumulo.sdk.workspace" in loaded and "cumulo.sdk.jobs" in loaded
    assert not loaded & LOADED_ON_USE


# What a job's run needs of an embedded workspace is its tracking: the other services
# (and their stores) load where they are first used.
OTHER_SERVICES = {
    "cumulo.services.jobs", "cumulo.services.sweeps", "cumulo.services.pipelines",
    "cumulo.services.datasets", "cumulo.services.deployments", "cumulo.services.registry",
}  # fmt: skip


def test_a_jobs_script_logs_to_its_embedded_run_with_the_tracking_service_alone() -> None:
    from cumulo import Experiment, Workspace

    ws = Workspace.create("scripts", exist_ok=True)
    run = Experiment(ws, "imports").start_logging()
    script = (
        "import sys, json\n"
        "from cumulo import Run\n"
        "run = Run.get_context()\n"
        "run.log('loss', 0.25)\n"
        "run.workspace.flush()\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    env = {**os.environ, "CUMULO_WORKSPACE": ws.name, "CUMULO_RUN_ID": run.id}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    ).stdout
    loaded = set(json.loads(out.strip().splitlines()[-1]))
    assert "cumulo.services.tracking" in loaded
    assert not loaded & OTHER_SERVICES
    assert run.get_metrics()["loss"] == 0.25
    run.complete()
