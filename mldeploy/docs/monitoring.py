"""How the monitoring routes are documented in OpenAPI: ``POST /feedback``,
``GET /model/performance`` and ``GET /model/drift`` (their operations and inline schemas)."""

from __future__ import annotations

from mldeploy.docs.openapi import Operation
from mldeploy.monitoring.feedback import MAX_ROW, REQUEST_ID_PATTERN
from mldeploy.monitoring.windows import MAX_ROWS, WINDOW, WINDOW_PATTERN

NULLABLE_NUMBER = {"type": ["number", "null"]}
LABEL = {"type": ["string", "number", "boolean"]}

FEEDBACK_ITEM = {
    "type": "object",
    "properties": {
        "request_id": {
            "type": "string",
            "pattern": REQUEST_ID_PATTERN.pattern,
            "description": "The X-Request-ID of the /predict (or /v2) answer",
        },
        "row": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_ROW,
            "description": "The row of a batch, from 0; may be left out for a request of one row",
        },
        "actual": {**LABEL, "description": "The true class (one the model knows), or a regressor's true value"},
    },
    "required": ["request_id", "actual"],
    "additionalProperties": False,
}
FEEDBACK_BODY = {"oneOf": [FEEDBACK_ITEM, {"type": "array", "items": FEEDBACK_ITEM, "minItems": 1}]}
FEEDBACK_ANSWER = {
    "type": "object",
    "properties": {
        "recorded": {"type": "integer", "description": "Rows labelled by this request"},
        "replaced": {"type": "integer", "description": "Of those, rows whose earlier label was replaced"},
        "rows": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "request_id": {"type": "string"},
                    "row": {"type": "integer"},
                    "version": {"type": "string"},
                    "actual": LABEL,
                    "predicted": {"type": ["string", "number", "boolean", "null"]},
                },
                "required": ["request_id", "row", "version", "actual", "predicted"],
            },
        },
    },
    "required": ["recorded", "replaced", "rows"],
}

WINDOW_PARAMETER = {
    "name": WINDOW,
    "in": "query",
    "required": False,
    "description": f"The last N logged rows (e.g. 500), or those answered in the last span (30m, 1h, 7d); "
    f"at most {MAX_ROWS} rows either way. Default: MLDEPLOY_MONITORING_WINDOW rows",
    "schema": {"type": "string", "pattern": WINDOW_PATTERN},
}
VERSION_PARAMETER = {
    "name": "version",
    "in": "query",
    "required": False,
    "description": "A saved version's id; default: the current version",
    "schema": {"type": "string"},
}
WINDOW_ANSWER = {"type": "object", "description": "The window as read: rows, or a span with its row cap"}

PERFORMANCE_ANSWER = {
    "type": "object",
    "properties": {
        "version": {"type": "string"},
        "task": {"enum": ["classification", "regression"]},
        "labelled": {"type": "integer", "description": "Rows with ground truth in the window"},
        "accuracy": {**NULLABLE_NUMBER, "description": "Classifier: share of labelled rows predicted right"},
        "correct": {"type": "integer"},
        "classes": {
            "type": "object",
            "description": "Classifier, per class: precision, recall, f1 (null when undefined), support",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "precision": NULLABLE_NUMBER,
                    "recall": NULLABLE_NUMBER,
                    "f1": NULLABLE_NUMBER,
                    "support": {"type": "integer"},
                },
            },
        },
        "confusion_matrix": {
            "type": "object",
            "description": "Classifier: rows are the actual class, columns the predicted one, in labels order",
            "properties": {
                "labels": {"type": "array"},
                "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
            },
        },
        "mae": NULLABLE_NUMBER,
        "rmse": NULLABLE_NUMBER,
        "r2": NULLABLE_NUMBER,
        "window": WINDOW_ANSWER,
        "answered": {
            "type": ["object", "null"],
            "description": "When the first and last labelled rows of the window were answered",
        },
    },
    "required": ["version", "task", "labelled", "window"],
}

DRIFT_FIGURES = {
    "type": "object",
    "properties": {
        "psi": {**NULLABLE_NUMBER, "description": "Population stability index (null: no rows)"},
        "p_value": {**NULLABLE_NUMBER, "description": "KS (numbers) or chi-squared (categories) p-value"},
        "verdict": {"enum": ["stable", "moderate", "major", None], "description": "PSI < 0.1, < 0.25, else major"},
        "test": {"enum": ["ks_2samp", "chi2_contingency"]},
        "rows": {"type": "integer"},
        "missing": {"type": "integer"},
        "unseen": {"type": "integer", "description": "Categories: values training never saw"},
    },
    "required": ["psi", "p_value", "verdict"],
}
DRIFT_ANSWER = {
    "type": "object",
    "properties": {
        "version": {"type": "string"},
        "rows": {"type": "integer", "description": "Logged rows compared"},
        "window": WINDOW_ANSWER,
        "thresholds": {"type": "object"},
        "features": {"type": "object", "additionalProperties": DRIFT_FIGURES},
        "prediction": DRIFT_FIGURES,
    },
    "required": ["version", "rows", "features", "prediction"],
}

FEEDBACK = Operation(
    "Ground truth for logged predictions",
    ok=FEEDBACK_ANSWER,
    errors=(400, 404, 409, 503),
    body=FEEDBACK_BODY,
    description='`{"request_id": ..., "actual": ..., "row": i}` or a list of them (all or none). '
    "404 names a request id or row the prediction log does not hold; 400 a label the version that "
    "answered does not know (or a non-number for a regressor); a second label for a row replaces the "
    "first. 409 while the prediction log is off.",
)
PERFORMANCE = Operation(
    "Live performance from ground truth",
    ok=PERFORMANCE_ANSWER,
    errors=(400, 404, 409, 503),
    query=(WINDOW_PARAMETER, VERSION_PARAMETER),
    description="The logged predictions with feedback, over the window: accuracy, per-class precision, "
    "recall and F1 and the confusion matrix for a classifier; MAE, RMSE and R² for a regressor. 404 for "
    "an unknown version; 409 while the prediction log is off.",
)
DRIFT = Operation(
    "Drift of live inputs and predictions against training",
    ok=DRIFT_ANSWER,
    errors=(400, 404, 409, 503),
    query=(WINDOW_PARAMETER, VERSION_PARAMETER),
    description="Per feature and for the predictions: PSI over the training reference's bins, a KS "
    "(numbers) or chi-squared (categories) p-value, and a verdict (stable below 0.1, moderate below "
    "0.25, else major). 404 for an unknown version; 409 for a version saved without a training "
    "reference, or while the prediction log is off.",
)
