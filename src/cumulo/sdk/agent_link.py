"""The agent's link to its workspace through the service's servers (an agent on another
machine, e.g. a Ray node): the scheduler names ``HttpLink`` in its environment."""

from __future__ import annotations

import os

from cumulo.compute.agent import AgentLink
from cumulo.compute.runner import JobChannel
from cumulo.sdk.http import HttpChannel


class HttpLink(AgentLink):
    """Reports to any server at ``CUMULO_URLS`` (failing over), else ``CUMULO_URL``."""

    def __init__(self) -> None:
        # Every server of the workspace's service address: the job outlives any one of them.
        self.urls = os.environ.get("CUMULO_URLS") or os.environ["CUMULO_URL"]
        self.token = os.environ.get("CUMULO_TOKEN")

    def channel(self, workspace: str, run_id: str) -> JobChannel:
        return HttpChannel(self.urls, self.token, workspace, run_id)
