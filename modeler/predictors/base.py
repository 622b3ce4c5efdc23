"""The predictor seam: what answers rows for one model version, and what it says it can do.

A :class:`Predictor` is built once per loaded version and answers each request's rows in one
call (:meth:`Predictor.answer`), giving back :class:`Answers` in input order. Callers (the
Modeler, the HTTP answers, the V2 protocol, the file scorer) ask the answers for labels and
probabilities and never see how the model reached them: a tree's leaves, a forest's votes or an
estimator's own ``predict`` are each predictor's business.

A predictor whose answers come from a fixed set (one per leaf of a tree) also says which entry
of its :class:`AnswerTable` each row got; a caller can then derive something from each entry
once per version (the service serialises each entry's JSON once) and reuse it for every row.
"""

from __future__ import annotations

import collections
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, ClassVar, TypeVar

import numpy as np

from modeler.errors import FieldError, InvalidInput

if TYPE_CHECKING:
    from modeler.explanation import Explanation
    from modeler.validation import Rows

# What a predictor can answer (Predictor.capabilities).
LABELS = "labels"  # a class per row
PROBABILITIES = "probabilities"  # a probability per class per row
VALUE = "value"  # a regressor's number per row
EXPLANATION = "explanation"  # why, per row
# The field an explanation request is refused on (the HTTP query parameter has this name too).
EXPLAIN_FIELD = "explain"

T = TypeVar("T")


class AnswerTable:
    """The fixed set of answers a predictor gives: entry ``i`` has ``labels[i]`` and
    ``probabilities[i]`` (one column per class). Rows that land on the same entry get the same
    answer, so whatever a caller derives from the entries is worth keeping: :meth:`rendered`."""

    def __init__(self, classes: Sequence[str], labels: list[str], probabilities: np.ndarray) -> None:
        self.classes = tuple(classes)
        self.labels = labels
        self.probabilities = probabilities
        self.probability_dicts: list[dict[str, float]] = [
            dict(zip(self.classes, row, strict=True)) for row in probabilities.tolist()
        ]
        self._rendered: dict[Hashable, object] = {}

    def rendered(self, key: Hashable, render: Callable[[AnswerTable], T]) -> T:
        """``render(self)``, computed once per table (so once per model version) and kept under
        ``key``. Two threads may both render on first use; either result is kept, both are equal."""
        found = self._rendered.get(key)
        if found is None:
            found = self._rendered[key] = render(self)
        return found  # type: ignore[return-value]


class Answers(ABC):
    """A predictor's answers to one request's rows, in input order."""

    __slots__ = ()  # one is made per request: subclasses with slots stay light

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def labels(self) -> list:
        """The predicted class per row, each label in its own JSON type (an int label is an int)."""

    def label(self, row: int) -> str:
        """The predicted class of one row (a one-row request's answer, without building a list)."""
        return self.labels()[row]

    @abstractmethod
    def label_array(self) -> np.ndarray:
        """The predicted class per row as a numpy object array (fast for millions of rows)."""

    def label_counts(self) -> dict:
        """How many rows got each class, by label (in its own type), classes no row got left out."""
        return dict(collections.Counter(self.labels()))

    @abstractmethod
    def probabilities(self) -> np.ndarray:
        """Class probabilities, one row per input row, columns in the predictor's class order."""

    @abstractmethod
    def probability_dicts(self) -> list[dict[str, float]]:
        """Class probabilities per row as ``{class: probability}`` dicts (each its own copy)."""

    def values(self) -> np.ndarray:
        """A regressor's value per row (float64); TypeError for a classifier."""
        raise TypeError("a classifier answers labels, not values")

    def table_entries(self) -> tuple[AnswerTable, list[int]] | None:
        """``(table, entry per row)`` when every answer is an entry of a fixed table, else None."""
        return None


class ArrayAnswers(Answers):
    """Answers computed for the request's rows as arrays: labels (and probabilities, when the
    model has them) of a classifier, or a regressor's values. Probability dicts are keyed
    ``str(label)``; labels keep their own type (numpy scalars become Python ones)."""

    __slots__ = ("_labels", "_probabilities", "_values", "classes")

    def __init__(
        self,
        classes: Sequence[object],
        labels: np.ndarray | None = None,
        probabilities: np.ndarray | None = None,
        values: np.ndarray | None = None,
    ) -> None:
        self.classes = tuple(classes)
        self._labels = labels
        self._probabilities = probabilities
        self._values = values

    def __len__(self) -> int:
        return len(self._values if self._labels is None else self._labels)

    def _need_labels(self) -> np.ndarray:
        if self._labels is None:
            raise TypeError("a regressor answers values, not labels")
        return self._labels

    def labels(self) -> list:
        return self._need_labels().tolist()

    def label(self, row: int) -> object:
        value = self._need_labels()[row]
        return value.item() if isinstance(value, np.generic) else value

    def label_array(self) -> np.ndarray:
        return np.asarray(self.labels(), dtype=object)

    def probabilities(self) -> np.ndarray:
        if self._probabilities is None:
            raise TypeError("this model gives no probabilities")
        return self._probabilities

    def probability_dicts(self) -> list[dict[str, float]]:
        keys = [str(c) for c in self.classes]
        return [dict(zip(keys, row, strict=True)) for row in self.probabilities().tolist()]

    def values(self) -> np.ndarray:
        if self._values is None:
            raise TypeError("a classifier answers labels, not values")
        return self._values


class RowAnswers(Answers):
    """One row's answer held as Python values, as a compiled ensemble's one-row walk gives it: a
    classifier's label and probabilities, or a regressor's value. No numpy on the one-row path
    (each numpy call there costs a few µs, and far more with the cold caches of a server between
    requests); arrays are made only for a caller that asks for them."""

    __slots__ = ("classes", "label_value", "probability_values", "value")

    def __init__(
        self,
        classes: Sequence[object],
        label: object = None,
        probabilities: Sequence[float] | None = None,
        value: float | None = None,
    ) -> None:
        self.classes = tuple(classes)
        self.label_value = label.item() if isinstance(label, np.generic) else label
        self.probability_values = None if probabilities is None else tuple(probabilities)
        self.value = value

    def __len__(self) -> int:
        return 1

    def _need_label(self) -> object:
        if self.value is not None:
            raise TypeError("a regressor answers values, not labels")
        return self.label_value

    def labels(self) -> list:
        return [self._need_label()]

    def label(self, row: int) -> object:
        if row != 0:
            raise IndexError(f"one row answered, not row {row}")
        return self._need_label()

    def label_array(self) -> np.ndarray:
        return np.array(self.labels(), dtype=object)

    def label_counts(self) -> dict:
        return {self._need_label(): 1}

    def probabilities(self) -> np.ndarray:
        if self.probability_values is None:
            raise TypeError("this model gives no probabilities")
        return np.array([self.probability_values], dtype=np.float64)

    def probability_dicts(self) -> list[dict[str, float]]:
        if self.probability_values is None:
            raise TypeError("this model gives no probabilities")
        return [dict(zip(map(str, self.classes), self.probability_values, strict=True))]

    def values(self) -> np.ndarray:
        if self.value is None:
            raise TypeError("a classifier answers labels, not values")
        return np.array([self.value], dtype=np.float64)


class TableAnswers(Answers):
    """Answers that are entries of an :class:`AnswerTable`: a row costs one index."""

    __slots__ = ("entries", "table")

    def __init__(self, table: AnswerTable, entries: list[int] | np.ndarray) -> None:
        self.table = table
        self.entries = entries  # a list for one row: no numpy on the single-row path

    def __len__(self) -> int:
        return len(self.entries)

    def _entry_list(self) -> list[int]:
        entries = self.entries
        return entries if type(entries) is list else entries.tolist()

    def labels(self) -> list[str]:
        return list(map(self.table.labels.__getitem__, self._entry_list()))  # a C loop, not a Python one

    def label(self, row: int) -> str:
        return self.table.labels[self.entries[row]]

    def label_array(self) -> np.ndarray:
        return np.asarray(self.table.labels, dtype=object)[self.entries]

    def probabilities(self) -> np.ndarray:
        return self.table.probabilities[self.entries]

    def probability_dicts(self) -> list[dict[str, float]]:
        dicts = self.table.probability_dicts
        return [dict(dicts[entry]) for entry in self._entry_list()]

    def table_entries(self) -> tuple[AnswerTable, list[int]]:
        return self.table, self._entry_list()

    def label_counts(self) -> dict:
        entries = self.entries
        if type(entries) is list or entries.dtype.kind not in "iu":  # one row; or not indices
            return super().label_counts()
        # A batch's rows counted per table entry in one numpy pass, then summed per label (many
        # leaves share a class): a 10,000-row batch no longer builds a list of labels to tally.
        counts: dict = {}
        labels = self.table.labels
        tally = np.bincount(entries)
        for entry in np.flatnonzero(tally).tolist():
            counts[labels[entry]] = counts.get(labels[entry], 0) + int(tally[entry])
        return counts


class Predictor(ABC):
    """Answers rows for one loaded version. Subclasses say what they can do in ``capabilities``
    and know their library; none knows HTTP."""

    kind: ClassVar[str]
    # Which predictor answers (the metadata's "predictor": tree, ensemble, general).
    name: ClassVar[str] = "tree"
    capabilities: frozenset[str]
    classes: tuple  # labels in their own JSON type; () for a regressor
    # Whether number fields may be null (NaN) on this predictor's path.
    accepts_missing: bool = False

    def can(self, capability: str) -> bool:
        """Whether this predictor gives ``capability`` (LABELS, PROBABILITIES, VALUE, EXPLANATION)."""
        return capability in self.capabilities

    @abstractmethod
    def answer(self, rows: Rows, *, single: bool, use_estimator: bool = False) -> Answers:
        """The answers to validated ``rows`` (floats in feature order; ``single`` when the caller
        gave one row). ``use_estimator`` lets the predictor unpickle and call scikit-learn when
        that is faster (big in-process batches); a server never passes it."""

    @property
    @abstractmethod
    def estimator(self) -> object:
        """The fitted scikit-learn estimator (unpickled on first use where it was not yet)."""

    def compiled(self) -> bytes | None:
        """The predictor's own saved form, kept beside the pickle so a server can answer without
        unpickling (a tree's arrays); None when it has none."""
        return None

    def explain(self, features: Sequence[str], rows: Rows) -> list[Explanation]:
        """Why each row got its answer, in input order (when EXPLANATION is a capability)."""
        raise InvalidInput([FieldError(None, EXPLAIN_FIELD, f"a {self.kind} model gives no explanations")])
