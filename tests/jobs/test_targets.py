"""The job suite, run on every compute target: local, a managed pool, a Ray cluster and a
machine reached over SSH."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tests.jobs.conftest import pid_alive, wait_until, write_script

from cumulo import Environment, Experiment, ScriptRunConfig, Workspace

HELLO = """\
import json, os, sys
from cumulo import Run

run = Run.get_context()
print("args:", json.dumps(sys.argv[1:]))
print("greeting:", os.environ.get("GREETING"))
print("cwd has snapshot:", os.path.exists("helper.txt"))
print("oops", file=sys.stderr)
run.log("accuracy", 0.75)
run.log_params({"lr": sys.argv[2]})
run.flush()
os.makedirs("outputs/sub", exist_ok=True)
open("outputs/sub/model.txt", "w").write("weights")
os.makedirs("logs", exist_ok=True)
open("logs/train.log", "w").write("epoch 1\\n")
print("env:", json.dumps({k: v for k, v in os.environ.items() if k.startswith("CUMULO_RUN")}))
"""


def _exp(ws: Workspace) -> Experiment:
    return Experiment(ws, "suite")


def test_args_env_outputs_and_tracking(ws: Workspace, target: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_script(src, "train.py", HELLO)
    (src / "helper.txt").write_text("data")
    env = Environment("greet", environment_variables={"GREETING": "hi there"})
    config = ScriptRunConfig(
        src, "train.py", arguments=["--lr", 0.5], compute_target=target, environment=env
    )
    run = _exp(ws).submit(config, tags={"suite": "yes"})
    assert run.get_status() in ("Queued", "Preparing", "Starting", "Running", "Finalizing")
    details = run.wait_for_completion(show_output=False, raise_on_error=True)

    assert details["status"] == "Completed"
    history = [s["status"] for s in details["statusHistory"]]
    assert history == ["Queued", "Preparing", "Starting", "Running", "Finalizing", "Completed"]
    assert details["target"] == target
    assert details["snapshotId"] and details["environment"] == "greet:1"
    logs = run.get_logs()
    assert 'args: ["--lr", "0.5"]' in logs
    assert "greeting: hi there" in logs
    assert "cwd has snapshot: True" in logs
    assert "oops" in logs
    assert f'"CUMULO_RUN_ID": "{run.id}"' in logs
    assert run.get_metrics() == {"accuracy": 0.75}
    assert run.get_params() == {"lr": "0.5"}
    names = run.get_file_names()
    assert "outputs/sub/model.txt" in names
    assert "logs/train.log" in names
    assert "user_logs/std_log.txt" in names
    assert run.get_tags()["suite"] == "yes"


def test_logs_stream_while_the_script_runs(ws: Workspace, target: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    src = tmp_path / "src"
    write_script(
        src,
        "live.py",
        "import os, sys, time\n"
        "print('first line', flush=True)\n"
        "while not os.path.exists(sys.argv[1]):\n"
        "    time.sleep(0.05)\n"
        "print('second line')\n",
    )
    run = _exp(ws).submit(
        ScriptRunConfig(src, "live.py", arguments=[str(gate)], compute_target=target)
    )
    # The first line is readable while the script still blocks on the gate.
    wait_until(lambda: "first line" in run.get_logs(), what="the first log line")
    assert run.get_status() == "Running"
    assert "second line" not in run.get_logs()
    gate.write_text("go")
    assert run.wait_for_completion(show_output=False)["status"] == "Completed"
    assert "second line" in run.get_logs()


def test_cancel_ends_the_whole_process_tree(ws: Workspace, target: str, tmp_path: Path) -> None:
    pids = tmp_path / "pids.json"
    src = tmp_path / "src"
    write_script(
        src,
        "sleepy.py",
        "import json, os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "open(sys.argv[1], 'w').write(json.dumps([os.getpid(), child.pid]))\n"
        "print('started', flush=True)\n"
        "time.sleep(600)\n",
    )
    run = _exp(ws).submit(
        ScriptRunConfig(src, "sleepy.py", arguments=[str(pids)], compute_target=target)
    )
    wait_until(lambda: "started" in run.get_logs(), what="the script to start")
    script_pid, grandchild_pid = json.loads(pids.read_text())
    run.cancel()
    details = run.wait_for_completion(show_output=False)
    assert details["status"] == "Canceled"
    assert "canceled" in details["error"]["message"].lower()
    wait_until(lambda: not pid_alive(script_pid), 30, "the script to end")
    wait_until(lambda: not pid_alive(grandchild_pid), 30, "the script's child to end")


def test_time_limit_cancels_with_the_reason(ws: Workspace, target: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_script(src, "slow.py", "import time\nprint('working', flush=True)\ntime.sleep(600)\n")
    config = ScriptRunConfig(src, "slow.py", compute_target=target, max_run_duration_seconds=1)
    details = _exp(ws).submit(config).wait_for_completion(show_output=False)
    assert details["status"] == "Canceled"
    assert "max_run_duration_seconds=1" in details["error"]["message"]


def test_failing_script_fails_with_code_and_stderr(
    ws: Workspace, target: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_script(
        src,
        "bad.py",
        "import os, sys\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/partial.txt', 'w').write('half')\n"
        "print('the data file is missing', file=sys.stderr)\n"
        "sys.exit(3)\n",
    )
    run = _exp(ws).submit(ScriptRunConfig(src, "bad.py", compute_target=target))
    details = run.wait_for_completion(show_output=False)
    assert details["status"] == "Failed"
    error = details["error"]
    assert error["exit_code"] == 3
    assert "exited with code 3" in error["message"]
    assert "the data file is missing" in error["message"]
    assert "outputs/partial.txt" in run.get_file_names()  # outputs are kept on failure


def test_failing_environment_build_fails_the_run(
    ws: Workspace, target: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_script(src, "ok.py", "print('never runs')\n")
    env = Environment("broken", pip_requirements=["cumulo-no-such-package-zz==9.9.9"])
    run = _exp(ws).submit(ScriptRunConfig(src, "ok.py", compute_target=target, environment=env))
    details = run.wait_for_completion(show_output=False)
    assert details["status"] == "Failed"
    message = details["error"]["message"]
    assert "cumulo-no-such-package-zz" in message
    assert "No matching distribution" in message or "Could not find" in message
    logs = run.get_logs()
    assert "never runs" not in logs
    assert "cumulo-no-such-package-zz" in logs  # pip's own words are in the run's logs


def test_environment_is_built_once_and_reused(ws: Workspace, target: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_script(src, "use_six.py", "import sys, six\nprint('six from', six.__file__)\n")
    env = Environment("six-env", pip_requirements=["six==1.17.0"])
    config = ScriptRunConfig(src, "use_six.py", compute_target=target, environment=env)
    first, second = _exp(ws).submit(config), _exp(ws).submit(config)
    for run in (first, second):
        assert run.wait_for_completion(show_output=False)["status"] == "Completed"
    logs = [first.get_logs(), second.get_logs()]
    assert sum(log.count("+ six==1.17.0") for log in logs) == 1  # uv installed it once
    assert all("/envs/" in log and "six from" in log for log in logs)
    assert sys.prefix not in logs[0].split("six from", 1)[1].splitlines()[0]
    third = _exp(ws).submit(config)
    assert third.wait_for_completion(show_output=False)["status"] == "Completed"
    assert "Using cached" in third.get_logs()
    if target != "ssh":  # an SSH machine builds in a cache of its own, unseen by the workspace
        assert Environment.get(ws, "six-env").build_status == "Ready"


def test_restore_snapshot_and_ignore_rules(ws: Workspace, target: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_script(src, "main.py", "print('restored')\n")
    (src / "data").mkdir()
    (src / "data" / "big.bin").write_bytes(b"x" * 1000)
    (src / ".cumuloignore").write_text("data/\n")
    run = _exp(ws).submit(ScriptRunConfig(src, "main.py", compute_target=target))
    assert run.wait_for_completion(show_output=False)["status"] == "Completed"
    out = run.restore_snapshot(tmp_path / "restored")
    assert (out / "main.py").read_text() == "print('restored')\n"
    assert not (out / "data").exists()


@pytest.mark.parametrize("target", ["ray"], indirect=True)
@pytest.mark.slow
def test_ray_gets_the_resources_asked(ws: Workspace, target: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_script(
        src, "gpu.py", "import os\nprint('devices', os.environ.get('CUDA_VISIBLE_DEVICES'))\n"
    )
    config = ScriptRunConfig(src, "gpu.py", compute_target=target, resources={"gpus": 1})
    run = _exp(ws).submit(config)
    assert run.wait_for_completion(show_output=False)["status"] == "Completed"
    assert "devices 0" in run.get_logs()


@pytest.mark.slow
def test_a_managed_ray_head_starts_on_first_use_and_stops_with_its_target(
    ws: Workspace, tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    from cumulo import ComputeTarget, RayCluster
    from cumulo.compute import processes

    target = ComputeTarget.create(ws, "own-ray", RayCluster.managed(num_cpus=1))
    src = tmp_path / "src"
    write_script(src, "hi.py", "print('hello from ray')\n")
    run = _exp(ws).submit(ScriptRunConfig(src, "hi.py", compute_target="own-ray"))
    assert run.wait_for_completion(show_output=False)["status"] == "Completed"
    assert "hello from ray" in run.get_logs()
    assert ws._settings is not None
    state = json.loads((ws._settings.home / "ray" / f"{ws.name}-own-ray.json").read_text())
    assert processes.alive(state["pid"], state["start"])
    target.delete()
    wait_until(lambda: not processes.alive(state["pid"], state["start"]), 60, "the head to stop")
