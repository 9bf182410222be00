"""Fixtures for the MLflow client tests: one live Cumulo server for the session.

Its home is a temporary folder; each test points ``MLFLOW_TRACKING_URI`` at it and
uses names of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from mlflow_kit import LiveServer, live_server

from cumulo.core.settings import Settings


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("mlflow-server")
    with live_server(Settings.load(home=home, environ={})) as live:
        yield live


@pytest.fixture
def tracking_uri(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The MLflow client of this process pointed at the live server's default workspace."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    mlflow.set_experiment(experiment_id="0")  # the fluent API remembers the last one
    yield server.url
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture
def client(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri, registry_uri=tracking_uri)


@pytest.fixture
def name() -> str:
    """A unique name for this test's experiments and models."""
    return f"t-{uuid.uuid4().hex[:10]}"
