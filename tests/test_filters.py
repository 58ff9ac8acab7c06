"""The list query language (``job_tasks/filters.py``): parser unit tests and ORM-level tests.

Parser tests need no rows; ORM tests apply ``ListQuery.filter`` to real rows, on SQLite
and on PostgreSQL (``DATABASE_URL``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import django_filters
import pytest
from django.db.models import F, Q
from django.test import override_settings

from job_tasks.errors import InvalidRequest
from job_tasks.filters import (
    COLUMN_NAMES,
    MAX_OPERAND_VALUES,
    JobTaskFilterSet,
    ListQuery,
    compact_json,
    like_match,
    parse_list_params,
    parse_select,
    parse_timestamp,
)
from job_tasks.models import JobTask
from tests.conftest import Caller

UTC = timezone.utc
T0 = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
J1 = "zzzzz-8i9sb-000000000000001"
J2 = "zzzzz-8i9sb-000000000000002"


def refusal(params: dict[str, Any]) -> str:
    """The message(s) of the 422 that ``params`` must cause."""
    with pytest.raises(InvalidRequest) as info:
        parse_list_params(params)
    return "; ".join(info.value.messages)


def filter_refusal(*conditions: Any) -> str:
    return refusal({"filters": json.dumps(list(conditions))})


def ordering(query: ListQuery) -> list[tuple[str, str]]:
    """``order_by`` as (column, "asc"/"desc"), checking the NULLS placement on the way."""
    out = []
    for expression in query.order_by:
        name = expression.expression.name
        if expression.descending:
            assert expression.nulls_first
            assert not expression.nulls_last
            out.append((name, "desc"))
        else:
            assert expression.nulls_last
            assert not expression.nulls_first
            out.append((name, "asc"))
    return out


# ----------------------------------------------------------------------------------------
# Defaults, limit, offset, count, distinct


def test_defaults() -> None:
    query = parse_list_params({})

    assert query.select is None
    assert ordering(query) == [("modified_at", "desc"), ("uuid", "asc")]
    assert query.distinct is False
    assert query.limit == 100
    assert query.offset == 0
    assert query.count is True
    assert query.condition == Q()


def test_params_used_by_the_rest_of_the_app_are_ignored() -> None:
    query = parse_list_params(
        {
            "api_token": "x",
            "oauth_token": "y",
            "_method": "GET",
            "cluster_id": "zzzzz",
            "include_trash": "false",
            "reader_tokens": "[]",
            "ensure_unique_name": "maybe",
            "job_task": "{}",
            "uuid": "zzzzz-ot0gb-000000000000000",
        }
    )

    assert query.condition == Q()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0), ("10", 10), (10, 10), ("007", 7), ("1000", 1000), (0, 0)],
)
def test_limit_accepts_digits(value: Any, expected: Any) -> None:
    assert parse_list_params({"limit": value}).limit == expected


@pytest.mark.parametrize("value", ["1001", 5000, "99999999999999999999999999999999"])
def test_limit_above_max_is_clamped_silently(value: Any) -> None:
    assert parse_list_params({"limit": value}).limit == 1000


@override_settings(JOB_TASKS={"DEFAULT_LIMIT": 7, "MAX_LIMIT": 20})
def test_limit_default_and_max_come_from_settings_on_each_call() -> None:
    assert parse_list_params({}).limit == 7
    assert parse_list_params({"limit": "21"}).limit == 20


BAD_NON_NEGATIVE = [
    "-1",
    -1,
    "1.5",
    1.5,
    10.0,
    "",
    " 10",
    "10 ",
    "10\n",
    "abc",
    "1e3",
    "+1",
    "\u0661\u0660",
    True,
    False,
    [1],
    {"a": 1},
]


@pytest.mark.parametrize("value", BAD_NON_NEGATIVE)
def test_limit_refuses_anything_but_digits(value: Any) -> None:
    assert refusal({"limit": value}) == "Invalid value for limit parameter"


@pytest.mark.parametrize("value", BAD_NON_NEGATIVE)
def test_offset_refuses_anything_but_digits(value: Any) -> None:
    assert refusal({"offset": value}) == "Invalid value for offset parameter"


def test_offset_accepts_digits_and_refuses_absurd_values() -> None:
    assert parse_list_params({"offset": "25"}).offset == 25
    assert parse_list_params({"offset": 4611686018427387904}).offset == 2**62
    assert "Invalid value for offset parameter" in refusal({"offset": str(2**62 + 1)})
    assert "Invalid value for offset parameter" in refusal({"offset": "9" * 5000})


@pytest.mark.parametrize(
    ("value", "expected"), [(None, True), ("", True), ("exact", True), ("none", False)]
)
def test_count_spellings(value: Any, expected: Any) -> None:
    assert parse_list_params({"count": value}).count is expected


@pytest.mark.parametrize("value", ["EXACT", "None", "estimated", 0, True, [], "exact "])
def test_count_refuses_other_values(value: Any) -> None:
    assert refusal({"count": value}) == "count parameter must be 'exact' or 'none'"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("true", True),
        (1, True),
        ("1", True),
        (False, False),
        ("false", False),
        (0, False),
        ("0", False),
        (None, False),
    ],
)
def test_distinct_accepted_spellings(value: Any, expected: Any) -> None:
    assert parse_list_params({"distinct": value}).distinct is expected


@pytest.mark.parametrize("value", ["yes", "TRUE", "True", "", "t", 2, 1.0, 0.0, [], {}])
def test_distinct_refuses_other_values(value: Any) -> None:
    assert refusal({"distinct": value}) == "distinct parameter must be a boolean, true or false"


# ----------------------------------------------------------------------------------------
# select


@pytest.mark.parametrize("value", [None, False, "", "null", "false"])
def test_select_absent(value: Any) -> None:
    assert parse_select(value) is None
    assert parse_list_params({"select": value}).select is None


def test_select_returns_wire_order_with_kind_and_no_duplicates() -> None:
    assert parse_select(["sequence", "uuid", "sequence"]) == ("kind", "uuid", "sequence")
    assert parse_select('["etag","href","finished_at"]') == ("href", "kind", "etag", "finished_at")
    assert parse_select(["kind"]) == ("kind",)


def test_select_accepts_every_wire_attribute() -> None:
    names = ["href", "kind", "etag", *(n for n in COLUMN_NAMES if n != "updated_at")]
    assert parse_select(names) == tuple(names)


@pytest.mark.parametrize("value", [[], "[]"])
def test_select_empty_list_is_refused(value: Any) -> None:
    with pytest.raises(InvalidRequest, match="Attribute selection list cannot be empty"):
        parse_select(value)


@pytest.mark.parametrize("name", ["updated_at", "id", "foo", "Uuid"])
def test_select_unknown_attribute_names_it_both_ways(name: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_select(["uuid", name])
    message = info.value.messages[0]
    assert f'Invalid attribute(s): ["{name}"]' in message
    assert f"Invalid attribute '{name}' of JobTask in select parameter" in message


def test_select_non_string_entries_are_invalid_attributes() -> None:
    with pytest.raises(InvalidRequest, match=r"Invalid attribute\(s\): \[1, null\]"):
        parse_select([1, None])


@pytest.mark.parametrize("value", ["uuid", "[", '{"a":1}', "1", "true", True, 5, {"uuid": 1}])
def test_select_that_is_not_an_array_is_refused(value: Any) -> None:
    with pytest.raises(InvalidRequest, match='Could not parse "select" param as an array'):
        parse_select(value)


# ----------------------------------------------------------------------------------------
# order


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (None, [("modified_at", "desc"), ("uuid", "asc")]),
        (["sequence asc"], [("sequence", "asc"), ("modified_at", "desc"), ("uuid", "asc")]),
        (["uuid desc", "sequence"], [("uuid", "desc")]),
        ("qsequence", [("qsequence", "asc"), ("modified_at", "desc"), ("uuid", "asc")]),
        (
            "sequence desc, qsequence",
            [("sequence", "desc"), ("qsequence", "asc"), ("modified_at", "desc"), ("uuid", "asc")],
        ),
        ('["sequence DESC"]', [("sequence", "desc"), ("modified_at", "desc"), ("uuid", "asc")]),
        (
            ["  progress   Desc  extra words "],
            [("progress", "desc"), ("modified_at", "desc"), ("uuid", "asc")],
        ),
        (
            ["job_tasks.sequence desc"],
            [("sequence", "desc"), ("modified_at", "desc"), ("uuid", "asc")],
        ),
        (
            ["sequence desc", "sequence asc"],
            [("sequence", "desc"), ("modified_at", "desc"), ("uuid", "asc")],
        ),
        (["modified_at asc"], [("modified_at", "asc"), ("uuid", "asc")]),
        (
            ["updated_at", "parameters"],
            [
                ("updated_at", "asc"),
                ("parameters", "asc"),
                ("modified_at", "desc"),
                ("uuid", "asc"),
            ],
        ),
        ([], [("modified_at", "desc"), ("uuid", "asc")]),
        ("", [("modified_at", "desc"), ("uuid", "asc")]),
    ],
)
def test_order_shapes_defaults_and_cleanup(order: Any, expected: Any) -> None:
    assert ordering(parse_list_params({"order": order})) == expected


@pytest.mark.parametrize(
    "entry",
    [
        "nosuchcolumn",
        "sequence sideways",
        "kind",
        "href",
        "etag",
        "ID",
        "SEQUENCE",
        "other_table.sequence",
        "s",
        "",
        "   ",
        5,
        None,
        ["sequence"],
        {"sequence": "asc"},
        "sequence;drop table x",
        "other_table.id",
    ],
)
def test_order_entries_arvados_ignores_are_ignored_silently(entry: Any) -> None:
    query = parse_list_params({"order": [entry, "qsequence desc"]})

    assert ordering(query) == [("qsequence", "desc"), ("modified_at", "desc"), ("uuid", "asc")]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (["id"], [("id", "asc")]),
        (["id desc"], [("id", "desc")]),
        (["job_tasks.id DESC"], [("id", "desc")]),
        (["sequence", "id desc", "qsequence"], [("sequence", "asc"), ("id", "desc")]),
        (["uuid", "id"], [("uuid", "asc")]),
        ("sequence desc, id", [("sequence", "desc"), ("id", "asc")]),
    ],
)
def test_id_is_orderable_and_unique_so_what_follows_it_is_dropped(
    order: Any, expected: Any
) -> None:
    assert ordering(parse_list_params({"order": order})) == expected


def test_id_stays_unfilterable_and_unselectable_though_orderable() -> None:
    assert filter_refusal(["id", "=", 1]).startswith("Invalid attribute 'id' in filter")
    assert 'Invalid attribute(s): ["id"]' in refusal({"select": ["id"]})
    # not selectable, so a selection drops it from the order like any unselected column
    query = parse_list_params({"select": ["uuid", "sequence"], "order": ["sequence", "id"]})
    assert ordering(query) == [("sequence", "asc")]


@pytest.mark.parametrize("order", [5, {"sequence": "asc"}, True])
def test_order_of_another_json_type_is_ignored(order: Any) -> None:
    assert ordering(parse_list_params({"order": order})) == [
        ("modified_at", "desc"),
        ("uuid", "asc"),
    ]


@pytest.mark.parametrize("order", ["[", '["sequence"', "[1,]", "[sequence]"])
def test_order_string_starting_with_bracket_must_be_a_json_array(order: Any) -> None:
    assert refusal({"order": order}) == 'Could not parse "order" param as an array'


@pytest.mark.parametrize(
    ("select", "order", "expected"),
    [
        (["uuid"], None, [("uuid", "asc")]),
        (["sequence"], None, []),
        (["sequence"], ["sequence desc"], [("sequence", "desc")]),
        (["sequence", "uuid"], ["uuid desc", "sequence"], [("uuid", "desc")]),
        (["href"], None, []),
        (
            ["sequence", "modified_at"],
            ["updated_at", "sequence"],
            [("sequence", "asc"), ("modified_at", "desc")],
        ),
    ],
)
def test_order_is_pruned_to_the_selected_columns(select: Any, order: Any, expected: Any) -> None:
    query = parse_list_params({"select": json.dumps(select), "order": order})

    assert ordering(query) == expected


# ----------------------------------------------------------------------------------------
# filters: the parameter, elements, operators, attributes


@pytest.mark.parametrize("value", [None, "", "null", "[]", []])
def test_no_filters(value: Any) -> None:
    assert parse_list_params({"filters": value}).condition == Q()


@pytest.mark.parametrize(
    "value", ["[", "x", '{"a":1}', "1", "true", '"[]"', "NaN", "[NaN]", {"a": 1}, 5, True]
)
def test_filters_that_are_not_an_array_are_refused(value: Any) -> None:
    assert refusal({"filters": value}) == 'Could not parse "filters" param as an array'


def test_deeply_nested_filters_json_is_refused_not_crashed() -> None:
    assert "Could not parse" in refusal({"filters": "[" * 100_000})


@pytest.mark.parametrize(
    ("element", "shown"), [(5, "5"), ({"a": 1}, '{"a": 1}'), ("uuid", '"uuid"'), (None, "null")]
)
def test_filter_elements_must_be_arrays(element: Any, shown: str) -> None:
    assert (
        filter_refusal(["uuid", "=", "x"], element)
        == f"Invalid element in filters array: {shown} is not an array"
    )


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (["uuid"], "Invalid operator '' (NilClass) in filter"),
        ([], "Invalid operator '' (NilClass) in filter"),
        (["uuid", 5, "x"], "Invalid operator '5' (Integer) in filter"),
        (["uuid", None, "x"], "Invalid operator '' (NilClass) in filter"),
        (["uuid", ["="], "x"], "Invalid operator '[\"=\"]' (Array) in filter"),
        (["uuid", "foo", "x"], "Invalid operator 'foo'"),
        (["uuid", "<>", "x"], "Invalid operator '<>'"),
        (["sequence", "=>", 1], "Invalid operator '=>'"),
        (["any", "foo", "x"], "Invalid operator 'foo'"),
        (["sequence", "foo", 1], "Invalid attribute 'sequence' in filter"),
        (["sequence", "like", "1"], "Invalid attribute 'sequence' in filter"),
        (["progress", "ilike", "1"], "Invalid attribute 'progress' in filter"),
        (["created_at", "is_a", "arvados#user"], "Invalid attribute 'created_at' in filter"),
        (["success", "like", "t"], "Invalid attribute 'success' in filter"),
        (["success", "<", "true"], "Invalid operator '<' for boolean attribute 'success'"),
        (["success", ">=", True], "Invalid operator '>=' for boolean attribute 'success'"),
        (["any", "@@", "foo"], "Full text search operator is no longer supported"),
        (["output", "@@", "foo"], "Full text search operator is no longer supported"),
        (["uuid", "exists", "x"], "Invalid attribute 'uuid' for operator 'exists' in filter"),
        (["sequence", "exists", "x"], "Invalid attribute 'sequence' in filter"),
        (["output", "contains", "x"], "Invalid attribute 'output' for 'contains' operator"),
        (["parameters", "in", [{}]], "Invalid attribute 'parameters' in filter"),
        (["parameters", "<", {}], "Invalid attribute 'parameters' in filter"),
        (["parameters", "is_a", "arvados#job"], "Invalid attribute 'parameters' in filter"),
        (["parameters", "foo", "x"], "Invalid operator 'foo'"),
        (["any", "exists", "x"], "Invalid attribute 'any' for operator 'exists' in filter"),
        (["parameters.a", "is_a", "x"], "Invalid operator for subproperty search 'is_a'"),
        (["parameters.a", "contains", "x"], "Invalid operator for subproperty search 'contains'"),
        (["parameters.a", "foo", "x"], "Invalid operator 'foo'"),
    ],
)
def test_operator_errors(condition: list[Any], message: str) -> None:
    assert message in filter_refusal(condition)


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        ("foo", "Invalid attribute 'foo' in filter"),
        ("id", "Invalid attribute 'id' in filter"),
        ("href", "Invalid attribute 'href' in filter"),
        ("kind", "Invalid attribute 'kind' in filter"),
        ("etag", "Invalid attribute 'etag' in filter"),
        ("Uuid", "Invalid attribute 'Uuid' in filter"),
        ("job_tasks.uuid", "Invalid attribute 'job_tasks.uuid' in filter"),
        ("", "Invalid attribute '' in filter"),
        (5, "Invalid attribute '5' in filter"),
        (None, "Invalid attribute '' in filter"),
        ({"a": 1}, "Invalid attribute"),
        ([], "Invalid attribute '[]' in filter"),
        (["uuid", 5], "Invalid attribute '5' in filter"),
        (["uuid", "any"], "Invalid attribute 'any' in filter"),
        (["uuid", "foo"], "Invalid attribute 'foo' in filter"),
        ("output.x", "Invalid attribute 'output' for subproperty filter"),
        ("sequence.x", "Invalid attribute 'sequence' for subproperty filter"),
        ("foo.x", "Invalid attribute 'foo.x' in filter"),
        ("parameters.a\u0000b", "Invalid attribute 'parameters.a"),
        ([f"parameters.k{i}" for i in range(33)], "more than 32 attributes"),
    ],
)
def test_attribute_errors(attribute: Any, message: str) -> None:
    assert message in filter_refusal([attribute, "=", "x"])


def test_errors_name_the_offending_filter() -> None:
    message = filter_refusal(["uuid", "=", "x"], ["foo", "=", 1])

    assert message == 'Invalid attribute \'foo\' in filter (filters[1]: ["foo", "=", 1])'


def test_error_messages_survive_unprintable_input() -> None:
    message = filter_refusal(["\ud800", "=", "x"])

    assert "Invalid attribute '\\ud800' in filter" in message
    message.encode("utf-8")  # no unpaired surrogate left: any JSON encoder accepts it


def test_operators_are_lowercased_and_extra_elements_ignored() -> None:
    for condition in (
        ["output", "LIKE", "a%"],
        ["output", "In", ["a"]],
        ["output", "NOT IN", ["a"]],
        ["owner_uuid", "IS_A", "arvados#user"],
        ["output", "=", "a", "extra", {"ignored": True}],
        ["parameters", "EXISTS", "k"],
    ):
        parse_list_params({"filters": [condition]})


@pytest.mark.parametrize("limit", [1, 3])
def test_number_of_conditions_is_bounded_by_max_filters(limit: int) -> None:
    with override_settings(JOB_TASKS={"MAX_FILTERS": limit}):
        parse_list_params({"filters": [["output", "=", "x"]] * limit})
        message = refusal({"filters": [["output", "=", "x"]] * (limit + 1)})
        assert message == (
            f"Too many filters: {limit + 1} conditions given, at most {limit} allowed"
        )


@override_settings(JOB_TASKS={"MAX_FILTERS": 5000})
def test_max_filters_never_exceeds_what_sqlite_can_nest(db: None) -> None:
    query = parse_list_params({"filters": [["sequence", ">", -i] for i in range(500)]})
    assert query.filter(JobTask.objects.all()).count() == 0
    message = refusal({"filters": [["sequence", ">", -i] for i in range(501)]})
    assert message == "Too many filters: 501 conditions given, at most 500 allowed"


def test_where_keys_and_plain_parameters_count_as_conditions() -> None:
    with override_settings(JOB_TASKS={"MAX_FILTERS": 3}):
        parse_list_params(
            {"filters": [["output", "=", "x"]], "where": {"sequence": 1}, "job_uuid": J1}
        )
        assert "Too many filters: 4" in refusal(
            {
                "filters": [["output", "=", "x"]],
                "where": {"sequence": 1, "output": "y"},
                "job_uuid": J1,
            }
        )


def test_total_number_of_operand_values_is_bounded() -> None:
    parse_list_params({"filters": [["output", "in", ["x"] * MAX_OPERAND_VALUES]]})
    too_many = [["output", "in", ["x"] * 5000], ["job_uuid", "not in", ["y"] * 5001]]
    assert "Too many values in filters" in refusal({"filters": too_many})
    # "any" spends the values once per column it covers
    assert "Too many values in filters" in refusal({"filters": [["any", "in", ["x"] * 2000]]})
    deep: dict[str, Any] = {}
    wide = {f"k{i}": i for i in range(MAX_OPERAND_VALUES)}
    deep["w"] = wide
    assert "Too many values" in refusal({"filters": [["parameters", "contains", deep]]})


# ----------------------------------------------------------------------------------------
# filters: operand typing (§8.4, §15.1)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        # text
        (["uuid", "=", 1], "Invalid operand type 'Integer' for '=' operator in filters"),
        (["output", "!=", True], "Invalid operand type 'TrueClass' for '!=' operator in filters"),
        (["output", "=", 1.5], "Invalid operand type 'Float' for '=' operator in filters"),
        (["output", "=", ["a"]], "Invalid operand type 'Array' for '=' operator in filters"),
        (["output", "=", {"a": 1}], "Invalid operand type 'Hash' for '=' operator in filters"),
        (["output", "<", None], "Invalid operand type 'NilClass' for '<' operator in filters"),
        (["output", "like", None], "Invalid operand type 'NilClass' for 'like' operator"),
        (["output", "like", 5], "Invalid operand type 'Integer' for 'like' operator in filters"),
        (["output", "like", "abc\\"], "LIKE pattern must not end with escape character"),
        (["output", "ilike", "\\\\\\"], "LIKE pattern must not end with escape character"),
        (["output", "=", "a\u0000b"], "strings cannot contain NUL characters"),
        (["output", "=", "\ud800"], "not valid Unicode text"),
        (["output", "in", "a"], "Invalid operand type 'String' for 'in' operator in filters"),
        (["output", "not in", None], "Invalid operand type 'NilClass' for 'not in' operator"),
        (["output", "in", ["a", 1]], "Invalid element '1' in array for text attribute 'output'"),
        (["owner_uuid", "is_a", 5], "Invalid operand type 'Integer' for 'is_a' operator"),
        (["owner_uuid", "is_a", ["arvados#user", 5]], "Invalid operand type 'Integer' for 'is_a'"),
        (["owner_uuid", "is_a", None], "Invalid operand type 'NilClass' for 'is_a' operator"),
        # integer
        (["sequence", "=", 1.5], "Invalid operand '1.5' for integer attribute 'sequence'"),
        (["sequence", "=", 1.0], "Invalid operand '1.0' for integer attribute 'sequence'"),
        (["sequence", "=", "abc"], "Invalid operand 'abc' for integer attribute 'sequence'"),
        (["sequence", "=", "-1"], "Invalid operand '-1' for integer attribute 'sequence'"),
        (["sequence", "=", " 1"], "Invalid operand ' 1' for integer attribute 'sequence'"),
        (["sequence", "=", ""], "Invalid operand '' for integer attribute 'sequence'"),
        (["sequence", "=", True], "Invalid operand 'true' for integer attribute 'sequence'"),
        (["qsequence", ">", 2**63], "Invalid operand '9223372036854775808' for integer"),
        (["qsequence", "<", -(2**63) - 1], "for integer attribute 'qsequence'"),
        (["qsequence", "=", "9223372036854775808"], "for integer attribute 'qsequence'"),
        (["qsequence", "=", "1" * 5000], "for integer attribute 'qsequence'"),
        (["sequence", "=", [1]], "Invalid operand type 'Array' for '=' operator in filters"),
        (["sequence", "<", None], "Invalid operand type 'NilClass' for '<' operator in filters"),
        (["sequence", "in", [1, 1.5]], "Invalid element '1.5' in array for integer attribute"),
        (["sequence", "not in", ["x"]], "Invalid element 'x' in array for integer attribute"),
        (["sequence", "in", 1], "Invalid operand type 'Integer' for 'in' operator in filters"),
        # float
        (["progress", "=", "abc"], "Invalid operand 'abc' for float attribute 'progress'"),
        (["progress", "=", "inf"], "Invalid operand 'inf' for float attribute 'progress'"),
        (["progress", "=", "NaN"], "Invalid operand 'NaN' for float attribute 'progress'"),
        (["progress", "<", 10**400], "for float attribute 'progress'"),
        (["progress", "=", True], "Invalid operand type 'TrueClass' for '=' operator"),
        (["progress", "in", [0.5, "x"]], "Invalid element 'x' in array for float attribute"),
        # boolean
        (["success", "=", "maybe"], "Invalid operand 'maybe' for boolean attribute 'success'"),
        (["success", "=", ""], "Invalid operand '' for boolean attribute 'success'"),
        (["success", "=", 1], "Invalid operand type 'Integer' for '=' operator in filters"),
        (["success", "!=", 0.0], "Invalid operand type 'Float' for '!=' operator in filters"),
        (["success", "in", [True, "perhaps"]], "Invalid element 'perhaps' in array for boolean"),
        # datetime
        (["created_at", ">", "yesterday"], "Invalid operand 'yesterday' for datetime attribute"),
        (["created_at", "=", "2024-13-01"], "Invalid operand '2024-13-01' for datetime"),
        (["created_at", "=", "2024-02-30T00:00:00Z"], "for datetime attribute 'created_at'"),
        (["created_at", "=", "2024-01-01T25:00:00Z"], "for datetime attribute 'created_at'"),
        (["created_at", "<", "0000-01-01"], "for datetime attribute 'created_at'"),
        (["created_at", "<", "0001-01-01T00:00:00Z"], "out of range"),
        (["created_at", "<", "9999-12-31T23:59:59-01:00"], "out of range"),
        (["created_at", "<", "2024-01-01T00:00:00+25:00"], "for datetime attribute"),
        (["created_at", "<", "2024-01-01T00:00:00.1234567890123456789012345678901Z"], "datetime"),
        (["created_at", "<", 1700000000], "Invalid operand type 'Integer' for '<' operator"),
        (["created_at", "<", None], "Invalid operand type 'NilClass' for '<' operator"),
        (["finished_at", "in", ["2024-01-01", "soon"]], "Invalid element 'soon' in array"),
        # parameters
        (["parameters", "=", None], "Invalid operand type 'NilClass' for '=' operator"),
        (["parameters", "=", "x"], "Invalid operand 'x' for json attribute 'parameters'"),
        (["parameters", "=", [1]], "Invalid operand type 'Array' for '=' operator in filters"),
        (["parameters", "contains", []], "Invalid operand type 'Array' for 'contains' operator"),
        (["parameters", "contains", "[1]"], "not a JSON object"),
        (["parameters", "contains", None], "Invalid operand type 'NilClass' for 'contains'"),
        (["parameters", "contains", {"a": 2**64}], "integers must fit in 64 bits"),
        (["parameters", "contains", {"a": "\u0000"}], "strings cannot contain NUL characters"),
        (["parameters", "contains", {"\u0000": 1}], "strings cannot contain NUL characters"),
        (["parameters", "exists", 5], "Invalid operand type 'Integer' for 'exists' operator"),
        (["parameters", "exists", None], "Invalid operand type 'NilClass' for 'exists' operator"),
        (["parameters", "like", 5], "Invalid operand type 'Integer' for 'like' operator"),
        # parameters subproperties
        (["parameters.a", "=", [1]], "Invalid operand type 'Array' for '=' operator in filters"),
        (["parameters.a", "!=", {"b": 1}], "Invalid operand type 'Hash' for '!=' operator"),
        (["parameters.a", "<", True], "Invalid operand type 'TrueClass' for '<' operator"),
        (["parameters.a", "<", None], "Invalid operand type 'NilClass' for '<' operator"),
        (["parameters.a", "=", 2**64], "integers must fit in 64 bits"),
        (["parameters.a", "=", "\u0000"], "strings cannot contain NUL characters"),
        (["parameters.a", "in", "x"], "Invalid operand type 'String' for 'in' operator"),
        (["parameters.a", "in", [[1]]], "Invalid element '[1]' in array for subproperty"),
        (["parameters.a", "like", 1], "Invalid operand type 'Integer' for 'like' operator"),
        (["parameters.a", "like", "x\\"], "LIKE pattern must not end with escape character"),
        (["parameters.a", "exists", "yes"], "Invalid operand 'yes' for operator 'exists'"),
    ],
)
def test_operand_errors(condition: list[Any], message: str) -> None:
    assert message in filter_refusal(condition)


def test_deeply_nested_json_operands_are_refused() -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = {"a": deep}
    assert "nested more than 32 levels" in filter_refusal(["parameters", "contains", deep])


@pytest.mark.parametrize(
    "condition",
    [
        ["sequence", "=", "0001"],
        ["sequence", "<", 2**40],
        ["qsequence", "=", 2**63 - 1],
        ["qsequence", "=", -(2**63)],
        ["qsequence", "in", ["12", 13, None]],
        ["progress", "=", "0.5"],
        ["progress", "<", "1e-1"],
        ["progress", ">=", 0],
        ["progress", "in", [0.5, "1", 0]],
        ["success", "in", [True, "f", None, "YES"]],
        ["created_at", "in", ["2024-01-02", None]],
        ["created_at", "!=", "2024-01-02T03:04:05.123456000Z"],
        ["owner_uuid", "is_a", []],
        ["owner_uuid", "is_a", ["arvados#user", "arvados#nosuchkind"]],
        ["parameters", "contains", '{"a": 1}'],
        ["parameters", "=", {}],
        ["parameters.<a.b>", "=", 1],
        ["parameters.", "=", 1],
        ["parameters.a", "in", [1, "x", True, None, 1.5]],
        ["parameters.a", "not in", []],
        ["parameters.a", "exists", False],
        ["output", "=", ""],
        ["output", "=", "\U0001f600 é"],
    ],
)
def test_valid_operands(condition: list[Any]) -> None:
    assert parse_list_params({"filters": [condition]}).condition != Q()


@pytest.mark.parametrize(
    "spelling",
    ["1", "t", "true", "y", "yes", "0", "f", "false", "n", "no", "TRUE", "Yes", "F", "No"],
)
def test_boolean_spellings(spelling: str) -> None:
    parse_list_params({"filters": [["success", "=", spelling]]})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T03:04:05.123456000Z", T0),
        ("2024-01-02T03:04:05.123456789Z", T0),  # truncated to microseconds
        ("2024-01-02T03:04:05.123456Z", T0),
        ("2024-01-02T03:04:05.123456+00:00", T0),
        ("2024-01-02 03:04:05.123456", T0),
        ("2024-01-02t03:04:05,123456z", T0),
        ("2024-01-02T04:04:05.123456+01:00", T0),
        ("2024-01-02T04:04:05.123456+0100", T0),
        ("2024-01-02T01:34:05.123456-01:30", T0),
        ("  2024-01-02T03:04:05.123456 UTC ", T0),
        ("2024-01-02T03:04:05Z", T0.replace(microsecond=0)),
        ("2024-01-02T03:04", T0.replace(second=0, microsecond=0)),
        ("2024-01-02T05:04+02", T0.replace(second=0, microsecond=0)),
        ("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC)),
        ("2024-01-02T03:04:05.1Z", T0.replace(microsecond=100000)),
    ],
)
def test_parse_timestamp_is_lenient_iso_8601_in_utc(text: str, expected: Any) -> None:
    parsed = parse_timestamp(text)

    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


# ----------------------------------------------------------------------------------------
# LIKE and compact JSON (the functions SQLite runs and the reference of the semantics)


@pytest.mark.parametrize(
    ("text", "pattern", "insensitive", "expected"),
    [
        ("abc", "abc", False, True),
        ("abc", "a%", False, True),
        ("abc", "%c", False, True),
        ("abc", "%b%", False, True),
        ("abc", "a_c", False, True),
        ("abc", "a_", False, False),
        ("abc", "%", False, True),
        ("", "%", False, True),
        ("", "_", False, False),
        ("abc", "ABC", False, False),
        ("abc", "ABC", True, True),
        ("ÉTÉ", "été", True, True),
        ("ÉTÉ", "été", False, False),
        ("a%c", "a\\%c", False, True),
        ("abc", "a\\%c", False, False),
        ("a_c", "a\\_c", False, True),
        ("abc", "a\\_c", False, False),
        ("a\\c", "a\\\\c", False, True),
        ("abc", "\\a\\b\\c", False, True),
        ("line\nbreak", "line%break", False, True),
        ("aaa", "a%a%a%a", False, False),
        ("\U0001f600x", "_x", False, True),
    ],
)
def test_like_match(text: str, pattern: str, insensitive: bool, expected: Any) -> None:
    assert like_match(text, pattern, insensitive) is expected


def test_like_match_has_no_exponential_backtracking() -> None:
    started = time.monotonic()

    assert like_match("a" * 5000, "%a" * 40 + "b") is False
    assert time.monotonic() - started < 5


def test_like_match_refuses_a_trailing_escape() -> None:
    with pytest.raises(ValueError, match="escape character"):
        like_match("x", "x\\")


def test_compact_json_is_jsonb_text_without_spaces() -> None:
    value = {"b": 1, "aa": [1, 2.5, None, True], "a": {"z": 'x": y, z'}, "é": "ü", "n": 1e-7}

    assert compact_json(value) == (
        '{"a":{"z":"x\\": y, z"},"b":1,"n":0.0000001,"aa":[1,2.5,null,true],"é":"ü"}'
    )
    assert compact_json({"big": 1e100}) == '{"big":1' + "0" * 100 + "}"
    assert compact_json({"z": -0.0, "t": "\t\u0001"}) == '{"t":"\\t\\u0001","z":0.0}'


# ----------------------------------------------------------------------------------------
# The FilterSet


def test_filterset_is_a_django_filter_filterset_with_an_explicit_fields_dict() -> None:
    assert issubclass(JobTaskFilterSet, django_filters.FilterSet)
    assert JobTaskFilterSet.Meta.model is JobTask
    assert isinstance(JobTaskFilterSet.Meta.fields, dict)
    names = set(JobTaskFilterSet.base_filters)
    assert {
        "job_uuid",
        "sequence__lt",
        "uuid__in",
        "output__like",
        "success__isnull",
        "owner_uuid__is_a",
        "parameters__has_key",
        "parameters__contains",
    } <= names
    assert not any(name == "id" or name.startswith("id__") for name in names)
    assert not any(name.startswith("progress__like") for name in names)


# ----------------------------------------------------------------------------------------
# ORM level: ListQuery.filter on real rows


@pytest.fixture
def rows(alice: Any, make_task: Callable[..., JobTask]) -> dict[str, JobTask]:
    """Five tasks covering every column type, NULLs and JSON shapes, owned by alice."""
    hour = timedelta(hours=1)
    t1 = make_task(
        alice,
        sequence=0,
        qsequence=10,
        job_uuid=J1,
        output="alpha",
        progress=0.0,
        success=True,
        started_at=T0,
        finished_at=T0 + hour,
        modified_at=T0,
        parameters={"input": "foo", "n": 1, "flag": True},
    )
    return {
        "t1": t1,
        "t2": make_task(
            alice,
            sequence=1,
            qsequence=11,
            job_uuid=J1,
            output="Beta_%",
            progress=0.5,
            success=False,
            started_at=T0 + hour,
            modified_at=T0 + hour,
            parameters={"input": "bar", "n": 2.5, "tags": ["a", "b"], "nested": {"k": "v"}},
        ),
        "t3": make_task(
            alice,
            sequence=1,
            qsequence=12,
            job_uuid=J2,
            created_by_job_task_uuid=t1.uuid,
            modified_at=None,
            modified_by_user_uuid=None,
            parameters={},
        ),
        "t4": make_task(
            alice,
            sequence=None,
            qsequence=13,
            output="gamma\\x",
            progress=1.0,
            success=True,
            modified_at=T0 + 2 * hour,
            parameters={"input": None, "n": "1", "é": "ü", "list": [1, [2, 3]]},
        ),
        "t5": make_task(
            alice,
            sequence=2,
            qsequence=2**40,
            job_uuid=J2,
            output="",
            started_at=T0 + 2 * hour,
            modified_at=T0 + 3 * hour,
            parameters={"input": "foo bar", "n": 10},
        ),
    }


def names_for(rows: dict[str, JobTask], params: dict[str, Any]) -> set[str]:
    by_uuid = {task.uuid: name for name, task in rows.items()}
    query = parse_list_params(params)
    return {
        by_uuid[uuid] for uuid in query.filter(JobTask.objects.all()).values_list("uuid", flat=True)
    }


def matching(rows: dict[str, JobTask], *conditions: Any) -> set[str]:
    return names_for(rows, {"filters": json.dumps(list(conditions))})


ALL = {"t1", "t2", "t3", "t4", "t5"}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # text
        (["job_uuid", "=", J1], {"t1", "t2"}),
        (["job_uuid", "=", None], {"t4"}),
        (["job_uuid", "!=", None], {"t1", "t2", "t3", "t5"}),
        (["job_uuid", "!=", J1], {"t3", "t4", "t5"}),  # a string operand also matches NULL
        (["output", "="], {"t3"}),  # a missing operand is null
        (["output", "=", ""], {"t5"}),
        (["output", "<", "b"], {"t1", "t2", "t5"}),  # "B" < "b"
        (["output", ">=", "alpha"], {"t1", "t4"}),
        (["output", "like", "%a%"], {"t1", "t2", "t4"}),
        (["output", "like", "b%"], set()),
        (["output", "ilike", "b%"], {"t2"}),
        (["output", "like", "%\\%"], {"t2"}),
        (["output", "like", "Beta\\_%"], {"t2"}),
        (["output", "like", "gamma\\\\x"], {"t4"}),
        (["output", "like", "_____"], {"t1"}),
        (["output", "in", ["alpha", "", "nope"]], {"t1", "t5"}),
        (["output", "in", [None]], set()),  # null never matches NULL in "in"
        (["output", "in", []], set()),
        (["output", "not in", ["alpha"]], {"t2", "t3", "t4", "t5"}),  # NULL rows match
        (["output", "not in", ["alpha", None]], set()),  # SQL NOT IN (..., NULL)
        (["output", "not in", []], ALL),
        (["created_by_job_task_uuid", "is_a", "arvados#jobTask"], {"t3"}),
        (["owner_uuid", "is_a", "arvados#user"], ALL),
        (["owner_uuid", "is_a", ["arvados#group", "arvados#user"]], ALL),
        (["owner_uuid", "is_a", "arvados#group"], set()),
        (["owner_uuid", "is_a", "arvados#nosuchkind"], set()),
        (["uuid", "is_a", "arvados#jobTask"], ALL),
        (["uuid", "is_a", "arvados#job"], set()),
        (["job_uuid", "is_a", "arvados#job"], {"t1", "t2", "t3", "t5"}),
        (["uuid", "like", "zzzzz-ot0gb-%"], ALL),
        (["modified_by_user_uuid", "=", "x"], set()),
        (["modified_by_user_uuid", "=", None], {"t3"}),
        (["modified_by_user_uuid", "is_a", "arvados#user"], ALL - {"t3"}),
        # integer
        (["sequence", "=", 1], {"t2", "t3"}),
        (["sequence", "=", "1"], {"t2", "t3"}),
        (["sequence", "!=", 1], {"t1", "t5"}),  # a number does not match NULL
        (["sequence", "!=", "1"], {"t1", "t4", "t5"}),  # a string does
        (["sequence", "<", 1], {"t1"}),
        (["sequence", "<=", 1], {"t1", "t2", "t3"}),
        (["sequence", ">", 0], {"t2", "t3", "t5"}),
        (["sequence", ">=", "2"], {"t5"}),
        (["sequence", "<", 2**40], {"t1", "t2", "t3", "t5"}),  # beyond 32 bits: no NULLs
        (["sequence", ">", -(2**40)], {"t1", "t2", "t3", "t5"}),
        (["sequence", "=", 2**40], set()),
        (["sequence", "!=", 2**40], {"t1", "t2", "t3", "t5"}),
        (["sequence", "in", [0, 2, 2**40]], {"t1", "t5"}),
        (["sequence", "not in", [0, 2]], {"t2", "t3", "t4"}),
        (["sequence", "=", None], {"t4"}),
        (["qsequence", "=", 2**40], {"t5"}),
        (["qsequence", ">", "12"], {"t4", "t5"}),
        # float
        (["progress", "=", 0.5], {"t2"}),
        (["progress", "=", "0.5"], {"t2"}),
        (["progress", "<", 1], {"t1", "t2"}),
        (["progress", ">=", 0], {"t1", "t2", "t4"}),
        (["progress", "!=", 0], {"t2", "t4"}),
        (["progress", "!=", "0"], {"t2", "t3", "t4", "t5"}),
        (["progress", "in", [0, 1]], {"t1", "t4"}),
        (["progress", "=", None], {"t3", "t5"}),
        # boolean
        (["success", "=", True], {"t1", "t4"}),
        (["success", "=", "f"], {"t2"}),
        (["success", "=", "YES"], {"t1", "t4"}),
        (["success", "=", None], {"t3", "t5"}),
        (["success", "!=", True], {"t2"}),
        (["success", "!=", "true"], {"t2", "t3", "t5"}),
        (["success", "!=", None], {"t1", "t2", "t4"}),
        (["success", "in", [False, None]], {"t2"}),
        (["success", "not in", [True]], {"t2", "t3", "t5"}),
        (["success", "not in", ["n", None]], set()),
        # datetime
        (["started_at", "=", "2024-01-02T03:04:05.123456000Z"], {"t1"}),
        (["started_at", "=", "2024-01-02T04:04:05.123456+01:00"], {"t1"}),
        (["started_at", "=", "2024-01-02 03:04:05.123456"], {"t1"}),
        (["started_at", ">", "2024-01-02T03:04:05.123456Z"], {"t2", "t5"}),
        (["started_at", ">=", "2024-01-02T03:04:05.123456Z"], {"t1", "t2", "t5"}),
        (["started_at", "<", "2024-01-02T04:04:05.123457Z"], {"t1", "t2"}),
        (["started_at", "<", "2024-01-02"], set()),
        (["started_at", "!=", "2024-01-02T03:04:05.123456Z"], {"t2", "t3", "t4", "t5"}),
        (["started_at", "in", ["2024-01-02T05:04:05.123456Z", None]], {"t5"}),
        (["started_at", "not in", ["2024-01-02T05:04:05.123456Z"]], {"t1", "t2", "t3", "t4"}),
        (["modified_at", "=", None], {"t3"}),
        (["finished_at", "<=", "9999-12-30"], {"t1"}),
        (["created_at", ">", "0001-01-02"], ALL),
        # "any" and attribute arrays (OR)
        (["any", "like", "%alpha%"], {"t1"}),
        (["any", "ilike", "%BETA%"], {"t2"}),
        (["any", "like", f"%{J2[-4:]}"], {"t3", "t5"}),
        (["any", "like", '%"input":"foo%'], {"t1", "t5"}),  # parameters is included
        (["any", "=", J1], {"t1", "t2"}),
        (["any", "in", [J2, "alpha"]], {"t1", "t3", "t5"}),
        (["any", "is_a", "arvados#jobTask"], ALL),
        (["any", "=", "no such value"], set()),
        ([["job_uuid", "output"], "=", "alpha"], {"t1"}),
        ([["job_uuid", "output"], "in", [J2, "alpha"]], {"t1", "t3", "t5"}),
        ([["sequence", "progress"], "=", 1], {"t2", "t3", "t4"}),
        ([["output", "parameters.input"], "=", "foo"], {"t1"}),
        # parameters
        (["parameters", "like", '%"input":"foo"%'], {"t1"}),
        (["parameters", "like", '%"tags":["a","b"]%'], {"t2"}),
        (["parameters", "like", '%"é":"ü"%'], {"t4"}),
        (["parameters", "like", '{"n":1,"flag":true,"input":"foo"}'], {"t1"}),
        (["parameters", "like", "{}"], {"t3"}),
        (["parameters", "ilike", '%"INPUT":"FOO%'], {"t1", "t5"}),
        (["parameters", "like", "% %"], {"t5"}),  # only the space inside "foo bar"
        (["parameters", "exists", "input"], {"t1", "t2", "t4", "t5"}),
        (["parameters", "exists", "é"], {"t4"}),
        (["parameters", "exists", "k"], set()),
        (["parameters", "contains", {"input": "foo"}], {"t1"}),
        (["parameters", "contains", {"n": 1.0}], {"t1"}),
        (["parameters", "contains", {"tags": ["b"]}], {"t2"}),
        (["parameters", "contains", {"tags": "b"}], set()),
        (["parameters", "contains", {"nested": {}}], {"t2"}),
        (["parameters", "contains", {"list": [[3]]}], {"t4"}),
        (["parameters", "contains", {"input": None}], {"t4"}),
        (["parameters", "contains", {"flag": 1}], set()),
        (["parameters", "contains", {}], ALL),
        (["parameters", "=", {}], {"t3"}),
        (["parameters", "=", {"flag": True, "n": 1.0, "input": "foo"}], {"t1"}),
        (["parameters", "!=", {}], {"t1", "t2", "t4", "t5"}),
        # parameters subproperties
        (["parameters.input", "=", "foo"], {"t1"}),
        (["parameters.input", "=", None], {"t3", "t4"}),  # missing or null
        (["parameters.input", "!=", None], {"t1", "t2", "t5"}),
        (["parameters.input", "!=", "foo"], {"t2", "t3", "t4", "t5"}),  # complement of =
        (["parameters.n", "=", 1], {"t1"}),  # the string "1" of t4 is not the number 1
        (["parameters.n", "=", "1"], {"t4"}),
        (["parameters.n", "=", 2.5], {"t2"}),
        (["parameters.n", "!=", 1], {"t2", "t3", "t4", "t5"}),
        (["parameters.n", "<", 3], {"t1", "t2"}),
        (["parameters.n", ">=", 2.5], {"t2", "t5"}),
        (["parameters.n", ">", "0"], {"t4"}),  # strings compare with strings only
        (["parameters.input", "<", "foo"], {"t2"}),
        (["parameters.flag", "=", True], {"t1"}),
        (["parameters.flag", "=", 1], set()),
        (["parameters.flag", "!=", False], ALL),
        (["parameters.input", "in", ["bar", "foo bar"]], {"t2", "t5"}),
        (["parameters.input", "in", [None, 1]], {"t3", "t4"}),
        (["parameters.n", "in", [1, "1", 10]], {"t1", "t4", "t5"}),
        (["parameters.flag", "in", [True]], {"t1"}),
        (["parameters.input", "not in", ["foo", None]], {"t2", "t5"}),
        (["parameters.input", "not in", []], ALL),
        (["parameters.input", "like", "foo%"], {"t1", "t5"}),
        (["parameters.input", "ilike", "%BAR"], {"t2", "t5"}),
        (["parameters.n", "like", "1"], {"t4"}),
        (["parameters.input", "exists", True], {"t1", "t2", "t4", "t5"}),
        (["parameters.input", "exists", False], {"t3"}),
        (["parameters.<input>", "=", "foo"], {"t1"}),
        (["parameters.é", "=", "ü"], {"t4"}),
        (["parameters.nested", "=", None], {"t1", "t3", "t4", "t5"}),
    ],
)
def test_filter_semantics(rows: dict[str, JobTask], condition: list[Any], expected: Any) -> None:
    assert matching(rows, condition) == expected


def test_filters_are_anded(rows: dict[str, JobTask]) -> None:
    assert matching(rows, ["job_uuid", "=", J1], ["success", "=", False]) == {"t2"}
    assert matching(rows, ["sequence", ">=", 1], ["parameters.input", "!=", None]) == {"t2", "t5"}


def test_updated_at_is_filterable_and_orderable(rows: dict[str, JobTask]) -> None:
    first = JobTask.objects.order_by("updated_at").first()
    assert first is not None
    moment = first.updated_at.isoformat()
    assert matching(rows, ["updated_at", ">=", moment]) == ALL
    query = parse_list_params({"order": ["updated_at desc"]})
    assert list(JobTask.objects.order_by(*query.order_by))[-1].uuid == first.uuid


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (["sequence asc", "qsequence asc"], ["t1", "t2", "t3", "t5", "t4"]),  # NULLS LAST
        (["sequence desc", "qsequence asc"], ["t4", "t5", "t2", "t3", "t1"]),  # NULLS FIRST
        (["progress desc", "qsequence desc"], ["t5", "t3", "t4", "t2", "t1"]),
        (["output asc", "qsequence asc"], ["t5", "t2", "t1", "t4", "t3"]),
        (None, ["t3", "t5", "t4", "t2", "t1"]),  # modified_at desc, NULL first
        (["success", "qsequence desc"], ["t2", "t4", "t1", "t5", "t3"]),
        (["id desc"], ["t5", "t4", "t3", "t2", "t1"]),  # newest first
        (["id"], ["t1", "t2", "t3", "t4", "t5"]),  # order of creation
        (["sequence", "id desc"], ["t1", "t3", "t2", "t5", "t4"]),
    ],
)
def test_order_on_the_database(rows: dict[str, JobTask], order: Any, expected: Any) -> None:
    by_uuid = {task.uuid: name for name, task in rows.items()}
    query = parse_list_params({"order": order})

    ordered = JobTask.objects.order_by(*query.order_by).values_list("uuid", flat=True)
    assert [by_uuid[uuid] for uuid in ordered] == expected


# ----------------------------------------------------------------------------------------
# where (§7.3)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"job_uuid": J1}, {"t1", "t2"}),
        ('{"job_uuid": null}', {"t4"}),
        ({"sequence": 1, "success": None}, {"t3"}),
        ({"sequence": [0, 2]}, {"t1", "t5"}),
        ({"output": ["contains", "a"]}, {"t1", "t2", "t4"}),
        ({"output": ["contains", "A"]}, set()),
        ({"output": ["contains", "_%"]}, {"t2"}),
        ({"any": ["contains", "ALPH"]}, {"t1"}),
        ({"any": ["contains", "foo"]}, {"t1", "t5"}),
        ({"any": ["contains", "-tpzed-"]}, ALL - {"t3"}),  # owner_uuid is not searched
        ({"any": "ignored"}, ALL),
        ({"foo": 1, "id": 1, "kind": "x", "parameters.input": "x"}, ALL),
        ({"success": "true"}, {"t1", "t4"}),
        ({"parameters": {}}, {"t3"}),
        ({}, ALL),
        ("", ALL),
        (None, ALL),
    ],
)
def test_where(rows: dict[str, JobTask], where: Any, expected: Any) -> None:
    assert names_for(rows, {"where": where}) == expected


def test_where_and_filters_are_anded(rows: dict[str, JobTask]) -> None:
    params = {"where": {"job_uuid": J1}, "filters": [["sequence", "=", 1]]}

    assert names_for(rows, params) == {"t2"}


@pytest.mark.parametrize("where", ["[1]", "x", "5", [1], 5, True])
def test_where_must_be_an_object(where: Any) -> None:
    assert refusal({"where": where}) == 'Could not parse "where" param as an object'


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"sequence": 1.5}, "Invalid operand '1.5' for integer attribute 'sequence'"),
        ({"job_uuid": 5}, "Invalid operand type 'Integer' for '=' operator in filters"),
        ({"output": {"a": 1}}, "Invalid operand type 'Hash' for '=' operator"),
        ({"sequence": ["contains", "1"]}, "Invalid attribute 'sequence' in filter"),
    ],
)
def test_where_values_are_typed_like_filters(where: Any, message: str) -> None:
    text = refusal({"where": where})

    assert message in text
    assert "where[" in text


# ----------------------------------------------------------------------------------------
# Plain django-filter parameters


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"job_uuid": J1}, {"t1", "t2"}),
        ({"job_uuid": J1, "success": "false"}, {"t2"}),
        ({"sequence__lt": "2"}, {"t1", "t2", "t3"}),
        ({"sequence__gte": 1, "success__isnull": "true"}, {"t3", "t5"}),
        ({"uuid__in": "zzzzz-ot0gb-nothing"}, set()),
        ({"output__like": "%a"}, {"t1"}),
        ({"output__ilike": "B%"}, {"t2"}),
        ({"output__isnull": "1"}, {"t3"}),
        ({"qsequence__in": "10,13"}, {"t1", "t4"}),
        ({"qsequence__in": [10, "11"]}, {"t1", "t2"}),
        ({"progress__gt": "0.25"}, {"t2", "t4"}),
        ({"started_at__gte": "2024-01-02T04:04:05.123456Z"}, {"t2", "t5"}),
        ({"owner_uuid__is_a": "arvados#user"}, ALL),
        ({"job_uuid__is_a": "arvados#group,arvados#job"}, {"t1", "t2", "t3", "t5"}),
        ({"parameters__has_key": "tags"}, {"t2"}),
        ({"parameters__contains": '{"input": "foo"}'}, {"t1"}),
        ({"parameters__contains": {"n": 10}}, {"t5"}),
        ({"parameters__like": '%"n":"1"%'}, {"t4"}),
        ({"job_uuid": ""}, ALL),  # empty values are ignored (django-filter's convention)
        ({"nosuchparam": "x", "id": "1", "id__lt": "1", "kind__in": "x"}, ALL),  # unknown
        ({"uuid": "zzzzz-ot0gb-nothing"}, ALL),  # reserved for the member path
    ],
)
def test_plain_parameters(rows: dict[str, JobTask], params: dict[str, Any], expected: Any) -> None:
    assert names_for(rows, params) == expected


def test_plain_uuid_in_with_a_real_uuid(rows: dict[str, JobTask]) -> None:
    assert names_for(rows, {"uuid__in": f"{rows['t1'].uuid},{rows['t5'].uuid}"}) == {"t1", "t5"}


def test_plain_parameters_give_the_same_rows_through_the_filterset_itself(
    rows: dict[str, JobTask],
) -> None:
    data = {"job_uuid": J2, "sequence__gte": "1", "output__isnull": "false"}

    filterset = JobTaskFilterSet(data=data, queryset=JobTask.objects.all())
    assert filterset.is_valid()
    by_filterset = set(filterset.qs.values_list("uuid", flat=True))
    by_query = set(
        parse_list_params(data).filter(JobTask.objects.all()).values_list("uuid", flat=True)
    )
    assert by_filterset == by_query == {rows["t5"].uuid}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"sequence__lt": "abc"},
            "Invalid value for sequence__lt parameter: Invalid operand "
            "'abc' for integer attribute 'sequence'",
        ),
        ({"success": "maybe"}, "Invalid value for success parameter"),
        ({"created_at__gt": "soon"}, "Invalid value for created_at__gt parameter"),
        ({"job_uuid": 5}, "Invalid value for job_uuid parameter: Invalid operand type 'Integer'"),
        ({"uuid__in": {"a": 1}}, "Invalid value for uuid__in parameter"),
        ({"uuid__in": 5}, "Invalid value for uuid__in parameter"),
        ({"output__like": "x\\"}, "LIKE pattern must not end with escape character"),
        ({"parameters__contains": "[1]"}, "Invalid value for parameters__contains parameter"),
        ({"qsequence__in": "1,x"}, "Invalid value for qsequence__in parameter"),
        ({"sequence": "1.0"}, "Invalid value for sequence parameter"),
        # a filterable attribute with a lookup the FilterSet does not offer
        (
            {"sequence__like": "x"},
            "Invalid filter parameter sequence__like: sequence has no lookup 'like' "
            "(plain parameters on sequence: sequence, sequence__in, sequence__lt, "
            "sequence__lte, sequence__gt, sequence__gte, sequence__isnull)",
        ),
        (
            {"success__lt": "true"},
            "Invalid filter parameter success__lt: success has no lookup 'lt' "
            "(plain parameters on success: success, success__in, success__isnull)",
        ),
        ({"progress__is_a": "x"}, "Invalid filter parameter progress__is_a:"),
        ({"sequence__foo": "1"}, "Invalid filter parameter sequence__foo:"),
        ({"created_at__like": "2024%"}, "Invalid filter parameter created_at__like:"),
        ({"updated_at__ilike": "x"}, "Invalid filter parameter updated_at__ilike:"),
        ({"output__contains": "x"}, "Invalid filter parameter output__contains:"),
        ({"job_uuid__": "x"}, "Invalid filter parameter job_uuid__: job_uuid has no lookup ''"),
        ({"sequence__lt__gt": "1"}, "Invalid filter parameter sequence__lt__gt:"),
        ({"parameters__input": "x"}, "Invalid filter parameter parameters__input:"),
        # refused whatever the value, empty or null included: the name is the error
        ({"sequence__like": ""}, "Invalid filter parameter sequence__like:"),
        ({"success__gt": None}, "Invalid filter parameter success__gt:"),
    ],
)
def test_plain_parameter_errors_are_invalid_requests(params: dict[str, Any], message: str) -> None:
    assert message in refusal(params)


def test_a_refused_lookup_lists_the_plain_parameters_of_its_attribute_but_not_uuid() -> None:
    message = refusal({"uuid__foo": "x"})

    assert message.startswith("Invalid filter parameter uuid__foo: uuid has no lookup 'foo'")
    assert "uuid__in" in message
    assert "uuid, " not in message, "bare uuid is the member path's, not a list filter"


def test_conditions_only_narrow_the_given_queryset(
    rows: dict[str, JobTask], bob: Caller, make_task: Callable[..., JobTask]
) -> None:
    other = make_task(bob, job_uuid=J1, output="alpha")
    query = parse_list_params({"filters": [["job_uuid", "=", J1]], "job_uuid": J1})

    narrowed = query.filter(JobTask.objects.exclude(owner_uuid=bob.uuid))
    assert other.uuid not in set(narrowed.values_list("uuid", flat=True))
    assert query.filter(JobTask.objects.filter(pk=other.pk)).get() == other


def test_list_query_filter_without_conditions_returns_the_queryset_unchanged(
    rows: dict[str, JobTask],
) -> None:
    queryset = JobTask.objects.filter(sequence=1)

    assert parse_list_params({}).filter(queryset) is queryset
    assert parse_list_params({"order": "sequence"}).order_by[0] == F("sequence").asc(
        nulls_last=True
    )
