"""The audit log is complete: replaying it reproduces the table (hypothesis).

Random sequences of operations through the API (create, update, fail, succeed, delete,
claim, release, retry), the system (lease expiry) and the admin's restore are applied;
then the log, read in ``id`` order, must rebuild every row exactly: each event's
``old_attributes`` is the state the previous event left (no change went unrecorded),
and the last ``new_attributes`` of each live task is its row (a delete leaves none).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job_tasks import operations, scheduling
from job_tasks.errors import JobTasksError
from job_tasks.identities import Actor
from job_tasks.models import JobTask
from tests.reliability import replay, table

URL = "/arvados/v1/job_tasks"
JOBS = ["zzzzz-8i9sb-000000000000001", "zzzzz-8i9sb-000000000000002", None]

operation = st.one_of(
    st.tuples(
        st.just("create"),
        st.sampled_from(JOBS),
        st.integers(0, 2),
        st.one_of(st.none(), st.integers(0, 4)),  # parent: index of a known task
    ),
    st.tuples(
        st.just("update"),
        st.integers(0, 4),
        st.fixed_dictionaries(
            {},
            optional={
                "progress": st.one_of(st.none(), st.floats(0, 1)),
                "output": st.one_of(st.none(), st.text(max_size=8)),
                "parameters": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                "sequence": st.integers(0, 3),
            },
        ),
    ),
    *(
        st.tuples(st.just(kind), st.integers(0, 4))
        for kind in ("fail", "succeed", "delete", "release", "retry", "restore")
    ),
    st.tuples(st.just("claim"), st.integers(1, 3)),
    st.tuples(st.just("expire"), st.just(0)),
)


def apply(manager: Any, known: list[str], op: tuple[Any, ...]) -> None:
    """Apply one operation; refusals (4xx, domain errors) are part of the game."""
    client, kind = manager.client, op[0]
    target = known[op[1] % len(known)] if known and kind not in ("create", "claim") else None
    if kind == "create":
        attrs: dict[str, Any] = {"sequence": op[2], "parameters": {"i": len(known)}}
        if op[1] is not None:
            attrs["job_uuid"] = op[1]
        if op[3] is not None and known:
            attrs["created_by_job_task_uuid"] = known[op[3] % len(known)]
        response = client.post(URL, {"job_task": attrs}, format="json")
        if response.status_code == 200:
            known.append(response.json()["uuid"])
    elif target is None and kind not in ("claim", "expire"):
        return
    elif kind == "update":
        client.put(f"{URL}/{target}", {"job_task": op[2]}, format="json")
    elif kind == "fail":
        client.put(f"{URL}/{target}", {"job_task": {"success": False}}, format="json")
    elif kind == "succeed":
        done = {"success": True, "finished_at": timezone.now().isoformat()}
        client.put(f"{URL}/{target}", {"job_task": done}, format="json")
    elif kind == "delete":
        client.delete(f"{URL}/{target}")
    elif kind == "release":  # one of the tasks the manager holds, when there are
        held = list(JobTask.objects.leased().order_by("id").values_list("uuid", flat=True))
        client.post(f"{URL}/{held[op[1] % len(held)] if held else target}/release")
    elif kind == "retry":
        client.post(f"{URL}/{target}/retry")
    elif kind == "claim":
        client.post(f"{URL}/claim?limit={op[1]}&lease_seconds=60")
    elif kind == "expire":
        scheduling.expire_leases(now=timezone.now() + timedelta(seconds=120))
    elif kind == "restore":  # one of the deleted tasks, when there are
        gone = [uuid for uuid in known if not JobTask.objects.filter(uuid=uuid).exists()]
        with contextlib.suppress(JobTasksError):
            operations.restore_task(
                Actor.for_user(manager.user), gone[op[1] % len(gone)] if gone else target
            )


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, min_size=4, max_size=30))
def test_replaying_the_audit_log_reproduces_the_table(manager, ops):
    with transaction.atomic():  # each example starts from an empty table
        known: list[str] = []
        for op in [("create", JOBS[0], 0, None), ("create", JOBS[0], 1, 0), *ops]:
            apply(manager, known, op)
        assert replay() == table()
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_the_replay_check_can_fail(manager, make_task):
    """A change made behind the domain layer's back (no event) is caught."""
    uuid = manager.client.post(URL, {"job_task": {"sequence": 1}}, format="json").json()["uuid"]
    assert replay() == table()
    JobTask.objects.filter(uuid=uuid).update(output="unaudited")
    assert replay() != table()
