"""``Workspace``, ``Experiment`` and ``Run``: where a team's runs live, and the runs.

The three reach one another (a workspace's runs, a run's experiment and
workspace, the run of this job), so they share this module, with ``SweepRun``
(a sweep's parent run, whose best trial is a ``Run``); what a run does
with its own data is ``RunTracking`` (``sdk/run.py``), what it does as a job
is ``sdk/jobs.py``. Everything below them here takes a ``WorkspaceRef``.
"""

from __future__ import annotations

import builtins
import difflib
import getpass
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from cumulo.core import system_metrics, validation
from cumulo.core.entities import ExperimentInfo, RunInfo
from cumulo.core.errors import ConfigError, InvalidInput, NotFound
from cumulo.core.search import RUNS, parse_filter
from cumulo.core.settings import CONFIG_DIR, CONFIG_FILE, Settings, mlflow_tracking_uri
from cumulo.core.status import RunStatus
from cumulo.core.sweeps import TRIAL_TAG, PrimaryMetricGoal
from cumulo.sdk import display, jobs, sweeps, v1
from cumulo.sdk.automl import AUTOML_TAG, AutoMLConfig
from cumulo.sdk.compute import ComputeTarget
from cumulo.sdk.datasets import Dataset, Datastore
from cumulo.sdk.endpoints import Endpoint
from cumulo.sdk.jobs import Environment
from cumulo.sdk.models import Model
from cumulo.sdk.run import ENV_RUN_ID, OfflineRun, RunTracking
from cumulo.sdk.sweeps import HyperDriveConfig
from cumulo.sdk.writer import MetricWriter

if TYPE_CHECKING:
    from cumulo.sdk.transport import Transport


@runtime_checkable
class Submittable(Protocol):
    """What ``Experiment.submit`` runs besides a script or a sweep (a ``Pipeline``)."""

    def submit_to(
        self, experiment: Experiment, tags: dict[str, str] | None = None, **options: Any
    ) -> Run: ...


class Workspace:
    """A workspace, embedded (SQLite + a local folder by default) or on a server.

    Example::

        from cumulo import Workspace, Experiment
        ws = Workspace.create("demo", exist_ok=True)
        with Experiment(ws, "iris").start_logging() as run:
            run.log("accuracy", 0.97)
    """

    @v1.arguments("Workspace", v1.WORKSPACE_ARGS, hint=v1.OPEN_A_WORKSPACE)
    def __init__(
        self,
        name: str,
        transport: Transport,
        *,
        settings: Settings | None = None,
        url: str | None = None,
        token: str | None = None,
    ) -> None:
        if isinstance(transport, str):  # Workspace(subscription_id, resource_group, name)
            raise v1.BadArguments(f"Workspace({name!r}, {transport!r}, ...):{v1.OPEN_A_WORKSPACE}")
        self.name = name
        self.transport = transport  # the one seam: tracking, jobs, models, endpoints
        self._settings = settings
        self.url = url
        self._token = token
        self._writer: MetricWriter | None = None

    # ---------------------------------------------------------- constructors
    @classmethod
    @v1.arguments("Workspace.create", v1.WORKSPACE_ARGS)
    def create(
        cls,
        name: str,
        home: str | Path | None = None,
        exist_ok: bool = False,
        database_url: str | None = None,
        artifact_root: str | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
    ) -> Workspace:
        """Create a workspace on a server or in an embedded home.

        On the server at ``url`` (default ``$CUMULO_URL``, with ``$CUMULO_TOKEN``)
        when one is given; otherwise in an embedded home (``home``, else
        ``$CUMULO_HOME``, else ``~/.cumulo``). ``location`` says which.

        Example::

            ws = Workspace.create("demo", exist_ok=True)
            ws = Workspace.create("team", url="http://ml-server:8080", exist_ok=True)
        """
        validation.workspace_name(name)
        server = _server(url, token, home, database_url, artifact_root)
        if server is not None:
            from cumulo.sdk.http import HttpTransport

            transport = HttpTransport(server[0], token=server[1])
            transport.tracking.create_workspace(name, exist_ok=exist_ok)
            return cls(name, transport, url=server[0].rstrip("/"), token=server[1])
        embedded, settings = _embedded(home, database_url, artifact_root)
        embedded.tracking.create_workspace(name, exist_ok=exist_ok)
        return cls(name, embedded, settings=settings)

    @classmethod
    @v1.arguments("Workspace.get", v1.WORKSPACE_ARGS)
    def get(
        cls,
        name: str,
        home: str | Path | None = None,
        database_url: str | None = None,
        artifact_root: str | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
    ) -> Workspace:
        """Open an existing workspace; raises NotFound if there is none.

        On the server at ``url`` (default ``$CUMULO_URL``) when one is given,
        else in an embedded home, as ``create`` does.
        """
        server = _server(url, token, home, database_url, artifact_root)
        if server is not None:
            return cls.connect(server[0], name, token=server[1])
        transport, settings = _embedded(home, database_url, artifact_root)
        transport.tracking.get_workspace(name)
        return cls(name, transport, settings=settings)

    @classmethod
    def list(
        cls,
        home: str | Path | None = None,
        database_url: str | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
    ) -> builtins.list[Workspace]:
        """The workspaces of a server (``url``, default ``$CUMULO_URL``) or of an embedded home."""
        server = _server(url, token, home, database_url, None)
        if server is not None:
            from cumulo.sdk.http import HttpTransport

            client = HttpTransport(server[0], token=server[1])
            base = server[0].rstrip("/")
            return [
                cls(w.name, client, url=base, token=server[1])
                for w in client.tracking.list_workspaces()
            ]
        transport, settings = _embedded(home, database_url, None)
        found = transport.tracking.list_workspaces()
        return [cls(w.name, transport, settings=settings) for w in found]

    @classmethod
    def connect(cls, url: str, name: str, token: str | None = None) -> Workspace:
        """Connect to a workspace on a ``cumulo server``."""
        from cumulo.sdk.http import HttpTransport

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
        return {e.name: e for e in Experiment.list(self)}

    @property
    def compute_targets(self) -> dict[str, ComputeTarget]:
        """Compute targets by name, ``"local"`` included."""
        return {t.name: t for t in ComputeTarget.list(self)}

    @property
    def models(self) -> dict[str, Model]:
        """Registered models by name, each its latest version."""
        return {m.name: m for m in Model.list(self, latest=True)}

    @property
    def environments(self) -> dict[str, Environment]:
        """Registered environments by name, each its latest version."""
        found: dict[str, Environment] = {}
        for env in Environment.list(self):
            if env.name not in found or (env.version or 0) > (found[env.name].version or 0):
                found[env.name] = env
        return found

    @property
    def endpoints(self) -> dict[str, Endpoint]:
        """Endpoints (served models) by name."""
        return {e.name: e for e in Endpoint.list(self)}

    @property
    def webservices(self) -> dict[str, Endpoint]:
        """The endpoints, under the cloud service's name for them (``ws.endpoints``)."""
        return self.endpoints

    def __getattr__(self, name: str) -> Any:
        raise v1.refuse("Workspace", name, v1.WORKSPACE)

    def get_default_datastore(self) -> Datastore:
        """Where files go by default: ``workspacestore`` unless another was made default."""
        return Datastore.get_default(self)

    @property
    def datastores(self) -> dict[str, Datastore]:
        return {d.name: d for d in Datastore.list(self)}

    @property
    def datasets(self) -> dict[str, Any]:
        """The latest version of every dataset, by name."""
        return {d.name: d for d in Dataset.list(self)}

    def get_run(self, run_id: str) -> Run:
        """A run by its id, or by a unique start of it (6+ characters, as tables show)."""
        return Run(self, self.transport.tracking.find_run(self.name, run_id))

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


PAGE = 500
KEYS_LISTED = 2000  # the most keys of each kind an experiment's key listing returns


class Experiment:
    """Runs grouped under a name; created on first use.

    Example::

        exp = Experiment(ws, "iris")
        run = exp.start_logging(display_name="first try")
    """

    def __init__(self, workspace: Workspace, name: str, *, _info: ExperimentInfo | None = None):
        self.workspace = workspace
        self._info = _info or workspace.transport.tracking.get_or_create_experiment(
            workspace.name, name
        )
        self.name = self._info.name

    @property
    def id(self) -> int:
        return self._info.id

    @property
    def archived(self) -> bool:
        return self._info.archived

    @staticmethod
    @v1.arguments("Experiment.list", {"experiment_name": "ws.experiments[name]"})
    def list(workspace: Workspace, include_archived: bool = False) -> builtins.list[Experiment]:
        infos = workspace.transport.tracking.list_experiments(workspace.name, include_archived)
        return [Experiment(workspace, i.name, _info=i) for i in infos]

    def refresh(self) -> Experiment:
        self._info = self.workspace.transport.tracking.get_experiment(self.workspace.name, self.id)
        return self

    # ------------------------------------------------------------------ runs
    def start_logging(
        self,
        display_name: str | None = None,
        snapshot_directory: str | None = None,
        tags: dict[str, str] | None = None,
        system_metrics: bool | float = False,
    ) -> Run:
        """Start an interactive run; use it as a context manager to complete or fail it.

        ``system_metrics=True`` samples this machine and this process (CPU, memory,
        disk, network, GPUs) from a thread every 10 seconds while the run is open, as
        ``system/`` metrics; a number sets the seconds between samples::

            with exp.start_logging(system_metrics=5) as run:
                train(run)
        """
        interval = _system_interval(system_metrics)
        info = self.workspace.transport.tracking.create_run(
            self.workspace.name,
            self.id,
            display_name=display_name,
            kind="interactive",
            status=RunStatus.RUNNING.value,
            tags=tags,
            user=_user(),
        )
        run = Run(self.workspace, info)
        if snapshot_directory is not None:
            run.upload_folder("snapshot", snapshot_directory)
        if interval:
            run.sample_system_metrics(interval)
        return run

    def get_runs(
        self,
        filter: str | None = None,
        order_by: str | builtins.list[str] | None = None,
        status: str | builtins.list[str] | None = None,
        tags: dict[str, str | None] | builtins.list[str] | str | None = None,
        include_children: bool = False,
        max_results: int | None = None,
        type: str | None = None,
        properties: dict[str, str] | None = None,
    ) -> Iterator[Run]:
        """Runs of this experiment, newest first unless ``order_by`` says otherwise.

        ``filter`` uses MLflow's grammar (``"metrics.acc > 0.9 AND params.lr = '0.1'"``);
        results are fetched page by page as you iterate. ``type`` is a run's kind
        (``"job"``, ``"sweep"``, ``"interactive"``; the cloud service's
        ``"azureml.scriptrun"`` and ``"hyperdrive"`` too) and ``properties`` the
        properties a run must have. A filter that names a metric, param or tag no
        run of the experiment has raises ``InvalidInput`` naming the closest key.
        """
        statuses = [status] if isinstance(status, str) else status
        if isinstance(tags, str):
            tags = {tags: None}
        elif isinstance(tags, list):
            tags = dict.fromkeys(tags)
        clauses = [filter] if filter else []
        if type is not None:
            kind = v1.RUN_TYPES.get(type.lower(), type)
            clauses.append(f"attributes.kind = '{kind}'")
        query = " AND ".join(clauses) or None
        wanted = {k: str(v) for k, v in (properties or {}).items()}
        token: str | None = None
        yielded = 0
        first = True
        while True:
            page = self.workspace.transport.tracking.search_runs(
                self.workspace.name,
                [self.id],
                filter=query,
                order_by=order_by,
                max_results=PAGE if max_results is None else min(PAGE, max_results - yielded),
                page_token=token,
                statuses=statuses,
                tags=tags,
                top_level_only=not include_children,
            )
            if first and not page.runs and filter:
                self._check_keys(filter)
            first = False
            for info in page.runs:
                if any(info.properties.get(k) != v for k, v in wanted.items()):
                    continue
                yield Run(self.workspace, info)
                yielded += 1
                if max_results is not None and yielded >= max_results:
                    return
            token = page.next_page_token
            if not token:
                return

    def _check_keys(self, filter: str) -> None:
        """Raise when ``filter`` names a metric, param or tag that no run here has."""
        clauses = parse_filter(filter, RUNS)
        keys = self.get_run_keys()
        for c in clauses:
            if c.entity == "attribute" or c.op == "IS NULL":
                continue
            known = keys.get(f"{c.entity}s", [])
            if c.key in known or len(known) >= KEYS_LISTED:
                continue  # (a full list may leave keys out: no verdict then)
            close = difflib.get_close_matches(c.key, known, n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else (f"; it has {', '.join(map(repr, known[:10]))}." if known else ".")
            )
            raise InvalidInput(
                f"No run in experiment {self.name!r} has a {c.entity} {c.key!r}{hint}"
            )

    def get_run_keys(self) -> dict[str, builtins.list[str]]:
        """The metric, param and tag keys this experiment's runs use, to filter or compare on."""
        return self.workspace.transport.tracking.run_keys(self.workspace.name, self.id)

    # ------------------------------------------------------------- lifecycle
    def archive(self) -> None:
        """Hide the experiment from listings (its runs are kept)."""
        self._info = self.workspace.transport.tracking.update_experiment(
            self.workspace.name, self.id, archived=True
        )

    def reactivate(self) -> None:
        self._info = self.workspace.transport.tracking.update_experiment(
            self.workspace.name, self.id, archived=False
        )

    def delete(self) -> None:
        """Delete the experiment, all its runs and their files, for good."""
        self.workspace.transport.tracking.delete_experiment(self.workspace.name, self.id)

    def __repr__(self) -> str:
        return f"Experiment(workspace={self.workspace.name!r}, name={self.name!r}, id={self.id})"

    def _repr_html_(self) -> str:
        runs = list(self.get_runs(max_results=20))
        keys = sorted({k for r in runs for k in r._info.metrics})[:6]
        rows: list[list[Any]] = [
            [
                r.number,
                r.display_name,
                display.status_badge(r._info.status),
                display.when(r._info.created_at),
                display.duration(r._info.duration),
                *[r._info.metrics[k].value if k in r._info.metrics else "" for k in keys],
            ]
            for r in runs
        ]
        body = display.table(["#", "name", "status", "started", "duration", *keys], rows, raw={2})
        return display.titled(f"Experiment {self.name} ({self._info.run_count} runs)", body)

    # ------------------------------------------------------------------ jobs
    def submit(self, config: Any, tags: dict[str, str] | None = None, **options: Any) -> Run:
        """Submit a ``ScriptRunConfig``: returns the run at once, in status ``Queued``.

        Example::

            run = exp.submit(ScriptRunConfig("src", "train.py", compute_target="cpu-pool"))
            run.wait_for_completion(show_output=True)

        A ``HyperDriveConfig`` returns the sweep's parent run (a ``SweepRun``); so does an
        ``AutoMLConfig``, whose search is a sweep over scikit-learn estimators; a
        ``Pipeline`` its run (a ``PipelineRun``), with ``pipeline_parameters={...}`` and
        ``continue_on_step_failure=True`` among the options.
        """
        if isinstance(config, Submittable):
            return config.submit_to(self, tags, **options)
        if options:
            raise InvalidInput(f"Unknown submit options for this config: {sorted(options)}.")
        if isinstance(config, AutoMLConfig):
            with tempfile.TemporaryDirectory(prefix="cumulo-automl-") as folder:
                sweep = config.prepare(Path(folder))  # snapshotted by the submit
                info = sweeps.submit(
                    self.workspace, self.id, sweep, tags={**(tags or {}), AUTOML_TAG: config.task}
                )
            return SweepRun(self.workspace, info)
        if isinstance(config, HyperDriveConfig):
            info = sweeps.submit(self.workspace, self.id, config, tags=tags)
            return SweepRun(self.workspace, info)
        return Run(self.workspace, jobs.submit(self.workspace, self.id, config, tags=tags))


class Run(RunTracking):
    """A tracked run. Metric calls return at once; a background writer stores them.

    Example::

        with exp.start_logging() as run:
            run.log_params({"lr": 0.1})
            for epoch in range(10):
                run.log("loss", 1 / (epoch + 1))
            run.upload_file("outputs/model.pkl", "model.pkl")
    """

    workspace: Workspace

    @v1.arguments(
        "Run", {"experiment": "Run(experiment, run_id)", "run_id": "Run(experiment, run_id)"}
    )
    def __init__(self, workspace: Workspace | Experiment, info: RunInfo | str) -> None:
        """``Run(experiment, run_id)`` opens a run of that experiment by its id (or a
        unique start of it); ``ws.get_run(run_id)`` does the same from a workspace."""
        if isinstance(workspace, Experiment):
            experiment, workspace = workspace, workspace.workspace
            if not isinstance(info, RunInfo):
                info = workspace.transport.tracking.find_run(workspace.name, info)
            if info.experiment_id != experiment.id:
                raise NotFound(
                    f"Run {info.id} belongs to experiment {info.experiment_name!r}, "
                    f"not {experiment.name!r}; open it with ws.get_run({info.id!r})."
                )
        elif not isinstance(info, RunInfo):
            info = workspace.transport.tracking.find_run(workspace.name, info)
        super().__init__(workspace, info)

    def __getattr__(self, name: str) -> Any:
        raise v1.refuse("Run", name, v1.RUN)

    @classmethod
    def get(cls, workspace: Workspace, run_id: str) -> Run:
        """``Run.get(ws, run_id)``: a run of the workspace by its id (``ws.get_run``)."""
        return workspace.get_run(run_id)

    @classmethod
    def get_context(cls, allow_offline: bool = True) -> Run | OfflineRun:
        """The run this job was started for, found through ``CUMULO_*`` variables.

        Outside a job this returns an offline run that prints what is logged and
        never raises, so the same script runs on a laptop without a workspace.
        """
        run_id = os.environ.get(ENV_RUN_ID)
        workspace = _env_workspace() if run_id else None
        if workspace is not None and run_id:
            return workspace.get_run(run_id)
        if not allow_offline:
            raise NotFound(f"No run context: {ENV_RUN_ID} is not set.")
        return OfflineRun()

    @property
    def experiment(self) -> Experiment:
        return Experiment(self.workspace, self._info.experiment_name)

    # ------------------------------------------------------------------ jobs
    @v1.arguments(
        "Run.wait_for_completion",
        {
            "wait_post_processing": "run.wait_for_completion(show_output=True): a run's "
            "outputs are stored before it ends"
        },
    )
    def wait_for_completion(
        self,
        show_output: bool = True,
        raise_on_error: bool = False,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Wait for a submitted run to end, printing its logs live; returns ``get_details()``.

        With ``raise_on_error=True`` a run that did not complete raises ``RunFailed``.
        """
        return jobs.wait_for_completion(self, show_output, raise_on_error, timeout)

    def get_logs(self) -> str:
        """Everything the job printed so far (stdout, stderr and system messages)."""
        return jobs.get_logs(self)

    def restore_snapshot(self, path: str | Path | None = None) -> Path:
        """Unpack the code this run was submitted with into ``path``."""
        return jobs.restore_snapshot(self, path)

    # ---------------------------------------------------------------- models
    def register_model(
        self,
        model_name: str,
        model_path: str = "outputs/model.pkl",
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        description: str | None = None,
        model_framework: str | None = None,
        datasets: builtins.list[Any] | None = None,
    ) -> Model:
        """Register a file or folder of this run's outputs as the next version of a model.

        The version keeps its own copy of the files and records this run (and so
        its experiment) as its lineage.
        """
        return Model._from_run(
            self,
            model_name,
            model_path,
            tags=tags,
            properties=properties,
            description=description,
            model_framework=model_framework,
            datasets=datasets,
        )


class SweepRun(Run):
    """A sweep's parent run: its trials are its children.

    Example::

        sweep = SweepRun.get(ws, run_id)
        for row in sweep.get_children_sorted_by_primary_metric(top=5):
            print(row["number"], row["primary_metric"], row["hyperparameters"])
    """

    @staticmethod
    def get(workspace: Workspace, run_id: str) -> SweepRun:
        info = workspace.transport.tracking.find_run(workspace.name, run_id)
        workspace.transport.sweeps.get_sweep(workspace.name, info.id)  # NotFound if no sweep
        return SweepRun(workspace, info)

    def get_sweep(self) -> dict[str, Any]:
        """The spec, state and trials (number, params, state, run id, value) as stored."""
        return self.workspace.transport.sweeps.get_sweep(self.workspace.name, self.id)

    @property
    def primary_metric_name(self) -> str:
        return str(self.get_sweep()["spec"]["primary_metric_name"])

    @property
    def primary_metric_goal(self) -> PrimaryMetricGoal:
        return PrimaryMetricGoal.parse(self.get_sweep()["spec"]["primary_metric_goal"])

    @property
    def primary_metrics(self) -> builtins.list[tuple[str, PrimaryMetricGoal]]:
        """Every metric the sweep optimizes with its goal (several for a multi-objective one)."""
        spec = self.get_sweep()["spec"]
        pairs = spec.get("primary_metrics") or [
            [spec["primary_metric_name"], spec["primary_metric_goal"]]
        ]
        return [(str(n), PrimaryMetricGoal.parse(g)) for n, g in pairs]

    def get_pareto_front(self) -> builtins.list[dict[str, Any]]:
        """A multi-objective sweep's result: the trials no other finished trial beats on every
        metric, by trial number.

        Each is ``{"run_id", "number", "status", "hyperparameters", "metrics"}``,
        ``metrics`` holding the last value of each primary metric.

        Example::

            for row in sweep.get_pareto_front():
                print(row["number"], row["metrics"]["accuracy"], row["metrics"]["latency_ms"])
        """
        stored = self.get_sweep()
        if "pareto_front" not in stored:
            raise InvalidInput(
                "This sweep optimizes one metric: use get_best_run_by_primary_metric()."
            )
        names = [n for n, _ in self.primary_metrics]
        front = set(stored["pareto_front"])
        rows = []
        for child in self.get_children():
            number = int(child.info.tags.get(TRIAL_TAG, "-1"))
            if number in front:
                rows.append(
                    {
                        "run_id": child.id,
                        "number": number,
                        "status": child.info.status,
                        "hyperparameters": dict(child.info.params),
                        "metrics": {
                            n: child.info.metrics[n].value for n in names if n in child.info.metrics
                        },
                    }
                )
        return sorted(rows, key=lambda r: r["number"])

    def cancel(self) -> None:
        """Cancel the sweep: its running trials are canceled, then it ends ``Canceled``."""
        self._info = self.workspace.transport.sweeps.cancel_sweep(self.workspace.name, self.id)

    def get_hyperparameters(self) -> dict[str, dict[str, str]]:
        """Each trial's hyperparameters by its run id."""
        return {child.id: child.get_params() for child in self.get_children()}

    def get_children_sorted_by_primary_metric(
        self,
        top: int = 0,
        reverse: bool = False,
        discard_no_metric: bool = False,
    ) -> builtins.list[dict[str, Any]]:
        """Trials best first (``reverse``: worst first), ``top`` of them (0: all).

        Each is ``{"run_id", "number", "status", "hyperparameters", "primary_metric"}``;
        trials that never logged the metric come last (or not at all with
        ``discard_no_metric``).
        """
        spec = self.get_sweep()["spec"]
        name = spec["primary_metric_name"]
        goal = PrimaryMetricGoal.parse(spec["primary_metric_goal"])
        rows: builtins.list[dict[str, Any]] = []
        for child in self.get_children():
            metric = child.info.metrics.get(name)
            if metric is None and discard_no_metric:
                continue
            rows.append(
                {
                    "run_id": child.id,
                    "number": int(child.info.tags.get(TRIAL_TAG, "-1")),
                    "status": child.info.status,
                    "hyperparameters": dict(child.info.params),
                    "primary_metric": metric.value if metric is not None else None,
                }
            )
        sign = -1.0 if goal is PrimaryMetricGoal.MAXIMIZE else 1.0
        scored = sorted(
            (r for r in rows if r["primary_metric"] is not None),
            key=lambda r: (sign * r["primary_metric"], r["number"]),
        )
        if reverse:
            scored.reverse()
        ordered = scored + [r for r in rows if r["primary_metric"] is None]
        return ordered[:top] if top else ordered

    def get_best_run_by_primary_metric(
        self, include_failed: bool = True, include_canceled: bool = True
    ) -> Run | None:
        """The trial with the best primary metric (its last logged value), or None.

        A multi-objective sweep has no one best trial: see ``get_pareto_front``.
        """
        if len(self.primary_metrics) > 1:
            raise InvalidInput(
                "A multi-objective sweep has a Pareto front, not one best run: "
                "use get_pareto_front()."
            )
        skip = set()
        if not include_failed:
            skip.add(RunStatus.FAILED.value)
        if not include_canceled:
            skip.add(RunStatus.CANCELED.value)
        for row in self.get_children_sorted_by_primary_metric(discard_no_metric=True):
            if row["status"] not in skip:
                return self.workspace.get_run(row["run_id"])
        return None

    def __repr__(self) -> str:
        return (
            f"SweepRun(experiment={self._info.experiment_name!r}, number={self.number}, "
            f"id={self.id!r}, status={self._info.status!r})"
        )


def _server(
    url: str | None, token: str | None, *embedded: str | Path | None
) -> tuple[str, str | None] | None:
    """The server (URL, token) a workspace call goes to, or None for an embedded home.

    An explicit ``url`` wins; an explicit embedded store (home, database, artifact
    root) is never overridden by ``$CUMULO_URL``; otherwise ``$CUMULO_URL`` decides.
    """
    given = [e for e in embedded if e is not None]
    if url and given:
        raise InvalidInput(
            "Give either a server url or an embedded home/database_url/artifact_root, not both."
        )
    if url:
        return url, token
    if given:
        return None
    env = os.environ.get("CUMULO_URL")
    if not env:
        return None
    return env, token or os.environ.get("CUMULO_TOKEN")


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


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return ""


def _system_interval(value: bool | float) -> float:
    if value is True:
        return system_metrics.DEFAULT_INTERVAL
    if value is False or value is None:
        return 0.0
    return system_metrics.interval(value, "system_metrics")
