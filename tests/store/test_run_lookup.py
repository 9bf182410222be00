"""Finding a run by the start of its id, as tables and the CLI show ids cut short."""

from __future__ import annotations

import io

import pytest

from cumulo import Experiment, Workspace
from cumulo.core.errors import InvalidInput, NotFound


def test_a_unique_start_of_an_id_finds_the_run(workspace: Workspace) -> None:
    exp = Experiment(workspace, "lookup")
    store = workspace.transport.tracking.store  # type: ignore[attr-defined]
    first = store.create_run(workspace.name, exp.id, run_id="abcdef01" + "0" * 24)
    store.create_run(workspace.name, exp.id, run_id="abcdef02" + "0" * 24)
    assert workspace.get_run("abcdef01").id == first.id
    assert workspace.get_run("ABCDEF01").id == first.id  # ids are shown in lowercase
    with pytest.raises(InvalidInput, match="start of several runs"):
        workspace.get_run("abcdef0")
    with pytest.raises(NotFound, match="does not exist"):
        workspace.get_run("abcdef9")
    with pytest.raises(NotFound, match="does not exist"):
        workspace.get_run("abcde")  # too short to stand for a run
    # Only lookups take a start: writes and files need the whole id.
    with pytest.raises(NotFound):
        store.get_run(workspace.name, "abcdef01")
    with pytest.raises(NotFound):
        workspace.transport.tracking.upload_artifact(  # type: ignore[attr-defined]
            workspace.name, "abcdef01", "x.txt", io.BytesIO(b"x")
        )
    other = Workspace.create("lookup-other", home=workspace._settings.home)  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        other.get_run("abcdef01")  # another workspace's runs stay invisible
