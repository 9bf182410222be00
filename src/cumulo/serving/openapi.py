"""OpenAPI for an endpoint: input and output schemas from an MLflow signature or a sample."""

from __future__ import annotations

import json
from typing import Any

_TYPES = {
    "double": {"type": "number", "format": "double"},
    "float": {"type": "number", "format": "float"},
    "long": {"type": "integer", "format": "int64"},
    "integer": {"type": "integer", "format": "int32"},
    "boolean": {"type": "boolean"},
    "string": {"type": "string"},
    "binary": {"type": "string", "format": "byte"},
    "datetime": {"type": "string", "format": "date-time"},
}
_DTYPES = {
    "float": "number",
    "int": "integer",
    "uint": "integer",
    "bool": "boolean",
    "str": "string",
}
_ERROR = {
    "type": "object",
    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
}


def schema_of_sample(value: Any) -> dict[str, Any]:
    """A JSON schema that the sample value fits, with the sample as its example."""
    return {**_infer(value), "example": value}


def _infer(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        return {"type": "array", "items": _infer(value[0]) if value else {}}
    if isinstance(value, dict):
        return {"type": "object", "properties": {str(k): _infer(v) for k, v in value.items()}}
    return {}


def _column_schemas(specs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s.get("name", f"c{i}"): _TYPES.get(s.get("type", ""), {}) for i, s in enumerate(specs)}


def _tensor_schema(spec: dict[str, Any]) -> dict[str, Any]:
    tensor = spec.get("tensor-spec") or {}
    dtype = str(tensor.get("dtype", ""))
    leaf = {"type": next((v for k, v in _DTYPES.items() if dtype.startswith(k)), "number")}
    schema: dict[str, Any] = leaf
    for _ in range(max(1, len(tensor.get("shape") or [-1]))):
        schema = {"type": "array", "items": schema}
    return schema


def mlflow_request_schema(signature: dict[str, Any] | None) -> dict[str, Any]:
    """The ``/invocations`` body: exactly one of the four input forms (MLflow's protocol)."""
    specs = _decode(signature, "inputs")
    if isinstance(specs, list) and specs and all(s.get("type") != "tensor" for s in specs):
        columns = _column_schemas(specs)
        names = list(columns)
        row = {"type": "object", "properties": columns}
        forms: dict[str, Any] = {
            "dataframe_split": {
                "type": "object",
                "properties": {
                    "columns": {"type": "array", "items": {"type": "string", "enum": names}},
                    "data": {
                        "type": "array",
                        "items": {"type": "array", "items": {}, "minItems": len(names)},
                    },
                },
                "required": ["columns", "data"],
            },
            "dataframe_records": {"type": "array", "items": row},
            # Named columns take named values: rows of plain values break the signature.
            "instances": {"type": "array", "items": row},
            "inputs": {"type": "object", "properties": {n: {"type": "array"} for n in names}},
        }
        example = {"dataframe_split": {"columns": names, "data": [[_zero(c) for c in specs]]}}
    else:
        tensor = _tensor_schema(specs[0]) if isinstance(specs, list) and specs else {}
        forms = {
            "dataframe_split": {"type": "object"},
            "dataframe_records": {"type": "array"},
            "instances": tensor or {"type": "array"},
            "inputs": tensor or {},
        }
        example = None
    schema: dict[str, Any] = {
        "type": "object",
        "description": "Exactly one of dataframe_split, dataframe_records, instances, inputs.",
        "oneOf": [
            {"type": "object", "properties": {k: v, "params": {"type": "object"}}, "required": [k]}
            for k, v in forms.items()
        ],
    }
    if example is not None:
        schema["example"] = example
    return schema


def mlflow_response_schema(signature: dict[str, Any] | None) -> dict[str, Any]:
    specs = _decode(signature, "outputs")
    if isinstance(specs, list) and specs and specs[0].get("type") == "tensor":
        predictions = _tensor_schema(specs[0])
    elif isinstance(specs, list) and specs:
        predictions = {
            "type": "array",
            "items": {"type": "object", "properties": _column_schemas(specs)},
        }
    else:
        predictions = {"type": "array", "items": {}}
    return {"type": "object", "properties": {"predictions": predictions}}


def _decode(signature: dict[str, Any] | None, key: str) -> Any:
    if not signature or not signature.get(key):
        return None
    raw = signature[key]
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None


def _zero(spec: dict[str, Any]) -> Any:
    kind = spec.get("type")
    if kind in ("double", "float"):
        return 0.0
    if kind in ("long", "integer"):
        return 0
    if kind == "boolean":
        return False
    return ""


def deployment_schemas(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(request, response) schemas of one deployment's spec."""
    if spec.get("sample_input") is not None:
        request = schema_of_sample(spec["sample_input"])
    elif spec.get("kind") == "mlflow":
        request = mlflow_request_schema(spec.get("signature"))
    else:
        request = {"description": "Any body; the entry script's run(raw_data) reads it."}
    if spec.get("sample_output") is not None:
        response = schema_of_sample(spec["sample_output"])
    elif spec.get("kind") == "mlflow":
        response = mlflow_response_schema(spec.get("signature"))
    else:
        response = {"description": "What the entry script's run() returns, as JSON."}
    return request, response


def endpoint_openapi(workspace: str, endpoint: str, table: dict[str, Any]) -> dict[str, Any]:
    """The endpoint's OpenAPI document; schemas from the deployment with the most traffic."""
    deployments = table.get("deployments", {})
    traffic = table.get("traffic", {})
    names = sorted(deployments, key=lambda n: -traffic.get(n, 0))
    spec = deployments[names[0]]["spec"] if names else {}
    request, response = deployment_schemas(spec)
    security: list[dict[str, list[str]]] = (
        [] if table.get("auth_mode") == "none" else [{"bearer": []}]
    )
    errors = {"content": {"application/json": {"schema": _ERROR}}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"Endpoint {endpoint}",
            "version": "1",
            "description": f"Scoring endpoint {endpoint!r} of workspace {workspace!r}.",
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": security,
        "paths": {
            f"/endpoints/{workspace}/{endpoint}/score": {
                "post": {
                    "summary": "Score",
                    "parameters": [
                        {
                            "name": "cumulo-model-deployment",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "enum": sorted(deployments)},
                            "description": "Send the request to this deployment only.",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": request}},
                    },
                    "responses": {
                        "200": {
                            "description": "The model's answer.",
                            "content": {"application/json": {"schema": response}},
                        },
                        "400": {"description": "Bad input.", **errors},
                        "401": {"description": "Missing or wrong key.", **errors},
                        "500": {"description": "The model failed (see its logs).", **errors},
                        "503": {"description": "No replica is ready.", **errors},
                    },
                }
            }
        },
    }
