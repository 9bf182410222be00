"""Environments: built by uv (or pip when set so), with the spec's pip options carried over
to uv, failures that name the requirement, and a built environment reused."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest
from tests.jobs.conftest import write_script

from cumulo import Environment, Experiment, ScriptRunConfig, Workspace
from cumulo.compute.environments import UV_CACHE, ensure_environment, uv_environ
from cumulo.core.errors import EnvironmentBuildError, InvalidInput
from cumulo.core.jobs import EnvironmentSpec
from cumulo.core.settings import Settings


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


def _spec(*requirements: str) -> EnvironmentSpec:
    return EnvironmentSpec.parse({"pip_requirements": list(requirements)})


def _answer(python: str, module: str) -> str:
    code = f"import {module}; print({module}.ANSWER)"
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


def test_uv_builds_from_a_find_links_folder_and_the_built_env_is_reused(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _wheel(wheels, "uv_pkg", "1.0", "ANSWER = 7\n")
    cache, log = tmp_path / "envs", []
    spec = _spec("--no-index", f"--find-links {wheels}", "uv_pkg==1.0")
    python = ensure_environment(spec, cache, log.append, label="offline:1")
    build = "\n".join(log)
    assert "with uv" in build and f"cache {cache / UV_CACHE}" in build
    assert "+ uv-pkg==1.0" in build  # uv's own line for what it installed
    assert "Activate with" not in build
    assert any((cache / UV_CACHE).iterdir())  # uv kept its wheels beside the environments
    assert _answer(python, "uv_pkg") == "7"
    log.clear()
    assert ensure_environment(spec, cache, log.append, label="offline:1") == python
    assert log == [f"Using cached offline:1 {spec.build_hash[:20]} ({Path(python).parents[1]})."]


def test_pip_index_variables_reach_uv_unless_uv_has_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = uv_environ(tmp_path, {"PIP_FIND_LINKS": "/a /b", "PIP_INDEX_URL": "http://x/simple",
                                "PIP_EXTRA_INDEX_URL": "http://y http://z",
                                "UV_INDEX_URL": "http://mine/simple"})  # fmt: skip
    assert env["UV_FIND_LINKS"] == "/a,/b"
    assert env["UV_EXTRA_INDEX_URL"] == "http://y http://z"
    assert env["UV_INDEX_URL"] == "http://mine/simple"
    assert env["UV_CACHE_DIR"] == str(tmp_path / UV_CACHE)
    assert uv_environ(tmp_path, {"UV_CACHE_DIR": "/own"})["UV_CACHE_DIR"] == "/own"
    # A machine whose pip finds its wheels through PIP_FIND_LINKS: uv finds them too.
    _wheel(tmp_path / "house", "pip_house", "2.0", "ANSWER = 2\n")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "house"))
    monkeypatch.delenv("UV_FIND_LINKS", raising=False)
    python = ensure_environment(_spec("--no-index", "pip_house"), tmp_path / "envs", print)
    assert _answer(python, "pip_house") == "2"


def _index(root: Path, name: str, version: str) -> str:
    """A one-package index on disk (a PEP 503 simple page), as a private index serves it."""
    wheel = _wheel(root / "files", name, version, f"ANSWER = {version!r}\n")
    page = root / "simple" / name.replace("_", "-") / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(f'<a href="../../files/{wheel.name}">{wheel.name}</a>\n')
    return (root / "simple").as_uri()


def test_extra_indexes_are_searched_as_pip_searches_them(tmp_path: Path) -> None:
    # uv's own default would take idx_pkg from the extra index alone, which lacks 1.0.
    main, extra = _index(tmp_path / "a", "idx_pkg", "1.0"), _index(tmp_path / "b", "idx_pkg", "2.0")
    spec = _spec(f"--index-url {main}", f"--extra-index-url {extra}", "idx_pkg==1.0")
    python = ensure_environment(spec, tmp_path / "envs", print)
    assert _answer(python, "idx_pkg") == "1.0"
    assert uv_environ(tmp_path, {"PIP_EXTRA_INDEX_URL": extra})["UV_INDEX_STRATEGY"] == (
        "unsafe-best-match"
    )
    assert "UV_INDEX_STRATEGY" not in uv_environ(tmp_path, {"UV_EXTRA_INDEX_URL": extra})


def test_a_pip_option_uv_lacks_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentBuildError, match="pip option --prefer-binary has no equivalent"):
        ensure_environment(_spec("--prefer-binary", "six"), tmp_path / "envs", print)


@pytest.mark.parametrize(
    ("requirements", "named", "explained"),
    [
        (["house_pkg==0.3", "nowhere_pkg==1.0"], "Could not find nowhere_pkg==1.0",
         "nowhere-pkg was not found in the provided package locations"),
        (["house_pkg==0.3", "house_pkg==0.4"], "The requirements house_pkg==0.3, house_pkg==0.4 "
         "conflict", "your requirements are unsatisfiable"),
    ],
)  # fmt: skip
def test_a_failed_build_fails_the_job_naming_the_requirement(
    tmp_path: Path, requirements: list[str], named: str, explained: str
) -> None:
    ws = Workspace.create("broken-envs")
    for version in ("0.3", "0.4"):
        _wheel(tmp_path / "wheels", "house_pkg", version, "ANSWER = 1\n")
    src = tmp_path / "src"
    write_script(src, "ok.py", "print('never runs')\n")
    env = Environment(
        "broken", pip_requirements=["--no-index", f"--find-links={tmp_path / 'wheels'}",
                                    *requirements])  # fmt: skip
    run = Experiment(ws, "envs").submit(ScriptRunConfig(src, "ok.py", environment=env))
    details = run.wait_for_completion(show_output=False)
    assert details["status"] == "Failed"
    message = details["error"]["message"]
    assert named in message and "No solution found" in message and explained in message
    assert "never runs" not in run.get_logs() and explained in run.get_logs()
    assert Environment.get(ws, "broken").build_status == "Failed"


def test_the_installer_setting_picks_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.load(environ={}).env_installer == "uv"
    with pytest.raises(ValueError, match="CUMULO_ENV_INSTALLER must be one of uv, pip"):
        Settings.load(environ={"CUMULO_ENV_INSTALLER": "conda"})
    _wheel(tmp_path / "wheels", "pip_pkg", "1.0", "ANSWER = 3\n")
    monkeypatch.setenv("CUMULO_ENV_INSTALLER", "pip")
    log: list[str] = []
    spec = _spec("--no-index", f"--find-links {tmp_path / 'wheels'}", "pip_pkg")
    python = ensure_environment(spec, tmp_path / "envs", log.append)
    assert "with pip" in log[0] and "Successfully installed pip_pkg-1.0" in log
    assert _answer(python, "pip_pkg") == "3"
    assert not (tmp_path / "envs" / UV_CACHE).exists()
