"""Building a job's environment where it runs: pip requirements into a cached venv.

An environment is built once per distinct build spec (Python version +
requirements) into ``<cache>/<hash>`` and reused by every later run on that
machine; a file lock makes two runs that need the same new environment build it
once. The built environment falls back to the submitter's own packages (so
``cumulo`` itself is importable in the job) after its own, which take precedence.

uv (the pinned ``uv`` package's binary) creates the venv and installs into it, with
its download and wheel cache in ``<cache>/uv-cache`` unless ``UV_CACHE_DIR`` is set;
the spec's pip options become uv's. pip still builds when the ``env_installer``
setting says so (``CUMULO_ENV_INSTALLER=pip``), for machines set up through pip's
config files.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

from cumulo.core.errors import ConfigError, EnvironmentBuildError
from cumulo.core.jobs import EnvironmentSpec
from cumulo.core.settings import ENV_INSTALLERS, Settings

READY_MARK = ".cumulo-ready"
BASE_PTH = "_cumulo_base.pth"
BUILD_TIMEOUT_S = 1800
UV_CACHE = "uv-cache"  # beside the environments, so hardlinks from it work
# pip's variables that say where packages come from, and uv's for the same; uv reads
# no pip configuration, so a machine set up for pip through these builds the same.
PIP_TO_UV_VARIABLES = {
    "PIP_INDEX_URL": "UV_INDEX_URL",
    "PIP_EXTRA_INDEX_URL": "UV_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS": "UV_FIND_LINKS",
}
# The spec's pip options (``cumulo.core.jobs.pip_option`` spells them out) as uv's.
UV_OPTIONS = {
    "--index-url": ["--index-url"],
    "--extra-index-url": ["--extra-index-url"],
    "--find-links": ["--find-links"],
    "--trusted-host": ["--allow-insecure-host"],
    "--no-binary": ["--no-binary"],
    "--only-binary": ["--only-binary"],
    "--no-index": ["--no-index"],
    "--pre": ["--prerelease", "allow"],
}
# How pip picks among several indexes: the best version across all of them. uv's own
# default takes a package from the first index that has it; a spec written for pip,
# or a machine set up for pip, means pip's way.
PIP_INDEX_STRATEGY = "unsafe-best-match"

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
    spec: EnvironmentSpec,
    cache: Path,
    log: Log,
    *,
    label: str = "environment",
    installer: str | None = None,
) -> str:
    """The interpreter of ``spec``'s environment, built first if needed (once per machine).

    ``installer`` is ``"uv"`` or ``"pip"``; None: this machine's ``env_installer`` setting.
    """
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
            _build(spec, folder, log, label, installer or Settings.load().env_installer)
            return str(env_python(folder))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(spec: EnvironmentSpec, folder: Path, log: Log, label: str, installer: str) -> None:
    if installer not in ENV_INSTALLERS:
        raise ConfigError(f"Unknown environment installer {installer!r}: use uv or pip.")
    started = time.monotonic()
    if folder.exists():
        shutil.rmtree(folder)  # a build that died half-way; we hold the lock
    base = _python_for(spec.python)
    log(f"Building {label} {folder.name} with {installer}: python {spec.python or 'as submitter'}, "
        f"{len(spec.pip_requirements)} requirement(s).")  # fmt: skip
    if installer == "uv":
        _uv_install(spec, base, folder, log)
    else:
        _pip_install(spec, base, folder, log)
    python = str(env_python(folder))
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


def _pip_install(spec: EnvironmentSpec, base: str, folder: Path, log: Log) -> None:
    _run([base, "-m", "venv", "--without-pip", str(folder)], log, "creating the venv")
    if spec.pip_requirements:
        reqs = folder / "requirements.txt"
        reqs.write_text("\n".join(spec.pip_requirements) + "\n")
        _run(
            [sys.executable, "-m", "pip", "--python", str(env_python(folder)), "install",
             "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
             "-r", str(reqs)],
            log,
            "pip install",
        )  # fmt: skip


def uv_binary() -> str:
    """The uv executable of the installed ``uv`` package (a pinned dependency)."""
    try:
        import uv

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError) as exc:
        raise ConfigError(
            f"uv is not installed with cumulo here ({exc}): pip install cumulo's pinned uv, "
            "or set CUMULO_ENV_INSTALLER=pip to build environments with pip."
        ) from exc


def uv_environ(cache: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables uv builds with: its cache under ``cache`` unless ``UV_CACHE_DIR`` is
    set, pip's index and certificate variables carried over where uv's own are not set,
    the system's certificates trusted as pip trusts them, no colours."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault("UV_CACHE_DIR", str(cache / UV_CACHE))
    for pip_name, uv_name in PIP_TO_UV_VARIABLES.items():
        if env.get(pip_name) and not env.get(uv_name):
            value = env[pip_name]
            # pip separates several locations with spaces, uv's UV_FIND_LINKS with commas
            env[uv_name] = ",".join(value.split()) if uv_name == "UV_FIND_LINKS" else value
            if uv_name == "UV_EXTRA_INDEX_URL":
                env.setdefault("UV_INDEX_STRATEGY", PIP_INDEX_STRATEGY)
    if env.get("PIP_CERT") and not env.get("SSL_CERT_FILE"):
        env["SSL_CERT_FILE"] = env["PIP_CERT"]
    if not env.get("UV_NATIVE_TLS"):
        # pip trusts the machine's certificate store (a company's proxy CA, say); so does uv
        env.setdefault("UV_SYSTEM_CERTS", "1")
    env.update({"NO_COLOR": "1", "UV_NO_PROGRESS": "1", "PYTHONUNBUFFERED": "1"})
    env.pop("VIRTUAL_ENV", None)
    return env


def uv_options(spec: EnvironmentSpec, environ: dict[str, str] | None = None) -> list[str]:
    """The spec's pip options as uv's; one uv has no equivalent for is refused by name.

    Extra indexes are searched as pip searches them, unless ``UV_INDEX_STRATEGY`` is set.
    """
    env = os.environ if environ is None else environ
    argv: list[str] = []
    extra = any(r.startswith("--extra-index-url ") for r in spec.pip_requirements)
    if extra and not env.get("UV_INDEX_STRATEGY"):
        argv += ["--index-strategy", PIP_INDEX_STRATEGY]
    for line in spec.pip_requirements:
        if not line.startswith("-"):
            continue
        name, _, value = line.partition(" ")
        if name not in UV_OPTIONS:
            raise EnvironmentBuildError(
                f"Building the environment failed: the pip option {name} has no equivalent in "
                "uv, which builds environments here. Leave it out of pip_requirements, or set "
                "CUMULO_ENV_INSTALLER=pip where the environment is built."
            )
        argv += UV_OPTIONS[name] + ([value] if value else [])
    return argv


def _uv_install(spec: EnvironmentSpec, base: str, folder: Path, log: Log) -> None:
    uv = uv_binary()
    options = uv_options(spec)  # refused before anything is built
    env = uv_environ(folder.parent)
    log(f"uv {_uv_version(uv)}, cache {env['UV_CACHE_DIR']}")

    def _venv_log(line: str) -> None:
        if not line.startswith("Activate with:"):  # a job's log has no shell to activate in
            log(line)

    _run([uv, "venv", "--no-project", "--python", base, str(folder)],
         _venv_log, "uv venv", env=env, cwd=folder.parent)  # fmt: skip
    requirements = [r for r in spec.pip_requirements if not r.startswith("-")]
    if not requirements:
        return
    reqs = folder / "requirements.txt"
    reqs.write_text("\n".join(requirements) + "\n")
    _run(
        [uv, "pip", "install", "--python", str(env_python(folder)), *options, "-r", str(reqs)],
        log,
        "uv pip install",
        env=env,
        cwd=folder.parent,
        requirements=requirements,
    )


def _uv_version(uv: str) -> str:
    out = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.split()
    return out[1] if len(out) > 1 else "?"


def _same_minor(python: str) -> bool:
    out = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    ).stdout.strip()
    return out == str(sys.version_info[:2])


def _base_site_dirs() -> list[str]:
    dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return list(dict.fromkeys(d for d in dirs if os.path.isdir(d)))


def _run(
    argv: list[str],
    log: Log,
    what: str,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    requirements: list[str] | None = None,
) -> None:
    lines: list[str] = []
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env={**(os.environ if env is None else env), "PIP_NO_INPUT": "1",
                 "PYTHONUNBUFFERED": "1"},
            cwd=cwd,
        )  # fmt: skip
    except OSError as exc:
        raise EnvironmentBuildError(f"Building the environment failed ({what}): {exc}") from exc
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        lines.append(line)
        log(line)
    code = proc.wait(timeout=BUILD_TIMEOUT_S)
    if code == 0:
        return
    if what.startswith("uv"):
        raise EnvironmentBuildError(_uv_failure(what, code, lines, requirements or []))
    errors = [x for x in lines if "ERROR" in x or "error:" in x.lower()] or lines[-10:]
    raise EnvironmentBuildError(
        f"Building the environment failed ({what} exited with code {code}):\n"
        + "\n".join(errors[-10:])
    )


def _uv_failure(what: str, code: int, lines: list[str], requirements: list[str]) -> str:
    """uv's own explanation, after a line naming the requirements it is about."""
    start = next((i for i, x in enumerate(lines) if x.startswith("error:")), None)
    explanation = lines[start:] if start is not None else lines[-10:]
    text = "\n".join(explanation[:40])
    head = f"Building the environment failed ({what} exited with code {code})."
    missing = set(re.findall(r"(\S+) was not found in the (?:package registry|provided package)",
                             text))  # fmt: skip
    named = [r for r in requirements if _name(r) in {_canonical(m) for m in missing}]
    if named:
        return f"{head} Could not find {', '.join(named)}.\n{text}"
    named = [r for r in requirements if _mentions(text, _name(r))]
    if "No solution found" in text and named:
        if len(named) == 1:
            return f"{head} The requirement {named[0]} cannot be satisfied.\n{text}"
        return f"{head} The requirements {', '.join(named)} conflict.\n{text}"
    return f"{head}\n{text}"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(requirement: str) -> str:
    """The distribution name a requirement line starts with, canonical (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return _canonical(match.group(1)) if match else requirement


def _mentions(text: str, name: str) -> bool:
    words = {_canonical(w) for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*", text)}
    return name in words
