"""The sweeps' store on SQLite and PostgreSQL: one driver per sweep, each trial number once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cumulo import Experiment, Workspace
from cumulo.core.sweeps import Sampling, SweepInfo, SweepSpec, TrialInfo, uniform
from cumulo.sdk.embedded import EmbeddedTransport
from cumulo.store.sweeps import SweepStore


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _sweep(workspace: Workspace) -> tuple[SweepStore, SweepInfo]:
    transport = workspace.transport
    assert isinstance(transport, EmbeddedTransport)
    store = transport.services.sweeps.store
    exp = Experiment(workspace, "store")
    parent = transport.tracking.create_run(workspace.name, exp.id, kind="sweep")
    spec = SweepSpec.parse(
        {
            "sampling": Sampling.parse({"kind": "random", "space": {"x": uniform(0, 1)}}),
            "primary_metric_name": "acc",
            "primary_metric_goal": "maximize",
        }
    )
    return store, store.create(workspace.name, parent.id, exp.id, spec, {"config": {}})


def test_a_trial_number_is_claimed_once(workspace: Workspace) -> None:
    store, sweep = _sweep(workspace)
    trial = TrialInfo(0, {"x": 0.5}, {"x": 0.5}, {}, "claimed")
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda _i: store.claim_trial(sweep.id, trial), range(8)))
    assert won.count(True) == 1
    assert [t.number for t in store.trials(sweep.id)] == [0]
    store.update_trial(sweep.id, 0, run_id="r0", state="completed", value=0.75)
    assert store.trials(sweep.id)[0] == TrialInfo(
        0, {"x": 0.5}, {"x": 0.5}, {}, "completed", "r0", 0.75
    )
    store.finish(sweep.id)


def test_one_driver_holds_a_sweep_until_it_lets_go_or_its_lease_runs_out(
    workspace: Workspace,
) -> None:
    store, sweep = _sweep(workspace)

    def held(owner: str, ttl_ms: int) -> list[str]:
        # the sweeps of this workspace (a PostgreSQL server holds other tests' too)
        return [s.run_id for s in store.acquire(owner, ttl_ms) if s.workspace == workspace.name]

    assert held("a", 60_000) == [sweep.run_id]
    assert held("b", 60_000) == []
    assert held("a", 60_000) == [sweep.run_id]  # renewed
    store.release("a")
    assert held("b", 1) == [sweep.run_id]
    time.sleep(0.05)  # b's lease ran out: b is gone
    assert held("a", 60_000) == [sweep.run_id]
    store.finish(sweep.id)
    assert held("a", 60_000) == held("b", 60_000) == []
    assert store.get(workspace.name, sweep.run_id).state == "done"
