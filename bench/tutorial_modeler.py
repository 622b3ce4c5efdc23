"""The Modeler as the common tutorial writes it: read the CSV, load the model, predict a DataFrame.

Written for the benchmark's baseline only. Every ``TutorialModeler()`` reads the Iris CSV and
``joblib.load``s the model file again (training and saving one first when it is missing), which
is the per-request cost the tutorial pattern pays. It deliberately uses nothing from ``modeler``.
"""

from __future__ import annotations

import os
from pathlib import Path

import joblib
import pandas as pd
from sklearn.tree import DecisionTreeClassifier

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TARGET = "species"
# The bench writes these files before starting the server.
DATA_CSV = Path(os.environ.get("BENCH_IRIS_CSV", "iris.csv"))
MODEL_FILE = Path(os.environ.get("BENCH_TUTORIAL_MODEL", "model.joblib"))


class TutorialModeler:
    """Reads the data and the model on construction, as in the tutorial."""

    def __init__(self) -> None:
        self.df = pd.read_csv(DATA_CSV)
        if MODEL_FILE.exists():
            self.model = joblib.load(MODEL_FILE)
        else:
            self.model = self.fit()

    def fit(self) -> DecisionTreeClassifier:
        """Train on the whole CSV and save the model next to it."""
        model = DecisionTreeClassifier(random_state=0).fit(self.df[FEATURES], self.df[TARGET])
        joblib.dump(model, MODEL_FILE)
        return model

    def predict(self, rows: list[dict]) -> tuple[list[str], list[dict[str, float]]]:
        """Labels and ``{class: probability}`` per row, through a DataFrame."""
        X = pd.DataFrame(rows, columns=FEATURES)
        labels = self.model.predict(X).tolist()
        proba = [dict(zip(self.model.classes_, p, strict=True)) for p in self.model.predict_proba(X).tolist()]
        return labels, proba
