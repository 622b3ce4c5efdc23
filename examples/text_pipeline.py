"""A user's Pipeline with a text column, saved with joblib, and a sample of its input as CSV.

    python examples/text_pipeline.py              # writes pipeline.pkl and pipeline-sample.csv
    python -m mldeploy import pipeline.pkl --sample pipeline-sample.csv
    python -m mldeploy serve
    curl -s localhost:5000/predict -H 'Content-Type: application/json' \\
         -d '{"plan": "pro", "monthly_spend": 42.0, "tenure_months": 18}'

A OneHotEncoder on the text column ``plan`` and a StandardScaler on the two numbers, before a
LogisticRegression that says whether a customer churns ("yes" / "no"). The sample tells mldeploy
each column's type: ``plan`` is text (its categories are the ones seen), ``tenure_months`` an
integer, ``monthly_spend`` a number, with their training ranges.
"""

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

PLANS = ["basic", "plus", "pro"]

rng = np.random.default_rng(7)
n = 2000
frame = pd.DataFrame(
    {
        "plan": rng.choice(PLANS, n),
        "monthly_spend": rng.gamma(4.0, 10.0, n).round(2),
        "tenure_months": rng.integers(1, 60, n),
    }
)
plan_effect = frame["plan"].map({"basic": 1.0, "plus": 0.0, "pro": -1.0})
score = 0.04 * frame["monthly_spend"] - 0.08 * frame["tenure_months"] + plan_effect
churn = np.where(score + rng.normal(0, 0.5, n) > 0, "yes", "no")

pipeline = Pipeline(
    [
        (
            "prepare",
            ColumnTransformer(
                [
                    ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                    ("numbers", StandardScaler(), ["monthly_spend", "tenure_months"]),
                ]
            ),
        ),
        ("model", LogisticRegression()),
    ]
)
pipeline.fit(frame, churn)

joblib.dump(pipeline, "pipeline.pkl")
frame.head(500).to_csv("pipeline-sample.csv", index=False)
print("saved pipeline.pkl and pipeline-sample.csv")
