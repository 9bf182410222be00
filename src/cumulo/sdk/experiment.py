"""``Experiment``: a named group of runs in a workspace."""

from __future__ import annotations

import builtins
import getpass
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from cumulo.core.entities import ExperimentInfo
from cumulo.core.status import RunStatus
from cumulo.sdk import display

if TYPE_CHECKING:
    from cumulo.sdk.run import Run
    from cumulo.sdk.workspace import Workspace

PAGE = 500


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
    ) -> Run:
        """Start an interactive run; use it as a context manager to complete or fail it."""
        from cumulo.sdk.run import Run

        info = self.workspace.transport.tracking.create_run(
            self.workspace.name,
            self.id,
            display_name=display_name,
            kind="interactive",
            status=RunStatus.RUNNING.value,
            tags=tags,
            user=_user(),
        )
        run = Run._from_info(self.workspace, info)
        if snapshot_directory is not None:
            run.upload_folder("snapshot", snapshot_directory)
        return run

    def get_runs(
        self,
        filter: str | None = None,
        order_by: str | builtins.list[str] | None = None,
        status: str | builtins.list[str] | None = None,
        tags: dict[str, str | None] | builtins.list[str] | str | None = None,
        include_children: bool = False,
        max_results: int | None = None,
    ) -> Iterator[Run]:
        """Runs of this experiment, newest first unless ``order_by`` says otherwise.

        ``filter`` uses MLflow's grammar (``"metrics.acc > 0.9 AND params.lr = '0.1'"``);
        results are fetched page by page as you iterate.
        """
        from cumulo.sdk.run import Run

        statuses = [status] if isinstance(status, str) else status
        if isinstance(tags, str):
            tags = {tags: None}
        elif isinstance(tags, list):
            tags = dict.fromkeys(tags)
        token: str | None = None
        yielded = 0
        while True:
            page = self.workspace.transport.tracking.search_runs(
                self.workspace.name,
                [self.id],
                filter=filter,
                order_by=order_by,
                max_results=PAGE if max_results is None else min(PAGE, max_results - yielded),
                page_token=token,
                statuses=statuses,
                tags=tags,
                top_level_only=not include_children,
            )
            for info in page.runs:
                yield Run._from_info(self.workspace, info)
                yielded += 1
                if max_results is not None and yielded >= max_results:
                    return
            token = page.next_page_token
            if not token:
                return

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
    def submit(self, config: Any, tags: dict[str, str] | None = None) -> Run:
        """Submit a ``ScriptRunConfig``: returns the run at once, in status ``Queued``.
        A ``HyperDriveConfig`` returns the sweep's parent run (a ``SweepRun``).

        Example::

            run = exp.submit(ScriptRunConfig("src", "train.py", compute_target="cpu-pool"))
            run.wait_for_completion(show_output=True)
        """
        from cumulo.sdk.jobs import submit
        from cumulo.sdk.sweeps import HyperDriveConfig
        from cumulo.sdk.sweeps import submit as submit_sweep

        if isinstance(config, HyperDriveConfig):
            return submit_sweep(self, config, tags=tags)
        return submit(self, config, tags=tags)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return ""
