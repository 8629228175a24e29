"""WSGI entry point for gunicorn: ``gunicorn -c gunicorn_config.py wsgi:app``."""

from __future__ import annotations

from app import create_app

app = create_app()
