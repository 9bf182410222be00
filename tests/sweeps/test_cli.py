"""``cumulo sweep submit|show|cancel``: a sweep file, a leaderboard, bad files refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.jobs.conftest import write_script
from typer.testing import CliRunner

from cumulo import Experiment, InvalidInput, Workspace
from cumulo.cli.main import app
from cumulo.cli.sweeps import expression, load_sweep_file

cli = CliRunner()

TRAIN = """\
import argparse
from cumulo import Run
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
p.add_argument("--act")
a = p.parse_args()
Run.get_context().log("loss", (a.x - 0.5) ** 2 + (0.1 if a.act == "tanh" else 0.0))
"""


def _sweep_file(tmp_path: Path, extra: str = "") -> Path:
    write_script(tmp_path / "src", "train.py", TRAIN)
    file = tmp_path / "sweep.yml"
    file.write_text(
        "experiment: from-cli\n"
        "code: src\n"
        "script: train.py\n"
        "sampling: grid\n"
        "parameters:\n"
        "  x: choice(0.2, 0.5)\n"
        "  act: [relu, tanh]\n"
        "metric: loss\n"
        "goal: minimize\n"
        "max_total_runs: 10\n"
        "max_concurrent_runs: 4\n" + extra
    )
    return file


@pytest.mark.slow
def test_submit_a_sweep_file_and_show_its_leaderboard(ws: Workspace, tmp_path: Path) -> None:
    result = cli.invoke(app, ["sweep", "submit", "-w", ws.name, "-f", str(_sweep_file(tmp_path))])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # the console wraps long lines
    assert "Submitted sweep" in said and "4 trials of train.py" in said
    assert "Completed, 4 of 4 trials ended, grid sampling, loss (minimize)" in said
    run_id = result.output.split("Submitted sweep ")[1].split(":")[0].strip()

    shown = cli.invoke(app, ["sweep", "show", run_id[:8], "-w", ws.name, "--json"])
    assert shown.exit_code == 0, shown.output
    board = json.loads(shown.output)
    assert board["status"] == "Completed"
    assert board["leaderboard"][0]["hyperparameters"] == {"x": "0.5", "act": "relu"}
    assert [r["primary_metric"] for r in board["leaderboard"]] == sorted(
        r["primary_metric"] for r in board["leaderboard"]
    )
    top = cli.invoke(app, ["sweep", "show", run_id, "-w", ws.name, "--top", "1"])
    assert top.exit_code == 0, top.output
    assert "relu" in top.output and "tanh" not in top.output

    again = cli.invoke(app, ["sweep", "cancel", run_id, "-w", ws.name])
    assert again.exit_code == 0 and "Completed" in again.output  # an ended sweep stays so


def test_a_run_that_is_not_a_sweep_is_refused(ws: Workspace) -> None:
    run = Experiment(ws, "plain").start_logging()
    result = cli.invoke(app, ["sweep", "show", run.id, "-w", ws.name])
    assert result.exit_code == 1
    assert f"Run {run.id} is not a sweep." in " ".join(result.output.split())


def test_bad_sweep_files_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"Unknown fields .*\['budget'\]"):
        load_sweep_file(_sweep_file(tmp_path, "budget: 3\n"))
    with pytest.raises(InvalidInput, match="choice\\(\\) values only"):
        load_sweep_file(_write(tmp_path, "sampling: grid\nparameters: {x: 'uniform(0, 1)'}\n"))
    with pytest.raises(InvalidInput, match="Unknown primary_metric_goal"):
        load_sweep_file(_write(tmp_path, "parameters: {x: [1, 2]}\nprimary_metric_goal: up\n"))
    with pytest.raises(InvalidInput, match="cannot read the values"):
        expression("x", "uniform(0, __import__('os'))")
    with pytest.raises(InvalidInput, match="unknown expression 'gauss'"):
        expression("x", "gauss(0, 1)")
    assert repr(expression("x", "choice([1, 2])")) == "choice(1, 2)"
    assert repr(expression("x", {"kind": "quniform", "args": [0, 8, 2]})) == "quniform(0, 8, 2)"


def test_a_sweep_file_with_several_objectives_or_a_warm_start(tmp_path: Path) -> None:
    file = tmp_path / "multi.yml"
    file.write_text(
        "experiment: e\nscript: train.py\nparameters: {x: [1, 2]}\n"
        "primary_metrics: {accuracy: maximize, latency_ms: minimize}\n"
    )
    spec = load_sweep_file(file)[2].spec
    assert spec.multi_objective and [n for n, _ in spec.objectives] == ["accuracy", "latency_ms"]
    with pytest.raises(InvalidInput, match="needs 'primary_metric_name:' \\(or 'primary_metrics:'"):
        load_sweep_file(_write(tmp_path, "parameters: {x: [1, 2]}\n", metric=""))
    resumed = load_sweep_file(
        _write(tmp_path, "parameters: {x: [1, 2]}\nsampling: bayesian\nresume_from: abc\n")
    )
    assert resumed[2].spec.resume_from == "abc"


def _write(tmp_path: Path, body: str, metric: str = "loss") -> Path:
    file = tmp_path / "other.yml"
    file.write_text(f"experiment: e\nscript: train.py\nprimary_metric_name: {metric}\n" + body)
    return file
