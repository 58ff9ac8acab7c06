"""WSGI entry point: ``gunicorn jobtasks_project.wsgi``."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobtasks_project.settings")

application = get_wsgi_application()
