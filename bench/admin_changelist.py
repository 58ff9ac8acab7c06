"""The admin's task pages over a large table (issue 7): milliseconds and queries per page.

    .venv/bin/python bench/admin_changelist.py postgres://postgres@127.0.0.1:5432/jobtasks_admin

Makes a scratch database next to the one named (``<name>_bench``, dropped at the end),
migrates it, inserts ``--rows`` tasks in one ``INSERT ... SELECT`` (jobs of 100 tasks
over 4 sequence levels, in every state; 10% owned by a plain operator), runs
``VACUUM ANALYZE``, then renders each page ``--repeat`` times with Django's test
``Client``, logged in as a superuser and as the plain operator (``is_staff`` with the
job task view and change permissions, no job-manager role). It prints the median and
slowest time of each page and the number of queries it made. A benchmark, not a test:
nothing fails on a slow run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scratch import ScratchDatabase

ROOT = Path(__file__).resolve().parent.parent

SEED_SQL = """
INSERT INTO job_tasks_jobtask (
    uuid, owner_uuid, created_at, modified_at, modified_by_user_uuid, updated_at,
    job_uuid, sequence, qsequence, parameters, output, progress, success,
    started_at, finished_at, attempts, expired_leases, lease_expires_at,
    claimed_by_user_uuid
)
SELECT
    'zzzzz-ot0gb-' || lpad(i::text, 15, '0'),
    CASE WHEN i %% 10 = 0 THEN %(operator)s ELSE %(admin)s END,
    ts - interval '5 minutes',
    ts,
    %(admin)s,
    ts,
    'zzzzz-8i9sb-' || lpad((i / 100)::text, 15, '0'),
    (i %% 100) / 25,
    i,
    jsonb_build_object('input', 'keep:' || md5(i::text) || '/chunk.fastq', 'chunk', i %% 100),
    CASE WHEN state = 'done' THEN 'keep:' || md5((i + 1)::text) END,
    CASE state WHEN 'done' THEN 1.0 WHEN 'running' THEN (i %% 97) / 100.0
               WHEN 'failed' THEN 0.3 END,
    CASE state WHEN 'done' THEN true WHEN 'failed' THEN false END,
    CASE WHEN state <> 'todo' THEN ts - interval '4 minutes' END,
    CASE WHEN state IN ('done', 'failed') THEN ts END,
    CASE WHEN state <> 'todo' THEN 1 ELSE 0 END,
    0,
    CASE WHEN state = 'running' THEN ts + interval '5 minutes' END,
    CASE WHEN state = 'running' THEN %(admin)s END
FROM (
    SELECT i,
           now() - (%(rows)s - i) * interval '1 second' AS ts,
           CASE
               WHEN i / 100 < %(jobs)s * 0.9 THEN 'done'          -- finished jobs
               WHEN i %% 100 < 25 THEN 'done'                      -- level 0 of the rest
               WHEN i %% 100 < 40 THEN 'running'
               WHEN i %% 100 < 42 THEN 'failed'
               ELSE 'todo'
           END AS state
    FROM generate_series(0, %(rows)s - 1) AS i
) AS seeded
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database_url", nargs="?", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)

    url = args.database_url
    scratch = ScratchDatabase.create(url)
    scratch.setup_django(allowed_hosts="testserver")

    try:
        run(args)
    finally:
        if not args.keep:
            scratch.drop()
    return 0


def run(args: argparse.Namespace) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from job_tasks.identities import user_uuid
    from job_tasks.models import JobTask

    call_command("migrate", verbosity=0)
    User = get_user_model()
    admin = User.objects.create_superuser("bench-admin", password="x")
    operator = User.objects.create_user("bench-operator", password="x", is_staff=True)
    operator.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="job_tasks", codename__in=["view_jobtask", "change_jobtask"]
        )
    )
    jobs = args.rows // 100
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            SEED_SQL,
            {
                "admin": user_uuid(admin),
                "operator": user_uuid(operator),
                "rows": args.rows,
                "jobs": jobs,
            },
        )
        cursor.execute("SELECT setval('job_tasks_qsequence_seq', %s)", [args.rows])
    connection.close()
    with connection.cursor() as cursor:  # outside a transaction: VACUUM cannot run in one
        cursor.execute("VACUUM ANALYZE job_tasks_jobtask")
    print(
        f"seeded {JobTask.objects.count():,} tasks in {jobs:,} jobs "
        f"({time.perf_counter() - started:.1f} s); PostgreSQL, "
        f"{args.repeat} renders per page after 2 warm-ups\n"
    )

    running_job = f"zzzzz-8i9sb-{jobs - 1:015d}"
    task = JobTask.objects.get(uuid=f"zzzzz-ot0gb-{args.rows - 10:015d}")  # the operator's
    changelist = reverse("admin:job_tasks_jobtask_changelist")
    pages = [
        ("changelist", changelist),
        ("  state = failed", f"{changelist}?state=failed"),
        ("  state = runnable", f"{changelist}?state=runnable"),
        ("  job + sequence", f"{changelist}?job={running_job}&sequence=1"),
        ("  search job uuid", f"{changelist}?q={running_job}"),
        ("  search uuid prefix", f"{changelist}?q=zzzzz-8i9sb-00000000000199"),
        ("  date drill-down (day)", _today(changelist)),
        ("  page 10", f"{changelist}?p=10"),
        ("per-job view", reverse("admin:job_tasks_jobtask_job", args=[running_job])),
        ("change form", reverse("admin:job_tasks_jobtask_change", args=[task.pk])),
    ]
    print(f"{'page':<26}{'as':<10}{'median ms':>10}{'max ms':>9}{'queries':>9}  status")
    for who, user in (("superuser", admin), ("operator", operator)):
        client = Client()
        client.force_login(user)
        for label, url in pages:
            for _ in range(2):
                client.get(url)
            timings = []
            for _ in range(args.repeat):
                begin = time.perf_counter()
                response = client.get(url)
                timings.append((time.perf_counter() - begin) * 1000)
            with CaptureQueriesContext(connection) as captured:
                response = client.get(url)
            print(
                f"{label:<26}{who:<10}{statistics.median(timings):>10.1f}{max(timings):>9.1f}"
                f"{len(captured):>9}  {response.status_code}"
            )


def _today(changelist: str) -> str:
    from django.utils import timezone

    today = timezone.localdate()
    return (
        f"{changelist}?created_at__year={today.year}&created_at__month={today.month}"
        f"&created_at__day={today.day}"
    )


if __name__ == "__main__":
    sys.exit(main())
