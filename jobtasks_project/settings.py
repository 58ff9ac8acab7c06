"""Settings of the reference project, configured from the environment.

- ``DATABASE_URL``: any dj-database-url URL; default a SQLite file ``db.sqlite3`` in
  the checkout. ``postgres://user@host:5432/name`` runs it on PostgreSQL.
- ``SECRET_KEY``: required when ``DEBUG`` is off; a development key otherwise.
- ``DEBUG``: ``1``/``true`` to turn on (default off).
- ``ALLOWED_HOSTS``: comma-separated (default ``localhost,127.0.0.1,[::1]``).
- ``JOB_TASKS_CLUSTER_ID``: the five-character cluster id (default ``zzzzz``).
- ``STATIC_ROOT``: where ``collectstatic`` puts the static files that WhiteNoise
  serves (default ``staticfiles`` in the checkout).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_flag("DEBUG")
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and not env_flag("JOB_TASKS_DEMO"):
        raise ImproperlyConfigured("Set SECRET_KEY (or DEBUG=1 for development).")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if host.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "job_tasks",
    "jobtasks_project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's, Swagger UI's) from STATIC_ROOT, filled by collectstatic.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "jobtasks_project.urls"
WSGI_APPLICATION = "jobtasks_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=600,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend with a health check that asks the server (SELECT 1) only when
    # the socket says something happened: no round trip per request (docs/performance.md).
    DATABASES["default"]["ENGINE"] = "job_tasks.backends.postgresql"
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Writers queue for the lock instead of failing at once; IMMEDIATE makes every
    # transaction take the write lock up front, so two never deadlock on upgrade.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
# In development (DEBUG), WhiteNoise serves the apps' static files where they lie and
# looks on each request, so no collectstatic is needed.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

JOB_TASKS = {
    "CLUSTER_ID": os.environ.get("JOB_TASKS_CLUSTER_ID", "zzzzz"),
}

# The reference project publishes an OpenAPI schema and Swagger UI (served from
# the sidecar package: no CDN needed).
REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
SPECTACULAR_SETTINGS = {
    "TITLE": "django-job-tasks",
    "DESCRIPTION": (
        "The Arvados `job_tasks` REST API (v1), with its scheduling extensions.\n\n"
        "Every success is 200 and every error the Arvados envelope "
        '`{"errors": [...], "error_token": "..."}`. Every answer carries CORS headers and '
        "`X-Request-Id`; `OPTIONS` answers 200 without a token; paths work with or "
        "without a trailing slash and never redirect. Array and object parameters are "
        "JSON-encoded in the query string, as the Arvados SDKs send them."
    ),
    "VERSION": "v1",
    # job_tasks.openapi describes the API; this hook writes its paths without the
    # optional trailing slash and leaves out the catch-all 404 route.
    "PREPROCESSING_HOOKS": ["job_tasks.openapi.preprocess_endpoints"],
    "SERVE_INCLUDE_SCHEMA": False,
    "TAGS": [
        {"name": "job_tasks", "description": "The Arvados methods: list, get, create, ..."},
        {"name": "scheduling", "description": "Claims, leases, retries and summaries."},
        {"name": "users", "description": "Who the caller is."},
        {"name": "groups", "description": "The groups the caller may give tasks to."},
        {"name": "discovery", "description": "The discovery document of the Arvados SDKs."},
    ],
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "persistAuthorization": True},
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"job_tasks": {"handlers": ["console"], "level": "INFO"}},
}
