"""Writes in one statement on PostgreSQL (``job_tasks/pgwrites.py``).

The whole suite runs them (they are the default on PostgreSQL); here: the SQL
snapshot against ``audit.snapshot``, the optimistic update, the claim's hand-over to
the general path when leases ran out, and both paths side by side.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job_tasks import operations, pgwrites, scheduling
from job_tasks.audit import snapshot
from job_tasks.identities import Actor
from job_tasks.models import AuditEvent, JobTask

URL = "/arvados/v1/job_tasks"
JOB = "zzzzz-8i9sb-000000000000001"

pytestmark = pytest.mark.requires_postgres


@pytest.fixture(autouse=True)
def one_statement(settings: Any) -> None:
    settings.JOB_TASKS = {"SINGLE_STATEMENT_WRITES": True}


timestamps = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9998, 12, 31),
    timezones=st.just(dt_timezone.utc),
)
#: Text PostgreSQL can store (jsonb refuses U+0000; the API refuses lone surrogates).
characters = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
texts = st.text(characters)
keys = st.text(characters, max_size=4)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=8,
)
floats = st.floats(0, 1) | st.sampled_from([0.0, 1.0, 5e-324, 0.1, 1 - 2**-53])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    created_at=timestamps,
    modified_at=st.none() | timestamps,
    started_at=st.none() | timestamps,
    finished_at=st.none() | timestamps,
    sequence=st.none() | st.integers(-(2**31), 2**31 - 1),
    qsequence=st.none() | st.integers(-(2**63), 2**63 - 1),
    parameters=st.dictionaries(keys, json_values, max_size=3),
    output=st.none() | texts,
    progress=st.none() | floats,
    success=st.none() | st.booleans(),
)
def test_the_sql_snapshot_is_the_python_snapshot(db: None, **attributes: Any) -> None:
    with transaction.atomic():  # each example rolled back
        _compare_snapshots(attributes)
        transaction.set_rollback(True)


def _compare_snapshots(attributes: dict[str, Any]) -> None:
    task = JobTask.objects.create(
        uuid="zzzzz-ot0gb-000000000000001", owner_uuid="zzzzz-tpzed-000000000000001", **attributes
    )
    stored = AuditEvent._meta.get_field("new_attributes").get_db_prep_save(
        snapshot(JobTask.objects.get(pk=task.pk)), connection
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT %s::jsonb::text, {pgwrites.snapshot_sql('t', connection)}::text "
            f"FROM {JobTask._meta.db_table} t WHERE t.id = %s",
            [stored, task.pk],
        )
        python, sql = cursor.fetchone()
    assert sql == python  # as text: 1.0 and 1 are equal numbers, but not the same JSON


def test_an_update_of_a_task_changed_since_it_was_read_is_not_written(alice: Any, make_task: Any):
    task = make_task(alice, progress=0.1)
    actor = Actor.for_user(alice.user)
    read = operations.get_task(actor, task.uuid)
    assert read._row_version
    write = operations.plan_update(actor, read, {"progress": 0.5})
    JobTask.objects.filter(pk=task.pk).update(output="changed meanwhile")
    events = AuditEvent.objects.count()

    assert operations.save_update_unlocked(actor, write) is None
    task.refresh_from_db()
    assert (task.progress, task.output) == (0.1, "changed meanwhile")
    assert AuditEvent.objects.count() == events

    again = operations.get_task(actor, task.uuid)
    written = operations.save_update_unlocked(
        actor, operations.plan_update(actor, again, {"progress": 0.5})
    )
    assert written is not None
    task.refresh_from_db()
    assert (task.progress, task.output) == (0.5, "changed meanwhile")
    assert AuditEvent.objects.latest("id").new_attributes["output"] == "changed meanwhile"


def test_an_update_that_keeps_losing_the_race_is_written_locked(
    alice: Any, make_task: Any, monkeypatch: pytest.MonkeyPatch
):
    task = make_task(alice)
    tries = []

    def always_changed(actor: Actor, write: Any, **kwargs: Any) -> None:
        tries.append(write)
        return

    monkeypatch.setattr(operations, "save_update_unlocked", always_changed)
    response = alice.client.put(
        f"{URL}/{task.uuid}", {"job_task": {"progress": 0.5}}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["progress"] == 0.5
    assert len(tries) == 3  # then the locked read
    assert AuditEvent.objects.filter(object_uuid=task.uuid, event_type="update").count() == 1


@pytest.mark.parametrize(
    "change",
    [{"success": False}, {"uuid": "zzzzz-ot0gb-000000000000077"}],
    ids=["a failure deletes children", "a new uuid may be taken"],
)
def test_updates_with_side_effects_take_the_locked_path(admin: Any, make_task: Any, change: dict):
    task = make_task(admin)
    actor = Actor.for_user(admin.user)
    write = operations.plan_update(actor, operations.get_task(actor, task.uuid), change)
    assert not operations.updates_unlocked(write)
    response = admin.client.put(f"{URL}/{task.uuid}", {"job_task": change}, format="json")
    assert response.status_code == 200


def test_a_claim_leaves_expired_leases_to_the_general_path(alice: Any, make_task: Any):
    now = timezone.now()
    expired = make_task(
        alice,
        started_at=now - timedelta(minutes=5),
        claimed_by_user_uuid=alice.uuid,
        lease_expires_at=now - timedelta(seconds=1),
        attempts=1,
    )
    waiting = make_task(alice)
    actor = Actor.for_user(alice.user)
    one = {
        "job_uuid": None,
        "count": 5,
        "values": {"started_at": now, "lease_expires_at": now + timedelta(seconds=60)},
        "summary_suffix": "",
        "now": now,
        "event_time": now,
        "using": "default",
    }
    assert pgwrites.claim(actor, **one) == []  # nothing claimed while a lease ran out
    waiting.refresh_from_db()
    assert waiting.started_at is None

    claimed = scheduling.claim(actor, limit=5)  # expires it first, then claims both
    assert {task.uuid for task in claimed} == {expired.uuid, waiting.uuid}
    assert AuditEvent.objects.filter(event_type="lease_expired", object_uuid=expired.uuid).exists()


def _script(client: Any) -> list[str]:
    """Create two tasks of one level each, claim, finish, claim: the audit log, as JSON
    text (``1.0`` is not ``1``), without what differs from run to run."""
    varying = {"uuid", "created_at", "modified_at", "started_at", "finished_at", "qsequence"}
    for sequence, progress in ((0, None), (1, 0.0)):
        body = {"job_task": {"sequence": sequence, "progress": progress, "parameters": {"n": 1.0}}}
        assert client.post(URL, body, format="json").status_code == 200
    first = client.post(f"{URL}/claim?lease_seconds=60", format="json").json()["items"][0]
    done = {"job_task": {"progress": 1.0, "output": "out", "success": True}}
    assert client.put(f"{URL}/{first['uuid']}", done, format="json").status_code == 200
    second = client.post(f"{URL}/claim?lease_seconds=60", format="json").json()["items"][0]
    assert (second["sequence"], second["attempt"]) == (1, 1)

    def masked(attributes: Any) -> Any:
        if attributes is None:
            return None
        return {key: value for key, value in attributes.items() if key not in varying}

    return [
        json.dumps(
            [
                event.event_type,
                event.summary,
                masked(event.old_attributes),
                masked(event.new_attributes),
            ],
            sort_keys=True,
        )
        for event in AuditEvent.objects.order_by("id")
    ]


def test_both_write_paths_write_the_same_events(alice: Any, settings: Any) -> None:
    logs = {}
    for one_statement in (True, False):
        settings.JOB_TASKS = {"SINGLE_STATEMENT_WRITES": one_statement}
        logs[one_statement] = _script(alice.client)
        AuditEvent.objects.all().delete()
        JobTask.objects.all().delete()
    assert logs[True] == logs[False]
    kinds = [json.loads(line)[:2] for line in logs[True]]
    assert kinds == [
        ["create", ""],
        ["create", ""],
        ["claim", "attempt 1, leased for 60 s"],
        ["update", ""],
        ["claim", "attempt 1, leased for 60 s"],
    ]
    claimed_second = json.loads(logs[True][-1])
    assert '"progress": 0.0' in json.dumps(claimed_second[2])  # the SQL snapshot's float
