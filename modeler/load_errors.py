"""Domain errors of reading a user's model file and of compiling what it holds.

Like every modeler error they carry no HTTP status; the service maps them in one place
(``mldeploy.http.errors``). No message holds a file-system path: it may reach a client.
"""

from __future__ import annotations

from modeler.errors import ModelerError


class ModelFileError(ModelerError, ValueError):
    """A model file cannot be used: unreadable, of an unknown kind, or not a pickle at all."""


class UntrustedType(ModelFileError):
    """The file needs a type or function outside the allowed set; it was refused before it ran.

    ``type_name`` is the dotted name the file asked for, e.g. ``posix.system``.
    """

    def __init__(self, type_name: str, reason: str | None = None) -> None:
        self.type_name = type_name
        self.reason = reason or (
            "it is not a scikit-learn, numpy, scipy or pandas type, and it was not named as trusted"
        )
        super().__init__(f"refused to load {type_name}: {self.reason}")


class IncompatibleModelFile(ModelFileError):
    """The file was pickled by another scikit-learn version (``InconsistentVersionWarning``)."""


class InvalidTrust(ModelerError, ValueError):
    """A trusted name given by the operator is not a dotted ``module.Name``."""


class NotCompilable(ModelerError, ValueError):
    """The estimator has no compiled path (unsupported class, loss, init estimator or feature kind);
    the message says what, so that the caller can serve it with the general predictor instead."""
