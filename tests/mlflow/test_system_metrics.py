"""MLflow's own system metrics, sent by its client, are stored as the run's system metrics."""

from __future__ import annotations

import time

import pytest
from mlflow.exceptions import MlflowException

import mlflow
from cumulo.core import system_metrics as names


def test_mlflow_system_metrics_are_taken_and_other_system_names_refused(
    tracking_uri: str, client, name: str
) -> None:
    mlflow.set_experiment(name)
    mlflow.set_system_metrics_sampling_interval(0.2)
    mlflow.set_system_metrics_samples_before_logging(1)
    try:
        with mlflow.start_run(log_system_metrics=True) as run:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                logged = client.get_run(run.info.run_id).data.metrics
                if names.CPU in logged:
                    break
                time.sleep(0.2)
    finally:
        mlflow.set_system_metrics_sampling_interval(None)
        mlflow.set_system_metrics_samples_before_logging(None)
    logged = client.get_run(run.info.run_id).data.metrics
    assert names.CPU in logged and names.MEMORY_USED in logged, sorted(logged)
    assert all(names.known(key) for key in logged if key.startswith("system/"))
    with pytest.raises(MlflowException) as err:
        client.log_metric(run.info.run_id, "system/my_loss", 1.0)
    assert "reserved for system metrics" in str(err.value)
