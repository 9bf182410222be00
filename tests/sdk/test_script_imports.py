"""A tracked script pays only for what it uses: ``from cumulo import Run`` loads neither the
HTTP client (a server's workspace loads it when it connects), nor the terminal library
(progress bars, an environment's build output), nor the code-snapshot packer and its ignore
rules (a submit), nor psutil (a run that samples its own system metrics)."""

from __future__ import annotations

import json
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
