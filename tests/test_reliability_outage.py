"""Database outage on PostgreSQL: 503s while the database is unreachable, recovery
without a restart, nothing acknowledged lost.

The app server (gunicorn, the reference project's database settings: persistent
connections with health checks) reaches PostgreSQL through a TCP relay on loopback
(``tests.reliability.Proxy``). Cutting the relay drops every open database connection
and refuses new ones: for the app, the database server went down. The shared
database server itself is never stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import pytest
from django.db import connections

from job_tasks.models import JobTask
from tests.reliability import (
    ROOT,
    AppServer,
    Outcome,
    Proxy,
    call,
    database_url,
    is_envelope,
    replay,
    table,
)

URL = "/arvados/v1/job_tasks"
CLIENTS = 4
OUTAGE = 3.0


def test_the_reference_project_keeps_connections_with_health_checks():
    """What the outage test relies on, in the settings the project is deployed with
    (which the app servers of these tests use): persistent connections, each checked
    before it is reused after an error or between requests."""
    code = (
        "import json; from jobtasks_project.settings import DATABASES as D; "
        "print(json.dumps([D['default']['CONN_MAX_AGE'], D['default']['CONN_HEALTH_CHECKS']]))"
    )
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://user@db.invalid:5432/jobtasks",
        "SECRET_KEY": "x",
        "PYTHONPATH": str(ROOT),
    }
    output = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, check=True
    ).stdout
    assert json.loads(output) == [600, True]


class Client(threading.Thread):
    """Creates tasks and reads them back, recording when and what it got."""

    def __init__(self, number: int, base: str, token: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.number, self.base, self.token, self.stop = number, base, token, stop
        self.log: list[tuple[str, Any, Outcome]] = []

    def run(self) -> None:
        n, mine = 0, []
        while not self.stop.is_set():
            n += 1
            if n % 3 and mine:
                uuid = mine[n % len(mine)]
                outcome = call(self.base, "GET", f"{URL}/{uuid}", token=self.token, timeout=10)
                self.log.append(("get", uuid, outcome))
            else:
                marker = {"client": self.number, "n": n}
                body = {"job_task": {"parameters": marker}}
                outcome = call(self.base, "POST", URL, token=self.token, body=body, timeout=10)
                self.log.append(("create", marker, outcome))
                if outcome.status == 200:
                    mine.append(outcome.body["uuid"])
            if outcome.status != 200:
                time.sleep(0.02)


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_database_outage_is_503_then_recovers_by_itself_losing_nothing(alice):
    config = connections["default"].settings_dict
    proxy = Proxy(config["HOST"] or "127.0.0.1", int(config["PORT"] or 5432))
    connections.close_all()
    server = AppServer(database_url("127.0.0.1", proxy.port), workers=2)
    stop = threading.Event()
    clients = [Client(number, server.url, alice.token, stop) for number in range(CLIENTS)]
    try:
        server.start()
        workers = server.worker_pids()
        for client in clients:
            client.start()
        time.sleep(1.5)
        cut_at = time.monotonic()
        proxy.cut()
        time.sleep(OUTAGE)
        proxy.restore()
        restored_at = time.monotonic()
        time.sleep(3.0)
        stop.set()
        for client in clients:
            client.join(timeout=30)
        same_workers = server.worker_pids() == workers
    finally:
        stop.set()
        server.stop()
        proxy.close()
    connections.close_all()

    log = [entry for client in clients for entry in client.log]
    outcomes = Counter((kind, o.status) for kind, _, o in log)
    # the app itself stayed up and answered every request, and never with a 500
    assert all(o.answered for _, _, o in log), outcomes
    assert {o.status for _, _, o in log} <= {200, 503}, outcomes
    assert same_workers, "gunicorn had to replace a worker"
    # while the database was away: 503 in the error envelope, with Retry-After's advice
    during = [o for _, _, o in log if cut_at + 0.5 < o.started < restored_at - 0.5]
    assert during, "no request during the outage"
    assert {o.status for o in during} == {503}, Counter(o.status for o in during)
    assert all(is_envelope(o.body) for o in during)
    assert "database" in during[0].body["errors"][0]
    # back by itself: every request sent a second after the database returned succeeded
    after = [o for _, _, o in log if o.started > restored_at + 1.0]
    assert after, "no request after the outage"
    assert {o.status for o in after} == {200}, Counter(o.status for o in after)
    # nothing acknowledged was lost, nothing refused was stored, the log is whole
    stored = Counter(
        (row["client"], row["n"]) for row in JobTask.objects.values_list("parameters", flat=True)
    )
    for kind, marker, outcome in log:
        if kind == "create":
            found = stored[(marker["client"], marker["n"])]
            # a 503 may come from a commit whose answer the database never sent
            assert found == 1 if outcome.status == 200 else found in (0, 1), (marker, outcome)
    assert replay() == table()
    print(f"\n{dict(outcomes)}")
