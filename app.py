"""Entry point: ``python app.py [--host HOST] [--port PORT]`` serves the model API."""

from mldeploy import create_app
from mldeploy.server import main

app = create_app()

if __name__ == "__main__":
    main(app)
