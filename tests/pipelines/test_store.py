"""The pipelines' store: one driver holds a running pipeline, renewing its lease only when due."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from cumulo import Experiment, Workspace
from cumulo.core.pipelines import PipelineRunInfo, PipelineSpec
from cumulo.sdk.embedded import EmbeddedTransport
from cumulo.store import schema_pipelines as p
from cumulo.store.pipelines import PipelineStore


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _pipeline(workspace: Workspace) -> tuple[PipelineStore, PipelineRunInfo]:
    transport = workspace.transport
    assert isinstance(transport, EmbeddedTransport)
    store = transport.services.pipelines.store
    exp = Experiment(workspace, "store")
    parent = transport.tracking.create_run(workspace.name, exp.id, kind="pipeline")
    spec = PipelineSpec.parse({"steps": [{"name": "a", "config": {"script": "s.py"}}]})
    return store, store.create_run(workspace.name, parent.id, exp.id, spec, {}, {}, None)


def test_one_driver_holds_a_pipeline_until_it_lets_go_or_its_lease_runs_out(
    workspace: Workspace,
) -> None:
    store, pr = _pipeline(workspace)

    def held(owner: str, ttl_ms: int) -> list[str]:
        # the pipelines of this workspace (a PostgreSQL server holds other tests' too)
        return [r.run_id for r in store.acquire(owner, ttl_ms) if r.workspace == workspace.name]

    def expiry() -> int:
        c = p.pipeline_runs.c
        with store.db.transaction(write=False) as conn:
            return int(conn.execute(select(c.lease_expires_at).where(c.id == pr.id)).scalar_one())

    assert held("a", 60_000) == [pr.run_id]
    taken = expiry()
    assert held("b", 60_000) == []
    assert held("a", 60_000) == [pr.run_id]
    assert expiry() == taken  # most of the lease is left: nothing written
    assert held("a", 200_000) == [pr.run_id]  # less than half of this lease is left: renewed
    assert expiry() > taken
    store.release("a")
    assert held("b", 1) == [pr.run_id]
    time.sleep(0.05)  # b's lease ran out: b is gone
    assert held("a", 60_000) == [pr.run_id]
    store.finish(pr.id)
    assert held("a", 60_000) == held("b", 60_000) == []
    assert store.get_run(workspace.name, pr.run_id).state == "done"
