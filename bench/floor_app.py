"""The framework floor: a Flask-RESTful resource that parses the JSON body and returns a fixed
answer of the same shape as mldeploy's, with no model. Same gunicorn settings as the others."""

from __future__ import annotations

from flask import Flask, request
from flask_restful import Api, Resource

ANSWER = {
    "Class": "setosa",
    "Input": {"sepal_length": 5.0, "sepal_width": 3.2, "petal_length": 1.5, "petal_width": 0.3},
    "Probabilities": {"setosa": 1.0, "versicolor": 0.0, "virginica": 0.0},
    "ModelVersion": "fixed",
}

app = Flask(__name__)
api = Api(app)


class Predict(Resource):
    """``POST /predict``: parse, then answer the same thing every time."""

    def post(self):
        request.get_json()
        return ANSWER


api.add_resource(Predict, "/predict")
