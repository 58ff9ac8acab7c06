"""Unit tests of each permission class and rule, with APIRequestFactory and stub views."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from job_tasks import rules
from job_tasks.identities import Actor
from job_tasks.models import JobTask
from job_tasks.operations import Write
from job_tasks.permissions import (
    CanAssignOwner,
    CanSetManagerAttributes,
    CanWriteTask,
    IsActiveUser,
)

pytestmark = pytest.mark.django_db
factory = APIRequestFactory()
JOB = "zzzzz-8i9sb-aaaaaaaaaaaaaaa"


@dataclass
class StubView:
    """What the write permissions need of a view: an ``action`` and ``get_write``."""

    action: str
    write: Write

    def get_write(self, task: JobTask | None) -> Write:
        return self.write


def request_as(user: Any, method: str = "post") -> Any:
    request = getattr(factory, method)("/")
    force_authenticate(request, user=user)
    return APIView().initialize_request(request)


def task(owner_uuid: str, **attrs: Any) -> JobTask:
    return JobTask(uuid="zzzzz-ot0gb-000000000000000", owner_uuid=owner_uuid, **attrs)


# IsActiveUser


def test_is_active_user_allow(alice):
    assert IsActiveUser().has_permission(request_as(alice.user, "get"), None)


def test_is_active_user_deny_inactive(alice):
    alice.user.is_active = False
    assert not IsActiveUser().has_permission(request_as(alice.user, "get"), None)
    assert "inactive" in IsActiveUser.message


def test_is_active_user_deny_anonymous():
    assert not IsActiveUser().has_permission(request_as(AnonymousUser(), "get"), None)


# CanWriteTask


def test_can_write_task_get_allow_for_anyone_who_sees_it(bob, alice):
    assert CanWriteTask().has_object_permission(request_as(bob.user, "get"), None, task(alice.uuid))


def test_can_write_task_put_allow_owner(alice):
    assert CanWriteTask().has_object_permission(
        request_as(alice.user, "put"), None, task(alice.uuid)
    )


def test_can_write_task_put_allow_manager(manager, alice):
    assert CanWriteTask().has_object_permission(
        request_as(manager.user, "put"), None, task(alice.uuid)
    )


def test_can_write_task_delete_deny_other(bob, alice):
    permission = CanWriteTask()
    assert not permission.has_object_permission(
        request_as(bob.user, "delete"), None, task(alice.uuid)
    )
    assert permission.message == "Uuid is not writable"


# CanSetManagerAttributes


def test_can_set_manager_attributes_create_deny_qsequence(alice):
    permission = CanSetManagerAttributes()
    view = StubView("create", Write(task=None, changes={"qsequence": 3}))
    assert not permission.has_permission(request_as(alice.user), view)
    assert permission.message == "Only a job manager may set or change qsequence"


def test_can_set_manager_attributes_create_allow_manager(manager):
    view = StubView("create", Write(task=None, changes={"qsequence": 3, "job_uuid": JOB}))
    assert CanSetManagerAttributes().has_permission(request_as(manager.user), view)


def test_can_set_manager_attributes_create_allow_running_parent(alice):
    parent = task(alice.uuid, job_uuid=JOB, started_at=timezone.now())
    write = Write(task=None, changes={"job_uuid": JOB}, parent=parent)
    assert CanSetManagerAttributes().has_permission(
        request_as(alice.user), StubView("create", write)
    )


def test_can_set_manager_attributes_create_deny_finished_parent(alice):
    parent = task(alice.uuid, job_uuid=JOB, started_at=timezone.now(), success=True)
    write = Write(task=None, changes={"job_uuid": JOB}, parent=parent)
    permission = CanSetManagerAttributes()
    assert not permission.has_permission(request_as(alice.user), StubView("create", write))
    assert "is not running" in permission.message


def test_can_set_manager_attributes_update_is_an_object_check(alice):
    existing = task(alice.uuid, qsequence=1)
    view = StubView("update", Write(task=existing, changes={"qsequence": 2}))
    permission = CanSetManagerAttributes()
    assert permission.has_permission(request_as(alice.user, "put"), view)  # not yet: 404 first
    assert not permission.has_object_permission(request_as(alice.user, "put"), view, existing)


def test_can_set_manager_attributes_update_allow_unchanged(alice):
    existing = task(alice.uuid, qsequence=1)
    view = StubView("update", Write(task=existing, changes={"progress": 0.5}))
    assert CanSetManagerAttributes().has_object_permission(
        request_as(alice.user, "put"), view, existing
    )


def test_write_permissions_need_get_write_on_the_view(alice):
    class Bare:
        action = "create"

    with pytest.raises(ImproperlyConfigured, match="get_write"):
        CanSetManagerAttributes().has_permission(request_as(alice.user), Bare())


# CanAssignOwner


def test_can_assign_owner_create_allow_self(alice):
    view = StubView("create", Write(task=None, changes={"owner_uuid": alice.uuid}))
    assert CanAssignOwner().has_permission(request_as(alice.user), view)


def test_can_assign_owner_create_deny_someone_else(alice, bob):
    permission = CanAssignOwner()
    view = StubView("create", Write(task=None, changes={"owner_uuid": bob.uuid}))
    assert not permission.has_permission(request_as(alice.user), view)
    assert "new owner" in permission.message


def test_can_assign_owner_update_deny_taking_from_old_owner(alice, bob):
    existing = task(bob.uuid)
    view = StubView("update", Write(task=existing, changes={"owner_uuid": alice.uuid}))
    permission = CanAssignOwner()
    assert not permission.has_object_permission(request_as(alice.user, "put"), view, existing)
    assert "old owner" in permission.message


def test_can_assign_owner_update_allow_manager(manager, alice, bob):
    existing = task(bob.uuid)
    view = StubView("update", Write(task=existing, changes={"owner_uuid": alice.uuid}))
    assert CanAssignOwner().has_object_permission(request_as(manager.user, "put"), view, existing)


# rules.refusals collects every reason


def test_refusals_lists_each_reason(alice, bob):
    existing = task(bob.uuid, qsequence=1)
    write = Write(task=existing, changes={"qsequence": 2, "owner_uuid": alice.uuid})
    reasons = rules.refusals(Actor.for_user(alice.user), write)
    assert reasons[0] == rules.NOT_WRITABLE
    assert any("old owner" in reason for reason in reasons)
    assert any("qsequence" in reason for reason in reasons)


def test_refusals_empty_for_an_allowed_write(alice):
    write = Write(task=task(alice.uuid), changes={"progress": 1.0})
    assert rules.refusals(Actor.for_user(alice.user), write) == []
