"""Environments whose packages come from somewhere else than PyPI: pip options in the spec."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest
from tests.jobs.conftest import write_script

from cumulo import Environment, Experiment, ScriptRunConfig, Workspace
from cumulo.core.errors import InvalidInput


def _wheel(folder: Path, name: str, version: str, code: str) -> Path:
    """A minimal pure-Python wheel, as a private package index would hold it."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": code,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def test_packages_from_a_local_wheelhouse_without_an_index(tmp_path: Path) -> None:
    ws = Workspace.create("wheelhouse")
    _wheel(tmp_path / "wheels", "house_pkg", "0.3", "ANSWER = 42\n")
    env = Environment(
        "offline",
        pip_requirements=["--no-index", f"--find-links={tmp_path / 'wheels'}", "house_pkg==0.3"],
    )
    src = tmp_path / "src"
    write_script(src, "use.py", "import house_pkg\nprint('answer', house_pkg.ANSWER)\n")
    run = Experiment(ws, "envs").submit(ScriptRunConfig(src, "use.py", environment=env))
    details = run.wait_for_completion(show_output=False)
    assert details["status"] == "Completed", run.get_logs()
    assert "answer 42" in run.get_logs()
    # The options are kept spelled out, so the same spec is the same environment.
    spec = Environment.get(ws, "offline").pip_requirements
    assert spec[:2] == ["--no-index", f"--find-links {tmp_path / 'wheels'}"]


@pytest.mark.parametrize(
    "line", ["-r other.txt", "-e .", "--constraint c.txt", "--index-url", "--pre now"]
)
def test_pip_options_that_a_spec_cannot_carry_are_refused(line: str) -> None:
    ws = Workspace.create("refused-options")
    with pytest.raises(InvalidInput, match="is not allowed in pip_requirements: use one of"):
        Environment("bad", pip_requirements=[line, "six"]).register(ws)
