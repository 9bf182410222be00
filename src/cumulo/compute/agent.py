"""The job agent: the program a compute target starts to run a job and report on it.

``python -m cumulo.compute.agent run DIR`` runs the job prepared in DIR;
``... standby`` waits, warmed up, for a job on stdin (the local target keeps
spares); ``... node WORKSPACE TARGET NODE_ID`` is a node of a pool.

Started by compute targets, never by users. It reaches the workspace through
a link (``AgentLink``) that whoever prepared the job names in its environment
as ``CUMULO_AGENT_LINK=module:callable``: the scheduler names one that opens
the store where the agent can (this machine), else one that reports to the
service's servers. This module imports neither: the link is handed down.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cumulo.compute.base import JOB_FOLDER
from cumulo.compute.environments import Log, ensure_environment
from cumulo.compute.pool import NodeQueue, PoolNode
from cumulo.compute.runner import JobChannel, run_job
from cumulo.core.errors import ConfigError
from cumulo.core.jobs import EnvironmentSpec
from cumulo.core.settings import Settings

log = logging.getLogger("cumulo.agent")

LINK_VAR = "CUMULO_AGENT_LINK"


class AgentLink:
    """How an agent reaches its workspace; subclasses say how (the store, or a server).

    ``channel`` is the runner's line to one job's run. By default an environment
    is built (or found) in this machine's cache, and the link runs no pool node.
    """

    def channel(self, workspace: str, run_id: str) -> JobChannel:
        raise NotImplementedError

    def build_env(self, env_def: dict[str, Any], log: Log) -> str:
        """The interpreter of the job's environment (``env_def``: an ``EnvironmentInfo``)."""
        cache = Settings.load().env_cache_dir  # CUMULO_ENV_CACHE, set by the scheduler
        spec = EnvironmentSpec.parse(env_def["spec"])
        return ensure_environment(spec, cache, log, label=f"{env_def['name']}:{env_def['version']}")

    def node_queue(self, workspace: str, target: str, node_id: str) -> NodeQueue:
        raise ConfigError("This agent link runs no pool node: a pool node opens the store.")

    def warm(self) -> None:
        """Connect before a job comes (a spare agent)."""


def open_link() -> AgentLink:
    """The link named in ``CUMULO_AGENT_LINK``, imported and made now."""
    name = os.environ.get(LINK_VAR, "")
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise ConfigError(
            f"{LINK_VAR} must name how the agent reaches its workspace (module:callable), "
            f"got {name!r}; agents are started by compute targets, which set it."
        )
    factory = getattr(importlib.import_module(module_name), attr)
    link: AgentLink = factory()
    return link


def _attempt(run_id: str, workdir: Path) -> int | None:
    """The attempt this agent runs: its folder is named ``RUN_ID-ATTEMPT`` by the scheduler."""
    prefix, _, number = workdir.name.rpartition("-")
    return int(number) if prefix == run_id and number.isdigit() else None


def _keep_lease(renew: Callable[[int, int], bool], attempt: int, done: threading.Event) -> None:
    """Renew the job's lease while its script runs, as its scheduler does.

    The job then outlives the server that launched it: a scheduler that looks at
    it finds a live lease and leaves it running. Only when this agent is gone
    does the lease run out, and the job is judged lost. Stops when ``done`` is
    set or the job is no longer active in this attempt.
    """
    seconds = Settings.load().lease_seconds  # the scheduler's lease (CUMULO_LEASE_SECONDS)
    while True:
        try:
            if not renew(attempt, int(seconds * 1000)):
                return  # it ended, or went on without this attempt: not this agent's lease
        except Exception as exc:  # the store is away a moment: the lease outlasts a miss
            log.warning("could not renew the job's lease (%s); retrying", exc)
        if done.wait(seconds / 3):
            return


def run(workdir: Path, link: AgentLink | None = None) -> int:
    spec = json.loads((workdir / JOB_FOLDER / "spec.json").read_text())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    link = link or open_link()
    channel = link.channel(spec["workspace"], spec["run_id"])
    done = threading.Event()
    # Through the store only. An agent that reaches a server over HTTP runs on another
    # machine, where any server's scheduler finds it through its target: it skips this.
    renew = getattr(channel, "renew_lease", None)
    attempt = _attempt(spec["run_id"], workdir)
    if renew is not None and attempt is not None:
        keeper = threading.Thread(
            target=_keep_lease, args=(renew, attempt, done), name="cumulo-lease", daemon=True
        )
        keeper.start()
    try:
        run_job(spec, channel, workdir, build_env=link.build_env, stop=stop)
    finally:
        done.set()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the job is over: nothing left to save
    return 0


def standby() -> int:
    """Wait, warmed up, for a job on stdin (one JSON line: workdir and variables)."""
    link = open_link()
    link.warm()  # connect and check the schema before the job comes
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # the scheduler stopped: no job for this spare
    message = json.loads(line)
    os.environ.update(message["env"])
    return run(Path(message["workdir"]), link)


def node(workspace: str, target: str, node_id: str) -> int:
    worker = PoolNode(open_link().node_queue(workspace, target, node_id))
    # SIGTERM: finish the job at hand, then stop.
    signal.signal(signal.SIGTERM, lambda *_: worker.stop.set())
    worker.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "run":
        return run(Path(args[1]).resolve())
    if args == ["standby"]:
        return standby()
    if len(args) == 4 and args[0] == "node":
        return node(args[1], args[2], args[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
