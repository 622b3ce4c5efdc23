"""How a version was made: its data source, target, estimator and the parameters it was given.

Each version records its recipe in its metadata (``"recipe"``), so that a retrain without other
instructions (``fit()`` on a Modeler given no data, ``POST /model/train`` on a server started
without ``MLDEPLOY_DATA``, a retrain of a corrupt version) trains on the same data for the same
target, and a process whose settings name other data can say so. Versions saved before recipes
were recorded have none: :meth:`Recipe.from_metadata` gives None for them.

A CSV's path is recorded whole (absolute) to be found again; clients of a server see only its
file name (:func:`shown_to_clients`).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from modeler.errors import DataError
from modeler.json_values import json_safe

if TYPE_CHECKING:
    from modeler.data import DataSource

RECIPE = "recipe"  # the metadata key
IRIS = "iris"  # the bundled Iris data
DATAFRAME = "dataframe"  # an in-memory DataFrame: nothing on disk to train from again
ESTIMATOR = "sklearn.tree.DecisionTreeClassifier"


def data_reference(data: DataSource) -> str:
    """How the recipe names ``data``: IRIS for None, the absolute path of a CSV, else DATAFRAME."""
    if data is None:
        return IRIS
    if isinstance(data, (str, os.PathLike)):
        return str(Path(data).resolve())
    return DATAFRAME


@dataclass(frozen=True)
class Recipe:
    """What a training used: ``data`` (IRIS, DATAFRAME or a CSV's absolute path), the ``target``
    column, the ``estimator`` class and the ``params`` it was given (not the estimator's defaults)."""

    data: str
    target: str
    estimator: str = ESTIMATOR
    params: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def of(cls, data: DataSource, target: str, params: Mapping[str, object], estimator: str = ESTIMATOR) -> Recipe:
        """The recipe of a training on ``data`` (``estimator``: the class's name)."""
        return cls(data_reference(data), target, estimator, dict(params))

    @property
    def estimator_name(self) -> str:
        """The estimator's class name, as a training takes it (``DecisionTreeClassifier``)."""
        return self.estimator.rsplit(".", 1)[-1]

    @classmethod
    def from_metadata(cls, metadata: Mapping | None) -> Recipe | None:
        """The recipe a version's metadata records; None for a version saved without one."""
        raw = (metadata or {}).get(RECIPE)
        if (
            not isinstance(raw, Mapping)
            or not isinstance(raw.get("data"), str)
            or not isinstance(raw.get("target"), str)
        ):
            return None
        params = raw.get("params")
        return cls(raw["data"], raw["target"], str(raw.get("estimator", ESTIMATOR)), dict(params or {}))

    def as_metadata(self) -> dict:
        """The recipe as plain JSON values, for the metadata."""
        return {"data": self.data, "target": self.target, "estimator": self.estimator, "params": json_safe(self.params)}

    def source(self) -> DataSource:
        """The data to train on again: None for Iris, the CSV's path; DataError for a DataFrame."""
        if self.data == IRIS:
            return None
        if self.data == DATAFRAME:
            raise DataError("the current version was trained on an in-memory DataFrame: pass the data to train again")
        return Path(self.data)

    def describe(self) -> str:
        """The data in words, without directories (it may be shown to a server's clients)."""
        if self.data == IRIS:
            return "the bundled Iris data"
        if self.data == DATAFRAME:
            return "an in-memory DataFrame"
        return Path(self.data).name

    def differs_from(self, data: DataSource, target: str) -> str | None:
        """How training ``data`` for ``target`` would differ from this recipe, in words; None if
        it would not."""
        wanted = Recipe.of(data, target, {})
        if wanted.data != self.data:
            return f"data {wanted.describe()} instead of {self.describe()}"
        if wanted.target != self.target:
            return f"target {wanted.target!r} instead of {self.target!r}"
        return None


def shown_to_clients(metadata: dict) -> dict:
    """A copy of ``metadata`` fit for a server's clients: the recipe names its CSV by file name
    only (the server's directories are nobody else's business)."""
    shown = copy.deepcopy(metadata)
    raw = shown.get(RECIPE)
    if isinstance(raw, dict) and isinstance(raw.get("data"), str) and raw["data"] not in (IRIS, DATAFRAME):
        raw["data"] = Path(raw["data"]).name
    return shown
