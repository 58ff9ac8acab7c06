"""Scheduling under concurrency (issue 5): worker processes drain a queue over HTTP.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobtasks .venv/bin/python bench/scheduling.py

Makes a scratch database next to the one named (``<name>_bench``, dropped at the end),
migrates it, serves the reference project with gunicorn on loopback, puts 5,000 tasks
(50 jobs x 5 sequence levels x 20) in the queue, starts 8 ``manage.py job_tasks_worker``
processes (one token each), SIGKILLs 2 of them mid-run, and waits until the queue is
drained. Then it prints claims per second and checks, from the database and its audit
log, that every task was completed exactly once, that every claim not ended by an
expired lease led to that completion, and that no task started (no claim, first or
retried) before every lower-level task of its job had finished.

``tests/test_scheduling_concurrency.py`` runs the same scenario, smaller, in CI; both
use ``tests/scheduling_scenario.py``.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scratch import ScratchDatabase

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--levels", type=int, default=5)
    parser.add_argument("--per-level", type=int, default=20)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--kill", type=int, default=2, help="workers SIGKILLed mid-run")
    parser.add_argument("--lease-seconds", type=int, default=5)
    parser.add_argument("--server-workers", type=int, default=4, help="gunicorn processes")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)

    url = os.environ.get("DATABASE_URL", "")
    scratch = ScratchDatabase.create(url)
    scratch.setup_django(allowed_hosts="127.0.0.1")
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connections

    from job_tasks.models import ApiToken
    from tests.scheduling_scenario import check, drain, seed, wait_for

    server = None
    try:
        call_command("migrate", verbosity=0)
        owner = get_user_model().objects.create_user(username="bench")
        tokens = [ApiToken.issue(owner)[1] for _ in range(args.workers)]
        expected = seed(owner, jobs=args.jobs, levels=args.levels, per_level=args.per_level)
        connections.close_all()
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "jobtasks_project.wsgi:application",
                f"--bind=127.0.0.1:{port}",
                f"--workers={args.server_workers}",
                "--log-level=warning",
            ],
            cwd=ROOT,
            env=os.environ.copy(),
        )
        api = f"http://127.0.0.1:{port}/"
        if not wait_for(lambda: _answers(port), timeout=30):
            print("the server did not start", file=sys.stderr)
            return 1
        print(
            f"{expected} tasks ({args.jobs} jobs x {args.levels} levels x {args.per_level}), "
            f"{args.workers} workers, {args.kill} SIGKILLed, lease {args.lease_seconds} s, "
            f"gunicorn x {args.server_workers}"
        )
        elapsed, codes = drain(
            api,
            tokens,
            settings="jobtasks_project.settings",
            expected=expected,
            kill=args.kill,
            lease_seconds=args.lease_seconds,
            timeout=args.timeout,
        )
        report = check(expected)
        print(
            f"drained in {elapsed:.1f} s: {report.claims / elapsed:.1f} claims/s, "
            f"{report.succeeded / elapsed:.1f} tasks/s"
        )
        if any(codes):
            report.problems.append(f"worker exit codes {codes}")
        print("\n".join(report.lines()))
        return 1 if report.problems else 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        scratch.drop()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
