"""``HttpTransport``: the SDK's calls over the native REST API of ``cumulo server``.

One ``HttpClient`` (the connection pool, failover and errors) is shared by a
sub-client per resource, each with the signatures of the service that answers
it in-process: ``tracking`` (``HttpTracking``), ``jobs`` (``HttpJobs``),
``models`` (``HttpModels``), ``endpoints`` (``HttpEndpoints``), ``sweeps``
(``HttpSweeps``), ``datasets`` (``HttpDatasets``) and ``pipelines``
(``HttpPipelines``). This package
imports no service and no database driver.
"""

from __future__ import annotations

from collections.abc import Sequence

from cumulo.sdk.http.client import HttpClient, service_urls
from cumulo.sdk.http.datasets import HttpDatasets
from cumulo.sdk.http.endpoints import HttpEndpoints
from cumulo.sdk.http.jobs import HttpChannel, HttpJobs
from cumulo.sdk.http.models import HttpModels
from cumulo.sdk.http.pipelines import HttpPipelines
from cumulo.sdk.http.sweeps import HttpSweeps
from cumulo.sdk.http.tracking import HttpTracking

__all__ = [
    "HttpChannel",
    "HttpClient",
    "HttpDatasets",
    "HttpEndpoints",
    "HttpJobs",
    "HttpModels",
    "HttpPipelines",
    "HttpSweeps",
    "HttpTracking",
    "HttpTransport",
    "service_urls",
]


class HttpTransport:
    """A workspace's calls sent to a ``cumulo server`` (or to the first of several that answers).

    Example::

        t = HttpTransport("http://127.0.0.1:5000", token="cumulo_...")
        t.tracking.list_workspaces()
    """

    def __init__(
        self, url: str | Sequence[str], token: str | None = None, timeout: float = 120.0
    ) -> None:
        self.client = HttpClient(url, token=token, timeout=timeout)
        self.tracking = HttpTracking(self.client)
        self.jobs = HttpJobs(self.client)
        self.models = HttpModels(self.client)
        self.endpoints = HttpEndpoints(self.client)
        self.sweeps = HttpSweeps(self.client)
        self.datasets = HttpDatasets(self.client)
        self.pipelines = HttpPipelines(self.client)

    @property
    def url(self) -> str:
        """The server this transport talks to now."""
        return self.client.url

    def serving_url(self) -> str:
        """Endpoints are served by the server itself."""
        return self.client.url

    def host_jobs(self) -> None:
        """Nothing to do: the server's scheduler runs the workspace's jobs."""

    def close(self) -> None:
        self.client.close()

    def __repr__(self) -> str:
        return f"HttpTransport({self.url!r})"
