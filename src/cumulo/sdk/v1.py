"""Names from the cloud service's v1 SDK that have no twin here, and what to use instead.

Scripts and notebooks written for the cloud service reach for these; each is
answered with a ``NotHere`` error that says what to call, never a bare
``AttributeError`` (it still is one, so ``hasattr`` stays False).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from cumulo.core.errors import InvalidInput

P = ParamSpec("P")
R = TypeVar("R")

# Run types of the cloud service -> a run's kind here.
RUN_TYPES = {
    "azureml.scriptrun": "job",
    "hyperdrive": "sweep",
    "azureml.pipelinerun": "pipeline",
    "azureml.steprun": "job",
    "interactive": "interactive",
}

WORKSPACE = {
    "get_details": "repr(ws) and ws.location say where it lives; ws.experiments, ws.models, "
    "ws.compute_targets, ws.environments and ws.endpoints list what it holds",
    "service_context": "there is no cloud account here: Workspace.connect(url, name, token)",
    "subscription_id": "there is no cloud account here: a workspace is a name on a server "
    "(ws.url) or in an embedded home (ws.location)",
    "resource_group": "there is no cloud account here: a workspace is a name on a server "
    "(ws.url) or in an embedded home (ws.location)",
    "linked_services": "there are no linked services here",
}

RUN = {
    "get_file_names_from_datastore": "run.get_file_names()",
    "get_submitted_run": "Run.get_context() in the job, or ws.get_run(run_id)",
    "log_confusion_matrix": "run.log_table(name, {...}) or run.log_image(name, plot=fig)",
    "log_accuracy_table": "run.log_table(name, {...})",
    "log_predictions": "run.log_table(name, {...})",
    "log_residuals": "run.log_table(name, {...})",
    "get_environment": "run.get_details()['environment'] and Environment.get(ws, name, version)",
    "get_secret": "environment variables of the Environment (environment_variables=...)",
    "get_secrets": "environment variables of the Environment (environment_variables=...)",
    "get_details_with_logs": "run.get_details() and run.get_logs()",
    "create_children": "run.child_run(name) for each child",
    "properties": "run.get_properties()",
    "tags": "run.get_tags()",
    "name": "run.display_name",
    "type": "run.info.kind ('job', 'sweep', 'pipeline' or 'interactive')",
}


# Names importable from the cloud service's SDK -> what to use here.
NAMES = {
    "AmlCompute": "ComputeTarget.create(ws, name, LocalPool(max_nodes=...)); "
    "LocalPool takes provisioning_configuration's max_nodes and idle_seconds_before_scaledown",
    "ComputeInstance": "a LocalPool, SshMachine or RayCluster target; `cumulo notebook` "
    "starts JupyterLab beside a workspace",
    "RunConfiguration": "ScriptRunConfig(source_directory, script, arguments, compute_target, "
    "environment), which holds what a RunConfiguration held",
    "CondaDependencies": "Environment(name, pip_requirements=[...]) or "
    "Environment.from_pip_requirements(name, file_path)",
    "AciWebservice": "DeploymentConfig(replicas=, resources=, auth=) with Model.deploy",
    "AksWebservice": "DeploymentConfig(replicas=, resources=, auth=) with Model.deploy",
    "LocalWebservice": "DeploymentConfig() with Model.deploy: every endpoint is served locally",
    "Webservice": "Endpoint(ws, name), what Model.deploy returns",
    "ScriptRun": "Run",
    "StepRun": "Run",
    "HyperDriveRun": "SweepRun",
    "Estimator": "ScriptRunConfig",
    "ContainerImage": "Model.deploy, which serves without building an image",
    "Keyvault": "environment variables of the Environment (environment_variables=...)",
    "DataReference": "Dataset.File.from_files(path=(datastore, 'folder'))",
    "DataPath": "a (datastore, 'path') pair",
    "InteractiveLoginAuthentication": "Workspace.connect(url, name, token)",
    "ServicePrincipalAuthentication": "Workspace.connect(url, name, token)",
    "ComputeTargetException": "CumuloError",
    "WebserviceException": "CumuloError",
}

ENVIRONMENT = {
    "from_conda_specification": "Environment.from_pip_requirements(name, file_path) with the "
    "packages as pip requirements (there is no conda here)",
    "from_existing_conda_environment": "Environment.from_pip_requirements(name, file_path) "
    "(there is no conda here)",
    "from_docker_image": "Environment(name, pip_requirements=[...]) (there are no images here)",
    "from_dockerfile": "Environment(name, pip_requirements=[...]) (there are no images here)",
    "docker": "Environment(name, pip_requirements=[...]): jobs run in a cached virtual "
    "environment, not in a container",
    "save_to_directory": "env.spec.to_dict() (the registered spec, as JSON)",
}

DATASTORE = {
    **{
        name: "Datastore.register_s3(ws, name, bucket, prefix, endpoint_url=...) for a bucket "
        "or Datastore.register_local(ws, name, path) for a folder"
        for name in (
            "register_azure_blob_container",
            "register_azure_file_share",
            "register_azure_data_lake_gen2",
            "register_azure_sql_database",
        )
    },
    "upload_files": "datastore.upload(path, target_path) for each file, or for their folder",
    "as_mount": "a registered dataset: Dataset.File.from_files(path=(datastore, 'folder'))"
    ".register(ws, name), then ds.as_named_input(name).as_mount()",
    "as_download": "a registered dataset: Dataset.File.from_files(path=(datastore, 'folder'))"
    ".register(ws, name), then ds.as_named_input(name).as_download()",
}

PIPELINE = {
    "validate": "nothing: Pipeline(ws, steps) checks the graph as it is made and raises "
    "on an error, naming the steps",
}

PUBLISHED_PIPELINE = {
    "disable": "Schedule.disable() on its schedules: a published version stays, and "
    "runs only when submitted",
    "enable": "Schedule.enable() on its schedules",
}

SCRIPT_RUN_CONFIG = {
    "run_config": "src.environment and src.compute_target, which ScriptRunConfig holds itself",
}

MODEL = {
    "package": "Model.deploy(ws, name, models, inference_config, deployment_config), which "
    "serves without building an image",
    "update": "model.add_tags({...}) and model.set_alias(name)",
    "add_properties": "model.add_tags({...})",
}

CLOUD_ACCOUNT = (
    "Workspace.get(name) (embedded, or on $CUMULO_URL), Workspace.connect(url, name, token) "
    "or Workspace.from_config(): there is no cloud account here"
)
OPEN_A_WORKSPACE = (
    " A workspace is opened with Workspace.get(name), Workspace.connect(url, name, token) "
    "or Workspace.from_config()."
)
WORKSPACE_ARGS = {
    name: CLOUD_ACCOUNT
    for name in (
        "subscription_id",
        "resource_group",
        "workspace_name",
        "auth",
        "location",
        "cloud",
        "id",
        "sku",
        "create_resource_group",
        "storage_account",
        "key_vault",
        "app_insights",
        "container_registry",
    )
}


class BadArguments(InvalidInput, TypeError):
    """A call given parameters it does not take; the message says which it takes."""


def arguments(
    owner: str, renamed: dict[str, str] | None = None, hint: str = ""
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Turn a call's argument mismatch into a ``BadArguments`` naming what to use.

    ``renamed`` maps v1 parameter names to what takes their place here; ``hint``
    ends the message of any other mismatch. The check
    runs only when the call raised a ``TypeError``, and only one from the
    signature (the body never ran) is replaced; any other is raised as it was.
    """
    table = renamed or {}

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except TypeError:
                try:
                    signature.bind(*args, **kwargs)
                except TypeError as mismatch:
                    raise _bad(owner, signature, kwargs, table, mismatch, hint) from None
                raise

        return checked

    return wrap


def _bad(
    owner: str,
    signature: inspect.Signature,
    given: dict[str, object],
    table: dict[str, str],
    mismatch: TypeError,
    hint: str,
) -> BadArguments:
    takes = [p for p in signature.parameters if p not in ("self", "cls") and not p.startswith("_")]
    for name in given:
        if name in table:
            return BadArguments(
                f"{owner}: {name}= is a parameter of the cloud service's SDK, not here: "
                f"use {table[name]}."
            )
    return BadArguments(f"{owner}: {mismatch}; it takes {', '.join(takes)}.{hint}")


class NotHere(InvalidInput, AttributeError):
    """A v1 name with no twin here; the message says what to use instead."""


class NotHereName(InvalidInput, ImportError):
    """A name importable from the cloud service's SDK that Cumulo does not have."""


def missing_name(name: str) -> NotHereName | None:
    """The error for ``from cumulo import name`` when ``name`` is a v1 name, else None."""
    use = NAMES.get(name)
    if use is None:
        return None
    return NotHereName(f"{name} is a name of the cloud service's SDK, not here: use {use}.")


class RefusesV1Names(type):
    """Metaclass: a v1 class-level name (``Environment.from_conda_specification``) says
    what to use instead; the class lists them in ``_v1_names``."""

    def __getattr__(cls, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        raise refuse(cls.__name__, name, cls.__dict__.get("_v1_names", {}))


def refuse(owner: str, name: str, table: dict[str, str]) -> NotHere | AttributeError:
    """The error for ``owner.name``: guidance when ``name`` is a v1 name, else plain."""
    use = table.get(name)
    if use is None:
        return AttributeError(f"{owner!r} object has no attribute {name!r}")
    return NotHere(f"{owner}.{name} is a name of the cloud service's SDK, not here: use {use}.")
