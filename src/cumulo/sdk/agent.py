"""The job agent: ``python -m cumulo.sdk.agent run DIR`` runs one job in DIR;
``... standby`` waits warmed up for a job on stdin (the local target keeps one
spare); ``... node WORKSPACE TARGET NODE_ID`` is a pool node.

Started by compute targets, never by users. It reaches the workspace through
the store directly when ``CUMULO_DATABASE_URL`` is set (same machine), else
through the servers at ``CUMULO_URLS`` (failing over between them), else
``CUMULO_URL``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cumulo.compute.base import JOB_FOLDER
from cumulo.compute.runner import JobChannel, run_job
from cumulo.core.jobs import EnvironmentSpec
from cumulo.core.settings import Settings, parse_urls

if TYPE_CHECKING:
    from cumulo.services.scheduler import Endpoint

log = logging.getLogger("cumulo.agent")


def _direct() -> bool:
    return bool(os.environ.get("CUMULO_DATABASE_URL")) or not os.environ.get("CUMULO_URL")


def channel_for(workspace: str, run_id: str) -> JobChannel:
    if _direct():
        from cumulo.services.context import open_services
        from cumulo.services.jobs import ServiceChannel

        return ServiceChannel(open_services(Settings.load()).jobs, workspace, run_id)
    from cumulo.sdk.http import HttpChannel

    # Every server of the workspace's service address: the job outlives any one of them.
    urls = os.environ.get("CUMULO_URLS") or os.environ["CUMULO_URL"]
    return HttpChannel(urls, os.environ.get("CUMULO_TOKEN"), workspace, run_id)


def _build_env(env_def: dict[str, Any], log: Any) -> str:
    from cumulo.services.environments import ensure_environment

    if _direct():  # record the build (status and log) with the environment
        from cumulo.core.jobs import EnvironmentInfo
        from cumulo.services.context import open_services

        jobs = open_services(Settings.load()).jobs
        return jobs.environments.build(EnvironmentInfo.from_dict(env_def), log)
    cache = Settings.load().env_cache_dir  # CUMULO_ENV_CACHE, set by the scheduler
    spec = EnvironmentSpec.parse(env_def["spec"])
    return ensure_environment(spec, cache, log, label=f"{env_def['name']}:{env_def['version']}")


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


def run(workdir: Path) -> int:
    spec = json.loads((workdir / JOB_FOLDER / "spec.json").read_text())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    channel = channel_for(spec["workspace"], spec["run_id"])
    done = threading.Event()
    # Through the store only. An agent that reaches a server over HTTP runs on a Ray
    # cluster, where any server's scheduler finds it through the cluster: it skips this.
    renew = getattr(channel, "renew_lease", None)
    attempt = _attempt(spec["run_id"], workdir)
    if renew is not None and attempt is not None:
        keeper = threading.Thread(
            target=_keep_lease, args=(renew, attempt, done), name="cumulo-lease", daemon=True
        )
        keeper.start()
    try:
        run_job(spec, channel, workdir, build_env=_build_env, stop=stop)
    finally:
        done.set()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the job is over: nothing left to save
    return 0


def standby() -> int:
    """Wait, warmed up, for a job on stdin (one JSON line: workdir and variables)."""
    from cumulo.services.context import open_services
    from cumulo.services.jobs import ServiceChannel  # noqa: F401  (imported now, not later)

    if _direct():
        open_services(Settings.load())  # connect and check the schema before the job comes
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # the scheduler stopped: no job for this spare
    message = json.loads(line)
    os.environ.update(message["env"])
    return run(Path(message["workdir"]))


def node_endpoint(settings: Settings) -> Endpoint:
    """A pool node's service: its first address, and every one it may find a server at."""
    from cumulo.services.scheduler import Endpoint

    return Endpoint(
        os.environ.get("CUMULO_URL"),
        issue_tokens=settings.auth == "token",
        urls=parse_urls(os.environ.get("CUMULO_URLS", "")),
    )


def node(workspace: str, target: str, node_id: str) -> int:
    from cumulo.services.context import open_services
    from cumulo.services.scheduler import PoolNodeWorker

    settings = Settings.load()
    worker = PoolNodeWorker(
        open_services(settings).jobs, workspace, target, node_id, node_endpoint(settings)
    )
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
