"""Scheduling (issue 5): the runnable rule, claim, lease, expiry, retry, summary."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from job_tasks import operations, scheduling
from job_tasks.errors import InvalidRequest, NotFound, PermissionRefused
from job_tasks.identities import Actor
from job_tasks.models import ApiToken, AuditEvent, JobTask
from job_tasks.representation import WIRE_ATTRIBUTES

URL = "/arvados/v1/job_tasks"
JOB = "zzzzz-8i9sb-000000000000001"
OTHER_JOB = "zzzzz-8i9sb-000000000000002"

pytestmark = pytest.mark.django_db


def actor(caller: Any) -> Actor:
    token_uuid = caller.token.split("/")[1]
    return Actor.for_user(caller.user, token_uuid=token_uuid)


def runnable() -> set[str]:
    return set(JobTask.objects.runnable().values_list("uuid", flat=True))


def claim(caller: Any, **params: Any) -> Any:
    return caller.client.post(f"{URL}/claim", params, format="json")


def claimed(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["uuid"] for item in response.json()["items"]]


def events(uuid: str) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_uuid=uuid)
        .order_by("id")
        .values_list("event_type", flat=True)
    )


def expire_now(*tasks: JobTask) -> None:
    past = timezone.now() - timedelta(seconds=1)
    JobTask.objects.filter(pk__in=[task.pk for task in tasks]).update(lease_expires_at=past)


# -- the runnable rule -----------------------------------------------------------------


def test_only_the_lowest_unfinished_level_of_a_job_is_runnable(alice, make_task):
    level0 = [make_task(alice, job_uuid=JOB, sequence=0) for _ in range(2)]
    level1 = make_task(alice, job_uuid=JOB, sequence=1)
    level2 = make_task(alice, job_uuid=JOB, sequence=2)
    assert runnable() == {task.uuid for task in level0}

    JobTask.objects.filter(pk=level0[0].pk).update(success=True)
    assert runnable() == {level0[1].uuid}, "one level-0 task is not done yet"

    JobTask.objects.filter(pk=level0[1].pk).update(success=True)
    assert runnable() == {level1.uuid}
    JobTask.objects.filter(pk=level1.pk).update(success=True)
    assert runnable() == {level2.uuid}


def test_a_running_or_failed_lower_task_blocks_the_job(alice, make_task):
    lower = make_task(alice, job_uuid=JOB, sequence=0, started_at=timezone.now())
    higher = make_task(alice, job_uuid=JOB, sequence=3)
    assert runnable() == set()
    JobTask.objects.filter(pk=lower.pk).update(success=False)
    assert runnable() == set(), "a failed lower task blocks the job until retried"
    JobTask.objects.filter(pk=lower.pk).update(success=True)
    assert runnable() == {higher.uuid}


def test_started_and_finished_tasks_are_not_runnable(alice, make_task):
    make_task(alice, started_at=timezone.now())
    make_task(alice, success=True)
    make_task(alice, success=False)
    todo = make_task(alice)
    assert runnable() == {todo.uuid}


def test_tasks_without_a_job_stand_alone_and_jobs_do_not_block_each_other(alice, make_task):
    make_task(alice, job_uuid=JOB, sequence=0)
    blocked = make_task(alice, job_uuid=JOB, sequence=1)
    alone = make_task(alice, sequence=7)
    other = make_task(alice, job_uuid=OTHER_JOB, sequence=4)
    assert blocked.uuid not in runnable()
    assert {alone.uuid, other.uuid} <= runnable()


def test_a_null_sequence_counts_as_level_zero(alice, make_task):
    null = make_task(alice, job_uuid=JOB, sequence=None)
    zero = make_task(alice, job_uuid=JOB, sequence=0)
    one = make_task(alice, job_uuid=JOB, sequence=1)
    assert runnable() == {null.uuid, zero.uuid}
    negative = make_task(alice, job_uuid=JOB, sequence=-1)
    assert runnable() == {negative.uuid}
    JobTask.objects.filter(pk__in=[negative.pk, zero.pk]).update(success=True)
    assert runnable() == {null.uuid}, "the unfinished null-sequence task holds level 1 back"
    JobTask.objects.filter(pk=null.pk).update(success=True)
    assert runnable() == {one.uuid}


def test_lower_tasks_the_caller_cannot_see_still_block(alice, bob, make_task):
    make_task(bob, job_uuid=JOB, sequence=0)
    mine = make_task(alice, job_uuid=JOB, sequence=1)
    assert claimed(claim(alice)) == []
    assert mine.uuid not in runnable()


# -- claim ---------------------------------------------------------------------------


def test_claim_takes_the_lowest_level_then_the_lowest_qsequence(alice, make_task):
    late_low = make_task(alice, job_uuid=OTHER_JOB, sequence=0, qsequence=50)
    early_high = make_task(alice, sequence=2, qsequence=1)
    early_low = make_task(alice, job_uuid=JOB, sequence=0, qsequence=10)
    no_qsequence = make_task(alice, sequence=0, qsequence=None)
    expected = [early_low.uuid, late_low.uuid, no_qsequence.uuid, early_high.uuid]
    assert claimed(claim(alice, limit=10)) == expected


def test_claim_marks_the_tasks_started_and_leased_to_the_caller(alice, make_task):
    task = make_task(alice, job_uuid=JOB, sequence=0)
    before = timezone.now()
    response = claim(alice, lease_seconds=120)
    body = response.json()
    assert response.status_code == 200
    assert body["kind"] == "arvados#jobTaskList"
    assert (body["offset"], body["limit"], body["items_available"]) == (0, 1, 1)
    item = body["items"][0]
    assert list(item) == [*WIRE_ATTRIBUTES, "lease_expires_at", "attempt"]
    assert item["attempt"] == 1
    assert item["started_at"] is not None
    assert item["modified_by_user_uuid"] == alice.uuid

    task.refresh_from_db()
    assert task.started_at >= before
    assert task.claimed_by_user_uuid == alice.uuid
    assert task.claimed_by_token_uuid == alice.token.split("/")[1]
    assert task.lease_expires_at == task.started_at + timedelta(seconds=120)
    assert task.attempts == 1
    assert events(task.uuid) == ["claim"]
    event = AuditEvent.objects.get(object_uuid=task.uuid)
    assert event.old_attributes["started_at"] is None
    assert event.new_attributes["started_at"] == item["started_at"]
    assert event.user_uuid == alice.uuid


def test_other_calls_keep_the_object_shape_of_the_spec(alice, make_task):
    task = make_task(alice)
    claim(alice)
    got = alice.client.get(f"{URL}/{task.uuid}").json()
    listed = alice.client.get(URL).json()["items"][0]
    updated = alice.client.put(f"{URL}/{task.uuid}", {"job_task": {"progress": 0.5}}, format="json")
    for body in (got, listed, updated.json()):
        assert list(body) == list(WIRE_ATTRIBUTES)


def test_an_empty_queue_is_an_empty_list_not_an_error(alice, make_task):
    make_task(alice, started_at=timezone.now())
    response = claim(alice, limit=5)
    assert claimed(response) == []
    assert response.json()["items_available"] == 0


def test_claim_takes_only_visible_tasks_and_can_be_limited_to_a_job(alice, bob, manager, make_task):
    bobs = make_task(bob)
    mine = make_task(alice, job_uuid=JOB)
    other = make_task(alice, job_uuid=OTHER_JOB)
    assert claimed(claim(alice, job_uuid=OTHER_JOB, limit=5)) == [other.uuid]
    assert claimed(claim(alice, limit=5)) == [mine.uuid]
    assert claimed(claim(manager, limit=5)) == [bobs.uuid]


def test_a_claimed_task_is_not_claimed_again(alice, bob, manager, make_task):
    make_task(alice)
    assert len(claimed(claim(alice))) == 1
    assert claimed(claim(manager)) == []


def test_limit_is_clamped_to_the_maximum(alice, make_task, settings):
    settings.JOB_TASKS = {"MAX_CLAIM_LIMIT": 2}
    for _ in range(3):
        make_task(alice)
    response = claim(alice, limit=50)
    assert len(claimed(response)) == 2
    assert response.json()["limit"] == 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": 0}, "limit must be a positive integer"),
        ({"limit": "many"}, "limit parameter must be an integer"),
        ({"limit": True}, "limit parameter must be an integer"),
        ({"lease_seconds": 0}, "lease_seconds must be an integer from 1 to 86400"),
        ({"lease_seconds": 86401}, "lease_seconds must be an integer from 1 to 86400"),
        ({"lease_seconds": 1.5}, "lease_seconds parameter must be an integer"),
        ({"job_uuid": "not-a-uuid"}, "job_uuid parameter must be an Arvados uuid"),
    ],
)
def test_bad_claim_parameters_are_422(alice, params, message):
    response = claim(alice, **params)
    assert response.status_code == 422
    assert message in response.json()["errors"][0]


def test_claim_parameters_may_come_in_the_query_string_as_strings(alice, make_task):
    make_task(alice, job_uuid=JOB)
    make_task(alice, job_uuid=JOB)
    response = alice.client.post(f"{URL}/claim?limit=2&lease_seconds=30&job_uuid={JOB}")
    assert len(claimed(response)) == 2


def test_claim_needs_a_token_and_an_active_user(anon, alice, make_task):
    assert anon.post(f"{URL}/claim").status_code == 401
    alice.user.is_active = False
    alice.user.save()
    assert claim(alice).status_code == 403


def test_claim_and_summary_are_not_taken_for_uuids(alice):
    assert alice.client.get(f"{URL}/claim").status_code == 405
    assert alice.client.post(f"{URL}/summary").status_code == 405
    assert alice.client.post(f"{URL}/claim/").status_code == 200


def test_claim_costs_the_same_queries_whatever_the_limit(
    alice, make_task, django_assert_num_queries
):
    for _ in range(12):
        make_task(alice, job_uuid=JOB, sequence=0)
    claim(alice)  # warm up: identities made on first use
    with CaptureQueriesContext(connection) as one:
        assert len(claimed(claim(alice, limit=1))) == 1
    with django_assert_num_queries(len(one.captured_queries)):
        assert len(claimed(claim(alice, limit=10))) == 10


def claim_statements(alice: Any, make_task: Any, settings: Any, **job_tasks: Any) -> list[str]:
    """The SQL of one claim of one task, with ``JOB_TASKS`` set so (statements not
    prepared, so that their text is what is captured)."""
    settings.JOB_TASKS = {"PREPARED_STATEMENTS": False, **job_tasks}
    make_task(alice)
    claim(alice)  # identities made on first use
    make_task(alice)
    with CaptureQueriesContext(connection) as queries:
        assert len(claimed(claim(alice))) == 1
    return [q["sql"] for q in queries.captured_queries]


def test_a_claim_is_serialised_on_sqlite_and_skips_locked_rows_on_postgresql(
    alice, make_task, settings
):
    captured = claim_statements(alice, make_task, settings, SINGLE_STATEMENT_WRITES=True)
    statements = [sql for sql in captured if "SAVEPOINT" not in sql]
    task_queries = [sql for sql in statements if "job_tasks_" in sql and "apitoken" not in sql]
    if connection.vendor == "sqlite":  # the write lock first, then read and write
        assert task_queries[0].startswith('UPDATE "job_tasks_counter" SET value = value')
    else:  # in one statement: the runnable tasks, locked, skipping the locked ones
        (claim_statement,) = [sql for sql in task_queries if "NOT EXISTS" in sql]
        assert re.search(r" c AS \(SELECT .* LIMIT 1 FOR UPDATE SKIP LOCKED\)", claim_statement)


@pytest.mark.parametrize("one_statement", [True, False])
def test_a_claim_on_postgresql_locks_with_skip_locked_in_either_write_path(
    alice, make_task, settings, one_statement
):
    captured = claim_statements(alice, make_task, settings, SINGLE_STATEMENT_WRITES=one_statement)
    locking = [sql for sql in captured if "FOR UPDATE SKIP LOCKED" in sql]
    if connection.vendor == "sqlite":  # (SQLite has no row locks: its write lock serialises)
        assert locking == []
    else:  # the expiry and the claim (general path), or the claim alone (one statement)
        assert len(locking) == (1 if one_statement else 2)


# -- lease: renew, release, expiry -----------------------------------------------------


def test_the_claimant_renews_its_lease(alice, make_task):
    task = make_task(alice)
    item = claim(alice, lease_seconds=10).json()["items"][0]
    before = timezone.now()
    response = alice.client.post(
        f"{URL}/{task.uuid}/renew", {"lease_seconds": 600, "attempt": 1}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["etag"] == item["etag"], "a renewal changes no attribute"
    task.refresh_from_db()
    assert task.lease_expires_at >= before + timedelta(seconds=600)
    assert events(task.uuid) == ["claim", "renew"]


def test_nobody_else_may_renew_or_release(alice, bob, manager, make_task):
    task = make_task(alice)
    claim(alice)
    _, other_token = ApiToken.issue(alice.user)
    alice.client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_token}")
    for path in ("renew", "release"):
        response = manager.client.post(f"{URL}/{task.uuid}/{path}")
        assert response.status_code == 422
        assert f"is leased to {alice.uuid}" in response.json()["errors"][0]
        response = alice.client.post(f"{URL}/{task.uuid}/{path}")
        assert response.status_code == 422
        assert "with another token" in response.json()["errors"][0]
        assert bob.client.post(f"{URL}/{task.uuid}/{path}").status_code == 404


def test_renew_is_refused_once_expired_or_for_another_attempt(alice, make_task):
    task = make_task(alice)
    claim(alice)
    response = alice.client.post(f"{URL}/{task.uuid}/renew", {"attempt": 7}, format="json")
    assert response.status_code == 422
    assert "Attempt 7" in response.json()["errors"][0]
    expire_now(task)
    response = alice.client.post(f"{URL}/{task.uuid}/renew")
    assert response.status_code == 422
    assert "expired" in response.json()["errors"][0]


def test_renew_without_a_lease_is_422(alice, make_task):
    task = make_task(alice)
    response = alice.client.post(f"{URL}/{task.uuid}/renew")
    assert response.status_code == 422
    assert "is not leased (it is todo)" in response.json()["errors"][0]
    assert alice.client.post(f"{URL}/zzzzz-ot0gb-000000000000000/renew").status_code == 404


def test_release_puts_the_task_back_in_the_queue(alice, make_task):
    task = make_task(alice)
    claim(alice)
    response = alice.client.post(f"{URL}/{task.uuid}/release", {"attempt": 1}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["started_at"] is None
    assert response.json()["lease_expires_at"] is None
    task.refresh_from_db()
    assert (task.started_at, task.claimed_by_user_uuid, task.expired_leases) == (None, None, 0)
    assert events(task.uuid) == ["claim", "release"]
    assert claim(alice).json()["items"][0]["attempt"] == 2


def test_an_expired_lease_sends_the_task_back_and_is_counted(alice, make_task):
    task = make_task(alice, job_uuid=JOB, sequence=0)
    claim(alice)
    JobTask.objects.filter(pk=task.pk).update(progress=0.4)
    expire_now(task)

    done = scheduling.expire_leases()

    assert done.requeued == [task.uuid]
    task.refresh_from_db()
    assert (task.started_at, task.lease_expires_at, task.progress) == (None, None, None)
    assert (task.attempts, task.expired_leases) == (1, 1)
    assert task.uuid in runnable()
    event = AuditEvent.objects.filter(object_uuid=task.uuid).last()
    assert event.event_type == "lease_expired"
    assert event.user_uuid is None
    assert alice.uuid in event.summary
    assert event.new_attributes["modified_by_user_uuid"] == "zzzzz-tpzed-000000000000000"


def test_claims_apply_expired_leases_lazily(alice, bob, manager, make_task):
    task = make_task(alice)
    claim(alice)
    expire_now(task)
    assert claimed(claim(manager)) == [task.uuid]
    assert events(task.uuid) == ["claim", "lease_expired", "claim"]


def test_too_many_expired_leases_fail_the_task_and_its_children_go(alice, make_task, settings):
    settings.JOB_TASKS = {"MAX_EXPIRED_LEASES": 2}
    task = make_task(alice)
    for _ in range(2):
        claim(alice)
        child = make_task(alice, created_by_job_task_uuid=task.uuid)
        expire_now(task)
        done = scheduling.expire_leases()
    assert done.failed == [task.uuid]
    task.refresh_from_db()
    assert task.success is False
    assert task.finished_at is not None
    assert task.lease_expires_at is None
    assert not JobTask.objects.filter(pk=child.pk).exists()
    assert events(child.uuid) == ["delete"]


def test_the_expire_command_applies_every_expired_lease(alice, make_task):
    tasks = [make_task(alice) for _ in range(3)]
    claim(alice, limit=3)
    expire_now(*tasks[:2])
    out = io.StringIO()
    call_command("job_tasks_expire_leases", stdout=out)
    assert out.getvalue().strip() == "requeued 2, failed 0"
    assert JobTask.objects.filter(started_at__isnull=True).count() == 2


def test_a_result_ends_the_lease_and_is_stamped_with_the_server_time(alice, make_task):
    task = make_task(alice)
    claim(alice)
    response = alice.client.put(
        f"{URL}/{task.uuid}", {"job_task": {"success": True, "output": "x"}}, format="json"
    )
    body = response.json()
    assert body["finished_at"] == body["modified_at"]
    task.refresh_from_db()
    assert task.lease_expires_at is None
    assert task.claimed_by_user_uuid == alice.uuid, "the claimant stays on record"
    expire_now(task)
    assert scheduling.expire_leases().requeued == []


def test_setting_started_at_to_null_drops_the_claim(manager, alice, make_task):
    task = make_task(alice)
    claim(alice)
    manager.client.put(f"{URL}/{task.uuid}", {"job_task": {"started_at": None}}, format="json")
    task.refresh_from_db()
    assert (task.lease_expires_at, task.claimed_by_user_uuid) == (None, None)
    assert alice.client.post(f"{URL}/{task.uuid}/renew").status_code == 422


def test_tasks_finished_without_a_lease_keep_their_finished_at(alice, make_task):
    task = make_task(alice, started_at=timezone.now())
    body = alice.client.put(
        f"{URL}/{task.uuid}", {"job_task": {"success": True}}, format="json"
    ).json()
    assert body["finished_at"] is None, "nothing automatic for tasks not claimed (spec §11.3)"


# -- the sequence barrier on every write ------------------------------------------------


def test_starting_a_blocked_task_by_hand_is_422_naming_the_blockers(alice, make_task):
    lower = make_task(alice, job_uuid=JOB, sequence=0)
    task = make_task(alice, job_uuid=JOB, sequence=1)
    response = alice.client.put(
        f"{URL}/{task.uuid}", {"job_task": {"started_at": "2030-01-01T00:00:00Z"}}, format="json"
    )
    assert response.status_code == 422
    message = response.json()["errors"][0]
    assert lower.uuid in message
    assert JOB in message
    JobTask.objects.filter(pk=lower.pk).update(success=True)
    response = alice.client.put(
        f"{URL}/{task.uuid}", {"job_task": {"started_at": "2030-01-01T00:00:00Z"}}, format="json"
    )
    assert response.status_code == 200


def test_blockers_the_caller_cannot_see_are_neither_named_nor_counted(alice, bob, make_task):
    hidden = make_task(bob, job_uuid=JOB, sequence=0)
    task = make_task(alice, job_uuid=JOB, sequence=1)

    def start() -> Any:
        started = {"job_task": {"started_at": "2030-01-01T00:00:00Z"}}
        response = alice.client.put(f"{URL}/{task.uuid}", started, format="json")
        assert response.status_code == 422
        return response.json()["errors"][0]

    message = start()
    assert message == (
        f"Task cannot start: one or more tasks of job {JOB} with a lower sequence "
        "that you cannot see have not succeeded"
    )
    assert hidden.uuid not in message
    make_task(bob, job_uuid=JOB, sequence=0)
    assert start() == message, "two hidden blockers read exactly like one"

    mine = make_task(alice, job_uuid=JOB, sequence=0, qsequence=0)
    assert start() == (
        f"Task cannot start: 1 task(s) of job {JOB} with a lower sequence that you can see "
        f"have not succeeded: {mine.uuid}; one or more tasks you cannot see also block it"
    )
    more = [make_task(alice, job_uuid=JOB, sequence=0, qsequence=i) for i in range(1, 12)]
    names = ", ".join(t.uuid for t in [mine, *more[:9]])
    assert start() == (
        f"Task cannot start: 12 task(s) of job {JOB} with a lower sequence that you can see "
        f"have not succeeded: {names} and 2 more; one or more tasks you cannot see also "
        "block it"
    ), "the count is of the visible blockers only"
    JobTask.objects.filter(job_uuid=JOB, owner_uuid=bob.uuid).update(success=True)
    assert start() == (
        f"Task cannot start: 12 task(s) of job {JOB} with a lower sequence "
        f"have not succeeded: {names} and 2 more"
    )


def test_a_create_that_starts_a_blocked_task_is_422(manager, make_task):
    make_task(manager, job_uuid=JOB, sequence=0)
    body = {"job_uuid": JOB, "sequence": 2, "started_at": "2030-01-01T00:00:00Z"}
    response = manager.client.post(URL, {"job_task": body}, format="json")
    assert response.status_code == 422
    assert "Task cannot start" in response.json()["errors"][0]
    body["sequence"] = 0
    assert manager.client.post(URL, {"job_task": body}, format="json").status_code == 200


def test_the_barrier_holds_for_the_admin_and_other_domain_callers(admin, make_task):
    make_task(admin, job_uuid=JOB, sequence=0)
    task = make_task(admin, job_uuid=JOB, sequence=1)
    with pytest.raises(InvalidRequest, match="Task cannot start"):
        operations.update_task(actor(admin), task.uuid, {"started_at": timezone.now()})


def test_changing_started_at_of_a_started_task_is_not_refused(alice, make_task):
    make_task(alice, job_uuid=JOB, sequence=0)
    task = make_task(alice, job_uuid=JOB, sequence=1, started_at=timezone.now())
    response = alice.client.put(
        f"{URL}/{task.uuid}", {"job_task": {"started_at": "2030-01-01T00:00:00Z"}}, format="json"
    )
    assert response.status_code == 200


# -- retry ---------------------------------------------------------------------------


def test_retry_sends_a_failed_task_back_as_new(alice, make_task, settings):
    settings.JOB_TASKS = {"MAX_EXPIRED_LEASES": 5}
    task = make_task(alice, job_uuid=JOB, sequence=0)
    higher = make_task(alice, job_uuid=JOB, sequence=1)
    claim(alice)
    JobTask.objects.filter(pk=task.pk).update(expired_leases=3)
    alice.client.put(
        f"{URL}/{task.uuid}", {"job_task": {"success": False, "output": "boom"}}, format="json"
    )
    assert runnable() == set()

    response = alice.client.post(f"{URL}/{task.uuid}/retry")

    assert response.status_code == 200, response.content
    body = response.json()
    assert [body[name] for name in ("success", "started_at", "finished_at", "output")] == [
        None,
        None,
        None,
        None,
    ]
    task.refresh_from_db()
    assert (task.attempts, task.expired_leases) == (1, 0)
    assert runnable() == {task.uuid}
    assert higher.uuid not in runnable()
    assert events(task.uuid)[-1] == "retry"


def test_retry_by_group_member_and_manager(alice, bob, manager, make_task):
    from django.contrib.auth.models import Group

    from job_tasks.identities import group_uuid

    group = Group.objects.create(name="lab")
    alice.user.groups.add(group)
    bob.user.groups.add(group)
    shared = make_task(alice, success=False)
    JobTask.objects.filter(pk=shared.pk).update(owner_uuid=group_uuid(group))
    assert bob.client.post(f"{URL}/{shared.uuid}/retry").status_code == 200
    JobTask.objects.filter(pk=shared.pk).update(success=False)
    assert manager.client.post(f"{URL}/{shared.uuid}/retry").status_code == 200


def test_retry_refusals(alice, bob, make_task):
    todo = make_task(alice)
    done = make_task(alice, success=True)
    failed = make_task(alice, success=False)
    for task, state in ((todo, "todo"), (done, "done")):
        response = alice.client.post(f"{URL}/{task.uuid}/retry")
        assert response.status_code == 422
        assert f"is {state}" in response.json()["errors"][0]
    assert bob.client.post(f"{URL}/{failed.uuid}/retry").status_code == 404
    alice.user.is_active = False
    alice.user.save()
    with pytest.raises(PermissionRefused):
        scheduling.retry(Actor.for_user(alice.user), failed.uuid)
    with pytest.raises(NotFound):
        scheduling.retry(actor(bob), failed.uuid)


# -- summary -------------------------------------------------------------------------


def test_summary_counts_a_job_in_one_query(alice, bob, make_task, django_assert_num_queries):
    now = timezone.now()
    make_task(alice, job_uuid=JOB, sequence=0, success=True, progress=0.2)
    make_task(alice, job_uuid=JOB, sequence=1, success=False)
    make_task(alice, job_uuid=JOB, sequence=1, started_at=now, progress=0.5)
    make_task(alice, job_uuid=JOB, sequence=2)
    make_task(alice, job_uuid=OTHER_JOB, sequence=0)
    make_task(bob, job_uuid=JOB, sequence=0)  # invisible to alice
    who = actor(alice)
    assert who.uuid  # looked up once per request (with the token), before counting
    assert not who.is_manager
    assert who.group_uuids == frozenset()

    with django_assert_num_queries(1):
        result = scheduling.summary(who, job_uuid=JOB)

    assert result == {
        "kind": "arvados#jobTaskSummary",
        "job_uuid": JOB,
        "todo": 1,
        "running": 1,
        "done": 1,
        "failed": 1,
        "runnable": 0,
        "current_sequence": 1,
        "progress": pytest.approx((1 + 0 + 0.5 + 0) / 4),
        "items_available": 4,
    }


def test_summary_over_http(alice, make_task):
    make_task(alice, job_uuid=JOB, sequence=0)
    make_task(alice, job_uuid=JOB, sequence=1)
    make_task(alice, job_uuid=OTHER_JOB, sequence=0)
    body = alice.client.get(f"{URL}/summary", {"job_uuid": JOB}).json()
    assert (body["todo"], body["runnable"], body["current_sequence"]) == (2, 1, 0)
    everything = alice.client.get(f"{URL}/summary").json()
    assert (everything["job_uuid"], everything["todo"], everything["runnable"]) == (None, 3, 2)
    empty = alice.client.get(f"{URL}/summary", {"job_uuid": "zzzzz-8i9sb-999999999999999"})
    assert empty.json()["current_sequence"] is None
    assert empty.json()["progress"] is None
    response = alice.client.get(f"{URL}/summary", {"job_uuid": "nope"})
    assert response.status_code == 422


# -- discovery -------------------------------------------------------------------------


def test_the_scheduling_methods_are_in_the_discovery_document(anon):
    from django.urls import resolve

    document = anon.get("/discovery/v1/apis/arvados/v1/rest").json()
    methods = document["resources"]["job_tasks"]["methods"]
    for name, http_method in (
        ("claim", "POST"),
        ("renew", "POST"),
        ("release", "POST"),
        ("retry", "POST"),
        ("summary", "GET"),
    ):
        method = methods[name]
        assert method["httpMethod"] == http_method
        path = "/arvados/v1/" + method["path"].replace("{uuid}", "zzzzz-ot0gb-0123456789abcde")
        assert resolve(path).url_name == f"jobtask-{name}"
    assert "JobTaskSummary" in document["schemas"]


# -- admin ---------------------------------------------------------------------------


def test_the_admin_shows_the_lease_and_retries_failed_tasks(admin, alice, make_task, client):
    from django.urls import reverse

    client.force_login(admin.user)
    failed = make_task(alice, success=False)
    done = make_task(alice, success=True)
    page = client.get(reverse("admin:job_tasks_jobtask_change", args=[failed.pk]))
    assert page.status_code == 200
    assert b"lease expires at" in page.content.lower()

    response = client.post(
        reverse("admin:job_tasks_jobtask_changelist"),
        {"action": "retry", "_selected_action": [failed.pk, done.pk]},
        follow=True,
    )

    assert b"1 task sent back to the queue" in response.content
    failed.refresh_from_db()
    done.refresh_from_db()
    assert (failed.success, done.success) == (None, True)
    assert events(failed.uuid)[-1] == "retry"


def test_the_lease_columns_are_not_attributes_of_the_api(alice, make_task):
    task = make_task(alice)
    claim(alice)
    for name in ("attempts", "lease_expires_at", "claimed_by_user_uuid"):
        response = alice.client.get(URL, {"filters": f'[["{name}","=",null]]'})
        assert response.status_code == 422, name
        response = alice.client.put(f"{URL}/{task.uuid}", {"job_task": {name: None}}, format="json")
        assert response.status_code == 422, name
