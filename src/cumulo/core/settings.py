"""One settings object, built at the edge (CLI, server, SDK) and passed down.

Every ``CUMULO_*`` variable that changes how the server, the scheduler or a job
behaves is read here, once, by ``Settings.load``; docs/settings.md lists them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Every server has it; MLflow's routes at the root (``/api/2.0/mlflow``) address it.
DEFAULT_WORKSPACE = "default"
# A folder's workspace config (``<folder>/.cumulo/config.json``): written by
# ``Workspace.write_config`` and by the server for its notebook servers, found by
# ``Workspace.from_config()`` from a folder upward.
CONFIG_DIR, CONFIG_FILE = ".cumulo", "config.json"


def mlflow_tracking_uri(server_url: str, workspace: str) -> str:
    """The ``MLFLOW_TRACKING_URI`` that makes MLflow log into ``workspace`` on a server."""
    base = server_url.rstrip("/")
    return base if workspace == DEFAULT_WORKSPACE else f"{base}/ws/{workspace}"


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("CUMULO_HOME") or Path.home() / ".cumulo").expanduser()


def parse_urls(text: str) -> tuple[str, ...]:
    """Server addresses from a comma-separated list, without trailing slashes or repeats."""
    urls = (part.strip().rstrip("/") for part in text.split(","))
    return tuple(dict.fromkeys(url for url in urls if url))


# Settings that are whole numbers above 0, and their environment variables.
_WHOLE_NUMBERS = {
    "max_request_bytes": "CUMULO_MAX_REQUEST_BYTES",
    "auth_failures_per_minute": "CUMULO_AUTH_FAILURES_PER_MINUTE",
    "audit_retention_days": "CUMULO_AUDIT_RETENTION_DAYS",
}
# Settings that are numbers above 0 (fractions allowed), and their environment variables.
_NUMBERS = {
    "lease_seconds": "CUMULO_LEASE_SECONDS",
    "delivery_seconds": "CUMULO_DELIVERY_SECONDS",
    "snapshot_max_mb": "CUMULO_SNAPSHOT_MAX_MB",
}
_OFF = ("0", "false", "no", "off")
# What may install an environment's requirements (``env_installer``).
ENV_INSTALLERS = ("uv", "pip")


def _whole_number(variable: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{variable} must be a whole number above 0, got {text!r}.")
    return int(text)


def _number(variable: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{variable} must be a number above 0, got {text!r}.")
    return value


def _interval(variable: str, text: str) -> float:
    if text.strip().lower() in _OFF:
        return 0.0
    value = _number(variable, text)
    if value < 0.1:
        raise ValueError(f"{variable} must be 0 (off) or at least 0.1 seconds, got {text!r}.")
    return value


def parse_gpus(variable: str, text: str) -> tuple[int, ...]:
    """GPU indices from ``"0,1"`` (``"1,"``: GPU 1 alone), or a count: ``"2"`` is GPUs 0
    and 1, ``"0"`` none."""
    text = text.strip()
    if text.isdigit():
        return tuple(range(int(text)))
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts) or len(set(parts)) != len(parts):
        raise ValueError(
            f'{variable} must be a count of GPUs ("2") or their indices ("0,1"), got {text!r}.'
        )
    return tuple(int(part) for part in parts)


@dataclass(frozen=True)
class Settings:
    """Where metadata and artifacts live, and how the server behaves.

    Order of precedence: explicit arguments, ``CUMULO_*`` environment variables,
    then defaults under the home folder (SQLite file + local artifact folder).
    """

    home: Path
    database_url: str
    artifact_root: str
    s3_endpoint_url: str | None = None
    auth: str = "none"  # "none" | "token"
    max_request_bytes: int = 64 * 1024 * 1024
    # The URL jobs use to reach this server; None when nothing serves the workspace.
    public_url: str | None = None
    # Refused tokens one client address may send in a minute before it gets 429s
    # (CUMULO_AUTH_FAILURES_PER_MINUTE): token guessing is slowed to a crawl.
    auth_failures_per_minute: int = 30
    # Audit entries older than this are deleted (CUMULO_AUDIT_RETENTION_DAYS).
    audit_retention_days: int = 90
    # The workspace's service address: every server jobs may report to, or one load
    # balancer in front of them (CUMULO_SERVICE_URLS, comma-separated). Empty: the
    # server's own public_url.
    service_urls: tuple[str, ...] = ()
    # The address other machines reach this server's processes at (endpoint replicas);
    # None: the loopback address (CUMULO_ADVERTISE_HOST; `cumulo server` sets a default).
    advertise_host: str | None = None
    # How long a job's lease lasts without renewal, in seconds: a job whose scheduler,
    # pool node or agent stops renewing is taken over this long after (CUMULO_LEASE_SECONDS).
    lease_seconds: float = 15.0
    # How long a job's runner keeps trying, at the end of its job, to deliver the metrics
    # and log lines no server took yet, in seconds (CUMULO_DELIVERY_SECONDS).
    delivery_seconds: float = 300.0
    # The largest code snapshot a job may have, in MiB (CUMULO_SNAPSHOT_MAX_MB).
    snapshot_max_mb: float = 300.0
    # Where environments built for jobs and endpoints are cached; None: the home's
    # ``envs`` folder (CUMULO_ENV_CACHE).
    env_cache: Path | None = None
    # What installs an environment's requirements: "uv" (fast, the default) or "pip",
    # for a machine whose pip is set up through pip's config files, which uv does not
    # read (CUMULO_ENV_INSTALLER; read where the environment is built).
    env_installer: str = "uv"
    # Endpoint replicas fork from a warm preloader; False starts each one as a fresh
    # interpreter (CUMULO_SERVING_PRELOAD=0).
    serving_preload: bool = True
    # Seconds between two samples of a run's system metrics (CPU, memory, disk, network,
    # GPUs) while a job runs; 0 turns sampling off. A job's ScriptRunConfig may set its
    # own (CUMULO_SYSTEM_METRICS_INTERVAL; "off" is 0).
    system_metrics_interval: float = 10.0
    # The GPUs of this machine that jobs of the local target and of managed pools are
    # given, as indices ("0,1") or a count ("2"); None: those NVML finds. For a machine
    # whose GPUs NVML cannot see, or to keep some away from jobs (CUMULO_LOCAL_GPUS).
    local_gpus: tuple[int, ...] | None = None

    @classmethod
    def load(
        cls,
        home: str | Path | None = None,
        database_url: str | None = None,
        artifact_root: str | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: object,
    ) -> Settings:
        env = os.environ if environ is None else environ
        home_path = Path(home).expanduser() if home else default_home(env)
        db = (
            database_url or env.get("CUMULO_DATABASE_URL") or f"sqlite:///{home_path / 'cumulo.db'}"
        )
        root = artifact_root or env.get("CUMULO_ARTIFACT_ROOT") or str(home_path / "artifacts")
        s3 = env.get("CUMULO_S3_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL") or None
        base = cls(home=home_path, database_url=db, artifact_root=root, s3_endpoint_url=s3)
        if "auth" not in overrides and env.get("CUMULO_AUTH"):
            overrides["auth"] = env["CUMULO_AUTH"]
        if "public_url" not in overrides and env.get("CUMULO_PUBLIC_URL"):
            overrides["public_url"] = env["CUMULO_PUBLIC_URL"]
        if "advertise_host" not in overrides and env.get("CUMULO_ADVERTISE_HOST"):
            overrides["advertise_host"] = env["CUMULO_ADVERTISE_HOST"]
        for name, variable in _WHOLE_NUMBERS.items():
            if name not in overrides and env.get(variable):
                overrides[name] = _whole_number(variable, env[variable])
        for name, variable in _NUMBERS.items():
            if name not in overrides and env.get(variable):
                overrides[name] = _number(variable, env[variable])
        if "env_cache" not in overrides and env.get("CUMULO_ENV_CACHE"):
            overrides["env_cache"] = Path(env["CUMULO_ENV_CACHE"]).expanduser()
        if "env_installer" not in overrides and env.get("CUMULO_ENV_INSTALLER"):
            overrides["env_installer"] = env["CUMULO_ENV_INSTALLER"].strip().lower()
        if overrides.get("env_installer", "uv") not in ENV_INSTALLERS:
            raise ValueError(
                f"CUMULO_ENV_INSTALLER must be one of {', '.join(ENV_INSTALLERS)}, "
                f"got {overrides['env_installer']!r}."
            )
        if "serving_preload" not in overrides and env.get("CUMULO_SERVING_PRELOAD"):
            overrides["serving_preload"] = env["CUMULO_SERVING_PRELOAD"].lower() not in _OFF
        if "system_metrics_interval" not in overrides and env.get("CUMULO_SYSTEM_METRICS_INTERVAL"):
            overrides["system_metrics_interval"] = _interval(
                "CUMULO_SYSTEM_METRICS_INTERVAL", env["CUMULO_SYSTEM_METRICS_INTERVAL"]
            )
        if "local_gpus" not in overrides and env.get("CUMULO_LOCAL_GPUS") is not None:
            overrides["local_gpus"] = parse_gpus("CUMULO_LOCAL_GPUS", env["CUMULO_LOCAL_GPUS"])
        if "service_urls" not in overrides and env.get("CUMULO_SERVICE_URLS"):
            overrides["service_urls"] = parse_urls(env["CUMULO_SERVICE_URLS"])
        return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]

    @property
    def env_cache_dir(self) -> Path:
        """The folder environments are built into (``env_cache`` or ``<home>/envs``)."""
        return self.env_cache or self.home / "envs"

    @property
    def snapshot_max_bytes(self) -> int:
        return int(self.snapshot_max_mb * 1024 * 1024)

    @property
    def key(self) -> tuple[str, str]:
        """Two settings with the same key share one store."""
        return (self.database_url, self.artifact_root)
