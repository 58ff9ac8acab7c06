"""The scheduling methods through the real Arvados Python SDK (built from discovery).

Reuses the TLS live server and the SDK client of ``test_arvados_sdk.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

# The fixtures (imported, so pytest registers them here too).
from tests.test_arvados_sdk import _sdk_stays_local, api, tls_server  # noqa: F401

JOB = "zzzzz-8i9sb-000000000000001"


@pytest.mark.django_db(transaction=True)
def test_claim_renew_summary_retry_and_release_through_the_sdk(
    api: Any,  # noqa: F811  (the fixture)
    alice,
    make_task,
):
    first = make_task(alice, job_uuid=JOB, sequence=0)
    make_task(alice, job_uuid=JOB, sequence=1)
    tasks = api.job_tasks()

    claimed = tasks.claim(limit=2, lease_seconds=30).execute()
    assert [task["uuid"] for task in claimed["items"]] == [first.uuid], "level 1 waits"
    assert tasks.renew(uuid=first.uuid, attempt=1).execute()["lease_expires_at"]
    assert tasks.summary(job_uuid=JOB).execute()["running"] == 1

    tasks.update(uuid=first.uuid, body={"job_task": {"success": False}}).execute()
    assert tasks.retry(uuid=first.uuid).execute()["success"] is None
    again = tasks.claim(job_uuid=JOB).execute()["items"][0]
    assert (again["uuid"], again["attempt"]) == (first.uuid, 2)
    assert tasks.release(uuid=first.uuid, attempt=2).execute()["started_at"] is None
