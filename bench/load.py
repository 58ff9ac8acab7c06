"""Mixed load (issue 9): 32 clients against gunicorn and PostgreSQL, then an audit.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobtasks .venv/bin/python bench/load.py

Makes a scratch database next to the one named (``<name>_load``, dropped at the end),
migrates it, queues ``--tasks`` tasks, serves the reference project with gunicorn
(``--server-workers`` processes) on loopback, and runs ``--clients`` concurrent clients
(threads spread over ``--processes`` processes) for ``--seconds`` seconds, each
request on its own connection: 70% reads (half ``list`` with a filter and a page of
20, half ``get``), 20% ``update``, 5% ``create``, 5% ``claim``. Prints throughput,
p50/p99 latency per kind, the status codes, and checks against the audit log that
every write acknowledged with 200 is recorded (none lost). Exit status 1 on any 5xx,
unanswered request or lost write.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scratch import ScratchDatabase

from tests.reliability import AppServer, call

URL = "/arvados/v1/job_tasks"
JOBS = [f"zzzzz-8i9sb-{n:015d}" for n in range(10)]


def client_process(
    number: int, threads: int, base: str, token: str, uuids: list[str], seconds: float, out: Any
) -> None:
    """Run ``threads`` clients until the deadline; put their records on ``out``."""
    deadline = time.monotonic() + seconds
    records: list[tuple] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        rng = random.Random(number * 1000 + index)
        mine: list[tuple] = []
        n = 0
        while time.monotonic() < deadline:
            n += 1
            roll = rng.random()
            detail: Any = None
            if roll < 0.35:
                kind = "list"
                job = rng.choice(JOBS)
                filters = f'[["job_uuid","=","{job}"]]'
                outcome = call(base, "GET", f"{URL}?filters={filters}&limit=20", token=token)
            elif roll < 0.70:
                kind = "get"
                outcome = call(base, "GET", f"{URL}/{rng.choice(uuids)}", token=token)
            elif roll < 0.90:
                kind = "update"
                uuid, value = rng.choice(uuids), f"{number}-{index}-{n}"
                body = {"job_task": {"output": value, "progress": rng.random()}}
                outcome = call(base, "PUT", f"{URL}/{uuid}", token=token, body=body)
                detail = (uuid, value)
            elif roll < 0.95:
                kind = "create"
                marker = f"{number}-{index}-{n}"
                body = {"job_task": {"sequence": 1, "parameters": {"m": marker}}}
                outcome = call(base, "POST", URL, token=token, body=body)
                if outcome.status == 200:
                    detail = (outcome.body["uuid"], marker)
            else:
                kind = "claim"
                outcome = call(base, "POST", f"{URL}/claim?limit=1&lease_seconds=600", token=token)
                if outcome.status == 200:
                    detail = [(item["uuid"], item["attempt"]) for item in outcome.body["items"]]
            mine.append((kind, outcome.status, outcome.seconds, detail))
        with lock:
            records.extend(mine)

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put(records)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def lost_writes(records: list[tuple]) -> list[str]:
    """Every write answered 200 must be in the audit log: return those that are not."""
    from job_tasks.models import AuditEvent, JobTask

    updates: dict[str, set[str]] = defaultdict(set)
    claims: set[tuple[str, str]] = set()
    creates: dict[str, str] = {}
    for event_type, uuid, new, summary in AuditEvent.objects.values_list(
        "event_type", "object_uuid", "new_attributes", "summary"
    ).iterator():
        if event_type == "update":
            updates[uuid].add(new["output"])
        elif event_type == "claim":
            claims.add((uuid, summary.split(",")[0]))  # "attempt N, leased for ..."
        elif event_type == "create":
            creates[uuid] = new["parameters"].get("m")
    rows = dict(JobTask.objects.values_list("uuid", "parameters"))
    lost = []
    for kind, status, _, detail in records:
        if status != 200 or detail is None:
            continue
        if kind == "update" and detail[1] not in updates[detail[0]]:
            lost.append(f"update {detail}")
        elif kind == "create" and (
            creates.get(detail[0]) != detail[1] or rows.get(detail[0], {}).get("m") != detail[1]
        ):
            lost.append(f"create {detail}")
        elif kind == "claim":
            lost.extend(
                f"claim {uuid} attempt {attempt}"
                for uuid, attempt in detail
                if (uuid, f"attempt {attempt}") not in claims
            )
    return lost


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="length of the run")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--server-workers", type=int, default=4, help="gunicorn processes")
    parser.add_argument("--tasks", type=int, default=5000, help="tasks queued first")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 600:
        parser.error("--seconds must be between 1 and 600")

    scratch = ScratchDatabase.create(os.environ.get("DATABASE_URL", ""), suffix="_load")
    scratch.setup_django(allowed_hosts="127.0.0.1")
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone

    from job_tasks import uuids as uuid_module
    from job_tasks.identities import user_uuid
    from job_tasks.models import ApiToken, JobTask

    server = None
    try:
        call_command("migrate", verbosity=0)
        owner = get_user_model().objects.create_user(username="load")
        _, token = ApiToken.issue(owner)
        owner_uuid, now = user_uuid(owner), timezone.now()
        tasks = [
            JobTask(
                uuid=uuid_module.new_uuid(uuid_module.JOB_TASK_INFIX),
                owner_uuid=owner_uuid,
                created_at=now,
                modified_at=now,
                modified_by_user_uuid=owner_uuid,
                job_uuid=JOBS[n % len(JOBS)],
                sequence=0,
                qsequence=n,
                parameters={"n": n},
            )
            for n in range(args.tasks)
        ]
        JobTask.objects.bulk_create(tasks, batch_size=1000)
        with connections["default"].cursor() as cursor:  # creates continue the numbering
            cursor.execute("SELECT setval('job_tasks_qsequence_seq', %s)", [args.tasks])
        uuids = [task.uuid for task in tasks]
        connections.close_all()

        server = AppServer(
            scratch.url, workers=args.server_workers, settings="jobtasks_project.settings"
        )
        server.start()
        print(
            f"{args.clients} clients ({args.processes} processes) for {args.seconds:.0f} s, "
            f"gunicorn x {args.server_workers}, PostgreSQL, {args.tasks} tasks queued first"
        )
        context = multiprocessing.get_context("fork")
        out = context.Queue()
        per = [
            args.clients // args.processes + (i < args.clients % args.processes)
            for i in range(args.processes)
        ]
        processes = [
            context.Process(
                target=client_process, args=(i, per[i], server.url, token, uuids, args.seconds, out)
            )
            for i in range(args.processes)
            if per[i]
        ]
        started = time.monotonic()
        for process in processes:
            process.start()
        records = [record for _ in processes for record in out.get(timeout=args.seconds + 120)]
        elapsed = time.monotonic() - started
        for process in processes:
            process.join(timeout=30)
    finally:
        if server is not None:
            server.stop()

    statuses = Counter(status for _, status, _, _ in records)
    print(f"{len(records)} requests in {elapsed:.1f} s: {len(records) / elapsed:.0f} requests/s")
    print(f"{'kind':8} {'count':>7} {'share':>6} {'p50 ms':>8} {'p99 ms':>8}")
    by_kind: dict[str, list[float]] = defaultdict(list)
    for kind, _, seconds, _ in records:
        by_kind[kind].append(seconds)
    for kind in ("list", "get", "update", "create", "claim"):
        times = by_kind[kind]
        print(
            f"{kind:8} {len(times):7} {len(times) / len(records):6.1%} "
            f"{percentile(times, 0.5) * 1000:8.1f} {percentile(times, 0.99) * 1000:8.1f}"
        )
    everything = [seconds for _, _, seconds, _ in records]
    print(
        f"{'all':8} {len(records):7} {'':6} {percentile(everything, 0.5) * 1000:8.1f} "
        f"{percentile(everything, 0.99) * 1000:8.1f}"
    )
    print(f"status codes: {dict(sorted(statuses.items(), key=lambda item: str(item[0])))}")
    problems = []
    errors = sum(count for status, count in statuses.items() if status is None or status >= 500)
    if errors:
        problems.append(f"{errors} requests answered 5xx or not at all")
    lost = lost_writes(records)
    writes = sum(
        1 for kind, status, _, _ in records if kind != "list" and kind != "get" and status == 200
    )
    print(f"writes acknowledged: {writes}; missing from the audit log: {len(lost)}")
    if lost:
        problems.append(f"lost writes: {lost[:10]}")
    scratch.drop()
    print("\n".join(problems) or "no 5xx, no lost write")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
