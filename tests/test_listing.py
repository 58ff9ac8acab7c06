"""List pages compiled once per shape (``job_tasks/listing.py``): the same rows as the ORM."""

from __future__ import annotations

import json
from typing import Any

from django.db import connections
from hypothesis import given, settings
from hypothesis import strategies as st

from job_tasks import listing
from job_tasks.filters import parse_list_params
from job_tasks.models import JobTask
from tests.test_filter_properties import HYPOTHESIS, J1, J2, dataset, valid_conditions

__all__ = ["dataset"]  # (a fixture, used by name)
URL = "/arvados/v1/job_tasks"


def plans() -> dict[Any, Any]:
    return connections["default"].__dict__.setdefault("_job_tasks_list_plans", {})


def rows(params: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The page through the plan cache, and as the ORM alone gives it (with its count)."""
    query = parse_list_params(params)
    tasks = JobTask.objects.all()
    pages = listing.page_rows(tasks, query, key="test"), listing._run_orm(tasks, query)
    cached, orm = (
        [{**dict(zip(page.names, row, strict=True)), "total": page.total} for row in page.rows]
        for page in pages
    )
    return cached, orm


def test_requests_of_one_shape_share_a_plan_and_each_gets_its_own_rows(dataset):
    plans().clear()
    by_job = {}
    for job in (J1, J2, J1, "zzzzz-8i9sb-nosuchjob000000"):
        cached, orm = rows({"filters": json.dumps([["job_uuid", "=", job]]), "order": "uuid"})
        assert cached == orm
        by_job[job] = [row["uuid"] for row in cached]
    assert len(plans()) == 1
    (plan,) = plans().values()
    assert plan is not None
    assert len(by_job[J1]) == 3
    assert by_job[J2]
    assert set(by_job[J2]).isdisjoint(by_job[J1])
    assert by_job["zzzzz-8i9sb-nosuchjob000000"] == []


def test_values_that_change_the_sql_make_shapes_of_their_own(dataset):
    plans().clear()
    for condition in (
        ["sequence", "<", 3],
        ["sequence", "<", 2**40],  # beyond the column: Django writes other SQL
        ["sequence", "in", [1, 1, 2]],  # duplicates: Django drops them
        ["sequence", "in", [1, 2, 3]],
        ["success", "=", True],  # booleans are part of the shape
        ["success", "=", False],
        ["output", "like", "a%"],
        ["output", "like", "a\\%"],
    ):
        cached, orm = rows({"filters": json.dumps([condition])})
        assert cached == orm, condition
    assert len(plans()) == 7  # the two like patterns share one


def test_a_shape_the_orm_answers_alone_is_still_answered(dataset):
    cached, orm = rows({"filters": json.dumps([["sequence", "in", []]])})  # matches nothing
    assert cached == orm == []


@settings(HYPOTHESIS, max_examples=200)
@given(
    filters=st.lists(valid_conditions, min_size=1, max_size=2),
    count=st.booleans(),
    limit=st.sampled_from([1, 5, 100]),
)
def test_a_plan_gives_the_rows_the_orm_gives(dataset, filters, count, limit):
    params = {"filters": json.dumps(filters), "count": "exact" if count else "none"}
    params["limit"], params["order"] = limit, json.dumps(["sequence desc", "uuid"])
    for _ in range(2):  # the second time from the plan, if one was made
        cached, orm = rows(params)
        assert cached == orm, filters


def test_the_api_pages_through_plans(alice, make_task):
    for index in range(5):
        make_task(alice, job_uuid=J1 if index % 2 else J2, sequence=index)
    plans().clear()
    seen = []
    for job in (J1, J2):
        response = alice.client.get(URL, {"filters": json.dumps([["job_uuid", "=", job]])})
        body = response.json()
        assert {item["job_uuid"] for item in body["items"]} == {job}
        seen.append(body["items_available"])
    assert seen == [2, 3]
    assert [plan is not None for plan in plans().values()] == [True]


def test_listed_timestamps_and_etags_are_those_of_a_get(alice, make_task):
    """On PostgreSQL a list's timestamps are written by the database (to_char): they
    must be the API's own, to the digit, and so must the etags made from them."""
    from datetime import datetime, timezone

    moments = [
        datetime(1, 1, 2, 0, 0, 0, 1, tzinfo=timezone.utc),
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
        datetime(2024, 2, 29, 12, 0, tzinfo=timezone.utc),
        datetime(9998, 12, 31, 23, 59, 59, 500000, tzinfo=timezone.utc),
    ]
    for moment in moments:
        make_task(alice, started_at=moment, finished_at=None, progress=1.0)
    for select in (None, json.dumps(["uuid", "etag", "started_at", "created_at"])):
        params = {"order": "started_at", **({"select": select} if select else {})}
        items = alice.client.get(URL, params).json()["items"]
        assert [item["started_at"][:4] for item in items] == ["0001", "0999", "2024", "9998"]
        for item in items:
            got = alice.client.get(f"{URL}/{item['uuid']}").json()
            assert {key: got[key] for key in item} == item
