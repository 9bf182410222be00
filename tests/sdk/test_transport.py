"""The SDK's one seam: each sub-client takes the same arguments over HTTP as in-process."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from cumulo.sdk import transport
from cumulo.sdk.http import (
    HttpDatasets,
    HttpEndpoints,
    HttpJobs,
    HttpModels,
    HttpPipelines,
    HttpSweeps,
    HttpTracking,
)
from cumulo.services.datasets import DatasetService
from cumulo.services.deployments import DeploymentService
from cumulo.services.jobs import JobService
from cumulo.services.pipelines import PipelineService
from cumulo.services.registry import RegistryService
from cumulo.services.sweeps import SweepService
from cumulo.services.tracking import TrackingService

# protocol, its HTTP client, the service the embedded transport hands back
SUB_CLIENTS = [
    (transport.TrackingClient, HttpTracking, TrackingService),
    (transport.JobClient, HttpJobs, JobService),
    (transport.ModelClient, HttpModels, RegistryService),
    (transport.EndpointClient, HttpEndpoints, DeploymentService),
    (transport.SweepClient, HttpSweeps, SweepService),
    (transport.DatasetClient, HttpDatasets, DatasetService),
    (transport.PipelineClient, HttpPipelines, PipelineService),
]
# What only the server passes: the role of the token that submitted a job (it caps the
# job's own), the run the studio already found for a chart, the dataset versions a
# schedule's firing pins. A sweep's trials are submitted by the server's sweep driver,
# as children of the sweep.
SERVER_ONLY = {
    ("submit_job", "submitter_role"),
    ("submit_job", "parent_id"),
    ("submit_sweep", "submitter_role"),
    ("submit_pipeline", "submitter_role"),
    ("submit_published", "submitter_role"),
    ("submit_published", "dataset_versions"),
    ("get_metric_chart", "run"),
}


def _params(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    params = inspect.signature(fn).parameters.values()
    return [p for p in params if (fn.__name__, p.name) not in SERVER_ONLY]


def _shape(fn: Callable[..., Any]) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in _params(fn)]


def _calls(cls: type) -> list[str]:
    return [n for n, _ in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")]


@pytest.mark.parametrize(("protocol", "http", "service"), SUB_CLIENTS, ids=lambda c: c.__name__)
def test_both_sides_of_every_sub_client_take_the_same_arguments(
    protocol: type, http: type, service: type
) -> None:
    names = _calls(protocol)
    assert len(names) >= 3
    for name in names:
        expected = _shape(getattr(protocol, name))
        assert _shape(getattr(service, name)) == expected, f"{service.__name__}.{name}"
        assert _shape(getattr(http, name)) == expected, f"{http.__name__}.{name}"


# Calls that only mean something inside the server: a transaction scope for its handlers,
# the sampling that MLflow's web UI asks of it, and the cancel step that the jobs, sweeps
# and pipelines services share (a client cancels through those).
SERVICE_ONLY = {"reading", "get_metric_history_interval", "request_cancel"}


def test_the_http_tracking_client_mirrors_the_whole_tracking_service() -> None:
    for name in set(_calls(TrackingService)) - SERVICE_ONLY:
        mine = getattr(HttpTracking, name, None)
        assert mine is not None, f"HttpTracking lacks {name}"
        theirs = getattr(TrackingService, name)
        assert _params(mine) == _params(theirs), name  # annotations included
        assert (
            inspect.signature(mine).return_annotation == inspect.signature(theirs).return_annotation
        )


def test_both_transports_offer_every_sub_client() -> None:
    from cumulo.sdk.embedded import EmbeddedTransport
    from cumulo.sdk.http import HttpTransport

    members = [*_calls(transport.Transport), "tracking", "jobs", "models", "endpoints", "sweeps"]
    members.append("datasets")
    members.append("pipelines")
    for side in (EmbeddedTransport, HttpTransport("http://127.0.0.1:9")):
        missing = [
            m for m in members if not hasattr(side, m) and m not in side.__init__.__code__.co_names
        ]
        assert missing == [], repr(side)


def test_the_http_client_imports_no_service_and_no_database_driver() -> None:
    code = (
        "import sys, cumulo.sdk.http, cumulo\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'"
        " or m.startswith(('cumulo.services', 'cumulo.store'))]\n"
        "print(','.join(sorted(bad)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
