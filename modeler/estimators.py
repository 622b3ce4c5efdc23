"""Estimators a training may use by name, and their parameters checked by their own rules.

Any classifier or regressor of ``sklearn.tree``, ``sklearn.ensemble``, ``sklearn.linear_model``,
``sklearn.neighbors`` and ``sklearn.svm`` (found with ``sklearn.utils.all_estimators``, so the
list follows the installed scikit-learn). A parameter is checked on its own against the class's
constraints (``_validate_params``, the check ``fit`` itself runs first), so each error names its
parameter: :class:`~modeler.errors.InvalidInput` with one FieldError per bad parameter.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from inspect import signature

from modeler.errors import BOOLEAN, FieldError, InvalidInput

DEFAULT_ESTIMATOR = "DecisionTreeClassifier"
MODULES = ("sklearn.tree", "sklearn.ensemble", "sklearn.linear_model", "sklearn.neighbors", "sklearn.svm")
ESTIMATOR_FIELD = "estimator"
INVALID_PARAMS = "Invalid training parameters"


@functools.cache
def trainable() -> dict[str, type]:
    """``{class name: class}`` of the classifiers and regressors a training may use by name."""
    from sklearn.utils import all_estimators

    found = {}
    for kind in ("classifier", "regressor"):
        for name, cls in all_estimators(type_filter=kind):
            if cls.__module__.startswith(MODULES) and not name.startswith("_"):
                found[name] = cls
    return dict(sorted(found.items()))


def estimator_class(name: str) -> type:
    """The class called ``name``; InvalidInput naming ``estimator`` when it is not trainable."""
    cls = trainable().get(name) if isinstance(name, str) else None
    if cls is None:
        problem = f"unknown estimator {name!r}; valid: {', '.join(trainable())}"
        raise InvalidInput([FieldError(None, ESTIMATOR_FIELD, problem)], INVALID_PARAMS)
    return cls


def param_names(cls: type) -> frozenset[str]:
    """The parameters a caller may set (random_state belongs to the Modeler: it also fixes the
    holdout split)."""
    return frozenset(signature(cls).parameters) - {"random_state"}


def check_params(cls: type, params: Mapping[str, object]) -> dict[str, object]:
    """``params`` as a dict, or InvalidInput naming every unknown or bad parameter of ``cls``."""
    defaults = {name: p.default for name, p in signature(cls).parameters.items()}
    names = param_names(cls)
    errors: list[FieldError] = []
    for name, value in params.items():
        if name not in names:
            valid = ", ".join(sorted(names))
            errors.append(FieldError(None, str(name), f"unknown {cls.__name__} parameter; valid: {valid}"))
        elif (
            isinstance(value, bool)
            and isinstance(defaults.get(name), (int, float))
            and not isinstance(defaults.get(name), bool)
        ):
            # scikit-learn takes True for an int (n_estimators=True is 1): a flag here is a mistake.
            errors.append(FieldError(None, name, BOOLEAN))
        else:
            try:
                cls(**{name: value})._validate_params()
            except (ValueError, TypeError) as exc:
                errors.append(FieldError(None, name, str(exc)))
    if errors:
        raise InvalidInput(errors, INVALID_PARAMS)
    return dict(params)


def check_estimator_params(estimator: str | object, params: Mapping[str, object]) -> dict[str, object]:
    """``params`` checked for ``estimator`` (a class name or an instance); InvalidInput naming
    each bad one (or ``estimator`` when the name is unknown)."""
    if not params and not isinstance(estimator, str):
        return {}
    build(estimator, params, None)
    return dict(params)


def build(estimator: str | object, params: Mapping[str, object], random_state: int | None) -> object:
    """A fresh, unfitted estimator: the class called ``estimator`` with ``params``, or a clone of
    the instance given with ``params`` set on it; ``random_state`` where it takes one and none
    was given."""
    from sklearn.base import clone

    if isinstance(estimator, str):
        cls = estimator_class(estimator)
        made = cls(**check_params(cls, params))
    else:
        made = clone(estimator)
        errors = []
        for name, value in params.items():  # nested names (step__param) are the instance's own
            try:
                made.set_params(**{name: value})
                made._validate_params()
            except (ValueError, TypeError) as exc:
                errors.append(FieldError(None, str(name), str(exc)))
        if errors:
            raise InvalidInput(errors, INVALID_PARAMS)
    if "random_state" in made.get_params(deep=False) and made.get_params(deep=False)["random_state"] is None:
        made.set_params(random_state=random_state)
    return made
