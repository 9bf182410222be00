"""The same deployment API on a Ray cluster target, served by Ray Serve (a managed local head)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cumulo import ComputeTarget, DeploymentConfig, Model, RayCluster

pytestmark = pytest.mark.slow


@pytest.fixture
def ray_target(ws) -> Iterator[str]:
    pytest.importorskip("ray.serve")
    from cumulo.compute.ray import stop_managed_heads

    ComputeTarget.create(ws, "my-ray", RayCluster.managed(num_cpus=2))
    try:
        yield "my-ray"
    finally:
        from cumulo.services.context import close_all

        close_all()  # the endpoints this process serves stop before the head
        stop_managed_heads()


def test_mlflow_model_on_ray_serve(ws, ray_target: str, mlflow_model_dir: Path) -> None:
    from tests.models.conftest import IRIS_COLUMNS

    model = Model.register(ws, mlflow_model_dir, "iris")
    ep = Model.deploy(
        ws,
        "iris-ray",
        [model],
        deployment_config=DeploymentConfig(compute_target=ray_target, replicas=1),
        timeout=240,
    )
    blue = ep.deployments["blue"]
    assert blue.state == "Healthy" and blue.compute_target == "my-ray"
    replica = blue.replica_states[0]
    assert replica.url is not None and replica.url.endswith(
        f"/cumulo-{replica.url.rsplit('-', 1)[1]}"
    )
    body = {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}}
    assert ep.run(body) == {"predictions": [0]}
    bad = httpx.post(  # MLflow's own answer: it may wait for MLflow's path to finish loading
        ep.scoring_uri,
        json={"instances": [[1.0]]},
        headers={"authorization": f"Bearer {ep.get_keys()[0]}"},
        timeout=60,
    )
    assert bad.status_code == 400
    # Serve's own HTTP proxy answers only the router, which sends the replica's secret.
    direct = httpx.post(replica.url + "/invocations", json=body, timeout=30)
    assert direct.status_code == 401
    ep.delete()
