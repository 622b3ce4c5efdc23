"""One loaded, verified model version: its metadata and its predictor."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from modeler.predictors.base import Predictor
from modeler.ranges import Range, training_ranges
from modeler.schema import Schema

CLASSIFICATION = "classification"
REGRESSION = "regression"

# Metadata a version needs to be served; anything less is treated as a corrupt version.
REQUIRED_METADATA = ("version", "feature_names", "classes", "artifact")


@dataclass(frozen=True)
class LoadedModel:
    """One loaded, verified version: its metadata and the predictor that answers for it."""

    version: str
    metadata: dict
    predictor: Predictor = field(repr=False)

    @property
    def estimator(self) -> object:
        """The fitted scikit-learn estimator (unpickled, after the same checks, on first use)."""
        return self.predictor.estimator

    @cached_property
    def features(self) -> tuple[str, ...]:
        """Feature names in the order the model expects them."""
        return tuple(self.metadata["feature_names"])

    @property
    def classes(self) -> tuple:
        """Class labels (each in its own JSON type), in the order of the probability columns;
        () for a regressor."""
        return self.predictor.classes

    @cached_property
    def schema(self) -> Schema:
        """The input fields, their types and what is known of them (:mod:`modeler.schema`)."""
        return Schema.from_metadata(self.metadata)

    @property
    def task(self) -> str:
        """``classification`` or ``regression`` (a version saved before tasks were recorded is a
        classifier)."""
        return self.metadata.get("task", CLASSIFICATION)

    @cached_property
    def ranges(self) -> tuple[Range, ...]:
        """Training ``(min, max)`` per feature, in model order."""
        return training_ranges(self.metadata, self.features)

    @property
    def sha256(self) -> str:
        """The sha256 of the saved artifact this model was loaded from."""
        return self.metadata["artifact"]["sha256"]
