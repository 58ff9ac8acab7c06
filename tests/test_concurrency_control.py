"""``If-Match`` optimistic concurrency (412) and the task history endpoint."""

from __future__ import annotations

import multiprocessing

import pytest
from django.db import connections
from rest_framework.test import APIClient

from job_tasks.models import JobTask

URL = "/arvados/v1/job_tasks"


def error(response) -> str:
    return " ".join(response.json()["errors"])


@pytest.mark.django_db
@pytest.mark.parametrize("form", ['"{}"', "{}", 'W/"nope", "{}"', "*"])
def test_update_with_a_current_etag_succeeds(alice, make_task, form):
    task = make_task(alice)
    etag = alice.client.get(f"{URL}/{task.uuid}")["ETag"].strip('"')
    response = alice.client.put(
        f"{URL}/{task.uuid}",
        {"job_task": {"progress": 0.5}},
        format="json",
        HTTP_IF_MATCH=form.format(etag),
    )
    assert response.status_code == 200, response.content
    assert response["ETag"] != f'"{etag}"'


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_a_stale_etag_is_412_and_changes_nothing(alice, make_task, method):
    task = make_task(alice, output="first")
    stale = alice.client.get(f"{URL}/{task.uuid}")["ETag"]
    alice.client.put(f"{URL}/{task.uuid}", {"job_task": {"output": "second"}}, format="json")

    response = getattr(alice.client, method)(
        f"{URL}/{task.uuid}", {"job_task": {"output": "third"}}, format="json", HTTP_IF_MATCH=stale
    )

    assert response.status_code == 412
    assert "Precondition failed" in error(response)
    assert "error_token" in response.json()
    assert JobTask.objects.get(pk=task.pk).output == "second"


@pytest.mark.django_db
def test_weak_etags_never_match(alice, make_task):
    task = make_task(alice)
    etag = alice.client.get(f"{URL}/{task.uuid}")["ETag"]
    response = alice.client.delete(f"{URL}/{task.uuid}", HTTP_IF_MATCH=f"W/{etag}")
    assert response.status_code == 412


@pytest.mark.django_db
def test_if_match_on_a_hidden_task_is_still_404(alice, bob, make_task):
    task = make_task(bob)
    response = alice.client.put(
        f"{URL}/{task.uuid}", {"job_task": {"progress": 1}}, format="json", HTTP_IF_MATCH='"x"'
    )
    assert response.status_code == 404


@pytest.mark.django_db
def test_etag_header_is_sent_even_when_select_leaves_etag_out(alice, make_task):
    task = make_task(alice)
    full = alice.client.get(f"{URL}/{task.uuid}")
    selected = alice.client.get(f"{URL}/{task.uuid}", {"select": '["uuid"]'})
    assert "etag" not in selected.json()
    assert selected["ETag"] == full["ETag"] == f'"{full.json()["etag"]}"'


def _increment(token: str, uuid: str, times: int, queue: multiprocessing.Queue) -> None:
    """Read-modify-write ``parameters.n`` ``times`` times, retrying on 412."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    conflicts = 0
    done = 0
    while done < times:
        current = client.get(f"{URL}/{uuid}")
        assert current.status_code == 200, current.content
        n = current.json()["parameters"]["n"]
        response = client.put(
            f"{URL}/{uuid}",
            {"job_task": {"parameters": {"n": n + 1}}},
            format="json",
            HTTP_IF_MATCH=current["ETag"],
        )
        if response.status_code == 412:
            conflicts += 1
            continue
        assert response.status_code == 200, response.content
        done += 1
    connections.close_all()
    queue.put(conflicts)


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_using_if_match_lose_no_update(alice, make_task):
    task = make_task(alice, parameters={"n": 0})
    writers, times = 4, 25
    connections.close_all()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [
        context.Process(target=_increment, args=(alice.token, task.uuid, times, queue))
        for _ in range(writers)
    ]
    for process in processes:
        process.start()
    conflicts = sum(queue.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0

    assert JobTask.objects.get(pk=task.pk).parameters == {"n": writers * times}
    assert conflicts > 0, "the writers never overlapped: the test proved nothing"


# -- history -----------------------------------------------------------------------


@pytest.mark.django_db
def test_history_lists_the_tasks_events_newest_first(alice):
    uuid = alice.client.post(URL, {"job_task": {"sequence": 1}}, format="json").json()["uuid"]
    alice.client.put(f"{URL}/{uuid}", {"job_task": {"progress": 0.5}}, format="json")

    body = alice.client.get(f"{URL}/{uuid}/history").json()

    assert body["kind"] == "arvados#logList"
    assert body["items_available"] == 2
    assert [item["event_type"] for item in body["items"]] == ["update", "create"]
    update = body["items"][0]
    assert update["kind"] == "arvados#log"
    assert update["object_uuid"] == uuid
    assert update["modified_by_user_uuid"] == alice.uuid
    assert update["properties"]["old_attributes"]["progress"] is None
    assert update["properties"]["new_attributes"]["progress"] == 0.5
    page = alice.client.get(f"{URL}/{uuid}/history", {"limit": 1, "offset": 1, "count": "none"})
    assert [item["event_type"] for item in page.json()["items"]] == ["create"]
    assert "items_available" not in page.json()


@pytest.mark.django_db
def test_history_of_a_deleted_task_stays_readable_by_its_readers_only(alice, bob):
    uuid = alice.client.post(URL).json()["uuid"]
    alice.client.delete(f"{URL}/{uuid}")

    mine = alice.client.get(f"{URL}/{uuid}/history")
    assert mine.status_code == 200
    assert [item["event_type"] for item in mine.json()["items"]] == ["delete", "create"]
    assert bob.client.get(f"{URL}/{uuid}/history").status_code == 404


@pytest.mark.django_db
def test_history_of_someone_elses_task_is_404(alice, bob, make_task):
    task = make_task(bob)
    response = alice.client.get(f"{URL}/{task.uuid}/history")
    assert response.status_code == 404
    assert alice.client.get(f"{URL}/zzzzz-ot0gb-000000000000000/history").status_code == 404
