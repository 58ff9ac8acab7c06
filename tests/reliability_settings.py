"""Settings of the app servers the reliability tests start (gunicorn, real processes).

The test run's own settings (``JOB_TASKS_BASE_SETTINGS``: the user model, the URLs)
with the reference project's database configuration, read from ``DATABASE_URL`` by
``jobtasks_project.settings``: persistent connections (``CONN_MAX_AGE`` 600) with
health checks, as the project is deployed.
"""

from __future__ import annotations

import importlib
import os

_base = importlib.import_module(os.environ.get("JOB_TASKS_BASE_SETTINGS", "tests.settings"))
globals().update({name: getattr(_base, name) for name in dir(_base) if name.isupper()})

os.environ.setdefault("SECRET_KEY", "tests-only-not-secret")
from jobtasks_project.settings import DATABASES  # noqa: E402, F401

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"job_tasks": {"handlers": ["console"], "level": "ERROR"}},
}
