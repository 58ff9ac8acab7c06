"""``manage.py job_tasks_expire_leases``: apply expired leases now (for cron; issue 5)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from job_tasks.scheduling import expire_leases


class Command(BaseCommand):
    help = (
        "Send the tasks whose lease ran out without a result back to the queue, or mark "
        "them failed after JOB_TASKS['MAX_EXPIRED_LEASES'] expiries. Claims do this too, "
        "lazily; run this from cron so that expiries are applied (and summaries right) "
        "while nobody claims. Prints how many tasks were requeued and failed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        requeued = failed = 0
        while True:
            done = expire_leases()
            requeued += len(done.requeued)
            failed += len(done.failed)
            if not done:
                break
        self.stdout.write(f"requeued {requeued}, failed {failed}")
