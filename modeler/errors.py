"""Domain errors raised by the modeler package.

They carry no HTTP status codes: the service maps each class to a status in one place
(``mldeploy.http.errors``), and scripts can catch them like any other exception.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

# The problem strings are owned by modeler.cells (with the rules that report them); importable
# from here as well, where callers look for what an error can say.
from modeler.cells import BOOLEAN, MISSING, NOT_A_NUMBER, NOT_FINITE, NULL, TOO_LARGE, UNKNOWN  # noqa: F401


class ModelerError(Exception):
    """Base class of every error the modeler raises on purpose.

    ``str()`` is for anyone, clients of a server included, so it never holds a file-system path;
    the path concerned, when there is one, is the ``path`` attribute, and :meth:`detail` gives
    both (for logs and the command line, run where the path means something).
    """

    def __init__(self, *args: object, path: str | os.PathLike | None = None) -> None:
        super().__init__(*args)
        self.path = None if path is None else str(path)

    def detail(self) -> str:
        """The message with the path concerned, for logs and the command line."""
        return f"{self} ({self.path})" if self.path else str(self)


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of one input row (``row`` is None for whole-input problems)."""

    row: int | None
    field: str | None
    problem: str

    def as_dict(self) -> dict:
        """The error as a plain dict, ready for JSON."""
        return asdict(self)

    def __str__(self) -> str:
        where = [f"row {self.row}"] if self.row is not None else []
        if self.field is not None:
            where.append(repr(self.field))
        return f"{' '.join(where) or 'input'}: {self.problem}"


class InvalidInput(ModelerError, ValueError):
    """The input cannot be scored; ``errors`` names each bad field and its problem."""

    def __init__(self, errors: list[FieldError], message: str = "Invalid input") -> None:
        self.errors = list(errors)
        self.message = message
        shown = "; ".join(str(e) for e in self.errors[:5])
        more = f" (+{len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        super().__init__(f"{message}: {shown}{more}" if shown else message)


class TooManyRows(InvalidInput):
    """A batch is larger than the configured limit."""


class DataError(ModelerError, ValueError):
    """The training data cannot be used (missing target, non-numeric features, too few rows)."""


class ModelNotReady(ModelerError, RuntimeError):
    """No model can be served right now; the message says why."""


class ModelIntegrityError(ModelNotReady):
    """A saved artifact does not match its metadata (hash mismatch, truncated, unreadable)."""


class IncompatibleModelError(ModelNotReady):
    """A saved model was written by another scikit-learn version."""


class VersionNotFound(ModelerError, LookupError):
    """The requested model version does not exist."""


class VersionUnusable(ModelerError):
    """A saved version cannot be made current (corrupt, or saved by another scikit-learn)."""


class ReadOnlyModelDir(ModelerError):
    """The model directory cannot be written: serving works, training and switching do not."""


# How a field changes between the current version and a new training (SchemaChange.errors).
ADDED, REMOVED, MOVED = "added", "removed", "moved"


class SchemaChange(ModelerError):
    """A training would change the model's input fields (clients would have to change): refused
    unless asked for. ``errors`` names each field that changes (``added``, ``removed``, ``moved``)."""

    def __init__(self, current: str, old: Sequence[str], new: Sequence[str]) -> None:
        gone = [f for f in old if f not in new]
        added = [f for f in new if f not in old]
        kept_old = [f for f in old if f in new]
        kept_new = [f for f in new if f in old]
        moved = [f for f, g in zip(kept_old, kept_new, strict=True) if f != g]
        self.errors = (
            [FieldError(None, f, ADDED) for f in added]
            + [FieldError(None, f, REMOVED) for f in gone]
            + [FieldError(None, f, MOVED) for f in moved]
        )
        changes = "; ".join(
            f"{what} {', '.join(fields)}"
            for what, fields in ((ADDED, added), (REMOVED, gone), ("in another order", moved))
            if fields
        )
        super().__init__(
            f"the training data's input fields differ from those of the current version {current} ({changes}): "
            "clients would have to change; train with allow_schema_change to mean it"
        )


class MissingExtra(ModelerError, ImportError):
    """An optional feature needs packages that are not installed; the message says which."""
