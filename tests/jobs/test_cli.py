"""``cumulo job``, ``cumulo run logs|cancel``, ``cumulo compute`` and ``cumulo env``."""

from __future__ import annotations

import json
from pathlib import Path

from tests.jobs.conftest import wait_until, write_script
from typer.testing import CliRunner

from cumulo import Workspace
from cumulo.cli.jobs import _environment
from cumulo.cli.main import app
from cumulo.sdk.jobs import Environment

cli = CliRunner()


def _ok(*args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_submit_and_stream(ws: Workspace, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_script(src, "train.py", "import sys\nprint('lr is', sys.argv[2])\n")
    out = _ok(
        "job", "submit", "-w", ws.name, "-e", "cli", "--dir", str(src), "--stream",
        "--", "train.py", "--lr", "0.3",
    )  # fmt: skip
    assert "lr is 0.3" in out
    assert "Completed" in out


def test_submit_a_job_file_then_follow_and_list(ws: Workspace, tmp_path: Path) -> None:
    src = tmp_path / "project" / "src"
    write_script(src, "train.py", "import six, sys\nprint('six ok', sys.argv[1])\n")
    (tmp_path / "project" / "requirements.txt").write_text("six==1.17.0\n")
    job = tmp_path / "project" / "job.yml"
    job.write_text(
        "experiment: from-file\n"
        "code: src\n"
        "script: train.py\n"
        "arguments: [7]\n"
        "compute: pool\n"
        "environment: requirements.txt\n"
        "tags: {team: vision}\n"
    )
    _ok("compute", "create", "pool", "-w", ws.name, "--kind", "pool", "--max-nodes", "1")
    out = _ok("job", "submit", "-w", ws.name, "-f", str(job))
    run_id = out.strip().splitlines()[-1]
    logs = _ok("run", "logs", run_id, "-w", ws.name, "--follow")
    assert "six ok 7" in logs
    assert "+ six==1.17.0" in logs  # the environment build (uv) is in the run's logs
    assert "Completed" in logs
    run = ws.get_run(run_id)
    assert run.get_tags()["team"] == "vision"
    assert run.get_details()["environment"] == "from-file-env:1"
    assert "six ok 7" in _ok("run", "logs", run_id, "-w", ws.name)

    targets = json.loads(_ok("compute", "list", "-w", ws.name, "--json"))
    assert [t["name"] for t in targets] == ["local", "pool"]
    status = json.loads(_ok("compute", "show", "pool", "-w", ws.name, "--json"))
    assert status["max_nodes"] == 1 and status["queue"] == []
    envs = _ok("env", "list", "-w", ws.name)
    assert "from-file-env" in envs and "Ready" in envs


def test_cancel_from_the_cli(ws: Workspace, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_script(src, "sleep.py", "import time\nprint('up', flush=True)\ntime.sleep(600)\n")
    run_id = _ok("job", "submit", "-w", ws.name, "-e", "c", "--dir", str(src), "--", "sleep.py")
    run = ws.get_run(run_id.strip().splitlines()[-1])
    wait_until(lambda: "up" in run.get_logs(), what="the script to start")
    out = _ok("run", "cancel", run.id[:8], "-w", ws.name)  # the short id a table shows
    assert "Canceled" in out
    assert run.get_status() == "Canceled"


def test_compute_and_env_commands(ws: Workspace, tmp_path: Path) -> None:
    _ok("compute", "create", "p", "-w", ws.name, "--max-nodes", "3", "--idle-seconds", "9")
    assert "p" in _ok("compute", "list", "-w", ws.name)
    assert "nodes: 0 of 3" in _ok("compute", "show", "p", "-w", ws.name)
    _ok("compute", "delete", "p", "-w", ws.name)
    result = cli.invoke(app, ["compute", "show", "p", "-w", ws.name])
    assert result.exit_code == 1 and "does not exist" in result.output

    reqs = tmp_path / "reqs.txt"
    reqs.write_text("six==1.17.0\n")
    out = _ok("env", "build", str(reqs), "--name", "tiny", "-w", ws.name)
    assert "tiny:1 is Ready" in out
    shown = _ok("env", "show", "tiny", "-w", ws.name, "--log", "--json")
    assert '"build_status": "Ready"' in shown and "six" in shown
    table = _ok("env", "show", "tiny", "-w", ws.name)  # a table for people, not raw JSON
    assert "tiny:1" in table and "Ready" in table and "six==1.17.0" in table
    assert "{" not in table

    bad = cli.invoke(app, ["job", "submit", "-w", ws.name, "--", "x.py"])
    assert bad.exit_code == 1 and "experiment" in bad.output


def test_env_file_is_found_in_the_source_folder(tmp_path: Path) -> None:
    src = tmp_path / "project"
    src.mkdir()
    (src / "requirements.txt").write_text("six==1.17.0\n")
    env = _environment("requirements.txt", "e-env", src, tmp_path)  # the cwd has none
    assert isinstance(env, Environment) and env.pip_requirements == ["six==1.17.0"]
    assert _environment("team-env:2", "e-env", src, tmp_path) == "team-env:2"


def test_a_missing_env_file_is_named_not_taken_for_an_environment(ws: Workspace) -> None:
    result = cli.invoke(
        app,
        ["job", "submit", "-w", ws.name, "-e", "x", "--env", "requirements.txt", "--", "a.py"],
    )
    assert result.exit_code == 1
    assert "Environment file 'requirements.txt' not found" in result.output
    assert "registered" not in result.output.split("not found")[0]
