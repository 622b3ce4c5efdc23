"""The OpenAPI 3.1 description of the service, served at ``/openapi.json``.

:data:`OPERATIONS` is the table of documented routes: documenting a new route is one entry there,
an :class:`Operation` naming its success answer and the error statuses it can give. Statuses that
follow from the configuration are added by :func:`build_spec` itself: 401 on protected routes when
``MLDEPLOY_API_KEYS`` is set, 401/403 on admin routes, 429 when ``MLDEPLOY_RATE_LIMIT`` is set,
and 413 on routes that read a body. ``tests/test_openapi.py`` fails when a route registered in
the app has no entry here, or an entry has no route.

The row schemas come from the served model's metadata (its feature names), so a model trained on
other columns is documented with its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mldeploy import auth
from modeler.validation import FLOAT32_MAX

OPENAPI_VERSION = "3.1.0"
TITLE = "mldeploy"
API_VERSION = "1.0.0"
SECURITY_SCHEME = "bearerAuth"
JSON = "application/json"

REASONS = {
    400: "Invalid input: malformed JSON, or fields that are missing, unknown, not numbers, not finite",
    401: "No valid bearer key (the answer carries WWW-Authenticate)",
    403: "Admin endpoints are disabled: MLDEPLOY_ADMIN_KEY is not set",
    404: "Not found",
    413: "Body over MLDEPLOY_MAX_CONTENT_LENGTH bytes, or a batch over MLDEPLOY_MAX_BATCH_ROWS rows",
    415: "The body is not JSON (send Content-Type: application/json)",
    429: "Over MLDEPLOY_RATE_LIMIT; retry after Retry-After seconds",
    503: "The model cannot be made ready; retry after Retry-After seconds",
}


def ref(name: str) -> dict:
    """A reference to a schema in ``components.schemas``."""
    return {"$ref": f"#/components/schemas/{name}"}


@dataclass(frozen=True)
class Operation:
    """One documented method of one route.

    ``ok`` is the schema of the 200 JSON answer (or a ready ``responses`` entry when
    ``ok_content`` names another media type); ``errors`` lists the statuses the route itself
    can give. ``access`` is ``"open"`` (never needs a key), ``"api"`` (needs one of
    ``MLDEPLOY_API_KEYS`` when set) or ``"admin"`` (needs ``MLDEPLOY_ADMIN_KEY``).
    """

    summary: str
    ok: dict
    errors: Sequence[int] = ()
    body: dict | None = None
    access: str = "api"
    ok_content: str = JSON
    description: str = ""
    parameters: Sequence[dict] = field(default_factory=tuple)
    ok_headers: Mapping[str, dict] = field(default_factory=dict)


# ---- the routes ---------------------------------------------------------------------------------

DOCS_PAGE = Operation("Swagger UI for this document", ok={"type": "string"}, ok_content="text/html", access="open")

OPERATIONS: dict[str, dict[str, Operation]] = {
    "/predict": {
        "post": Operation(
            "Predict one row or a batch",
            ok={"oneOf": [ref("Prediction"), ref("BatchPrediction")]},
            errors=(400, 415, 503),
            body=ref("PredictRequest"),
            description="One row (named features, or `features` in feature order) answers one prediction; "
            "a batch (an array of rows, or `instances`) answers `Predictions` in input order.",
        )
    },
    "/health": {"get": Operation("Liveness: the process answers", ok=ref("Health"), access="open")},
    "/ready": {
        "get": Operation(
            "Readiness: the model is loaded",
            ok=ref("Ready"),
            errors=(503,),
            access="open",
            description="503 (with the reason and Retry-After) until the model is loaded or trained.",
        )
    },
    "/model": {"get": Operation("Metadata of the model version being served", ok=ref("ModelMetadata"), errors=(503,))},
    "/metrics": {"get": Operation("Prometheus metrics", ok={"type": "string"}, ok_content="text/plain", access="open")},
    "/openapi.json": {"get": Operation("This document", ok={"type": "object"}, access="open")},
    "/docs": {"get": DOCS_PAGE},
    "/docs/": {"get": DOCS_PAGE},
    "/docs/{path}": {
        "get": Operation(
            "Swagger UI's static files (bundled with flask-swagger-ui, served from this host)",
            ok={},
            ok_content="*/*",
            errors=(404,),
            access="open",
            parameters=({"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},),
        )
    },
}


# ---- schemas ------------------------------------------------------------------------------------


def number_schema() -> dict:
    """A feature value: a finite number within float32's range (what the model can take)."""
    return {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}


def data_schemas(features: Sequence[str] | None, max_rows: int) -> dict[str, dict]:
    """Request and response schemas; rows are named after ``features`` when the model is known."""
    if features:
        row = {
            "type": "object",
            "properties": {name: number_schema() for name in features},
            "required": list(features),
            "additionalProperties": False,
        }
        values = {"type": "array", "items": number_schema(), "minItems": len(features), "maxItems": len(features)}
    else:  # model not loaded yet: the shapes without the names
        row = {"type": "object", "additionalProperties": number_schema(), "minProperties": 1}
        values = {"type": "array", "items": number_schema(), "minItems": 1}
    batch = {"type": "array", "minItems": 1, "maxItems": max_rows}
    probabilities = {"type": "object", "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1}}
    return {
        "Row": row,
        "FeatureValues": values,
        "PredictRequest": {
            "anyOf": [
                ref("Row"),
                {
                    "type": "object",
                    "properties": {"features": ref("FeatureValues")},
                    "required": ["features"],
                    "additionalProperties": False,
                },
                {**batch, "items": ref("Row")},
                {
                    "type": "object",
                    "properties": {"instances": {**batch, "items": {"anyOf": [ref("Row"), ref("FeatureValues")]}}},
                    "required": ["instances"],
                    "additionalProperties": False,
                },
            ]
        },
        "Prediction": {
            "type": "object",
            "properties": {
                "Class": {"type": "string"},
                "Input": {"type": "object", "additionalProperties": {"type": "number"}},
                "Probabilities": probabilities,
                "ModelVersion": {"type": "string"},
            },
            "required": ["Class", "Input", "Probabilities", "ModelVersion"],
        },
        "BatchPrediction": {
            "type": "object",
            "properties": {
                "Predictions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"Class": {"type": "string"}, "Probabilities": probabilities},
                        "required": ["Class", "Probabilities"],
                    },
                },
                "ModelVersion": {"type": "string"},
            },
            "required": ["Predictions", "ModelVersion"],
        },
        "Health": {
            "type": "object",
            "properties": {"status": {"const": "ok"}},
            "required": ["status"],
        },
        "Ready": {
            "type": "object",
            "properties": {"status": {"const": "ready"}, "ModelVersion": {"type": "string"}},
            "required": ["status", "ModelVersion"],
        },
        "NotReady": {
            "type": "object",
            "properties": {"status": {"const": "not ready"}, "message": {"type": "string"}},
            "required": ["status", "message"],
        },
        "ModelMetadata": {
            "type": "object",
            "properties": {
                "version": {"type": "string"},
                "trained_at": {"type": "string"},
                "feature_names": {"type": "array", "items": {"type": "string"}},
                "classes": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["version", "trained_at", "feature_names", "classes"],
        },
        "Error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "row": {"type": ["integer", "null"]},
                            "field": {"type": ["string", "null"]},
                            "problem": {"type": "string"},
                        },
                        "required": ["row", "field", "problem"],
                    },
                },
            },
            "required": ["message"],
        },
    }


# ---- assembling ---------------------------------------------------------------------------------

RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "string"}}}
WWW_AUTHENTICATE = {"WWW-Authenticate": {"description": "The scheme to use: Bearer", "schema": {"type": "string"}}}
REQUEST_ID = {
    "X-Request-ID": {
        "description": "The request's id: the client's X-Request-ID when it is 1-128 characters of "
        "[A-Za-z0-9._:-], else a new one. The server's log line for the request carries it.",
        "schema": {"type": "string"},
    }
}


def error_response(status: int, description: str | None = None, headers: Mapping[str, dict] | None = None) -> dict:
    """A JSON error answer."""
    return {
        "description": description or REASONS[status],
        "content": {JSON: {"schema": ref("Error")}},
        "headers": {**REQUEST_ID, **(headers or {})},
    }


def responses_of(path: str, op: Operation, config: Mapping[str, object]) -> dict:
    """Every answer ``op`` can give under ``config``."""
    ok_schema = {"content": {op.ok_content: {"schema": op.ok}}} if op.ok_content else {}
    responses: dict[str, dict] = {"200": {"description": "OK", **ok_schema, "headers": {**REQUEST_ID, **op.ok_headers}}}
    statuses = set(op.errors)
    if op.body is not None:
        statuses |= {400, 413, 415}
    if op.access == "admin":
        statuses |= {401, 403}
    elif op.access == "api" and auth.api_keys(config):
        statuses.add(401)
    if config.get("RATE_LIMIT") and op.access != "open" and not auth.is_open(path):
        statuses.add(429)
    for status in sorted(statuses):
        headers = {}
        if status in (429, 503):
            headers = RETRY_AFTER
        elif status == 401:
            headers = WWW_AUTHENTICATE
        responses[str(status)] = error_response(status, headers=headers)
    if path == "/ready" and "503" in responses:
        responses["503"]["content"][JSON]["schema"] = ref("NotReady")
    return responses


def operation_object(path: str, method: str, op: Operation, config: Mapping[str, object]) -> dict:
    """The OpenAPI operation object for one documented method."""
    doc: dict = {
        "operationId": f"{method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '') or 'root'}",
        "summary": op.summary,
        "responses": responses_of(path, op, config),
    }
    if op.description:
        doc["description"] = op.description
    if op.parameters:
        doc["parameters"] = list(op.parameters)
    if op.body is not None:
        doc["requestBody"] = {"required": True, "content": {JSON: {"schema": op.body}}}
    if op.access == "admin" or (op.access == "api" and auth.api_keys(config)):
        doc["security"] = [{SECURITY_SCHEME: []}]
    else:
        doc["security"] = []
    return doc


def build_spec(config: Mapping[str, object], features: Sequence[str] | None = None) -> dict:
    """The OpenAPI 3.1 document for an app with ``config`` serving a model with ``features``."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": TITLE,
            "version": API_VERSION,
            "description": "Predictions from a scikit-learn DecisionTree over HTTP. Every error is JSON "
            "with a `message`; bad input also lists each problem's row, field and problem.",
        },
        "paths": {
            path: {method: operation_object(path, method, op, config) for method, op in methods.items()}
            for path, methods in OPERATIONS.items()
        },
        "components": {
            "schemas": data_schemas(features, int(config.get("MAX_BATCH_ROWS", 10_000))),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "One of MLDEPLOY_API_KEYS (or MLDEPLOY_ADMIN_KEY for admin routes)",
                }
            },
        },
    }
