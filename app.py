"""Entry point: ``python app.py [--host HOST] [--port PORT]`` serves the model API."""

from mldeploy.http.app import create_app
from mldeploy.http.dev_server import main

app = create_app()

if __name__ == "__main__":
    main(app)
