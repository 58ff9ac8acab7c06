"""Writes in one SQL statement on PostgreSQL: creates, updates and claims without a transaction.

The general path (``operations.save_*``, ``scheduling.claim``) makes a change as several
statements in a transaction: ``BEGIN``, the locked read, the write, the audit row,
``COMMIT``. Each is a round trip to the database, and on the hot path round trips are
most of the time (docs/performance.md). On PostgreSQL the common cases are written here
as one statement each, with data-modifying ``WITH`` queries, in autocommit: PostgreSQL
runs a statement atomically, so the task and its audit row are written together or not
at all, as in the general path.

- ``insert``: a new task, its ``qsequence`` (``nextval`` inside the ``INSERT``) and its
  audit row;
- ``update_if_unchanged``: an update and its audit row, applied only if the row is still
  the version that was read (``row_version_sql``): an optimistic lock in place of ``SELECT ...
  FOR UPDATE``; ``False`` tells the caller to read the task again;
- ``claim``: the next runnable tasks (``JobTaskQuerySet.runnable``, compiled by the ORM
  once per connection), locked with ``SKIP LOCKED``, marked claimed, and their audit
  rows, with the old and new states written by ``snapshot_sql``, the SQL twin of
  ``audit.snapshot``.

Like the per-request lookups (``prepared.py``), each statement is prepared once per
database session when ``JOB_TASKS["PREPARED_STATEMENTS"]`` is on: planning them costs
PostgreSQL more than running them.

The values are the general path's: the same Python computes times, uuids and audit
snapshots, and the general path's functions decide when this path is taken. The suite
runs both paths on PostgreSQL (``JOB_TASKS["SINGLE_STATEMENT_WRITES"]``), and a test
holds ``snapshot_sql`` to ``audit.snapshot``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.db import connections
from django.db.models import BooleanField, FloatField, Model
from django.db.models.expressions import RawSQL

from .app_settings import app_settings
from .identities import Actor
from .models import (
    CLAIM_ORDER,
    QSEQUENCE_SEQUENCE,
    WIRE_TIMESTAMP_FORMAT,
    AuditEvent,
    JobTask,
)
from .prepared import MAX_PLANS, PreparedQuery, prepared_sql
from .representation import STORED_ATTRIBUTES, TIMESTAMP_ATTRIBUTES

_SQL_CACHE_ATTRIBUTE = "_job_tasks_write_sql"
#: The claim's guard: the general path (``expire_leases`` first) runs when a lease ran out.
_NO_EXPIRED_LEASE = RawSQL("NOT EXISTS (SELECT 1 FROM expired)", (), output_field=BooleanField())


def enabled(using: str) -> bool:
    """Whether writes on ``using`` take this path (PostgreSQL, and the setting on)."""
    return bool(connections[using].vendor == "postgresql" and app_settings.SINGLE_STATEMENT_WRITES)


def snapshot_sql(alias: str, connection: Any) -> str:
    """SQL for ``audit.snapshot`` of the row ``alias``: the same JSON, built by PostgreSQL.

    Timestamps as the API writes them; a float with an integral value keeps its
    ``.0`` (``progress`` 1.0 is ``1.0``, as Python's ``json`` writes it).
    """
    parts = []
    for name in STORED_ATTRIBUTES:
        field = JobTask._meta.get_field(name)
        column = f"{alias}.{connection.ops.quote_name(field.column)}"
        if name in TIMESTAMP_ATTRIBUTES:
            value = f"to_char({column} AT TIME ZONE 'UTC', '{WIRE_TIMESTAMP_FORMAT}')"
        elif isinstance(field, FloatField):
            value = (
                f"CASE WHEN {column} = trunc({column}) "
                f"THEN (trunc({column})::bigint::text || '.0')::jsonb "
                f"ELSE to_jsonb({column}) END"
            )
        else:
            value = column
        parts.append(f"'{name}', {value}")
    return f"jsonb_build_object({', '.join(parts)})"


def _values(instance: Model, names: Iterable[str], connection: Any, *, add: bool) -> list[Any]:
    """The database values of ``names``, as ``Model.save`` would write them."""
    meta = instance._meta
    return [
        field.get_db_prep_save(field.pre_save(instance, add), connection)
        for field in map(meta.get_field, names)
    ]


#: The columns of an audit row (all but its id), in model order.
_AUDIT_NAMES = tuple(
    field.attname for field in AuditEvent._meta.concrete_fields if not field.primary_key
)


#: The columns of a task row (all but its id), in model order.
_TASK_NAMES = tuple(
    field.attname for field in JobTask._meta.concrete_fields if not field.primary_key
)


def insert(task: JobTask, event: AuditEvent, *, using: str) -> None:
    """Insert ``task`` and its ``create`` event; draw its ``qsequence`` when it has none.

    The event's ``new_attributes`` get the drawn ``qsequence``.
    """
    connection = connections[using]
    draw = task.qsequence is None
    names = tuple(name for name in _TASK_NAMES if not (draw and name == "qsequence"))
    sql = _cached(connection, ("insert", names), lambda: _insert_sql(connection, names, draw))
    params = _values(task, names, connection, add=True)
    if draw:
        params.append(QSEQUENCE_SEQUENCE)
    audit_params = _values(event, _AUDIT_NAMES, connection, add=True)
    params = [*params, *audit_params]
    with connection.cursor() as cursor:
        cursor.execute(prepared_sql(connection, "insert", sql, len(params)), params)
        task.pk, task.qsequence = cursor.fetchone()
    task._state.adding = False
    task._state.db = using


def _insert_sql(connection: Any, names: tuple[str, ...], draw: bool) -> str:
    quote = connection.ops.quote_name
    columns = [quote(JobTask._meta.get_field(name).column) for name in names]
    placeholders = ["%s"] * len(columns)
    if draw:
        columns.append(quote("qsequence"))
        placeholders.append("nextval(%s)")
    audit_columns = [quote(AuditEvent._meta.get_field(name).column) for name in _AUDIT_NAMES]
    audit_values = ["%s"] * len(audit_columns)
    new = _AUDIT_NAMES.index("new_attributes")
    audit_values[new] = "jsonb_set(%s::jsonb, '{qsequence}', to_jsonb(t.qsequence))"
    pk = quote(JobTask._meta.pk.column)
    return (
        f"WITH t AS (INSERT INTO {quote(JobTask._meta.db_table)} ({', '.join(columns)}) "
        f"VALUES ({', '.join(placeholders)}) RETURNING {pk}, {quote('qsequence')}), "
        f"a AS (INSERT INTO {quote(AuditEvent._meta.db_table)} ({', '.join(audit_columns)}) "
        f"SELECT {', '.join(audit_values)} FROM t) "
        f"SELECT {pk}, {quote('qsequence')} FROM t"
    )


def row_version_sql(table: str) -> str:
    """SQL for the version of a row of ``table``: it changes whenever the row does.

    ``xmin`` (the transaction that wrote this version) tells apart versions written by
    different transactions; ``ctid`` (where the version lies) those written within one
    transaction, whose replaced versions keep their place until it ends. An update
    always writes a new version, so the pair changes with every update.
    """
    return f"{table}.xmin::text || ' ' || {table}.ctid::text"


def update_if_unchanged(task: JobTask, version: str, event: AuditEvent, *, using: str) -> bool:
    """Write ``task`` (every column, as ``Model.save``) and its event if the row is still
    at ``version``.

    ``version`` is ``row_version_sql`` of the row when it was read
    (``operations.get_task``); any change since gives it another. ``False`` when the
    row changed (or is gone): nothing was written, and the caller reads the task again.
    """
    connection = connections[using]
    sql = _cached(connection, "update", lambda: _update_sql(connection, _TASK_NAMES))
    params = _values(task, _TASK_NAMES, connection, add=False)
    audit_params = _values(event, _AUDIT_NAMES, connection, add=True)
    params = [*params, task.pk, version, *audit_params]
    with connection.cursor() as cursor:
        cursor.execute(prepared_sql(connection, "update", sql, len(params)), params)
        (written,) = cursor.fetchone()
    return bool(written)


def _update_sql(connection: Any, names: tuple[str, ...]) -> str:
    quote = connection.ops.quote_name
    columns = [quote(JobTask._meta.get_field(name).column) for name in names]
    audit_columns = [quote(AuditEvent._meta.get_field(name).column) for name in _AUDIT_NAMES]
    pk = quote(JobTask._meta.pk.column)
    table = quote(JobTask._meta.db_table)
    return (
        f"WITH t AS (UPDATE {table} "
        f"SET {', '.join(f'{column} = %s' for column in columns)} "
        f"WHERE {pk} = %s AND {row_version_sql(table)} = %s RETURNING {pk}), "
        f"a AS (INSERT INTO {quote(AuditEvent._meta.db_table)} ({', '.join(audit_columns)}) "
        f"SELECT {', '.join(['%s'] * len(audit_columns))} FROM t) "
        "SELECT count(*) FROM t"
    )


def _claimable(*job_uuid: str, actor: Actor, count: int) -> Any:
    queryset = JobTask.objects.visible_to(actor).runnable().filter(_NO_EXPIRED_LEASE)
    if job_uuid:
        queryset = queryset.filter(job_uuid=job_uuid[0])
    return queryset.order_by(*CLAIM_ORDER)[:count]


#: What a claim may take, as the ORM writes it (``runnable`` holds the sequence barrier):
#: compiled once per connection, caller and count; with or without a job.
_CLAIMABLE = PreparedQuery("claimable", _claimable, arity=0)
_CLAIMABLE_IN_JOB = PreparedQuery("claimable_in_job", _claimable, arity=1)


def claim(
    actor: Actor,
    *,
    job_uuid: str | None,
    count: int,
    values: dict[str, Any],
    summary_suffix: str,
    now: datetime,
    event_time: datetime,
    using: str,
) -> list[JobTask]:
    """Claim up to ``count`` runnable tasks in claim order, setting ``values`` and
    counting ``attempts``, with a ``claim`` event each (summary ``attempt N`` +
    ``summary_suffix``).

    Nothing is claimed when a lease has run out by ``now``: the caller's general path
    applies expired leases first, as the claim order requires. An empty list therefore
    means "nothing here": nothing runnable, or leases to expire.
    """
    connection = connections[using]
    key = (actor.visibility_key, count)
    if job_uuid is None:
        select, select_params = _CLAIMABLE.sql(key=key, using=using, actor=actor, count=count)
    else:
        select, select_params = _CLAIMABLE_IN_JOB.sql(
            job_uuid, key=key, using=using, actor=actor, count=count
        )
    names = tuple(values)
    sql = _cached(
        connection, ("claim", select, names), lambda: _claim_sql(connection, select, names)
    )
    set_params = [
        JobTask._meta.get_field(name).get_db_prep_save(value, connection)
        for name, value in values.items()
    ]
    event = AuditEvent(
        event_type=AuditEvent.Event.CLAIM,
        user_uuid=actor.uuid,
        token_uuid=actor.token_uuid,
        created_at=event_time,
    )
    audit_params = _values(event, _CLAIM_EVENT_NAMES, connection, add=True)
    params = [now, *select_params, *set_params, *audit_params, summary_suffix]
    with connection.cursor() as cursor:
        cursor.execute(prepared_sql(connection, "claim", sql, len(params)), params)
        rows = cursor.fetchall()
    return [_task_from_row(row, connection, using) for row in rows]


#: The columns of a claim's audit row that come from Python; the others (``_FROM_ROWS``)
#: from the claimed rows.
_CLAIM_EVENT_NAMES = ("event_type", "user_uuid", "token_uuid", "created_at")
_FROM_ROWS = tuple(name for name in _AUDIT_NAMES if name not in _CLAIM_EVENT_NAMES)


def _claim_sql(connection: Any, select: str, names: tuple[str, ...]) -> str:
    """The claim statement around ``select`` (the claimable tasks), setting ``names``.

    Parameters: the time, ``select``'s, the values of ``names``, the event's
    ``_CLAIM_EVENT_NAMES``, and the end of its summary.
    """
    quote = connection.ops.quote_name
    table = quote(JobTask._meta.db_table)
    sets = [f"{quote(JobTask._meta.get_field(name).column)} = %s" for name in names]
    attempts = quote("attempts")
    sets.append(f"{attempts} = t.{attempts} + 1")
    pk = quote(JobTask._meta.pk.column)
    lease = quote("lease_expires_at")
    order = f"COALESCE(u.{quote('sequence')}, 0), u.{quote('qsequence')} NULLS LAST, u.{pk}"
    audit_columns = [
        quote(AuditEvent._meta.get_field(name).column)
        for name in (*_CLAIM_EVENT_NAMES, *_FROM_ROWS)
    ]
    # The event's values from Python, then from the rows, before (c) and after (u).
    from_rows = {
        "object_uuid": f"u.{quote('uuid')}",
        "summary": f"'attempt ' || u.{attempts} || %s",
        "old_attributes": snapshot_sql("c", connection),
        "new_attributes": snapshot_sql("u", connection),
    }
    audit_select = [*(["%s"] * len(_CLAIM_EVENT_NAMES)), *(from_rows[name] for name in _FROM_ROWS)]
    columns = ", ".join(f"u.{quote(field.column)}" for field in JobTask._meta.concrete_fields)
    return (
        # The lease that ends first, then whether it has ended: so that the plan does not
        # depend on the time (a prepared statement's generic plan must stay an index scan).
        f"WITH expired AS (SELECT 1 FROM (SELECT {lease} FROM {table} WHERE {lease} IS NOT NULL "
        f"AND {quote('success')} IS NULL ORDER BY {lease} LIMIT 1) first WHERE {lease} <= %s), "
        f"c AS ({select} FOR UPDATE SKIP LOCKED), "
        f"u AS (UPDATE {table} AS t SET {', '.join(sets)} FROM c "
        f"WHERE t.{pk} = c.{pk} RETURNING t.*), "
        f"a AS (INSERT INTO {quote(AuditEvent._meta.db_table)} ({', '.join(audit_columns)}) "
        f"SELECT {', '.join(audit_select)} FROM u JOIN c ON c.{pk} = u.{pk} ORDER BY {order}) "
        f"SELECT {columns} FROM u ORDER BY {order}"
    )


def _cached(connection: Any, key: Any, build: Callable[[], str]) -> str:
    """SQL text made once per connection (it depends on the backend's quoting)."""
    cache = connection.__dict__.setdefault(_SQL_CACHE_ATTRIBUTE, {})
    sql = cache.get(key)
    if sql is None:
        if len(cache) >= MAX_PLANS:
            cache.clear()
        sql = cache[key] = build()
    return sql


def _task_from_row(row: tuple[Any, ...], connection: Any, using: str) -> JobTask:
    """A task from a row of all its columns in model order, as the ORM would load it."""
    values = list(row)
    fields = JobTask._meta.concrete_fields
    for index, field in enumerate(fields):
        column = field.cached_col
        for convert in (
            *connection.ops.get_db_converters(column),
            *column.get_db_converters(connection),
        ):
            values[index] = convert(values[index], column, connection)
    return JobTask.from_db(using, [field.attname for field in fields], values)
