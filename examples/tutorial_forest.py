"""Train the tutorial's forest exactly as the tutorial does, and save it as ``model.pkl``.

    python examples/tutorial_forest.py            # writes model.pkl in the current folder
    python -m mldeploy import model.pkl           # adopt it as the served version
    python -m mldeploy serve                      # serve it
    python examples/tutorial_client.py            # the tutorial's client: {"features": [...]}

Five standard normal features, an integer label 0/1, a 100-tree RandomForest, ``joblib.dump``:
nothing here knows mldeploy. The model was fitted on a bare array, so mldeploy names its fields
``x0`` to ``x4`` and takes them positionally.
"""

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier

np.random.seed(42)
X = np.random.randn(1000, 5)
y = (X[:, 0] + X[:, 1] > 0).astype(int)

model = RandomForestClassifier(n_estimators=100, random_state=42)
model.fit(X, y)

joblib.dump(model, "model.pkl")
print("saved model.pkl")
