"""Entry point: ``python app.py [--host HOST] [--port PORT]`` serves the model API."""

from mldeploy.http.dev_server import main

if __name__ == "__main__":
    main()
