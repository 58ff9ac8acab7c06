"""Domain models: job tasks, the identities that own them, and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connections, models
from django.db.models import Exists, F, Func, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import uuids
from .app_settings import app_settings

if TYPE_CHECKING:
    from .identities import Actor

#: The Django permission (``app_label.codename``) that makes a user a job manager.
MANAGER_PERMISSION = "job_tasks.manage_job_tasks"

#: Name of the PostgreSQL sequence behind ``qsequence`` (SQLite uses a ``Counter`` row).
QSEQUENCE_SEQUENCE = "job_tasks_qsequence_seq"


class Level(Func):
    """A task's execution level: its ``sequence``, a null one counting as level 0 (as
    crunch-job's numeric sort of an undefined sequence did).

    ``COALESCE(sequence, 0)`` with the 0 written into the SQL, as the indexes have it:
    ``Coalesce(..., Value(0))`` would make the 0 a parameter, and the generic plan of a
    prepared statement could then not use the indexes (nor their order).
    """

    function = "COALESCE"
    template = "%(function)s(%(expressions)s, 0)"
    output_field = models.IntegerField()


#: ``to_char`` pattern of ``representation.format_timestamp``: UTC, nine fractional digits.
WIRE_TIMESTAMP_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US"000Z"'


class WireTimestamp(Func):
    """A timestamp as the API writes it (``representation.format_timestamp``), written
    by PostgreSQL: cheaper than reading a datetime and formatting it in Python, row after
    row of a list. Other databases give the column (Python formats it).
    """

    output_field = models.DateTimeField()

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return compiler.compile(self.source_expressions[0])

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        return f"to_char({sql} AT TIME ZONE 'UTC', '{WIRE_TIMESTAMP_FORMAT}')", params


#: The level of a task, in queries.
LEVEL = Level(F("sequence"))
#: The same, as the indexes' migrations spell it.
INDEXED_LEVEL = Coalesce(F("sequence"), Value(0))

#: Tasks that hold back the higher levels of their job: still to do, running, or
#: failed (a failed task blocks its job until it is retried).
NOT_SUCCEEDED = Q(success__isnull=True) | Q(success=False)

#: The order in which runnable tasks are claimed: lowest level, then order of arrival.
CLAIM_ORDER = (LEVEL.asc(), F("qsequence").asc(nulls_last=True), F("id").asc())


class JobTaskQuerySet(models.QuerySet["JobTask"]):
    """Queries over job tasks, named after who may see them and the state they are in."""

    def visible_to(self, actor: Actor) -> JobTaskQuerySet:
        """The tasks ``actor`` may read (and so write): own, own groups', or all for managers."""
        if actor.sees_everything:
            return self
        # The caller's uuids as a list (read with the token): simple to plan and to
        # compile; sorted, so that the same caller always makes the same SQL.
        return self.filter(owner_uuid__in=[actor.uuid, *sorted(actor.group_uuids)])

    def todo(self) -> JobTaskQuerySet:
        return self.filter(started_at__isnull=True, success__isnull=True)

    def running(self) -> JobTaskQuerySet:
        return self.filter(started_at__isnull=False, success__isnull=True)

    def succeeded(self) -> JobTaskQuerySet:
        return self.filter(success=True)

    def failed(self) -> JobTaskQuerySet:
        return self.filter(success=False)

    def blocking(self, job_uuid: Any, level: Any) -> JobTaskQuerySet:
        """The tasks of job ``job_uuid`` below ``level`` that have not succeeded.

        Both may be expressions (``OuterRef``). A task without a job has no blockers.
        """
        if job_uuid is None:
            return self.none()
        return self.alias(level=LEVEL).filter(NOT_SUCCEEDED, job_uuid=job_uuid, level__lt=level)

    def runnable(self) -> JobTaskQuerySet:
        """Tasks that may start now: the sequence barrier of spec §12 (issue 5).

        Not started, not finished, and every task of the same ``job_uuid`` at a lower
        level (``sequence``, null counting as 0) has ``success = true``. A task with no
        job stands alone. One ``NOT EXISTS`` subquery over :meth:`blocking`. Claiming
        and the admin's "runnable" filter use it; the ``started_at`` check of writes
        (``operations._check_may_start``) and the summary's ``runnable`` count ask
        :meth:`blocking` directly, so the barrier is written once, in :meth:`blocking`.
        """
        blockers = JobTask.objects.blocking(OuterRef("job_uuid"), Level(OuterRef("sequence")))
        return self.todo().filter(~Exists(blockers))

    def leased(self) -> JobTaskQuerySet:
        """Tasks claimed through the scheduling API whose lease has not been ended."""
        return self.filter(lease_expires_at__isnull=False)


class JobTask(models.Model):
    """One individually scheduled unit of work of a job (Arvados ``arvados#jobTask``).

    Field order follows the wire order of the API object. ``id`` and ``updated_at``
    are stored but never rendered.
    """

    id = models.BigAutoField(primary_key=True)
    uuid = models.CharField(_("uuid"), max_length=uuids.UUID_LENGTH, unique=True)
    owner_uuid = models.CharField(_("owner uuid"), max_length=uuids.UUID_LENGTH)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    modified_by_client_uuid = models.CharField(
        _("modified by client uuid"), max_length=uuids.UUID_LENGTH, null=True, blank=True
    )
    modified_by_user_uuid = models.CharField(
        _("modified by user uuid"), max_length=uuids.UUID_LENGTH, null=True, blank=True
    )
    modified_at = models.DateTimeField(_("modified at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    job_uuid = models.CharField(_("job uuid"), max_length=uuids.UUID_LENGTH, null=True, blank=True)
    created_by_job_task_uuid = models.CharField(
        _("created by job task uuid"), max_length=uuids.UUID_LENGTH, null=True, blank=True
    )
    sequence = models.IntegerField(
        _("sequence"),
        null=True,
        blank=True,
        help_text=_(
            "Execution level: a task cannot run until every task of its job with a "
            "lower sequence has completed."
        ),
    )
    qsequence = models.BigIntegerField(
        _("qsequence"), null=True, blank=True, help_text=_("Order of arrival, 0-based.")
    )
    parameters = models.JSONField(_("parameters"), default=dict, blank=True)
    output = models.TextField(_("output"), null=True, blank=True)
    progress = models.FloatField(_("progress"), null=True, blank=True)
    success = models.BooleanField(
        _("success"),
        null=True,
        blank=True,
        help_text=_("Null while the task has neither succeeded nor failed permanently."),
    )
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # Scheduling (``scheduling.py``): never part of the wire object of spec §2.1.
    claimed_by_user_uuid = models.CharField(
        _("claimed by user uuid"), max_length=uuids.UUID_LENGTH, null=True, blank=True
    )
    claimed_by_token_uuid = models.CharField(
        _("claimed by token uuid"), max_length=uuids.UUID_LENGTH, null=True, blank=True
    )
    lease_expires_at = models.DateTimeField(
        _("lease expires at"),
        null=True,
        blank=True,
        help_text=_("Set while a claimant holds the task; it returns to the queue after."),
    )
    attempts = models.PositiveIntegerField(
        _("attempts"), default=0, help_text=_("How many times the task has been claimed.")
    )
    expired_leases = models.PositiveIntegerField(
        _("expired leases"),
        default=0,
        help_text=_("Leases that ran out without a result since the task was last retried."),
    )

    objects = JobTaskQuerySet.as_manager()

    class Meta:
        verbose_name = _("job task")
        verbose_name_plural = _("job tasks")
        permissions = [("manage_job_tasks", _("Can act as job manager"))]
        indexes = [
            models.Index(fields=["owner_uuid"], name="job_tasks_owner_idx"),
            models.Index(fields=["job_uuid", "sequence"], name="job_tasks_job_seq_idx"),
            models.Index(fields=["created_by_job_task_uuid"], name="job_tasks_created_by_idx"),
            models.Index(fields=["sequence"], name="job_tasks_sequence_idx"),
            models.Index(fields=["qsequence"], name="job_tasks_qsequence_idx"),
            models.Index(fields=["success"], name="job_tasks_success_idx"),
            # The default order (``modified_at desc, uuid asc``) and keyset paging
            # by creation (what the Python SDK's keyset_list_all sends).
            # (PostgreSQL's DESC puts NULLs first, as the ORDER BY asks.)
            models.Index(fields=["-modified_at", "uuid"], name="job_tasks_default_order_idx"),
            models.Index(fields=["created_at", "uuid"], name="job_tasks_created_idx"),
            # Scheduling: the queue in claim order (only tasks still to do), the
            # sequence barrier (only tasks that have not succeeded), expired leases.
            models.Index(
                INDEXED_LEVEL,
                F("qsequence"),
                F("id"),
                name="job_tasks_todo_idx",
                condition=Q(started_at__isnull=True, success__isnull=True),
            ),
            models.Index(
                F("job_uuid"),
                INDEXED_LEVEL,
                name="job_tasks_unfinished_idx",
                condition=NOT_SUCCEEDED,
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="job_tasks_lease_idx",
                condition=Q(lease_expires_at__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(progress__isnull=True) | Q(progress__gte=0, progress__lte=1),
                name="job_tasks_progress_range",
            ),
        ]

    def __str__(self) -> str:
        return self.uuid

    @property
    def is_running(self) -> bool:
        return self.started_at is not None and self.success is None

    @property
    def is_finished(self) -> bool:
        return self.success is not None

    @property
    def state(self) -> str:
        """``todo``, ``running``, ``done`` or ``failed`` (the words of Arvados's tasks_summary)."""
        if self.success is True:
            return "done"
        if self.success is False:
            return "failed"
        return "running" if self.started_at is not None else "todo"


class AuditEvent(models.Model):
    """One change to a job task, written in the same transaction as the change.

    ``old_attributes`` / ``new_attributes`` hold the task's stored attributes (as
    rendered on the wire) before and after; a create has no old, a delete no new.
    Replaying a task's events in ``id`` order reproduces its row.
    """

    class Event(models.TextChoices):
        CREATE = "create", _("create")
        UPDATE = "update", _("update")
        DELETE = "delete", _("delete")
        CLAIM = "claim", _("claim")
        RENEW = "renew", _("renew lease")
        RELEASE = "release", _("release")
        LEASE_EXPIRED = "lease_expired", _("lease expired")
        RETRY = "retry", _("retry")

    id = models.BigAutoField(primary_key=True)
    event_type = models.CharField(_("event type"), max_length=32, choices=Event.choices)
    object_uuid = models.CharField(_("object uuid"), max_length=uuids.UUID_LENGTH)
    user_uuid = models.CharField(
        _("user uuid"), max_length=uuids.UUID_LENGTH, null=True, blank=True
    )
    token_uuid = models.CharField(
        _("token uuid"), max_length=uuids.UUID_LENGTH, null=True, blank=True
    )
    created_at = models.DateTimeField(_("time"), default=timezone.now)
    summary = models.CharField(_("summary"), max_length=200, blank=True)
    old_attributes = models.JSONField(_("old attributes"), null=True, blank=True)
    new_attributes = models.JSONField(_("new attributes"), null=True, blank=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        indexes = [
            models.Index(fields=["object_uuid", "-id"], name="job_tasks_audit_object_idx"),
            models.Index(fields=["created_at"], name="job_tasks_audit_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.object_uuid}"


class Counter(models.Model):
    """A named counter, for databases without sequences (SQLite)."""

    name = models.CharField(_("name"), max_length=64, primary_key=True)
    value = models.BigIntegerField(_("last value"))

    class Meta:
        verbose_name = _("counter")
        verbose_name_plural = _("counters")

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


def count_of(queryset: QuerySet[Any]) -> Subquery:
    """``SELECT COUNT(*)`` of ``queryset`` as a scalar subquery, to ride along with
    another query (the database runs it once: it refers to nothing outside)."""
    counted = queryset.order_by().annotate(
        _count=Func(template="COUNT(*)", output_field=models.BigIntegerField())
    )
    return Subquery(counted.values("_count"), output_field=models.BigIntegerField())


def next_qsequence(using: str) -> int:
    """Draw the next ``qsequence`` (0, 1, 2, ...) atomically, in the caller's transaction.

    PostgreSQL draws from a real sequence (no lock held until commit, so concurrent
    creates never wait on each other; a rolled-back insert leaves a gap). SQLite
    increments a counter row, which its write lock serialises.
    """
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT nextval(%s)", [QSEQUENCE_SEQUENCE])
        else:
            table = connection.ops.quote_name(Counter._meta.db_table)
            cursor.execute(
                f"UPDATE {table} SET value = value + 1 WHERE name = %s RETURNING value",
                ["qsequence"],
            )
        row = cursor.fetchone()
    if row is None:  # the counter row was deleted by hand: start again after the largest
        largest = JobTask.objects.using(using).aggregate(m=models.Max("qsequence"))["m"]
        start = -1 if largest is None else largest
        Counter.objects.using(using).create(name="qsequence", value=start + 1)
        return start + 1
    return int(row[0])


class UserIdentity(models.Model):
    """The stable Arvados uuid (``CCCCC-tpzed-...``) of a user of any ``AUTH_USER_MODEL``."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="job_tasks_identity",
        verbose_name=_("user"),
    )
    uuid = models.CharField(_("uuid"), max_length=uuids.UUID_LENGTH, unique=True)

    class Meta:
        verbose_name = _("user identity")
        verbose_name_plural = _("user identities")

    def __str__(self) -> str:
        return self.uuid


class GroupIdentity(models.Model):
    """The stable Arvados uuid (``CCCCC-j7d0g-...``) of a Django group."""

    group = models.OneToOneField(
        Group,
        on_delete=models.CASCADE,
        related_name="job_tasks_identity",
        verbose_name=_("group"),
    )
    uuid = models.CharField(_("uuid"), max_length=uuids.UUID_LENGTH, unique=True)

    class Meta:
        verbose_name = _("group identity")
        verbose_name_plural = _("group identities")

    def __str__(self) -> str:
        return self.uuid


def hash_secret(secret: str) -> str:
    """SHA-256 of a token secret.

    Secrets are 256 random bits, so no salt or key stretching is needed: there is
    nothing to guess, unlike a password.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> ApiTokenQuerySet:
        """Tokens neither revoked nor expired."""
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """An API token. Only the SHA-256 of its secret is stored; the secret is shown once."""

    uuid = models.CharField(_("uuid"), max_length=uuids.UUID_LENGTH, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="job_tasks_tokens",
        verbose_name=_("user"),
    )
    secret_hash = models.CharField(_("secret hash"), max_length=64, unique=True, editable=False)
    description = models.CharField(_("description"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return self.uuid

    @classmethod
    def issue(
        cls,
        user: Any,
        *,
        description: str = "",
        expires_at: datetime | None = None,
    ) -> tuple[ApiToken, str]:
        """Create a token for ``user``; return it with its full ``v2/<uuid>/<secret>`` string."""
        if expires_at is None and app_settings.TOKEN_LIFETIME_SECONDS is not None:
            expires_at = timezone.now() + timedelta(seconds=app_settings.TOKEN_LIFETIME_SECONDS)
        secret = uuids.base36(secrets.randbits(256)).rjust(50, "0")
        token = cls.objects.create(
            uuid=uuids.new_uuid(uuids.TOKEN_INFIX),
            user=user,
            secret_hash=hash_secret(secret),
            description=description,
            expires_at=expires_at,
        )
        return token, f"v2/{token.uuid}/{secret}"

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and (
            self.expires_at is None or self.expires_at > timezone.now()
        )

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
