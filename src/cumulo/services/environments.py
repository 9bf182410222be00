"""Environments: registered and versioned per workspace, built where their jobs run.

A new version is registered when an environment's spec changes. Building (pip
requirements installed by uv, or pip where the ``env_installer`` setting says so, into
a cached virtual environment) is ``cumulo.compute.environments``; this service records
each build's status and log with the environment.
``"current"`` runs in the submitter's (or server's) own interpreter.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cumulo.compute.environments import READY_MARK, Log, ensure_environment
from cumulo.core.errors import CumuloError, InvalidInput
from cumulo.core.jobs import (
    CURRENT_ENVIRONMENT,
    BuildStatus,
    EnvironmentInfo,
    EnvironmentSpec,
    environment_name,
)
from cumulo.store.jobs import JobStore


class EnvironmentService:
    def __init__(self, store: JobStore, cache: Path, installer: str | None = None) -> None:
        self.store = store
        self.cache = cache
        self.installer = installer  # None: CUMULO_ENV_INSTALLER where the build runs

    def register(self, workspace: str, name: str, spec: dict[str, Any]) -> EnvironmentInfo:
        environment_name(name)
        if name == CURRENT_ENVIRONMENT:
            raise InvalidInput(f"{CURRENT_ENVIRONMENT!r} is the built-in environment; pick a name.")
        info = self.store.register_environment(workspace, name, EnvironmentSpec.parse(spec))
        if info.build_status == BuildStatus.READY.value and not self.is_built(info):
            self.store.set_build_status(info.build_hash, BuildStatus.NOT_BUILT.value)
            info = self.store.get_environment(workspace, name, info.version)
        return info

    def get(self, workspace: str, name: str, version: int | None = None) -> EnvironmentInfo:
        return self.store.get_environment(workspace, name, version)

    def list(self, workspace: str) -> list[EnvironmentInfo]:
        return self.store.list_environments(workspace)

    def is_built(self, info: EnvironmentInfo) -> bool:
        spec = info.env_spec
        return not spec.needs_build or (self.cache / spec.build_hash[:20] / READY_MARK).exists()

    def build(self, info: EnvironmentInfo, log: Log) -> str:
        """Build (or reuse) the environment; records its status and log in the store."""
        spec = info.env_spec
        if not spec.needs_build:
            return sys.executable
        cached = self.is_built(info)
        lines: list[str] = []

        def _log(line: str) -> None:
            lines.append(line)
            log(line)

        if not cached:
            self.store.set_build_status(info.build_hash, BuildStatus.BUILDING.value)
        try:
            python = ensure_environment(
                spec,
                self.cache,
                _log,
                label=f"{info.name}:{info.version}",
                installer=self.installer,
            )
        except CumuloError:
            self.store.set_build_status(
                info.build_hash, BuildStatus.FAILED.value, "\n".join(lines)[-100_000:]
            )
            raise
        if not cached:
            self.store.set_build_status(
                info.build_hash, BuildStatus.READY.value, "\n".join(lines)[-100_000:]
            )
        return python
