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
from modeler.modeler import Modeler

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
