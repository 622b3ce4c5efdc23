"""The model layer of mldeploy: data, fit, predict, persistence and versions. Never imports Flask."""

from modeler.errors import (
    DataError,
    FieldError,
    IncompatibleModelError,
    InvalidInput,
    ModelerError,
    ModelIntegrityError,
    ModelNotReady,
    VersionNotFound,
)
from modeler.modeler import Modeler

__all__ = [
    "DataError",
    "FieldError",
    "IncompatibleModelError",
    "InvalidInput",
    "ModelIntegrityError",
    "ModelNotReady",
    "Modeler",
    "ModelerError",
    "VersionNotFound",
]
