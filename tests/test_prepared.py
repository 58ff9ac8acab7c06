"""Queries compiled once (``job_tasks.prepared``): the token lookup on every request.

They must answer exactly what the ORM answers, on every database, and on PostgreSQL
survive new database sessions (a prepared statement lives in one session only).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from job_tasks.authentication import _token_query, find_token
from job_tasks.models import ApiToken, hash_secret
from job_tasks.prepared import PreparedQuery

URL = "/arvados/v1/job_tasks"


def _secret(token: str) -> str:
    return token.rsplit("/", 1)[-1]


def _fields(obj: Any) -> dict[str, Any]:
    return {field.attname: getattr(obj, field.attname) for field in obj._meta.concrete_fields}


@pytest.mark.parametrize("who", ["alice", "manager", "admin"])
def test_the_prepared_token_lookup_answers_what_the_orm_answers(request, who):
    caller = request.getfixturevalue(who)
    secret_hash = hash_secret(_secret(caller.token))
    expected = _token_query(secret_hash).get()
    found = find_token(caller.token)
    assert _fields(found) == _fields(expected)
    assert _fields(found.user) == _fields(expected.user)
    assert _fields(found.user.job_tasks_identity) == _fields(expected.user.job_tasks_identity)
    assert found._user_is_manager == expected._user_is_manager == (who == "manager")


def test_an_unknown_secret_finds_nothing(alice):
    assert find_token("v2/zzzzz-gj3su-000000000000000/nosuchsecret") is None
    assert find_token(alice.token[:-1]) is None


def test_a_query_whose_value_cannot_be_placed_runs_through_the_orm(alice):
    # The placeholder lands twice among the parameters: not preparable, still right.
    twice = PreparedQuery(
        "twice", lambda value: ApiToken.objects.filter(uuid=value, description__lt=value), 1
    )
    token = ApiToken.objects.get(user=alice.user)
    token.description = ""
    token.save()
    assert twice.first(token.uuid).pk == token.pk
    assert twice.first("zzzzz-gj3su-nosuchtoken0000") is None
    plans = connections["default"].__dict__["_job_tasks_prepared_plans"]
    assert plans[("twice", None, True)] is None


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_postgresql_prepares_the_lookup_once_per_session_and_again_after_a_reconnect(alice):
    def statements() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT name FROM pg_prepared_statements WHERE name LIKE 'job_tasks_token_%%'"
            )
            return [row[0] for row in cursor.fetchall()]

    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            assert alice.client.get(URL).status_code == 200
        assert queries.captured_queries[0]["sql"].startswith("EXECUTE job_tasks_token_")
        assert len(statements()) == 1
    connection.close()  # a new session: the statement is gone and is prepared again
    assert alice.client.get(URL).status_code == 200
    assert len(statements()) == 1


@pytest.mark.requires_postgres
def test_prepared_statements_can_be_turned_off(settings, alice):
    settings.JOB_TASKS = {"PREPARED_STATEMENTS": False}
    with CaptureQueriesContext(connection) as queries:
        assert alice.client.get(URL).status_code == 200
    assert queries.captured_queries[0]["sql"].startswith("SELECT")


def test_group_uuids_come_with_the_token_and_follow_membership_changes(alice, make_task):
    from django.contrib.auth.models import Group

    from job_tasks.identities import group_uuid

    team = Group.objects.create(name="team")
    task = make_task(alice)
    task.owner_uuid = group_uuid(team)
    task.save()
    token = find_token(alice.token)
    assert token._user_group_uuids in (None, "")
    assert alice.client.get(f"{URL}/{task.uuid}").status_code == 404
    alice.user.groups.add(team)
    assert find_token(alice.token)._user_group_uuids == group_uuid(team)
    assert alice.client.get(f"{URL}/{task.uuid}").status_code == 200  # a new plan
    assert [item["uuid"] for item in alice.client.get(URL).json()["items"]] == [task.uuid]
    alice.user.groups.remove(team)
    assert alice.client.get(f"{URL}/{task.uuid}").status_code == 404
    assert alice.client.get(URL).json()["items"] == []
