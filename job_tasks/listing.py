"""A page of a list: its query compiled once per *shape* and connection, not per request.

Building and compiling a list query with the ORM (the conditions, the order, the count
subquery, the projection) costs the app more than PostgreSQL spends running it for a
page of one job's tasks (docs/performance.md). Requests that differ only in their
values (another job's uuid, another time) make the same SQL with other parameters.

A request's *shape* is everything that gives its SQL its text: the caller's
visibility, the structure of the conditions (attributes, lookups, and the types of the
values that are passed through as they are), the order, selection, ``distinct``,
``count``, ``limit`` and ``offset``; other values (booleans, JSON operands, ``null``)
are part of the shape. The first request of a shape is compiled twice: with its own
values, and with unique stand-ins for them, which show where each value lands among
the SQL's parameters. Only if both give the same SQL, and the stand-ins' parameters
with the request's values put in their places are exactly the request's own, later
requests of that shape just put their values in place and run the SQL (on PostgreSQL
as a statement prepared once per session, for first pages). Any other shape is
compiled by the ORM every time; so is every shape when the cache cannot be sure.

Only values of lookups that pass them through unchanged (``exact``, ``in``, ``lt``,
``lte``, ``gt``, ``gte``, ``like``, ``ilike``) are stood in for: a lookup that rewrote
its value (escaping, case folding) could rewrite a stand-in differently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import connections
from django.db.models import Q, QuerySet, Value
from django.db.models.constants import LOOKUP_SEP

from .filters import ListQuery
from .models import JobTask, WireTimestamp, count_of
from .prepared import MAX_PLANS, prepared_sql
from .representation import TIMESTAMP_ATTRIBUTES, columns_for

#: The column that carries ``items_available`` on every row of a counted page.
TOTAL = "_job_tasks_items_available"
#: The annotations that carry timestamps as text (``models.WireTimestamp``), and back.
_WIRE = {name: f"_job_tasks_wire_{name}" for name in TIMESTAMP_ATTRIBUTES}
_UNWIRE = {alias: name for name, alias in _WIRE.items()}
#: Lookups whose value reaches the SQL parameters unchanged.
_VERBATIM_LOOKUPS = frozenset({"exact", "in", "lt", "lte", "gt", "gte", "like", "ilike"})
_CACHE_ATTRIBUTE = "_job_tasks_list_plans"


class _Uncacheable(Exception):
    """This request's shape cannot be told apart by its key: the ORM, every time."""


@dataclass(frozen=True)
class _Plan:
    sql: str
    params: tuple[Any, ...]
    slots: tuple[tuple[int, ...], ...]  # for each value, where it goes among the params
    names: tuple[str, ...]
    compiler: Any
    converters: dict[int, Any]

    def bind(self, values: list[Any]) -> list[Any]:
        params = list(self.params)
        for positions, value in zip(self.slots, values, strict=True):
            for position in positions:
                params[position] = value
        return params


@dataclass(frozen=True)
class Page:
    """The rows of a page (tuples of the ``names`` columns) and, when counted and some
    row carried it, ``items_available``."""

    names: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    total: int | None


def page_rows(queryset: QuerySet[JobTask], query: ListQuery, *, key: Any) -> Page:
    """The page ``query`` asks for, of ``queryset`` (the caller's visible tasks): rows
    of ``representation.columns_for(query.select)``.

    ``key`` must tell apart every ``queryset`` that gives other SQL (the visibility).
    """
    using = queryset.db
    connection = connections[using]
    try:
        stand_ins, sentinels, values, shape = _stand_in(query.condition)
    except _Uncacheable:
        return _run_orm(queryset, query)
    cache_key = (
        key,
        shape,
        query.select,
        repr(query.order_by),
        query.distinct,
        query.count,
        query.limit,
        query.offset,
    )
    plans = connection.__dict__.setdefault(_CACHE_ATTRIBUTE, {})
    if cache_key not in plans:
        if len(plans) >= MAX_PLANS:
            plans.clear()
        stood_in = replace(query, condition=stand_ins)
        plans[cache_key] = _make_plan(queryset, query, stood_in, sentinels, values)
    plan = plans[cache_key]
    if plan is None:
        return _run_orm(queryset, query)
    params = plan.bind(values)
    sql = plan.sql
    if query.offset == 0 and all(map(_fits_a_prepared_statement, params)):
        # First pages (and keyset pages): prepared once per session.
        sql = prepared_sql(connection, "list", sql, len(params))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if plan.converters:
        rows = [tuple(row) for row in plan.compiler.apply_converters(rows, plan.converters)]
    return _page(plan.names, rows, query)


def _page(names: tuple[str, ...], rows: list[tuple[Any, ...]], query: ListQuery) -> Page:
    names = tuple(_UNWIRE.get(name, name) for name in names)
    if not query.count:
        return Page(names, rows, None)
    if names[-1] != TOTAL:  # (the count is the last column)
        raise ValueError(f"no count column among {names}")
    total = rows[0][-1] if rows else None
    return Page(names[:-1], [row[:-1] for row in rows], total)


def _page_queryset(queryset: QuerySet[JobTask], query: ListQuery) -> QuerySet[Any]:
    """The page as the ORM would run it: tuples of the selected columns, sliced."""
    filtered = query.filter(queryset)
    rows = filtered.order_by(*query.order_by)
    columns = columns_for(query.select)
    if not query.distinct:  # timestamps as text, written by the database (where it can)
        wire = {name: _WIRE[name] for name in columns if name in _WIRE}
        rows = rows.annotate(**{alias: WireTimestamp(name) for name, alias in wire.items()})
        columns = tuple(wire.get(name, name) for name in columns)
    if query.count:  # the count rides with the page: one query, one round trip
        rows = rows.annotate(**{TOTAL: count_of(filtered)})
        columns = (*columns, TOTAL)
    rows = rows.values_list(*columns)
    if query.distinct:
        rows = rows.distinct()
    return rows[query.offset : query.offset + query.limit]


def _fits_a_prepared_statement(param: Any) -> bool:
    """PostgreSQL types a prepared statement's parameters from the first use: an integer
    compared with a 32-bit column is taken as 32 bits, and a larger one would not fit."""
    return type(param) is not int or _INT32[0] <= param <= _INT32[1]


def _run_orm(queryset: QuerySet[JobTask], query: ListQuery) -> Page:
    rows = _page_queryset(queryset, query)
    return _page(_names(rows.query), list(rows), query)


def _names(query: Any) -> tuple[str, ...]:
    """The columns of a ``values_list()`` query's rows, in the order it was given."""
    return tuple(query.selected)


def _make_plan(
    queryset: QuerySet[JobTask],
    query: ListQuery,
    stood_in: ListQuery,
    sentinels: list[Any],
    values: list[Any],
) -> _Plan | None:
    """Compile the stand-in query; None unless it provably gives the request's SQL."""
    real = _page_queryset(queryset, query)
    standing = _page_queryset(queryset, stood_in)
    compiler = standing.query.get_compiler(using=standing.db)
    try:
        real_sql, real_params = real.query.get_compiler(using=real.db).as_sql()
        sql, params = compiler.as_sql()
    except (EmptyResultSet, FullResultSet):  # matches nothing or everything: the ORM knows
        return None
    if sql != real_sql or len(params) != len(real_params):
        return None
    slots = []
    for sentinel in sentinels:
        found = tuple(
            index
            for index, param in enumerate(params)
            if type(param) is type(sentinel) and param == sentinel
        )
        if not found:
            return None
        slots.append(found)
    names = _names(standing.query)
    fields = [column[0] for column in compiler.select[0 : compiler.col_count]]
    plan = _Plan(
        sql=sql,
        params=tuple(params),
        slots=tuple(slots),
        names=names,
        compiler=compiler,
        converters=compiler.get_converters(fields),
    )
    bound = plan.bind(values)
    same = all(
        type(mine) is type(theirs) and mine == theirs
        for mine, theirs in zip(bound, real_params, strict=True)
    )
    return plan if same and len(names) == compiler.col_count else None


# ---------------------------------------------------------------------------- stand-ins

_SENTINEL_TEXT = "\ue000job-tasks stand-in %_\\ {}\ue001"
_INT32 = (-(2**31), 2**31 - 1)
_SENTINEL_TIME = datetime(1111, 11, 11, 11, 11, 11, tzinfo=dt_timezone.utc)


def _sentinel(value: Any, index: int) -> Any:
    """A value of ``value``'s type that no request sends (unique per ``index``)."""
    if isinstance(value, str):
        return _SENTINEL_TEXT.format(index)
    if isinstance(value, int):  # in the same range class (32 or 64 bits) as the value
        return (-2_147_000_000 if _INT32[0] <= value <= _INT32[1] else -(2**62)) + index
    if isinstance(value, float):
        return 0.000_123_456_789 + index * 1e-12
    return _SENTINEL_TIME + timedelta(microseconds=index + 1)


def _kind(value: Any) -> str | None:
    """The type tag of a value that can be stood in for, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return "str"
    if isinstance(value, int):  # Django treats values beyond a column's range apart
        return "int32" if _INT32[0] <= value <= _INT32[1] else "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, datetime) and value.tzinfo is not None:
        return "datetime"
    return None


def _stand_in(condition: Q) -> tuple[Q, list[Any], list[Any], Any]:
    """The condition with stand-ins, the stand-ins and the values they stand for (in
    order), and the condition's shape."""
    values: list[Any] = []
    sentinels: list[Any] = []

    def stand_in(value: Any) -> Any:
        values.append(value)
        sentinels.append(_sentinel(value, len(values) - 1))
        return sentinels[-1]

    def walk(node: Any) -> tuple[Any, Any]:
        if isinstance(node, Q):
            children, shapes = [], []
            for child in node.children:
                new, shape = walk(child)
                children.append(new)
                shapes.append(shape)
            copy = Q.create(children, connector=node.connector, negated=node.negated)
            return copy, (node.connector, node.negated, tuple(shapes))
        if not (isinstance(node, tuple) and len(node) == 2 and isinstance(node[0], str)):
            raise _Uncacheable
        lookup, value = node
        name = lookup.rsplit(LOOKUP_SEP, 1)[-1] if LOOKUP_SEP in lookup else "exact"
        if name in _VERBATIM_LOOKUPS:
            kind = _kind(value)
            if kind:
                return (lookup, stand_in(value)), (lookup, kind)
            if type(value) is Value and _kind(value.value):  # a typed value (integers)
                field = value._output_field_or_none
                shape = (lookup, "Value", _kind(value.value), type(field).__name__)
                return (lookup, Value(stand_in(value.value), output_field=field)), shape
            if isinstance(value, (list, tuple)) and value and len(set(value)) == len(value):
                kinds = tuple(_kind(item) for item in value)
                if all(kinds):
                    return (lookup, [stand_in(item) for item in value]), (lookup, "list", kinds)
        return node, (lookup, "value", _literal(value))

    stood_in, shape = walk(condition)
    return stood_in, sentinels, values, shape


def _literal(value: Any) -> Any:
    """A value that is part of the shape, as a hashable key (or uncacheable)."""
    if value is None or isinstance(value, (bool, str, int, float)):
        return (type(value).__name__, value)
    if isinstance(value, datetime):
        return ("datetime", value.isoformat())
    try:
        return ("json", json.dumps(value, sort_keys=True, default=_refuse))
    except (TypeError, ValueError):
        raise _Uncacheable from None


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)
