"""The model registry: registered models and versions, MLflow 3 logged models, lineage.

Files: a logged model's files live under ``<workspace>/logged-models/<model_id>/``;
registering a version copies the files it names (a run's folder, a logged model,
or a local folder) to ``<workspace>/models/<name>/<version>/``, so deleting the
run or the logged model later does not break the version. A version whose
source is outside the workspace's artifact store (``s3://...`` elsewhere) keeps
only its source, which is what its download URI then names.

The SDK's calls (``register_version``, ``list_versions``, ``set_version_tags``,
``unregister_version``...) add its rules to the MLflow-shaped ones: a model is
created on its first registration and deleted with its last version, lists show
ready versions only, the reserved tags are set at registration only, and a
version an endpoint serves is not deleted (``unregister_guards``, which the
deployment service fills).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from cumulo.core import validation
from cumulo.core.entities import (
    MODEL_STAGES,
    DatasetInput,
    FileInfo,
    LoggedModelInfo,
    ModelMetric,
    ModelVersionInfo,
    RegisteredModelInfo,
    RunLineage,
    check_user_tags,
)
from cumulo.core.errors import AlreadyExists, Conflict, CumuloError, InvalidInput, NotFound
from cumulo.core.search import Clause, OrderBy
from cumulo.services.tracking import TrackingService, run_prefix
from cumulo.store.logged_models import LoggedModelStore
from cumulo.store.registry import RegistryStore

MAX_MODEL_NAME = 256
MAX_ALIAS = 255
MAX_REGISTRY_TAG_VALUE = 100_000
MAX_MODELS_PAGE = 1000
MAX_VERSIONS_PAGE = 200_000
MAX_LOGGED_MODELS_PAGE = 1000
MAX_DATASET_SUMMARIES = 1000  # datasets a summary of experiments lists at most

_ALIAS_RE = re.compile(r"^[\w\-]+$")
_VERSION_ALIAS_RE = re.compile(r"^[vV]\d+$")
_LOGGED_ID_RE = re.compile(r"^m-[0-9a-f]{32}$")


def version_prefix(workspace: str, name: str, version: int) -> str:
    return f"{workspace}/models/{name}/{version}"


def logged_model_prefix(workspace: str, model_id: str) -> str:
    return f"{workspace}/logged-models/{model_id}"


# ------------------------------------------------------------------ validation
def model_name(name: Any) -> str:
    """Registered model names: MLflow's rules (no '/' or ':'), and safe as one path part."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("A registered model name must be a non-empty string.")
    if len(name) > MAX_MODEL_NAME:
        raise InvalidInput(f"Model name is longer than {MAX_MODEL_NAME} characters.")
    validation.visible_name(name, "model name")  # names the control or hidden character
    if any(c in name for c in "/:\\"):
        raise InvalidInput(f"Invalid model name {name!r}: names cannot contain '/', ':' or '\\'.")
    if name.strip() in (".", ".."):
        raise InvalidInput(f"Invalid model name {name!r}.")
    return name


def alias_name(alias: Any) -> str:
    if not isinstance(alias, str) or not alias:
        raise InvalidInput("A model alias must be a non-empty string.")
    if len(alias) > MAX_ALIAS or not _ALIAS_RE.match(alias):
        raise InvalidInput(
            f"Invalid alias {alias!r}: use up to {MAX_ALIAS} letters, digits, '_' and '-'."
        )
    if alias.lower() == "latest" or _VERSION_ALIAS_RE.match(alias):
        raise InvalidInput(f"Alias {alias!r} is reserved ('latest' and 'v<number>' name versions).")
    return alias


def stage_name(stage: Any) -> str:
    for known in MODEL_STAGES:
        if isinstance(stage, str) and stage.lower() == known.lower():
            return known
    raise InvalidInput(f"Unknown stage {stage!r}; expected one of {', '.join(MODEL_STAGES)}.")


def _tags(tags: dict[str, Any] | None, limit: int = MAX_REGISTRY_TAG_VALUE) -> dict[str, str]:
    return {
        validation.key(k, "tag"): validation.text_value(v, limit, "Tag value")
        for k, v in (tags or {}).items()
    }


def _version_number(version: Any) -> int:
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise InvalidInput(f"A model version is a whole number, got {version!r}.") from None
    if number < 1:
        raise InvalidInput(f"Model versions start at 1, got {number}.")
    return number


class RegistryService:
    def __init__(
        self, store: RegistryStore, logged: LoggedModelStore, tracking: TrackingService
    ) -> None:
        self.store = store
        self.logged = logged
        self.tracking = tracking
        self.artifacts = tracking.artifacts
        # Called before a version is unregistered; each raises to refuse it.
        self.unregister_guards: list[Callable[[str, str, int], None]] = []

    # ------------------------------------------------------ registered models
    def create_model(
        self,
        workspace: str,
        name: str,
        *,
        description: str = "",
        tags: dict[str, Any] | None = None,
        user: str = "",
    ) -> RegisteredModelInfo:
        return self.store.create_model(
            workspace,
            model_name(name),
            description=validation.text_value(description or "", 100_000, "Description"),
            tags=_tags(tags),
            user=user,
        )

    def get_model(self, workspace: str, name: str) -> RegisteredModelInfo:
        return self.store.get_model(workspace, name)

    def rename_model(self, workspace: str, name: str, new_name: str) -> RegisteredModelInfo:
        # Versions keep their storage prefix: files are not moved on a rename.
        return self.store.update_model(workspace, name, new_name=model_name(new_name))

    def update_model(self, workspace: str, name: str, description: str) -> RegisteredModelInfo:
        text = validation.text_value(description or "", 100_000, "Description")
        return self.store.update_model(workspace, name, description=text)

    def delete_model(self, workspace: str, name: str) -> None:
        for prefix in self.store.delete_model(workspace, name):
            self.artifacts.delete(prefix)

    def search_models(
        self,
        workspace: str,
        clauses: Sequence[Clause] = (),
        order_by: Sequence[OrderBy] = (),
        max_results: int = 100,
        page_token: str | None = None,
    ) -> tuple[list[RegisteredModelInfo], str | None]:
        if not 0 < max_results <= MAX_MODELS_PAGE:
            raise InvalidInput(f"max_results must be between 1 and {MAX_MODELS_PAGE}.")
        return self.store.search_models(workspace, clauses, order_by, max_results, page_token)

    def list_models(
        self, workspace: str, name: str | None = None, tags: dict[str, str] | None = None
    ) -> list[RegisteredModelInfo]:
        """Every model (with this name, with all these tags), by name."""
        clauses = [Clause("attribute", "name", "=", name)] if name else []
        clauses += [Clause("tag", k, "=", str(v)) for k, v in (tags or {}).items()]
        out: list[RegisteredModelInfo] = []
        token: str | None = None
        while True:
            page, token = self.search_models(workspace, clauses, (), MAX_MODELS_PAGE, token)
            out.extend(page)
            if token is None:
                return out

    def set_model_tag(self, workspace: str, name: str, key: str, value: Any) -> None:
        clean = _tags({key: value})
        self.store.set_model_tag(workspace, name, key, clean[key])

    def delete_model_tag(self, workspace: str, name: str, key: str) -> None:
        self.store.set_model_tag(workspace, name, key, None)

    def set_alias(self, workspace: str, name: str, alias: str, version: Any) -> None:
        self.store.set_alias(workspace, name, alias_name(alias), _version_number(version))

    def delete_alias(self, workspace: str, name: str, alias: str) -> None:
        self.store.delete_alias(workspace, name, alias)

    # --------------------------------------------------------------- versions
    def create_version(
        self,
        workspace: str,
        name: str,
        *,
        source: str = "",
        run_id: str | None = None,
        path: str | None = None,
        logged_model_id: str | None = None,
        local_dir: str | Path | None = None,
        description: str = "",
        tags: dict[str, Any] | None = None,
        user: str = "",
        run_link: str = "",
    ) -> ModelVersionInfo:
        """Register the next version of ``name`` and copy its files into the registry.

        The files come from, in this order: ``logged_model_id``; ``source``
        (``models:/m-...``, ``runs:/<run_id>/<path>`` or ``mlflow-artifacts:/`` inside
        this workspace); ``run_id`` with ``path``; or ``local_dir`` (embedded use).
        """
        name = model_name(name)
        clean_tags = _tags(tags)
        origin = self._origin(workspace, source, run_id, path, logged_model_id)
        if origin is None and local_dir is None and not source:
            raise InvalidInput(
                "Say where the model's files are: a source URI, a run id and path, a logged "
                "model id, or a local folder."
            )
        if origin is not None:
            logged_model_id = logged_model_id or origin[2]
            run_id = run_id or origin[3]
            if origin[2] is not None and not self.artifacts.list(origin[0], origin[1]):
                # A logged model with no files yet: registered by reference, as MLflow
                # does, its files read from the logged model when they come.
                origin = None
        if run_id is not None:
            validation.run_id_reference(run_id)
        has_files = origin is not None or local_dir is not None
        pending = self.store.create_version(
            workspace,
            name,
            prefix_for=(lambda v: version_prefix(workspace, name, v)) if has_files else None,
            source=source or (f"models:/{logged_model_id}" if logged_model_id else ""),
            run_id=run_id,
            logged_model_id=logged_model_id,
            description=validation.text_value(description or "", 100_000, "Description"),
            tags=clean_tags,
            user=user,
            run_link=run_link,
        )
        dest = pending.storage_prefix
        try:
            if dest is not None:
                if origin is not None:
                    copied = self._copy(origin[0], origin[1], dest)
                else:
                    assert local_dir is not None
                    copied = self._upload_dir(Path(local_dir), dest)
                if not copied:
                    raise NotFound(f"There are no model files at {source or origin or local_dir}.")
            flavors, signature = self._mlmodel(dest) if dest is not None else ({}, None)
        except CumuloError as exc:
            self._fail(workspace, pending, exc.message)
            raise
        except Exception as exc:
            self._fail(workspace, pending, f"Copying the model's files failed: {exc}")
            raise
        framework = next((f for f in flavors if f != "python_function"), None)
        return self.store.finish_version(
            workspace,
            name,
            pending.version,
            status="READY",
            framework=framework,
            flavors=flavors,
            signature=signature,
        )

    def _fail(self, workspace: str, pending: ModelVersionInfo, message: str) -> None:
        # The error that failed the registration is the one to report, not a later one.
        with contextlib.suppress(CumuloError):
            if pending.storage_prefix:
                self.artifacts.delete(pending.storage_prefix)
        with contextlib.suppress(CumuloError):
            self.store.finish_version(
                workspace, pending.name, pending.version, status="FAILED", status_message=message
            )

    def _origin(
        self,
        workspace: str,
        source: str,
        run_id: str | None,
        path: str | None,
        logged_model_id: str | None,
    ) -> tuple[str, str, str | None, str | None] | None:
        """(prefix, relative path, logged model id, run id) of the files to copy, if ours."""
        found = self._source_origin(workspace, source) if source else None
        if found is not None:
            return found
        if logged_model_id:
            logged = self.logged.get_logged_model(workspace, logged_model_id)
            return logged_model_prefix(workspace, logged.id), "", logged.id, logged.source_run_id
        if run_id and path is not None:
            self.tracking.get_run(workspace, run_id)
            rel = validation.artifact_path(path, allow_root=True)
            return run_prefix(workspace, run_id), rel, None, run_id
        return None

    def _source_origin(
        self, workspace: str, source: str
    ) -> tuple[str, str, str | None, str | None] | None:
        """Where a source URI's files are in this workspace (None: not in this store)."""
        if source.startswith("models:/"):
            ref = source[len("models:/") :].strip("/")
            if _LOGGED_ID_RE.match(ref):
                logged = self.logged.get_logged_model(workspace, ref)
                return logged_model_prefix(workspace, ref), "", ref, logged.source_run_id
            # Another registered version (models:/<name>/<version> or models:/<name>@<alias>).
            if "@" in ref:
                name, _, alias = ref.partition("@")
                version = self.store.version_by_alias(workspace, name, alias)
            else:
                name, _, number = ref.rpartition("/")
                version = self.get_version(workspace, name, number)
            if not version.storage_prefix:
                return None  # itself a reference: this version refers to it in turn
            return version.storage_prefix, "", version.logged_model_id, version.run_id
        if source.startswith("runs:/"):
            rid, _, rel = source[len("runs:/") :].partition("/")
            try:
                self.tracking.get_run(workspace, rid)
            except NotFound:
                return None  # a run of another tracking server: recorded, not copied
            return (
                run_prefix(workspace, rid),
                validation.artifact_path(rel, allow_root=True),
                None,
                rid,
            )
        if source.startswith("mlflow-artifacts:"):
            rest = source[len("mlflow-artifacts:") :].lstrip("/")
            if rest.startswith(f"{workspace}/runs/"):
                rid, _, rel = rest[len(f"{workspace}/runs/") :].partition("/")
                self.tracking.get_run(workspace, rid)
                rel = validation.artifact_path(rel, allow_root=True)
                return run_prefix(workspace, rid), rel, None, rid
            if rest.startswith(f"{workspace}/logged-models/"):
                mid, _, rel = rest[len(f"{workspace}/logged-models/") :].partition("/")
                logged = self.logged.get_logged_model(workspace, mid)
                rel = validation.artifact_path(rel, allow_root=True)
                return logged_model_prefix(workspace, mid), rel, mid, logged.source_run_id
            raise InvalidInput(
                f"Source {source!r} is not a run's or a logged model's files in workspace "
                f"{workspace!r}."
            )
        return None

    def _copy(self, src_prefix: str, rel: str, dest: str) -> int:
        files = self.artifacts.list(src_prefix, rel, recursive=True)
        if not files and rel and self.artifacts.exists(src_prefix, rel):
            files = [FileInfo(rel, False)]  # one file: registered under its own name
            base = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
        else:
            base = rel + "/" if rel else ""
        for f in files:
            with self.artifacts.open(src_prefix, f.path) as fh:
                self.artifacts.put_stream(dest, f.path[len(base) :], fh)
        return len(files)

    def _upload_dir(self, folder: Path, dest: str) -> int:
        if folder.is_file():
            self.artifacts.put_file(dest, folder.name, folder)
            return 1
        if not folder.is_dir():
            raise NotFound(f"Folder {str(folder)!r} does not exist.")
        count = 0
        for item in sorted(folder.rglob("*")):
            if item.is_file():
                self.artifacts.put_file(dest, item.relative_to(folder).as_posix(), item)
                count += 1
        return count

    def _mlmodel(self, prefix: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Flavors and signature of an MLflow model (an ``MLmodel`` file at the top)."""
        if not self.artifacts.exists(prefix, "MLmodel"):
            return {}, None
        import yaml  # only a registered MLflow model's MLmodel file is YAML

        with self.artifacts.open(prefix, "MLmodel") as fh:
            try:
                spec = yaml.safe_load(fh.read())
            except yaml.YAMLError:
                return {}, None
        if not isinstance(spec, dict):
            return {}, None
        flavors = spec.get("flavors") if isinstance(spec.get("flavors"), dict) else {}
        signature = spec.get("signature") if isinstance(spec.get("signature"), dict) else None
        return flavors or {}, signature

    # ------------------------------------------------------- the SDK's calls
    def register_version(
        self,
        workspace: str,
        name: str,
        *,
        local_dir: str | Path | None = None,
        run_id: str | None = None,
        path: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        user: str = "",
    ) -> ModelVersionInfo:
        """The next version of ``name`` (created on first use) from a folder or a run's files."""
        with contextlib.suppress(AlreadyExists, Conflict):
            self.create_model(workspace, name, user=user)
        if (local_dir is None) == (run_id is None):
            raise InvalidInput("Register from a local folder or from a run's files, not both.")
        return self.create_version(
            workspace,
            name,
            run_id=run_id,
            path=path if run_id is not None else None,
            local_dir=local_dir,
            description=description,
            tags=tags,
            user=user,
        )

    def list_versions(
        self,
        workspace: str,
        name: str | None = None,
        tags: dict[str, str] | None = None,
        run_id: str | None = None,
        latest: bool = False,
    ) -> list[ModelVersionInfo]:
        """Ready versions (newest first per name); ``latest`` keeps the newest of each name."""
        clauses = [Clause("attribute", "name", "=", name)] if name else []
        clauses += [Clause("tag", k, "=", str(v)) for k, v in (tags or {}).items()]
        if run_id:
            clauses.append(Clause("attribute", "run_id", "=", run_id))
        order = [OrderBy("attribute", "name"), OrderBy("attribute", "version", False)]
        out: list[ModelVersionInfo] = []
        token: str | None = None
        while True:
            page, token = self.search_versions(workspace, clauses, order, 10_000, token)
            out.extend(v for v in page if v.status == "READY")
            if token is None:
                break
        if latest:
            seen: set[str] = set()
            out = [v for v in out if not (v.name in seen or seen.add(v.name))]  # type: ignore[func-returns-value]
        return out

    def set_version_tags(
        self, workspace: str, name: str, version: int, tags: dict[str, Any]
    ) -> ModelVersionInfo:
        """Set a person's tags on a version (never the reserved ones)."""
        check_user_tags(tags)
        for key, value in tags.items():
            self.set_version_tag(workspace, name, version, key, value)
        return self.get_version(workspace, name, version)

    def delete_version_tags(
        self, workspace: str, name: str, version: int, keys: list[str]
    ) -> ModelVersionInfo:
        for key in keys:
            self.delete_version_tag(workspace, name, version, key)
        return self.get_version(workspace, name, version)

    def unregister_version(self, workspace: str, name: str, version: int) -> None:
        """Delete one version, and the model with its last one; refused while it is served."""
        for guard in list(self.unregister_guards):
            guard(workspace, name, version)
        self.delete_version(workspace, name, version)
        if not self.list_versions(workspace, name):
            with contextlib.suppress(NotFound):
                self.delete_model(workspace, name)

    # ------------------------------------------------------------- reading
    def get_version(self, workspace: str, name: str, version: Any) -> ModelVersionInfo:
        return self.store.get_version(workspace, name, _version_number(version))

    def resolve_version(
        self, workspace: str, name: str, version: Any = None, alias: str | None = None
    ) -> ModelVersionInfo:
        """A version by number, by alias, or the latest one when neither is given."""
        if alias is not None:
            return self.store.version_by_alias(workspace, name, alias)
        if version is not None:
            return self.get_version(workspace, name, version)
        clauses = [Clause("attribute", "name", "=", name)]
        found, _ = self.store.search_versions(
            workspace, clauses, [OrderBy("attribute", "version", False)], 1
        )
        if not found:
            self.store.get_model(workspace, name)  # NotFound for an unknown model
            raise NotFound(f"Model {name!r} has no versions yet.")
        return found[0]

    def version_by_alias(self, workspace: str, name: str, alias: str) -> ModelVersionInfo:
        return self.store.version_by_alias(workspace, name, alias)

    def update_version(
        self, workspace: str, name: str, version: Any, description: str
    ) -> ModelVersionInfo:
        text = validation.text_value(description or "", 100_000, "Description")
        return self.store.update_version(
            workspace, name, _version_number(version), description=text
        )

    def transition_stage(
        self, workspace: str, name: str, version: Any, stage: str, archive_existing: bool = False
    ) -> ModelVersionInfo:
        return self.store.update_version(
            workspace,
            name,
            _version_number(version),
            stage=stage_name(stage),
            archive_others=archive_existing,
        )

    def delete_version(self, workspace: str, name: str, version: Any) -> None:
        prefix = self.store.delete_version(workspace, name, _version_number(version))
        if prefix:
            self.artifacts.delete(prefix)

    def latest_versions(
        self, workspace: str, name: str, stages: Sequence[str] | None = None
    ) -> list[ModelVersionInfo]:
        wanted = [stage_name(s) for s in stages or []]
        return self.store.latest_versions(workspace, name, wanted)

    def search_versions(
        self,
        workspace: str,
        clauses: Sequence[Clause] = (),
        order_by: Sequence[OrderBy] = (),
        max_results: int = 10_000,
        page_token: str | None = None,
    ) -> tuple[list[ModelVersionInfo], str | None]:
        if not 0 < max_results <= MAX_VERSIONS_PAGE:
            raise InvalidInput(f"max_results must be between 1 and {MAX_VERSIONS_PAGE}.")
        return self.store.search_versions(workspace, clauses, order_by, max_results, page_token)

    def set_version_tag(
        self, workspace: str, name: str, version: Any, key: str, value: Any
    ) -> None:
        clean = _tags({key: value})
        self.store.set_version_tag(workspace, name, _version_number(version), key, clean[key])

    def delete_version_tag(self, workspace: str, name: str, version: Any, key: str) -> None:
        self.store.set_version_tag(workspace, name, _version_number(version), key, None)

    def _files_prefix(self, workspace: str, found: ModelVersionInfo) -> str | None:
        """Where a version's files are: its own copy, or (registered by reference before
        it had files) its logged model's; None for a source on another server."""
        if found.storage_prefix:
            return found.storage_prefix
        if found.logged_model_id and found.source == f"models:/{found.logged_model_id}":
            return logged_model_prefix(workspace, found.logged_model_id)
        return None

    def download_location(self, workspace: str, name: str, version: Any) -> tuple[str, bool]:
        """(files prefix, True) for a version with files here, else (source, False); a
        version registered from another version's URI leads to that version's files."""
        found = self.get_version(workspace, name, version)
        for _hop in range(10):
            prefix = self._files_prefix(workspace, found)
            if prefix:
                return prefix, True
            ref = found.source[len("models:/") :] if found.source.startswith("models:/") else ""
            other, _, number = ref.rpartition("/")
            if not other or not number.isdigit():
                break
            try:
                found = self.get_version(workspace, other, number)
            except NotFound:
                break
        return found.source, False

    def version_by_prefix(self, workspace: str, prefix: str) -> ModelVersionInfo:
        return self.store.version_by_prefix(workspace, prefix)

    def list_version_files(
        self, workspace: str, name: str, version: Any, path: str = "", recursive: bool = False
    ) -> list[FileInfo]:
        found = self.get_version(workspace, name, version)
        prefix = self._files_prefix(workspace, found)
        if not prefix:
            return []
        rel = validation.artifact_path(path, allow_root=True)
        return self.artifacts.list(prefix, rel, recursive=recursive)

    def open_version_file(self, workspace: str, name: str, version: Any, path: str) -> IO[bytes]:
        found = self.get_version(workspace, name, version)
        prefix = self._files_prefix(workspace, found)
        if not prefix:
            raise NotFound(f"Version {found.version} of {name!r} has no files in this workspace.")
        return self.artifacts.open(prefix, validation.artifact_path(path))

    def download_version(
        self, workspace: str, name: str, version: Any, target_dir: str | Path
    ) -> list[Path]:
        """Copy a version's files into ``target_dir``; returns the local paths."""
        found = self.get_version(workspace, name, version)
        prefix = self._files_prefix(workspace, found)
        if not prefix:
            raise NotFound(f"Version {found.version} of {name!r} has no files in this workspace.")
        out = []
        for f in self.artifacts.list(prefix, "", recursive=True):
            out.append(self.artifacts.get_file(prefix, f.path, Path(target_dir) / f.path))
        return out

    # ---------------------------------------------------------- logged models
    def create_logged_model(
        self,
        workspace: str,
        experiment_id: int,
        *,
        name: str,
        model_type: str | None = None,
        source_run_id: str | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        user: str = "",
    ) -> LoggedModelInfo:
        if not isinstance(name, str) or not name.strip() or len(name) > 500:
            raise InvalidInput("A logged model needs a name of 1 to 500 characters.")
        if source_run_id is not None:
            validation.run_id_reference(source_run_id)
        return self.logged.create_logged_model(
            workspace,
            experiment_id,
            name=name,
            model_type=model_type,
            source_run_id=source_run_id,
            params={
                validation.key(k, "param"): validation.param_value(v)
                for k, v in (params or {}).items()
            },
            tags=_tags(tags, validation.MAX_TAG_VALUE),
            user=user,
        )

    def get_logged_model(
        self, workspace: str, model_id: str, allow_deleted: bool = False
    ) -> LoggedModelInfo:
        return self.logged.get_logged_model(workspace, model_id, allow_deleted)

    def finalize_logged_model(
        self, workspace: str, model_id: str, status: str, message: str = ""
    ) -> LoggedModelInfo:
        if status not in ("READY", "FAILED", "PENDING"):
            raise InvalidInput(
                f"A logged model's status is READY, FAILED or PENDING, not {status!r}."
            )
        return self.logged.update_logged_model(
            workspace, model_id, status=status, status_message=message
        )

    def delete_logged_model(self, workspace: str, model_id: str) -> None:
        """Mark it deleted and drop its files (registered versions keep their own copy)."""
        self.logged.update_logged_model(workspace, model_id, deleted=True)
        self.artifacts.delete(logged_model_prefix(workspace, model_id))

    def set_logged_model_tags(self, workspace: str, model_id: str, tags: dict[str, Any]) -> None:
        clean: dict[str, str | None] = dict(_tags(tags, validation.MAX_TAG_VALUE))
        self.logged.set_logged_model_values(workspace, model_id, tags=clean)

    def delete_logged_model_tag(self, workspace: str, model_id: str, key: str) -> None:
        self.logged.set_logged_model_values(workspace, model_id, tags={key: None})

    def log_logged_model_params(
        self, workspace: str, model_id: str, params: dict[str, Any]
    ) -> None:
        clean = {validation.key(k, "param"): validation.param_value(v) for k, v in params.items()}
        self.logged.set_logged_model_values(workspace, model_id, params=clean)

    def log_logged_model_metrics(
        self, workspace: str, model_id: str, metrics: Sequence[ModelMetric]
    ) -> None:
        for m in metrics:
            validation.key(m.key, "metric")
        self.logged.log_model_metrics(workspace, model_id, metrics)

    def search_logged_models(
        self,
        workspace: str,
        experiment_ids: Sequence[int] | None = None,
        clauses: Sequence[Clause] = (),
        order_by: Sequence[OrderBy] = (),
        max_results: int = 100,
        page_token: str | None = None,
        datasets: Sequence[tuple[str, str | None]] = (),
    ) -> tuple[list[LoggedModelInfo], str | None]:
        """``datasets``: (name, digest or None) pairs; when given, only models with a
        metric logged against one of them."""
        if not 0 < max_results <= MAX_LOGGED_MODELS_PAGE:
            raise InvalidInput(f"max_results must be between 1 and {MAX_LOGGED_MODELS_PAGE}.")
        if not all(name for name, _ in datasets):
            raise InvalidInput("`dataset_name` in the `datasets` clause must be specified.")
        return self.logged.search_logged_models(
            workspace, experiment_ids, clauses, order_by, max_results, page_token, datasets
        )

    def upload_logged_model_file(
        self, workspace: str, model_id: str, path: str, stream: IO[bytes]
    ) -> int:
        self.logged.get_logged_model(workspace, model_id)
        rel = validation.artifact_path(path)
        return self.artifacts.put_stream(logged_model_prefix(workspace, model_id), rel, stream)

    def list_logged_model_files(
        self, workspace: str, model_id: str, path: str = "", recursive: bool = False
    ) -> list[FileInfo]:
        self.logged.get_logged_model(workspace, model_id)
        rel = validation.artifact_path(path, allow_root=True)
        return self.artifacts.list(logged_model_prefix(workspace, model_id), rel, recursive)

    def open_logged_model_file(self, workspace: str, model_id: str, path: str) -> IO[bytes]:
        self.logged.get_logged_model(workspace, model_id)
        rel = validation.artifact_path(path)
        return self.artifacts.open(logged_model_prefix(workspace, model_id), rel)

    def delete_logged_model_file(self, workspace: str, model_id: str, path: str) -> None:
        self.logged.get_logged_model(workspace, model_id)
        rel = validation.artifact_path(path)
        if not self.artifacts.exists(logged_model_prefix(workspace, model_id), rel):
            raise NotFound(f"Logged model {model_id} has no file {rel!r}.")
        self.artifacts.delete(logged_model_prefix(workspace, model_id), rel)

    # ---------------------------------------------------------------- lineage
    def log_inputs(
        self,
        workspace: str,
        run_id: str,
        datasets: Sequence[DatasetInput] = (),
        model_ids: Sequence[str] = (),
    ) -> None:
        for d in datasets:
            if not d.name or len(d.name) > 500 or not d.digest or len(d.digest) > 64:
                raise InvalidInput(
                    "A dataset input needs a name (up to 500 characters) and a digest "
                    "(up to 64 characters)."
                )
        if datasets:
            self.logged.add_dataset_inputs(workspace, run_id, datasets)
        if model_ids:
            self.logged.link_models(workspace, run_id, [(m, 0) for m in model_ids], "input")

    def log_outputs(self, workspace: str, run_id: str, models: Sequence[tuple[str, int]]) -> None:
        self.logged.link_models(workspace, run_id, models, "output")

    def dataset_summaries(
        self, workspace: str, experiment_ids: Sequence[int]
    ) -> list[tuple[int, str, str, str | None]]:
        """``(experiment_id, name, digest, context or None)`` of each dataset the runs of
        those experiments read (at most ``MAX_DATASET_SUMMARIES``)."""
        if not experiment_ids:
            raise InvalidInput("SearchDatasets request must specify at least one experiment_id.")
        return self.logged.dataset_summaries(workspace, experiment_ids, MAX_DATASET_SUMMARIES)

    def lineage(self, workspace: str, run_ids: Sequence[str]) -> dict[str, RunLineage]:
        return self.logged.lineage(workspace, run_ids)
