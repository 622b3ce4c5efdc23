"""The input schema comes from the model: names, types, categories, ranges and nulls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modeler.schema import BOOLEAN, INTEGER, NUMBER, TEXT, Field, Schema, schema_of


@pytest.fixture(scope="module")
def mixed() -> tuple[object, pd.DataFrame]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "color": rng.choice(["red", "green", "blue"], 300),
            "size": rng.normal(size=300),
            "count": rng.integers(0, 5, 300),
            "flag": rng.random(300) > 0.5,
        }
    )
    columns = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
            ("num", StandardScaler(), ["size", "count"]),
            ("flag", "passthrough", ["flag"]),
        ]
    )
    pipeline = make_pipeline(columns, LogisticRegression()).fit(frame, (frame["size"] > 0).astype(int))
    return pipeline, frame


def test_types_categories_and_ranges_come_from_the_sample(mixed: tuple) -> None:
    pipeline, frame = mixed
    schema = schema_of(pipeline, frame)
    assert schema.names == ("color", "size", "count", "flag")
    assert [f.type for f in schema.fields] == [TEXT, NUMBER, INTEGER, BOOLEAN]
    assert schema.field("color").categories == ("blue", "green", "red")
    assert schema.field("flag").categories == (False, True)
    assert schema.field("size").min == float(frame["size"].min())
    assert schema.field("count").max == 4.0
    assert not schema.positional and not schema.numeric_only
    assert all(f.known for f in schema.fields)


def test_without_a_sample_the_fitted_encoders_say_what_they_know(mixed: tuple) -> None:
    pipeline, _ = mixed
    schema = schema_of(pipeline)
    assert schema.field("color") == Field("color", TEXT, categories=("blue", "green", "red"))
    size = schema.field("size")
    assert size.type == NUMBER and not size.known and size.min is None


def test_a_bare_array_model_gets_positional_names_and_nulls_where_it_takes_nan() -> None:
    rng = np.random.default_rng(1)
    model = HistGradientBoostingRegressor(max_iter=5).fit(rng.normal(size=(50, 3)), rng.normal(size=50))
    schema = schema_of(model)
    assert schema.names == ("x0", "x1", "x2") and schema.positional
    assert all(f.nullable for f in schema.fields) and not schema.numeric_only
    assert not any(f.nullable for f in schema_of(model, nullable=False).fields)


def test_round_trip_and_versions_saved_before_schemas(mixed: tuple) -> None:
    pipeline, frame = mixed
    schema = schema_of(pipeline, frame)
    assert Schema.from_metadata({"schema": schema.as_metadata()}) == schema
    old = Schema.from_metadata({"feature_names": ["a", "b"], "feature_ranges": {"a": [1, 2], "b": [0.5, 3]}})
    assert old.names == ("a", "b") and old.numeric_only and not old.positional
    assert old.field("a") == Field("a", NUMBER, False, 1.0, 2.0)


def test_a_sample_without_the_models_columns_is_refused(mixed: tuple) -> None:
    pipeline, frame = mixed
    with pytest.raises(ValueError, match="count"):
        schema_of(pipeline, frame.drop(columns=["count"]))
