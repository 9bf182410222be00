"""``HttpSweeps``: hyperparameter sweeps over HTTP.

Its methods take the arguments of their ``SweepService`` twins (a test holds
them to it); the server's routes are ``server/api/sweeps.py``.
"""

from __future__ import annotations

from typing import Any

from cumulo.core.entities import RunInfo
from cumulo.sdk.http.client import HttpClient, ws_path


class HttpSweeps:
    """``SweepClient`` over a ``cumulo server``'s ``/api/v1`` (routes: ``server/api/sweeps``)."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def submit_sweep(
        self,
        workspace: str,
        experiment_id: int,
        spec: dict[str, Any],
        config: dict[str, Any],
        *,
        tags: dict[str, str] | None = None,
        display_name: str | None = None,
        user: str = "",
    ) -> RunInfo:
        body = {
            "experiment_id": experiment_id,
            "spec": spec,
            "config": config,
            "tags": tags,
            "display_name": display_name,
            "user": user,
        }
        return RunInfo.from_dict(self.client.call("POST", f"{ws_path(workspace)}/sweeps", body))

    def get_sweep(self, workspace: str, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.client.call("GET", f"{ws_path(workspace)}/sweeps/{run_id}")
        return data

    def cancel_sweep(self, workspace: str, run_id: str) -> RunInfo:
        return RunInfo.from_dict(
            self.client.call("POST", f"{ws_path(workspace)}/sweeps/{run_id}/cancel")
        )
