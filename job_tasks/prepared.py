"""ORM queries compiled once, then run with fresh values: for the lookups every request makes.

Building and compiling a query with the ORM costs more than running it, for the small
indexed lookups on the hot path (the token lookup with its job-manager subqueries:
about 2.5 ms to build and compile, 0.3 ms to run; see docs/performance.md). A
``PreparedQuery`` asks the ORM for the query once per database connection, with
placeholder values, keeps the SQL and the compiler's plan for turning a row into model
instances (``select_related`` included, with the backend's converters), and from then
on only swaps the values in and runs the SQL.

Nothing is guessed: the SQL is Django's own, for the connection's backend; the row is
turned into objects with the same steps as ``QuerySet.__iter__``. If the placeholders
cannot be found once each among the compiled parameters, the query is run through the
ORM every time instead.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import QuerySet
from django.db.models.query import get_related_populators

from .app_settings import app_settings

#: The name of the per-connection plan cache on Django's connection wrapper (one per
#: thread and database alias; so plans never cross threads).
_CACHE_ATTRIBUTE = "_job_tasks_prepared_plans"
#: The raw database connection and the statements prepared in its session (PostgreSQL).
_PREPARED_ATTRIBUTE = "_job_tasks_prepared_statements"
_PLACEHOLDER_RE = re.compile(r"%[s%]")
#: Most plans kept per connection; past it they are dropped and made again.
MAX_PLANS = 1024


@dataclass(frozen=True)
class _Plan:
    sql: str
    params: tuple[Any, ...]
    positions: tuple[int, ...]
    compiler: Any
    converters: dict[int, Any]
    model_slice: tuple[int, int]
    init_list: list[str]
    related_populators: list[Any]
    from_db_options: dict[str, Any]
    annotation_col_map: dict[str, int]
    statement: str | None

    @classmethod
    def make(
        cls, queryset: QuerySet[Any], placeholders: tuple[str, ...], name: str
    ) -> _Plan | None:
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        positions = []
        for placeholder in placeholders:
            found = [index for index, value in enumerate(params) if value == placeholder]
            if len(found) != 1:
                return None
            positions.append(found[0])
        select, klass_info = compiler.select, compiler.klass_info
        fields = [column[0] for column in select[0 : compiler.col_count]]
        start = klass_info["select_fields"][0]
        end = klass_info["select_fields"][-1] + 1
        return cls(
            sql=sql,
            params=tuple(params),
            positions=tuple(positions),
            compiler=compiler,
            converters=compiler.get_converters(fields),
            model_slice=(start, end),
            init_list=[column[0].target.attname for column in select[start:end]],
            related_populators=get_related_populators(
                klass_info, select, queryset.db, *_fetch_mode_of(queryset)
            ),
            from_db_options=dict(zip(("fetch_mode",), _fetch_mode_of(queryset), strict=False)),
            annotation_col_map=dict(compiler.annotation_col_map or {}),
            statement=_statement_name(name, sql)
            if compiler.connection.vendor == "postgresql"
            else None,
        )

    def bind(self, values: tuple[Any, ...]) -> list[Any]:
        """The compiled parameters with ``values`` in the placeholders' places."""
        params = list(self.params)
        for position, value in zip(self.positions, values, strict=True):
            params[position] = value
        return params

    def first(self, values: tuple[Any, ...], using: str) -> Any:
        params = self.bind(values)
        connection = connections[using]
        sql = self.sql
        if self.statement is not None and app_settings.PREPARED_STATEMENTS:
            sql = _server_prepared(connection, self.statement, sql, len(params))
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        if self.converters:
            row = next(iter(self.compiler.apply_converters([row], self.converters)))
        start, end = self.model_slice
        model = self.compiler.klass_info["model"]
        obj = model.from_db(using, self.init_list, row[start:end], **self.from_db_options)
        for populator in self.related_populators:
            populator.populate(row, obj)
        for name, position in self.annotation_col_map.items():
            setattr(obj, name, row[position])
        return obj


class PreparedQuery:
    """A query of one row, built by ``build(*values, **context)``, compiled once per
    connection and ``key``.

    ``build`` must give the same query for every value (only the values change).
    """

    def __init__(self, name: str, build: Callable[..., QuerySet[Any]], arity: int) -> None:
        self.name = name
        self.build = build
        self.placeholders = tuple(f"<{name} placeholder {index}>" for index in range(arity))

    def first(
        self, *values: Any, key: Hashable = None, using: str = "default", **context: Any
    ) -> Any:
        """The first row as a model instance (with its related objects), or None.

        ``context`` goes to ``build`` as keyword arguments; ``key`` must tell apart
        every context (and setting) that gives the query another shape or other
        constant parameters.
        """
        plan = self._plan(key, using, context, first=True)
        if plan is None:  # could not be prepared: the ORM, every time
            return self.build(*values, **context).using(using).first()
        return plan.first(values, using)

    def sql(
        self, *values: Any, key: Hashable = None, using: str = "default", **context: Any
    ) -> tuple[str, list[Any]]:
        """The query's SQL and parameters, to run as part of a larger statement.

        The query as ``build`` makes it (not cut to one row); compiled once per
        connection and ``key``, like ``first``.
        """
        plan = self._plan(key, using, context, first=False)
        if plan is None:
            queryset = self.build(*values, **context).using(using)
            sql, params = queryset.query.get_compiler(using=using).as_sql()
            return sql, list(params)
        return plan.sql, plan.bind(values)

    def _plan(self, key: Hashable, using: str, context: dict[str, Any], first: bool) -> Any:
        connection = connections[using]
        plans = connection.__dict__.setdefault(_CACHE_ATTRIBUTE, {})
        cache_key = (self.name, key, first)
        if cache_key not in plans:
            if len(plans) >= MAX_PLANS:  # plans per user, say: bounded
                plans.clear()
            queryset = self.build(*self.placeholders, **context).using(using)
            if first:
                queryset = queryset[:1]
            plans[cache_key] = _Plan.make(queryset, self.placeholders, self.name)
        return plans[cache_key]


#: Django 6.1 gave querysets a fetch mode, which the row-to-object steps take along.
_TAKES_FETCH_MODE = "fetch_mode" in inspect.signature(get_related_populators).parameters


def _fetch_mode_of(queryset: QuerySet[Any]) -> tuple[Any, ...]:
    return (queryset._fetch_mode,) if _TAKES_FETCH_MODE else ()


def prepared_sql(connection: Any, name: str, sql: str, arity: int) -> str:
    """``sql`` (with ``arity`` parameters) as it should run on ``connection``.

    On PostgreSQL, with ``PREPARED_STATEMENTS`` on: an ``EXECUTE`` of the statement,
    prepared once per database session (see ``_server_prepared``); else ``sql``.
    """
    if connection.vendor != "postgresql" or not app_settings.PREPARED_STATEMENTS:
        return sql
    return _server_prepared(connection, _statement_name(name, sql), sql, arity)


def _statement_name(name: str, sql: str) -> str:
    """A name per distinct SQL text: settings may give one lookup several shapes."""
    return f"job_tasks_{name}_{hashlib.sha256(sql.encode()).hexdigest()[:16]}"


def _server_prepared(connection: Any, statement: str, sql: str, arity: int) -> str:
    """On PostgreSQL: ``EXECUTE`` of a statement prepared once per database session.

    Planning the token lookup (with its permission subqueries) costs PostgreSQL ten
    times more than running it; a prepared statement is planned once per session. The
    statement is prepared on the raw connection (not counted as a query of the
    request), again whenever Django opened a new one (reconnects, health checks). A
    connection pooler in transaction mode (PgBouncer) cannot keep prepared statements:
    set ``JOB_TASKS["PREPARED_STATEMENTS"] = False`` there.
    """
    connection.ensure_connection()
    raw = connection.connection
    known = connection.__dict__.get(_PREPARED_ATTRIBUTE)
    if known is None or known[0] is not raw:
        known = (raw, set())
        connection.__dict__[_PREPARED_ATTRIBUTE] = known
    if statement not in known[1]:
        numbered = iter(range(1, arity + 1))
        body = _PLACEHOLDER_RE.sub(
            lambda match: "%" if match.group(0) == "%%" else f"${next(numbered)}", sql
        )
        with raw.cursor() as cursor:
            cursor.execute(f"PREPARE {statement} AS {body}")
        known[1].add(statement)
    if not arity:
        return f"EXECUTE {statement}"
    return f"EXECUTE {statement} ({', '.join(['%s'] * arity)})"
