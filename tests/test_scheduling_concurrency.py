"""Scheduling with real processes on PostgreSQL (issue 5): many workers, one queue.

Worker processes (``manage.py job_tasks_worker``) talk HTTP to a live server; one of
them is SIGKILLed while it holds tasks. Every task must still be completed exactly
once, and no task may start before every lower-level task of its job has finished.
The full-size run is ``bench/scheduling.py``.
"""

from __future__ import annotations

import signal

import pytest
from django.db import connections

from job_tasks.models import ApiToken, JobTask
from tests.conftest import new_user
from tests.scheduling_scenario import check, drain, seed, start_worker, wait_for, worker_argv

JOBS, LEVELS, PER_LEVEL = 5, 5, 8
LEASE = 2


@pytest.mark.requires_postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_workers_drain_the_queue_once_each_in_sequence_order_despite_a_sigkill(live_server):
    owner = new_user("owner")
    tokens = [ApiToken.issue(owner)[1] for _ in range(4)]
    victim_token_object, victim_token = ApiToken.issue(owner)
    expected = seed(owner, jobs=JOBS, levels=LEVELS, per_level=PER_LEVEL)
    connections.close_all()

    # A worker whose commands take long: SIGKILLed while it holds two claimed tasks.
    slow = worker_argv(
        live_server.url,
        settings="tests.settings",
        concurrency=2,
        lease_seconds=LEASE,
        command=["sleep", "5"],
    )
    victim = start_worker(slow, victim_token)
    try:
        held = JobTask.objects.filter(
            claimed_by_token_uuid=victim_token_object.uuid, lease_expires_at__isnull=False
        )
        assert wait_for(lambda: held.count() == 2, timeout=30), "the victim claimed nothing"
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=10) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
    connections.close_all()

    _, codes = drain(
        live_server.url,
        tokens,
        settings="tests.settings",
        expected=expected,
        lease_seconds=LEASE,
        timeout=120,
    )

    report = check(expected)
    assert codes == [0] * len(tokens)
    assert report.problems == []
    assert report.succeeded == expected
    assert report.completions == expected
    assert report.expired >= 2, "the victim's leases should have expired"
    assert report.claims == expected + report.expired + report.released
