"""The app's settings: one optional ``JOB_TASKS`` dict, read on every access."""

from __future__ import annotations

from typing import Any

from django.conf import settings

#: Every key of ``settings.JOB_TASKS`` and its default. Documented in the README.
DEFAULTS: dict[str, Any] = {
    # Five lowercase [0-9a-z] characters that start every uuid this service makes.
    "CLUSTER_ID": "zzzzz",
    # Page size of list calls when the client sends no ``limit``.
    "DEFAULT_LIMIT": 100,
    # Larger ``limit`` values are clamped to this (Arvados's MaxItemsPerResponse).
    "MAX_LIMIT": 1000,
    # Lifetime of tokens made without an explicit expiry; ``None`` = never expire.
    "TOKEN_LIFETIME_SECONDS": None,
    # Name of the group created by ``migrate`` that holds the job-manager permission.
    "MANAGER_GROUP_NAME": "job managers",
    # Largest accepted request body, in bytes.
    "MAX_BODY_BYTES": 1_048_576,
    # Most conditions accepted in one ``filters`` parameter.
    "MAX_FILTERS": 100,
    # Scheduling (``claim``): the lease a claim gets when the client names none, in seconds.
    "DEFAULT_LEASE_SECONDS": 300,
    # The longest lease a claim or a renewal may ask for, in seconds.
    "MAX_LEASE_SECONDS": 86_400,
    # A task whose lease ran out this many times without a result is marked failed.
    "MAX_EXPIRED_LEASES": 3,
    # Larger ``limit`` values of ``claim`` are clamped to this.
    "MAX_CLAIM_LIMIT": 100,
    # PostgreSQL: run the per-request lookups (token, task by uuid) as statements
    # prepared once per database session. Turn off behind a pooler in transaction mode (PgBouncer).
    "PREPARED_STATEMENTS": True,
    # PostgreSQL: write the common creates, updates and claims, with their audit rows,
    # in one statement each (``job_tasks/pgwrites.py``) instead of a transaction of several.
    "SINGLE_STATEMENT_WRITES": True,
}


class AppSettings:
    """Attribute access to ``JOB_TASKS`` keys with defaults.

    Values are looked up on every access (never cached), so
    ``override_settings(JOB_TASKS=...)`` takes effect immediately in tests.
    """

    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, "JOB_TASKS", None)
        return value if isinstance(value, dict) else {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"JOB_TASKS has no setting {name!r}")
        return self.user_settings().get(name, DEFAULTS[name])


app_settings = AppSettings()
