"""``Model``: registered model versions, their files and lineage, and deploying them."""

from __future__ import annotations

import builtins
import getpass
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cumulo.core.entities import ModelVersionInfo, registration_tags
from cumulo.core.errors import AlreadyExists, InvalidInput, NotFound
from cumulo.sdk import display, v1
from cumulo.sdk.endpoints import DeploymentConfig, Endpoint, InferenceConfig
from cumulo.sdk.run import RunTracking, WorkspaceRef

if TYPE_CHECKING:
    from cumulo.sdk.transport import ModelClient


class Model(metaclass=v1.RefusesV1Names):
    """A version of a registered model: files, tags, aliases and the run that made it.

    Example::

        model = Model.register(ws, "outputs/model", "digits", tags={"data": "v2"})
        Model(ws, "digits")                      # the latest version
        Model(ws, "digits", alias="champion")    # the version an alias points to
        model.set_alias("champion")
        model.download("here")
    """

    _v1_names = v1.MODEL

    def __getattr__(self, name: str) -> Any:
        raise v1.refuse("Model", name, v1.MODEL)

    @v1.arguments("Model", {"id": "Model(ws, name, version) (a model's id is 'name:version')"})
    def __init__(
        self,
        workspace: WorkspaceRef,
        name: str,
        version: int | None = None,
        alias: str | None = None,
        *,
        _info: ModelVersionInfo | None = None,
    ) -> None:
        self.workspace = workspace
        if _info is None:
            if version is not None and alias is not None:
                raise InvalidInput("Give a version or an alias, not both.")
            _info = workspace.transport.models.resolve_version(workspace.name, name, version, alias)
        self._info = _info

    # -------------------------------------------------------------- register
    @classmethod
    @v1.arguments(
        "Model.register",
        {
            "model_framework_version": "tags={'framework_version': ...} beside model_framework=",
            "sample_input_dataset": "datasets=[('sample input', dataset)]",
            "sample_output_dataset": "datasets=[('sample output', dataset)]",
            "resource_configuration": "DeploymentConfig(resources=...) when deploying",
            "child_paths": "a folder as model_path, holding only the files to keep",
        },
    )
    def register(
        cls,
        workspace: WorkspaceRef,
        model_path: str | Path,
        model_name: str,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        description: str | None = None,
        model_framework: str | None = None,
        datasets: builtins.list[Any] | None = None,
    ) -> Model:
        """Upload a local file or folder as the next version of ``model_name``.

        A folder with an ``MLmodel`` file is an MLflow model: its flavors and
        signature are recorded and it can be deployed without an entry script.
        """
        path = Path(model_path)
        if not path.exists():
            raise NotFound(f"Model path {str(path)!r} does not exist.")
        info = workspace.transport.models.register_version(
            workspace.name,
            model_name,
            local_dir=str(path.resolve()),
            description=description or "",
            tags=registration_tags(tags, properties, model_framework, datasets),
            user=_user(),
        )
        return cls(workspace, model_name, _info=info)

    @classmethod
    def _from_run(
        cls,
        run: RunTracking,
        model_name: str,
        model_path: str,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        description: str | None = None,
        model_framework: str | None = None,
        datasets: builtins.list[Any] | None = None,
    ) -> Model:
        run.flush()
        info = run.workspace.transport.models.register_version(
            run.workspace.name,
            model_name,
            run_id=run.id,
            path=model_path.strip("/"),
            description=description or "",
            tags=registration_tags(tags, properties, model_framework, datasets),
            user=run.info.user or _user(),
        )
        return cls(run.workspace, model_name, _info=info)

    @classmethod
    def list(
        cls,
        workspace: WorkspaceRef,
        name: str | None = None,
        tags: dict[str, Any] | builtins.list[Any] | None = None,
        run_id: str | None = None,
        latest: bool = False,
    ) -> builtins.list[Model]:
        """Model versions, newest first per name (all tags must match).

        ``tags`` is ``{key: value}``, or the cloud service's ``[[key, value], ...]``.
        """
        if isinstance(tags, builtins.list):
            pairs = [t for t in tags if isinstance(t, list | tuple) and len(t) == 2]
            if len(pairs) != len(tags):
                raise InvalidInput(
                    "Model.list: tags are matched by key and value: tags={'key': 'value'} "
                    "or [['key', 'value']]."
                )
            tags = {str(t[0]): t[1] for t in pairs}
        found = workspace.transport.models.list_versions(
            workspace.name, name, {str(k): str(v) for k, v in (tags or {}).items()}, run_id, latest
        )
        return [cls(workspace, v.name, _info=v) for v in found]

    @staticmethod
    def get_model_path(
        model_name: str, version: int | None = None, _workspace: WorkspaceRef | None = None
    ) -> str:
        """Where a deployed model's files are, inside an entry script's ``init()``.

        Outside a deployment, give ``_workspace`` to download the version into
        ``./cumulo-models/<name>/<version>`` and get that path.
        """
        root = os.environ.get("CUMULO_MODELS_ROOT")
        if root:
            folder = Path(root) / model_name
            if not folder.is_dir():
                raise NotFound(f"Model {model_name!r} is not part of this deployment.")
            versions = sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())
            if version is None:
                if not versions:
                    raise NotFound(f"Model {model_name!r} has no files in this deployment.")
                version = versions[-1]
            elif version not in versions:
                raise NotFound(f"Version {version} of {model_name!r} is not in this deployment.")
            return str(folder / str(version))
        if _workspace is None:
            raise NotFound(
                "Model.get_model_path works inside a deployment's entry script; elsewhere pass "
                "_workspace=ws to download the model first."
            )
        model = Model(_workspace, model_name, version)
        target = Path("cumulo-models") / model.name / str(model.version)
        if not target.is_dir():
            model.download(target)
        return str(target)

    # --------------------------------------------------------------- deploy
    @staticmethod
    def deploy(
        workspace: WorkspaceRef,
        name: str,
        models: builtins.list[Model],
        inference_config: InferenceConfig | None = None,
        deployment_config: DeploymentConfig | None = None,
        deployment_name: str = "blue",
        overwrite: bool = False,
        wait: bool = True,
        timeout: float = 300.0,
        show_output: bool = True,
    ) -> Endpoint:
        """Serve ``models`` at endpoint ``name`` (its deployment ``blue`` by default).

        An MLflow model needs no ``inference_config``. On an embedded
        workspace the endpoint is served by this process while it lives.
        With ``overwrite=True`` an existing endpoint's deployment is updated
        (replicas replaced one at a time, no request dropped).
        """
        config = deployment_config or DeploymentConfig()
        api = workspace.transport.endpoints
        try:
            api.create_endpoint(workspace.name, name, config.auth)
            created = True
        except AlreadyExists:
            if not overwrite:
                raise AlreadyExists(
                    f"Endpoint {name!r} already exists: pass overwrite=True to update it, or use "
                    f"Endpoint(ws, {name!r}).add_deployment(...)."
                ) from None
            created = False
        endpoint = Endpoint(workspace, name)
        try:
            if created or endpoint.get_deployment(deployment_name) is None:
                endpoint.add_deployment(
                    deployment_name, models, inference_config, config, wait=False
                )
            else:
                endpoint.update(
                    deployment=deployment_name,
                    models=models,
                    inference_config=inference_config,
                    deployment_config=config,
                    wait=False,
                )
        except BaseException:
            if created:
                api.delete_endpoint(workspace.name, name)
            raise
        endpoint._announce()
        if wait:
            endpoint.wait_for_deployment(deployment_name, timeout=timeout, show_output=show_output)
        return endpoint

    # ------------------------------------------------------------ attributes
    @property
    def name(self) -> str:
        return self._info.name

    @property
    def version(self) -> int:
        return self._info.version

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def info(self) -> ModelVersionInfo:
        return self._info

    @property
    def description(self) -> str:
        return self._info.description

    @property
    def tags(self) -> dict[str, str]:
        return self._info.user_tags

    @property
    def properties(self) -> dict[str, str]:
        return self._info.properties

    @property
    def model_framework(self) -> str | None:
        return self._info.model_framework

    @property
    def datasets(self) -> builtins.list[dict[str, str]]:
        return self._info.datasets

    @property
    def flavors(self) -> dict[str, Any]:
        return dict(self._info.flavors)

    @property
    def signature(self) -> dict[str, Any] | None:
        return self._info.signature

    @property
    def is_mlflow(self) -> bool:
        """Whether it is an MLflow model (an ``MLmodel`` file), servable without a script."""
        return bool(self._info.flavors)

    @property
    def aliases(self) -> builtins.list[str]:
        return list(self._info.aliases)

    @property
    def created_time(self) -> int:
        return self._info.created_at

    @property
    def run_id(self) -> str | None:
        return self._info.run_id

    @property
    def run(self) -> RunTracking | None:
        """The run that produced it (lineage), if it was registered from one."""
        if not self._info.run_id:
            return None
        return self.workspace.get_run(self._info.run_id)

    @property
    def experiment_name(self) -> str | None:
        run = self.run
        return run.info.experiment_name if run is not None else None

    @property
    def _models(self) -> ModelClient:
        return self.workspace.transport.models

    def refresh(self) -> Model:
        self._info = self._models.resolve_version(self.workspace.name, self.name, self.version)
        return self

    # --------------------------------------------------------------- changes
    def set_alias(self, alias: str) -> None:
        """Point ``alias`` (e.g. ``"champion"``) at this version (moving it from another)."""
        self._models.set_alias(self.workspace.name, self.name, alias, self.version)
        self.refresh()

    def remove_alias(self, alias: str) -> None:
        self._models.delete_alias(self.workspace.name, self.name, alias)
        self.refresh()

    def add_tags(self, tags: dict[str, Any]) -> None:
        self._info = self._models.set_version_tags(
            self.workspace.name, self.name, self.version, {k: str(v) for k, v in tags.items()}
        )

    def remove_tags(self, keys: builtins.list[str]) -> None:
        self._info = self._models.delete_version_tags(
            self.workspace.name, self.name, self.version, list(keys)
        )

    def get_file_names(self) -> builtins.list[str]:
        files = self._models.list_version_files(
            self.workspace.name, self.name, self.version, recursive=True
        )
        return [f.path for f in files if not f.is_dir]

    def download(self, target_dir: str | Path = ".", exist_ok: bool = False) -> str:
        """Copy the version's files into ``target_dir``; returns the folder."""
        target = Path(target_dir)
        api = self._models
        names = self.get_file_names()
        clashes = [n for n in names if (target / n).exists()]
        if clashes and not exist_ok:
            raise AlreadyExists(
                f"{target / clashes[0]} already exists; pass exist_ok=True to overwrite."
            )
        for rel in names:
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".partial")
            with (
                api.open_version_file(self.workspace.name, self.name, self.version, rel) as src,
                open(tmp, "wb") as out,
            ):
                while chunk := src.read(1024 * 1024):
                    out.write(chunk)
            tmp.replace(dest)
        return str(target)

    def get_lineage(self) -> dict[str, Any]:
        """The graph around this version: datasets its run read -> the run -> this version
        (and others of the run) -> the endpoints serving them.

        ``{"nodes": [{"id", "kind", "label", ...}], "edges": [{"from", "to"}]}``.
        """
        return self.workspace.transport.datasets.lineage(
            self.workspace.name, model=self.name, model_version=self.version
        )

    def delete(self) -> None:
        """Delete this version (refused while an endpoint serves it)."""
        self._models.unregister_version(self.workspace.name, self.name, self.version)

    def serialize(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "id": self.id,
            "description": self.description,
            "tags": self.tags,
            "properties": self.properties,
            "aliases": self.aliases,
            "framework": self.model_framework,
            "flavors": sorted(self.flavors),
            "signature": self.signature,
            "run_id": self.run_id,
            "created_time": display.when(self.created_time),
        }

    # --------------------------------------------------------------- display
    def __repr__(self) -> str:
        return f"Model(name={self.name!r}, version={self.version}, aliases={self.aliases})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and (other.name, other.version) == (
            self.name,
            self.version,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.version))

    def _repr_html_(self) -> str:
        rows = [
            ("model", f"{self.name} version {self.version}"),
            ("aliases", ", ".join(self.aliases)),
            ("framework", self.model_framework or ""),
            ("flavors", ", ".join(sorted(self.flavors))),
            ("run", self.run_id or ""),
            ("registered", display.when(self.created_time)),
        ]
        rows += [(f"tag {k}", v) for k, v in sorted(self.tags.items())]
        return display.table(["", ""], rows)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
