"""A machine attached over SSH: secrets, a lost connection, slots, pinned host keys, the CLI.

The job suite itself runs over SSH too (``test_targets.py``, target ``ssh``);
these tests cover what only this target does. They use a real sshd
(``tests/jobs/sshd.py``) and a server in this process (``served_ws``).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from tests.jobs.conftest import (
    pid_alive,
    serve_workspace,
    shared_folder,
    ssh_machine,
    wait_until,
    write_script,
)
from tests.jobs.sshd import Sshd
from typer.testing import CliRunner

from cumulo import (
    ComputeTarget,
    Experiment,
    InvalidInput,
    Resources,
    ScriptRunConfig,
    SshMachine,
    Workspace,
)
from cumulo.cli.main import app
from cumulo.compute.gpus import gpus_here
from cumulo.core.settings import Settings

pytestmark = pytest.mark.slow

SLEEPER = (
    "import json, os, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "open(sys.argv[1], 'w').write(json.dumps([os.getpid(), child.pid]))\n"
    "print('started', flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.fixture
def shared() -> Iterator[Path]:
    with shared_folder() as folder:
        yield folder


@pytest.fixture
def machine(sshd: Sshd) -> Sshd:
    for folder in ("envs", "jobs"):
        shutil.rmtree(sshd.home / ".cumulo-jobs" / folder, ignore_errors=True)
    return sshd


def _server_settings(tmp_path: Path) -> Settings:
    return Settings.load(home=tmp_path / "server-home")  # served_ws's home


def test_the_key_is_sealed_in_the_database_and_never_shown(
    served_ws: Workspace, machine: Sshd, tmp_path: Path
) -> None:
    key_text = machine.key_file.read_text()
    secret_line = key_text.splitlines()[1]
    target = ComputeTarget.attach(served_ws, "box", ssh_machine(machine, password="hunter2-pw"))

    settings = _server_settings(tmp_path)
    engine = sa.create_engine(settings.database_url)
    with engine.connect() as conn:
        rows = [r[0] for r in conn.execute(sa.text("SELECT config FROM compute_targets"))]
    engine.dispose()
    stored = json.dumps(rows)
    assert len(rows) == 1
    assert secret_line not in stored and "PRIVATE KEY" not in stored
    assert "hunter2-pw" not in stored
    assert stored.count("sealed:fernet:") == 2
    secret_file = settings.home / "secret.key"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600

    assert target.config["private_key"] == "***"
    assert target.config["password"] == "***"
    assert target.config["host"] == machine.host and target.config["port"] == machine.port
    assert "hunter2-pw" not in repr(ssh_machine(machine, password="hunter2-pw"))
    url = served_ws.url
    assert url is not None
    for path in ("compute/box", "compute", "compute/box/status"):
        answer = httpx.get(f"{url}/api/v1/workspaces/{served_ws.name}/{path}").text
        assert secret_line not in answer and "hunter2-pw" not in answer
        assert '"private_key":"***"' in answer.replace(" ", "")


def test_with_token_checks_the_job_reports_with_its_own_token_revoked_at_its_end(
    machine: Sshd, tmp_path: Path
) -> None:
    with serve_workspace(tmp_path / "server-home", auth="token") as (ws, services):
        ComputeTarget.attach(ws, "box", ssh_machine(machine))
        src = tmp_path / "src"
        write_script(
            src,
            "tracked.py",
            "from cumulo import Run\nrun = Run.get_context()\nrun.log('loss', 0.5)\n",
        )
        run = Experiment(ws, "tokens").submit(
            ScriptRunConfig(src, "tracked.py", compute_target="box")
        )
        assert run.wait_for_completion(show_output=False, timeout=120)["status"] == "Completed"
        assert run.get_metrics() == {"loss": 0.5}
        env_files = list((machine.home / ".cumulo-jobs" / "jobs").glob("*/.cumulo_job/env.json"))
        assert len(env_files) == 1
        assert stat.S_IMODE(env_files[0].stat().st_mode) == 0o600  # its user's alone
        token = json.loads(env_files[0].read_text())["CUMULO_TOKEN"]
        reader = services.auth.create_token(ws.name, "reader")[1]
        assert ws.url is not None
        route = f"{ws.url}/api/v1/workspaces/{ws.name}/runs/{run.id}"
        assert httpx.get(route, headers={"Authorization": f"Bearer {reader}"}).status_code == 200
        answer = httpx.get(route, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401  # the job's token ended with the job


def test_a_lost_connection_fails_the_job_and_the_machine_ends_it(
    served_ws: Workspace, machine: Sshd, shared: Path, tmp_path: Path
) -> None:
    ComputeTarget.attach(served_ws, "box", ssh_machine(machine, lost_after_seconds=3))
    pids = shared / "pids.json"
    src = tmp_path / "src"
    write_script(src, "sleepy.py", SLEEPER)
    run = Experiment(served_ws, "lost").submit(
        ScriptRunConfig(src, "sleepy.py", arguments=[str(pids)], compute_target="box")
    )
    wait_until(lambda: "started" in run.get_logs(), what="the script to start")
    script, grandchild = json.loads(pids.read_text())
    machine.stop()  # the server and every connection it served
    try:
        details = run.wait_for_completion(show_output=False, timeout=120)
    finally:
        machine.start()
    assert details["status"] == "Failed"
    message = details["error"]["message"]
    assert f"the SSH connection to {machine.user}@{machine.host}:{machine.port}" in message
    assert "lost" in message
    # The machine stopped the job itself: nobody checked on it any more.
    wait_until(lambda: not pid_alive(script), 30, "the script to end")
    wait_until(lambda: not pid_alive(grandchild), 30, "the script's child to end")


def test_a_lost_connection_retries_the_job_when_allowed(
    served_ws: Workspace, machine: Sshd, shared: Path, tmp_path: Path
) -> None:
    # The machine comes back within lost_after_seconds of the job's loss: its retry starts there.
    ComputeTarget.attach(served_ws, "box", ssh_machine(machine, lost_after_seconds=5))
    src = tmp_path / "src"
    marker = shared / "first-attempt"
    write_script(
        src,
        "once.py",
        "import os, sys, time\n"
        "if not os.path.exists(sys.argv[1]):\n"
        "    open(sys.argv[1], 'w').write('seen')\n"
        "    print('first attempt', flush=True)\n"
        "    time.sleep(600)\n"
        "print('second attempt done')\n",
    )
    config = ScriptRunConfig(
        src, "once.py", arguments=[str(marker)], compute_target="box", max_retries=1
    )
    run = Experiment(served_ws, "retry").submit(config)
    wait_until(lambda: "first attempt" in run.get_logs(), what="the first attempt")
    machine.stop()
    try:
        wait_until(lambda: "retrying, attempt 2" in run.get_logs(), 60, "the retry")
    finally:
        machine.start()
    details = run.wait_for_completion(show_output=False, timeout=120)
    assert details["status"] == "Completed"
    assert "second attempt done" in run.get_logs()


def test_at_most_max_concurrent_jobs_run_at_once(
    served_ws: Workspace, machine: Sshd, shared: Path, tmp_path: Path
) -> None:
    ComputeTarget.attach(served_ws, "box", ssh_machine(machine, max_concurrent_jobs=1))
    spans = shared
    src = tmp_path / "src"
    write_script(
        src,
        "span.py",
        "import os, sys, time\n"
        "start = time.time()\n"
        "time.sleep(1.0)\n"
        "open(os.path.join(sys.argv[1], str(os.getpid())), 'w').write(f'{start} {time.time()}')\n",
    )
    config = ScriptRunConfig(src, "span.py", arguments=[str(spans)], compute_target="box")
    runs = [Experiment(served_ws, "slots").submit(config) for _ in range(3)]
    for run in runs:
        assert run.wait_for_completion(show_output=False, timeout=120)["status"] == "Completed"
    intervals = sorted(tuple(map(float, p.read_text().split())) for p in spans.iterdir())
    assert len(intervals) == 3
    for (_, end), (start, _) in itertools.pairwise(intervals):
        assert start >= end  # one after the other, never side by side


def test_a_host_key_other_than_the_pinned_one_is_refused(
    served_ws: Workspace, machine: Sshd, tmp_path: Path
) -> None:
    other = _other_host_key(tmp_path)
    ComputeTarget.attach(served_ws, "box", ssh_machine(machine, host_key=other))
    src = tmp_path / "src"
    write_script(src, "hi.py", "print('never runs')\n")
    run = Experiment(served_ws, "pinned").submit(
        ScriptRunConfig(src, "hi.py", compute_target="box")
    )
    details = run.wait_for_completion(show_output=False, timeout=60)
    assert details["status"] == "Failed"
    assert "another host key" in details["error"]["message"]


def _other_host_key(folder: Path) -> str:
    import subprocess

    path = folder / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return " ".join(Path(f"{path}.pub").read_text().split()[:2])


def test_an_embedded_workspace_is_told_that_the_machine_needs_a_server(
    ws: Workspace, machine: Sshd, tmp_path: Path
) -> None:
    ComputeTarget.attach(ws, "box", ssh_machine(machine))
    src = tmp_path / "src"
    write_script(src, "hi.py", "print('never runs')\n")
    run = Experiment(ws, "embedded").submit(ScriptRunConfig(src, "hi.py", compute_target="box"))
    details = run.wait_for_completion(show_output=False, timeout=60)
    assert details["status"] == "Failed"
    assert "cumulo server" in details["error"]["message"]


def test_settings_are_checked(ws: Workspace, tmp_path: Path) -> None:
    key = tmp_path / "not-a-key"
    key.write_text("hello\n")
    with pytest.raises(InvalidInput, match="could not be read"):
        ComputeTarget.attach(ws, "box", SshMachine("h", "u", key_file=key))
    with pytest.raises(InvalidInput, match="needs a private key"):
        ComputeTarget.attach(ws, "box", SshMachine("h", "u"))
    with pytest.raises(InvalidInput, match="port"):
        ComputeTarget.create(ws, "box", {"kind": "ssh", "host": "h", "user": "u", "port": 0,
                                         "password": "x"})  # fmt: skip
    with pytest.raises(InvalidInput, match="max_concurrent_jobs"):
        ComputeTarget.attach(ws, "box", SshMachine("h", "u", password="x", max_concurrent_jobs=0))


def test_cli_attaches_a_machine_and_hides_its_key(ws: Workspace, sshd: Sshd) -> None:
    cli = CliRunner()
    result = cli.invoke(
        app,
        [
            "compute", "attach-ssh", "box", "-w", ws.name, "--host", sshd.host,
            "--port", str(sshd.port), "--user", sshd.user, "--key-file", str(sshd.key_file),
            "--max-concurrent-jobs", "2",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    listed = cli.invoke(app, ["compute", "list", "-w", ws.name, "--json"])
    assert listed.exit_code == 0, listed.output
    box = next(t for t in json.loads(listed.output) if t["name"] == "box")
    assert box["kind"] == "ssh"
    assert box["config"]["private_key"] == "***"
    assert box["config"]["max_concurrent_jobs"] == 2
    assert sshd.key_file.read_text().splitlines()[1] not in result.output + listed.output


def test_folders_of_jobs_that_ended_a_week_ago_are_removed(
    served_ws: Workspace, machine: Sshd, tmp_path: Path
) -> None:
    jobs = machine.home / ".cumulo-jobs" / "jobs"
    old, recent = jobs / "cumulo-old-1", jobs / "cumulo-recent-1"
    for folder in (old, recent):
        (folder / ".cumulo_job").mkdir(parents=True)
        (folder / ".cumulo_job" / "exit.json").write_text('{"code": 0, "message": ""}')
    owner = machine.home.stat()
    for path in (jobs, *jobs.rglob("*")):  # the machine's user owns its folders
        os.chown(path, owner.st_uid, owner.st_gid)
    week_ago = time.time() - 8 * 86400
    os.utime(old / ".cumulo_job" / "exit.json", (week_ago, week_ago))
    ComputeTarget.attach(served_ws, "box", ssh_machine(machine))
    src = tmp_path / "src"
    write_script(src, "hi.py", "print('hello')\n")
    run = Experiment(served_ws, "prune").submit(ScriptRunConfig(src, "hi.py", compute_target="box"))
    assert run.wait_for_completion(show_output=False, timeout=120)["status"] == "Completed"
    assert not old.exists()
    assert recent.exists()


def test_the_machines_gpus_are_counted_on_attach_and_more_is_refused_at_submit(
    ws: Workspace, machine: Sshd, tmp_path: Path
) -> None:
    found = gpus_here()  # the machine is this one, reached over loopback as another user
    target = ComputeTarget.attach(ws, "box", ssh_machine(machine))
    assert target.config["gpus"] == found
    write_script(tmp_path / "src", "hi.py", "print('never runs')\n")
    config = ScriptRunConfig(
        tmp_path / "src", "hi.py", compute_target="box", resources=Resources(gpus=found + 1)
    )
    with pytest.raises(InvalidInput, match=f"{found + 1} GPUs?, and it has {found}"):
        Experiment(ws, "gpus").submit(config)
