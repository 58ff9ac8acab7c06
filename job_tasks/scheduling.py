"""Scheduling (issue 5): claim runnable tasks with a lease, renew, release, expire, retry.

The domain side of the queue; no HTTP here. Workers on any number of machines call
the API, which calls these functions, and the database guarantees the rest:

- *runnable* is ``JobTaskQuerySet.runnable()``: not started, not finished, and every
  task of the same job at a lower level has succeeded (the sequence barrier);
- ``claim`` takes the next runnable tasks (lowest level, then lowest ``qsequence``)
  atomically: on PostgreSQL in one statement (``pgwrites.claim``) that selects them
  ``FOR UPDATE SKIP LOCKED``, so that concurrent claimants never get the same task and
  never wait on each other, marks them and writes their audit rows (when a lease has
  run out, in a transaction that applies the expiry first, with the same locking);
  on SQLite the transaction takes the database's write lock first (serialised);
- a claim records its claimant (user and token) and a lease; the claimant renews it
  while it works. A lease that runs out without a result sends the task back to the
  queue (``expire_leases``, applied by every claim and by
  ``manage.py job_tasks_expire_leases``), or fails it after
  ``JOB_TASKS['MAX_EXPIRED_LEASES']`` such expiries;
- setting ``success`` or ``finished_at`` (an ordinary update) ends the lease
  (``operations.save_update``).

Every change writes audit events in its own transaction, with constant queries
whatever the number of tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Avg, Case, Count, Exists, F, FloatField, Min, OuterRef, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import operations, pgwrites, rules
from .app_settings import app_settings
from .audit import build_event, record_many, snapshot
from .errors import InvalidRequest, NotFound, PermissionRefused
from .identities import Actor
from .models import CLAIM_ORDER, LEVEL, NOT_SUCCEEDED, Counter, JobTask, Level
from .representation import system_user_uuid

#: Most expired leases handled by one call of ``expire_leases`` (claims stay quick).
EXPIRE_BATCH = 500


@dataclass
class Expiry:
    """What one ``expire_leases`` call did: uuids sent back to the queue, and failed."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.requeued) + len(self.failed)


def lease_seconds(value: int | None) -> int:
    """A lease length: ``DEFAULT_LEASE_SECONDS`` when None, else 1..``MAX_LEASE_SECONDS``."""
    if value is None:
        return int(app_settings.DEFAULT_LEASE_SECONDS)
    largest = app_settings.MAX_LEASE_SECONDS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= largest:
        raise InvalidRequest(f"lease_seconds must be an integer from 1 to {largest}")
    return value


def claim_limit(value: int | None) -> int:
    """How many tasks one claim takes: 1 when None; larger values clamp to the maximum."""
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest("limit must be a positive integer")
    return min(value, app_settings.MAX_CLAIM_LIMIT)


def _refuse_inactive(actor: Actor) -> None:
    reason = rules.inactive_refusal(actor)
    if reason:
        raise PermissionRefused(reason)


def _lock_database(using: str) -> None:
    """On SQLite, take the write lock now, so that a change's read and write are serialised.

    An ``UPDATE`` that changes nothing still takes SQLite's RESERVED lock; a transaction
    that read first would instead fail with "database is locked" when a concurrent
    writer got in between. Other databases lock rows (``_for_update``).
    """
    connection = connections[using]
    if connection.vendor == "sqlite":
        table = connection.ops.quote_name(Counter._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET value = value WHERE name = %s", ["qsequence"])


def _for_update(queryset: Any, using: str) -> Any:
    """Lock the rows read, skipping those another transaction holds (where supported)."""
    features = connections[using].features
    if not features.has_select_for_update:
        return queryset
    return queryset.select_for_update(skip_locked=features.has_select_for_update_skip_locked)


def _locked_task(actor: Actor, uuid: str, using: str) -> JobTask:
    queryset = JobTask.objects.using(using).visible_to(actor).filter(uuid=uuid)
    if connections[using].features.has_select_for_update:
        queryset = queryset.select_for_update()
    task = queryset.first()
    if task is None:
        raise NotFound("Path not found")
    return task


def _update_rows(using: str, tasks: list[JobTask], **values: Any) -> None:
    if tasks:
        JobTask.objects.using(using).filter(pk__in=[task.pk for task in tasks]).update(**values)


def claim(
    actor: Actor,
    *,
    job_uuid: str | None = None,
    limit: int | None = None,
    lease: int | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> list[JobTask]:
    """Take up to ``limit`` runnable tasks visible to ``actor``, in claim order.

    Each is marked started now, claimed by the actor (user and token), leased for
    ``lease`` seconds, and its ``attempts`` counted. Expired leases are applied first.
    An empty list when nothing is runnable. Constant queries whatever ``limit``.
    """
    _refuse_inactive(actor)
    seconds, count = lease_seconds(lease), claim_limit(limit)
    if pgwrites.enabled(using):  # one statement, when no lease has run out
        now = timezone.now()
        tasks = pgwrites.claim(
            actor,
            job_uuid=job_uuid,
            count=count,
            values=_claim_values(actor, now, seconds),
            summary_suffix=_claim_summary(seconds),
            now=now,
            event_time=timezone.now(),
            using=using,
        )
        if tasks:
            return tasks
    with transaction.atomic(using=using):
        _lock_database(using)
        expire_leases(using=using)
        queryset = JobTask.objects.using(using).visible_to(actor).runnable()
        if job_uuid is not None:
            queryset = queryset.filter(job_uuid=job_uuid)
        tasks = list(_for_update(queryset, using).order_by(*CLAIM_ORDER)[:count])
        if not tasks:
            return []
        now = timezone.now()
        olds = [snapshot(task) for task in tasks]
        values = _claim_values(actor, now, seconds)
        _update_rows(using, tasks, attempts=F("attempts") + 1, **values)
        events = []
        for task, old in zip(tasks, olds, strict=True):
            _set(task, values)
            task.attempts += 1
            events.append(
                build_event(
                    "claim",
                    task.uuid,
                    actor,
                    old=old,
                    new=snapshot(task),
                    summary=f"attempt {task.attempts}{_claim_summary(seconds)}",
                )
            )
        record_many(events, using=using)
    return tasks


def _claim_values(actor: Actor, now: datetime, seconds: int) -> dict[str, Any]:
    """What a claim sets on each task it takes (and ``attempts`` is counted)."""
    return {
        "started_at": now,
        "modified_at": now,
        "updated_at": now,
        "modified_by_user_uuid": actor.uuid,
        "claimed_by_user_uuid": actor.uuid,
        "claimed_by_token_uuid": actor.token_uuid,
        "lease_expires_at": now + timedelta(seconds=seconds),
    }


def _claim_summary(seconds: int) -> str:
    """The end of a claim event's summary, after ``attempt N``."""
    return f", leased for {seconds} s"


def _check_claimant(actor: Actor, task: JobTask, attempt: int | None, now: datetime) -> None:
    """The caller must hold the task's live lease (422 otherwise: a conflict of state)."""
    if task.lease_expires_at is None:
        raise InvalidRequest(f"Task {task.uuid} is not leased (it is {task.state})")
    if (task.claimed_by_user_uuid, task.claimed_by_token_uuid) != (actor.uuid, actor.token_uuid):
        raise InvalidRequest(
            f"Task {task.uuid} is leased to {task.claimed_by_user_uuid} with another token"
            if task.claimed_by_user_uuid == actor.uuid
            else f"Task {task.uuid} is leased to {task.claimed_by_user_uuid}"
        )
    if attempt is not None and attempt != task.attempts:
        raise InvalidRequest(
            f"Attempt {attempt} of task {task.uuid} is over: it is at attempt {task.attempts}"
        )
    if task.lease_expires_at <= now:
        raise InvalidRequest(
            f"The lease of task {task.uuid} expired at {task.lease_expires_at.isoformat()}"
        )


def renew(
    actor: Actor,
    uuid: str,
    *,
    lease: int | None = None,
    attempt: int | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> JobTask:
    """Extend the caller's live lease on ``uuid`` to ``lease`` seconds from now.

    Only the claimant (same user and token; same ``attempt`` when given) may renew,
    and only before the lease runs out: 422 otherwise. Changes no wire attribute.
    """
    _refuse_inactive(actor)
    seconds = lease_seconds(lease)
    with transaction.atomic(using=using):
        _lock_database(using)
        task = _locked_task(actor, uuid, using)
        now = timezone.now()
        _check_claimant(actor, task, attempt, now)
        task.lease_expires_at = now + timedelta(seconds=seconds)
        _update_rows(using, [task], lease_expires_at=task.lease_expires_at)
        summary = f"lease extended by {seconds} s (attempt {task.attempts})"
        event = build_event("renew", task.uuid, actor, old=None, new=None, summary=summary)
        record_many([event], using=using)
    return task


def _requeue_values(now: datetime, by: str | None) -> dict[str, Any]:
    """The values that send a started task back to the queue."""
    return {
        "started_at": None,
        "progress": None,
        "claimed_by_user_uuid": None,
        "claimed_by_token_uuid": None,
        "lease_expires_at": None,
        "modified_at": now,
        "updated_at": now,
        "modified_by_user_uuid": by,
    }


def _set(task: JobTask, values: dict[str, Any]) -> None:
    for name, value in values.items():
        setattr(task, name, value)


def release(
    actor: Actor, uuid: str, *, attempt: int | None = None, using: str = DEFAULT_DB_ALIAS
) -> JobTask:
    """The claimant gives its task back: runnable again at once, no expiry counted."""
    _refuse_inactive(actor)
    with transaction.atomic(using=using):
        _lock_database(using)
        task = _locked_task(actor, uuid, using)
        now = timezone.now()
        _check_claimant(actor, task, attempt, now)
        old, values = snapshot(task), _requeue_values(now, actor.uuid)
        _set(task, values)
        _update_rows(using, [task], **values)
        summary = f"released by its claimant (attempt {task.attempts})"
        new = snapshot(task)
        event = build_event("release", task.uuid, actor, old=old, new=new, summary=summary)
        record_many([event], using=using)
    return task


def expire_leases(*, now: datetime | None = None, using: str = DEFAULT_DB_ALIAS) -> Expiry:
    """Apply leases that ran out without a result (at most ``EXPIRE_BATCH`` per call).

    Each such task counts an expired lease; it goes back to the queue, or, on reaching
    ``MAX_EXPIRED_LEASES``, is marked failed (``success = false``, which deletes its
    direct children, spec §15.5). Audited as ``lease_expired`` by the system (no user).
    """
    now = now or timezone.now()
    most = app_settings.MAX_EXPIRED_LEASES
    done = Expiry()
    # Its own transaction, or (called by claim) a part of the caller's, without a
    # savepoint: an error ends both anyway.
    with transaction.atomic(using=using, savepoint=False):
        _lock_database(using)
        expired = JobTask.objects.using(using).filter(
            lease_expires_at__lte=now, success__isnull=True
        )
        tasks = list(_for_update(expired, using).order_by("lease_expires_at", "id")[:EXPIRE_BATCH])
        if not tasks:
            return done
        system = system_user_uuid(app_settings.CLUSTER_ID)
        requeue = _requeue_values(now, system)
        fail = {
            "success": False,
            "finished_at": now,
            "lease_expires_at": None,
            "modified_at": now,
            "updated_at": now,
            "modified_by_user_uuid": system,
        }
        requeued, failed, events = [], [], []
        for task in tasks:
            old, holder = snapshot(task), task.claimed_by_user_uuid
            task.expired_leases += 1
            if task.expired_leases >= most:
                _set(task, fail)
                failed.append(task)
                summary = f"lease of {holder} expired {task.expired_leases} times: failed"
            else:
                _set(task, requeue)
                requeued.append(task)
                summary = f"lease of {holder} expired ({task.expired_leases} of {most}): requeued"
            events.append(
                build_event(
                    "lease_expired", task.uuid, None, old=old, new=snapshot(task), summary=summary
                )
            )
        counted = F("expired_leases") + 1
        _update_rows(using, requeued, expired_leases=counted, **requeue)
        _update_rows(using, failed, expired_leases=counted, **fail)
        done.requeued = [task.uuid for task in requeued]
        done.failed = [task.uuid for task in failed]
        record_many(events, using=using)
        for task in failed:
            operations.delete_children(None, task, using=using)
    return done


def retry(actor: Actor, uuid: str, *, using: str = DEFAULT_DB_ALIAS) -> JobTask:
    """Send a failed task back to the queue, as new (owner, group members, managers).

    ``success``, ``started_at``, ``finished_at``, ``progress`` and ``output`` are
    cleared and the count of expired leases starts again; ``attempts`` goes on.
    Any other state is a 422.
    """
    with transaction.atomic(using=using):
        _lock_database(using)
        task = _locked_task(actor, uuid, using)
        reasons = [rules.inactive_refusal(actor)]
        if not rules.may_write_task(actor, task):
            reasons.append(rules.NOT_WRITABLE)
        if any(reasons):
            raise PermissionRefused(*(reason for reason in reasons if reason))
        if task.success is not False:
            raise InvalidRequest(
                f"Only a failed task can be retried: task {task.uuid} is {task.state}"
            )
        old, now = snapshot(task), timezone.now()
        values = {
            **_requeue_values(now, actor.uuid),
            "success": None,
            "finished_at": None,
            "output": None,
            "expired_leases": 0,
        }
        _set(task, values)
        _update_rows(using, [task], **values)
        summary = f"retried after {task.attempts} attempts"
        record_many(
            [build_event("retry", task.uuid, actor, old=old, new=snapshot(task), summary=summary)],
            using=using,
        )
    return task


def summary(
    actor: Actor, *, job_uuid: str | None = None, using: str = DEFAULT_DB_ALIAS
) -> dict[str, Any]:
    """Counts of the visible tasks of ``job_uuid`` (all jobs when None), in one query.

    ``todo``, ``running``, ``done``, ``failed`` (the words of Arvados's Job
    ``tasks_summary``), ``runnable`` (the part of ``todo`` that may start now),
    ``current_sequence`` (the lowest level with a task that has not succeeded: the
    level the job is at, or blocked at; null when all succeeded) and ``progress``
    (the mean, a succeeded task counting 1 and a task without progress 0).
    """
    queryset = JobTask.objects.using(using).visible_to(actor)
    if job_uuid is not None:
        queryset = queryset.filter(job_uuid=job_uuid)
    blockers = JobTask.objects.blocking(OuterRef("job_uuid"), Level(OuterRef("sequence")))
    todo = Q(started_at__isnull=True, success__isnull=True)
    row = queryset.aggregate(
        total=Count("pk"),
        todo=Count("pk", filter=todo),
        runnable=Count("pk", filter=todo & ~Exists(blockers)),
        running=Count("pk", filter=Q(started_at__isnull=False, success__isnull=True)),
        done=Count("pk", filter=Q(success=True)),
        failed=Count("pk", filter=Q(success=False)),
        current_sequence=Min(LEVEL, filter=NOT_SUCCEEDED),
        progress=Avg(
            Case(
                When(success=True, then=Value(1.0)),
                default=Coalesce(F("progress"), Value(0.0)),
                output_field=FloatField(),
            )
        ),
    )
    return {
        "kind": "arvados#jobTaskSummary",
        "job_uuid": job_uuid,
        "todo": row["todo"],
        "running": row["running"],
        "done": row["done"],
        "failed": row["failed"],
        "runnable": row["runnable"],
        "current_sequence": row["current_sequence"],
        "progress": row["progress"],
        "items_available": row["total"],
    }
