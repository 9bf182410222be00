"""Building a job's environment where it runs: pip requirements into a cached venv.

An environment is built once per distinct build spec (Python version +
requirements) into ``<cache>/<hash>`` and reused by every later run on that
machine; a file lock makes two runs that need the same new environment build it
once. The built environment falls back to the submitter's own packages (so
``cumulo`` itself is importable in the job) after its own, which take precedence.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

from cumulo.core.errors import ConfigError, EnvironmentBuildError
from cumulo.core.jobs import EnvironmentSpec

READY_MARK = ".cumulo-ready"
BASE_PTH = "_cumulo_base.pth"
BUILD_TIMEOUT_S = 1800

Log = Callable[[str], None]


def _python_for(version: str | None) -> str:
    """The interpreter to build from: this one, or ``pythonX.Y`` found on PATH."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if version is None or here.startswith(version) or version.startswith(here + "."):
        return getattr(sys, "_base_executable", None) or sys.executable
    found = shutil.which(f"python{version}")
    if found is None:
        raise ConfigError(
            f"Python {version} is not installed on this machine (no python{version} on PATH); "
            f"install it, or leave python unset to use Python {here}."
        )
    return found


def env_python(path: Path) -> Path:
    return path / "bin" / "python"


def ensure_environment(
    spec: EnvironmentSpec, cache: Path, log: Log, *, label: str = "environment"
) -> str:
    """The interpreter of ``spec``'s environment, built first if needed (once per machine)."""
    if not spec.needs_build:
        return sys.executable
    cache.mkdir(parents=True, exist_ok=True)
    key = spec.build_hash[:20]
    folder = cache / key
    if (folder / READY_MARK).exists():
        log(f"Using cached {label} {key} ({folder}).")
        return str(env_python(folder))
    with open(cache / f"{key}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"Another run is building {label} {key}; waiting for it.")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (folder / READY_MARK).exists():
                log(f"Using {label} {key}, just built by another run.")
                return str(env_python(folder))
            _build(spec, folder, log, label)
            return str(env_python(folder))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(spec: EnvironmentSpec, folder: Path, log: Log, label: str) -> None:
    started = time.monotonic()
    if folder.exists():
        shutil.rmtree(folder)  # a build that died half-way; we hold the lock
    base = _python_for(spec.python)
    log(f"Building {label} {folder.name}: python {spec.python or 'as submitter'}, "
        f"{len(spec.pip_requirements)} requirement(s).")  # fmt: skip
    _run([base, "-m", "venv", "--without-pip", str(folder)], log, "creating the venv")
    python = str(env_python(folder))
    if spec.pip_requirements:
        reqs = folder / "requirements.txt"
        reqs.write_text("\n".join(spec.pip_requirements) + "\n")
        _run(
            [sys.executable, "-m", "pip", "--python", python, "install",
             "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
             "-r", str(reqs)],
            log,
            "pip install",
        )  # fmt: skip
    if _same_minor(python):
        # Fall back to the submitter's packages after the env's own: cumulo and its
        # dependencies stay importable inside the job, the env's versions win.
        site = Path(
            subprocess.run(
                [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        lines = [f"import site; site.addsitedir({p!r})" for p in _base_site_dirs()]
        (site / BASE_PTH).write_text("\n".join(lines) + "\n")
    (folder / READY_MARK).write_text(f"{time.time():.0f}\n")
    log(f"Built {label} {folder.name} in {time.monotonic() - started:.1f}s.")


def _same_minor(python: str) -> bool:
    out = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    ).stdout.strip()
    return out == str(sys.version_info[:2])


def _base_site_dirs() -> list[str]:
    dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return list(dict.fromkeys(d for d in dirs if os.path.isdir(d)))


def _run(argv: list[str], log: Log, what: str) -> None:
    lines: list[str] = []
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env={**os.environ, "PIP_NO_INPUT": "1", "PYTHONUNBUFFERED": "1"},
        )
    except OSError as exc:
        raise EnvironmentBuildError(f"Building the environment failed ({what}): {exc}") from exc
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        lines.append(line)
        log(line)
    code = proc.wait(timeout=BUILD_TIMEOUT_S)
    if code != 0:
        errors = [x for x in lines if "ERROR" in x or "error:" in x.lower()] or lines[-10:]
        raise EnvironmentBuildError(
            f"Building the environment failed ({what} exited with code {code}):\n"
            + "\n".join(errors[-10:])
        )
