"""Who am I: ``GET /arvados/v1/users/current`` (and, with the filters, ``/groups``)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from job_tasks.identities import group_uuid

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


GROUPS = "/arvados/v1/groups"


@pytest.fixture
def lab_groups(alice):
    lab, ops = Group.objects.create(name="lab"), Group.objects.create(name="ops")
    Group.objects.create(name="secret")
    alice.user.groups.add(lab, ops)
    return lab, ops


def test_groups_lists_the_callers_groups_in_the_list_envelope(alice, lab_groups):
    response = alice.client.get(GROUPS)

    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "arvados#groupList"
    assert [item["name"] for item in body["items"]] == ["lab", "ops"]
    assert body["items_available"] == 2
    item = body["items"][0]
    assert item["kind"] == "arvados#group"
    assert item["uuid"] == group_uuid(lab_groups[0])
    assert item["href"] == f"/groups/{item['uuid']}"


def test_group_uuids_are_usable_as_owner_uuid(alice, lab_groups):
    uuid = alice.client.get(GROUPS).json()["items"][0]["uuid"]
    response = alice.client.post(
        "/arvados/v1/job_tasks", {"job_task": {"owner_uuid": uuid}}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["owner_uuid"] == uuid


def test_managers_see_every_group(manager, lab_groups):
    names = [item["name"] for item in manager.client.get(GROUPS).json()["items"]]
    assert {"lab", "ops", "secret", "job managers"} <= set(names)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([["name", "=", "lab"]], ["lab"]),
        ([["name", "!=", "lab"]], ["ops"]),
        ([["name", "in", ["ops", "nope"]]], ["ops"]),
        ([["name", "not in", ["ops"]]], ["lab"]),
        ([["name", "like", "l%"]], ["lab"]),
        ([["name", "ilike", "O_S"]], ["ops"]),
        ([["uuid", "is_a", "arvados#group"]], ["lab", "ops"]),
        ([["uuid", "is_a", "arvados#user"]], []),
        ([["name", "=", "lab"], ["name", "=", "ops"]], []),
    ],
)
def test_groups_filters_on_name_and_uuid(alice, lab_groups, filters, expected):
    response = alice.client.get(GROUPS, {"filters": json.dumps(filters)})
    assert response.status_code == 200, response.content
    assert [item["name"] for item in response.json()["items"]] == expected


def test_groups_filter_by_uuid(alice, lab_groups):
    uuid = group_uuid(lab_groups[1])
    response = alice.client.get(GROUPS, {"filters": json.dumps([["uuid", "=", uuid]])})
    assert [item["uuid"] for item in response.json()["items"]] == [uuid]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ('[["owner_uuid", "=", "x"]]', "Invalid attribute 'owner_uuid' in filter"),
        ('[["name", "<>", "x"]]', "Invalid operator '<>'"),
        ('[["name", "=", 3]]', "Invalid operand"),
        ('[["name", "in", "lab"]]', "Invalid operand"),
        ("[[", 'Could not parse "filters" param as an array'),
    ],
)
def test_groups_bad_filters_are_422(alice, lab_groups, filters, message):
    response = alice.client.get(GROUPS, {"filters": filters})
    assert response.status_code == 422
    assert message in response.json()["errors"][0]


def test_groups_paging_and_count_none(alice, lab_groups):
    body = alice.client.get(GROUPS, {"limit": 1, "offset": 1, "count": "none"}).json()
    assert [item["name"] for item in body["items"]] == ["ops"]
    assert "items_available" not in body


def test_groups_needs_a_token():
    assert APIClient().get(GROUPS).status_code == 401


def test_users_current_and_groups_list_are_in_the_discovery_document(anon):
    document = anon.get("/discovery/v1/apis/arvados/v1/rest").json()
    methods = document["resources"]
    assert methods["users"]["methods"]["current"]["path"] == "users/current"
    assert methods["users"]["methods"]["current"]["response"] == {"$ref": "User"}
    groups = methods["groups"]["methods"]
    assert groups["list"]["path"] == "groups"
    assert groups["list"]["parameters"]["filters"]["type"] == "array"
    assert groups["list"]["response"] == {"$ref": "GroupList"}
    assert {"User", "Group", "GroupList"} <= set(document["schemas"])
