"""DecisionTreeClassifier parameters a caller may set, and their validation with field names."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from inspect import signature

from modeler.errors import BOOLEAN, FieldError, InvalidInput

INVALID_PARAMS = "Invalid training parameters"


@functools.cache
def tree_param_names() -> frozenset[str]:
    """DecisionTreeClassifier's parameters a caller may set (imports scikit-learn on first use,
    so that serving a saved model never does)."""
    from sklearn.tree import DecisionTreeClassifier

    # random_state belongs to the Modeler: it also fixes the holdout split.
    return frozenset(signature(DecisionTreeClassifier).parameters) - {"random_state"}


def unknown_param_problem() -> str:
    """The problem text for a parameter DecisionTreeClassifier does not have."""
    return f"unknown tree parameter; valid: {', '.join(sorted(tree_param_names()))}"


def check_tree_params(params: Mapping[str, object]) -> dict[str, object]:
    """Return ``params`` as a dict, or raise InvalidInput naming every unknown or bad parameter.

    Values are checked one by one against scikit-learn's own constraints, so each error names
    its parameter and says what is allowed.
    """
    from sklearn.tree import DecisionTreeClassifier

    errors: list[FieldError] = []
    for name, value in params.items():
        if name not in tree_param_names():
            errors.append(FieldError(None, str(name), unknown_param_problem()))
        elif isinstance(value, bool):
            # sklearn takes True for an int (max_depth=True is depth 1); no tree parameter is a flag.
            errors.append(FieldError(None, name, BOOLEAN))
        else:
            try:
                # Private, but it is the check fit() itself runs first; pinned sklearn, tested.
                DecisionTreeClassifier(**{name: value})._validate_params()
            except (ValueError, TypeError) as exc:
                errors.append(FieldError(None, name, str(exc)))
    if errors:
        raise InvalidInput(errors, INVALID_PARAMS)
    return dict(params)
