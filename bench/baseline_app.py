"""Baseline server, the tutorial way: a Flask-RESTful resource that builds a new Modeler per request.

Run by the bench as ``gunicorn -c gunicorn_bench.conf.py baseline_app:app`` (2 sync workers).
"""

from __future__ import annotations

from flask import Flask, request
from flask_restful import Api, Resource
from tutorial_modeler import FEATURES, TutorialModeler

app = Flask(__name__)
api = Api(app)


class Predict(Resource):
    """``POST /predict``: one object, or a list of objects."""

    def post(self):
        data = request.get_json()
        rows = data if isinstance(data, list) else [data]
        labels, proba = TutorialModeler().predict(rows)
        if isinstance(data, list):
            return {"Predictions": [{"Class": c, "Probabilities": p} for c, p in zip(labels, proba, strict=True)]}
        return {"Class": labels[0], "Input": {f: data[f] for f in FEATURES}, "Probabilities": proba[0]}


api.add_resource(Predict, "/predict")
