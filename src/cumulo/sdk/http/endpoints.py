"""``HttpEndpoints``: the endpoint and deployment calls of ``Endpoint``, over HTTP.

Its methods take the arguments of their ``DeploymentService`` twins (a test holds them to it).
"""

from __future__ import annotations

from typing import IO, Any, cast

import orjson

from cumulo.core.deployments import DeploymentInfo, EndpointInfo
from cumulo.sdk.http.client import HttpClient, q, read_chunks, ws_path


class HttpEndpoints:
    """Endpoints and their deployments on a ``cumulo server``: it serves them itself."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def _endpoint(self, workspace: str, name: str) -> str:
        return f"{ws_path(workspace)}/endpoints/{q(name)}"

    def create_endpoint(
        self,
        workspace: str,
        name: str,
        auth: str = "key",
        description: str = "",
        tags: dict[str, Any] | None = None,
    ) -> EndpointInfo:
        body = {"name": name, "auth": auth, "description": description, "tags": tags}
        return EndpointInfo.from_dict(
            self.client.call("POST", ws_path(workspace) + "/endpoints", body)
        )

    def get_endpoint(self, workspace: str, name: str) -> EndpointInfo:
        return EndpointInfo.from_dict(self.client.call("GET", self._endpoint(workspace, name)))

    def list_endpoints(self, workspace: str) -> list[EndpointInfo]:
        data = self.client.call("GET", ws_path(workspace) + "/endpoints")
        return [EndpointInfo.from_dict(e) for e in data["endpoints"]]

    def update_endpoint(
        self,
        workspace: str,
        name: str,
        traffic: dict[str, Any] | None = None,
        mirror_traffic: dict[str, Any] | None = None,
        auth: str | None = None,
        description: str | None = None,
        tags: dict[str, Any] | None = None,
    ) -> EndpointInfo:
        body = {
            "traffic": traffic,
            "mirror_traffic": mirror_traffic,
            "auth": auth,
            "description": description,
            "tags": tags,
        }
        return EndpointInfo.from_dict(
            self.client.call("PATCH", self._endpoint(workspace, name), body)
        )

    def delete_endpoint(self, workspace: str, name: str) -> None:
        self.client.call("DELETE", self._endpoint(workspace, name))

    def get_keys(self, workspace: str, name: str) -> dict[str, str]:
        return cast(
            dict[str, str], self.client.call("GET", self._endpoint(workspace, name) + "/keys")
        )

    def regenerate_key(self, workspace: str, name: str, which: str = "primary") -> dict[str, str]:
        path = self._endpoint(workspace, name) + "/keys/regenerate"
        return cast(dict[str, str], self.client.call("POST", path, {"which": which}))

    def upload_code(self, workspace: str, endpoint: str, stream: IO[bytes]) -> str:
        request = self.client.request(
            "PUT",
            self._endpoint(workspace, endpoint) + "/artifacts/code.zip",
            content=read_chunks(stream),
            headers={"content-type": "application/zip"},
        )
        return str(orjson.loads(self.client.send(request).content)["code"])

    def create_deployment(
        self,
        workspace: str,
        endpoint: str,
        name: str,
        models: list[dict[str, Any]],
        config: dict[str, Any] | None = None,
    ) -> DeploymentInfo:
        body = {"name": name, "models": models, "config": config}
        path = self._endpoint(workspace, endpoint) + "/deployments"
        return DeploymentInfo.from_dict(self.client.call("POST", path, body))

    def update_deployment(
        self,
        workspace: str,
        endpoint: str,
        name: str,
        models: list[dict[str, Any]] | None = None,
        config: dict[str, Any] | None = None,
    ) -> DeploymentInfo:
        path = f"{self._endpoint(workspace, endpoint)}/deployments/{q(name)}"
        return DeploymentInfo.from_dict(
            self.client.call("PATCH", path, {"models": models, "config": config})
        )

    def delete_deployment(self, workspace: str, endpoint: str, name: str) -> None:
        self.client.call("DELETE", f"{self._endpoint(workspace, endpoint)}/deployments/{q(name)}")

    def get_logs(
        self, workspace: str, endpoint: str, deployment: str | None = None, tail: int = 200
    ) -> str:
        params = {"deployment": deployment, "tail": tail}
        data = self.client.call("GET", self._endpoint(workspace, endpoint) + "/logs", params=params)
        return str(data["logs"])

    def get_metrics(
        self, workspace: str, endpoint: str, deployment: str | None = None, minutes: int = 60
    ) -> list[dict[str, Any]]:
        params = {"deployment": deployment, "minutes": minutes}
        data = self.client.call(
            "GET", self._endpoint(workspace, endpoint) + "/metrics", params=params
        )
        return list(data["metrics"])

    def get_request_logs(
        self, workspace: str, endpoint: str, deployment: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params = {"deployment": deployment, "limit": limit}
        data = self.client.call(
            "GET", self._endpoint(workspace, endpoint) + "/requests", params=params
        )
        return list(data["requests"])
