"""``manage.py job_tasks_worker --api URL -- COMMAND...``: run claimed tasks (issue 5)."""

from __future__ import annotations

import argparse
import os
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from job_tasks.worker import Worker, WorkerOptions


class Command(BaseCommand):
    help = (
        "Claim runnable tasks from a job_tasks API over HTTP and run COMMAND once per task, "
        "with TASK_UUID, TASK_SEQUENCE, TASK_QSEQUENCE, TASK_ATTEMPT, TASK_PARAMETERS (JSON) "
        "and JOB_UUID in its environment. Its stdout becomes the task's output and its exit "
        "status the task's success; stderr lines 'progress: 0.5' report progress. The lease "
        "is renewed while COMMAND runs. SIGTERM ends the running commands, releases their "
        "tasks and exits 0. Uses HTTP only: no database access."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--api",
            default=os.environ.get("JOB_TASKS_API_URL"),
            help="Root URL of the API, e.g. http://127.0.0.1:8000/ (default: $JOB_TASKS_API_URL).",
        )
        parser.add_argument(
            "--token",
            default=os.environ.get("ARVADOS_API_TOKEN"),
            help="API token (default: $ARVADOS_API_TOKEN, which keeps it out of `ps`).",
        )
        parser.add_argument("--job", dest="job_uuid", help="Only claim tasks of this job.")
        parser.add_argument(
            "--concurrency", type=int, default=1, help="Tasks run at once (default 1)."
        )
        parser.add_argument(
            "--lease-seconds",
            type=int,
            default=60,
            help="Lease asked for each claim and renewal; renewed every third of it (default 60).",
        )
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=2.0,
            help="Seconds between claims while nothing is runnable (default 2, jittered).",
        )
        parser.add_argument(
            "--drain",
            action="store_true",
            help="Exit once nothing is runnable and nothing is running.",
        )
        parser.add_argument(
            "--grace-seconds",
            type=float,
            default=10.0,
            help="On stop, how long a command has after SIGTERM before SIGKILL (default 10).",
        )
        parser.add_argument(
            "command", nargs=argparse.REMAINDER, help="The command to run, after '--'."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        command = list(options["command"])
        if command[:1] == ["--"]:
            command = command[1:]
        if not command:
            raise CommandError("Give the command to run after '--'.")
        if not options["api"]:
            raise CommandError("Give --api URL (or set JOB_TASKS_API_URL).")
        if not options["token"]:
            raise CommandError("Give --token (or set ARVADOS_API_TOKEN).")
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1.")
        if options["lease_seconds"] < 1:
            raise CommandError("--lease-seconds must be at least 1.")
        worker = Worker(
            WorkerOptions(
                api=options["api"],
                token=options["token"],
                command=command,
                job_uuid=options["job_uuid"],
                concurrency=options["concurrency"],
                lease_seconds=options["lease_seconds"],
                poll_interval=options["poll_interval"],
                drain=options["drain"],
                grace_seconds=options["grace_seconds"],
            ),
            log=self.stderr,  # type: ignore[arg-type]
        )
        signal.signal(signal.SIGTERM, worker.stop)
        signal.signal(signal.SIGINT, worker.stop)
        if worker.run() != 0:
            raise CommandError(f"stopped: {worker.fatal}")
