"""The OpenAPI 3.1 description of the service, served at ``/openapi.json``.

Its paths come from the route table (:data:`mldeploy.routes.ROUTES`): each route names one
:class:`Operation` per method, defined here, saying its success answer and the error statuses it
can give. Statuses that follow from the configuration are added by :func:`build_spec` itself: 401
on protected routes when ``MLDEPLOY_API_KEYS`` is set, 401 on admin routes (and 403 while
``MLDEPLOY_ADMIN_KEY`` is unset), 429 when ``MLDEPLOY_RATE_LIMIT`` is set, and 400/413/415 on
routes that read a body.

The row schemas come from the served model's input schema (its fields, their types, ranges and
categories, whether null is accepted), and the answer schemas from what it answers (``Class`` and
``Probabilities``, or ``Prediction``), so an imported Pipeline or regressor is documented as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import mldeploy
from mldeploy.api.annotations import EXPLAIN, FALSE, TRUE
from mldeploy.api.v2.protocol import BYTES, DTYPES, LABEL, PREDICTION, PROBABILITIES, is_v2
from mldeploy.http import auth
from mldeploy.http.auth import Access
from modeler.cells import INT64_MAX, INT64_MIN
from modeler.loaded_model import LoadedModel
from modeler.predictors.base import EXPLANATION, VALUE
from modeler.predictors.base import PROBABILITIES as CAN_PROBABILITIES
from modeler.schema import BOOLEAN, INTEGER, NUMBER, TEXT, Field, Schema
from modeler.validation import FLOAT32_MAX

if TYPE_CHECKING:
    from mldeploy.routes import Route

OPENAPI_VERSION = "3.1.0"
TITLE = "mldeploy"
SECURITY_SCHEME = "bearerAuth"
ADMIN_SCHEME = "adminAuth"
JSON = "application/json"
BINARY = "application/octet-stream"
# A version's task (its metadata's "task").
CLASSIFICATION, REGRESSION = "classification", "regression"
# What the Open Inference Protocol's requests may name.
V2_DATATYPES = (*DTYPES, BYTES)
V2_OUTPUTS = (LABEL, PROBABILITIES, PREDICTION)

REASONS = {
    400: "Invalid input: malformed JSON, or fields that are missing, unknown, not numbers, not finite",
    401: "No valid bearer key (the answer carries WWW-Authenticate)",
    403: "Admin endpoints are disabled: MLDEPLOY_ADMIN_KEY is not set (a key was sent, none can pass)",
    404: "Not found",
    409: "The service's state refuses it: a read-only model folder, a corrupt or incompatible version, "
    "the prediction log off, a version without a training reference",
    413: "Body over MLDEPLOY_MAX_CONTENT_LENGTH bytes, or a batch over MLDEPLOY_MAX_BATCH_ROWS rows",
    415: "The body is not JSON (send Content-Type: application/json)",
    429: "Over MLDEPLOY_RATE_LIMIT; retry after Retry-After seconds",
    503: "The model cannot be made ready, or the prediction log's database cannot be reached; retry after "
    "Retry-After seconds",
}


def ref(name: str) -> dict:
    """A reference to a schema in ``components.schemas``."""
    return {"$ref": f"#/components/schemas/{name}"}


@dataclass(frozen=True)
class Operation:
    """How one method of one route is documented.

    ``ok`` is the schema of the success answer (status ``ok_status``), of media type
    ``ok_content`` (``ok_binary`` adds an ``application/octet-stream`` form); ``errors`` lists the
    statuses the route itself can give, ``error_bodies`` the schema of any that answers a body of
    its own; ``body`` is the JSON request body's schema; ``query`` the query parameters (path
    parameters are read from the path). Who may call it is the route's (``Route.access``).
    """

    summary: str
    ok: dict
    errors: Sequence[int] = ()
    body: dict | None = None
    ok_content: str = JSON
    description: str = ""
    query: Sequence[dict] = field(default_factory=tuple)
    ok_binary: bool = False
    ok_status: int = 200
    body_required: bool = True
    error_bodies: Mapping[int, str] = field(default_factory=dict)


def flag_pattern(words: Iterable[str], *, empty: bool = True) -> str:
    """A regex for the words an on/off query flag accepts: any case, spaces around, or (with
    ``empty``) nothing at all."""
    spelled = ("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in w) for w in words)
    return rf"^\s*({'|'.join(sorted(w for w in spelled if w))}){'?' if empty else ''}\s*$"


EXPLAIN_PARAMETER = {
    "name": EXPLAIN,
    "in": "query",
    "required": False,
    "description": "true (or 1, yes, on, or no value) adds each row's decision path as `Explanation`",
    "schema": {"type": "string", "pattern": flag_pattern(TRUE | FALSE)},
}
# For a model that gives no explanations (neither a tree nor a tree ensemble): only "false"
# spellings, for `explain=true` (or a bare `explain`) is a 400 that says so.
NO_EXPLAIN_PARAMETER = {
    **EXPLAIN_PARAMETER,
    "description": "this model gives no explanations: only a false value (0, false, no, off) is taken",
    "schema": {"type": "string", "pattern": flag_pattern(FALSE, empty=False)},
}


# ---- the operations (the route table in mldeploy/routes.py says which route has which) ---------

PREDICT = Operation(
    "Predict one row or a batch",
    ok={"oneOf": [ref("Prediction"), ref("BatchPrediction")]},
    errors=(400, 415, 503),
    body=ref("PredictRequest"),
    query=(EXPLAIN_PARAMETER,),
    description="One row (named features, or `features` in feature order) answers one prediction; "
    "a batch (an array of rows, `instances`, or `columns` with `data`) answers `Predictions` in input "
    "order. The rows hold this model's own fields and types (see `Row`). A classifier answers `Class` "
    "(the label in its own JSON type) and `Probabilities` when the model has them; a regressor answers "
    "`Prediction`. A row with a number outside its training range or a category not seen in training "
    "also gets `Warnings`. `explain=true` works for trees and tree ensembles, and is a 400 for other models.",
)
PLAYGROUND = Operation("The playground page", ok={"type": "string"}, ok_content="text/html")
VERSIONS = Operation("Saved versions, oldest first, the current one marked", ok=ref("Versions"))
TRAIN = Operation(
    "Train a new version and make it current (admin)",
    ok=ref("ModelMetadata"),
    ok_status=201,
    errors=(400, 409, 503),
    body=ref("TrainRequest"),
    body_required=False,
    description='Optional body `{"estimator": NAME, "params": {parameter: value}}`: a scikit-learn '
    "estimator class name (default: the current version's estimator, a DecisionTreeClassifier out of "
    "the box) and its parameters, checked by the estimator's own rules (an unknown estimator or an "
    "unknown or invalid parameter is a 400 naming it). 409 when the model folder is read-only.",
)
ACTIVATE = Operation(
    "Make a saved version current: a rollback (admin)",
    ok=ref("ModelMetadata"),
    errors=(400, 404, 409, 503),
    body=ref("ActivateRequest"),
    description="404 for an unknown version; 409 for a corrupt one, one saved by another "
    "scikit-learn, or a read-only model folder.",
)
HEALTH = Operation("Liveness: the process answers", ok=ref("Health"))
READY = Operation(
    "Readiness: the model is loaded",
    ok=ref("Ready"),
    errors=(503,),
    error_bodies={503: "NotReady"},
    description="503 (with the reason and Retry-After) until the model is loaded or trained.",
)
MODEL = Operation("Metadata of the model version being served", ok=ref("ModelMetadata"), errors=(503,))
METRICS = Operation("Prometheus metrics", ok={"type": "string"}, ok_content="text/plain")
SPEC = Operation("This document", ok={"type": "object"})
DOCS_PAGE = Operation("Swagger UI for this document", ok={"type": "string"}, ok_content="text/html")
DOCS_ASSET = Operation(
    "Swagger UI's static files (bundled with flask-swagger-ui, served from this host)",
    ok={},
    ok_content="*/*",
    errors=(404,),
)
# Open Inference Protocol (KServe V2). Each path also answers with a trailing slash.
V2_SERVER = Operation("Open Inference Protocol: server metadata", ok=ref("V2ServerMetadata"))
V2_LIVE = Operation("Open Inference Protocol: liveness", ok=ref("V2Live"))
V2_READY = Operation(
    "Open Inference Protocol: readiness", ok=ref("V2Ready"), errors=(503,), error_bodies={503: "V2NotReady"}
)
V2_MODEL = Operation("Model metadata", ok=ref("V2ModelMetadata"), errors=(404, 503))
V2_MODEL_READY = Operation("Model readiness", ok=ref("V2ModelReady"), errors=(404, 503))
V2_INFER = Operation(
    "Inference with tensors",
    ok=ref("V2InferenceResponse"),
    ok_binary=True,
    errors=(400, 404, 503),
    body=ref("V2InferenceRequest"),
    description="One FP32/FP64 tensor of shape [N, n_features] in feature order (a model of numbers), or "
    "one tensor per feature of shape [N], typed after its field: FP32/FP64 for a number, INT64/INT32 "
    "for an integer, BYTES for text, BOOL for a boolean (`GET /v2/models/{model_name}` lists them). "
    "A classifier outputs `label` (BYTES [N], INT64 for integer labels) and, when it has them, "
    "`probabilities` (FP64 [N, n_classes]); a regressor outputs `prediction` (FP64 [N]). "
    "The binary tensor extension (`Inference-Header-Content-Length`, then raw little-endian bytes) "
    "is accepted too, and answered as `application/octet-stream` when asked for.",
)


# ---- schemas ------------------------------------------------------------------------------------


def number_schema() -> dict:
    """A feature value: a finite number within float32's range (what the model can take)."""
    return {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}


# JSON Schema types of the schema's field types (modeler.schema).
FIELD_JSON_TYPES = {NUMBER: "number", INTEGER: "integer", TEXT: "string", BOOLEAN: "boolean"}
# A text field's known categories are listed in its description up to this many.
SHOWN_CATEGORIES = 20


@dataclass(frozen=True)
class DocumentedModel:
    """What the document says of the served model: its input schema, task, class labels,
    whether it answers probabilities, and its version."""

    schema: Schema
    task: str
    classes: tuple[object, ...]
    probabilities: bool
    version: str
    explains: bool = True

    @classmethod
    def of(cls, model: LoadedModel) -> DocumentedModel:
        """The description of a loaded version."""
        predictor = model.predictor
        regressor = predictor.can(VALUE)
        return cls(
            model.schema,
            REGRESSION if regressor else CLASSIFICATION,
            () if regressor else tuple(model.classes),
            predictor.can(CAN_PROBABILITIES),
            model.version,
            predictor.can(EXPLANATION),
        )


def field_schema(f: Field) -> dict:
    """The JSON Schema of one field's value: its type (numbers within float32's range, integers
    within int64's), ``null``
    too where the model takes missing values; what is known of it in words."""
    schema: dict = {"type": FIELD_JSON_TYPES[f.type]}
    if f.type == INTEGER:
        schema.update(minimum=INT64_MIN, maximum=INT64_MAX)
    elif f.numeric:
        schema.update(minimum=-FLOAT32_MAX, maximum=FLOAT32_MAX)
    words = []
    if f.numeric and f.min is not None and f.max is not None:
        words.append(f"training range {f.min:g} to {f.max:g} (outside it, the answer carries Warnings)")
    if f.categories is not None and f.type == TEXT:
        shown = ", ".join(map(str, f.categories[:SHOWN_CATEGORIES]))
        more = f" and {len(f.categories) - SHOWN_CATEGORIES} more" if len(f.categories) > SHOWN_CATEGORIES else ""
        words.append(f"seen in training: {shown}{more} (another value answers with Warnings)")
    if not f.known:
        words.append("type guessed: the model was imported without a sample")
    if f.nullable:
        schema["type"] = [schema["type"], "null"]
        words.append("null for a missing value")
    if words:
        schema["description"] = "; ".join(words)
    return schema


def label_schema(classes: Sequence[object]) -> dict:
    """A class label in its own JSON type, one of the model's classes."""
    if classes and all(isinstance(c, bool) for c in classes):
        kind = "boolean"
    elif classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        kind = "integer"
    elif classes and all(isinstance(c, str) for c in classes):
        kind = "string"
    else:
        return {"type": ["string", "integer", "number", "boolean"]}
    return {"type": kind, "enum": list(classes)}


def answer_schemas(model: DocumentedModel | None) -> tuple[dict, list[str]]:
    """The properties every row's answer has for ``model``, and which are required: ``Class``
    (and ``Probabilities`` when the model has them) for a classifier, ``Prediction`` for a regressor."""
    probabilities = {"type": "object", "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1}}
    if model is None:  # not loaded yet: either kind
        return {"Class": {}, "Probabilities": probabilities, "Prediction": {"type": "number"}}, []
    if model.task == REGRESSION:
        return {"Prediction": {"type": "number", "description": "The regressor's value"}}, ["Prediction"]
    properties: dict = {"Class": label_schema(model.classes)}
    if not model.probabilities:
        return properties, ["Class"]
    names = [str(c) for c in model.classes]
    properties["Probabilities"] = {
        **probabilities,
        "properties": {name: {"type": "number", "minimum": 0, "maximum": 1} for name in names},
        "required": names,
        "description": "One probability per class, keyed by the class label as text",
    }
    return properties, ["Class", "Probabilities"]


def v2_outputs(model: DocumentedModel | None) -> list[str]:
    """The /v2 outputs the served model answers (every kind's while no model is loaded): a
    request naming another is refused, so the document does not offer it."""
    if model is None:
        return list(V2_OUTPUTS)
    if model.task == REGRESSION:
        return [PREDICTION]
    return [LABEL, PROBABILITIES] if model.probabilities else [LABEL]


def data_schemas(model: DocumentedModel | None, max_rows: int) -> dict[str, dict]:
    """Request and response schemas: rows hold the served model's own fields and types, the
    answers its own keys (``Class`` and ``Probabilities``, or ``Prediction``)."""
    if model is not None:
        fields = model.schema.fields
        names = list(model.schema.names)
        row = {
            "type": "object",
            "properties": {f.name: field_schema(f) for f in fields},
            "required": names,
            "additionalProperties": False,
        }
        if model.schema.numeric_only:
            values = {"type": "array", "items": number_schema(), "minItems": len(names), "maxItems": len(names)}
        else:
            values = {
                "type": "array",
                "prefixItems": [field_schema(f) for f in fields],
                "items": False,
                "minItems": len(names),
                "maxItems": len(names),
            }
        # Every feature once, in any order: then each data row holds one value per feature.
        columns = {
            "type": "array",
            "items": {"enum": names},
            "uniqueItems": True,
            "minItems": len(names),
            "maxItems": len(names),
        }
        input_values: dict = {f.name: field_schema(f) for f in fields}
    else:  # model not loaded yet: the shapes without the names
        row = {"type": "object", "additionalProperties": number_schema(), "minProperties": 1}
        values = {"type": "array", "items": number_schema(), "minItems": 1}
        columns = {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "minItems": 1}
        input_values = {}
    positional = model is not None and model.schema.positional
    # The row limit is the operator's setting, answered with 413 (Content Too Large) like the byte
    # limit: said in words rather than as maxItems, which would promise the 400 of a schema violation.
    batch = {
        "type": "array",
        "minItems": 1,
        "description": f"At most {max_rows} rows (MLDEPLOY_MAX_BATCH_ROWS); a larger batch answers 413",
    }
    warnings = {
        "type": "array",
        "description": "Values the model did not see in training: a number outside its training range "
        "(`range`), a category not among those seen (the prediction still stands)",
        "items": {
            "type": "object",
            "properties": {
                "field": {"type": "string"},
                "value": {},
                "range": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
            },
            "required": ["field", "value"],
        },
    }
    answer, required = answer_schemas(model)
    features_form: dict = {
        "type": "object",
        "properties": {"features": ref("FeatureValues")},
        "required": ["features"],
        "additionalProperties": False,
    }
    if positional:
        features_form["description"] = "The model was fitted on a bare array: its fields are x0, x1, ... in order"
    return {
        "Row": row,
        "FeatureValues": values,
        "PredictRequest": {
            "anyOf": [
                ref("Row"),
                features_form,
                {**batch, "items": ref("Row")},
                {
                    "type": "object",
                    "properties": {"instances": {**batch, "items": {"anyOf": [ref("Row"), ref("FeatureValues")]}}},
                    "required": ["instances"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "description": "A batch column-wise: the names once, then each row's values in their order",
                    "properties": {"columns": columns, "data": {**batch, "items": ref("FeatureValues")}},
                    "required": ["columns", "data"],
                    "additionalProperties": False,
                },
            ]
        },
        "Prediction": {
            "type": "object",
            "properties": {
                **answer,
                "Input": {
                    "type": "object",
                    "properties": input_values,
                    "description": "The row as the model read it",
                },
                "ModelVersion": {"type": "string"},
                "Warnings": warnings,
                "Explanation": {"type": "object"},
            },
            "required": [*required[:1], "Input", *required[1:], "ModelVersion"],
        },
        "BatchPrediction": {
            "type": "object",
            "properties": {
                "Predictions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {**answer, "Warnings": warnings, "Explanation": {"type": "object"}},
                        "required": required,
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
                "classes": {"type": "array", "description": "Class labels in their own JSON type (a classifier)"},
                "task": {"enum": [CLASSIFICATION, REGRESSION]},
                "estimator": {"type": "string", "description": "The scikit-learn class, e.g. RandomForestClassifier"},
                "schema": {
                    "type": "object",
                    "description": "The input fields in model order: each one's type (number, integer, text, "
                    "boolean), whether null is accepted, the training range or the categories seen",
                    "properties": {
                        "positional": {"type": "boolean"},
                        "fields": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "type": {"enum": list(FIELD_JSON_TYPES)},
                                    "nullable": {"type": "boolean"},
                                    "min": {"type": ["number", "null"]},
                                    "max": {"type": ["number", "null"]},
                                    "categories": {"type": ["array", "null"]},
                                    "known": {"type": "boolean"},
                                },
                                "required": ["name", "type", "nullable"],
                            },
                        },
                    },
                    "required": ["positional", "fields"],
                },
            },
            "required": ["version", "trained_at", "feature_names", "schema", "task"],
        },
        "Versions": {
            "type": "object",
            "properties": {
                "current": {"type": ["string", "null"]},
                "versions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"version": {"type": "string"}, "current": {"type": "boolean"}},
                        "required": ["version", "current"],
                    },
                },
            },
            "required": ["current", "versions"],
        },
        "TrainRequest": {
            "type": "object",
            "properties": {
                "estimator": {
                    "type": "string",
                    "minLength": 1,
                    "description": "A scikit-learn estimator class name, e.g. RandomForestClassifier (default: "
                    "the current version's estimator)",
                },
                "params": {"type": "object", "description": "The estimator's parameters, checked by its own rules"},
                "allow_schema_change": {
                    "type": "boolean",
                    "description": "Train even when the data's input fields differ from the current version's "
                    "(else 409 naming each field)",
                },
            },
            "additionalProperties": False,
        },
        "ActivateRequest": {
            "type": "object",
            "properties": {"version": {"type": "string", "minLength": 1}},
            "required": ["version"],
            "additionalProperties": False,
        },
        "V2Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
        "V2ServerMetadata": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "extensions": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["name", "version", "extensions"],
        },
        "V2Live": {"type": "object", "properties": {"live": {"const": True}}, "required": ["live"]},
        "V2Ready": {"type": "object", "properties": {"ready": {"const": True}}, "required": ["ready"]},
        "V2NotReady": {
            "type": "object",
            "properties": {"ready": {"const": False}, "error": {"type": "string"}},
            "required": ["ready", "error"],
        },
        "V2ModelReady": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "ready": {"const": True}},
            "required": ["name", "ready"],
        },
        "V2ModelMetadata": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": ref("V2TensorMetadata")},
                "outputs": {"type": "array", "items": ref("V2TensorMetadata")},
            },
            "required": ["name", "platform", "inputs", "outputs"],
        },
        "V2TensorMetadata": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "datatype": {"type": "string"},
                "shape": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["name", "datatype", "shape"],
        },
        "V2InferenceRequest": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "inputs": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "datatype": {"enum": list(V2_DATATYPES)},
                            # No dimension is 0: an empty batch is refused (400), as on /predict.
                            "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1},
                            "data": {"type": "array"},
                            "parameters": {"type": "object"},
                        },
                        "required": ["name", "datatype", "shape"],
                    },
                },
                "outputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"name": {"enum": v2_outputs(model)}, "parameters": {"type": "object"}},
                        "required": ["name"],
                    },
                },
                "parameters": {"type": "object"},
            },
            "required": ["inputs"],
        },
        "V2InferenceResponse": {
            "type": "object",
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "outputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "datatype": {"type": "string"},
                            "shape": {"type": "array", "items": {"type": "integer"}},
                            "data": {"type": "array"},
                            "parameters": {"type": "object"},
                        },
                        "required": ["name", "datatype", "shape"],
                    },
                },
            },
            "required": ["model_name", "model_version", "outputs"],
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
        "[A-Za-z0-9._:-], else a new UUIDv7 (32 hex digits, in time order). The server's log line "
        "for the request carries it.",
        "schema": {"type": "string"},
    }
}
# Headers an error answer carries beside X-Request-ID, by status.
ERROR_HEADERS = {401: WWW_AUTHENTICATE, 429: RETRY_AFTER, 503: RETRY_AFTER}


def error_response(status: int, schema: str = "Error", headers: Mapping[str, dict] | None = None) -> dict:
    """A JSON error answer."""
    return {
        "description": REASONS[status],
        "content": {JSON: {"schema": ref(schema)}},
        "headers": {**REQUEST_ID, **(headers or {})},
    }


def security_scheme(access: Access, config: Mapping[str, object]) -> str | None:
    """The bearer scheme a route of ``access`` needs under ``config``; None when it needs no key."""
    if access is Access.ADMIN:
        return ADMIN_SCHEME
    if access is Access.API and auth.api_keys(config):
        return SECURITY_SCHEME
    return None


def responses_of(path: str, op: Operation, access: Access, config: Mapping[str, object]) -> dict:
    """Every answer ``op`` can give under ``config``."""
    content = {op.ok_content: {"schema": op.ok}}
    if op.ok_binary:
        content[BINARY] = {"schema": {"type": "string", "format": "binary"}}
    responses: dict[str, dict] = {str(op.ok_status): {"description": "OK", "content": content, "headers": REQUEST_ID}}
    statuses = set(op.errors)
    if op.body is not None:
        statuses |= {400, 413, 415}
    if security_scheme(access, config) is not None:
        statuses.add(401)
    if access is Access.ADMIN and not config.get("ADMIN_KEY"):
        statuses.add(403)  # a key was sent, but no admin key is set for it to match
    if config.get("RATE_LIMIT") and access is not Access.OPEN:
        statuses.add(429)
    # The Open Inference Protocol's routes answer errors as {"error": ...} (mldeploy.http.errors).
    error_schema = "V2Error" if is_v2(path) else "Error"
    for status in sorted(statuses):
        schema = op.error_bodies.get(status, error_schema)
        responses[str(status)] = error_response(status, schema, ERROR_HEADERS.get(status))
    return responses


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: ``/v2/models/<string:model_name>`` is ``/v2/models/{model_name}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def path_parameter(name: str, known: Mapping[str, Sequence[str]]) -> dict:
    """A path parameter; its only accepted values when the server knows them (the model's name)."""
    schema: dict = {"type": "string"}
    if known.get(name):
        schema["enum"] = list(known[name])
    return {"name": name, "in": "path", "required": True, "schema": schema}


def operation_object(
    path: str,
    method: str,
    op: Operation,
    access: Access,
    config: Mapping[str, object],
    known: Mapping[str, Sequence[str]],
    queries: Mapping[str, dict] | None = None,
) -> dict:
    """The OpenAPI operation object for one documented method; ``queries`` replaces query
    parameters by name (what the served model takes)."""
    doc: dict = {
        # Unique per path and method, even for /docs and /docs/.
        "operationId": method + re.sub(r"[^A-Za-z0-9]", "_", path),
        "summary": op.summary,
        "responses": responses_of(path, op, access, config),
    }
    if op.description:
        doc["description"] = op.description
    query = [(queries or {}).get(p["name"], p) for p in op.query]
    parameters = [path_parameter(name, known) for name in re.findall(r"{(\w+)}", path)] + query
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        doc["requestBody"] = {"required": op.body_required, "content": {JSON: {"schema": op.body}}}
    scheme = security_scheme(access, config)
    doc["security"] = [{scheme: []}] if scheme else []
    return doc


def build_spec(
    config: Mapping[str, object],
    routes: Iterable[Route],
    model: DocumentedModel | None = None,
    model_names: Sequence[str] = (),
) -> dict:
    """The OpenAPI 3.1 document of ``routes`` for an app with ``config`` serving ``model`` (None
    while no model is loaded), and the models ``model_names`` (default: ``MLDEPLOY_MODEL_NAME``
    alone)."""
    version = model.version if model is not None else None
    names = list(model_names) or [str(config.get("MODEL_NAME", ""))]
    known = {"model_name": names, "model_version": [version] if version else []}
    queries = {EXPLAIN: NO_EXPLAIN_PARAMETER} if model is not None and not model.explains else {}
    paths: dict[str, dict] = {}
    for route in routes:
        path = openapi_path(route.path)
        paths[path] = {
            method: operation_object(path, method, op, route.access, config, known, queries)
            for method, op in route.operations.items()
        }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": TITLE,
            # One version for the package, this document and the Open Inference Protocol's /v2.
            "version": mldeploy.__version__,
            "description": "Predictions from a scikit-learn model over HTTP (out of the box a DecisionTree "
            "on Iris; any fitted estimator or Pipeline can be imported). Every error is JSON "
            "with a `message`; bad input also lists each problem's row, field and problem. Every /v2 "
            "path also answers with a trailing slash (the Open Inference Protocol writes `/v2/`).",
        },
        "paths": paths,
        "components": {
            "schemas": data_schemas(model, int(config.get("MAX_BATCH_ROWS", 10_000))),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "One of MLDEPLOY_API_KEYS (MLDEPLOY_ADMIN_KEY passes too)",
                },
                ADMIN_SCHEME: {"type": "http", "scheme": "bearer", "description": "MLDEPLOY_ADMIN_KEY"},
            },
        },
    }
