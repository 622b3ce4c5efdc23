"""The prediction and model routes (Flask-RESTful resources) and how their bodies are read."""
