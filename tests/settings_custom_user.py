"""The test settings with a swapped ``AUTH_USER_MODEL`` (UUID primary key, email login)."""

from __future__ import annotations

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.custom_user"]
AUTH_USER_MODEL = "custom_user.Person"

# This run also takes the general write path on PostgreSQL (a transaction of several
# statements), which the default settings leave to the cases ``pgwrites`` does not take.
JOB_TASKS = {"SINGLE_STATEMENT_WRITES": False}
