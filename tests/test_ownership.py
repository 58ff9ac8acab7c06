"""Owners, visibility and uuid assignment (spec §3, §10, §15.2) as far as the API core goes."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from job_tasks.identities import group_uuid
from job_tasks.models import JobTask

URL = "/arvados/v1/job_tasks"

pytestmark = pytest.mark.django_db


def test_others_tasks_are_404_and_absent_from_lists(alice, bob, make_task):
    task = make_task(bob)
    make_task(alice)

    assert alice.client.get(f"{URL}/{task.uuid}").status_code == 404
    assert alice.client.put(f"{URL}/{task.uuid}", {}, format="json").status_code == 404
    assert alice.client.delete(f"{URL}/{task.uuid}").status_code == 404
    listed = alice.client.get(URL).json()
    assert listed["items_available"] == 1
    assert task.uuid not in [item["uuid"] for item in listed["items"]]
    assert JobTask.objects.filter(uuid=task.uuid).exists()


def test_group_members_share_tasks_owned_by_the_group(alice, bob):
    group = Group.objects.create(name="lab")
    alice.user.groups.add(group)
    bob.user.groups.add(group)

    created = alice.client.post(URL, {"job_task": {"owner_uuid": group_uuid(group)}}, format="json")

    assert created.status_code == 200, created.content
    uuid = created.json()["uuid"]
    assert bob.client.get(f"{URL}/{uuid}").status_code == 200
    assert bob.client.put(f"{URL}/{uuid}", {"success": True}, format="json").status_code == 200


def test_managers_and_admins_see_everything(alice, manager, admin, make_task):
    task = make_task(alice)
    for caller in (manager, admin):
        assert caller.client.get(f"{URL}/{task.uuid}").status_code == 200
        assert caller.client.get(URL).json()["items_available"] == 1


def test_owner_must_be_a_user_or_group(alice):
    response = alice.client.post(
        URL, {"job_task": {"owner_uuid": "zzzzz-ot0gb-000000000000000"}}, format="json"
    )
    assert response.status_code == 422
    assert "Owner uuid must be set to User or Group" in response.json()["errors"][0]


def test_owner_that_does_not_exist_is_422(manager):
    response = manager.client.post(
        URL, {"job_task": {"owner_uuid": "zzzzz-tpzed-000000000000000"}}, format="json"
    )
    assert response.status_code == 422
    assert "not found" in response.json()["errors"][0]


def test_owner_the_caller_may_not_write_is_403(alice, bob):
    response = alice.client.post(URL, {"job_task": {"owner_uuid": bob.uuid}}, format="json")
    assert response.status_code == 403
    assert "write permission on new owner" in response.json()["errors"][0]
    assert not JobTask.objects.exists()


def test_managers_may_create_tasks_for_anyone(manager, alice):
    response = manager.client.post(URL, {"job_task": {"owner_uuid": alice.uuid}}, format="json")
    assert response.status_code == 200
    assert alice.client.get(f"{URL}/{response.json()['uuid']}").status_code == 200


def test_giving_a_task_away_needs_write_on_the_new_owner(alice, bob, make_task):
    task = make_task(alice)
    response = alice.client.put(
        f"{URL}/{task.uuid}", {"job_task": {"owner_uuid": bob.uuid}}, format="json"
    )
    assert response.status_code == 403
    task.refresh_from_db()
    assert task.owner_uuid == alice.uuid


def test_only_admins_may_assign_a_uuid(alice, admin):
    wanted = "zzzzz-ot0gb-abcdefghij12345"
    refused = alice.client.post(URL, {"job_task": {"uuid": wanted}}, format="json")
    assert refused.status_code == 422
    assert "Uuid assignment not permitted" in refused.json()["errors"][0]

    accepted = admin.client.post(URL, {"job_task": {"uuid": wanted}}, format="json")
    assert accepted.status_code == 200
    assert accepted.json()["uuid"] == wanted

    again = admin.client.post(URL, {"job_task": {"uuid": wanted}}, format="json")
    assert again.status_code == 422
    assert "already in use" in again.json()["errors"][0]


@pytest.mark.parametrize(
    ("uuid", "message"),
    [
        ("zzzzz-tpzed-abcdefghij12345", "Uuid type field is 'tpzed', expected 'ot0gb'"),
        ("bogus", "Uuid not a valid Arvados uuid 'bogus'"),
    ],
)
def test_admin_uuid_must_be_a_job_task_uuid(admin, uuid, message):
    response = admin.client.post(URL, {"job_task": {"uuid": uuid}}, format="json")
    assert response.status_code == 422
    assert message in response.json()["errors"][0]


def test_an_empty_uuid_on_create_means_generate_one(alice):
    response = alice.client.post(URL, {"job_task": {"uuid": ""}}, format="json")
    assert response.status_code == 200
    assert response.json()["uuid"].startswith("zzzzz-ot0gb-")


def test_changing_the_uuid_is_admin_only(alice, admin, make_task):
    task = make_task(alice)
    new = "zzzzz-ot0gb-newnewnewnew123"
    refused = alice.client.put(f"{URL}/{task.uuid}", {"job_task": {"uuid": new}}, format="json")
    assert refused.status_code == 422
    assert "Uuid change not permitted" in refused.json()["errors"][0]
    same = alice.client.put(f"{URL}/{task.uuid}", {"job_task": {"uuid": task.uuid}}, format="json")
    assert same.status_code == 200
    changed = admin.client.put(f"{URL}/{task.uuid}", {"job_task": {"uuid": new}}, format="json")
    assert changed.status_code == 200
    assert changed.json()["uuid"] == new


def test_created_by_job_task_uuid_must_name_a_readable_task(alice, bob, make_task):
    hidden = make_task(bob)
    for value in (hidden.uuid, "zzzzz-ot0gb-000000000000000"):
        response = alice.client.post(
            URL, {"job_task": {"created_by_job_task_uuid": value}}, format="json"
        )
        assert response.status_code == 422
        assert "Created by job task uuid" in response.json()["errors"][0]
