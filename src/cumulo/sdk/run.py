"""``Run``: one execution of training code, with its metrics, params, tags and files."""

from __future__ import annotations

import io
import time
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, Protocol, Self, cast
from urllib.parse import quote

from cumulo.core import system_metrics, validation
from cumulo.core.entities import MetricRecord, RunInfo, gather_records
from cumulo.core.errors import ConfigError, InvalidInput, InvalidPath, NotFound
from cumulo.core.status import RunStatus
from cumulo.sdk import display, v1, widgets
from cumulo.sdk.progress import Advance, CountingReader, transfer

if TYPE_CHECKING:
    from cumulo.compute.sysmetrics import Point, Sampling
    from cumulo.sdk.transport import TrackingClient, Transport
    from cumulo.sdk.writer import MetricWriter

ENV_RUN_ID = "CUMULO_RUN_ID"


class WorkspaceRef(Protocol):
    """What a run, a model, an endpoint or a compute target needs of its ``Workspace``."""

    name: str
    url: str | None

    @property
    def transport(self) -> Transport: ...
    @property
    def writer(self) -> MetricWriter: ...
    def flush(self, timeout: float | None = 60.0) -> None: ...
    def get_run(self, run_id: str) -> RunTracking: ...


class RunTracking:
    """A tracked run. Metric calls return at once; a background writer stores them.

    ``cumulo.Run`` (``sdk/workspace.py``) adds what reaches beyond tracking: its
    experiment, its job's logs and snapshot, registering a model and the run of
    the job this process runs in.

    Example::

        with exp.start_logging() as run:
            run.log_params({"lr": 0.1})
            for epoch in range(10):
                run.log("loss", 1 / (epoch + 1))
            run.upload_file("outputs/model.pkl", "model.pkl")
    """

    def __init__(self, workspace: WorkspaceRef, info: RunInfo) -> None:
        self.workspace = workspace
        self._info = info
        self._steps: dict[str, int] = {}
        self._checked: set[str] = set()
        self._next_image: dict[str, int] = {}  # per name, once read from the stored files
        self._sampling: Sampling | None = None

    # ------------------------------------------------------------ attributes
    @property
    def _t(self) -> TrackingClient:
        return self.workspace.transport.tracking

    @property
    def _ws(self) -> str:
        return self.workspace.name

    @property
    def id(self) -> str:
        return self._info.id

    @property
    def number(self) -> int:
        return self._info.number

    @property
    def display_name(self) -> str:
        return self._info.display_name

    @display_name.setter
    def display_name(self, value: str) -> None:
        self._info = self._t.update_run(self._ws, self.id, display_name=value)

    @property
    def parent(self) -> Self | None:
        if self._info.parent_id is None:
            return None
        return type(self)(self.workspace, self._t.get_run(self._ws, self._info.parent_id))

    @property
    def status(self) -> str:
        return self.get_status()

    @property
    def info(self) -> RunInfo:
        return self._info

    def refresh(self) -> Self:
        self._info = self._t.get_run(self._ws, self.id)
        return self

    # --------------------------------------------------------------- metrics
    def log(self, name: str, value: float, step: int | None = None, description: str = "") -> None:
        """Log a number; repeated calls with the same name make a series (steps count up)."""
        if name not in self._checked:
            validation.key(name, "metric")
            if system_metrics.is_system(name):
                raise InvalidInput(
                    f"Metric {name!r}: names under {system_metrics.PREFIX!r} are the run's "
                    "system metrics; start the run with system_metrics=True to have them "
                    "sampled, and log your own metrics under another name."
                )
            self._checked.add(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            value = validation.metric_value(name, value)  # numpy scalars pass, others raise
        if step is None:
            step = self._steps.get(name, 0)
        elif isinstance(step, bool) or not isinstance(step, int):
            step = validation.step(step)
        self._steps[name] = step + 1
        self.workspace.writer.put_metric(
            self.id, name, float(value), step, time.time_ns() // 1_000_000
        )

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for name, value in metrics.items():
            self.log(name, value, step=step)

    def log_list(self, name: str, value: Iterable[Any], description: str = "") -> None:
        self._record(name, "list", [_plain(v) for v in value], description)

    def log_row(self, name: str, description: str = "", **columns: Any) -> None:
        """Log one row of a table that grows over calls: ``run.log_row("pr", p=0.9, r=0.8)``."""
        self._record(name, "row", {k: _plain(v) for k, v in columns.items()}, description)

    def log_table(self, name: str, value: dict[str, Iterable[Any]], description: str = "") -> None:
        """Log a table given as columns: ``{"epoch": [1, 2], "loss": [0.5, 0.3]}``."""
        if not isinstance(value, dict):
            raise InvalidInput("log_table takes a dict of column name -> list of values.")
        self._record(
            name, "table", {k: [_plain(x) for x in v] for k, v in value.items()}, description
        )

    def log_image(
        self,
        name: str,
        path: str | Path | None = None,
        plot: Any = None,
        description: str = "",
        step: int | None = None,
    ) -> None:
        """Log an image from a file or a matplotlib figure; shown in the studio's gallery.

        ``step``: the training step it shows (the studio's slider moves through them);
        without one, images of a name count 0, 1, 2, ...
        """
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise InvalidInput(f"An image's step is an integer, got {step!r}.")
        if (path is None) == (plot is None):
            raise InvalidInput("log_image takes exactly one of path= or plot=.")
        validation.key(name, "metric")
        count = self._next_image.get(name)
        if count is None:
            # Uploads are stored before they return (records are not): the first image
            # of a name in this object numbers on from the files already there.
            taken = self._t.list_artifacts(self._ws, self.id, f"images/{name}")
            stems = [PurePosixPath(f.path).stem for f in taken]
            count = max((int(s) + 1 for s in stems if s.isdigit()), default=0)
        if plot is not None:
            figure = getattr(plot, "figure", plot)  # an Axes or pyplot module also works
            if hasattr(plot, "gcf"):
                figure = plot.gcf()
            buf = io.BytesIO()
            figure.savefig(buf, format="png", bbox_inches="tight")
            buf.seek(0)
            suffix, stream = ".png", cast(IO[bytes], buf)
        else:
            src = Path(path)  # type: ignore[arg-type]
            if not src.is_file():
                raise NotFound(f"Image file {str(src)!r} does not exist.")
            suffix, stream = src.suffix or ".png", open(src, "rb")  # noqa: SIM115
        target = f"images/{name}/{count:04d}{suffix}"
        with stream:
            self._t.upload_artifact(self._ws, self.id, target, stream)
        self._next_image[name] = count + 1
        value: dict[str, Any] = {"path": target}
        if step is not None:
            value["step"] = step
        self._record(name, "image", value, description)

    def _record(self, name: str, kind: str, value: Any, description: str) -> None:
        if name not in self._checked:
            validation.key(name, "metric")
            self._checked.add(name)
        self.workspace.writer.put_record(
            self.id,
            {
                "name": name,
                "kind": kind,
                "value": value,
                "timestamp": time.time_ns() // 1_000_000,
                "description": description,
            },
        )

    def flush(self, timeout: float | None = 60.0) -> None:
        """Wait until every metric logged so far is stored."""
        self.workspace.flush(timeout)

    def get_metrics(self, name: str | None = None, recursive: bool = False) -> dict[str, Any]:
        """Logged values by name: a number, or a list for a series; rows and tables as columns.

        With ``recursive=True`` the result maps each run id (this run and its
        descendants) to its metrics. The run's system metrics (``system/...``) are left
        out unless named; ``get_system_metrics()`` gives them.
        """
        if recursive:
            out = {self.id: self.get_metrics(name)}
            for child in self.get_children(recursive=True):
                out[child.id] = child.get_metrics(name)
            return out
        return self._metrics(name, system=name is not None and system_metrics.is_system(name))

    def get_system_metrics(self) -> dict[str, list[float]]:
        """The run's system metrics (CPU, memory, disk, network, GPUs), each as its series
        of values: ``{"system/process_rss_megabytes": [512.3, 530.1, ...], ...}``."""
        found = self._metrics(None, system=True)
        return {k: v if isinstance(v, list) else [v] for k, v in found.items()}

    def _metrics(self, name: str | None, system: bool) -> dict[str, Any]:
        self.flush()
        data = self._t.get_run_metrics(self._ws, self.id)
        result: dict[str, Any] = {}
        for key, series in data["series"].items():
            if system_metrics.is_system(key) != system:
                continue
            values = series["value"]
            result[key] = values[0] if len(values) == 1 else list(values)
        records = gather_records(MetricRecord.from_dict(r) for r in data["records"])
        for key, (kind, value) in records.items():
            if system_metrics.is_system(key) != system:
                continue
            one_image = kind == "image" and len(value) == 1
            result[key] = value[0] if one_image else value  # one image: its path
        if name is not None:
            return {name: result[name]} if name in result else {}
        return result

    def get_metric_history(self, name: str) -> dict[str, list[Any]]:
        """One series in columns: ``{"step": [...], "timestamp": [...], "value": [...]}``."""
        self.flush()
        return dict(self._t.get_metric_history(self._ws, self.id, name))

    # ------------------------------------------------------- params and tags
    def log_params(self, params: dict[str, Any]) -> None:
        """Record parameters; a param never changes once set (like MLflow's)."""
        self._t.log_batch(self._ws, self.id, params={k: _param(v) for k, v in params.items()})

    def log_param(self, name: str, value: Any) -> None:
        self.log_params({name: value})

    def tag(self, key: str, value: Any = "") -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._t.set_tags(self._ws, self.id, {k: str(v) for k, v in tags.items()})

    def remove_tags(self, keys: Iterable[str]) -> None:
        self._t.delete_tags(self._ws, self.id, list(keys))

    def get_tags(self) -> dict[str, str]:
        return dict(self.refresh()._info.tags)

    def add_properties(self, properties: dict[str, Any]) -> None:
        """Add immutable properties (changing one raises Conflict)."""
        self._t.add_properties(self._ws, self.id, {k: str(v) for k, v in properties.items()})

    def get_properties(self) -> dict[str, str]:
        return dict(self.refresh()._info.properties)

    def get_params(self) -> dict[str, str]:
        return dict(self.refresh()._info.params)

    # ----------------------------------------------------------------- files
    def upload_file(
        self,
        name: str,
        path_or_stream: str | Path | IO[bytes],
        show_progress: bool | None = None,
    ) -> str:
        """Store a file under ``name`` (a relative path) in the run's outputs.

        A big file shows a progress bar on a terminal or in a notebook
        (``show_progress`` forces it on or off).
        """
        target = validation.artifact_path(name)
        if not isinstance(path_or_stream, (str, Path)):
            self._t.upload_artifact(self._ws, self.id, target, path_or_stream)
            return target
        src = _existing_file(path_or_stream)
        with transfer(f"Uploading {target}", src.stat().st_size, show_progress) as done:
            self._send(target, src, done)
        return target

    def _send(self, target: str, src: Path, done: Advance) -> None:
        with open(src, "rb") as fh:
            self._t.upload_artifact(
                self._ws, self.id, target, cast(IO[bytes], CountingReader(fh, done))
            )

    def upload_files(self, names: list[str], paths: list[str | Path]) -> None:
        for name, path in zip(names, paths, strict=True):
            self.upload_file(name, path)

    def upload_folder(
        self, name: str, path: str | Path, show_progress: bool | None = None
    ) -> list[str]:
        """Store a folder's files under ``name``; links that lead outside it are refused."""
        root = Path(path).resolve()
        if not root.is_dir():
            raise NotFound(f"Folder {str(path)!r} does not exist.")
        prefix = validation.artifact_path(name, allow_root=True)
        files = []
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            real = file.resolve()
            if root not in real.parents:
                raise InvalidPath(f"{file} is a link to {real}, outside {root}; not uploaded.")
            files.append(file)
        uploaded = []
        total = sum(f.stat().st_size for f in files)
        label = f"Uploading {len(files)} files to {prefix or 'the run'}"
        with transfer(label, total, show_progress) as done:
            for file in files:
                rel = file.relative_to(root).as_posix()
                target = validation.artifact_path(f"{prefix}/{rel}" if prefix else rel)
                self._send(target, file, done)
                uploaded.append(target)
        return uploaded

    def get_file_names(self, prefix: str = "") -> list[str]:
        return [f.path for f in self._t.list_artifacts(self._ws, self.id, prefix, recursive=True)]

    def download_file(
        self,
        name: str,
        output_file_path: str | Path | None = None,
        show_progress: bool | None = None,
    ) -> Path:
        rel = validation.artifact_path(name)
        dest = Path(output_file_path) if output_file_path else Path(Path(rel).name)
        if dest.is_dir():
            dest = dest / Path(rel).name
        size = self._t.artifact_size(self._ws, self.id, rel) if show_progress is not False else 0
        with transfer(f"Downloading {rel}", size, show_progress) as done:
            return self._fetch(rel, dest, done)

    def _fetch(self, rel: str, dest: Path, done: Advance) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".partial")
        with self._t.open_artifact(self._ws, self.id, rel) as src, open(tmp, "wb") as out:
            while chunk := src.read(1024 * 1024):
                out.write(chunk)
                done(len(chunk))
        tmp.replace(dest)
        return dest

    def download_files(
        self,
        prefix: str = "",
        output_directory: str | Path | None = None,
        append_prefix: bool = True,
        show_progress: bool | None = None,
    ) -> list[Path]:
        out_dir = Path(output_directory or ".")
        prefix = validation.artifact_path(prefix, allow_root=True)
        found = [
            f
            for f in self._t.list_artifacts(self._ws, self.id, prefix, recursive=True)
            if not f.is_dir
        ]
        total = sum(f.size or 0 for f in found)
        paths = []
        with transfer(f"Downloading {len(found)} files", total, show_progress) as done:
            for f in found:
                rel = f.path if append_prefix or not prefix else f.path[len(prefix) :].lstrip("/")
                paths.append(self._fetch(validation.artifact_path(f.path), out_dir / rel, done))
        return paths

    # ---------------------------------------------------------------- status
    def get_status(self) -> str:
        return self.refresh()._info.status

    def get_details(self) -> dict[str, Any]:
        """Status, times, user, target, params, tags, properties, error and status history."""
        info = self.refresh()._info
        return {
            "runId": info.id,
            "number": info.number,
            "displayName": info.display_name,
            "experiment": info.experiment_name,
            "workspace": info.workspace,
            "status": info.status,
            "kind": info.kind,
            "user": info.user,
            "target": info.compute_target or "local",
            "parentRunId": info.parent_id,
            "createdTimeUtc": display.when(info.created_at),
            "startTimeUtc": display.when(info.started_at),
            "endTimeUtc": display.when(info.ended_at),
            "durationSeconds": info.duration,
            "params": dict(info.params),
            "tags": dict(info.tags),
            "properties": dict(info.properties),
            "error": info.error,
            "snapshotId": info.properties.get("snapshot"),
            "environment": info.properties.get("environment"),
            "statusHistory": [
                {"status": s.status, "time": display.when(s.at)} for s in info.status_history
            ],
        }

    def sample_system_metrics(self, interval: float = system_metrics.DEFAULT_INTERVAL) -> None:
        """Sample this machine and this process every ``interval`` seconds, from a thread,
        as the run's ``system/`` metrics, until the run ends."""
        interval = system_metrics.interval(interval)
        if self._sampling is not None or not interval:
            return
        # Loaded here: a job's script is sampled by its runner and never loads psutil.
        from cumulo.compute.sysmetrics import Sampler, Sampling

        writer, run_id = self.workspace.writer, self.id

        def emit(points: list[Point]) -> None:
            for name, value, step, at in points:
                writer.put_metric(run_id, name, value, step, at)

        self._sampling = Sampling(Sampler(), interval, emit).start()

    def _stop_sampling(self) -> None:
        if self._sampling is not None:
            self._sampling.stop()
            self._sampling = None

    def _set_status(self, status: RunStatus, error: dict[str, Any] | None = None) -> None:
        if status.is_terminal:
            self._stop_sampling()
        self.flush()
        self._info = self._t.set_run_status(self._ws, self.id, status.value, error=error)

    def start(self) -> None:
        self._set_status(RunStatus.RUNNING)

    def complete(self) -> None:
        """Store what is buffered and mark the run Completed."""
        self._set_status(RunStatus.COMPLETED)

    def fail(
        self, error_details: str | BaseException | None = None, error_code: str | None = None
    ) -> None:
        """Mark the run Failed with a message (and the traceback when given an exception)."""
        error: dict[str, Any] = {"message": "", "code": error_code or "UserError"}
        if isinstance(error_details, BaseException):
            error["message"] = f"{type(error_details).__name__}: {error_details}"
            error["traceback"] = "".join(traceback.format_exception(error_details))
        elif error_details:
            error["message"] = str(error_details)
        self._set_status(RunStatus.FAILED, error)

    def cancel(self) -> None:
        """Cancel the run (a job is asked to stop; an interactive run is ended)."""
        status = (
            RunStatus.CANCELED if self._info.kind == "interactive" else RunStatus.CANCEL_REQUESTED
        )
        self._set_status(status)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.complete()
        elif isinstance(exc, KeyboardInterrupt):
            self._set_status(RunStatus.CANCELED, {"message": "Interrupted (KeyboardInterrupt)."})
        else:
            self.fail(exc)

    # -------------------------------------------------------------- children
    @v1.arguments(
        "Run.child_run", {"run_id": "child_run(name, tags)", "outputs": "child_run(name, tags)"}
    )
    def child_run(self, name: str | None = None, tags: dict[str, str] | None = None) -> Self:
        info = self._t.create_run(
            self._ws,
            self._info.experiment_id,
            display_name=name,
            parent_id=self.id,
            kind="interactive",
            status=RunStatus.RUNNING.value,
            tags=tags,
            user=self._info.user,
        )
        return type(self)(self.workspace, info)

    @v1.arguments(
        "Run.get_children",
        {
            k: "[c for c in run.get_children() if ...] (children are filtered here, by their "
            "get_tags(), get_properties() or status)"
            for k in ("tags", "properties", "type", "status")
        },
    )
    def get_children(self, recursive: bool = False) -> Iterator[Self]:
        token = None
        children: list[Self] = []
        while True:
            page = self._t.search_runs(
                self._ws,
                None,
                parent_id=self.id,
                page_token=token,
                order_by=["attributes.number ASC"],
            )
            children.extend(type(self)(self.workspace, i) for i in page.runs)
            token = page.next_page_token
            if not token:
                break
        for child in children:
            yield child
            if recursive:
                yield from child.get_children(recursive=True)

    def delete(self) -> None:
        """Delete this run, its child runs and their files, for good."""
        self._t.delete_run(self._ws, self.id)

    # ---------------------------------------------------------------- display
    def __repr__(self) -> str:
        return (
            f"Run(experiment={self._info.experiment_name!r}, number={self.number}, "
            f"id={self.id!r}, status={self._info.status!r})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunTracking) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def get_portal_url(self) -> str:
        """The run's page in the studio of the server that hosts its workspace."""
        url = self.workspace.url
        if not url:
            raise ConfigError(
                "This run's workspace is embedded, and the studio is served by `cumulo server`: "
                "start it on the workspace's home (`cumulo server --home HOME`) and open "
                f"/ws/{self._ws}/runs/{self.id} there (or use Workspace.connect(url, name))."
            )
        return f"{url.rstrip('/')}/ws/{quote(self._ws)}/runs/{quote(self.id)}"

    def _ipython_display_(self) -> None:
        # In a notebook the output keeps itself current until the run ends (see RunDetails).
        widgets.RunDetails(self).show()

    def _repr_html_(self) -> str:
        info = self.refresh()._info
        rows = [
            ("run", f"{info.experiment_name} #{info.number} — {info.display_name}"),
            ("id", info.id),
            ("status", display.status_badge(info.status)),
            ("started", display.when(info.started_at)),
            ("duration", display.duration(info.duration)),
        ]
        rows += [
            (f"metric {k}", display.fmt_value(m.value)) for k, m in sorted(info.metrics.items())
        ]
        rows += [(f"param {k}", v) for k, v in sorted(info.params.items())]
        return display.table(["", ""], rows, raw={1})


class OfflineRun:
    """Stands in for a run outside a job: prints what is logged, never raises."""

    id = "offline"
    number = 0
    display_name = "offline"
    parent = None

    def __getattr__(self, name: str) -> Any:
        def _print(*args: Any, **kwargs: Any) -> None:
            shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
            print(f"[offline run] {name}({shown})")

        return _print

    def get_status(self) -> str:
        return RunStatus.RUNNING.value

    def get_metrics(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def get_children(self, *args: Any, **kwargs: Any) -> Iterator[RunTracking]:
        return iter(())

    def __enter__(self) -> OfflineRun:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __repr__(self) -> str:
        return "OfflineRun()"


def _plain(value: Any) -> Any:
    """numpy scalars and arrays become plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def _param(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _existing_file(path: str | Path) -> Path:
    src = Path(path)
    if not src.is_file():
        raise NotFound(f"File {str(src)!r} does not exist or is not a regular file.")
    return src
