"""Endpoints and deployments: create, update, route, watch.

``DeploymentService`` answers the SDK's endpoint calls in-process (its HTTP twin
is ``sdk/http/endpoints.py``); the server's ``/api/v1/.../endpoints`` routes call
the same methods. A model version it serves cannot be unregistered. Replicas
are run by the supervisor (``services/supervisor.py``), which reads what
these methods write. A deployment's spec keeps everything a replica needs:
its kind (``mlflow`` or ``script``), the entry script and the stored code
archive, the environment, replica count, probes, request settings and the
input/output schema for the endpoint's OpenAPI.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from cumulo.compute.gpus import machine_capacity
from cumulo.core import validation
from cumulo.core.deployments import (
    MAX_DEPLOYMENTS,
    MAX_REPLICAS,
    DeploymentInfo,
    EndpointInfo,
    auth_mode,
    code_archive,
    code_id,
    code_prefix,
    deployment_name,
    endpoint_name,
    traffic_split,
)
from cumulo.core.entities import ModelVersionInfo
from cumulo.core.errors import Conflict, InvalidInput, NotFound
from cumulo.core.jobs import EnvironmentSpec, Resources
from cumulo.core.settings import Settings
from cumulo.services.registry import RegistryService
from cumulo.serving.metrics import merge, percentiles
from cumulo.store.artifacts import ArtifactStore
from cumulo.store.deployments import DeploymentStore

MAX_CODE_BYTES = 300 * 1024 * 1024
MAX_LOG_LINES = 10_000
_ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Settings a deployment takes, with their defaults (DeploymentConfig mirrors them).
SPEC_DEFAULTS: dict[str, Any] = {
    "replicas": 1,
    "resources": None,
    "compute_target": None,
    "environment": None,
    "environment_variables": {},
    "entry_script": None,
    "code": None,
    "request_timeout_ms": 60_000,
    "request_logging": 0.0,
    "liveness_period_s": 5.0,
    "liveness_timeout_s": 2.0,
    "failure_threshold": 3,
    "startup_timeout_s": 600.0,
    "sample_input": None,
    "sample_output": None,
}


class DeploymentService:
    def __init__(
        self,
        store: DeploymentStore,
        registry: RegistryService,
        artifacts: ArtifactStore,
        settings: Settings,
    ) -> None:
        self.store = store
        self.registry = registry
        self.artifacts = artifacts
        self.settings = settings
        self.listeners: list[Any] = []  # called after a change, so a supervisor wakes up
        # Called before metrics are read, so what a router here counted is stored first.
        self.before_reading: list[Callable[[], None]] = []
        registry.unregister_guards.append(self._refuse_if_served)

    def _refuse_if_served(self, workspace: str, name: str, version: int) -> None:
        for ep in self.list_endpoints(workspace):
            for dep in ep.deployments:
                if any(m["name"] == name and m["version"] == version for m in dep.models):
                    raise Conflict(
                        f"Version {version} of {name!r} is served by endpoint {ep.name!r} "
                        f"(deployment {dep.name!r}); delete or update that deployment first."
                    )

    def _read_counts(self) -> None:
        for flush in list(self.before_reading):
            flush()

    def _changed(self) -> None:
        for listener in list(self.listeners):
            listener()

    # -------------------------------------------------------------- endpoints
    def create_endpoint(
        self,
        workspace: str,
        name: str,
        auth: str = "key",
        description: str = "",
        tags: dict[str, Any] | None = None,
    ) -> EndpointInfo:
        return self.store.create_endpoint(
            workspace,
            endpoint_name(name),
            auth_mode(auth),
            validation.text_value(description or "", 10_000, "Description"),
            {validation.key(k, "tag"): validation.tag_value(v) for k, v in (tags or {}).items()},
        )

    def get_endpoint(self, workspace: str, name: str) -> EndpointInfo:
        return self.store.get_endpoint(workspace, name)

    def list_endpoints(self, workspace: str) -> list[EndpointInfo]:
        return self.store.list_endpoints(workspace)

    def update_endpoint(
        self,
        workspace: str,
        name: str,
        traffic: dict[str, Any] | None = None,
        mirror_traffic: dict[str, Any] | None = None,
        auth: str | None = None,
        description: str | None = None,
        tags: dict[str, Any] | None = None,
    ) -> EndpointInfo:
        current = self.store.get_endpoint(workspace, name)
        names = [d.name for d in current.deployments]
        info = self.store.update_endpoint(
            workspace,
            name,
            traffic=None if traffic is None else traffic_split(traffic, names),
            mirror_traffic=(
                None if mirror_traffic is None else traffic_split(mirror_traffic, names, "mirror")
            ),
            auth_mode=None if auth is None else auth_mode(auth),
            description=description,
            tags=(
                None
                if tags is None
                else {validation.key(k, "tag"): validation.tag_value(v) for k, v in tags.items()}
            ),
        )
        self._changed()
        return info

    def delete_endpoint(self, workspace: str, name: str) -> None:
        self.store.delete_endpoint(workspace, name)
        self._changed()

    def get_keys(self, workspace: str, name: str) -> dict[str, str]:
        primary, secondary = self.store.get_keys(workspace, name)
        return {"primary": primary, "secondary": secondary}

    def regenerate_key(self, workspace: str, name: str, which: str = "primary") -> dict[str, str]:
        which = str(which).lower()
        if which not in ("primary", "secondary"):
            raise InvalidInput(f"Regenerate the 'primary' or the 'secondary' key, not {which!r}.")
        self.store.update_endpoint(workspace, name, regenerate=which)
        self._changed()  # routers here forget the old key now; others within a second
        return self.get_keys(workspace, name)

    # ------------------------------------------------------------------ code
    def upload_code(self, workspace: str, endpoint: str, stream: IO[bytes]) -> str:
        """Store a zip of the scoring code (content-addressed); returns its id.

        A deployment names the code by this id only: the server finds it under
        this endpoint, so no deployment can reach another endpoint's code.
        """
        self.store.get_endpoint(workspace, endpoint)
        with tempfile.NamedTemporaryFile() as tmp:
            digest = hashlib.sha256()
            size = 0
            while chunk := stream.read(1024 * 1024):
                size += len(chunk)
                if size > MAX_CODE_BYTES:
                    raise InvalidInput(
                        f"The scoring code is over {MAX_CODE_BYTES // 2**20} MiB; keep models "
                        "in the registry and data out of the source directory."
                    )
                digest.update(chunk)
                tmp.write(chunk)
            tmp.flush()
            tmp.seek(0)
            found = digest.hexdigest()[:32]
            prefix = code_prefix(workspace, endpoint)
            if not self.artifacts.exists(prefix, code_archive(found)):
                self.artifacts.put_stream(prefix, code_archive(found), tmp)
        return found

    # ----------------------------------------------------------- deployments
    def create_deployment(
        self,
        workspace: str,
        endpoint: str,
        name: str,
        models: list[dict[str, Any]],
        config: dict[str, Any] | None = None,
    ) -> DeploymentInfo:
        current = self.store.get_endpoint(workspace, endpoint)
        if len(current.deployments) >= MAX_DEPLOYMENTS:
            raise InvalidInput(f"An endpoint holds at most {MAX_DEPLOYMENTS} deployments.")
        resolved, kind, spec = self._spec(workspace, endpoint, models, config or {})
        info = self.store.create_deployment(
            workspace, endpoint, deployment_name(name), kind, resolved, spec
        )
        if not current.traffic:  # the first deployment takes all the traffic
            self.store.update_endpoint(workspace, endpoint, traffic={info.name: 100})
        self._changed()
        return info

    def update_deployment(
        self,
        workspace: str,
        endpoint: str,
        name: str,
        models: list[dict[str, Any]] | None = None,
        config: dict[str, Any] | None = None,
    ) -> DeploymentInfo:
        """Replace the deployment's replicas with a new version of it, one at a time."""
        old = self.store.get_deployment(workspace, endpoint, name)
        merged = {k: v for k, v in old.spec.items() if k in SPEC_DEFAULTS}
        merged.update(config or {})
        wanted = models if models is not None else old.models
        resolved, kind, spec = self._spec(workspace, endpoint, wanted, merged)
        info = self.store.update_deployment(workspace, endpoint, name, kind, resolved, spec)
        self._changed()
        return info

    def delete_deployment(self, workspace: str, endpoint: str, name: str) -> None:
        self.store.delete_deployment(workspace, endpoint, name)
        self._changed()

    def get_deployment(self, workspace: str, endpoint: str, name: str) -> DeploymentInfo:
        return self.store.get_deployment(workspace, endpoint, name)

    def _spec(
        self, workspace: str, endpoint: str, models: list[dict[str, Any]], config: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
        unknown = sorted(set(config) - set(SPEC_DEFAULTS))
        if unknown:
            raise InvalidInput(
                f"Unknown deployment settings {unknown}; known: {sorted(SPEC_DEFAULTS)}."
            )
        spec = {**SPEC_DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
        replicas = spec["replicas"]
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise InvalidInput(f"replicas must be a whole number, got {replicas!r}.")
        if not 1 <= replicas <= MAX_REPLICAS:
            raise InvalidInput(f"replicas must be between 1 and {MAX_REPLICAS}, got {replicas}.")
        rate = spec["request_logging"]
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise InvalidInput(f"request_logging is a sampling rate from 0 to 1, got {rate!r}.")
        timeout = spec["request_timeout_ms"]
        if not isinstance(timeout, int) or not 100 <= timeout <= 3_600_000:
            raise InvalidInput("request_timeout_ms must be between 100 and 3,600,000.")
        for key, low, high in (
            ("liveness_period_s", 0.1, 3600.0),
            ("liveness_timeout_s", 0.1, 600.0),
            ("failure_threshold", 1, 100),
            ("startup_timeout_s", 1.0, 86_400.0),
        ):
            value = spec[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidInput(f"{key} must be a number, got {value!r}.")
            if not low <= value <= high:
                raise InvalidInput(f"{key} must be between {low:g} and {high:g}, got {value}.")
        if spec["environment"] is not None:
            env_spec = spec["environment"]
            if not isinstance(env_spec, dict) or not isinstance(env_spec.get("spec"), dict):
                raise InvalidInput("environment is {'name': ..., 'spec': {...}} (an Environment).")
            EnvironmentSpec.parse(env_spec["spec"])  # says what is wrong with it
        if spec["compute_target"] is not None and not isinstance(spec["compute_target"], str):
            raise InvalidInput("compute_target is the name of a Ray cluster target.")
        spec["resources"] = self._resources(spec["resources"], spec["compute_target"])
        env = spec["environment_variables"] or {}
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and _ENV_VAR_RE.match(k) and isinstance(v, str)
            for k, v in env.items()
        ):
            raise InvalidInput("environment_variables maps variable names to strings.")
        if spec["code"] is not None:
            spec["code"] = self._code(workspace, endpoint, spec["code"])
        versions = [self._version(workspace, m) for m in models]
        if not versions and not spec["entry_script"]:
            raise InvalidInput("Deploy at least one registered model, or an entry script.")
        if spec["entry_script"]:
            kind = "script"
            if spec["code"] is None:
                raise InvalidInput(
                    "An entry script needs its source directory: give "
                    "InferenceConfig(entry_script=..., source_directory=...)."
                )
            validation.artifact_path(str(spec["entry_script"]))
        else:
            kind = "mlflow"
            if len(versions) != 1 or not versions[0].flavors:
                found = ", ".join(f"{v.name}:{v.version}" for v in versions)
                raise InvalidInput(
                    f"Without an entry script, deploy exactly one MLflow model (a folder with an "
                    f"MLmodel file); got {found}. For other models give "
                    "InferenceConfig(entry_script='score.py', source_directory=...)."
                )
            if "python_function" not in versions[0].flavors:
                raise InvalidInput(
                    f"Model {versions[0].name}:{versions[0].version} has no python_function "
                    "flavor, so it cannot be served without an entry script."
                )
        spec["kind"] = kind
        spec["signature"] = versions[0].signature if versions and kind == "mlflow" else None
        resolved = [{"name": v.name, "version": v.version} for v in versions]
        return resolved, kind, spec

    def _resources(self, value: Any, compute_target: str | None) -> dict[str, Any] | None:
        """What each replica asks for; refused when this machine can never give it."""
        if value is None:
            return None
        wanted = Resources.parse(value)
        if compute_target is None:  # replicas run on this machine (a Ray target: Ray places)
            why = machine_capacity({}, self.settings).refusal(wanted)
            if why:
                raise InvalidInput(
                    f"Each replica asks for {why}: this machine can never run it. "
                    "Ask for less, or serve it on a Ray cluster target that has more."
                )
        return wanted.to_dict()

    def _code(self, workspace: str, endpoint: str, reference: Any) -> str:
        """The id of code uploaded to this endpoint (refused if it names anything else)."""
        found = code_id(reference, workspace, endpoint)
        if not self.artifacts.exists(code_prefix(workspace, endpoint), code_archive(found)):
            raise InvalidInput(
                f"No code {found} was uploaded to endpoint {endpoint!r}; upload the source "
                "directory to this endpoint first (upload_code)."
            )
        return found

    def _version(self, workspace: str, ref: dict[str, Any]) -> ModelVersionInfo:
        if not isinstance(ref, dict) or not ref.get("name"):
            raise InvalidInput("Each model is given as {'name': ..., 'version': ...}.")
        found = self.registry.resolve_version(
            workspace, ref["name"], ref.get("version"), ref.get("alias")
        )
        if found.status != "READY" or not found.storage_prefix:
            raise InvalidInput(
                f"Model {found.name}:{found.version} is {found.status} and has no files in this "
                "workspace; register it again."
            )
        return found

    # ------------------------------------------------------------ watching
    def get_logs(
        self, workspace: str, endpoint: str, deployment: str | None = None, tail: int = 200
    ) -> str:
        """The last ``tail`` lines of each replica's log (replicas on this machine)."""
        if not 1 <= tail <= MAX_LOG_LINES:
            raise InvalidInput(f"tail must be between 1 and {MAX_LOG_LINES}.")
        logs = self.store.replica_logs(workspace, endpoint)
        if deployment is not None and deployment not in logs:
            self.store.get_deployment(workspace, endpoint, deployment)  # NotFound if unknown
        out: list[str] = []
        for name, files in sorted(logs.items()):
            if deployment is not None and name != deployment:
                continue
            seen: set[str] = set()
            for slot, generation, path in files:
                if path in seen:
                    continue
                seen.add(path)
                out.append(f"==> {name} replica {slot} (version {generation}) <==")
                out.extend(_tail_lines(Path(path), tail))
        return "\n".join(out) + ("\n" if out else "")

    def get_metrics(
        self,
        workspace: str,
        endpoint: str,
        deployment: str | None = None,
        minutes: int = 60,
    ) -> list[dict[str, Any]]:
        """Per deployment and minute: requests, errors, mean and p50/p95/p99 latency (ms)."""
        if not 1 <= minutes <= 60 * 24 * 31:
            raise InvalidInput("minutes must be between 1 and 44,640 (31 days).")
        self._read_counts()
        ids = self.store.deployment_ids(workspace, endpoint)
        if deployment is not None:
            if deployment not in ids:
                raise NotFound(f"Endpoint {endpoint!r} has no deployment {deployment!r}.")
            ids = {deployment: ids[deployment]}
        names = {v: k for k, v in ids.items()}
        since = (int(time.time() // 60) - minutes + 1) * 60_000
        grouped: dict[tuple[int, int], list[Any]] = {}
        for row in self.store.metrics(list(ids.values()), since):
            grouped.setdefault((row.deployment_id, row.minute), []).append(row)
        out = []
        for (dep_id, minute), rows in sorted(grouped.items(), key=lambda kv: kv[0][1]):
            hist = merge(json.loads(r.histogram) for r in rows)
            requests = sum(r.requests for r in rows)
            out.append(
                {
                    "deployment": names[dep_id],
                    "minute": minute,
                    "requests": requests,
                    "errors": sum(r.errors for r in rows),
                    "mean_ms": round(sum(r.latency_sum_ms for r in rows) / requests, 3)
                    if requests
                    else None,
                    **{f"{k}_ms": v for k, v in percentiles(hist).items()},
                }
            )
        return out

    def get_request_logs(
        self, workspace: str, endpoint: str, deployment: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Sampled requests and responses (see ``request_logging``), newest first."""
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000.")
        self._read_counts()
        ids = self.store.deployment_ids(workspace, endpoint)
        if deployment is not None:
            if deployment not in ids:
                raise NotFound(f"Endpoint {endpoint!r} has no deployment {deployment!r}.")
            ids = {deployment: ids[deployment]}
        names = {v: k for k, v in ids.items()}
        return [
            {
                "deployment": names[r.deployment_id],
                "at": r.at,
                "status": r.status,
                "latency_ms": round(r.latency_ms, 3),
                "request": r.request,
                "response": r.response,
            }
            for r in self.store.request_logs(list(ids.values()), limit)
        ]


def _tail_lines(path: Path, lines: int) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - max(64 * 1024, lines * 400)))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]
