"""``Workspace``: where a team's experiments, runs and files live."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cumulo.core import validation
from cumulo.core.errors import ConfigError, NotFound
from cumulo.core.settings import Settings, mlflow_tracking_uri
from cumulo.sdk import display
from cumulo.sdk.http import HttpTransport
from cumulo.sdk.writer import MetricWriter

if TYPE_CHECKING:
    from cumulo.sdk.compute import ComputeTarget
    from cumulo.sdk.experiment import Experiment
    from cumulo.sdk.run import Run
    from cumulo.sdk.transport import Transport

CONFIG_DIR = ".cumulo"
CONFIG_FILE = "config.json"


class Workspace:
    """A workspace, embedded (SQLite + a local folder by default) or on a server.

    Example::

        from cumulo import Workspace, Experiment
        ws = Workspace.create("demo", exist_ok=True)
        with Experiment(ws, "iris").start_logging() as run:
            run.log("accuracy", 0.97)
    """

    def __init__(
        self,
        name: str,
        transport: Transport,
        *,
        settings: Settings | None = None,
        url: str | None = None,
        token: str | None = None,
    ) -> None:
        self.name = name
        self.transport = transport  # the one seam: tracking, jobs, models, endpoints
        self._settings = settings
        self.url = url
        self._token = token
        self._writer: MetricWriter | None = None

    # ---------------------------------------------------------- constructors
    @classmethod
    def create(
        cls,
        name: str,
        home: str | Path | None = None,
        exist_ok: bool = False,
        database_url: str | None = None,
        artifact_root: str | None = None,
    ) -> Workspace:
        """Create a workspace in an embedded home (``$CUMULO_HOME`` or ``~/.cumulo``)."""
        validation.workspace_name(name)
        transport, settings = _embedded(home, database_url, artifact_root)
        transport.tracking.create_workspace(name, exist_ok=exist_ok)
        return cls(name, transport, settings=settings)

    @classmethod
    def get(
        cls,
        name: str,
        home: str | Path | None = None,
        database_url: str | None = None,
        artifact_root: str | None = None,
    ) -> Workspace:
        """Open an existing embedded workspace; raises NotFound if there is none."""
        transport, settings = _embedded(home, database_url, artifact_root)
        transport.tracking.get_workspace(name)
        return cls(name, transport, settings=settings)

    @classmethod
    def list(
        cls, home: str | Path | None = None, database_url: str | None = None
    ) -> list[Workspace]:
        transport, settings = _embedded(home, database_url, None)
        found = transport.tracking.list_workspaces()
        return [cls(w.name, transport, settings=settings) for w in found]

    @classmethod
    def connect(cls, url: str, name: str, token: str | None = None) -> Workspace:
        """Connect to a workspace on a ``cumulo server``."""
        transport = HttpTransport(url, token=token)
        transport.tracking.get_workspace(name)
        return cls(name, transport, url=url.rstrip("/"), token=token)

    @classmethod
    def from_config(cls, path: str | Path | None = None) -> Workspace:
        """Open the workspace named by ``.cumulo/config.json``, searched upward from ``path``."""
        file = _find_config(Path(path) if path else Path.cwd())
        try:
            config = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"Cannot read workspace config {file}: {exc}") from exc
        name = config.get("workspace")
        if not name:
            raise ConfigError(f"{file} names no workspace (key 'workspace').")
        if config.get("url"):
            return cls.connect(config["url"], name, token=config.get("token"))
        return cls.get(
            name,
            home=config.get("home"),
            database_url=config.get("database_url"),
            artifact_root=config.get("artifact_root"),
        )

    def write_config(self, path: str | Path = ".") -> Path:
        """Write ``<path>/.cumulo/config.json`` so ``Workspace.from_config()`` finds this one."""
        folder = Path(path) / CONFIG_DIR
        folder.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {"workspace": self.name}
        if self.url:
            config["url"] = self.url
        elif self._settings is not None:
            config["home"] = str(self._settings.home)
            config["database_url"] = self._settings.database_url
            config["artifact_root"] = self._settings.artifact_root
        file = folder / CONFIG_FILE
        file.write_text(json.dumps(config, indent=2) + "\n")
        return file

    # ---------------------------------------------------------------- access
    @property
    def experiments(self) -> dict[str, Experiment]:
        from cumulo.sdk.experiment import Experiment

        return {e.name: e for e in Experiment.list(self)}

    @property
    def compute_targets(self) -> dict[str, ComputeTarget]:
        """Compute targets by name, ``"local"`` included."""
        from cumulo.sdk.compute import ComputeTarget

        return {t.name: t for t in ComputeTarget.list(self)}

    def get_run(self, run_id: str) -> Run:
        """A run by its id, or by a unique start of it (6+ characters, as tables show)."""
        from cumulo.sdk.run import Run

        return Run._from_info(self, self.transport.tracking.find_run(self.name, run_id))

    def get_mlflow_tracking_uri(self) -> str:
        """The ``MLFLOW_TRACKING_URI`` that makes MLflow code log into this workspace."""
        if not self.url:
            raise ConfigError(
                "An embedded workspace has no MLflow tracking URI: start `cumulo server` "
                "on its home and use Workspace.connect(url, name)."
            )
        return mlflow_tracking_uri(self.url, self.name)

    @property
    def location(self) -> str:
        """Where this workspace lives: a server URL or the embedded database and folder."""
        if self.url:
            return f"{self.url} (workspace {self.name})"
        assert self._settings is not None
        return f"{self._settings.database_url} + {self._settings.artifact_root}"

    @property
    def writer(self) -> MetricWriter:
        if self._writer is None:
            self._writer = MetricWriter(self.transport.tracking, self.name)
        return self._writer

    def flush(self, timeout: float | None = 60.0) -> None:
        if self._writer is not None:
            self._writer.flush(timeout)

    def __repr__(self) -> str:
        return f"Workspace(name={self.name!r}, location={self.location!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and (other.name, other.location) == (
            self.name,
            self.location,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.location))

    def _repr_html_(self) -> str:
        exps = self.transport.tracking.list_experiments(self.name)
        rows = [
            (e.name, e.run_count, display.when(e.last_activity))
            for e in sorted(exps, key=lambda e: -e.last_activity)
        ]
        body = display.table(["experiment", "runs", "last activity"], rows)
        return display.titled(f"Workspace {self.name} — {self.location}", body)


def _embedded(
    home: str | Path | None, database_url: str | None, artifact_root: str | None
) -> tuple[Transport, Settings]:
    # Loaded here: a client of a server never imports the services and their database driver.
    from cumulo.sdk.embedded import EmbeddedTransport

    settings = Settings.load(home=home, database_url=database_url, artifact_root=artifact_root)
    return EmbeddedTransport(settings), settings


def _find_config(start: Path) -> Path:
    start = start.resolve()
    if start.is_file():
        return start
    if (start / CONFIG_FILE).is_file() and start.name == CONFIG_DIR:
        return start / CONFIG_FILE
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_DIR / CONFIG_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"No {CONFIG_DIR}/{CONFIG_FILE} found in {start} or any folder above it. Create one "
        "with `cumulo workspace create NAME --write-config` or "
        "Workspace.create(NAME).write_config()."
    )


def _env_workspace() -> Workspace | None:
    """The workspace a job runs in, from ``CUMULO_*`` variables set by the scheduler."""
    name = os.environ.get("CUMULO_WORKSPACE")
    if not name:
        return None
    url = os.environ.get("CUMULO_URL")
    if url:
        return Workspace.connect(url, name, token=os.environ.get("CUMULO_TOKEN"))
    try:
        return Workspace.get(name)
    except NotFound:
        return None
