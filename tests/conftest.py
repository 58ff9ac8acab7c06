"""Shared fixtures: users with tokens, an API client, and a task factory."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.test import APIClient

from job_tasks.identities import user_uuid
from job_tasks.models import ApiToken, JobTask


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the ``requires_postgres`` tests unless DATABASE_URL is PostgreSQL.

    On SQLite they are deselected: not run, and not reported as skipped (pytest's
    summary counts them as "deselected"). They run several processes against one
    database at once, which the in-memory SQLite test database cannot serve;
    ``.ci/run`` runs the suite on PostgreSQL as well, where they run.
    """
    on_postgres = os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql"))
    if on_postgres:
        return
    deselected = [item for item in items if item.get_closest_marker("requires_postgres")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("requires_postgres")]


def new_user(name: str, **extra: Any) -> Any:
    """A user of whatever ``AUTH_USER_MODEL`` is installed, whose username is ``name``."""
    User = get_user_model()
    return User._default_manager.create_user(**{User.USERNAME_FIELD: name}, **extra)


def find_user(name: str) -> Any:
    return get_user_model()._default_manager.get_by_natural_key(name)


@dataclass
class Caller:
    """A user, their Arvados uuid, their token and an API client that sends it."""

    user: Any
    uuid: str
    token: str
    client: APIClient


def _caller(username: str, *, manager: bool = False, superuser: bool = False) -> Caller:
    user = new_user(username, password="pw", is_superuser=superuser, is_staff=superuser)
    if manager:
        user.user_permissions.add(Permission.objects.get(codename="manage_job_tasks"))
    _, token = ApiToken.issue(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return Caller(user=user, uuid=user_uuid(user), token=token, client=client)


@pytest.fixture
def alice(db: None) -> Caller:
    return _caller("alice")


@pytest.fixture
def bob(db: None) -> Caller:
    return _caller("bob")


@pytest.fixture
def manager(db: None) -> Caller:
    return _caller("manager", manager=True)


@pytest.fixture
def admin(db: None) -> Caller:
    return _caller("admin", superuser=True)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def make_task(db: None) -> Callable[..., JobTask]:
    """Create a task straight through the ORM (bypassing the API) for set-up."""
    from job_tasks import uuids
    from job_tasks.models import next_qsequence

    def make(owner: Caller, **attrs: Any) -> JobTask:
        attrs.setdefault("uuid", uuids.new_uuid(uuids.JOB_TASK_INFIX))
        attrs.setdefault("qsequence", next_qsequence("default"))
        attrs.setdefault("modified_at", timezone.now())
        attrs.setdefault("modified_by_user_uuid", owner.uuid)
        return JobTask.objects.create(owner_uuid=owner.uuid, **attrs)

    return make
