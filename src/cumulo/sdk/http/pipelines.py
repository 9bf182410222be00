"""``HttpPipelines``: pipeline runs, published pipelines and schedules over HTTP.

Its methods take the arguments of their ``PipelineService`` twins (a test holds
them to it); the server's routes are ``server/api/pipelines.py``.
"""

from __future__ import annotations

from typing import Any

from cumulo.core.entities import RunInfo
from cumulo.core.pipelines import PublishedPipelineInfo, ScheduleInfo
from cumulo.sdk.http.client import HttpClient, q, ws_path


class HttpPipelines:
    """``PipelineClient`` over a ``cumulo server``'s ``/api/v1`` (``server/api/pipelines``)."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def submit_pipeline(
        self,
        workspace: str,
        experiment_id: int,
        spec: dict[str, Any],
        parameters: dict[str, Any] | None = None,
        *,
        continue_on_step_failure: bool | None = None,
        tags: dict[str, str] | None = None,
        display_name: str | None = None,
        user: str = "",
        resume_of: str | None = None,
    ) -> RunInfo:
        body = {
            "experiment_id": experiment_id,
            "spec": spec,
            "parameters": parameters,
            "continue_on_step_failure": continue_on_step_failure,
            "tags": tags,
            "display_name": display_name,
            "user": user,
            "resume_of": resume_of,
        }
        path = f"{ws_path(workspace)}/pipeline-runs"
        return RunInfo.from_dict(self.client.call("POST", path, body))

    def get_pipeline_run(self, workspace: str, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.client.call(
            "GET", f"{ws_path(workspace)}/pipeline-runs/{q(run_id)}"
        )
        return data

    def cancel_pipeline_run(self, workspace: str, run_id: str) -> RunInfo:
        path = f"{ws_path(workspace)}/pipeline-runs/{q(run_id)}/cancel"
        return RunInfo.from_dict(self.client.call("POST", path))

    def publish_pipeline(
        self,
        workspace: str,
        name: str,
        spec: dict[str, Any],
        description: str = "",
        version: str | None = None,
    ) -> PublishedPipelineInfo:
        body = {"name": name, "spec": spec, "description": description, "version": version}
        data = self.client.call("POST", f"{ws_path(workspace)}/pipelines", body)
        return PublishedPipelineInfo.from_dict(data)

    def get_published_pipeline(self, workspace: str, pipeline_id: str) -> PublishedPipelineInfo:
        data = self.client.call("GET", f"{ws_path(workspace)}/pipelines/{q(pipeline_id)}")
        return PublishedPipelineInfo.from_dict(data)

    def list_published_pipelines(
        self, workspace: str, name: str | None = None
    ) -> list[PublishedPipelineInfo]:
        params = {"name": name} if name is not None else None
        data = self.client.call("GET", f"{ws_path(workspace)}/pipelines", params=params)
        return [PublishedPipelineInfo.from_dict(p) for p in data["pipelines"]]

    def set_default_pipeline(
        self, workspace: str, name: str, pipeline_id: str
    ) -> PublishedPipelineInfo:
        path = f"{ws_path(workspace)}/pipeline-endpoints/{q(name)}/default"
        data = self.client.call("POST", path, {"pipeline_id": pipeline_id})
        return PublishedPipelineInfo.from_dict(data)

    def submit_published(
        self,
        workspace: str,
        pipeline_id: str,
        experiment_name: str,
        parameters: dict[str, Any] | None = None,
        *,
        tags: dict[str, str] | None = None,
        user: str = "",
    ) -> RunInfo:
        body = {
            "experiment_name": experiment_name,
            "parameters": parameters,
            "tags": tags,
            "user": user,
        }
        path = f"{ws_path(workspace)}/pipelines/{q(pipeline_id)}/runs"
        return RunInfo.from_dict(self.client.call("POST", path, body))

    def create_schedule(
        self,
        workspace: str,
        name: str,
        pipeline_id: str,
        experiment_name: str,
        *,
        parameters: dict[str, Any] | None = None,
        frequency: str | None = None,
        interval: int = 1,
        start_time: int | None = None,
        cron: str | None = None,
        on_dataset: str | None = None,
    ) -> ScheduleInfo:
        body = {
            "name": name,
            "pipeline_id": pipeline_id,
            "experiment_name": experiment_name,
            "parameters": parameters,
            "frequency": frequency,
            "interval": interval,
            "start_time": start_time,
            "cron": cron,
            "on_dataset": on_dataset,
        }
        data = self.client.call("POST", f"{ws_path(workspace)}/schedules", body)
        return ScheduleInfo.from_dict(data)

    def list_schedules(self, workspace: str) -> list[ScheduleInfo]:
        data = self.client.call("GET", f"{ws_path(workspace)}/schedules")
        return [ScheduleInfo.from_dict(s) for s in data["schedules"]]

    def get_schedule(self, workspace: str, name: str) -> ScheduleInfo:
        data = self.client.call("GET", f"{ws_path(workspace)}/schedules/{q(name)}")
        return ScheduleInfo.from_dict(data)

    def set_schedule_enabled(self, workspace: str, name: str, enabled: bool) -> ScheduleInfo:
        path = f"{ws_path(workspace)}/schedules/{q(name)}"
        return ScheduleInfo.from_dict(self.client.call("PATCH", path, {"enabled": enabled}))

    def schedule_firings(self, workspace: str, name: str) -> list[tuple[int, str | None]]:
        data = self.client.call("GET", f"{ws_path(workspace)}/schedules/{q(name)}/firings")
        return [(int(f[0]), f[1]) for f in data["firings"]]
