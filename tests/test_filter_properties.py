"""Property tests of the list query language (hypothesis).

(a) Any parameters, however malformed, give a ``ListQuery`` or an ``InvalidRequest``,
    and an accepted query runs on the database without error.
(b) For valid random filters (and ``where``), the rows the database returns are the rows
    a reference evaluation in plain Python selects. The reference below is written from
    the semantics documented in ``job_tasks/filters.py``, independently of its code.

The strategies and the reference are reused by the HTTP tests (``test_list_query.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from job_tasks.errors import InvalidRequest
from job_tasks.filters import parse_list_params, parse_select
from job_tasks.models import JobTask
from job_tasks.uuids import KIND_INFIXES

UTC = timezone.utc
T0 = datetime(2024, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)
J1 = "zzzzz-8i9sb-000000000000001"
J2 = "zzzzz-8i9sb-000000000000002"
HYPOTHESIS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    max_examples=120,
)

TEXT_ATTRS = (
    "uuid",
    "owner_uuid",
    "modified_by_client_uuid",
    "modified_by_user_uuid",
    "job_uuid",
    "created_by_job_task_uuid",
    "output",
)
INTEGER_ATTRS = ("sequence", "qsequence")
DATETIME_ATTRS = ("created_at", "modified_at", "updated_at", "started_at", "finished_at")
ALL_ATTRS = (*TEXT_ATTRS, *INTEGER_ATTRS, *DATETIME_ATTRS, "progress", "success", "parameters")

# ----------------------------------------------------------------------------------------
# The dataset: ten rows with collisions, NULLs and every JSON shape

OUTPUTS = ["", "a", "ab", "abc", "B", "é", "É%", "a_b", "x\\y", None]
JOB_UUIDS = [J1, J1, J2, None, "a", "", J1, "zzzzz-tpzed-000000000000000", None, "ab"]
SEQUENCES = [None, 0, 1, 1, 2, -5, 2**31 - 1, None, 3, 0]
PROGRESS = [None, 0.0, 0.25, 0.5, 1.0, None, 0.5, 0.75, 1.0, 0.1]
SUCCESS = [None, True, False, None, True, False, None, True, None, False]
PARAMETERS: list[dict[str, Any]] = [
    {},
    {"a": "x"},
    {"a": 1},
    {"a": 1.5, "b": "x"},
    {"a": True},
    {"a": None},
    {"b": "x", "a": "xy", "é": "ü"},
    {"a": [1, 2], "b": {"k": "v"}},
    {"a": {"k": "v", "n": [1, "x"]}},
    {"a": "X", "b": 2, "c": False},
]
TIMES = [
    T0 + timedelta(seconds=s, microseconds=u) for s, u in [(0, 0), (0, 1), (60, 0), (3600, 250)]
]


def create_dataset(owner: Any, make_task: Callable[..., JobTask]) -> list[JobTask]:
    """Ten tasks owned by ``owner``, read back from the database."""
    tasks = []
    for i in range(10):
        tasks.append(
            make_task(
                owner,
                job_uuid=JOB_UUIDS[i],
                created_by_job_task_uuid=tasks[0].uuid if i in (3, 4) else None,
                modified_by_client_uuid="zzzzz-ozdt8-000000000000000" if i % 3 == 0 else None,
                sequence=SEQUENCES[i],
                qsequence=100 + i if i != 9 else 2**40,
                output=OUTPUTS[i],
                progress=PROGRESS[i],
                success=SUCCESS[i],
                parameters=PARAMETERS[i],
                created_at=TIMES[i % 4],
                modified_at=TIMES[(i + 1) % 4] if i != 5 else None,
                started_at=TIMES[i % 3] if i % 2 == 0 else None,
                finished_at=TIMES[3] if SUCCESS[i] is not None else None,
            )
        )
    ids = [task.pk for task in tasks]
    return list(JobTask.objects.filter(pk__in=ids).order_by("pk"))


@pytest.fixture
def dataset(alice: Any, make_task: Callable[..., JobTask]) -> list[JobTask]:
    return create_dataset(alice, make_task)


# ----------------------------------------------------------------------------------------
# Strategies for valid filters

TEXT_POOL = sorted(
    {o for o in OUTPUTS if o is not None}
    | {j for j in JOB_UUIDS if j is not None}
    | {"zzzzz", "zzzzz-ot0gb", "zzzzz-8i9sb-000000000000000", "A", "b", "ü"}
)
LIKE_ALPHABET = "ab%_\\éÉxyzB8i9sb-"
KINDS = ["arvados#jobTask", "arvados#job", "arvados#user", "arvados#group", "arvados#nope"]


def _valid_like(pattern: str) -> bool:
    trailing = len(pattern) - len(pattern.rstrip("\\"))
    return trailing % 2 == 0


like_patterns = st.one_of(
    st.text(alphabet=LIKE_ALPHABET, max_size=6).filter(_valid_like),
    st.sampled_from(TEXT_POOL).map(lambda s: f"%{s}%"),
    st.sampled_from(TEXT_POOL).map(lambda s: s[:3] + "%"),
)
json_like_patterns = st.one_of(
    st.sampled_from(
        [
            '%"a":1%',
            '%"a":"x%',
            "{}",
            '%"b":{"k":"v"}%',
            '%"a":[1,2]%',
            "%ü%",
            '%"A"%',
            '%"a":1.5,%',
            '%"c":false}',
            '{"a":true}',
            '%"n":[1,"x"]%',
            '{"a":"xy","b":"x","é":"ü"}',
            '%"xy","b"%',
            '%{"k":"v","n"%',
            '{"a":[1,2],"b":{"k":"v"}}',
            '%"a":"X","b":2%',
        ]
    ),
    st.text(alphabet='{}":,ab1xX%_', max_size=6).filter(_valid_like),
)
INTEGER_POOL = [*(s for s in SEQUENCES if s is not None), -1, 2**40, -(2**40), 100, 105, 2**40]
integers = st.one_of(
    st.sampled_from(INTEGER_POOL),
    st.sampled_from([s for s in INTEGER_POOL if s >= 0]).map(str),
)
floats = st.one_of(
    st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 0.1, 0.3, -1.0, 2.0]),
    st.sampled_from([0, 1, 2]),
    st.sampled_from(["0.5", "1", "0", ".25", "1e0"]),
)
booleans = st.one_of(
    st.booleans(), st.sampled_from(["t", "true", "YES", "y", "1", "f", "False", "no", "N", "0"])
)


def _format_time(moment: datetime, style: int) -> str:
    if style == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    if style == 1:
        return (moment + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+02:00"
    if style == 2:
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment.strftime("%Y-%m-%d")


timestamps = st.builds(
    _format_time,
    st.sampled_from(TIMES).flatmap(
        lambda t: st.sampled_from([t, t - timedelta(microseconds=1), t + timedelta(seconds=1)])
    ),
    st.integers(min_value=0, max_value=3),
)
SUB_SCALARS = ["x", "xy", "X", "ü", "", 1, 1.0, 1.5, 2, "1", True, False, None]
sub_scalars = st.sampled_from(SUB_SCALARS)
sub_ordered = st.sampled_from(["x", "xy", "X", "", "w", 0, 1, 1.5, 2, 3.5, -1])
sub_keys = st.sampled_from(["a", "b", "c", "é", "k", "<a>"])
json_objects = st.sampled_from(
    [
        {},
        {"a": 1},
        {"a": 1.0},
        {"a": "x"},
        {"a": [1]},
        {"a": [2, 1]},
        {"a": {}},
        {"b": {"k": "v"}},
        {"a": {"n": [["x"]]}},
        {"a": {"n": ["x"]}},
        {"a": None},
        {"a": True},
        {"b": "x", "a": "xy"},
        {"a": "x", "b": "x"},
        {"c": False},
        {"a": 1, "b": 2},
    ]
)


def _with_nulls(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.one_of(values, st.none()), max_size=4)


def _comparison(attr: Any, values: st.SearchStrategy[Any], nullable: bool = True) -> Any:
    eq_values = st.one_of(values, st.none()) if nullable else values
    return st.one_of(
        st.tuples(st.just(attr), st.sampled_from(["=", "!="]), eq_values),
        st.tuples(st.just(attr), st.sampled_from(["<", "<=", ">", ">="]), values),
        st.tuples(st.just(attr), st.sampled_from(["in", "not in"]), _with_nulls(values)),
    )


def _text_condition(attr: Any) -> Any:
    return st.one_of(
        _comparison(attr, st.sampled_from(TEXT_POOL)),
        st.tuples(st.just(attr), st.sampled_from(["like", "ilike"]), like_patterns),
        st.tuples(
            st.just(attr),
            st.just("is_a"),
            st.one_of(st.sampled_from(KINDS), st.lists(st.sampled_from(KINDS), max_size=2)),
        ),
    )


def _subproperty_condition() -> Any:
    attr = sub_keys.map(lambda key: f"parameters.{key}")
    return st.one_of(
        st.tuples(attr, st.sampled_from(["=", "!="]), sub_scalars),
        st.tuples(attr, st.sampled_from(["<", "<=", ">", ">="]), sub_ordered),
        st.tuples(attr, st.sampled_from(["in", "not in"]), st.lists(sub_scalars, max_size=4)),
        st.tuples(attr, st.sampled_from(["like", "ilike"]), like_patterns),
        st.tuples(attr, st.just("exists"), st.booleans()),
    )


def _operator_case(condition: tuple[Any, str, Any], upper: bool) -> list[Any]:
    attr, op, operand = condition
    return [attr, op.upper() if upper else op, operand]


valid_conditions = st.builds(
    _operator_case,
    st.one_of(
        st.sampled_from(TEXT_ATTRS).flatmap(_text_condition),
        st.sampled_from(INTEGER_ATTRS).flatmap(lambda a: _comparison(a, integers)),
        _comparison("progress", floats),
        st.tuples(st.just("success"), st.sampled_from(["=", "!="]), st.one_of(booleans, st.none())),
        st.tuples(st.just("success"), st.sampled_from(["in", "not in"]), _with_nulls(booleans)),
        st.sampled_from(DATETIME_ATTRS).flatmap(lambda a: _comparison(a, timestamps)),
        st.tuples(st.just("parameters"), st.sampled_from(["like", "ilike"]), json_like_patterns),
        st.tuples(st.just("parameters"), st.just("exists"), sub_keys),
        st.tuples(st.just("parameters"), st.sampled_from(["contains", "=", "!="]), json_objects),
        _subproperty_condition(),
        st.tuples(st.just("any"), st.sampled_from(["like", "ilike"]), like_patterns),
        st.tuples(st.just("any"), st.sampled_from(["=", "!="]), st.sampled_from(TEXT_POOL)),
        st.tuples(
            st.just("any"),
            st.sampled_from(["in", "not in"]),
            st.lists(st.sampled_from(TEXT_POOL), max_size=3),
        ),
        st.lists(st.sampled_from(TEXT_ATTRS), min_size=1, max_size=3, unique=True).flatmap(
            _text_condition
        ),
    ),
    st.booleans(),
)

valid_where = st.dictionaries(
    st.sampled_from(["job_uuid", "output", "sequence", "success", "any", "nosuchkey"]),
    st.one_of(
        st.sampled_from(TEXT_POOL),
        st.none(),
        st.sampled_from(TEXT_POOL).map(lambda s: ["contains", s]),
        st.lists(st.sampled_from(TEXT_POOL), max_size=2),
    ),
    max_size=2,
).filter(
    lambda w: all(
        (k not in ("sequence", "success") or v is None)
        and (k != "any" or (isinstance(v, list) and v[:1] == ["contains"]))
        for k, v in w.items()
    )
)

# ----------------------------------------------------------------------------------------
# The reference evaluation, in plain Python


def ref_like(text: str, pattern: str, insensitive: bool) -> bool:
    regex, index = "", 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 1
            regex += re.escape(pattern[index])
        elif char == "%":
            regex += ".*"
        elif char == "_":
            regex += "."
        else:
            regex += re.escape(char)
        index += 1
    flags = re.DOTALL | (re.IGNORECASE if insensitive else 0)
    return re.fullmatch(regex, text, flags) is not None


def ref_compact(value: Any) -> str:
    """PostgreSQL's jsonb text without the spaces (keys by UTF-8 length, then bytes)."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ",".join(f"{ref_compact(k)}:{ref_compact(value[k])}" for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ",".join(ref_compact(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value)


def jtype(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", dict: "object", list: "array"}[type(value)]


def jequal(a: Any, b: Any) -> bool:
    if jtype(a) != jtype(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(jequal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(jequal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def jcontains(a: Any, b: Any) -> bool:
    if isinstance(b, dict):
        return isinstance(a, dict) and all(k in a and jcontains(a[k], v) for k, v in b.items())
    if isinstance(b, list):
        return isinstance(a, list) and all(
            any(jtype(x) == jtype(y) and jcontains(x, y) for x in a) for y in b
        )
    return jequal(a, b)


def to_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else value.lower() in ("1", "t", "true", "y", "yes")


def to_time(value: str) -> datetime:
    text = value.strip().replace(" ", "T")
    if len(text) == 10:
        text += "T00:00:00"
    text = re.sub(r"\.(\d{6})\d*", r".\1", text).replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def converter(attr: str) -> Callable[[Any], Any]:
    if attr in INTEGER_ATTRS:
        return int
    if attr == "progress":
        return float
    if attr == "success":
        return to_bool
    if attr in DATETIME_ATTRS:
        return to_time
    return lambda value: value


COMPARE = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def ref_column(task: JobTask, attr: str, op: str, operand: Any) -> bool:
    value = getattr(task, attr)
    if attr == "parameters":
        if op in ("like", "ilike"):
            return ref_like(ref_compact(value), operand, op == "ilike")
        if op == "exists":
            return operand in value
        if op == "contains":
            return jcontains(value, operand)
        return jequal(value, operand) == (op == "=")
    convert = converter(attr)
    if op in ("in", "not in"):
        wanted = [convert(x) for x in operand if x is not None]
        if op == "in":
            return value is not None and value in wanted
        if None in operand:
            return False
        return value is None or value not in wanted
    if operand is None:
        return (value is None) == (op == "=")
    wanted = convert(operand)
    if op == "=":
        return value is not None and value == wanted
    if op == "!=":
        return (value is None and isinstance(operand, str)) or (
            value is not None and value != wanted
        )
    if value is None:
        return False
    if op in COMPARE:
        return COMPARE[op](value, wanted)
    if op in ("like", "ilike"):
        return ref_like(value, operand, op == "ilike")
    if op == "is_a":
        kinds = [operand] if isinstance(operand, str) else operand
        return value[6:11] in {KIND_INFIXES[k] for k in kinds if k in KIND_INFIXES}
    raise AssertionError(op)


def ref_subproperty(parameters: Any, key: str, op: str, operand: Any) -> bool:
    if key.startswith("<") and key.endswith(">"):
        key = key[1:-1]
    present = isinstance(parameters, dict) and key in parameters
    value = parameters[key] if present else None

    def equal(x: Any) -> bool:
        return value is None if x is None else jtype(value) == jtype(x) and value == x

    if op == "=":
        return equal(operand)
    if op == "!=":
        return not equal(operand)
    if op == "in":
        return any(equal(x) for x in operand)
    if op == "not in":
        return not any(equal(x) for x in operand)
    if op in COMPARE:
        return jtype(value) == jtype(operand) and COMPARE[op](value, operand)
    if op in ("like", "ilike"):
        return isinstance(value, str) and ref_like(value, operand, op == "ilike")
    if op == "exists":
        return present == operand
    raise AssertionError(op)


def ref_filter(task: JobTask, condition: list[Any]) -> bool:
    attrs, op, operand = [*condition, None, None][:3]
    op = op.lower()
    if attrs == "any":
        attrs = [*TEXT_ATTRS, "parameters"] if op in ("like", "ilike") else list(TEXT_ATTRS)
    elif isinstance(attrs, str):
        attrs = [attrs]
    for attr in attrs:
        if attr.startswith("parameters."):
            if ref_subproperty(task.parameters, attr.split(".", 1)[1], op, operand):
                return True
        elif ref_column(task, attr, op, operand):
            return True
    return False


def ref_where(task: JobTask, where: dict[str, Any]) -> bool:
    for key, wanted in where.items():
        if key == "any":
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", wanted[1]) + "%"
            columns = [*(a for a in TEXT_ATTRS if a != "owner_uuid"), "parameters"]
            if not ref_filter(task, [columns, "ilike", pattern]):
                return False
        elif key in ALL_ATTRS:
            if isinstance(wanted, list) and wanted[:1] == ["contains"] and len(wanted) == 2:
                pattern = "%" + re.sub(r"([\\%_])", r"\\\1", wanted[1]) + "%"
                condition = [key, "like", pattern]
            elif isinstance(wanted, list):
                condition = [key, "in", wanted]
            else:
                condition = [key, "=", wanted]
            if not ref_filter(task, condition):
                return False
    return True


def reference(tasks: list[JobTask], filters: list[list[Any]], where: dict[str, Any]) -> set[str]:
    return {
        task.uuid
        for task in tasks
        if all(ref_filter(task, f) for f in filters) and ref_where(task, where)
    }


# ----------------------------------------------------------------------------------------
# Strategies for anything at all

anything_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(),
        st.text(max_size=8),
        st.sampled_from(
            [
                "",
                "[",
                "]",
                "null",
                "NaN",
                "1e999",
                "\x00",
                "\ud800",
                "%",
                "\\",
                "2024-01-01",
                "9999-12-31T23:59:59-12:00",
                "0000-00-00",
                "123",
                "9" * 30,
                "arvados#user",
                "exact",
                "none",
                "true",
                "1",
            ]
        ),
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=12,
)
ATTRIBUTE_JUNK = [
    *ALL_ATTRS,
    "any",
    "id",
    "foo",
    "kind",
    "parameters.a",
    "parameters.<b>",
    "parameters.",
    "output.x",
    "",
    "ANY",
]
OPERATOR_JUNK = [
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "like",
    "ilike",
    "in",
    "not in",
    "is_a",
    "exists",
    "contains",
    "@@",
    "<>",
    "LIKE",
    "Not In",
    "foo",
    "",
]
near_valid_conditions = st.lists(
    st.one_of(
        st.sampled_from(ATTRIBUTE_JUNK),
        st.lists(st.sampled_from(ATTRIBUTE_JUNK), max_size=3),
        anything_json,
    ),
    min_size=0,
    max_size=1,
).flatmap(
    lambda attr: st.tuples(
        st.just(attr),
        st.lists(st.one_of(st.sampled_from(OPERATOR_JUNK), anything_json), max_size=1),
        st.lists(anything_json, max_size=2),
    ).map(lambda parts: parts[0] + parts[1] + parts[2])
)
PARAM_NAMES = [
    "filters",
    "where",
    "order",
    "select",
    "distinct",
    "limit",
    "offset",
    "count",
    "job_uuid",
    "sequence__lt",
    "uuid__in",
    "success",
    "created_at__gte",
    "parameters__contains",
    "parameters__has_key",
    "output__like",
    "owner_uuid__is_a",
    "progress__in",
    "uuid",
    "foo",
]


def _encoded(value: Any) -> Any:
    return json.dumps(value)


param_values = st.one_of(
    anything_json,
    anything_json.map(_encoded),
    st.lists(st.one_of(near_valid_conditions, valid_conditions), max_size=3),
    st.lists(st.one_of(near_valid_conditions, valid_conditions), max_size=3).map(_encoded),
    st.lists(st.sampled_from(["uuid", "sequence desc", "x", "id", "kind"]), max_size=3),
)
any_params = st.dictionaries(st.sampled_from(PARAM_NAMES), param_values, max_size=5)


# ----------------------------------------------------------------------------------------
# The properties


@pytest.mark.django_db
@HYPOTHESIS
@given(params=any_params)
def test_any_params_give_a_query_or_an_invalid_request(params: dict[str, Any]) -> None:
    try:
        query = parse_list_params(params)
    except InvalidRequest as exc:
        messages = exc.messages
        assert messages
        for message in messages:
            assert isinstance(message, str)
            message.encode("utf-8")  # renderable by any JSON encoder
        return
    queryset = query.filter(JobTask.objects.all())
    queryset.count()
    list(queryset.order_by(*query.order_by).values("uuid")[:3])


@HYPOTHESIS
@given(value=st.one_of(anything_json, anything_json.map(_encoded)))
def test_parse_select_gives_names_or_an_invalid_request(value: Any) -> None:
    try:
        selected = parse_select(value)
    except InvalidRequest:
        return
    assert selected is None or ("kind" in selected and len(selected) == len(set(selected)))


@settings(HYPOTHESIS, max_examples=400)
@given(condition=valid_conditions)
@example(condition=["parameters", "like", '{"a":"xy","b":"x","é":"ü"}'])
@example(condition=["output", "!=", "a"])
@example(condition=["sequence", "not in", [1, None]])
@example(condition=["parameters.a", "!=", 1])
def test_each_valid_filter_selects_the_reference_rows(
    dataset: list[JobTask], condition: list[Any]
) -> None:
    query = parse_list_params({"filters": json.dumps([condition])})

    got = set(query.filter(JobTask.objects.all()).values_list("uuid", flat=True))
    assert got == reference(dataset, [condition], {}), condition


@HYPOTHESIS
@given(
    filters=st.lists(valid_conditions, min_size=1, max_size=3),
    where=st.one_of(st.just({}), valid_where),
)
def test_valid_filters_and_where_select_the_reference_rows(
    dataset: list[JobTask], filters: list[list[Any]], where: Any
) -> None:
    query = parse_list_params({"filters": json.dumps(filters), "where": where})

    got = set(query.filter(JobTask.objects.all()).values_list("uuid", flat=True))
    assert got == reference(dataset, filters, where), (filters, where)


def test_the_reference_itself_sees_every_kind_of_value(dataset: list[JobTask]) -> None:
    """Guards the dataset: the reference must be exercised on NULLs and JSON shapes."""
    assert reference(dataset, [["output", "=", None]], {}) == {dataset[9].uuid}
    assert reference(dataset, [["parameters.a", "=", None]], {}) == {
        dataset[0].uuid,
        dataset[5].uuid,
    }
    assert len(reference(dataset, [["any", "like", "%"]], {})) == 10
