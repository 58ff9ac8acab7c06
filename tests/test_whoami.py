"""Who am I: ``GET /arvados/v1/users/current`` (and, with the filters, ``/groups``)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db
URL = "/arvados/v1/users/current"


def test_current_user_describes_the_caller(alice):
    user = alice.user
    email_field = user.get_email_field_name()
    if email_field != user.USERNAME_FIELD:
        setattr(user, email_field, "alice@example.org")
        user.save()

    response = alice.client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "arvados#user"
    assert body["uuid"] == alice.uuid
    assert body["href"] == f"/users/{alice.uuid}"
    assert body["username"] == "alice"
    assert body["email"] == getattr(user, email_field)
    assert body["email"]
    assert (body["is_admin"], body["is_active"], body["is_job_manager"]) == (False, True, False)
    assert body["owner_uuid"] == "zzzzz-tpzed-000000000000000"


def test_current_user_flags_for_manager_and_admin(manager, admin):
    assert manager.client.get(URL).json()["is_job_manager"] is True
    assert manager.client.get(URL).json()["is_admin"] is False
    body = admin.client.get(URL).json()
    assert (body["is_admin"], body["is_job_manager"]) == (True, True)


def test_inactive_users_may_ask_who_they_are(alice):
    alice.user.is_active = False
    alice.user.save()
    body = alice.client.get(URL).json()
    assert body["is_active"] is False
    assert body["is_job_manager"] is False


def test_current_user_needs_a_token():
    response = APIClient().get(URL)
    assert response.status_code == 401
    assert response.json()["errors"] == ["Not logged in"]


def test_owner_uuid_from_current_user_is_accepted_on_create(alice):
    me = alice.client.get(URL).json()["uuid"]
    response = alice.client.post(
        "/arvados/v1/job_tasks", {"job_task": {"owner_uuid": me}}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["owner_uuid"] == me
