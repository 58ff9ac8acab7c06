"""The list query language through HTTP: ``GET /arvados/v1/job_tasks``.

Properties (never a 500; valid filters give the reference rows), visibility (the language
only narrows what the caller may see), keyset paging as the Arvados Python SDK does it,
and the number of queries per page.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import given, settings
from hypothesis import strategies as st

from job_tasks import uuids
from job_tasks.filters import COLUMN_NAMES
from job_tasks.models import JobTask
from tests.conftest import Caller
from tests.test_filter_properties import (
    HYPOTHESIS,
    T0,
    any_params,
    create_dataset,
    reference,
    valid_conditions,
    valid_where,
)

URL = "/arvados/v1/job_tasks"

pytestmark = pytest.mark.django_db


def list_tasks(caller: Any, params: dict[str, Any], *, body: bool = False) -> Any:
    """GET with the parameters in the query string (JSON-encoded, as the Python SDK sends
    them), or a POST with a JSON body and ``X-HTTP-Method-Override: GET``."""
    if body:
        return caller.client.post(
            URL,
            json.dumps(params),  # ASCII JSON: unpaired surrogates travel as \udxxx escapes
            content_type="application/json",
            HTTP_X_HTTP_METHOD_OVERRIDE="GET",
        )
    query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    return caller.client.get(URL, query)


def uuids_of(response: Any) -> set[str]:
    assert response.status_code == 200, response.content
    return {item["uuid"] for item in response.json()["items"]}


@pytest.fixture
def datasets(alice: Any, bob: Any, make_task: Callable[..., JobTask]) -> list[JobTask]:
    """The property dataset twice: alice's copy (returned) and an identical one of bob's."""
    create_dataset(bob, make_task)
    return create_dataset(alice, make_task)


# ----------------------------------------------------------------------------------------
# Properties through HTTP


def _no_surrogates(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@settings(HYPOTHESIS, max_examples=80)
@given(params=any_params, body=st.booleans())
def test_any_list_request_is_answered_200_or_422(
    alice: Caller, params: dict[str, Any], body: bool
) -> None:
    if not body and not _no_surrogates(params):
        body = True  # a query string cannot carry unpaired surrogates; a JSON body can
    response = list_tasks(alice, params, body=body)

    assert response.status_code in (200, 422), response.content
    payload = response.json()
    if response.status_code == 422:
        assert payload["errors"]
        assert all(isinstance(message, str) for message in payload["errors"])
    else:
        assert payload["kind"] == "arvados#jobTaskList"


@settings(HYPOTHESIS, max_examples=80)
@given(
    filters=st.lists(valid_conditions, min_size=1, max_size=2),
    where=st.one_of(st.just({}), valid_where),
    body=st.booleans(),
)
def test_valid_filters_through_http_give_the_reference_rows_and_count(
    datasets: list[JobTask], alice: Caller, filters: list[list[Any]], where: Any, body: bool
) -> None:
    params = {"filters": filters, "where": where, "limit": 1000, "select": ["uuid"]}
    response = list_tasks(alice, params, body=body)

    expected = reference(datasets, filters, where)
    assert uuids_of(response) == expected, (filters, where)
    assert response.json()["items_available"] == len(expected)


# ----------------------------------------------------------------------------------------
# Visibility: the language only narrows what the caller may see


@pytest.fixture
def two_owners(alice: Any, bob: Any, make_task: Callable[..., JobTask]) -> dict[str, set[str]]:
    owned: dict[str, set[str]] = {"alice": set(), "bob": set()}
    for name, caller in (("alice", alice), ("bob", bob)):
        for i in range(3):
            task = make_task(
                caller,
                job_uuid="zzzzz-8i9sb-000000000000001",
                sequence=i,
                output=f"out{i}",
                parameters={"who": name, "i": i},
                success=i == 1 or None,
            )
            owned[name].add(task.uuid)
    return owned


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"filters": [["owner_uuid", "is_a", "arvados#user"]]},
        {"filters": [["any", "like", "%"]]},
        {"filters": [["job_uuid", "=", "zzzzz-8i9sb-000000000000001"]]},
        {"filters": [["sequence", "not in", []]]},
        {"filters": [["output", "!=", "nothing"]]},
        {"filters": [["parameters", "contains", {}]]},
        {"filters": [["parameters.who", "!=", "alice"]]},
        {"filters": [[["owner_uuid", "job_uuid"], "like", "%"]]},
        {"where": {"job_uuid": "zzzzz-8i9sb-000000000000001"}},
        {"where": {"any": ["contains", "out"]}},
        {"job_uuid": "zzzzz-8i9sb-000000000000001"},
        {"owner_uuid__is_a": "arvados#user"},
    ],
)
def test_bobs_tasks_never_leak_to_alice(
    alice: Caller, bob: Caller, two_owners: dict[str, set[str]], params: dict[str, Any]
) -> None:
    response = list_tasks(alice, params)

    got = uuids_of(response)
    assert got <= two_owners["alice"]
    assert response.json()["items_available"] == len(got)
    assert uuids_of(list_tasks(bob, params)) <= two_owners["bob"]


@pytest.mark.parametrize(
    "params",
    [
        {"filters": [["owner_uuid", "=", "BOB"]]},
        {"filters": [["uuid", "in", "BOB_TASKS"]]},
        {"filters": [["parameters.who", "=", "bob"]]},
        {"filters": [["parameters", "like", '%"who":"bob"%']]},
        {"where": {"owner_uuid": "BOB"}},
        {"owner_uuid": "BOB"},
        {"uuid__in": "BOB_TASKS"},
    ],
)
def test_asking_for_bobs_tasks_by_name_gives_alice_nothing(
    alice: Caller, bob: Caller, two_owners: dict[str, set[str]], params: dict[str, Any]
) -> None:
    text = json.dumps(params)
    text = text.replace('"BOB_TASKS"', json.dumps(sorted(two_owners["bob"])))
    text = text.replace("BOB", bob.uuid)
    params = json.loads(text)
    if "uuid__in" in params:
        params["uuid__in"] = ",".join(params["uuid__in"])

    response = list_tasks(alice, params)

    assert uuids_of(response) == set()
    assert response.json()["items_available"] == 0


@pytest.mark.parametrize("column", COLUMN_NAMES)
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_ordering_on_any_column_never_shows_other_owners_tasks(
    alice: Caller, two_owners: dict[str, set[str]], column: str, direction: str
) -> None:
    response = list_tasks(alice, {"order": [f"{column} {direction}"]})

    assert uuids_of(response) == two_owners["alice"]
    assert response.json()["items_available"] == 3


def test_distinct_projection_counts_and_shows_only_visible_rows(
    alice: Caller, bob: Caller, two_owners: dict[str, set[str]]
) -> None:
    response = list_tasks(alice, {"select": ["job_uuid"], "distinct": "true"})

    assert response.status_code == 200
    body = response.json()
    assert body["items"] == [{"kind": "arvados#jobTask", "job_uuid": "zzzzz-8i9sb-000000000000001"}]
    assert body["items_available"] == 3  # records, not projected items (§7.5)
    outputs = list_tasks(alice, {"select": ["output"], "distinct": True, "order": ["output"]})
    assert [item["output"] for item in outputs.json()["items"]] == ["out0", "out1", "out2"]


def test_distinct_kind_only_merges_every_row_into_one_item(
    alice: Caller, bob: Caller, two_owners: dict[str, set[str]]
) -> None:
    params = {"select": ["kind"], "distinct": "true"}

    body = list_tasks(alice, params).json()
    assert body["items"] == [{"kind": "arvados#jobTask"}]
    assert body["items_available"] == 3  # records, not projected items (§7.5)
    assert list_tasks(alice, {**params, "offset": "1"}).json()["items"] == []
    assert list_tasks(alice, {**params, "limit": "0"}).json()["items"] == []
    nothing = list_tasks(alice, {**params, "filters": [["output", "=", "none such"]]})
    assert nothing.json()["items"] == []
    assert nothing.json()["items_available"] == 0
    # without distinct, one item per task, each just its kind
    plain = list_tasks(alice, {"select": ["kind"]}).json()
    assert plain["items"] == [{"kind": "arvados#jobTask"}] * 3


def test_distinct_over_href_keeps_one_item_per_task(
    alice: Caller, bob: Caller, two_owners: dict[str, set[str]]
) -> None:
    body = list_tasks(alice, {"select": ["href"], "distinct": "true"}).json()

    assert sorted(item["href"] for item in body["items"]) == sorted(
        f"/job_tasks/{uuid}" for uuid in two_owners["alice"]
    )


def test_order_by_id_lists_in_order_of_creation(
    alice: Caller, bob: Caller, two_owners: dict[str, set[str]]
) -> None:
    mine = JobTask.objects.filter(uuid__in=two_owners["alice"]).order_by("pk")
    created = list(mine.values_list("uuid", flat=True))
    # the oldest becomes the most recently modified: the default order would list it first
    newest = max(mine.values_list("modified_at", flat=True))
    JobTask.objects.filter(uuid=created[0]).update(modified_at=newest + timedelta(days=1))

    def listed(order: Any) -> list[str]:
        response = list_tasks(alice, {"order": order})
        assert response.status_code == 200, response.content
        return [item["uuid"] for item in response.json()["items"]]

    assert listed(None)[0] == created[0]
    assert listed(["id desc"]) == created[::-1]
    assert listed("id") == created
    assert listed(["id desc", "modified_at desc"]) == created[::-1], "nothing after id counts"


def test_a_manager_sees_every_owners_tasks_through_the_same_filters(
    manager: Caller, two_owners: dict[str, set[str]]
) -> None:
    response = list_tasks(manager, {"filters": [["parameters.who", "in", ["alice", "bob"]]]})

    assert uuids_of(response) == two_owners["alice"] | two_owners["bob"]


# ----------------------------------------------------------------------------------------
# The wire: envelope, errors, spellings


def test_bad_filters_get_422_in_the_arvados_envelope(alice: Caller) -> None:
    response = list_tasks(alice, {"filters": [["foo", "=", 1]]})

    assert response.status_code == 422
    body = response.json()
    assert list(body) == ["errors", "error_token"]
    assert "Invalid attribute 'foo' in filter" in body["errors"][0]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "-1"}, "Invalid value for limit parameter"),
        ({"offset": "x"}, "Invalid value for offset parameter"),
        ({"count": "all"}, "count parameter must be 'exact' or 'none'"),
        ({"distinct": "yes"}, "distinct parameter must be a boolean, true or false"),
        ({"select": "[]"}, "Attribute selection list cannot be empty"),
        ({"select": "uuid"}, 'Could not parse "select" param as an array'),
        ({"order": "[oops"}, 'Could not parse "order" param as an array'),
        ({"where": "[]"}, 'Could not parse "where" param as an object'),
        ({"filters": "{"}, 'Could not parse "filters" param as an array'),
        ({"sequence__lt": "x"}, "Invalid value for sequence__lt parameter"),
        ({"sequence__like": "x"}, "Invalid filter parameter sequence__like"),
        ({"success__lt": "true"}, "Invalid filter parameter success__lt"),
        ({"progress__is_a": "x"}, "Invalid filter parameter progress__is_a"),
        ({"filters": '[["output","=","\\u0000"]]'}, "strings cannot contain NUL characters"),
        ({"filters": '[["qsequence","=",99999999999999999999999]]'}, "for integer attribute"),
    ],
)
def test_list_parameter_errors_over_http(
    alice: Caller, params: dict[str, Any], message: str
) -> None:
    response = alice.client.get(URL, params)

    assert response.status_code == 422, response.content
    assert message in response.json()["errors"][0]


def test_count_none_omits_items_available_and_limit_is_clamped(
    alice: Caller, make_task: Callable[..., JobTask]
) -> None:
    make_task(alice)

    body = list_tasks(alice, {"count": "none", "limit": "5000", "offset": "0"}).json()

    assert "items_available" not in body
    assert body["limit"] == 1000
    assert len(body["items"]) == 1


def test_form_post_with_method_override_reads_json_encoded_params(
    alice: Caller, make_task: Callable[..., JobTask]
) -> None:
    task = make_task(alice, sequence=4)
    make_task(alice, sequence=5)

    response = alice.client.post(
        URL, {"_method": "GET", "filters": json.dumps([["sequence", "=", 4]])}
    )

    assert uuids_of(response) == {task.uuid}


def test_json_body_values_keep_their_json_types(
    alice: Caller, make_task: Callable[..., JobTask]
) -> None:
    task = make_task(alice, sequence=4, output="4")
    response = list_tasks(
        alice, {"filters": [["sequence", "=", 4]], "limit": 10, "distinct": False}, body=True
    )
    assert uuids_of(response) == {task.uuid}
    response = list_tasks(alice, {"filters": [["output", "=", 4]]}, body=True)
    assert response.status_code == 422  # a number is not a text operand


# ----------------------------------------------------------------------------------------
# Keyset paging over 5,000 tasks, the way arvados.util.keyset_list_all does it


def keyset_list_all(caller: Any, page_size: int = 1000) -> Iterator[dict[str, Any]]:
    """A port of ``arvados.util.keyset_list_all`` (order_key ``created_at``, ascending)."""
    params: dict[str, Any] = {
        "limit": page_size,
        "count": "none",
        "order": ["created_at asc", "uuid asc"],
    }
    next_page: list[list[Any]] = []
    seen_this_page: set[str] = set()
    last: dict[str, Any] | None = None
    previous_all_same = False
    while True:
        response = list_tasks(caller, {**params, "filters": next_page})
        assert response.status_code == 200, response.content
        body = response.json()
        assert "items_available" not in body
        items = body["items"]
        if not items:
            if previous_all_same and last is not None:
                next_page = [["created_at", ">", last["created_at"]]]
                previous_all_same = False
                continue
            return
        seen_previous, seen_this_page = seen_this_page, set()
        for item in items:
            if item["uuid"] in seen_previous:
                continue
            seen_this_page.add(item["uuid"])
            yield item
        first, last = items[0], items[-1]
        if first["created_at"] == last["created_at"]:
            next_page = [["created_at", "=", last["created_at"]], ["uuid", ">", last["uuid"]]]
            previous_all_same = True
        else:
            next_page = [
                ["created_at", ">=", last["created_at"]],
                ["uuid", "!=", last["uuid"]],
            ]
            previous_all_same = False


@pytest.mark.slow
def test_keyset_paging_over_5000_tasks_returns_each_task_exactly_once(
    alice: Caller, bob: Caller
) -> None:
    tasks = []
    for i in range(5000):
        if 2000 <= i < 3500:
            created = T0 + timedelta(seconds=2000)  # 1,500 ties: more than one page
        elif i % 7 == 0:
            created = T0 + timedelta(seconds=i - 1)  # pairs of ties
        else:
            created = T0 + timedelta(seconds=i, microseconds=i)
        tasks.append(
            JobTask(
                uuid=uuids.new_uuid(uuids.JOB_TASK_INFIX),
                owner_uuid=alice.uuid,
                created_at=created,
                modified_at=created,
                qsequence=i,
            )
        )
    JobTask.objects.bulk_create(tasks, batch_size=500)
    JobTask.objects.create(uuid=uuids.new_uuid(uuids.JOB_TASK_INFIX), owner_uuid=bob.uuid)

    listed = [item["uuid"] for item in keyset_list_all(alice)]

    assert len(listed) == 5000
    assert set(listed) == {task.uuid for task in tasks}
    created = [(task.created_at, task.uuid) for task in tasks]
    assert listed == [uuid for _, uuid in sorted(created)]


# ----------------------------------------------------------------------------------------
# Queries per page


def _page_queries(caller: Any, params: dict[str, Any]) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = list_tasks(caller, params)
    assert response.status_code == 200, response.content
    return [query["sql"] for query in captured.captured_queries]


def test_a_page_costs_one_query_whatever_its_size_count_included(
    alice: Caller, make_task: Callable[..., JobTask], django_assert_num_queries: Any
) -> None:
    JobTask.objects.bulk_create(
        JobTask(
            uuid=uuids.new_uuid(uuids.JOB_TASK_INFIX),
            owner_uuid=alice.uuid,
            qsequence=i,
            sequence=i % 3,
            parameters={"i": i},
        )
        for i in range(500)
    )
    params = {"filters": [["sequence", ">=", 0], ["parameters.i", ">=", 0]]}
    list_tasks(alice, {"limit": 1})  # warm up: identities are made on first use

    one = _page_queries(alice, {**params, "limit": 1})
    on_tasks = [sql for sql in one if "job_tasks_jobtask" in sql]
    assert len(on_tasks) == 1  # the count rides with the page, as a scalar subquery
    assert sum("COUNT(" in sql for sql in on_tasks) == 1

    with django_assert_num_queries(len(one)):
        response = list_tasks(alice, {**params, "limit": 500})
    assert len(response.json()["items"]) == 500
    with django_assert_num_queries(len(one)) as captured:
        response = list_tasks(alice, {**params, "limit": 500, "count": "none"})
    assert not any("COUNT(" in query["sql"] for query in captured.captured_queries)
    assert len(response.json()["items"]) == 500
    with django_assert_num_queries(len(one)):
        list_tasks(
            alice, {**params, "limit": 500, "select": ["uuid", "sequence"], "distinct": "true"}
        )
