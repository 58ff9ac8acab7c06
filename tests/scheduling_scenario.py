"""The scheduling scenario shared by the CI test and ``bench/scheduling.py`` (issue 5).

Queue tasks of several jobs and levels, drain them with ``job_tasks_worker`` processes
talking HTTP, and check from the tasks and the audit log that every task was
completed exactly once, that every claim that did not end in an expired lease or a
release led to that completion, and that no claim came before every lower-level task
of the job had finished. Needs Django set up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent  # the checkout
#: What each task runs: prints a line (its output) and reports progress.
TASK_COMMAND = ["sh", "-c", 'echo "progress: 0.5" >&2; echo "done $TASK_UUID"']


def job_uuid(index: int) -> str:
    return f"zzzzz-8i9sb-{index:015d}"


def seed(owner: Any, *, jobs: int, levels: int, per_level: int) -> int:
    """Queue ``jobs x levels x per_level`` tasks owned by ``owner`` (straight into the table).

    ``qsequence`` follows creation order (job by job, level by level), as the job
    manager of each job would have created them. Returns how many were made.
    """
    from django.utils import timezone

    from job_tasks import uuids
    from job_tasks.identities import user_uuid
    from job_tasks.models import JobTask

    owner_uuid, now = user_uuid(owner), timezone.now()
    tasks = [
        JobTask(
            uuid=uuids.new_uuid(uuids.JOB_TASK_INFIX),
            owner_uuid=owner_uuid,
            created_at=now,
            modified_at=now,
            modified_by_user_uuid=owner_uuid,
            job_uuid=job_uuid(job),
            sequence=level,
            qsequence=(job * levels + level) * per_level + n,
            parameters={"job": job, "level": level, "n": n},
        )
        for job in range(jobs)
        for level in range(levels)
        for n in range(per_level)
    ]
    JobTask.objects.bulk_create(tasks, batch_size=1000)
    return len(tasks)


def worker_argv(
    api: str,
    *,
    settings: str,
    concurrency: int = 1,
    lease_seconds: int = 5,
    poll_interval: float = 0.2,
    command: Sequence[str] = TASK_COMMAND,
) -> list[str]:
    """The command line of one draining worker process (its token goes in the environment)."""
    return [
        sys.executable,
        "-m",
        "django",
        "job_tasks_worker",
        f"--settings={settings}",
        f"--api={api}",
        f"--concurrency={concurrency}",
        f"--lease-seconds={lease_seconds}",
        f"--poll-interval={poll_interval}",
        "--grace-seconds=2",
        "--drain",
        "--",
        *command,
    ]


def start_worker(argv: list[str], token: str, log: Any = subprocess.DEVNULL) -> subprocess.Popen:
    env = {**os.environ, "ARVADOS_API_TOKEN": token, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=log)


def completed() -> int:
    from job_tasks.models import JobTask

    return JobTask.objects.filter(success=True).count()


def wait_for(predicate: Any, *, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


@dataclass
class Report:
    """What the checks found. ``problems`` is empty when every guarantee held."""

    tasks: int = 0
    succeeded: int = 0
    claims: int = 0
    expired: int = 0
    released: int = 0
    completions: int = 0
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"tasks {self.tasks}, succeeded {self.succeeded}",
            f"claims {self.claims}, leases expired {self.expired}, released {self.released}",
            f"completions {self.completions}",
            "checks: " + ("all passed" if not self.problems else f"{len(self.problems)} FAILED"),
            *(f"  {problem}" for problem in self.problems[:20]),
        ]


def check(expected: int) -> Report:
    """Check the guarantees of the queue from the tasks and their audit events."""
    from job_tasks.models import AuditEvent, JobTask

    report = Report()
    rows = list(JobTask.objects.values("uuid", "job_uuid", "sequence", "success", "finished_at"))
    report.tasks = len(rows)
    report.succeeded = sum(1 for row in rows if row["success"] is True)
    if report.tasks != expected:
        report.problems.append(f"{report.tasks} tasks in the table, {expected} queued")
    if report.succeeded != report.tasks:
        report.problems.append(f"{report.tasks - report.succeeded} tasks did not succeed")

    events = AuditEvent.objects.order_by("id").values_list(
        "event_type", "object_uuid", "old_attributes", "new_attributes"
    )
    claims: Counter[str] = Counter()
    ended: Counter[str] = Counter()  # claims ended without a result
    done: Counter[str] = Counter()
    claim_times: dict[str, list[str]] = defaultdict(list)
    for event_type, uuid, old, new in events:
        if event_type == "claim":
            claims[uuid] += 1
            claim_times[uuid].append(new["started_at"])
        elif event_type in ("lease_expired", "release"):
            ended[uuid] += 1
            report.expired += event_type == "lease_expired"
            report.released += event_type == "release"
        elif event_type == "update" and old["success"] is None and new["success"] is True:
            done[uuid] += 1
    report.claims = sum(claims.values())
    report.completions = sum(done.values())
    for row in rows:
        uuid = row["uuid"]
        if done[uuid] != 1:
            report.problems.append(f"{uuid} completed {done[uuid]} times")
        if claims[uuid] - ended[uuid] != 1:
            report.problems.append(
                f"{uuid}: {claims[uuid]} claims, {ended[uuid]} ended without a result"
            )

    # The barrier: every claim of a task came after the last finish below its level.
    finished: dict[str | None, dict[int, datetime]] = defaultdict(dict)
    for row in rows:
        levels = finished[row["job_uuid"]]
        stamp = row["finished_at"] or datetime.max.replace(tzinfo=timezone.utc)
        levels[row["sequence"]] = max(levels.get(row["sequence"], stamp), stamp)
    for row in rows:
        job_levels = finished[row["job_uuid"]].items()
        lower = [stamp for level, stamp in job_levels if level < row["sequence"]]
        if not lower:
            continue
        barrier = max(lower)
        for started in claim_times[row["uuid"]]:
            if _parse(started) < barrier:
                report.problems.append(
                    f"{row['uuid']} (level {row['sequence']}) claimed at {started}, before "
                    f"its lower levels finished ({barrier.isoformat()})"
                )
    return report


def _parse(stamp: str) -> datetime:
    """A timestamp as the API writes it (nine fractional digits, ``Z``)."""
    return datetime.strptime(stamp[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)


def drain(
    api: str,
    tokens: Sequence[str],
    *,
    settings: str,
    expected: int,
    kill: int = 0,
    kill_at: float = 0.3,
    lease_seconds: int = 5,
    timeout: float = 600,
    log: Any = subprocess.DEVNULL,
) -> tuple[float, list[int]]:
    """Run one draining worker per token; SIGKILL ``kill`` of them once ``kill_at`` of
    the tasks are done. Returns the seconds until every worker stopped, and the exit
    codes of those not killed."""
    argv = worker_argv(api, settings=settings, lease_seconds=lease_seconds)
    started = time.monotonic()
    workers = [start_worker(argv, token, log) for token in tokens]
    try:
        if kill:
            wait_for(lambda: completed() >= expected * kill_at, timeout=timeout)
            for process in workers[:kill]:
                process.send_signal(signal.SIGKILL)
        codes = []
        for process in workers[kill:]:
            remaining = max(1.0, timeout - (time.monotonic() - started))
            codes.append(process.wait(timeout=remaining))
        return time.monotonic() - started, codes
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
            process.wait()
