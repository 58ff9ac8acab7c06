"""Domain operations on job tasks: find, plan, create, update, delete.

Every entry point (the API, the admin, management commands) goes through these
functions, so each rule lives in one place. They take an ``Actor`` and plain,
already type-checked attribute dicts, and raise ``errors.*`` (never HTTP).

A write happens in two steps. ``plan_create`` / ``plan_update`` validate the request
against the database (uuids, owners, references: 422) and describe it as a
``Write``; ``rules.refusals`` then says whether the actor may do it (403); finally
``save_create`` / ``save_update`` perform it. The DRF permission classes look at the
same ``Write`` between the steps. ``create_task`` / ``update_task`` run all three.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import pgwrites, rules, uuids
from .audit import build_event, record, snapshot
from .errors import InvalidRequest, NotFound, PermissionRefused
from .identities import Actor
from .models import (
    CLAIM_ORDER,
    AuditEvent,
    GroupIdentity,
    JobTask,
    UserIdentity,
    next_qsequence,
)
from .prepared import PreparedQuery


@dataclass
class Write:
    """A validated create (``task`` is None) or update of ``task``.

    ``changes`` holds the attributes that will be stored: for a create every given
    attribute plus the defaults filled in; for an update only those whose value
    really changes. ``parent`` is the task named by a new ``created_by_job_task_uuid``.
    """

    task: JobTask | None
    changes: dict[str, Any] = field(default_factory=dict)
    parent: JobTask | None = None


def _visible_task(uuid: str, *, actor: Actor, for_update: bool, using_: str) -> Any:
    queryset = JobTask.objects.visible_to(actor)
    if for_update:
        queryset = queryset.select_for_update()
    elif connections[using_].vendor == "postgresql":
        # The row's version, for an update written only if the row is unchanged since.
        table = connections[using_].ops.quote_name(JobTask._meta.db_table)
        queryset = queryset.annotate(_row_version=RawSQL(pgwrites.row_version_sql(table), ()))
    return queryset.filter(uuid=uuid)


#: Every get, update and delete looks a task up this way: compiled once per connection
#: and caller (a manager's or admin's query is everyone's; others' hold their groups).
_VISIBLE_TASK = PreparedQuery("task", _visible_task, arity=1)


def get_task(
    actor: Actor, uuid: str, *, for_update: bool = False, using: str = "default"
) -> JobTask:
    """The task ``uuid`` if ``actor`` may see it; otherwise ``NotFound`` (never a 403).

    ``for_update``: locked until the end of the transaction. Otherwise, on PostgreSQL,
    the task carries its row version, for ``save_update_unlocked``.
    """
    task = _VISIBLE_TASK.first(
        uuid,
        key=(actor.visibility_key, for_update),
        using=using,
        actor=actor,
        for_update=for_update,
        using_=using,
    )
    if task is None:
        raise NotFound("Path not found")
    return task


def _check_uuid_format(uuid: str) -> None:
    if not uuids.is_uuid(uuid):
        raise InvalidRequest(f"Uuid not a valid Arvados uuid '{uuid}'")
    infix = uuids.infix_of(uuid)
    if infix != uuids.JOB_TASK_INFIX:
        raise InvalidRequest(f"Uuid type field is '{infix}', expected '{uuids.JOB_TASK_INFIX}'")


def _check_new_uuid(uuid: str) -> None:
    _check_uuid_format(uuid)
    if JobTask.objects.filter(uuid=uuid).exists():
        raise InvalidRequest(f"Uuid '{uuid}' is already in use")


def _check_owner_exists(actor: Actor, owner_uuid: Any) -> None:
    """``owner_uuid`` must name an existing user or group (422; spec §15.2)."""
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


def _readable_parent(actor: Actor, parent_uuid: str) -> JobTask:
    """``created_by_job_task_uuid`` must name a task the caller can read (422; §15.3)."""
    parent = JobTask.objects.visible_to(actor).filter(uuid=parent_uuid).first()
    if parent is None:
        raise InvalidRequest(f"Created by job task uuid '{parent_uuid}' not found")
    return parent


#: How many blocking tasks a refused start names.
_BLOCKERS_NAMED = 10


def _check_may_start(actor: Actor, job_uuid: str | None, sequence: int | None) -> None:
    """A task may start only when the sequence barrier lets it (issue 5): else a 422.

    The barrier weighs every task of the job, also those the caller cannot see (a
    hidden unfinished task must still hold the job back). The message names the
    blockers the caller may see and says only *that* hidden ones block it too: never
    which, nor how many.
    """
    blockers = JobTask.objects.blocking(job_uuid, sequence if sequence is not None else 0)
    if not blockers.exists():
        return
    visible = blockers.visible_to(actor)
    named = list(
        visible.order_by(*CLAIM_ORDER).values_list("uuid", flat=True)[: _BLOCKERS_NAMED + 1]
    )
    hidden = not actor.sees_everything and blockers.exclude(pk__in=visible.values("pk")).exists()
    if not named:
        raise InvalidRequest(
            f"Task cannot start: one or more tasks of job {job_uuid} with a lower sequence "
            "that you cannot see have not succeeded"
        )
    total = len(named) if len(named) <= _BLOCKERS_NAMED else visible.count()
    shown = named[:_BLOCKERS_NAMED]
    message = (
        f"Task cannot start: {total} task(s) of job {job_uuid} with a lower sequence "
        f"{'that you can see ' if hidden else ''}have not succeeded: {', '.join(shown)}"
    )
    if total > len(shown):
        message += f" and {total - len(shown)} more"
    if hidden:
        message += "; one or more tasks you cannot see also block it"
    raise InvalidRequest(message)


def plan_create(actor: Actor, attrs: dict[str, Any]) -> Write:
    """Validate a create against the database and fill in its defaults (spec §6.5)."""
    changes = dict(attrs)
    uuid = changes.pop("uuid", None)
    if uuid:
        if not actor.is_admin:
            raise InvalidRequest("Uuid assignment not permitted")
        _check_new_uuid(uuid)
        changes["uuid"] = uuid
    changes["owner_uuid"] = changes.get("owner_uuid") or actor.uuid
    parent = None
    if changes.get("created_by_job_task_uuid") is not None:
        parent = _readable_parent(actor, changes["created_by_job_task_uuid"])
        changes.setdefault("job_uuid", parent.job_uuid)  # follow-up work stays in its job
    _check_owner_exists(actor, changes["owner_uuid"])
    if changes.get("started_at") is not None:
        _check_may_start(actor, changes.get("job_uuid"), changes.get("sequence"))
    return Write(task=None, changes=changes, parent=parent)


def plan_update(actor: Actor, task: JobTask, attrs: dict[str, Any]) -> Write:
    """Validate an update of ``task`` against the database (spec §6.6).

    Only attributes whose value really changes count, so sending a value unchanged
    is never refused.
    """
    changes = {name: value for name, value in attrs.items() if getattr(task, name) != value}
    if "uuid" in changes:
        if not actor.is_admin:
            raise InvalidRequest("Uuid change not permitted")
        _check_new_uuid(changes["uuid"] or "")
    parent = None
    if changes.get("created_by_job_task_uuid") is not None:
        parent = _readable_parent(actor, changes["created_by_job_task_uuid"])
    if "owner_uuid" in changes:
        _check_owner_exists(actor, changes["owner_uuid"])
    if task.started_at is None and changes.get("started_at") is not None:
        _check_may_start(
            actor, changes.get("job_uuid", task.job_uuid), changes.get("sequence", task.sequence)
        )
    return Write(task=task, changes=changes, parent=parent)


def _refuse(actor: Actor, write: Write) -> None:
    reasons = rules.refusals(actor, write)
    if reasons:
        raise PermissionRefused(*reasons)


def save_create(actor: Actor, write: Write, *, using: str = "default") -> JobTask:
    """Insert a planned task. Re-checks ``rules`` first (they are cheap and pure)."""
    _refuse(actor, write)
    changes = dict(write.changes)
    now = timezone.now()
    task = JobTask(
        uuid=changes.pop("uuid", None) or uuids.new_uuid(uuids.JOB_TASK_INFIX),
        created_at=now,
        modified_at=now,
        modified_by_user_uuid=actor.uuid,
        **changes,
    )
    if not write.changes.get("uuid") and pgwrites.enabled(using):
        # One statement: the task, its qsequence and its audit row.
        event = build_event("create", task.uuid, actor, old=None, new=snapshot(task))
        pgwrites.insert(task, event, using=using)
        return task
    # One transaction, or a part of the caller's without a savepoint of its own: every
    # error in it ends the request anyway (and a savepoint is two more round trips).
    with transaction.atomic(using=using, savepoint=False):
        if task.qsequence is None:
            task.qsequence = next_qsequence(using)
        if write.changes.get("uuid"):  # chosen by the client (an admin): it may be taken
            try:
                with transaction.atomic(using=using):
                    task.save(force_insert=True, using=using)
            except IntegrityError:
                if JobTask.objects.using(using).filter(uuid=task.uuid).exists():
                    raise InvalidRequest(f"Uuid '{task.uuid}' is already in use") from None
                raise
        else:  # 77 random bits: a clash is an error like any other
            task.save(force_insert=True, using=using)
        record("create", task.uuid, actor, old=None, new=snapshot(task), using=using)
    return task


def save_update(actor: Actor, write: Write, *, using: str = "default") -> JobTask:
    """Store a planned update. The task must be locked (``get_task(for_update=True)``)."""
    _refuse(actor, write)
    task = write.task
    assert task is not None, "save_update needs a Write made by plan_update"
    if not write.changes:
        return task
    failed_now = write.changes.get("success") is False
    with transaction.atomic(using=using, savepoint=False):  # (as in save_create)
        old_uuid, old = _apply(actor, task, write.changes)
        task.save(using=using)
        record("update", old_uuid, actor, old=old, new=snapshot(task), using=using)
        if failed_now:
            delete_children(actor, task, using=using)
    return task


def updates_unlocked(write: Write, *, using: str = "default") -> bool:
    """Whether ``save_update_unlocked`` can store this update.

    On PostgreSQL, for a task read without a lock (it carries its row version), and a
    change without side effects: a failure deletes the task's children, and a new uuid
    may be taken meanwhile; those take the locked path.
    """
    task = write.task
    return bool(
        pgwrites.enabled(using)
        and getattr(task, "_row_version", None) is not None
        and write.changes.get("success") is not False
        and "uuid" not in write.changes
    )


def save_update_unlocked(actor: Actor, write: Write, *, using: str = "default") -> JobTask | None:
    """``save_update`` without a lock: one statement, written only if the task's row is
    still the version that was read (an optimistic lock).

    For writes that ``updates_unlocked`` accepts. None when the row changed (or went)
    since it was read: nothing was written; read the task again.
    """
    _refuse(actor, write)
    task = write.task
    if task is None or not updates_unlocked(write, using=using):
        raise ValueError("save_update_unlocked needs a Write that updates_unlocked accepts")
    if not write.changes:
        return task
    old_uuid, old = _apply(actor, task, write.changes)
    event = build_event("update", old_uuid, actor, old=old, new=snapshot(task))
    if not pgwrites.update_if_unchanged(task, task._row_version, event, using=using):
        return None
    return task


def _apply(actor: Actor, task: JobTask, changes: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Make the planned ``changes`` on ``task`` (not saved); its uuid and snapshot before."""
    old_uuid, old = task.uuid, snapshot(task)
    for name, value in changes.items():
        setattr(task, name, value)
    task.modified_at = timezone.now()
    task.modified_by_user_uuid = actor.uuid
    _end_lease(task, changes)
    return old_uuid, old


def _end_lease(task: JobTask, changes: dict[str, Any]) -> None:
    """An update that finishes or un-starts a claimed task ends its lease (``scheduling``).

    A result (``success`` or ``finished_at``) ends the lease, keeping the claimant as
    a record; a leased task given a ``success`` without a ``finished_at`` is stamped
    with the server's time, so that the sequence barrier can be checked on one clock.
    ``started_at`` set to null puts the task back in the queue: the claim is dropped.
    """
    if task.lease_expires_at is None:
        return
    if changes.get("success") is not None or changes.get("finished_at") is not None:
        if task.success is not None and task.finished_at is None:
            task.finished_at = task.modified_at
        task.lease_expires_at = None
    elif "started_at" in changes and task.started_at is None:
        task.lease_expires_at = None
        task.claimed_by_user_uuid = task.claimed_by_token_uuid = None


def create_task(actor: Actor, attrs: dict[str, Any], *, using: str = "default") -> JobTask:
    """Validate (422), check permissions (403) and insert a task, in one transaction."""
    with transaction.atomic(using=using):
        return save_create(actor, plan_create(actor, attrs), using=using)


def update_task(
    actor: Actor, uuid: str, attrs: dict[str, Any], *, using: str = "default"
) -> JobTask:
    """Find (404), validate (422), check permissions (403) and update a task."""
    with transaction.atomic(using=using):
        task = get_task(actor, uuid, for_update=True)
        return save_update(actor, plan_update(actor, task, attrs), using=using)


def delete_children(actor: Actor | None, task: JobTask, *, using: str) -> None:
    """A task that fails takes the tasks it queued with it (spec §11.2, §15.5).

    Only direct children, whoever owns them: a retried task must not queue its
    follow-up work twice. Each deletion is audited, so it can be restored.
    """
    children = JobTask.objects.using(using).filter(created_by_job_task_uuid=task.uuid)
    for child in children.select_for_update():
        _delete(actor, child, using=using, summary=f"its parent {task.uuid} failed")


def _delete(actor: Actor | None, task: JobTask, *, using: str, summary: str = "") -> None:
    old = snapshot(task)
    pk = task.pk
    task.delete(using=using)
    task.pk = pk
    record("delete", task.uuid, actor, old=old, new=None, summary=summary, using=using)


def delete_task(actor: Actor, uuid: str, *, using: str = "default") -> JobTask:
    """Delete the visible task ``uuid``; return it as it was (spec §6.7)."""
    with transaction.atomic(using=using):
        task = get_task(actor, uuid, for_update=True)
        return save_delete(actor, task, using=using)


def save_delete(actor: Actor, task: JobTask, *, using: str = "default") -> JobTask:
    """Delete a (locked) task the actor may write; return it as it was."""
    reasons = [rules.inactive_refusal(actor)]
    if not rules.may_write_task(actor, task):
        reasons.append(rules.NOT_WRITABLE)
    if any(reasons):
        raise PermissionRefused(*(reason for reason in reasons if reason))
    with transaction.atomic(using=using):
        _delete(actor, task, using=using)
    return task


#: Stored attributes that the audit log keeps as API timestamps (``audit.snapshot``).
_TIMESTAMP_ATTRIBUTES = ("created_at", "modified_at", "started_at", "finished_at")


def restore_task(actor: Actor, uuid: str, *, using: str = "default") -> JobTask:
    """Bring a deleted task back from its last audited state, under the same uuid.

    The task's last audit event must be its deletion (422 otherwise: it exists, or was
    never deleted); its ``old_attributes`` are inserted again as they were, but for
    ``modified_at`` / ``modified_by_user_uuid`` (now, the actor): a restore is a change.
    Whoever may see the deleted task (judged by its last owner) finds it; the actor
    must be able to write that owner, as for a delete (403). No lease comes back: a
    task deleted while claimed is restored started, without a claimant. Audited as a
    ``create`` whose summary names the deletion undone, in the same transaction.
    """
    with transaction.atomic(using=using):
        events = AuditEvent.objects.using(using).filter(object_uuid=uuid).order_by("-id")
        last = events.first()
        if last is None or not rules.may_see_event(actor, last):
            raise NotFound("Path not found")
        if last.event_type != AuditEvent.Event.DELETE or not last.old_attributes:
            raise InvalidRequest(f"Task {uuid} is not deleted: nothing to restore")
        state = dict(last.old_attributes)
        reasons = [rules.inactive_refusal(actor)]
        if not rules.may_write_owner(actor, state.get("owner_uuid") or ""):
            reasons.append(rules.NOT_WRITABLE)
        if any(reasons):
            raise PermissionRefused(*(reason for reason in reasons if reason))
        _check_owner_exists(actor, state.get("owner_uuid"))
        for name in _TIMESTAMP_ATTRIBUTES:
            if state.get(name) is not None:
                state[name] = parse_datetime(state[name])
        task = JobTask(**state)
        task.modified_at = timezone.now()
        task.modified_by_user_uuid = actor.uuid
        try:
            with transaction.atomic(using=using):
                task.save(force_insert=True, using=using)
        except IntegrityError:
            if JobTask.objects.using(using).filter(uuid=uuid).exists():
                raise InvalidRequest(f"Task {uuid} is not deleted: nothing to restore") from None
            raise
        deleted_at = last.created_at.isoformat(timespec="seconds")
        summary = f"restored from its last state (deleted at {deleted_at}, event {last.pk})"
        record("create", uuid, actor, old=None, new=snapshot(task), summary=summary, using=using)
    return task
