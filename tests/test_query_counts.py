"""Query counts of the API's hot paths, so that an N+1 or an extra query fails CI.

Counted through HTTP (the API client), authentication included. The counts do not
grow with the number of tasks: a list of 500 costs what a list of 1 does.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from job_tasks.identities import group_uuid
from job_tasks.models import JobTask

URL = "/arvados/v1/job_tasks"

#: The token, with its user, the user's uuid, their groups' uuids and whether they are
#: a job manager: one query. Everything else an API request needs is in its own queries below.
AUTH = 1
#: Inside a test's transaction every ``atomic`` block is a SAVEPOINT and its RELEASE
#: (two queries each); in production the outermost one is BEGIN/COMMIT instead.
#: The general write path (SQLite, or ``SINGLE_STATEMENT_WRITES`` off):
#: create: qsequence, the insert, the audit row (in the domain's atomic block, which
#: joins the test's without a savepoint).
CREATE = 3
#: update: the locked read, the update, the audit row, and the view's atomic block (the
#: caller's groups came with the token: writing a group's task asks nothing more).
UPDATE = 3 + 2 * 1
#: The same on PostgreSQL in one statement each (``pgwrites``): a create is the insert
#: with its qsequence and audit row; an update reads the task (unlocked, with its row
#: version), then writes it and its audit row if the row is unchanged.
CREATE_IN_ONE = 1
UPDATE_IN_ONE = 1 + 1


def on_sqlite() -> bool:
    return connection.vendor == "sqlite"


@pytest.fixture(params=["one statement", "general"])
def one_statement(request: Any, settings: Any) -> bool:
    """Both write paths: True where writes take one statement (PostgreSQL, by default)."""
    settings.JOB_TASKS = {"SINGLE_STATEMENT_WRITES": request.param == "one statement"}
    return request.param == "one statement" and connection.vendor == "postgresql"


@pytest.fixture
def tasks(alice: Any, make_task: Any) -> Any:
    """``make(n)``: n tasks of alice's, half of them owned by a group she is in."""
    team = Group.objects.create(name="team")
    alice.user.groups.add(team)
    team_uuid = group_uuid(team)

    def make(count: int) -> list[Any]:
        made = [make_task(alice, sequence=i % 5) for i in range(count)]
        JobTask.objects.filter(pk__in=[task.pk for task in made[1::2]]).update(owner_uuid=team_uuid)
        return made

    return make


@pytest.mark.parametrize("size", [1, 500])
@pytest.mark.parametrize(("count", "queries"), [("exact", AUTH + 1), ("none", AUTH + 1)])
def test_list(
    alice: Any, tasks: Any, django_assert_num_queries: Any, size: int, count: str, queries: int
) -> None:
    tasks(size)
    with django_assert_num_queries(queries):
        response = alice.client.get(URL, {"limit": 1000, "count": count})
    assert response.status_code == 200
    assert len(response.json()["items"]) == size


def test_list_filtered(alice: Any, tasks: Any, django_assert_num_queries: Any) -> None:
    tasks(50)
    filters = '[["sequence","=",1],["uuid","like","%"]]'
    with django_assert_num_queries(AUTH + 1):
        response = alice.client.get(URL, {"filters": filters, "limit": 100})
    assert response.json()["items_available"] == 10


def test_a_counted_page_past_the_end_counts_on_its_own(
    alice: Any, tasks: Any, django_assert_num_queries: Any
) -> None:
    tasks(5)
    with django_assert_num_queries(AUTH + 2):
        response = alice.client.get(URL, {"offset": 10})
    assert response.json()["items"] == []
    assert response.json()["items_available"] == 5
    with django_assert_num_queries(AUTH + 1):  # an empty slice reads no rows: the count
        response = alice.client.get(URL, {"limit": 0})
    assert response.json()["items_available"] == 5
    with django_assert_num_queries(AUTH + 1):
        response = alice.client.get(URL, {"filters": '[["sequence","=",99]]'})
    assert response.json()["items_available"] == 0


def test_get(alice: Any, tasks: Any, django_assert_num_queries: Any) -> None:
    task = tasks(3)[1]
    with django_assert_num_queries(AUTH + 1):
        response = alice.client.get(f"{URL}/{task.uuid}")
    assert response.status_code == 200


def test_create(
    alice: Any, tasks: Any, django_assert_num_queries: Any, one_statement: bool
) -> None:
    tasks(3)
    with django_assert_num_queries(AUTH + (CREATE_IN_ONE if one_statement else CREATE)):
        response = alice.client.post(
            URL, {"job_task": {"sequence": 1, "parameters": {"a": 1}}}, format="json"
        )
    assert response.status_code == 200


def test_update(
    alice: Any, tasks: Any, django_assert_num_queries: Any, one_statement: bool
) -> None:
    task = tasks(3)[1]
    with django_assert_num_queries(AUTH + (UPDATE_IN_ONE if one_statement else UPDATE)):
        response = alice.client.put(
            f"{URL}/{task.uuid}", {"job_task": {"progress": 0.5}}, format="json"
        )
    assert response.status_code == 200


@pytest.mark.parametrize("limit", [1, 20])
def test_claim(
    alice: Any, tasks: Any, django_assert_num_queries: Any, limit: int, one_statement: bool
) -> None:
    tasks(100)
    # Expire leases, select the runnable tasks (locked), update them, one audit insert,
    # the claim's atomic block (the expiry joins it without a savepoint); on SQLite two
    # more statements take its write lock first. In one statement on PostgreSQL.
    claim = 4 + 2 * 1 + (2 if on_sqlite() else 0)
    if one_statement:
        claim = 1
    with django_assert_num_queries(AUTH + claim):
        response = alice.client.post(f"{URL}/claim?limit={limit}", format="json")
    assert response.status_code == 200
    assert len(response.json()["items"]) == limit
