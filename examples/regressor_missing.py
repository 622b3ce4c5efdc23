"""A regressor trained on data with missing values, saved with joblib.

    python examples/regressor_missing.py          # writes regressor.pkl and regressor-sample.csv
    python -m mldeploy import regressor.pkl --sample regressor-sample.csv
    python -m mldeploy serve
    curl -s localhost:5000/predict -H 'Content-Type: application/json' \\
         -d '{"rooms": 3, "area": null, "age": 12.5}'

A HistGradientBoostingRegressor predicts a flat's price from three numbers, some of them missing
in training. scikit-learn says it takes missing values, so mldeploy accepts ``null`` for them and
answers ``Prediction`` (a number) instead of ``Class``.
"""

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

rng = np.random.default_rng(3)
n = 3000
frame = pd.DataFrame(
    {
        "rooms": rng.integers(1, 7, n).astype(float),
        "area": rng.normal(70.0, 25.0, n).clip(15, 250).round(1),
        "age": rng.uniform(0, 100, n).round(1),
    }
)
price = 1500 * frame["area"] + 8000 * frame["rooms"] - 300 * frame["age"] + rng.normal(0, 5000, n)
for column in frame.columns:  # about one value in ten is missing, in every column
    frame.loc[rng.random(n) < 0.1, column] = np.nan

model = HistGradientBoostingRegressor(random_state=0).fit(frame, price)

joblib.dump(model, "regressor.pkl")
frame.head(500).to_csv("regressor-sample.csv", index=False)
print("saved regressor.pkl and regressor-sample.csv")
