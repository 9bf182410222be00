"""Snapshots: ignore rules, content addressing, the size limit's advice, git state."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cumulo import Experiment, ScriptRunConfig, Workspace
from cumulo.compute.snapshots import collect
from cumulo.core.errors import PayloadTooLarge
from cumulo.services.context import open_services


def _jobs(ws: Workspace):  # type: ignore[no-untyped-def]
    assert ws._settings is not None
    return open_services(ws._settings).jobs


def test_ignore_files_and_always_ignored(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for rel in ("train.py", "pkg/mod.py", "pkg/__pycache__/mod.pyc", ".git/HEAD",
                "data/big.csv", "keep/notes.md", ".venv/bin/python", "model.ckpt"):  # fmt: skip
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    (src / ".gitignore").write_text("data/\n*.ckpt\n")
    assert [e.path for e in collect(src)] == [
        ".gitignore",
        "keep/notes.md",
        "pkg/mod.py",
        "train.py",
    ]
    # .cumuloignore wins over .gitignore.
    (src / ".cumuloignore").write_text("keep/\n")
    paths = [e.path for e in collect(src)]
    assert "keep/notes.md" not in paths and "data/big.csv" in paths and "model.ckpt" in paths


def test_same_code_is_stored_once(ws: Workspace, tmp_path: Path) -> None:
    jobs = _jobs(ws)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("print(1)\n")
    first = jobs.take_snapshot(ws.name, src)
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    assert jobs.take_snapshot(ws.name, copy).hash == first.hash  # content, not location
    (copy / "a.py").write_text("print(2)\n")
    assert jobs.take_snapshot(ws.name, copy).hash != first.hash
    assert len(jobs.list_snapshots(ws.name)) == 2
    assert first.files == [{"path": "a.py", "size": 9}]


def test_an_oversized_snapshot_names_its_largest_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUMULO_SNAPSHOT_MAX_MB", "0.01")
    ws = Workspace.create("big")  # its settings read the limit
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "train.py").write_text("print('hi')\n")
    (src / "data" / "huge.bin").write_bytes(b"\0" * 50_000)
    with pytest.raises(PayloadTooLarge) as caught:
        Experiment(ws, "big").submit(ScriptRunConfig(src, "train.py"))
    message = caught.value.message
    assert "data/huge.bin" in message
    assert ".cumuloignore" in message and "data/" in message
    assert "CUMULO_SNAPSHOT_MAX_MB" in message
    (src / ".cumuloignore").write_text("data/\n")
    run = Experiment(ws, "big").submit(ScriptRunConfig(src, "train.py"))
    assert run.wait_for_completion(show_output=False)["status"] == "Completed"


def test_git_commit_branch_and_dirty_state_are_recorded(ws: Workspace, tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    src = tmp_path / "repo"
    src.mkdir()
    (src / "train.py").write_text("print('v1')\n")

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(src), "-c", "user.email=a@b", "-c", "user.name=a", *args],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    (src / "train.py").write_text("print('v2')\n")
    run = Experiment(ws, "git").submit(ScriptRunConfig(src, "train.py"))
    props = run.get_properties()
    assert props["git.commit"] == git("rev-parse", "HEAD")
    assert props["git.branch"] == "main"
    assert props["git.dirty"] == "true"
    assert run.wait_for_completion(show_output=False)["status"] == "Completed"
    assert "v2" in run.get_logs()  # the working tree, not the commit, is what ran


def test_a_script_outside_the_snapshot_is_refused(ws: Workspace, tmp_path: Path) -> None:
    from cumulo import InvalidInput

    src = tmp_path / "src"
    src.mkdir()
    (src / "other.py").write_text("")
    with pytest.raises(InvalidInput, match="not in the snapshot"):
        Experiment(ws, "x").submit(ScriptRunConfig(src, "train.py"))
    with pytest.raises(InvalidInput, match="relative"):
        Experiment(ws, "x").submit(ScriptRunConfig(src, "../train.py"))
