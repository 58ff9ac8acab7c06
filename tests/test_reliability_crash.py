"""Crash safety on PostgreSQL: the app server is SIGKILLed, whole, in the middle of
creates, updates and claims, then started again.

Client threads keep sending requests (each on its own connection, never retried)
while the server (gunicorn master and workers) is SIGKILLed twice and restarted.
Afterwards every request either fully happened or not at all:

- the audit log replays to exactly the table (no task row without its audit row,
  no audit row without its change, nothing half-written);
- every create answered 200 is there once, every create cut off is there at most
  once; no ``qsequence`` is used twice, and tasks created after a restart get
  numbers above every earlier one;
- tasks claimed by a claim that was cut off (or by a client that stopped) are not
  lost: their lease expires and a later claim takes them; in the end every task is
  completed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from django.db import connections

from job_tasks.models import AuditEvent, JobTask
from tests.reliability import AppServer, Outcome, call, database_url, replay, table

URL = "/arvados/v1/job_tasks"
CLIENTS = 6
LEASE = 2


class Client(threading.Thread):
    """Creates, updates its own tasks, claims (and completes half of its claims)."""

    def __init__(self, number: int, base: str, token: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.number, self.base, self.token, self.stop = number, base, token, stop
        self.log: list[tuple[str, Any, Outcome]] = []
        self.mine: list[str] = []

    def send(self, method: str, path: str, body: Any = None) -> Outcome:
        outcome = call(self.base, method, path, token=self.token, body=body, timeout=10)
        if outcome.refused:
            time.sleep(0.05)  # the server is down: no busy loop while it restarts
        return outcome

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            kind = ("create", "create", "update", "claim")[n % 4]
            if kind == "update" and not self.mine:
                kind = "create"
            if kind == "create":
                marker = {"client": self.number, "n": n}
                outcome = self.send("POST", URL, {"job_task": {"parameters": marker}})
                if outcome.status == 200:
                    self.mine.append(outcome.body["uuid"])
                self.log.append(("create", (marker, time.monotonic()), outcome))
            elif kind == "update":
                uuid = self.mine[n % len(self.mine)]
                body = {"job_task": {"output": f"{self.number}-{n}"}}
                self.log.append(("update", uuid, self.send("PUT", f"{URL}/{uuid}", body)))
            else:
                outcome = self.send("POST", f"{URL}/claim?limit=1&lease_seconds={LEASE}")
                self.log.append(("claim", None, outcome))
                items = outcome.body.get("items", []) if outcome.status == 200 else []
                if items and n % 8 == 3:  # complete half of the claims at once
                    done = {"job_task": {"success": True, "output": "done"}}
                    outcome = self.send("PUT", f"{URL}/{items[0]['uuid']}", done)
                    self.log.append(("complete", items[0]["uuid"], outcome))


def drain(base: str, token: str, timeout: float = 30) -> int:
    """Claim and complete until every task succeeded; returns how many claims it took.

    Tasks whose lease ran out ``MAX_EXPIRED_LEASES`` times were failed (not lost):
    they are retried, as an operator would.
    """
    deadline, claims = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        if not JobTask.objects.exclude(success=True).exists():
            return claims
        for uuid in JobTask.objects.filter(success=False).values_list("uuid", flat=True):
            answer = call(base, "POST", f"{URL}/{uuid}/retry", token=token)
            assert answer.status == 200, answer.body
        got = call(base, "POST", f"{URL}/claim?limit=100&lease_seconds=30", token=token)
        assert got.status == 200, got.body
        for item in got.body["items"]:
            claims += 1
            done = {"job_task": {"success": True, "output": "drained"}}
            answer = call(base, "PUT", f"{URL}/{item['uuid']}", token=token, body=done)
            assert answer.status == 200, answer.body
        if not got.body["items"]:
            time.sleep(0.25)  # waiting for leases to run out
    left = JobTask.objects.exclude(success=True)
    raise AssertionError(
        "the queue was not drained in time: "
        + repr(
            [
                (
                    task,
                    AuditEvent.objects.filter(object_uuid=task["uuid"])
                    .order_by("id")
                    .values_list("event_type", "summary"),
                )
                for task in left.values(
                    "uuid", "started_at", "success", "lease_expires_at", "claimed_by_user_uuid"
                )[:5]
            ]
        )
    )


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_sigkill_mid_request_leaves_every_request_whole(alice):
    connections.close_all()
    server = AppServer(database_url(), workers=2)
    server.start()
    stop = threading.Event()
    clients = [Client(number, server.url, alice.token, stop) for number in range(CLIENTS)]
    restarts: list[float] = []
    try:
        started = time.monotonic()
        for client in clients:
            client.start()
        for _ in range(2):
            time.sleep(1.5)
            server.kill()
            time.sleep(0.3)
            server.start()
            restarts.append(time.monotonic())
        time.sleep(1.0)
        stop.set()
        for client in clients:
            client.join(timeout=30)
        loaded = time.monotonic() - started
        drained_claims = drain(server.url, alice.token, timeout=LEASE + 30)
        drained = time.monotonic() - started - loaded
    finally:
        stop.set()
        server.stop()
    connections.close_all()

    log = [entry for client in clients for entry in client.log]
    outcomes = Counter(
        (kind, "in doubt" if o.in_doubt else "refused" if o.refused else o.status)
        for kind, _, o in log
    )
    answered = [o for _, _, o in log if o.answered]
    assert {o.status for o in answered} == {200}, outcomes
    in_doubt = sum(o.in_doubt for _, _, o in log)
    assert in_doubt >= 1, f"no request was cut off mid-flight: {outcomes}"

    # 1. nothing half-written: the audit log replays to exactly the table
    assert replay() == table()

    # 2. each create happened once or not at all
    rows = list(JobTask.objects.values("uuid", "parameters", "qsequence"))
    by_marker = Counter((row["parameters"]["client"], row["parameters"]["n"]) for row in rows)
    assert max(by_marker.values()) == 1
    doubtful = Counter()
    for _kind, (marker, _), outcome in (entry for entry in log if entry[0] == "create"):
        found = by_marker[(marker["client"], marker["n"])]
        if outcome.status == 200:
            assert found == 1, (marker, outcome)
        elif outcome.refused:
            assert found == 0, (marker, outcome)
        else:
            doubtful["done" if found else "not done"] += 1

    # 3. no qsequence reused; those drawn after a restart come after every earlier one
    qsequences = [row["qsequence"] for row in rows]
    assert len(set(qsequences)) == len(qsequences)
    created = {row["uuid"]: row["qsequence"] for row in rows}
    for restart in restarts:
        before = [
            created[o.body["uuid"]]
            for kind, (_, sent), o in (e for e in log if e[0] == "create")
            if o.status == 200 and o.started + o.seconds < restart - 0.3
        ]
        after = [
            created[o.body["uuid"]]
            for kind, (_, sent), o in (e for e in log if e[0] == "create")
            if o.status == 200 and sent > restart
        ]
        if before and after:
            assert min(after) > max(before)

    # 4. no claimed task lost: all completed, those left claimed were claimed again
    assert not JobTask.objects.exclude(success=True).exists()
    expired = set(
        AuditEvent.objects.filter(event_type="lease_expired").values_list("object_uuid", flat=True)
    )
    assert expired, "no lease ran out: the claims left behind were not exercised"
    for uuid in expired:
        events = list(
            AuditEvent.objects.filter(object_uuid=uuid)
            .order_by("id")
            .values_list("event_type", flat=True)
        )
        last_expiry = len(events) - 1 - events[::-1].index("lease_expired")
        assert "claim" in events[last_expiry:], (uuid, events)
    print(
        f"\n{dict(outcomes)}\ncreates cut off: {dict(doubtful)}; {len(rows)} tasks, "
        f"{len(expired)} with an expired lease, {drained_claims} claims to drain; "
        f"load {loaded:.1f} s, drain {drained:.1f} s"
    )
