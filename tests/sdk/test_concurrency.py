"""Eight processes logging to one SQLite workspace at once: nothing lost, no lock errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cumulo import Experiment, Workspace

WORKER = textwrap.dedent(
    """
    import sys
    from cumulo import Experiment, Workspace
    home, index = sys.argv[1], int(sys.argv[2])
    ws = Workspace.get("shared", home=home)
    exp = Experiment(ws, "parallel")
    with exp.start_logging(display_name=f"worker-{index}") as run:
        run.log_params({"index": index})
        for step in range(2000):
            run.log("value", float(step), step=step)
            if step % 500 == 0:
                run.tag("progress", str(step))
                run.flush()
    print("done", run.id)
    """
)


@pytest.mark.slow
def test_eight_processes_log_to_one_sqlite_workspace(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Workspace.create("shared", home=home)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(home), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err.lower()
    ws = Workspace.get("shared", home=home)
    runs = list(Experiment(ws, "parallel").get_runs())
    assert len(runs) == 8
    assert sorted(r.number for r in runs) == list(range(1, 9))
    for run in runs:
        assert run.get_status() == "Completed"
        assert run.get_metric_history("value")["value"] == [float(s) for s in range(2000)]
