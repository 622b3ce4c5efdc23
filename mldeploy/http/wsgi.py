"""The WSGI entry for production servers: ``mldeploy.http.wsgi:app`` (what gunicorn loads)."""

from mldeploy.http.app import create_app

app = create_app()
