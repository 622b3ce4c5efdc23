"""mldeploy: serve scikit-learn models over HTTP with Flask + Flask-RESTful.

The parts, one sub-package each: ``http`` (the app factory and what every request passes through),
``api`` (the prediction and model routes; ``api.v2`` is the Open Inference Protocol), ``docs``
(OpenAPI, Swagger UI, the playground), ``cli`` (``python -m mldeploy``), ``scoring`` (files, Dask).
The model itself lives in the ``modeler`` package; the HTTP client in ``mldeploy_client``.
"""

__version__ = "0.1.0"
