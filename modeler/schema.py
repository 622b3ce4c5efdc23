"""The input schema of a model: its fields in order, each with a type, and what is known of it.

The schema comes from the model, never from a hand-kept list: the names from the estimator's
``feature_names_in_`` (``x0``, ``x1``, ... for a model fitted on a bare array, which is then
called positionally), the types, categories and ranges from a sample of its data (the training
data, or the ``--sample`` given at import), whether ``null`` is accepted from scikit-learn's
input tags (``allow_nan``). Without a sample, what the estimator itself knows is used (a fitted
OneHotEncoder's or OrdinalEncoder's categories); every other column is a number whose type was
only guessed (``known: false``).

It is saved in a version's metadata (``"schema"``); a version saved before schemas were recorded
reads as every feature a number, not nullable, with its training ranges (:meth:`Schema.from_metadata`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

NUMBER = "number"
INTEGER = "integer"
TEXT = "text"
BOOLEAN = "boolean"
TYPES = (NUMBER, INTEGER, TEXT, BOOLEAN)
NUMERIC_TYPES = frozenset({NUMBER, INTEGER})
SCHEMA = "schema"  # the metadata key
# A text column with more distinct values than this keeps no list of categories (a free-text
# or identifier column: an "unseen" value says nothing, and the metadata stays small).
MAX_CATEGORIES = 1000


@dataclass(frozen=True)
class Field:
    """One input field: its ``name``, ``type`` (number, integer, text, boolean), whether ``null``
    is accepted, its training range (numbers), the categories seen (text, boolean) and whether
    the type is ``known`` (False: guessed, no sample said)."""

    name: str
    type: str = NUMBER
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[Any, ...] | None = None
    known: bool = True

    @property
    def numeric(self) -> bool:
        """Whether the field takes numbers (number or integer)."""
        return self.type in NUMERIC_TYPES

    def as_metadata(self) -> dict:
        """The field as plain JSON values."""
        return {
            "name": self.name,
            "type": self.type,
            "nullable": self.nullable,
            "min": self.min,
            "max": self.max,
            "categories": None if self.categories is None else list(self.categories),
            "known": self.known,
        }

    @classmethod
    def from_metadata(cls, raw: Mapping) -> Field:
        """The field :meth:`as_metadata` wrote; ValueError when it is not one."""
        kind = raw.get("type", NUMBER)
        if not isinstance(raw.get("name"), str) or kind not in TYPES:
            raise ValueError(f"not a schema field: {raw!r}")
        categories = raw.get("categories")
        return cls(
            name=raw["name"],
            type=kind,
            nullable=bool(raw.get("nullable", False)),
            min=_float_or_none(raw.get("min")),
            max=_float_or_none(raw.get("max")),
            categories=None if categories is None else tuple(categories),
            known=bool(raw.get("known", True)),
        )


@dataclass(frozen=True)
class Schema:
    """The model's input fields in model order; ``positional`` when it was fitted on a bare array
    (its names are scikit-learn's ``x0``, ``x1``, ...)."""

    fields: tuple[Field, ...]
    positional: bool = False
    _by_name: dict[str, Field] = field(init=False, repr=False, compare=False)
    _numeric_only: bool = field(init=False, repr=False, compare=False)
    _numbers: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})
        # Read on every prediction (it picks the validation path): computed once.
        object.__setattr__(self, "_numeric_only", all(f.numeric and not f.nullable for f in self.fields))
        object.__setattr__(self, "_numbers", all(f.numeric for f in self.fields))

    @property
    def names(self) -> tuple[str, ...]:
        """Field names in model order."""
        return tuple(f.name for f in self.fields)

    @property
    def numeric_only(self) -> bool:
        """Every field a number or integer and none nullable: the float fast path applies."""
        return self._numeric_only

    @property
    def numbers(self) -> bool:
        """Every field a number or integer (some may take null): an input of plain numbers can
        still take the float fast path."""
        return self._numbers

    def field(self, name: str) -> Field:
        """The field called ``name`` (KeyError if none)."""
        return self._by_name[name]

    def as_metadata(self) -> dict:
        """The schema as plain JSON values (the metadata's ``"schema"``)."""
        return {"positional": self.positional, "fields": [f.as_metadata() for f in self.fields]}

    @classmethod
    def from_metadata(cls, metadata: Mapping) -> Schema:
        """The schema a version's metadata records; for a version saved without one, every
        feature a number, not nullable, with min/max from its training ranges."""
        raw = metadata.get(SCHEMA)
        if isinstance(raw, Mapping) and isinstance(raw.get("fields"), list):
            return cls(tuple(Field.from_metadata(f) for f in raw["fields"]), bool(raw.get("positional", False)))
        ranges = metadata.get("feature_ranges") or {}
        fields = []
        for name in metadata.get("feature_names", []):
            low, high = ranges.get(name, (None, None))
            fields.append(Field(str(name), NUMBER, False, _float_or_none(low), _float_or_none(high)))
        return cls(tuple(fields))


def _float_or_none(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# -- building a schema from a fitted estimator ------------------------------------------------


def allows_nan(estimator: object) -> bool:
    """Whether the estimator takes missing values (scikit-learn's ``input_tags.allow_nan``)."""
    tags = getattr(estimator, "__sklearn_tags__", None)
    if tags is None:
        return False
    try:
        return bool(tags().input_tags.allow_nan)
    except (AttributeError, TypeError, ValueError):
        return False


def feature_names(estimator: object) -> tuple[tuple[str, ...], bool]:
    """``(names, positional)``: ``feature_names_in_``, else ``x0..x{n-1}`` (positional)."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return tuple(str(n) for n in names), False
    n = getattr(estimator, "n_features_in_", None)
    if n is None:
        raise ValueError("the estimator records neither feature_names_in_ nor n_features_in_: is it fitted?")
    return tuple(f"x{i}" for i in range(int(n))), True


def _plain(value: object) -> object:
    """A category as a JSON value (numpy scalars become Python ones)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def encoder_categories(estimator: object) -> dict[str, tuple[Any, ...]]:
    """``{column: categories}`` that fitted encoders inside ``estimator`` know (a OneHotEncoder
    or OrdinalEncoder in a ColumnTransformer, in a Pipeline), for columns given by name."""
    found: dict[str, tuple[Any, ...]] = {}
    transformers = getattr(estimator, "transformers_", None)
    if transformers is not None:
        for _, transformer, columns in transformers:
            cats = getattr(transformer, "categories_", None)
            if isinstance(transformer, str) or cats is None:
                inner = encoder_categories(transformer) if not isinstance(transformer, str) else {}
                found.update(inner)
                continue
            names = list(getattr(transformer, "feature_names_in_", None) or columns)
            for name, values in zip(names, cats, strict=False):
                if isinstance(name, str):
                    found[name] = tuple(_plain(v) for v in values if not _is_missing(v))
    for _, step in getattr(estimator, "steps", None) or ():
        if step is not None and not isinstance(step, str):
            found.update(encoder_categories(step))
    return found


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _column_field(name: str, column: pd.Series, nan_ok: bool) -> Field:
    """A field from a sample's column: its dtype gives the type, its values the range or categories."""
    import pandas as pd

    has_missing = bool(column.isna().any())
    if pd.api.types.is_bool_dtype(column):
        return Field(name, BOOLEAN, has_missing, categories=tuple(sorted(bool(v) for v in column.dropna().unique())))
    if pd.api.types.is_numeric_dtype(column):
        kind = INTEGER if pd.api.types.is_integer_dtype(column) else NUMBER
        present = column.dropna()
        low, high = (float(present.min()), float(present.max())) if len(present) else (None, None)
        return Field(name, kind, nan_ok, _float_or_none(low), _float_or_none(high))
    values = column.dropna().unique().tolist()
    if values and all(isinstance(v, (bool,)) for v in values):
        return Field(name, BOOLEAN, has_missing, categories=tuple(sorted(values)))
    categories = tuple(sorted(map(str, values))) if len(values) <= MAX_CATEGORIES else None
    return Field(name, TEXT, has_missing, categories=categories)


def schema_of(estimator: object, sample: pd.DataFrame | None = None, *, nullable: bool | None = None) -> Schema:
    """The schema of a fitted estimator or Pipeline: its feature names (or ``x0..``), and each
    column's type, range and categories from ``sample`` (rows of its input, e.g. the training
    data) when given, else from its fitted encoders, else a number of unknown type.

    ``nullable`` says whether number columns take ``null`` (the predictor serving the model may
    take fewer than the estimator: the compiled single tree takes none); None reads the
    estimator's ``allow_nan`` tag."""
    names, positional = feature_names(estimator)
    nan_ok = allows_nan(estimator) if nullable is None else nullable
    if sample is not None:
        import pandas as pd

        frame = sample if isinstance(sample, pd.DataFrame) else pd.DataFrame(sample)
        if positional and list(frame.columns) != list(names):
            if frame.shape[1] != len(names):
                raise ValueError(f"the sample has {frame.shape[1]} columns, the model takes {len(names)}")
            frame = frame.set_axis(list(names), axis=1)
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise ValueError(f"the sample lacks the model's column(s) {', '.join(missing)}")
        return Schema(tuple(_column_field(n, frame[n], nan_ok) for n in names), positional)
    categories = encoder_categories(estimator)
    fields = []
    for name in names:
        if name in categories:
            values = categories[name]
            if values and all(isinstance(v, bool) for v in values):
                fields.append(Field(name, BOOLEAN, nan_ok, categories=values))
            elif values and all(isinstance(v, str) for v in values):
                fields.append(Field(name, TEXT, nan_ok, categories=values))
            else:  # an encoder of numbers: a number column whose values are its categories
                fields.append(Field(name, NUMBER, nan_ok, categories=values, known=False))
        else:
            fields.append(Field(name, NUMBER, nan_ok, known=False))
    return Schema(tuple(fields), positional)


def ranges_of(schema: Schema) -> dict[str, list[float]]:
    """The numeric fields' ``[min, max]`` where known (the metadata's ``feature_ranges``)."""
    return {f.name: [f.min, f.max] for f in schema.fields if f.numeric and f.min is not None and f.max is not None}
