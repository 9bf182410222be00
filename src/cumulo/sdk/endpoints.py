"""``Endpoint``: a stable scoring URL with deployments (blue, green...) and a traffic split.

``InferenceConfig`` and ``DeploymentConfig`` say how a deployment answers and runs.
"""

from __future__ import annotations

import builtins
import os
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson

from cumulo.core.deployments import DeploymentInfo, DeploymentState, EndpointInfo, ReplicaState
from cumulo.core.errors import InvalidInput, InvalidState, NotFound, Unavailable, from_code
from cumulo.core.jobs import Resources
from cumulo.sdk import display, v1
from cumulo.sdk.run import WorkspaceRef

# Never packed with the scoring code.
PROGRESS_S = 10.0  # a waiting deployment's progress line at least this often
_SKIP_DIRS = {".git", "__pycache__", ".venv", "venv", ".mypy_cache", ".pytest_cache", ".cumulo"}


@runtime_checkable
class ModelRef(Protocol):
    """A model version to serve: a ``cumulo.Model``."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...


class InferenceConfig:
    """How to answer requests: an entry script, or nothing for an MLflow model.

    The entry script defines ``init()`` (load the model, found through
    ``os.environ["CUMULO_MODEL_DIR"]`` or ``Model.get_model_path(name)``) and
    ``run(raw_data)`` (the request body as a string; return anything JSON can
    carry; raise ``cumulo.InvalidInput`` for a bad request, which answers 400).
    ``sample_input``/``sample_output`` describe the endpoint's OpenAPI schema.

    Example::

        InferenceConfig(entry_script="score.py", source_directory="./serve",
                        sample_input={"data": [[1.0, 2.0]]})
    """

    @v1.arguments(
        "InferenceConfig",
        {
            **{
                k: "environment=Environment(name, pip_requirements=[...]) (there is no conda "
                "and there are no images here)"
                for k in (
                    "runtime",
                    "conda_file",
                    "base_image",
                    "base_image_registry",
                    "extra_docker_file_steps",
                    "cuda_version",
                )
            },
            "enable_gpu": "DeploymentConfig(resources={'gpus': 1})",
        },
    )
    def __init__(
        self,
        entry_script: str | None = None,
        source_directory: str | Path | None = None,
        environment: Any = None,
        sample_input: Any = None,
        sample_output: Any = None,
    ) -> None:
        if entry_script is not None and Path(entry_script).is_absolute():
            raise InvalidInput("entry_script is a path inside source_directory, not absolute.")
        self.entry_script = entry_script
        self.source_directory = Path(source_directory) if source_directory else None
        if entry_script and self.source_directory is None:
            self.source_directory = Path(".")
        self.environment = environment
        self.sample_input = sample_input
        self.sample_output = sample_output

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "entry_script": self.entry_script,
            "sample_input": self.sample_input,
            "sample_output": self.sample_output,
        }
        env = self.environment
        if env is not None and env != "current":
            spec = getattr(env, "spec", None)
            if spec is None:
                raise InvalidInput(
                    "environment is an Environment (cumulo.Environment(...)) or 'current'."
                )
            out["environment"] = {"name": getattr(env, "name", ""), "spec": spec.to_dict()}
        return out

    def __repr__(self) -> str:
        return (
            f"InferenceConfig(entry_script={self.entry_script!r}, "
            f"source_directory={str(self.source_directory) if self.source_directory else None!r})"
        )


class DeploymentConfig:
    """How to run a deployment: replicas, auth, where, timeouts, probes, request logging.

    ``auth``: ``"key"`` (primary/secondary keys), ``"token"`` (workspace tokens)
    or ``"none"``. ``compute_target``: ``None`` for local replica processes, or
    the name of a Ray cluster target to serve with Ray Serve. ``request_logging``:
    the share of requests (0 to 1) whose body and answer are kept. ``resources``:
    what each replica asks for (``Resources(gpus=1)`` or ``{"gpus": 1}``): on this
    machine each replica is given its own GPUs (``CUDA_VISIBLE_DEVICES``), never one
    a job or another replica holds; more than the machine has is refused.

    Example::

        DeploymentConfig(replicas=2, auth="key", request_logging=0.1)
        DeploymentConfig(resources=Resources(gpus=1))
    """

    @v1.arguments(
        "DeploymentConfig",
        {
            "cpu_cores": "resources={'cpus': ...}",
            "memory_gb": "resources={'memory_mb': ...}",
            "gpu_cores": "resources={'gpus': ...}",
            "num_replicas": "replicas=",
            "auth_enabled": "auth='key' (the default) or auth='none'",
            "token_auth_enabled": "auth='token'",
            "autoscale_enabled": "replicas= (a fixed number of replicas)",
            "tags": "the endpoint's name and the model version's tags",
            "description": "the endpoint's name and the model version's tags",
        },
    )
    def __init__(
        self,
        replicas: int = 1,
        auth: str = "key",
        compute_target: str | None = None,
        request_timeout_ms: int = 60_000,
        request_logging: float = 0.0,
        environment_variables: dict[str, str] | None = None,
        liveness_period_s: float = 5.0,
        liveness_timeout_s: float = 2.0,
        failure_threshold: int = 3,
        startup_timeout_s: float = 600.0,
        resources: Resources | dict[str, Any] | None = None,
    ) -> None:
        self.replicas = replicas
        self.auth = auth
        self.compute_target = compute_target
        self.request_timeout_ms = request_timeout_ms
        self.request_logging = request_logging
        self.environment_variables = dict(environment_variables or {})
        self.liveness_period_s = liveness_period_s
        self.liveness_timeout_s = liveness_timeout_s
        self.failure_threshold = failure_threshold
        self.startup_timeout_s = startup_timeout_s
        self.resources = None if resources is None else Resources.parse(resources).to_dict()

    def config(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "auth"}

    def __repr__(self) -> str:
        return (
            f"DeploymentConfig(replicas={self.replicas}, auth={self.auth!r}, "
            f"compute_target={self.compute_target!r})"
        )


class Endpoint:
    """An endpoint of a workspace: where clients send scoring requests.

    Example::

        ep = Model.deploy(ws, "digits", [model])            # deployment "blue"
        ep.run({"dataframe_split": {"columns": [...], "data": [[...]]}})
        ep.add_deployment("green", [new_model])
        ep.update_traffic({"blue": 90, "green": 10})
        primary, secondary = ep.get_keys()
        print(ep.scoring_uri)
    """

    def __init__(self, workspace: WorkspaceRef, name: str, *, _info: EndpointInfo | None = None):
        self.workspace = workspace
        self._transport = workspace.transport
        self._api = workspace.transport.endpoints
        self._info = _info or self._api.get_endpoint(workspace.name, name)
        self._base_url: str | None = None
        self._key: str | None = None  # the primary key, read once for run()

    @classmethod
    def list(cls, workspace: WorkspaceRef) -> builtins.list[Endpoint]:
        api = workspace.transport.endpoints
        return [cls(workspace, e.name, _info=e) for e in api.list_endpoints(workspace.name)]

    @classmethod
    def create(
        cls, workspace: WorkspaceRef, name: str, auth: str = "key", description: str = ""
    ) -> Endpoint:
        """An endpoint without deployments yet (add them with ``add_deployment``)."""
        info = workspace.transport.endpoints.create_endpoint(
            workspace.name, name, auth, description
        )
        return cls(workspace, name, _info=info)

    # ------------------------------------------------------------ attributes
    @property
    def name(self) -> str:
        return self._info.name

    @property
    def info(self) -> EndpointInfo:
        return self._info

    @property
    def auth(self) -> str:
        return self._info.auth_mode

    @property
    def traffic(self) -> dict[str, int]:
        return dict(self.refresh()._info.traffic)

    @property
    def deployments(self) -> dict[str, DeploymentInfo]:
        return {d.name: d for d in self.refresh()._info.deployments}

    def get_deployment(self, name: str) -> DeploymentInfo | None:
        return self.refresh()._info.deployment(name)

    @property
    def state(self) -> str:
        """Healthy when every deployment is; else the worst deployment state."""
        states = [d.state for d in self.refresh()._info.deployments]
        for bad in ("Failed", "Unhealthy", "Updating", "Creating"):
            if bad in states:
                return bad
        return "Healthy" if states else "NoDeployments"

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            if self.workspace.url:
                self._base_url = self.workspace.url
            else:
                self._base_url = self._transport.serving_url()
        return self._base_url

    @property
    def scoring_uri(self) -> str:
        """The URL clients POST to (an MLflow model takes ``/invocations`` bodies)."""
        return self.base_url + self._info.scoring_path

    @property
    def swagger_uri(self) -> str:
        return self.base_url + self._info.swagger_path

    def refresh(self) -> Endpoint:
        self._info = self._api.get_endpoint(self.workspace.name, self.name)
        return self

    def _announce(self) -> None:
        if not self.workspace.url:
            print(
                f"Endpoint {self.name!r} is served by this process (embedded workspace) at "
                f"{self.scoring_uri}; it stops when this process exits. Run `cumulo server` "
                "and connect to it to host endpoints that outlive the client.",
                file=sys.stderr,
            )

    # ----------------------------------------------------------- deployments
    def add_deployment(
        self,
        name: str,
        models: Sequence[ModelRef],
        inference_config: InferenceConfig | None = None,
        deployment_config: DeploymentConfig | None = None,
        wait: bool = True,
        timeout: float = 300.0,
        show_output: bool = True,
    ) -> DeploymentInfo:
        """Add a deployment (it takes no traffic unless it is the first one).

        While it waits it prints the deployment's progress (``show_output``).
        """
        config = self._config(inference_config, deployment_config)
        info = self._api.create_deployment(
            self.workspace.name, self.name, name, _refs(models), config
        )
        self._transport.serving_url()  # an embedded home serves it from this process
        if wait:
            info = self.wait_for_deployment(name, timeout=timeout, show_output=show_output)
        self.refresh()
        return info

    def update(
        self,
        deployment: str | None = None,
        models: Sequence[ModelRef] | None = None,
        inference_config: InferenceConfig | None = None,
        deployment_config: DeploymentConfig | None = None,
        description: str | None = None,
        auth: str | None = None,
        wait: bool = True,
        timeout: float = 300.0,
    ) -> Endpoint:
        """Change the endpoint, or roll a deployment to new models/settings.

        A rolling update starts each new replica next to an old one and stops
        the old one only when the new one is ready: no request is dropped.
        """
        if description is not None or auth is not None:
            self._info = self._api.update_endpoint(
                self.workspace.name, self.name, description=description, auth=auth
            )
        if models is None and inference_config is None and deployment_config is None:
            return self
        name = deployment or self._main_deployment()
        config = None
        if inference_config is not None or deployment_config is not None:
            config = self._config(inference_config, deployment_config, partial=True)
        self._api.update_deployment(
            self.workspace.name,
            self.name,
            name,
            None if models is None else _refs(models),
            config,
        )
        self._transport.serving_url()  # an embedded home serves it from this process
        if wait:
            self.wait_for_deployment(name, timeout=timeout)
        return self.refresh()

    def _main_deployment(self) -> str:
        info = self.refresh()._info
        if not info.deployments:
            raise InvalidState(f"Endpoint {self.name!r} has no deployments; add one first.")
        traffic = info.traffic
        return max(info.deployments, key=lambda d: traffic.get(d.name, 0)).name

    def _config(
        self,
        inference: InferenceConfig | None,
        deployment: DeploymentConfig | None,
        partial: bool = False,
    ) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if deployment is not None or not partial:
            config.update((deployment or DeploymentConfig()).config())
        if inference is not None:
            config.update({k: v for k, v in inference.config().items() if v is not None})
            if inference.entry_script:
                config["code"] = self._upload_code(inference)
        return config

    def _upload_code(self, inference: InferenceConfig) -> str:
        source = inference.source_directory or Path(".")
        assert inference.entry_script is not None
        if not (source / inference.entry_script).is_file():
            raise NotFound(f"Entry script {str(source / inference.entry_script)!r} does not exist.")
        with tempfile.TemporaryFile() as tmp:
            _zip_folder(Path(source), tmp)
            tmp.seek(0)
            return self._api.upload_code(self.workspace.name, self.name, tmp)

    def update_traffic(self, traffic: dict[str, int]) -> Endpoint:
        """Split traffic between deployments in whole percents adding up to 100."""
        self._info = self._api.update_endpoint(self.workspace.name, self.name, traffic=traffic)
        return self

    def mirror_traffic(self, mirror: dict[str, int]) -> Endpoint:
        """Copy a share of requests (at most 50 %) to one deployment; its answers are dropped."""
        self._info = self._api.update_endpoint(
            self.workspace.name, self.name, mirror_traffic=mirror
        )
        return self

    def delete_deployment(self, name: str) -> None:
        self._api.delete_deployment(self.workspace.name, self.name, name)
        self.refresh()

    def wait_for_deployment(
        self, deployment: str | None = None, timeout: float = 300.0, show_output: bool = False
    ) -> DeploymentInfo:
        """Wait until the deployment is Healthy; a failed ``init()`` raises with its traceback.

        With ``show_output`` each change (state, replicas ready) is printed as it
        happens, and a line every ``PROGRESS_S`` seconds while nothing changes.
        """
        name = deployment or self._main_deployment()
        started = time.monotonic()
        deadline = started + timeout
        last = ""
        said = started
        while True:
            found = self.refresh()._info.deployment(name)
            if found is None:
                raise NotFound(f"Endpoint {self.name!r} has no deployment {name!r}.")
            ready = sum(1 for r in found.replica_states if r.state == ReplicaState.READY)
            now_text = f"{found.state}, {ready} of {found.replicas} replica(s) ready"
            now = time.monotonic()
            if show_output and (now_text != last or now - said >= PROGRESS_S):
                print(
                    f"{self.name}/{name}: {now_text} ({now - started:.0f}s)",
                    file=sys.stderr,
                    flush=True,
                )
                last, said = now_text, now
            if found.state == DeploymentState.HEALTHY:
                return found
            if found.state == DeploymentState.FAILED:
                error = found.error or {}
                detail = error.get("traceback") or ""
                raise InvalidState(
                    f"Deployment {name!r} of endpoint {self.name!r} failed: "
                    f"{error.get('message', 'unknown error')}\n{detail}".rstrip(),
                    traceback=detail,
                )
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"Deployment {name!r} of endpoint {self.name!r} is still {found.state} after "
                    f"{timeout:g} s; see endpoint.get_logs({name!r})."
                )
            time.sleep(0.1)

    # --------------------------------------------------------------- scoring
    def get_keys(self) -> tuple[str, str]:
        keys = self._api.get_keys(self.workspace.name, self.name)
        return keys["primary"], keys["secondary"]

    def regenerate_key(self, key_type: str = "primary") -> tuple[str, str]:
        keys = self._api.regenerate_key(self.workspace.name, self.name, key_type.lower())
        self._key = None
        return keys["primary"], keys["secondary"]

    def run(
        self,
        input_data: Any,
        deployment: str | None = None,
        timeout: float = 60.0,
        key: str | None = None,
    ) -> Any:
        """Send one scoring request with this endpoint's key and return the parsed answer.

        A dict or list is sent as JSON, a string or bytes as they are, a pandas
        DataFrame as MLflow's ``dataframe_split``.
        """
        if hasattr(input_data, "to_dict") and hasattr(input_data, "columns"):
            input_data = {"dataframe_split": input_data.to_dict(orient="split")}
            input_data["dataframe_split"].pop("index", None)
        if isinstance(input_data, (bytes, str)):
            body = input_data.encode() if isinstance(input_data, str) else input_data
        else:
            body = orjson.dumps(input_data, option=orjson.OPT_SERIALIZE_NUMPY)
        headers = {"content-type": "application/json"}
        if self._info.auth_mode == "key":
            if key is None and self._key is None:
                self._key = self.get_keys()[0]
            headers["authorization"] = f"Bearer {key or self._key}"
        elif self._info.auth_mode == "token":
            token = key or getattr(self.workspace, "_token", None)
            if not token:
                raise InvalidInput(
                    "This endpoint takes workspace tokens: pass key=<token> or connect with one."
                )
            headers["authorization"] = f"Bearer {token}"
        if deployment:
            headers["cumulo-model-deployment"] = deployment
        import httpx

        try:
            response = httpx.post(self.scoring_uri, content=body, headers=headers, timeout=timeout)
            if response.status_code == 401 and key is None and self._info.auth_mode == "key":
                # The key was regenerated since we read it: read it again, once.
                self._key = self.get_keys()[0]
                headers["authorization"] = f"Bearer {self._key}"
                response = httpx.post(
                    self.scoring_uri, content=body, headers=headers, timeout=timeout
                )
        except httpx.TransportError as exc:
            raise Unavailable(
                f"Cannot reach endpoint {self.name!r} at {self.scoring_uri}: {exc}"
            ) from exc
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            payload = response.text
        if response.status_code >= 400:
            code = payload.get("error_code", "") if isinstance(payload, dict) else ""
            message = (
                payload.get("message", response.text) if isinstance(payload, dict) else payload
            )
            error = from_code(_SDK_CODES.get(code, code), f"{response.status_code}: {message}")
            error.details["status_code"] = response.status_code
            raise error
        return payload

    # --------------------------------------------------------------- watching
    def get_logs(self, deployment: str | None = None, tail: int = 200) -> str:
        """The last lines of each replica's log (its ``init()`` traceback included)."""
        return self._api.get_logs(self.workspace.name, self.name, deployment, tail)

    def get_metrics(
        self, deployment: str | None = None, minutes: int = 60
    ) -> builtins.list[dict[str, Any]]:
        """Per deployment and minute: requests, errors, mean and p50/p95/p99 latency."""
        return self._api.get_metrics(self.workspace.name, self.name, deployment, minutes)

    def get_request_logs(
        self, deployment: str | None = None, limit: int = 100
    ) -> builtins.list[dict[str, Any]]:
        """Sampled requests and answers (``DeploymentConfig(request_logging=0.1)``)."""
        return self._api.get_request_logs(self.workspace.name, self.name, deployment, limit)

    def delete(self) -> None:
        """Delete the endpoint, its deployments and their replicas."""
        self._api.delete_endpoint(self.workspace.name, self.name)

    # ---------------------------------------------------------------- display
    def __repr__(self) -> str:
        return f"Endpoint(name={self.name!r}, traffic={self._info.traffic})"

    def _repr_html_(self) -> str:
        info = self.refresh()._info
        rows = [
            (
                d.name,
                d.state,
                ", ".join(f"{m['name']}:{m['version']}" for m in d.models) or d.kind,
                f"{d.ready_replicas}/{d.replicas}",
                f"{info.traffic.get(d.name, 0)}%",
            )
            for d in info.deployments
        ]
        body = display.table(["deployment", "state", "models", "ready", "traffic"], rows)
        return display.titled(f"Endpoint {self.name} — {self.scoring_uri}", body)


# The scoring server speaks MLflow's codes; map them onto ours.
_SDK_CODES = {"BAD_REQUEST": "INVALID_PARAMETER_VALUE", "TIMEOUT": "TEMPORARILY_UNAVAILABLE"}


def _refs(models: Sequence[ModelRef]) -> builtins.list[dict[str, Any]]:
    out = []
    for m in models:
        if isinstance(m, ModelRef):
            out.append({"name": m.name, "version": m.version})
        elif isinstance(m, dict) and m.get("name"):
            out.append(dict(m))
        else:
            raise InvalidInput(f"Deploy Model objects (Model(ws, name, version)), not {m!r}.")
    return out


def _zip_folder(source: Path, out: Any) -> None:
    root = source.resolve()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
            for file in sorted(files):
                path = Path(folder) / file
                if path.is_symlink() and root not in path.resolve().parents:
                    continue  # a link out of the folder is not part of the code
                zf.write(path, path.relative_to(root).as_posix())
