"""The reference worker (``manage.py job_tasks_worker``): HTTP only, one command per task."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from job_tasks.models import ApiToken, AuditEvent, JobTask
from job_tasks.worker import Client, Worker, WorkerOptions, _Progress
from tests.scheduling_scenario import wait_for

JOB = "zzzzz-8i9sb-000000000000001"
ROOT = Path(__file__).resolve().parent.parent
#: Prints what the worker put in its environment; fails for tasks asking to.
REPORTER = [
    "sh",
    "-c",
    'echo "progress: 0.5" >&2; echo "not progress" >&2; '
    'printf "%s|%s|%s|%s|%s|%s" "$TASK_UUID" "$TASK_SEQUENCE" "$TASK_QSEQUENCE" '
    '"$JOB_UUID" "$TASK_ATTEMPT" "$TASK_PARAMETERS"; '
    'case "$TASK_PARAMETERS" in *fail*) exit 3;; esac',
]


def options(url: str, token: str, **kwargs) -> WorkerOptions:
    kwargs.setdefault("command", REPORTER)
    return WorkerOptions(
        api=url, token=token, poll_interval=0.05, lease_seconds=30, drain=True, **kwargs
    )


def test_the_client_finds_the_api_from_its_root_or_a_longer_url():
    for url in (
        "http://h:1",
        "http://h:1/",
        "http://h:1/arvados/v1",
        "http://h:1/arvados/v1/job_tasks/",
    ):
        assert Client(url, "t").base == "http://h:1/arvados/v1/job_tasks"


def test_progress_lines_are_taken_and_other_stderr_lines_pass_through():
    progress, logged = _Progress(), []
    feed = progress.feed(logged.append)
    for line in (b"progress: 0.25\n", b"Progress=0.5\n", b"progress: 7\n", b"hello\n"):
        feed(line)
    assert progress.value == 0.5
    assert logged == ["stderr: progress: 7", "stderr: hello"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--api", "http://x", "--token", "t"], "Give the command"),
        (["--token", "t", "--", "true"], "Give --api"),
        (["--api", "http://x", "--", "true"], "Give --token"),
        (["--api", "http://x", "--token", "t", "--concurrency", "0", "--", "true"], "at least"),
    ],
)
def test_the_command_line_is_checked(args, message, monkeypatch):
    monkeypatch.delenv("ARVADOS_API_TOKEN", raising=False)
    monkeypatch.delenv("JOB_TASKS_API_URL", raising=False)
    with pytest.raises(CommandError, match=message):
        call_command("job_tasks_worker", *args)


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_each_task_once_in_sequence_order_and_records_the_results(
    live_server, alice, make_task
):
    first = make_task(alice, job_uuid=JOB, sequence=0, parameters={"n": 1})
    failing = make_task(alice, sequence=0, parameters={"fail": True})
    second = make_task(alice, job_uuid=JOB, sequence=1)
    worker = Worker(options(live_server.url, alice.token), log=io.StringIO())

    assert worker.run() == 0

    assert (worker.stats.claimed, worker.stats.succeeded, worker.stats.failed) == (3, 2, 1)
    for task in (first, failing, second):
        task.refresh_from_db()
    uuid, sequence, qsequence, job, attempt, parameters = first.output.split("|")
    assert (uuid, sequence, qsequence, job, attempt) == (
        first.uuid,
        "0",
        str(first.qsequence),
        JOB,
        "1",
    )
    assert json.loads(parameters) == {"n": 1}
    assert (first.success, first.progress) == (True, 1.0)
    assert second.started_at >= first.finished_at, "level 1 started after level 0 finished"
    assert (failing.success, failing.progress) == (False, 0.5)
    assert failing.output.startswith(failing.uuid)
    assert all(task.lease_expires_at is None for task in (first, failing, second))
    assert "stderr: not progress" in worker._log_stream.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_lost_its_lease_drops_the_result(live_server, alice, make_task):
    task = make_task(alice)
    worker = Worker(
        options(live_server.url, alice.token, command=["sleep", "30"]), log=io.StringIO()
    )
    claimed = worker.client.claim(None, 30)
    claimed["attempt"] = 99  # as if the task had been claimed again since
    worker.options.lease_seconds = 1  # renew at once

    worker._run(claimed, time.monotonic())

    assert worker.stats.lost == 1
    task.refresh_from_db()
    assert task.success is None
    assert "lease lost" in worker._log_stream.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_late_result_is_recorded_only_after_renewing_the_lease(live_server, alice, make_task):
    task = make_task(alice)
    worker = Worker(options(live_server.url, alice.token), log=io.StringIO())
    claimed = worker.client.claim(None, 30)
    long_ago = time.monotonic() - 60

    worker._report(task.uuid, claimed["attempt"] + 1, 0, b"stale", None, long_ago)
    task.refresh_from_db()
    assert (task.success, worker.stats.lost) == (None, 1), "another attempt: dropped"

    worker._report(task.uuid, claimed["attempt"], 0, b"fresh", None, long_ago)
    task.refresh_from_db()
    assert (task.success, task.output, worker.stats.succeeded) == (True, "fresh", 1)
    assert AuditEvent.objects.filter(object_uuid=task.uuid, event_type="renew").count() == 1


@pytest.mark.django_db(transaction=True)
def test_sigterm_releases_the_running_task_and_exits_zero(live_server, alice, make_task):
    task = make_task(alice)
    token_uuid = alice.token.split("/")[1]
    connections.close_all()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django",
            "job_tasks_worker",
            "--settings=tests.settings",
            f"--api={live_server.url}",
            "--poll-interval=0.1",
            "--grace-seconds=1",
            "--",
            "sleep",
            "60",
        ],
        cwd=ROOT,
        env={**os.environ, "ARVADOS_API_TOKEN": alice.token, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        held = JobTask.objects.filter(pk=task.pk, claimed_by_token_uuid=token_uuid)
        assert wait_for(held.exists, timeout=30), "the worker claimed nothing"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert "released" in process.stderr.read()
    task.refresh_from_db()
    assert (task.started_at, task.lease_expires_at, task.success) == (None, None, None)
    assert AuditEvent.objects.filter(object_uuid=task.uuid).last().event_type == "release"


@pytest.mark.django_db(transaction=True)
def test_a_refused_token_stops_the_worker_with_an_error(live_server, alice):
    ApiToken.objects.update(revoked_at="2020-01-01T00:00:00Z")
    worker = Worker(options(live_server.url, alice.token), log=io.StringIO())
    assert worker.run() == 1
    assert "HTTP 401" in str(worker.fatal)


@pytest.mark.django_db(transaction=True)
def test_a_command_that_cannot_run_gives_the_task_back_and_stops_the_worker(
    live_server, alice, make_task
):
    task = make_task(alice)
    worker = Worker(
        options(live_server.url, alice.token, command=["/nonexistent/command"]),
        log=io.StringIO(),
    )
    assert worker.run() == 1
    assert isinstance(worker.fatal, OSError)
    task.refresh_from_db()
    assert (task.started_at, task.attempts) == (None, 1)
