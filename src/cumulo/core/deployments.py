"""Endpoints, deployments and replicas: types and value rules.

An *endpoint* is a stable name and scoring URL in a workspace; it holds one or
more *deployments* (``blue``, ``green``...) and a traffic split between them.
A deployment serves one model version (or an entry script over several) with
``replicas`` identical processes. Updating a deployment raises its
``generation``: the supervisor replaces replicas of older generations one at
a time, and routes only to replicas that answered their readiness check.

Limits: endpoint names 3-32 characters, deployment names 1-32, of lowercase
letters, digits and ``-``, starting with a letter; at most 20 deployments per
endpoint and 20 replicas per deployment; traffic in whole percents adding up
to 100 (or 0 before any deployment takes traffic).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import posixpath
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

from cumulo.core.entities import Record
from cumulo.core.errors import InvalidInput

MAX_DEPLOYMENTS = 20
MAX_REPLICAS = 20
AUTH_MODES = ("key", "token", "none")
# Each replica answers only calls that carry its secret in this header (the router's,
# the supervisor's probes); it reads the secret from this environment variable.
REPLICA_SECRET_HEADER = "cumulo-replica-secret"
REPLICA_SECRET_ENV = "CUMULO_REPLICA_SECRET"

_CODE_ID_RE = re.compile(r"^[0-9a-f]{32}$")

_ENDPOINT_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
_DEPLOYMENT_RE = re.compile(r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$")


class DeploymentState(StrEnum):
    CREATING = "Creating"  # no replica of it is ready yet
    UPDATING = "Updating"  # replicas of an older generation are being replaced
    HEALTHY = "Healthy"  # every replica of the current generation is ready
    UNHEALTHY = "Unhealthy"  # some replicas crashed or fail their checks; being restarted
    FAILED = "Failed"  # the model or init() cannot load; see the error and traceback


class ReplicaState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"  # replaced: no new requests, finishing the ones in flight
    CRASHED = "crashed"  # exited or failed its liveness check; restarts after a backoff
    FAILED = "failed"  # its init() failed


def endpoint_name(name: Any) -> str:
    if not isinstance(name, str) or not _ENDPOINT_RE.match(name):
        raise InvalidInput(
            f"Invalid endpoint name {name!r}: use 3-32 lowercase letters, digits and '-', "
            "starting with a letter and not ending with '-'."
        )
    return name


def deployment_name(name: Any) -> str:
    if not isinstance(name, str) or not _DEPLOYMENT_RE.match(name):
        raise InvalidInput(
            f"Invalid deployment name {name!r}: use 1-32 lowercase letters, digits and '-', "
            "starting with a letter and not ending with '-'."
        )
    return name


def auth_mode(mode: Any) -> str:
    if mode not in AUTH_MODES:
        raise InvalidInput(f"Endpoint auth is one of {', '.join(AUTH_MODES)}, not {mode!r}.")
    return str(mode)


def traffic_split(traffic: Any, deployments: list[str], what: str = "traffic") -> dict[str, int]:
    """Whole percents per existing deployment, adding up to 100 (or all zero)."""
    if not isinstance(traffic, dict):
        raise InvalidInput(f"The {what} split is a dict of deployment name -> percent.")
    out: dict[str, int] = {}
    for name, value in traffic.items():
        if name not in deployments:
            raise InvalidInput(
                f"The {what} split names {name!r}, which is not a deployment of this endpoint "
                f"(it has {', '.join(deployments) or 'none'})."
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise InvalidInput(f"Traffic for {name!r} must be a whole percent, got {value!r}.")
        if not 0 <= value <= 100:
            raise InvalidInput(f"Traffic for {name!r} must be between 0 and 100, got {value}.")
        if value:
            out[name] = int(value)
    total = sum(out.values())
    if what == "traffic" and total not in (0, 100):
        raise InvalidInput(f"Traffic percents must add up to 100, they add up to {total}.")
    if what == "mirror" and (len(out) > 1 or total > 50):
        raise InvalidInput("Mirror traffic goes to one deployment, at most 50 percent.")
    return out


def code_prefix(workspace: str, endpoint: str) -> str:
    """Where the scoring code archives of one endpoint are stored."""
    return f"{workspace}/endpoints/{endpoint}/code"


def code_archive(code_id: str) -> str:
    return f"{code_id}.zip"


def code_id(reference: Any, workspace: str, endpoint: str) -> str:
    """The id of a code archive uploaded to this endpoint, from what a client sent.

    The id is what ``upload_code`` returns, and the stored path is always built
    from it inside this workspace and endpoint. A stored path (what older
    clients send) is taken only if it names an archive of this very endpoint:
    no '..', no absolute path, no backslash, checked after normalising.
    """
    if isinstance(reference, str) and _CODE_ID_RE.match(reference):
        return reference
    shown = repr(reference)[:300]
    refused = InvalidInput(
        f"code {shown} is not a code archive of endpoint {endpoint!r}: give the id that "
        "upload_code returned for this endpoint."
    )
    if not isinstance(reference, str) or not reference or len(reference) > 1000:
        raise refused
    if "\\" in reference or reference.startswith("/") or any(ord(c) < 32 for c in reference):
        raise refused
    if ".." in reference.split("/"):
        raise refused
    normal = posixpath.normpath(reference)
    prefix = code_prefix(workspace, endpoint) + "/"
    if not normal.startswith(prefix):
        raise refused
    name = normal[len(prefix) :]
    found = name.removesuffix(".zip")
    if name != code_archive(found) or not _CODE_ID_RE.match(found):
        raise refused
    return found


def replica_secret(deployment_secret: str, slot: int) -> str:
    """The secret replica ``slot`` of a deployment requires on every call.

    Derived from the deployment's own secret (kept server-side with the
    deployment), so each replica holds a different one and the router of any
    server process sharing the store can compute the one it must send.
    """
    if not deployment_secret:
        raise ValueError("A deployment's replicas need its secret.")
    message = f"replica-{slot}".encode()
    return hmac.new(deployment_secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ReplicaInfo(Record):
    slot: int
    generation: int
    state: str
    pid: int | None = None
    url: str | None = None
    restarts: int = 0
    error: str | None = None
    started_at: int | None = None
    ready_at: int | None = None

    def without_address(self) -> ReplicaInfo:
        """Its state without where it runs (for those who do not own the workspace)."""
        return dataclasses.replace(self, pid=None, url=None)


@dataclass(frozen=True)
class DeploymentInfo(Record):
    """One deployment of an endpoint, with what its replicas are doing now."""

    endpoint: str
    name: str
    kind: str  # "mlflow" | "script"
    models: list[dict[str, Any]]
    generation: int
    state: str
    created_at: int
    updated_at: int
    replicas: int = 1
    compute_target: str | None = None
    error: dict[str, Any] | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    replica_states: list[ReplicaInfo] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        data = dict(data)
        data["replica_states"] = [
            r if isinstance(r, ReplicaInfo) else ReplicaInfo.from_dict(r)
            for r in data.get("replica_states") or []
        ]
        return super().from_dict(data)

    def without_addresses(self) -> DeploymentInfo:
        return dataclasses.replace(
            self, replica_states=[r.without_address() for r in self.replica_states]
        )

    @property
    def ready_replicas(self) -> int:
        return sum(
            1
            for r in self.replica_states
            if r.state == ReplicaState.READY and r.generation == self.generation
        )


@dataclass(frozen=True)
class EndpointInfo(Record):
    workspace: str
    name: str
    auth_mode: str
    created_at: int
    updated_at: int
    description: str = ""
    traffic: dict[str, int] = field(default_factory=dict)
    mirror_traffic: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    deployments: list[DeploymentInfo] = field(default_factory=list)
    scoring_path: str = ""
    swagger_path: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        data = dict(data)
        data["deployments"] = [
            d if isinstance(d, DeploymentInfo) else DeploymentInfo.from_dict(d)
            for d in data.get("deployments") or []
        ]
        return super().from_dict(data)

    def without_addresses(self) -> EndpointInfo:
        """The endpoint with no replica's address or process id in it."""
        return dataclasses.replace(
            self, deployments=[d.without_addresses() for d in self.deployments]
        )

    def deployment(self, name: str) -> DeploymentInfo | None:
        return next((d for d in self.deployments if d.name == name), None)


def serving(endpoints: list[EndpointInfo]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """(model name, version) -> the deployments serving it, with their share of traffic."""
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for ep in endpoints:
        for dep in ep.deployments:
            for m in dep.models:
                out.setdefault((m["name"], int(m["version"])), []).append(
                    {
                        "endpoint": ep.name,
                        "deployment": dep.name,
                        "traffic": ep.traffic.get(dep.name, 0),
                        "state": dep.state,
                    }
                )
    return out


def scoring_path(workspace: str, endpoint: str) -> str:
    return f"/endpoints/{workspace}/{endpoint}/score"


def swagger_path(workspace: str, endpoint: str) -> str:
    return f"/endpoints/{workspace}/{endpoint}/swagger.json"
