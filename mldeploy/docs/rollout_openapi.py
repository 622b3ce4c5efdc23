"""OpenAPI operations of the routes for several models, pinned versions and rollouts
(``mldeploy.api.models``); the route table (``mldeploy.routes``) names them beside their paths."""

from __future__ import annotations

import dataclasses

from mldeploy.docs import openapi
from mldeploy.docs.openapi import Operation

NULLABLE_NUMBER = {"type": ["number", "null"]}
ROLLOUT = {
    "type": "object",
    "description": "A rollout: the candidate version against the baseline (the version current when it started)",
    "properties": {
        "id": {"type": "string"},
        "model": {"type": "string"},
        "candidate": {"type": "string"},
        "baseline": {"type": "string"},
        "mode": {"enum": ["canary", "shadow"]},
        "percent": {"type": "number"},
        "state": {"enum": ["active", "promoted", "aborted"]},
        "started_at": {"type": "string"},
        "ended_at": {"type": ["string", "null"]},
        "reason": {"type": ["string", "null"]},
    },
    "required": ["id", "model", "candidate", "baseline", "mode", "percent", "state", "started_at"],
}
ARM = {
    "type": "object",
    "properties": {
        "version": {"type": "string"},
        "requests": {"type": "integer"},
        "rows": {"type": "integer"},
        "errors": {"type": "integer"},
        "error_rate": NULLABLE_NUMBER,
        "latency_ms": {"type": "object", "properties": {"p50": NULLABLE_NUMBER, "p99": NULLABLE_NUMBER}},
        "classes": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
    "required": ["version", "requests", "errors", "latency_ms", "classes"],
}
ROLLOUT_ANSWER = {
    "type": "object",
    "properties": {"model": {"type": "string"}, "rollout": {"oneOf": [ROLLOUT, {"type": "null"}]}},
    "required": ["model", "rollout"],
}
STATUS_ANSWER = {
    "type": "object",
    "properties": {
        **ROLLOUT_ANSWER["properties"],
        "arms": {"type": "object", "properties": {"baseline": ARM, "candidate": ARM}},
        "candidate_share": NULLABLE_NUMBER,
        "agreement": {
            "type": "object",
            "properties": {
                "compared_rows": {"type": "integer"},
                "agreed_rows": {"type": "integer"},
                "rate": NULLABLE_NUMBER,
                "dropped": {"type": "integer"},
            },
        },
        # Each version's figures as GET /model/performance gives them; null while the log is off.
        "live_performance": {
            "type": ["object", "null"],
            "properties": {"baseline": {"type": "object"}, "candidate": {"type": "object"}},
        },
    },
    "required": ["model", "rollout"],
}
MODEL_LIST = {
    "type": "object",
    "properties": {
        "default": {"type": "string"},
        "models": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "current": {"type": ["string", "null"]},
                    "default": {"type": "boolean"},
                    "rollout": {"oneOf": [ROLLOUT, {"type": "null"}]},
                },
                "required": ["name", "current", "default", "rollout"],
            },
        },
    },
    "required": ["default", "models"],
}

MODELS = Operation("Every model served, with its current version and rollout", ok=MODEL_LIST)
NAMED_PREDICT = dataclasses.replace(
    openapi.PREDICT,
    summary="Predict with one model (as /predict does for the default one)",
    errors=(400, 404, 415, 503),
    description="The bodies and answers of /predict, for the model named in the path (the body described "
    "here holds the default model's fields; another model takes its own, which GET /v2/models/NAME lists); "
    "while the model has a rollout, `ModelVersion` says which version answered. 404 for an unknown model.",
)
PINNED_PREDICT = dataclasses.replace(
    openapi.PREDICT,
    summary="Predict with one saved version of a model, current or not",
    errors=(400, 404, 409, 415, 503),
    description="The bodies and answers of /predict, from the version named in the path (loaded on "
    "first use and kept in a bounded cache, MLDEPLOY_VERSION_CACHE). 404 naming an unknown model or "
    "version; 409 for a version that cannot be loaded (corrupt, or saved by another scikit-learn).",
)
ROLLOUT_STATUS = Operation(
    "The model's last rollout and how candidate and baseline compare over it",
    ok=STATUS_ANSWER,
    errors=(404,),
    description="Requests, errors, latency p50/p99, classes per version, agreement on the same rows, and "
    "each version's live performance from ground truth (POST /feedback) since the rollout started; "
    "counted across every worker and replica sharing the model directory.",
)
START_BODY = {
    "type": "object",
    "properties": {
        "version": {"type": "string", "minLength": 1},
        "percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100, "default": 10},
        "shadow": {"type": "boolean", "default": False},
    },
    "required": ["version"],
    "additionalProperties": False,
}
ROLLOUT_START = Operation(
    "Start a canary or a shadow rollout of a saved version (admin)",
    ok=ROLLOUT_ANSWER,
    ok_status=201,
    errors=(400, 404, 409, 503),
    body=START_BODY,
    description="A canary sends `percent` of the model's requests to the candidate (sticky per "
    "X-Request-Key); a shadow sends it a copy of each after the answer went out. 409 while a rollout "
    "is active, for the current version, or for a version taking other input fields.",
)
ROLLOUT_PROMOTE = Operation(
    "Make the rollout's candidate current and end the rollout (admin)",
    ok=ROLLOUT_ANSWER,
    errors=(400, 404, 409, 503),
    body={"type": "object", "additionalProperties": False},
    body_required=False,
    description="409 when the model has no active rollout.",
)
ROLLOUT_ABORT = Operation(
    "End the rollout; the current version answers everything (admin)",
    ok=ROLLOUT_ANSWER,
    errors=(400, 404, 409),
    body={
        "type": "object",
        "properties": {"reason": {"type": "string", "pattern": r"\S"}},
        "additionalProperties": False,
    },
    body_required=False,
    description="409 when the model has no active rollout.",
)
