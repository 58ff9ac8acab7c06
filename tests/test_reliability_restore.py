"""Restoring a deleted task from its last audited state (same uuid), in the admin and
through ``operations.restore_task``: audited, refused when it must be, and exact."""

from __future__ import annotations

import html

import pytest
from django.test import Client
from django.urls import reverse

from job_tasks import operations
from job_tasks.audit import snapshot
from job_tasks.errors import InvalidRequest, NotFound, PermissionRefused
from job_tasks.identities import Actor
from job_tasks.models import AuditEvent, JobTask

URL = "/arvados/v1/job_tasks"
pytestmark = pytest.mark.django_db


def logged_in(caller) -> Client:
    client = Client()
    client.force_login(caller.user)
    return client


def deleted_task(caller, **attrs) -> tuple[str, dict]:
    """A task made and changed through the API, then deleted; its uuid and last state."""
    created = caller.client.post(URL, {"job_task": attrs}, format="json")
    assert created.status_code == 200, created.content
    uuid = created.json()["uuid"]
    change = {"progress": 0.25, "output": "partial", "parameters": {"input": "x", "n": 2**70}}
    assert (
        caller.client.put(f"{URL}/{uuid}", {"job_task": change}, format="json").status_code == 200
    )
    before = snapshot(JobTask.objects.get(uuid=uuid))
    assert caller.client.delete(f"{URL}/{uuid}").status_code == 200
    assert not JobTask.objects.filter(uuid=uuid).exists()
    return uuid, before


def test_restore_brings_back_the_last_state_under_the_same_uuid_audited(alice):
    uuid, before = deleted_task(alice, sequence=2)

    task = operations.restore_task(Actor.for_user(alice.user), uuid)

    after = snapshot(JobTask.objects.get(uuid=uuid))
    moved = {"modified_at", "modified_by_user_uuid"}
    assert {k: v for k, v in after.items() if k not in moved} == {
        k: v for k, v in before.items() if k not in moved
    }
    assert after["qsequence"] == before["qsequence"]
    assert after["parameters"]["n"] == 2**70
    assert after["modified_at"] > before["modified_at"]
    log = list(AuditEvent.objects.filter(object_uuid=uuid).order_by("id"))
    assert [event.event_type for event in log] == ["create", "update", "delete", "create"]
    assert log[-1].new_attributes == snapshot(task)
    assert log[-1].old_attributes is None
    assert log[-1].user_uuid == alice.uuid
    assert "restored" in log[-1].summary
    assert str(log[2].pk) in log[-1].summary
    # the API serves it again, and its history shows the restore
    assert alice.client.get(f"{URL}/{uuid}").json()["output"] == "partial"
    history = alice.client.get(f"{URL}/{uuid}/history").json()["items"]
    assert [item["event_type"] for item in history] == ["create", "delete", "update", "create"]


def test_restoring_twice_or_a_live_task_is_422_and_changes_nothing(alice, make_task):
    uuid, _ = deleted_task(alice)
    actor = Actor.for_user(alice.user)
    operations.restore_task(actor, uuid)
    events = AuditEvent.objects.count()
    row = snapshot(JobTask.objects.get(uuid=uuid))

    with pytest.raises(InvalidRequest, match="not deleted"):
        operations.restore_task(actor, uuid)
    live = make_task(alice)
    with pytest.raises(NotFound):  # never deleted: no event at all
        operations.restore_task(actor, live.uuid)

    assert AuditEvent.objects.count() == events
    assert snapshot(JobTask.objects.get(uuid=uuid)) == row


def test_only_those_who_could_delete_it_may_restore_it(alice, bob, manager):
    uuid, _ = deleted_task(alice)
    with pytest.raises(NotFound):  # bob cannot even see it
        operations.restore_task(Actor.for_user(bob.user), uuid)
    alice.user.is_active = False
    alice.user.save()
    with pytest.raises(PermissionRefused):
        operations.restore_task(Actor.for_user(alice.user), uuid)
    assert not JobTask.objects.filter(uuid=uuid).exists()
    operations.restore_task(Actor.for_user(manager.user), uuid)  # managers may
    assert JobTask.objects.get(uuid=uuid).modified_by_user_uuid == manager.uuid


def test_children_deleted_by_a_failure_can_be_restored(alice, make_task):
    parent = make_task(alice)
    child = make_task(alice, created_by_job_task_uuid=parent.uuid, parameters={"k": 1})
    before = snapshot(child)
    alice.client.put(f"{URL}/{parent.uuid}", {"job_task": {"success": False}}, format="json")
    assert not JobTask.objects.filter(uuid=child.uuid).exists()

    operations.restore_task(Actor.for_user(alice.user), child.uuid)

    restored = snapshot(JobTask.objects.get(uuid=child.uuid))
    assert restored["created_by_job_task_uuid"] == parent.uuid
    assert restored["parameters"] == before["parameters"]


# -- the admin ----------------------------------------------------------------------


def test_admin_lists_deleted_tasks_shows_history_and_restores(admin, alice):
    uuid, _before = deleted_task(alice, sequence=4)
    client = logged_in(admin)

    listing = client.get(reverse("admin:job_tasks_jobtask_deleted"))
    assert listing.status_code == 200
    assert uuid in listing.content.decode()
    assert (
        "Deleted tasks"
        in client.get(reverse("admin:job_tasks_jobtask_changelist")).content.decode()
    )
    page = client.get(reverse("admin:job_tasks_jobtask_deleted_task", args=[uuid]))
    text = html.unescape(page.content.decode())
    assert page.status_code == 200
    assert '"output": "partial"' in text
    assert "restore-form" in text
    assert text.count("<tr><td>") == 3  # create, update, delete

    response = client.post(reverse("admin:job_tasks_jobtask_deleted_task", args=[uuid]))

    task = JobTask.objects.get(uuid=uuid)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:job_tasks_jobtask_change", args=[task.pk])
    assert task.output == "partial"
    assert task.sequence == 4
    last = AuditEvent.objects.filter(object_uuid=uuid).latest("id")
    assert (last.event_type, last.user_uuid) == ("create", admin.uuid)
    link = reverse("admin:job_tasks_jobtask_deleted_task", args=[uuid])
    assert link not in client.get(reverse("admin:job_tasks_jobtask_deleted")).content.decode()
    # a second POST (a stale page) is refused with a message, nothing changes
    again = client.post(reverse("admin:job_tasks_jobtask_deleted_task", args=[uuid]), follow=True)
    assert "not deleted" in again.content.decode()
    assert AuditEvent.objects.filter(object_uuid=uuid).count() == 4


def test_admin_deleted_tasks_are_those_the_user_may_see(alice, bob):
    from django.contrib.auth.models import Permission

    for caller in (alice, bob):
        caller.user.is_staff = True
        caller.user.save()
        caller.user.user_permissions.add(
            *Permission.objects.filter(
                codename__in=["view_jobtask", "change_jobtask", "add_jobtask"]
            )
        )
    mine, _ = deleted_task(alice)
    client = logged_in(bob)
    assert mine not in client.get(reverse("admin:job_tasks_jobtask_deleted")).content.decode()
    assert (
        client.get(reverse("admin:job_tasks_jobtask_deleted_task", args=[mine])).status_code == 404
    )
    client.post(reverse("admin:job_tasks_jobtask_deleted_task", args=[mine]))
    assert not JobTask.objects.filter(uuid=mine).exists()
    assert mine in logged_in(alice).get(reverse("admin:job_tasks_jobtask_deleted")).content.decode()


def test_admin_restore_needs_the_add_permission(alice):
    from django.contrib.auth.models import Permission

    alice.user.is_staff = True
    alice.user.save()
    alice.user.user_permissions.add(Permission.objects.get(codename="view_jobtask"))
    uuid, _ = deleted_task(alice)
    client = logged_in(alice)
    page = client.get(reverse("admin:job_tasks_jobtask_deleted_task", args=[uuid]))
    assert page.status_code == 200
    assert "restore-form" not in page.content.decode()
    assert (
        client.post(reverse("admin:job_tasks_jobtask_deleted_task", args=[uuid])).status_code == 403
    )
    assert not JobTask.objects.filter(uuid=uuid).exists()
