"""Domain operations on job tasks: find, create, update, delete.

Every entry point (the API, the admin, management commands) goes through these
functions, so each rule lives in one place. They take an ``Actor`` and plain,
already type-checked attribute dicts, and raise ``errors.*`` (never HTTP).
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from . import uuids
from .errors import InvalidRequest, NotFound, PermissionRefused
from .identities import Actor
from .models import GroupIdentity, JobTask, UserIdentity, next_qsequence


def get_task(actor: Actor, uuid: str, *, for_update: bool = False) -> JobTask:
    """The task ``uuid`` if ``actor`` may see it; otherwise ``NotFound`` (never a 403)."""
    queryset = JobTask.objects.visible_to(actor)
    if for_update:
        queryset = queryset.select_for_update()
    task = queryset.filter(uuid=uuid).first()
    if task is None:
        raise NotFound("Path not found")
    return task


def _require_active(actor: Actor) -> None:
    if not actor.user.is_active:
        raise PermissionRefused("#<ArvadosModel::PermissionDeniedError: user is inactive>")


def _check_uuid_format(uuid: str) -> None:
    if not uuids.is_uuid(uuid):
        raise InvalidRequest(f"Uuid not a valid Arvados uuid '{uuid}'")
    infix = uuids.infix_of(uuid)
    if infix != uuids.JOB_TASK_INFIX:
        raise InvalidRequest(f"Uuid type field is '{infix}', expected '{uuids.JOB_TASK_INFIX}'")


def _check_owner(actor: Actor, owner_uuid: Any, *, changing_from: str | None) -> None:
    """``owner_uuid`` must be an existing user or group the caller may write (spec §15.2)."""
    if not owner_uuid:
        raise InvalidRequest("Owner uuid can't be blank")
    infix = uuids.infix_of(owner_uuid) if uuids.is_uuid(owner_uuid) else None
    if infix == uuids.USER_INFIX:
        exists = owner_uuid == actor.uuid or UserIdentity.objects.filter(uuid=owner_uuid).exists()
    elif infix == uuids.GROUP_INFIX:
        exists = GroupIdentity.objects.filter(uuid=owner_uuid).exists()
    else:
        raise InvalidRequest("Owner uuid must be set to User or Group")
    if not exists:
        raise InvalidRequest(f"Owner uuid '{owner_uuid}' not found")
    if not _may_write_owner(actor, owner_uuid):
        raise PermissionRefused(
            "Owner uuid cannot be set or changed without write permission on new owner"
        )
    if changing_from is not None and not _may_write_owner(actor, changing_from):
        raise PermissionRefused(
            "Owner uuid cannot be set or changed without write permission on old owner"
        )


def _may_write_owner(actor: Actor, owner_uuid: str) -> bool:
    return actor.sees_everything or owner_uuid == actor.uuid or owner_uuid in actor.group_uuids


def _check_references(actor: Actor, attrs: dict[str, Any]) -> JobTask | None:
    """``created_by_job_task_uuid`` must name a task the caller can read (spec §15.3).

    Returns that task, or None when the attribute is absent or null.
    """
    parent_uuid = attrs.get("created_by_job_task_uuid")
    if parent_uuid is None:
        return None
    parent = JobTask.objects.visible_to(actor).filter(uuid=parent_uuid).first()
    if parent is None:
        raise InvalidRequest(f"Created by job task uuid '{parent_uuid}' not found")
    return parent


def create_task(actor: Actor, attrs: dict[str, Any], *, using: str = "default") -> JobTask:
    """Create a task from type-checked ``attrs`` (spec §6.5).

    Order of checks: validation (422), then permissions (403), then the insert.
    """
    _require_active(actor)
    attrs = dict(attrs)
    uuid = attrs.pop("uuid", None)
    if uuid:
        if not actor.is_admin:
            raise InvalidRequest("Uuid assignment not permitted")
        _check_uuid_format(uuid)
    else:
        uuid = uuids.new_uuid(uuids.JOB_TASK_INFIX)
    owner_uuid = attrs.pop("owner_uuid", None) or actor.uuid
    with transaction.atomic(using=using):
        _check_references(actor, attrs)
        _check_owner(actor, owner_uuid, changing_from=None)
        now = timezone.now()
        task = JobTask(
            uuid=uuid,
            owner_uuid=owner_uuid,
            created_at=now,
            modified_at=now,
            modified_by_user_uuid=actor.uuid,
            **attrs,
        )
        if task.qsequence is None:
            task.qsequence = next_qsequence(using)
        try:
            with transaction.atomic(using=using):
                task.save(force_insert=True, using=using)
        except IntegrityError:
            if JobTask.objects.using(using).filter(uuid=uuid).exists():
                raise InvalidRequest(f"Uuid '{uuid}' is already in use") from None
            raise
    return task


def update_task(
    actor: Actor, uuid: str, attrs: dict[str, Any], *, using: str = "default"
) -> JobTask:
    """Apply type-checked ``attrs`` to the visible task ``uuid`` (spec §6.6).

    Only attributes whose value really changes count: ``modified_at`` and
    ``modified_by_*`` move only then, and sending a value unchanged is never refused.
    """
    with transaction.atomic(using=using):
        task = get_task(actor, uuid, for_update=True)
        _require_active(actor)
        changes = {name: value for name, value in attrs.items() if getattr(task, name) != value}
        if "uuid" in changes:
            if not actor.is_admin:
                raise InvalidRequest("Uuid change not permitted")
            _check_uuid_format(changes["uuid"] or "")
            if JobTask.objects.using(using).filter(uuid=changes["uuid"]).exists():
                raise InvalidRequest(f"Uuid '{changes['uuid']}' is already in use")
        if "created_by_job_task_uuid" in changes:
            _check_references(actor, changes)
        if "owner_uuid" in changes:
            _check_owner(actor, changes["owner_uuid"], changing_from=task.owner_uuid)
        if not changes:
            return task
        failed_now = changes.get("success") is False
        for name, value in changes.items():
            setattr(task, name, value)
        task.modified_at = timezone.now()
        task.modified_by_user_uuid = actor.uuid
        task.save(using=using)
        if failed_now:
            _delete_children(task, using=using)
    return task


def _delete_children(task: JobTask, *, using: str) -> None:
    """A task that fails takes the tasks it queued with it (spec §11.2, §15.5).

    Only direct children, whoever owns them: a retried task must not queue its
    follow-up work twice.
    """
    for child in JobTask.objects.using(using).filter(created_by_job_task_uuid=task.uuid):
        child.delete(using=using)


def delete_task(actor: Actor, uuid: str, *, using: str = "default") -> JobTask:
    """Delete the visible task ``uuid``; return it as it was (spec §6.7)."""
    with transaction.atomic(using=using):
        task = get_task(actor, uuid, for_update=True)
        _require_active(actor)
        pk = task.pk
        task.delete(using=using)
        task.pk = pk
    return task
