"""The audit log records every change in the same transaction (creates, updates, deletes)."""

from __future__ import annotations

import pytest

from job_tasks.models import AuditEvent, JobTask

URL = "/arvados/v1/job_tasks"
pytestmark = pytest.mark.django_db


def events(uuid: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(object_uuid=uuid).order_by("id"))


def test_create_update_delete_each_write_one_event_with_actor_and_attributes(alice):
    token_uuid = alice.token.split("/")[1]
    created = alice.client.post(URL, {"job_task": {"sequence": 1}}, format="json").json()
    uuid = created["uuid"]
    alice.client.put(f"{URL}/{uuid}", {"job_task": {"progress": 0.5}}, format="json")
    alice.client.put(f"{URL}/{uuid}", {"job_task": {"progress": 0.5}}, format="json")  # no-op
    alice.client.delete(f"{URL}/{uuid}")

    log = events(uuid)
    assert [event.event_type for event in log] == ["create", "update", "delete"]
    assert all(event.user_uuid == alice.uuid for event in log)
    assert all(event.token_uuid == token_uuid for event in log)
    assert log[0].old_attributes is None
    assert log[0].new_attributes["sequence"] == 1
    assert log[0].new_attributes["created_at"] == created["created_at"]
    assert (log[1].old_attributes["progress"], log[1].new_attributes["progress"]) == (None, 0.5)
    assert log[2].old_attributes["progress"] == 0.5
    assert log[2].new_attributes is None


def test_refused_writes_leave_no_event(alice, bob, make_task):
    task = make_task(bob)
    alice.client.put(f"{URL}/{task.uuid}", {"job_task": {"progress": 1}}, format="json")
    alice.client.post(URL, {"job_task": {"qsequence": 3}}, format="json")
    assert not AuditEvent.objects.exists()


def test_children_deleted_by_a_failure_are_audited(alice, make_task):
    parent = make_task(alice)
    child = make_task(alice, created_by_job_task_uuid=parent.uuid)

    alice.client.put(f"{URL}/{parent.uuid}", {"job_task": {"success": False}}, format="json")

    log = events(child.uuid)
    assert [event.event_type for event in log] == ["delete"]
    assert parent.uuid in log[0].summary
    assert log[0].old_attributes["uuid"] == child.uuid
    assert not JobTask.objects.filter(uuid=child.uuid).exists()
