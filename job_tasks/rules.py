"""Who may do what: pure predicates shared by the DRF permission classes and the domain.

Nothing here touches the database; each function answers one question about an
``Actor`` and a planned write (``operations.Write``). The permission classes
(``permissions.py``) ask them before a view acts, and ``operations.py`` asks them
again before it writes, so the admin and every other entry point obey them too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .identities import Actor
from .models import AuditEvent, JobTask

if TYPE_CHECKING:
    from .operations import Write

#: Attributes only a job manager may set or change (spec §15.3).
MANAGER_ATTRIBUTES = ("qsequence", "job_uuid", "created_by_job_task_uuid")

INACTIVE = "#<ArvadosModel::PermissionDeniedError: user is inactive>"
NOT_WRITABLE = "Uuid is not writable"


def may_write_owner(actor: Actor, owner_uuid: str) -> bool:
    """May ``actor`` own things through ``owner_uuid``? Self, own groups; managers: anyone."""
    return actor.sees_everything or owner_uuid == actor.uuid or owner_uuid in actor.group_uuids


def may_write_task(actor: Actor, task: JobTask) -> bool:
    """May ``actor`` change or delete ``task``? (Whoever may see a task may write it.)"""
    return may_write_owner(actor, task.owner_uuid)


def may_see_event(actor: Actor, event: AuditEvent) -> bool:
    """May ``actor`` read the history of a task that is gone? Judged by its last owner."""
    attributes = event.new_attributes or event.old_attributes or {}
    owner = attributes.get("owner_uuid")
    return actor.sees_everything or (owner is not None and may_write_owner(actor, owner))


def inactive_refusal(actor: Actor) -> str | None:
    return None if actor.user.is_active else INACTIVE


def owner_refusal(actor: Actor, write: Write) -> str | None:
    """A new ``owner_uuid`` needs write permission on the new owner and on the old one."""
    if "owner_uuid" not in write.changes:
        return None
    if not may_write_owner(actor, write.changes["owner_uuid"]):
        return "Owner uuid cannot be set or changed without write permission on new owner"
    if write.task is not None and not may_write_owner(actor, write.task.owner_uuid):
        return "Owner uuid cannot be set or changed without write permission on old owner"
    return None


def manager_attribute_refusal(actor: Actor, write: Write) -> str | None:
    """The job-manager rule of spec §15.3, or None when the write may go ahead.

    Update: a caller without the role may not *change* ``qsequence``, ``job_uuid`` or
    ``created_by_job_task_uuid`` (sending the current value is not a change).
    Create: ``qsequence`` is the role's alone; ``job_uuid`` and
    ``created_by_job_task_uuid`` are allowed for a running task queuing follow-up
    work in its own job: the parent must be writable, started and not finished, and
    ``job_uuid`` (filled in from the parent when omitted) must be the parent's.
    """
    if actor.is_manager:
        return None
    if write.task is not None:
        changed = [name for name in MANAGER_ATTRIBUTES if name in write.changes]
        return _only_managers(changed) if changed else None
    if write.changes.get("qsequence") is not None:
        return _only_managers(["qsequence"])
    parent = write.parent
    if parent is None:
        if write.changes.get("job_uuid") is not None:
            return _only_managers(["job_uuid"])
        return None
    if not may_write_task(actor, parent) or not parent.is_running:
        return (
            f"{_only_managers(['created_by_job_task_uuid'])}, except for a running task "
            f"queuing follow-up work: task '{parent.uuid}' is not running"
        )
    if write.changes.get("job_uuid") != parent.job_uuid:
        return (
            f"{_only_managers(['job_uuid'])}: a task queuing follow-up work must use "
            f"its own job_uuid '{parent.job_uuid}'"
        )
    return None


def _only_managers(names: list[str]) -> str:
    return f"Only a job manager may set or change {', '.join(names)}"


def refusals(actor: Actor, write: Write) -> list[str]:
    """Every reason (403) to refuse ``write``; empty when it is allowed."""
    reasons = [
        inactive_refusal(actor),
        owner_refusal(actor, write),
        manager_attribute_refusal(actor, write),
    ]
    if write.task is not None and not may_write_task(actor, write.task):
        reasons.insert(0, NOT_WRITABLE)
    return [reason for reason in reasons if reason]
