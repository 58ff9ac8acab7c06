import pytest
from tests.test_arvados_sdk import tls_server, _sdk_stays_local, api  # noqa: F401
from job_tasks.models import JobTask
J = "zzzzz-8i9sb-000000000000001"

@pytest.mark.django_db(transaction=True)
def test_sdk_scheduling(api, alice, make_task):
    a = make_task(alice, job_uuid=J, sequence=0); b = make_task(alice, job_uuid=J, sequence=1)
    got = api.job_tasks().claim(limit=2, lease_seconds=30).execute()
    assert [t["uuid"] for t in got["items"]] == [a.uuid]
    assert api.job_tasks().renew(uuid=a.uuid, attempt=1).execute()["uuid"] == a.uuid
    assert api.job_tasks().summary(job_uuid=J).execute()["running"] == 1
    api.job_tasks().update(uuid=a.uuid, body={"job_task": {"success": False}}).execute()
    assert api.job_tasks().retry(uuid=a.uuid).execute()["success"] is None
    got = api.job_tasks().claim(job_uuid=J).execute()
    assert api.job_tasks().release(uuid=a.uuid).execute()["started_at"] is None
