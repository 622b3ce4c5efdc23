"""The model layer of mldeploy: data, fit, predict, persistence and versions. Never imports Flask."""

from modeler.errors import (
    DataError,
    FieldError,
    IncompatibleModelError,
    InvalidInput,
    MissingExtra,
    ModelerError,
    ModelIntegrityError,
    ModelNotReady,
    ReadOnlyModelDir,
    VersionNotFound,
    VersionUnusable,
)

__all__ = [
    "DataError",
    "FieldError",
    "IncompatibleModelError",
    "InvalidInput",
    "MissingExtra",
    "ModelIntegrityError",
    "ModelNotReady",
    "Modeler",
    "ModelerError",
    "ReadOnlyModelDir",
    "VersionNotFound",
    "VersionUnusable",
]


def __getattr__(name: str) -> object:
    # `from modeler import Modeler` still works, but importing only the errors (as the command
    # line and the HTTP client do) does not pull in numpy.
    if name == "Modeler":
        from modeler.modeler import Modeler

        return Modeler
    raise AttributeError(f"module 'modeler' has no attribute {name!r}")
