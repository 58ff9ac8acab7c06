"""Scheduling with real processes on PostgreSQL (issue 5): many workers, one queue.

Worker processes (``manage.py job_tasks_worker``) talk HTTP to a live server. Two are
SIGKILLed: a slow one while it holds tasks, before the others start, and one of the
draining workers once 30% of the tasks are done (as ``bench/scheduling.py`` does).
Every task must still be completed exactly once, and no task may start before every
lower-level task of its job has finished. The full-size run is ``bench/scheduling.py``.
"""

from __future__ import annotations

import signal
import subprocess
from typing import Any

import pytest
from django.db import connections

from job_tasks.models import ApiToken, AuditEvent, JobTask
from tests import scheduling_scenario
from tests.conftest import new_user
from tests.scheduling_scenario import check, drain, seed, start_worker, wait_for, worker_argv

JOBS, LEVELS, PER_LEVEL = 5, 5, 8
LEASE = 2
DRAINING_WORKERS = 5


@pytest.mark.requires_postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_workers_drain_the_queue_once_each_in_sequence_order_despite_sigkills(
    live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = new_user("owner")
    issued = [ApiToken.issue(owner) for _ in range(DRAINING_WORKERS)]
    tokens = [secret for _, secret in issued]
    drain_victim_token = issued[0][0]  # drain() SIGKILLs the first worker it starts
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

    # The draining workers: the first is SIGKILLed mid-drain; keep hold of every process.
    started: list[subprocess.Popen] = []

    def start_and_keep(argv: list[str], token: str, log: Any = subprocess.DEVNULL) -> Any:
        process = start_worker(argv, token, log)
        started.append(process)
        return process

    monkeypatch.setattr(scheduling_scenario, "start_worker", start_and_keep)
    _, codes = drain(
        live_server.url,
        tokens,
        settings="tests.settings",
        expected=expected,
        kill=1,
        kill_at=0.3,
        lease_seconds=LEASE,
        timeout=120,
    )

    assert len(started) == DRAINING_WORKERS
    assert started[0].returncode == -signal.SIGKILL, "the drain victim was not killed"
    assert codes == [0] * (DRAINING_WORKERS - 1)
    drain_victim_claims = AuditEvent.objects.filter(
        event_type="claim", token_uuid=drain_victim_token.uuid
    )
    assert drain_victim_claims.exists(), "the drain victim claimed nothing before its kill"

    report = check(expected)
    assert report.problems == []
    assert report.succeeded == expected
    assert report.completions == expected
    assert report.expired >= 2, "the slow victim's leases should have expired"
    assert report.claims == expected + report.expired + report.released
