"""Names from the cloud service's v1 SDK that have no twin here, and what to use instead.

Scripts and notebooks written for the cloud service reach for these; each is
answered with a ``NotHere`` error that says what to call, never a bare
``AttributeError`` (it still is one, so ``hasattr`` stays False).
"""

from __future__ import annotations

from cumulo.core.errors import InvalidInput

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
}


class NotHere(InvalidInput, AttributeError):
    """A v1 name with no twin here; the message says what to use instead."""


def refuse(owner: str, name: str, table: dict[str, str]) -> NotHere | AttributeError:
    """The error for ``owner.name``: guidance when ``name`` is a v1 name, else plain."""
    use = table.get(name)
    if use is None:
        return AttributeError(f"{owner!r} object has no attribute {name!r}")
    return NotHere(f"{owner}.{name} is a name of the cloud service's SDK, not here: use {use}.")
