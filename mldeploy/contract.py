"""The answer keys of the HTTP API, spelled once: the server, the command line, the file scorer
and the Python client (``mldeploy_client``) all import them from here. Pure constants, no imports,
so the client can use them without Flask or the modeler."""

# One row's answer.
CLASS = "Class"  # a classifier's label, in its own JSON type
PROBABILITIES = "Probabilities"  # {class name: probability}, when the model has predict_proba
PREDICTION = "Prediction"  # a regressor's value
INPUT = "Input"  # the row as the model read it (one-row answers)
WARNINGS = "Warnings"  # out-of-range values and unseen categories
EXPLANATION = "Explanation"  # ?explain=true
# Every answer.
MODEL_VERSION = "ModelVersion"
# A batch's answer: {PREDICTIONS: [one answer per row, in input order], MODEL_VERSION: ...}.
PREDICTIONS = "Predictions"

# Error bodies: {MESSAGE: "...", ERRORS: [{ROW, FIELD, PROBLEM}, ...]}.
MESSAGE = "message"
ERRORS = "errors"
ROW = "row"
FIELD = "field"
PROBLEM = "problem"
