"""The Arvados list query language: ``filters``, ``where``, ``order``, ``select``, ``distinct``,
``limit``, ``offset`` and ``count`` (spec §7, §8, §13, §15), parsed once into a ``ListQuery``.

One django-filter ``FilterSet`` (``JobTaskFilterSet``) is the whitelist and the semantics:
its filters name every (attribute, lookup) pair, their form fields convert operands and
their ``q()`` builds the condition. Plain query parameters (``?job_uuid=X&sequence__lt=3``)
go through the FilterSet form; each Arvados ``filters`` condition is compiled by looking
up the matching FilterSet filter and calling its field's ``convert()`` and its ``q()``.
The custom lookups (``like``, ``ilike``, ``is_a``, the JSON ones) are registered on the
``JobTask`` field *instances* only, so no other model of the host project changes.

Every bad input raises ``InvalidRequest`` (HTTP 422) with a message that starts with the
Arvados text (``Invalid attribute 'foo' in filter``, ...) and names the offending filter,
e.g. ``... (filters[0]: ["foo", "=", 1])``. Operands are validated before any SQL is
built, so no operand can cause a database error.

Decisions (where the spec leaves a choice; see ``docs/query-language.md``):

* Attributes. The 16 stored attributes and ``updated_at`` are filterable and orderable
  (both were real columns in 1.4). ``id`` is orderable only (§7.2: a unique column, so
  the entries after it are dropped; ordering by it is ordering by creation): ``Invalid
  attribute 'id' in filter`` in ``filters``, silently ignored in ``where`` (as Arvados
  ignores unknown keys there), and not selectable (§7.4), so ``select`` drops it from
  the order.
* Column classes: text (the six ``*uuid`` columns and ``output``), integer (``sequence``,
  ``qsequence``), float (``progress``, §15.1: filterable and orderable like a number),
  boolean (``success``), datetime (``created_at``, ``modified_at``, ``updated_at``,
  ``started_at``, ``finished_at``) and JSON (``parameters``).
* Operators. Text: ``= != < <= > >= like ilike in "not in" is_a``. Integer, float,
  datetime: ``= != < <= > >= in "not in"``. Boolean: ``= != in "not in"``. ``parameters``:
  ``=``/``!=`` with an object (JSON equality), ``like``/``ilike`` (its compact JSON text),
  ``exists`` (a key), ``contains`` (object containment, PostgreSQL ``@>``), and the
  subproperty form ``["parameters.<key>", op, x]``. Operators are lowercased first;
  ``@@`` is refused (``Full text search operator is no longer supported``).
* Operand typing (§15.1): text operands are strings; integer operands are integers within
  64 bits or all-digit strings; float operands are numbers or numeric strings; booleans are
  ``true``/``false`` or ``1 t true y yes 0 f false n no`` (any case); timestamps are
  ISO-8601 strings (``YYYY-MM-DD``, optional ``T``/space time, optional fraction, ``Z``
  or ``±HH[:MM]``; without an offset they are UTC), truncated to microseconds, years
  0001-01-02 to 9999-12-30. Strings must not contain NUL or unpaired surrogates.
* NULL rules (§8.4): ``= null`` is ``IS NULL`` and ``!= null`` is ``IS NOT NULL``; ``!=``
  with a *string* operand also matches NULL, with a non-string operand it does not;
  ``in`` never matches NULL (null elements are ignored); ``not in`` matches NULL unless
  the array contains null, and then, as SQL ``NOT IN (..., NULL)`` in Arvados, it matches
  nothing. ``not in []`` matches everything, ``in []`` nothing.
* ``"any"`` means the text columns (plus ``parameters`` for ``like``/``ilike``), ORed, for
  every operator (so ``["any","=","x"]`` works instead of failing on a number column).
  ``exists``/``contains`` do not accept ``"any"``. An attribute array is ORed too; it may
  name at most 32 distinct attributes, must not be empty and must not contain ``"any"``.
* ``parameters``. ``like``/``ilike`` match its compact JSON text as PostgreSQL renders
  jsonb, without spaces: keys ordered by UTF-8 length then bytes, non-ASCII characters
  unescaped, numbers as PostgreSQL ``numeric`` prints them (``1e+100`` becomes
  ``1000...``); SQLite gets the same text from a registered Python function, PostgreSQL
  from ``regexp_replace(parameters::text, ...)`` removing the separator spaces outside
  strings. Subproperties: a missing key reads as null; ``=`` matches a value of the
  operand's JSON type (numbers compare numerically, ``1`` equals ``1.0``, ``true`` is not
  ``1``); ``!=`` is the exact complement of ``=`` (it matches rows without the key);
  ``< <= > >=`` take a string or a number and match values of that type only; ``in`` is
  the OR of ``=``, ``not in`` its complement; ``like``/``ilike`` match string values;
  ``["parameters.k","exists",true|false]`` tests the key. Objects and arrays are not
  accepted as subproperty operands (use ``contains``). ``<key>`` in angle brackets is
  unwrapped (Arvados 2.x). Numbers in JSON operands must be finite and integers within
  64 bits; JSON operands may nest at most 32 levels.
* ``filters`` given as a JSON object (1.4 silently ignored one in a JSON body) is a 422,
  like any other non-array. ``is_a`` on ``uuid`` uses the same infix test as on other
  attributes, which is true exactly for ``arvados#jobTask`` since every task uuid has the
  ``ot0gb`` infix.
* ``like``/``ilike``: SQL ``LIKE`` with ``\\`` as the escape character; a pattern ending
  with an unescaped ``\\`` is a 422. PostgreSQL runs ``LIKE``/``ILIKE``; SQLite runs an
  exact Python implementation (case-sensitive ``like``, Unicode ``ilike``).
* ``is_a`` compares characters 7-11 of the value with the kind's type infix; several kinds
  are ORed; an unknown kind (or ``[]``) matches nothing.
* Limits: ``JOB_TASKS["MAX_FILTERS"]`` bounds the number of conditions (``filters``
  entries + ``where`` keys + plain parameters), never above 500 (SQLite refuses
  expressions nested deeper than 1,000); all ``in`` arrays and JSON operands
  together may hold at most 10,000 values (counted once per attribute); ``offset`` at most
  2**62. Beyond them: 422.
* Plain parameters: the FilterSet's filter names (``job_uuid``, ``sequence__lt``,
  ``uuid__in=a,b``, ``output__isnull=true``, ``parameters__has_key=k``, ...). Unknown
  parameters are ignored, as Arvados ignored unknown parameters, but a filterable
  attribute with a lookup the FilterSet does not offer (``sequence__like``,
  ``success__lt``) is a 422 naming the parameter; empty values are ignored
  (django-filter's convention); ``uuid`` is reserved for the member path and ignored (use
  ``uuid__in``). Bad values: 422 ``Invalid value for <name> parameter: ...``.
* ``where`` (§7.3): keys that are not filterable attributes are ignored; ``null`` is IS
  NULL, a scalar is ``=``, an array is ``in``, ``["contains", s]`` a case-sensitive
  substring; ``"any": ["contains", s]`` a case-insensitive substring of any text column
  but ``owner_uuid`` (``parameters`` included). Values go through the same operand typing
  as ``filters`` (a 422 for a float on ``sequence``, not Rails's odd matching).
* ``order`` (§7.2) as specified, ``id`` included; ``parameters`` is orderable (the
  database's JSON order). ``select`` ``""``/``null``/``false``: no selection. ``distinct``,
  ``limit``, ``offset``, ``count`` exactly as §7.1, §7.5, §7.8; ``distinct`` with
  ``select=["kind"]`` (no stored column) merges every row into one item.

Only SQLite and PostgreSQL are supported by the custom lookups.
"""

from __future__ import annotations

import functools
import json
import math
import operator as op_module
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import EmptyResultSet, ImproperlyConfigured, ValidationError
from django.db import NotSupportedError, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.db.models import F, Q, QuerySet, Value
from django.db.models.expressions import OrderBy
from django.db.models.lookups import Lookup
from django.db.models.sql.compiler import SQLCompiler
from django_filters.constants import EMPTY_VALUES
from django_filters.rest_framework import FilterSet

from .app_settings import app_settings
from .errors import InvalidRequest
from .models import JobTask
from .renderers import loads
from .representation import KIND, STORED_ATTRIBUTES
from .uuids import KIND_INFIXES, infix_of

__all__ = [
    "COLUMN_NAMES",
    "COLUMN_TYPES",
    "SELECTABLE_ATTRIBUTES",
    "JobTaskFilterSet",
    "ListQuery",
    "compact_json",
    "like_match",
    "parse_list_params",
    "parse_select",
    "parse_timestamp",
]

# --------------------------------------------------------------------------------------
# Attributes

#: Names ``select`` accepts, in wire order.
SELECTABLE_ATTRIBUTES: tuple[str, ...] = ("href", "kind", "etag", *STORED_ATTRIBUTES)
#: Columns usable in ``filters``, ``where`` and ``order``.
COLUMN_NAMES: tuple[str, ...] = (*STORED_ATTRIBUTES, "updated_at")
#: Columns usable in ``order``: those and ``id`` (spec §7.2; ordering by it is ordering by
#: creation). ``id`` is neither filterable nor selectable (§7.4, §8).
ORDER_COLUMNS = frozenset({*COLUMN_NAMES, "id"})
UNIQUE_COLUMNS = frozenset({"id", "uuid"})
DEFAULT_ORDER: tuple[str, ...] = ("modified_at desc", "uuid asc")
#: Arvados's table name, accepted as a qualifier in ``order`` (``job_tasks.sequence``).
ARVADOS_TABLE = "job_tasks"

TEXT, INTEGER, FLOAT, BOOLEAN, DATETIME, JSON = (
    "text",
    "integer",
    "float",
    "boolean",
    "datetime",
    "json",
)


def _column_type(model_field: models.Field[Any, Any]) -> str:
    if isinstance(model_field, models.JSONField):
        return JSON
    if isinstance(model_field, models.BooleanField):
        return BOOLEAN
    if isinstance(model_field, models.DateTimeField):
        return DATETIME
    if isinstance(model_field, models.FloatField):
        return FLOAT
    if isinstance(model_field, models.IntegerField):
        return INTEGER
    if isinstance(model_field, (models.CharField, models.TextField)):
        return TEXT
    raise ImproperlyConfigured(f"No filter class for {model_field!r}")


COLUMN_TYPES: dict[str, str] = {
    name: _column_type(JobTask._meta.get_field(name)) for name in COLUMN_NAMES
}
NULLABLE: dict[str, bool] = {name: JobTask._meta.get_field(name).null for name in COLUMN_NAMES}
TEXT_COLUMNS: tuple[str, ...] = tuple(n for n in COLUMN_NAMES if COLUMN_TYPES[n] == TEXT)
#: Columns of ``where``'s ``"any": ["contains", s]`` (every text column but owner_uuid).
WHERE_ANY_COLUMNS: tuple[str, ...] = (
    *(n for n in TEXT_COLUMNS if n != "owner_uuid"),
    "parameters",
)

#: Parameters the rest of the app reads; never plain filters.
IGNORED_PARAMS = frozenset(
    {
        "api_token",
        "oauth_token",
        "_method",
        "cluster_id",
        "include_trash",
        "reader_tokens",
        "ensure_unique_name",
        "job_task",
        "uuid",
        "format",
    }
)
LIST_PARAMS = frozenset(
    {"filters", "where", "order", "select", "distinct", "limit", "offset", "count"}
)

#: Hard ceiling on MAX_FILTERS: SQLite refuses expressions nested deeper than 1,000, and
#: ANDed conditions nest one level each.
MAX_CONDITIONS_CEILING = 500
MAX_ATTRIBUTES_PER_FILTER = 32
MAX_OPERAND_VALUES = 10_000
MAX_JSON_DEPTH = 32
MAX_OFFSET = 2**62
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MIN_TIMESTAMP = datetime(1, 1, 2, tzinfo=dt_timezone.utc)
MAX_TIMESTAMP = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=dt_timezone.utc)

# --------------------------------------------------------------------------------------
# Messages


def _printable(text: str) -> str:
    """``text`` safe for any JSON encoder (unpaired surrogates become ``\\udxxx``)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _show(value: Any, limit: int = 200) -> str:
    """A short JSON rendering of a client value for an error message. Never raises."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = "..."
    text = _printable(text)
    return text if len(text) <= limit else text[:limit] + "..."


def _to_s(value: Any, limit: int = 200) -> str:
    """Ruby's ``to_s`` as Arvados interpolated operands: strings bare, nil empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = _printable(value)
        return text if len(text) <= limit else text[:limit] + "..."
    if isinstance(value, bool):
        return "true" if value else "false"
    return _show(value, limit)


def _ruby_class(value: Any) -> str:
    """The Ruby class name Arvados used in its messages (``NilClass``, ``String``, ...)."""
    if value is None:
        return "NilClass"
    if value is True:
        return "TrueClass"
    if value is False:
        return "FalseClass"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Float"
    if isinstance(value, str):
        return "String"
    if isinstance(value, (list, tuple)):
        return "Array"
    if isinstance(value, dict):
        return "Hash"
    return type(value).__name__


class OperandError(Exception):
    """An operand of the wrong JSON type (``kind="type"``) or an unusable value (``"value"``)."""

    def __init__(self, kind: str, value: Any, detail: str = "") -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.value = value
        self.detail = detail

    def describe(self, attribute: str, column_type: str, operator: str) -> str:
        if self.kind == "type":
            return (
                f"Invalid operand type '{_ruby_class(self.value)}' for '{_printable(operator)}' "
                "operator in filters"
            )
        text = (
            f"Invalid operand '{_to_s(self.value)}' for {column_type} attribute "
            f"'{_printable(attribute)}'"
        )
        return f"{text}: {self.detail}" if self.detail else text


def _refuse(message: str, context: str) -> InvalidRequest:
    return InvalidRequest(f"{message} ({context})" if context else message)


# --------------------------------------------------------------------------------------
# Operand conversion (shared by plain parameters and ``filters``)


def _check_string(value: str) -> str:
    if "\x00" in value:
        raise OperandError("value", value, "strings cannot contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise OperandError("value", value, "not valid Unicode text") from None
    return value


def convert_text(value: Any) -> str:
    if not isinstance(value, str):
        raise OperandError("type", value)
    return _check_string(value)


_DIGITS_RE = re.compile(r"[0-9]+")


def convert_integer(value: Any) -> int:
    """A 64-bit integer from a JSON integer or an all-digit string."""
    if isinstance(value, (list, tuple, dict)):
        raise OperandError("type", value)
    if isinstance(value, str) and _DIGITS_RE.fullmatch(value):
        if len(value.lstrip("0")) > 19:
            raise OperandError("value", value, "more than 64 bits")
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise OperandError("value", value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise OperandError("value", value, "more than 64 bits")
    return number


_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def convert_float(value: Any) -> float:
    """A finite number from a JSON number or a numeric string."""
    if isinstance(value, (list, tuple, dict, bool)):
        raise OperandError("type", value)
    if isinstance(value, str):
        if not _NUMBER_RE.fullmatch(value):
            raise OperandError("value", value)
        number = float(value)
    elif isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise OperandError("value", value, "out of range") from None
    else:
        raise OperandError("type", value)
    if not math.isfinite(number):
        raise OperandError("value", value, "not a finite number")
    return number


TRUE_SPELLINGS = frozenset({"1", "t", "true", "y", "yes"})
FALSE_SPELLINGS = frozenset({"0", "f", "false", "n", "no"})


def convert_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in TRUE_SPELLINGS:
            return True
        if lowered in FALSE_SPELLINGS:
            return False
        raise OperandError("value", value)
    raise OperandError("type", value)


_TIMESTAMP_RE = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"(?:[Tt ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:[.,](?P<fraction>[0-9]{1,30}))?)?)?"
    r" *(?P<tz>[Zz]|UTC|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO-8601-like timestamp leniently; naive means UTC. Raises ``ValueError``."""
    match = _TIMESTAMP_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError("not an ISO-8601 timestamp")
    parts = match.groupdict()
    tz_text = parts["tz"]
    if tz_text in (None, "Z", "z", "UTC"):
        tz = dt_timezone.utc
    else:
        sign = -1 if tz_text[0] == "-" else 1
        digits = tz_text[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        tz = dt_timezone(sign * offset)  # ValueError beyond 24 hours
    fraction = (parts["fraction"] or "")[:6].ljust(6, "0")
    try:
        moment = datetime(
            int(parts["year"]),
            int(parts["month"]),
            int(parts["day"]),
            int(parts["hour"] or 0),
            int(parts["minute"] or 0),
            int(parts["second"] or 0),
            int(fraction),
            tzinfo=tz,
        ).astimezone(dt_timezone.utc)
    except OverflowError:
        raise ValueError("out of range") from None
    if not MIN_TIMESTAMP <= moment <= MAX_TIMESTAMP:
        raise ValueError("out of range")
    return moment


def convert_timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise OperandError("type", value)
    _check_string(value)
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise OperandError("value", value, str(exc)) from None


def convert_like_pattern(value: Any) -> str:
    pattern = convert_text(value)
    try:
        _like_tokens(pattern, False)
    except ValueError as exc:
        raise OperandError("value", value, str(exc)) from None
    return pattern


def convert_kinds(value: Any) -> tuple[str, ...]:
    """``is_a`` operand: a kind or an array of kinds."""
    kinds = [value] if isinstance(value, str) else value
    if not isinstance(kinds, (list, tuple)):
        raise OperandError("type", value)
    for kind in kinds:
        if not isinstance(kind, str):
            raise OperandError("type", kind)
        _check_string(kind)
    return tuple(kinds)


def json_size(value: Any) -> int:
    """Validate a JSON operand (strings, finite numbers, depth); return its number of nodes."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if depth > MAX_JSON_DEPTH:
            raise OperandError("value", value, f"nested more than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise OperandError("value", value, "object keys must be strings")
                _check_string(key)
                stack.append((child, depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_string(item)
        elif isinstance(item, bool) or item is None:
            pass
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise OperandError("value", value, "integers must fit in 64 bits")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise OperandError("value", value, "numbers must be finite")
        else:
            raise OperandError("type", item)
    return nodes


def _loads(text: str) -> Any:
    """Strict JSON, as for request bodies (``renderers.loads``: no NaN/Infinity, bounded
    nesting); strings are checked for Unicode by the filter language itself, which names
    the filter. Raises ``ValueError`` or ``RecursionError``."""
    return loads(text, check_unicode=False)


def convert_json_object(value: Any) -> dict[str, Any]:
    """A JSON object, given as one or as a JSON-encoded string of one."""
    if isinstance(value, str):
        _check_string(value)
        try:
            decoded = _loads(value)
        except (ValueError, RecursionError):
            raise OperandError("value", value, "not a JSON object") from None
        if not isinstance(decoded, dict):
            raise OperandError("value", value, "not a JSON object")
        value = decoded
    if not isinstance(value, dict):
        raise OperandError("type", value)
    json_size(value)
    return value


# --------------------------------------------------------------------------------------
# LIKE, compact JSON and JSON containment in Python (SQLite functions, and the spec of them)

_ANY_ONE = 1
_ANY_MANY = 2


@functools.lru_cache(maxsize=512)
def _like_tokens(pattern: str, fold: bool) -> tuple[str | int, ...]:
    """Tokens of a LIKE pattern (``\\`` escapes). Raises ``ValueError`` on a trailing escape."""
    tokens: list[str | int] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 1
            if index == len(pattern):
                raise ValueError("LIKE pattern must not end with escape character")
            tokens.extend(pattern[index].lower() if fold else pattern[index])
        elif char == "%":
            if not tokens or tokens[-1] != _ANY_MANY:
                tokens.append(_ANY_MANY)
        elif char == "_":
            tokens.append(_ANY_ONE)
        else:
            tokens.extend(char.lower() if fold else char)
        index += 1
    return tuple(tokens)


def like_match(text: str, pattern: str, case_insensitive: bool = False) -> bool:
    """SQL ``LIKE`` (``ILIKE`` with ``case_insensitive``), in O(len(text) * len(pattern))."""
    tokens = _like_tokens(pattern, case_insensitive)
    if case_insensitive:
        text = text.lower()
    t = p = 0
    star, mark = -1, 0
    n, m = len(text), len(tokens)
    while t < n:
        token = tokens[p] if p < m else None
        if token == _ANY_MANY:
            star, mark = p, t
            p += 1
        elif token is not None and (token == _ANY_ONE or token == text[t]):
            t += 1
            p += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            t = mark
        else:
            return False
    while p < m and tokens[p] == _ANY_MANY:
        p += 1
    return p == m


def _jsonb_key_order(key: str) -> tuple[int, bytes]:
    raw = key.encode("utf-8", "surrogatepass")
    return len(raw), raw


def _numeric_text(number: Decimal) -> str:
    """A JSON number as PostgreSQL ``numeric`` prints it (no exponent, no negative zero)."""
    if number.is_zero():
        number = number.copy_abs()
    return format(number, "f")


def _render_compact(value: Any) -> str:
    if isinstance(value, dict):
        keys = sorted(value, key=_jsonb_key_order)
        inner = ",".join(f"{_render_compact(k)}:{_render_compact(value[k])}" for k in keys)
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ",".join(_render_compact(item) for item in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, Decimal):
        return _numeric_text(value)
    if isinstance(value, float):
        return _numeric_text(Decimal(repr(value)))
    return str(value)


def compact_json(value: Any) -> str:
    """``parameters`` as ``like`` sees it: PostgreSQL's jsonb text without the spaces."""
    return _render_compact(value)


@functools.lru_cache(maxsize=512)
def _parse_stored(text: str) -> Any:
    return json.loads(text)


@functools.lru_cache(maxsize=512)
def _parse_stored_decimal(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def _json_scalar_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return False


def json_equal(a: Any, b: Any) -> bool:
    """jsonb ``=``: same structure, numbers compared as numbers."""
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.keys() == b.keys()
            and all(json_equal(a[k], b[k]) for k in a)
        )
    if isinstance(a, list) or isinstance(b, list):
        return (
            isinstance(a, list)
            and isinstance(b, list)
            and len(a) == len(b)
            and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    return _json_scalar_equal(a, b)


def json_contains(a: Any, b: Any) -> bool:
    """jsonb ``a @> b`` (PostgreSQL's JsonbDeepContains), for containers and scalars."""
    if isinstance(b, dict):
        return isinstance(a, dict) and all(k in a and json_contains(a[k], v) for k, v in b.items())
    if isinstance(b, list):
        if not isinstance(a, list):
            return False
        for wanted in b:
            if isinstance(wanted, (dict, list)):
                if not any(
                    isinstance(have, type(wanted)) and json_contains(have, wanted) for have in a
                ):
                    return False
            elif not any(
                not isinstance(have, (dict, list)) and _json_scalar_equal(have, wanted)
                for have in a
            ):
                return False
        return True
    return not isinstance(a, (dict, list)) and _json_scalar_equal(a, b)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return "array"


# SQLite functions. They never raise: an exception inside one would fail the query.


def _sqlite_like(text: Any, pattern: Any, fold: Any) -> int | None:
    if text is None or pattern is None:
        return None
    try:
        return int(like_match(str(text), str(pattern), bool(fold)))
    except (ValueError, TypeError):
        return None


def _sqlite_compact_json(text: Any) -> str | None:
    if text is None:
        return None
    try:
        return compact_json(_parse_stored_decimal(str(text)))
    except (ValueError, TypeError, RecursionError):
        return None


def _sqlite_json_contains(text: Any, operand: Any) -> int | None:
    if text is None or operand is None:
        return None
    try:
        return int(json_contains(_parse_stored(str(text)), _parse_stored(str(operand))))
    except (ValueError, TypeError, RecursionError):
        return 0


def _sqlite_json_equals(text: Any, operand: Any) -> int | None:
    if text is None or operand is None:
        return None
    try:
        return int(json_equal(_parse_stored(str(text)), _parse_stored(str(operand))))
    except (ValueError, TypeError, RecursionError):
        return 0


def _stored_key(text: Any, key: Any) -> tuple[bool, Any]:
    if text is None or key is None:
        return False, None
    try:
        document = _parse_stored(str(text))
    except (ValueError, TypeError, RecursionError):
        return False, None
    if not isinstance(document, dict) or key not in document:
        return False, None
    return True, document[key]


def _sqlite_json_type(text: Any, key: Any) -> str | None:
    found, value = _stored_key(text, key)
    return _json_type(value) if found else None


def _sqlite_json_value(text: Any, key: Any) -> Any:
    found, value = _stored_key(text, key)
    if not found or value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if INT64_MIN <= value <= INT64_MAX else float(value)
    if isinstance(value, (float, str)):
        return value
    try:
        return compact_json(value)
    except (ValueError, RecursionError):
        return None


_SQLITE_FUNCTIONS: tuple[tuple[str, int, Callable[..., Any]], ...] = (
    ("job_tasks_like", 3, _sqlite_like),
    ("job_tasks_compact_json", 1, _sqlite_compact_json),
    ("job_tasks_json_contains", 2, _sqlite_json_contains),
    ("job_tasks_json_equals", 2, _sqlite_json_equals),
    ("job_tasks_json_type", 2, _sqlite_json_type),
    ("job_tasks_json_value", 2, _sqlite_json_value),
)


def _install_sqlite_functions(connection: BaseDatabaseWrapper) -> None:
    """Register the Python functions on the current SQLite connection, once per connection.

    Redefining a function while a statement runs fails in SQLite, so the raw connection
    that has them is remembered on the Django wrapper (sqlite3 connections cannot be
    weakly referenced).
    """
    if connection.vendor != "sqlite":
        return
    if connection.connection is None:
        connection.ensure_connection()
    raw = connection.connection
    if getattr(connection, "_job_tasks_functions_on", None) is raw:
        return
    for name, arity, function in _SQLITE_FUNCTIONS:
        raw.create_function(name, arity, function, deterministic=True)
    connection._job_tasks_functions_on = raw  # type: ignore[attr-defined]


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    _install_sqlite_functions(connection)


connection_created.connect(_on_connection_created, dispatch_uid="job_tasks.filters.sqlite")

# --------------------------------------------------------------------------------------
# Lookups (registered on the JobTask field instances below)

#: Removes the spaces jsonb::text puts after ``,`` and ``:`` outside strings.
_JSONB_SPACES_RE = r'("(?:[^"\\]|\\.)*")|([,:]) '


class _VendorLookup(Lookup):
    """A lookup with its own SQL on PostgreSQL and SQLite, and none elsewhere."""

    prepare_rhs = False

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        raise NotSupportedError(
            f"The {self.lookup_name!r} lookup of job_tasks needs SQLite or PostgreSQL."
        )

    def _lhs(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> str:
        sql, params = self.process_lhs(compiler, connection)
        if params:
            raise NotSupportedError(f"{self.lookup_name!r} needs a plain column")
        return sql


class Like(_VendorLookup):
    """SQL ``LIKE`` with ``\\`` as the escape character."""

    lookup_name = "like"
    case_insensitive = False

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        keyword = "ILIKE" if self.case_insensitive else "LIKE"
        return f"{self._lhs(compiler, connection)}::text {keyword} %s", [self.rhs]

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        _install_sqlite_functions(connection)
        fold = int(self.case_insensitive)
        return f"job_tasks_like({self._lhs(compiler, connection)}, %s, {fold})", [self.rhs]


class ILike(Like):
    lookup_name = "ilike"
    case_insensitive = True


class CompactJSONLike(Like):
    """``LIKE`` over a JSON column's compact text (see ``compact_json``)."""

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        keyword = "ILIKE" if self.case_insensitive else "LIKE"
        lhs = self._lhs(compiler, connection)
        return (
            f"regexp_replace({lhs}::text, %s, %s, 'g') {keyword} %s",
            [_JSONB_SPACES_RE, r"\1\2", self.rhs],
        )

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        _install_sqlite_functions(connection)
        fold = int(self.case_insensitive)
        lhs = self._lhs(compiler, connection)
        return f"job_tasks_like(job_tasks_compact_json({lhs}), %s, {fold})", [self.rhs]


class CompactJSONILike(CompactJSONLike):
    lookup_name = "ilike"
    case_insensitive = True


class IsA(_VendorLookup):
    """Arvados ``is_a``: characters 7-11 of the value are the type infix of a kind."""

    lookup_name = "is_a"

    def _infixes(self) -> list[str]:
        kinds = [self.rhs] if isinstance(self.rhs, str) else list(self.rhs)
        infixes = sorted({KIND_INFIXES[kind] for kind in kinds if kind in KIND_INFIXES})
        if not infixes:
            raise EmptyResultSet
        return infixes

    def _sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        infixes = self._infixes()
        placeholders = ", ".join(["%s"] * len(infixes))
        return f"SUBSTR({self._lhs(compiler, connection)}, 7, 5) IN ({placeholders})", infixes

    as_postgresql = as_sqlite = _sql


class JSONContains(_VendorLookup):
    """Object containment (PostgreSQL's jsonb ``@>``)."""

    lookup_name = "json_contains"

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        return f"{self._lhs(compiler, connection)} @> %s::jsonb", [json.dumps(self.rhs)]

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        _install_sqlite_functions(connection)
        lhs = self._lhs(compiler, connection)
        return f"job_tasks_json_contains({lhs}, %s) = 1", [json.dumps(self.rhs)]


class JSONEquals(_VendorLookup):
    """jsonb equality (key order and ``1`` vs ``1.0`` do not matter)."""

    lookup_name = "json_equals"

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        return f"{self._lhs(compiler, connection)} = %s::jsonb", [json.dumps(self.rhs)]

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        _install_sqlite_functions(connection)
        lhs = self._lhs(compiler, connection)
        return f"job_tasks_json_equals({lhs}, %s) = 1", [json.dumps(self.rhs)]


class JSONHasKey(_VendorLookup):
    """The top-level object has the key (whatever its value, null included)."""

    lookup_name = "json_has_key"

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        return f"jsonb_exists({self._lhs(compiler, connection)}, %s::text)", [self.rhs]

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        _install_sqlite_functions(connection)
        lhs = self._lhs(compiler, connection)
        return f"job_tasks_json_type({lhs}, %s) IS NOT NULL", [self.rhs]


@dataclass(frozen=True)
class KeyCondition:
    """A subproperty condition: ``parameters[key] <op> operand`` (see the module docstring)."""

    key: str
    op: str
    operand: Any


class JSONKey(_VendorLookup):
    """``parameters__json_key=KeyCondition(...)``: the subproperty filters."""

    lookup_name = "json_key"

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        col = self._lhs(compiler, connection)
        cond: KeyCondition = self.rhs
        value = f"({col} -> %s::text)"
        params: list[Any] = []

        def null_term() -> str:
            params.extend([cond.key, cond.key])
            return f"({value} IS NULL OR jsonb_typeof({value}) = 'null')"

        op = cond.op
        if op in ("=", "!="):
            if cond.operand is None:
                sql = null_term()
            else:
                params.extend([cond.key, json.dumps(cond.operand)])
                sql = f"COALESCE({value} = %s::jsonb, FALSE)"
        elif op in ("in", "not in"):
            values = [x for x in cond.operand if x is not None]
            parts = []
            if values:
                params.append(cond.key)
                params.extend(json.dumps(x) for x in values)
                marks = ", ".join(["%s::jsonb"] * len(values))
                parts.append(f"COALESCE({value} IN ({marks}), FALSE)")
            if any(x is None for x in cond.operand):
                parts.append(null_term())
            sql = " OR ".join(parts) or "FALSE"
        elif op in ("<", "<=", ">", ">="):
            kind = "string" if isinstance(cond.operand, str) else "number"
            params.extend([cond.key, cond.key, json.dumps(cond.operand)])
            sql = f"COALESCE(jsonb_typeof({value}) = '{kind}' AND {value} {op} %s::jsonb, FALSE)"
        elif op in ("like", "ilike"):
            keyword = "ILIKE" if op == "ilike" else "LIKE"
            params.extend([cond.key, cond.key, cond.operand])
            sql = (
                f"COALESCE(jsonb_typeof({value}) = 'string' "
                f"AND ({col} ->> %s::text) {keyword} %s, FALSE)"
            )
        elif op == "exists":
            params.append(cond.key)
            sql = f"{value} IS {'NOT ' if cond.operand else ''}NULL"
        else:  # pragma: no cover - the compiler only builds the operators above
            raise NotSupportedError(op)
        if op in ("!=", "not in"):
            sql = f"NOT ({sql})"
        return f"({sql})", params

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        _install_sqlite_functions(connection)
        col = self._lhs(compiler, connection)
        cond: KeyCondition = self.rhs
        kind_sql = f"job_tasks_json_type({col}, %s)"
        value_sql = f"job_tasks_json_value({col}, %s)"
        params: list[Any] = []

        def typed(kind: str, test: str, extra: Iterable[Any]) -> str:
            params.extend([cond.key, cond.key, *extra])
            return f"COALESCE({kind_sql} = '{kind}' AND {value_sql} {test}, 0)"

        def null_term() -> str:
            params.append(cond.key)
            return f"(COALESCE({kind_sql}, 'null') = 'null')"

        op = cond.op
        if op in ("=", "!="):
            sql = null_term() if cond.operand is None else _sqlite_equal(cond.operand, typed)
        elif op in ("in", "not in"):
            groups: dict[str, list[Any]] = {}
            for x in cond.operand:
                if x is not None:
                    groups.setdefault(_json_type(x), []).append(
                        int(x) if x is True or x is False else x
                    )
            parts = [
                typed(kind, f"IN ({', '.join(['%s'] * len(values))})", values)
                for kind, values in groups.items()
            ]
            if any(x is None for x in cond.operand):
                parts.append(null_term())
            sql = " OR ".join(parts) or "0"
        elif op in ("<", "<=", ">", ">="):
            kind = "string" if isinstance(cond.operand, str) else "number"
            sql = typed(kind, f"{op} %s", [cond.operand])
        elif op in ("like", "ilike"):
            fold = int(op == "ilike")
            params.extend([cond.key, cond.key, cond.operand])
            sql = f"COALESCE({kind_sql} = 'string' AND job_tasks_like({value_sql}, %s, {fold}), 0)"
        elif op == "exists":
            params.append(cond.key)
            sql = f"{kind_sql} IS {'NOT ' if cond.operand else ''}NULL"
        else:  # pragma: no cover
            raise NotSupportedError(op)
        if op in ("!=", "not in"):
            sql = f"NOT ({sql})"
        return f"({sql})", params


def _sqlite_equal(operand: Any, typed: Callable[[str, str, Iterable[Any]], str]) -> str:
    value = int(operand) if isinstance(operand, bool) else operand
    return typed(_json_type(operand), "= %s", [value])


def _register_lookups() -> None:
    for name in TEXT_COLUMNS:
        model_field = JobTask._meta.get_field(name)
        for lookup in (Like, ILike, IsA):
            model_field.register_lookup(lookup)
    parameters = JobTask._meta.get_field("parameters")
    for lookup in (
        CompactJSONLike,
        CompactJSONILike,
        JSONContains,
        JSONEquals,
        JSONHasKey,
        JSONKey,
    ):
        parameters.register_lookup(lookup)


_register_lookups()

# --------------------------------------------------------------------------------------
# The FilterSet: form fields (operand conversion) and filters (conditions)


class OperandField(forms.Field):
    """Cleans one operand, from a query string (a string) or a JSON body (any JSON value).

    ``convert`` is the conversion the Arvados ``filters`` compiler uses as well.
    """

    column_type = TEXT
    lookup_operator = "="

    def __init__(self, *args: Any, attribute: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attribute = attribute

    def convert(self, value: Any) -> Any:
        return convert_text(value)

    def to_python(self, value: Any) -> Any:
        if value in self.empty_values:
            return None
        try:
            return self.convert(value)
        except OperandError as exc:
            raise ValidationError(
                exc.describe(self.attribute, self.column_type, self.lookup_operator),
                code="invalid",
            ) from None


class TextOperandField(OperandField):
    pass


class IntegerOperandField(OperandField):
    column_type = INTEGER

    def convert(self, value: Any) -> Any:
        return convert_integer(value)


class FloatOperandField(OperandField):
    column_type = FLOAT

    def convert(self, value: Any) -> Any:
        return convert_float(value)


class BooleanOperandField(OperandField):
    column_type = BOOLEAN

    def convert(self, value: Any) -> Any:
        return convert_boolean(value)


class TimestampOperandField(OperandField):
    column_type = DATETIME

    def convert(self, value: Any) -> Any:
        return convert_timestamp(value)


class LikePatternField(OperandField):
    lookup_operator = "like"

    def convert(self, value: Any) -> Any:
        return convert_like_pattern(value)


class KindsField(OperandField):
    lookup_operator = "is_a"

    def convert(self, value: Any) -> Any:
        if isinstance(value, str) and "," in value:  # plain parameter: comma-separated kinds
            value = value.split(",")
        return convert_kinds(value)


class JSONObjectField(OperandField):
    column_type = JSON

    def convert(self, value: Any) -> Any:
        return convert_json_object(value)


class ConditionFilter(django_filters.Filter):
    """A filter whose condition is a ``Q``, shared by plain parameters and ``filters``."""

    field_class = TextOperandField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extra.setdefault("attribute", self.field_name)

    def prepare(self, value: Any) -> Any:
        return value

    def q(self, value: Any) -> Q:
        return Q(**{f"{self.field_name}__{self.lookup_expr}": self.prepare(value)})

    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        if value in EMPTY_VALUES:
            return qs
        return self.get_method(qs)(self.q(value))


class TextFilter(ConditionFilter):
    field_class = TextOperandField


class IntegerFilter(ConditionFilter):
    field_class = IntegerOperandField

    def prepare(self, value: Any) -> Any:
        # A typed Value skips Django's IntegerFieldOverflow, which turns e.g.
        # ``sequence < 2**40`` into "no condition" and so would match NULL rows too.
        if isinstance(value, int) and self.lookup_expr in ("exact", "lt", "lte", "gt", "gte"):
            return Value(value, output_field=models.BigIntegerField())
        return value


class FloatFilter(ConditionFilter):
    field_class = FloatOperandField


class BooleanFilter(ConditionFilter):
    field_class = BooleanOperandField


class TimestampFilter(ConditionFilter):
    field_class = TimestampOperandField


class LikeFilter(ConditionFilter):
    field_class = LikePatternField


class IsAFilter(ConditionFilter):
    field_class = KindsField


class JSONObjectFilter(ConditionFilter):
    field_class = JSONObjectField


TEXT_LOOKUPS = ["exact", "in", "lt", "lte", "gt", "gte", "like", "ilike", "is_a", "isnull"]
NUMBER_LOOKUPS = ["exact", "in", "lt", "lte", "gt", "gte", "isnull"]
BOOLEAN_LOOKUPS = ["exact", "in", "isnull"]


class JobTaskFilterSet(FilterSet):
    """The filterable attributes of a job task and the lookups each one takes.

    Plain query parameters use these names (``job_uuid``, ``sequence__lt``,
    ``uuid__in=a,b``, ``output__like=%x%``, ``owner_uuid__is_a=arvados#user``,
    ``started_at__isnull=true``, ``parameters__has_key=input``); the Arvados ``filters``
    compiler uses the same filters. ``parameters`` has its own declared filters.
    """

    parameters = JSONObjectFilter(field_name="parameters", lookup_expr="json_equals")
    parameters__contains = JSONObjectFilter(field_name="parameters", lookup_expr="json_contains")
    parameters__has_key = TextFilter(field_name="parameters", lookup_expr="json_has_key")
    parameters__like = LikeFilter(field_name="parameters", lookup_expr="like")
    parameters__ilike = LikeFilter(field_name="parameters", lookup_expr="ilike")

    class Meta:
        model = JobTask
        fields = {
            "uuid": TEXT_LOOKUPS,
            "owner_uuid": TEXT_LOOKUPS,
            "created_at": NUMBER_LOOKUPS,
            "modified_by_client_uuid": TEXT_LOOKUPS,
            "modified_by_user_uuid": TEXT_LOOKUPS,
            "modified_at": NUMBER_LOOKUPS,
            "updated_at": NUMBER_LOOKUPS,
            "job_uuid": TEXT_LOOKUPS,
            "created_by_job_task_uuid": TEXT_LOOKUPS,
            "sequence": NUMBER_LOOKUPS,
            "qsequence": NUMBER_LOOKUPS,
            "output": TEXT_LOOKUPS,
            "progress": NUMBER_LOOKUPS,
            "success": BOOLEAN_LOOKUPS,
            "started_at": NUMBER_LOOKUPS,
            "finished_at": NUMBER_LOOKUPS,
        }
        filter_overrides = {
            models.CharField: {"filter_class": TextFilter},
            models.TextField: {"filter_class": TextFilter},
            models.IntegerField: {"filter_class": IntegerFilter},
            models.BigIntegerField: {"filter_class": IntegerFilter},
            models.FloatField: {"filter_class": FloatFilter},
            models.BooleanField: {"filter_class": BooleanFilter},
            models.DateTimeField: {"filter_class": TimestampFilter},
        }

    @classmethod
    def filter_for_lookup(
        cls, field: models.Field[Any, Any], lookup_type: str
    ) -> tuple[type[django_filters.Filter] | None, dict[str, Any]]:
        if lookup_type in ("like", "ilike"):
            return LikeFilter, {}
        if lookup_type == "is_a":
            return IsAFilter, {}
        return super().filter_for_lookup(field, lookup_type)


#: The filters, by name. Read-only: every request shares them.
FILTERS: Mapping[str, django_filters.Filter] = JobTaskFilterSet.base_filters

# --------------------------------------------------------------------------------------
# The ``filters`` compiler

#: Arvados operator -> suffix of the FilterSet filter name ("" is the exact filter).
_FILTER_SUFFIX: dict[str, str] = {
    "=": "",
    "!=": "",
    "<": "__lt",
    "<=": "__lte",
    ">": "__gt",
    ">=": "__gte",
    "like": "__like",
    "ilike": "__ilike",
    "in": "__in",
    "not in": "__in",
    "is_a": "__is_a",
    "exists": "__has_key",
    "contains": "__contains",
}
OPERATORS = frozenset(_FILTER_SUFFIX)
_ORDERING_OPERATORS = frozenset({"<", "<=", ">", ">="})
SUBPROPERTY_OPERATORS = frozenset(
    {"=", "!=", "<", "<=", ">", ">=", "in", "not in", "like", "ilike", "exists"}
)
#: Always false / always true conditions (``Q()`` would vanish inside an OR).
NOTHING = Q(pk__in=[])
EVERYTHING = Q(pk__isnull=False)


class _Budget:
    """Counts the values of ``in`` arrays and JSON operands against MAX_OPERAND_VALUES."""

    def __init__(self) -> None:
        self.used = 0

    def spend(self, amount: int, context: str) -> None:
        self.used += amount
        if self.used > MAX_OPERAND_VALUES:
            raise _refuse(
                f"Too many values in filters: at most {MAX_OPERAND_VALUES} array elements "
                "and JSON values are allowed in one request",
                context,
            )


def _any_of(terms: list[Q]) -> Q:
    return functools.reduce(op_module.or_, terms)


def _filter(name: str) -> Any:
    return FILTERS[name]


def _attributes(attrs_in: Any, op: str, context: str) -> list[str]:
    if attrs_in == "any":
        if op in ("like", "ilike"):
            return [*TEXT_COLUMNS, "parameters"]
        if op in ("exists", "contains"):
            raise _refuse(
                f"Invalid attribute 'any' for operator '{_printable(op)}' in filter", context
            )
        return list(TEXT_COLUMNS)
    if isinstance(attrs_in, str):
        return [attrs_in]
    if isinstance(attrs_in, list) and attrs_in:
        names: list[str] = []
        for attr in attrs_in:
            if not isinstance(attr, str) or attr == "any":
                raise _refuse(f"Invalid attribute '{_to_s(attr)}' in filter", context)
            if attr not in names:
                names.append(attr)
        if len(names) > MAX_ATTRIBUTES_PER_FILTER:
            raise _refuse(
                f"Invalid attribute list in filter: more than {MAX_ATTRIBUTES_PER_FILTER} "
                "attributes",
                context,
            )
        return names
    raise _refuse(f"Invalid attribute '{_to_s(attrs_in)}' in filter", context)


def compile_filter(condition: Any, context: str, budget: _Budget) -> Q:
    """One Arvados filter ``[attribute, operator, operand]`` as a ``Q``."""
    if not isinstance(condition, list):
        raise InvalidRequest(
            f"Invalid element in filters array: {_show(condition)} is not an array"
        )
    attrs_in = condition[0] if condition else None
    operator = condition[1] if len(condition) > 1 else None
    operand = condition[2] if len(condition) > 2 else None
    if not isinstance(operator, str):
        raise _refuse(
            f"Invalid operator '{_to_s(operator)}' ({_ruby_class(operator)}) in filter", context
        )
    op = operator.lower()
    if op == "@@":
        raise _refuse("Full text search operator is no longer supported", context)
    attributes = _attributes(attrs_in, op, context)
    terms = [_term(attr, op, operand, context, budget) for attr in attributes]
    return _any_of(terms)


def _term(attr: str, op: str, operand: Any, context: str, budget: _Budget) -> Q:
    if "." in attr:
        base, key = attr.split(".", 1)
        if base not in COLUMN_TYPES:
            raise _refuse(f"Invalid attribute '{_printable(attr)}' in filter", context)
        if COLUMN_TYPES[base] != JSON:
            raise _refuse(f"Invalid attribute '{_printable(base)}' for subproperty filter", context)
        return _subproperty_term(base, key, op, operand, context, budget)
    column_type = COLUMN_TYPES.get(attr)
    if column_type is None:
        raise _refuse(f"Invalid attribute '{_printable(attr)}' in filter", context)
    shown_op = _printable(op)
    if column_type in (INTEGER, FLOAT, BOOLEAN, DATETIME) and not (
        any(char in op for char in "<=>") or op in ("in", "not in")
    ):
        # Arvados checks the attribute's eligibility for the operator first (§8.3).
        raise _refuse(
            f"Invalid attribute '{attr}' in filter: operator '{shown_op}' does not apply "
            f"to {column_type} attributes",
            context,
        )
    if op not in OPERATORS:
        raise _refuse(f"Invalid operator '{shown_op}'", context)
    if column_type == BOOLEAN and op in _ORDERING_OPERATORS:
        raise _refuse(f"Invalid operator '{op}' for boolean attribute '{attr}'", context)
    if op == "exists" and column_type != JSON:
        raise _refuse(f"Invalid attribute '{attr}' for operator 'exists' in filter", context)
    if op == "contains" and column_type != JSON:
        raise _refuse(f"Invalid attribute '{attr}' for 'contains' operator", context)
    flt = FILTERS.get(attr + _FILTER_SUFFIX[op])
    if flt is None:
        raise _refuse(
            f"Invalid attribute '{attr}' in filter: operator '{op}' does not apply to it",
            context,
        )

    def convert(value: Any) -> Any:
        try:
            return flt.field.convert(value)
        except OperandError as exc:
            raise _refuse(exc.describe(attr, column_type, op), context) from None

    if op in ("in", "not in"):
        if not isinstance(operand, list):
            raise _refuse(
                f"Invalid operand type '{_ruby_class(operand)}' for '{op}' operator in filters",
                context,
            )
        budget.spend(max(1, len(operand)), context)
        values: list[Any] = []
        has_null = False
        for element in operand:
            if element is None:
                has_null = True
                continue
            try:
                values.append(flt.field.convert(element))
            except OperandError:
                raise _refuse(
                    f"Invalid element '{_to_s(element)}' in array for {column_type} "
                    f"attribute '{attr}'",
                    context,
                ) from None
        if op == "in":
            return flt.q(values) if values else NOTHING
        if has_null:
            return NOTHING  # SQL NOT IN (..., NULL) is never true
        if not values:
            return EVERYTHING
        return _or_null(attr, ~flt.q(values))
    if column_type == JSON:
        if operand is None:
            raise _refuse(OperandError("type", None).describe(attr, column_type, op), context)
        value = convert(operand)
        if op in ("contains", "=", "!="):
            budget.spend(json_size(value), context)
        q = flt.q(value)
        return ~q if op == "!=" else q
    if operand is None:
        if op == "=":
            return _filter(f"{attr}__isnull").q(True)
        if op == "!=":
            return _filter(f"{attr}__isnull").q(False)
        raise _refuse(OperandError("type", None).describe(attr, column_type, op), context)
    q = flt.q(convert(operand))
    if op == "!=":
        # A string operand also matches NULL; a number or boolean does not (§8.4).
        if isinstance(operand, str):
            return _or_null(attr, ~q)
        return ~q & _filter(f"{attr}__isnull").q(False) if NULLABLE[attr] else ~q
    return q


def _or_null(attr: str, q: Q) -> Q:
    """``q OR attr IS NULL`` (just ``q`` on a NOT NULL column)."""
    return q | _filter(f"{attr}__isnull").q(True) if NULLABLE[attr] else q


def _json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool, int, float))


def _subproperty_term(
    column: str, key: str, op: str, operand: Any, context: str, budget: _Budget
) -> Q:
    if len(key) >= 2 and key.startswith("<") and key.endswith(">"):
        key = key[1:-1]
    try:
        _check_string(key)
    except OperandError:
        raise _refuse(
            f"Invalid attribute '{column}.{_printable(key)}' in filter", context
        ) from None
    if op not in OPERATORS and op not in SUBPROPERTY_OPERATORS:
        raise _refuse(f"Invalid operator '{_printable(op)}'", context)
    if op not in SUBPROPERTY_OPERATORS:
        raise _refuse(f"Invalid operator for subproperty search '{op}'", context)
    attribute = f"{column}.{key}"

    def type_error(value: Any) -> InvalidRequest:
        return _refuse(OperandError("type", value).describe(attribute, JSON, op), context)

    def check_scalar(value: Any) -> Any:
        try:
            json_size(value)
        except OperandError as exc:
            raise _refuse(exc.describe(attribute, JSON, op), context) from None
        return value

    if op in ("=", "!="):
        if not _json_scalar(operand):
            raise type_error(operand)
        operand = check_scalar(operand)
    elif op in ("in", "not in"):
        if not isinstance(operand, list):
            raise type_error(operand)
        budget.spend(max(1, len(operand)), context)
        for element in operand:
            if not _json_scalar(element):
                raise _refuse(
                    f"Invalid element '{_to_s(element)}' in array for subproperty "
                    f"'{_printable(attribute)}'",
                    context,
                )
            check_scalar(element)
        operand = tuple(operand)
    elif op in _ORDERING_OPERATORS:
        if not isinstance(operand, (str, int, float)) or isinstance(operand, bool):
            raise type_error(operand)
        operand = check_scalar(operand)
    elif op in ("like", "ilike"):
        try:
            operand = convert_like_pattern(operand)
        except OperandError as exc:
            raise _refuse(exc.describe(attribute, JSON, op), context) from None
    elif op == "exists" and not isinstance(operand, bool):
        raise _refuse(
            f"Invalid operand '{_to_s(operand)}' for operator 'exists': must be true or false",
            context,
        )
    return Q(**{f"{column}__json_key": KeyCondition(key, op, operand)})


def _decode_array(value: Any, name: str) -> list[Any]:
    """``filters``: a JSON array, a JSON-encoded one, or ``""``/null for none."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = _loads(value)
        except (ValueError, RecursionError):
            raise InvalidRequest(f'Could not parse "{name}" param as an array') from None
        if value is None:
            return []
    if not isinstance(value, list):
        raise InvalidRequest(f'Could not parse "{name}" param as an array')
    return value


# --------------------------------------------------------------------------------------
# where, plain parameters


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _is_contains(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and value[0] == "contains"
        and isinstance(value[1], str)
    )


def _where_filters(value: Any) -> list[tuple[str, list[Any]]]:
    """``where`` (§7.3) as equivalent Arvados filters, with the context to report."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = _loads(value)
        except (ValueError, RecursionError):
            raise InvalidRequest('Could not parse "where" param as an object') from None
        if value is None:
            return []
    if not isinstance(value, dict):
        raise InvalidRequest('Could not parse "where" param as an object')
    out: list[tuple[str, list[Any]]] = []
    for key, wanted in value.items():
        context = f"where[{_show(key)}]: {_show(wanted)}"
        if key == "any":
            if _is_contains(wanted):
                pattern = f"%{_like_literal(wanted[1])}%"
                out.append((context, [list(WHERE_ANY_COLUMNS), "ilike", pattern]))
        elif key in COLUMN_TYPES:
            if _is_contains(wanted):
                out.append((context, [key, "like", f"%{_like_literal(wanted[1])}%"]))
            elif isinstance(wanted, list):
                out.append((context, [key, "in", wanted]))
            else:
                out.append((context, [key, "=", wanted]))
    return out


def _plain_lookups(attribute: str) -> str:
    """The plain parameter names the FilterSet offers for ``attribute``, for a message."""
    prefix = f"{attribute}__"
    return ", ".join(
        n for n in FILTERS if (n == attribute or n.startswith(prefix)) and n not in IGNORED_PARAMS
    )


def _plain_data(params: Mapping[str, Any]) -> dict[str, Any]:
    """The plain filter parameters of ``params``, by FilterSet filter name.

    Names that are not filters are ignored (other parameters, client noise), except
    ``<attribute>__<lookup>`` on a filterable attribute with a lookup the FilterSet does
    not offer (``sequence__like``): that is a 422 rather than a filter silently dropped.
    """
    data: dict[str, Any] = {}
    for name, value in params.items():
        if name in IGNORED_PARAMS or name in LIST_PARAMS:
            continue
        if name not in FILTERS:
            attribute, separator, lookup = name.partition("__")
            if separator and attribute in COLUMN_TYPES:
                raise InvalidRequest(
                    f"Invalid filter parameter {_to_s(name)}: {attribute} has no "
                    f"lookup '{_to_s(lookup)}' (plain parameters on {attribute}: "
                    f"{_plain_lookups(attribute)})"
                )
            continue
        if value is None:
            continue
        if name.endswith("__in") and not isinstance(value, (str, list)):
            raise InvalidRequest(
                f"Invalid value for {name} parameter: give a comma-separated string or an array"
            )
        data[name] = value
    return data


def _plain_conditions(data: dict[str, Any]) -> list[Q]:
    if not data:
        return []
    filterset = JobTaskFilterSet(data=data, queryset=JobTask.objects.none())
    form = filterset.form
    if not form.is_valid():
        raise InvalidRequest(
            *(
                f"Invalid value for {name} parameter: {_printable(str(message))}"
                for name, messages in form.errors.items()
                for message in messages
            )
        )
    conditions = []
    for name, value in form.cleaned_data.items():
        if value in EMPTY_VALUES:
            continue
        if isinstance(value, list):
            value = [item for item in value if item is not None]
            if not value:
                continue
        conditions.append(filterset.filters[name].q(value))
    return conditions


# --------------------------------------------------------------------------------------
# order, select, distinct, limit, offset, count

_ORDER_COLUMN_RE = re.compile(r"[a-z][_a-z0-9]+")


def _order_entries(value: Any) -> list[Any]:
    if isinstance(value, str):
        if value.startswith("["):
            try:
                decoded = _loads(value)
            except (ValueError, RecursionError):
                raise InvalidRequest('Could not parse "order" param as an array') from None
            if not isinstance(decoded, list):
                raise InvalidRequest('Could not parse "order" param as an array')
            return decoded
        return value.split(",")
    if isinstance(value, list):
        return value
    return []  # null, numbers, objects: no order given (Arvados ignored them)


def _order_entry(entry: Any) -> tuple[str, bool] | None:
    """``"<column> [asc|desc]"`` as (column, descending), or None when Arvados ignores it."""
    if not isinstance(entry, str):
        return None
    words = entry.split()
    if not words:
        return None
    column = words[0]
    direction = words[1].lower() if len(words) > 1 else "asc"
    if direction not in ("asc", "desc"):
        return None
    if column.startswith(f"{ARVADOS_TABLE}."):
        column = column[len(ARVADOS_TABLE) + 1 :]
    if not _ORDER_COLUMN_RE.fullmatch(column) or column not in ORDER_COLUMNS:
        return None
    return column, direction == "desc"


def parse_order(value: Any, select: tuple[str, ...] | None = None) -> tuple[OrderBy, ...]:
    """``order`` (§7.2): client entries, then the defaults; deduplicated, cut after the
    first unique column, pruned to the selected columns; NULLS LAST asc, FIRST desc."""
    given = [] if value is None else _order_entries(value)
    chosen: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for entry in [*given, *DEFAULT_ORDER]:
        parsed = _order_entry(entry)
        if parsed is None or parsed[0] in seen:
            continue
        seen.add(parsed[0])
        chosen.append(parsed)
        if parsed[0] in UNIQUE_COLUMNS:
            break
    if select is not None:
        chosen = [(column, desc) for column, desc in chosen if column in select]
    return tuple(
        F(column).desc(nulls_first=True) if desc else F(column).asc(nulls_last=True)
        for column, desc in chosen
    )


def parse_select(value: Any) -> tuple[str, ...] | None:
    """``select`` (§7.4, and §15.1 for get/create/update): wire names in wire order,
    ``kind`` always included; None means every attribute."""
    if value is None or value is False or value == "":
        return None
    if isinstance(value, str):
        try:
            value = _loads(value)
        except (ValueError, RecursionError):
            raise InvalidRequest('Could not parse "select" param as an array') from None
        if value is None or value is False:
            return None
    if not isinstance(value, list):
        raise InvalidRequest('Could not parse "select" param as an array')
    if not value:
        raise InvalidRequest("Attribute selection list cannot be empty")
    invalid = [
        name for name in value if not isinstance(name, str) or name not in SELECTABLE_ATTRIBUTES
    ]
    if invalid:
        first = _to_s(invalid[0])
        raise InvalidRequest(
            f"Invalid attribute(s): {_show(invalid)} "
            f"(Invalid attribute '{first}' of JobTask in select parameter)"
        )
    wanted = {*value, "kind"}
    return tuple(name for name in SELECTABLE_ATTRIBUTES if name in wanted)


def parse_distinct(value: Any) -> bool:
    if value is None or value is False or value is True:
        return bool(value)
    if type(value) is int and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value in ("true", "false", "1", "0"):
        return value in ("true", "1")
    raise InvalidRequest("distinct parameter must be a boolean, true or false")


def _non_negative(value: Any, name: str) -> int | None:
    """An all-digit value (§7.1), or None when absent. Huge values come back as -1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidRequest(f"Invalid value for {name} parameter")
    text = str(value) if isinstance(value, int) else value
    if not _DIGITS_RE.fullmatch(text):
        raise InvalidRequest(f"Invalid value for {name} parameter")
    if len(text.lstrip("0")) > 19:
        return -1
    return int(text)


def parse_limit(value: Any) -> int:
    limit = _non_negative(value, "limit")
    if limit is None:
        limit = app_settings.DEFAULT_LIMIT
    if limit < 0 or limit > app_settings.MAX_LIMIT:
        return app_settings.MAX_LIMIT
    return limit


def parse_offset(value: Any) -> int:
    offset = _non_negative(value, "offset")
    if offset is None:
        return 0
    if offset < 0 or offset > MAX_OFFSET:
        raise InvalidRequest(f"Invalid value for offset parameter: larger than {MAX_OFFSET}")
    return offset


def parse_count(value: Any) -> bool:
    if value is None or value in ("", "exact"):
        return True
    if value == "none":
        return False
    raise InvalidRequest("count parameter must be 'exact' or 'none'")


# --------------------------------------------------------------------------------------
# The value object


@dataclass(frozen=True)
class ListQuery:
    """A validated list request. ``filter()`` narrows a queryset; the view orders,
    projects, deduplicates and slices it."""

    select: tuple[str, ...] | None
    order_by: tuple[Any, ...]
    distinct: bool
    limit: int
    offset: int
    count: bool
    condition: Q = field(default_factory=Q, repr=False)

    def filter(self, queryset: QuerySet[JobTask]) -> QuerySet[JobTask]:
        """Apply ``filters``, ``where`` and plain parameters (all ANDed).

        A selection of no stored column (``select=["kind"]``) also annotates ``kind`` as
        a constant, the one column ``representation.columns_for`` then reads: so
        ``distinct`` merges the rows into one item instead of comparing every column.
        """
        if self.condition:
            queryset = queryset.filter(self.condition)
        if self.select == ("kind",):
            queryset = queryset.annotate(kind=Value(KIND, output_field=models.CharField()))
        return queryset


def parse_conditions(params: Mapping[str, Any]) -> Q:
    """``filters``, ``where`` and plain filter parameters as one ``Q`` (empty: no condition)."""
    filters = _decode_array(params.get("filters"), "filters")
    where = _where_filters(params.get("where"))
    plain = _plain_data(params)
    total = len(filters) + len(where) + len(plain)
    allowed = min(app_settings.MAX_FILTERS, MAX_CONDITIONS_CEILING)
    if total > allowed:
        raise InvalidRequest(
            f"Too many filters: {total} conditions given, at most {allowed} allowed"
        )
    budget = _Budget()
    conditions = [
        compile_filter(condition, f"filters[{index}]: {_show(condition)}", budget)
        for index, condition in enumerate(filters)
    ]
    conditions.extend(compile_filter(condition, context, budget) for context, condition in where)
    conditions.extend(_plain_conditions(plain))
    return functools.reduce(op_module.and_, conditions, Q())


def parse_list_params(params: Mapping[str, Any]) -> ListQuery:
    """Validate every list parameter (§7, §8) and return the query to run."""
    select = parse_select(params.get("select"))
    return ListQuery(
        select=select,
        order_by=parse_order(params.get("order"), select),
        distinct=parse_distinct(params.get("distinct")),
        limit=parse_limit(params.get("limit")),
        offset=parse_offset(params.get("offset")),
        count=parse_count(params.get("count")),
        condition=parse_conditions(params),
    )


# --------------------------------------------------------------------------------------
# Groups: a small list of the caller's groups, filtered in Python on ``name`` and ``uuid``

GROUP_ATTRIBUTES = ("uuid", "name")
GROUP_OPERATORS = frozenset({"=", "!=", "in", "not in", "like", "ilike", "is_a"})


def group_filter(params: Mapping[str, Any]) -> Callable[[Mapping[str, str]], bool]:
    """``filters`` for ``GET /arvados/v1/groups`` as a predicate over ``{"uuid", "name"}``.

    Groups are few per caller, so conditions run in Python with the same operand
    rules and ``LIKE`` semantics as the job task filters (text attributes only).
    """
    filters = _decode_array(params.get("filters"), "filters")
    if len(filters) > min(app_settings.MAX_FILTERS, MAX_CONDITIONS_CEILING):
        raise InvalidRequest(f"Too many filters: {len(filters)} conditions given")
    tests = [
        _group_test(condition, f"filters[{index}]: {_show(condition)}")
        for index, condition in enumerate(filters)
    ]
    return lambda row: all(test(row) for test in tests)


def _group_test(condition: Any, context: str) -> Callable[[Mapping[str, str]], bool]:
    if not isinstance(condition, list) or len(condition) < 2:
        raise InvalidRequest(
            f"Invalid element in filters array: {_show(condition)} is not an array"
        )
    attr, operator = condition[0], condition[1]
    operand = condition[2] if len(condition) > 2 else None
    if not isinstance(operator, str) or operator.lower() not in GROUP_OPERATORS:
        raise _refuse(f"Invalid operator '{_to_s(operator)}'", context)
    op = operator.lower()
    if attr not in GROUP_ATTRIBUTES:
        raise _refuse(f"Invalid attribute '{_to_s(attr)}' in filter", context)
    try:
        if op in ("in", "not in"):
            if not isinstance(operand, list):
                raise OperandError("type", operand)
            values = frozenset(convert_text(item) for item in operand)
            return lambda row: (row[attr] in values) is (op == "in")
        if op in ("like", "ilike"):
            pattern = convert_like_pattern(operand)
            return lambda row: like_match(row[attr], pattern, op == "ilike")
        if op == "is_a":
            infixes = {KIND_INFIXES.get(kind) for kind in convert_kinds(operand)}
            return lambda row: infix_of(row[attr]) in infixes
        if operand is None:  # = null / != null: names and uuids are never null
            return lambda row: op == "!="
        value = convert_text(operand)
    except OperandError as exc:
        raise _refuse(exc.describe(attr, TEXT, op), context) from None
    return lambda row: (row[attr] == value) is (op == "=")
