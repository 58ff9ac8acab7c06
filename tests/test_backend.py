"""The PostgreSQL backend whose health check reads the socket before asking the server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections
from django.db.utils import load_backend

pytestmark = pytest.mark.requires_postgres


@pytest.fixture
def wrapper(db: None) -> Iterator[Any]:
    """A connection of its own (outside the test's transaction) through the backend."""
    backend = load_backend("job_tasks.backends.postgresql")
    settings = {**connections["default"].settings_dict, "CONN_HEALTH_CHECKS": True}
    connection = backend.DatabaseWrapper(settings, alias="health")
    connection.ensure_connection()
    yield connection
    connection.close()


@pytest.fixture
def pings(wrapper: Any, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Each ``SELECT 1`` the check sends, with its answer."""
    sent: list[bool] = []
    parent = type(wrapper).__mro__[1].is_usable

    def ping(self: Any) -> bool:
        sent.append(parent(self))
        return sent[-1]

    monkeypatch.setattr(type(wrapper).__mro__[1], "is_usable", ping)
    return sent


def backend_pid(wrapper: Any) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def eventually(condition: Any, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_an_idle_quiet_connection_is_usable_without_a_round_trip(wrapper, pings):
    backend_pid(wrapper)
    assert wrapper.is_usable()
    assert pings == []


def test_a_connection_the_server_ended_is_not_usable(wrapper, pings):
    pid = backend_pid(wrapper)
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    assert eventually(lambda: not wrapper.is_usable())
    assert pings[-1] is False  # the socket spoke: asked, and no answer
    wrapper.close()
    wrapper.ensure_connection()  # what Django does next
    assert backend_pid(wrapper) != pid


def test_something_to_read_means_asking_the_server(wrapper, pings):
    with wrapper.cursor() as cursor:
        cursor.execute("LISTEN job_tasks_health")
    other = type(wrapper)(dict(wrapper.settings_dict), alias="other")
    with other.cursor() as cursor:  # (autocommit: the notification leaves at once)
        cursor.execute("NOTIFY job_tasks_health")
    other.close()
    assert eventually(lambda: not _quiet(wrapper))  # it arrived, unread
    assert wrapper.is_usable()  # so the server was asked, and answered
    assert pings == [True]


def test_a_connection_inside_a_transaction_is_asked(wrapper, pings):
    wrapper.set_autocommit(False)
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")  # a transaction is open now
    assert wrapper.is_usable()
    assert pings == [True]
    wrapper.rollback()
    wrapper.set_autocommit(True)


def _quiet(wrapper: Any) -> bool:
    from job_tasks.backends.postgresql.base import _quiet as quiet

    return quiet(wrapper.connection)
