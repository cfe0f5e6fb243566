"""WSGI entry point: `gunicorn wsgi:app`."""

from authserver import create_app

app = create_app()
