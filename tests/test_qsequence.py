"""qsequence: one global counter from 0, assigned atomically on create (spec §15.4)."""

from __future__ import annotations

import multiprocessing

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from job_tasks.models import QSEQUENCE_SEQUENCE, JobTask

URL = "/arvados/v1/job_tasks"


@pytest.mark.django_db
def test_values_increase_with_arrival_across_jobs(manager):
    values = [
        manager.client.post(
            URL, {"job_task": {"job_uuid": f"zzzzz-8i9sb-{n:015d}"}}, format="json"
        ).json()["qsequence"]
        for n in range(5)
    ]
    assert values == list(range(values[0], values[0] + 5))


@pytest.mark.django_db
def test_the_counter_starts_at_zero(alice):
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT start_value, min_value FROM pg_sequences WHERE sequencename = %s",
                [QSEQUENCE_SEQUENCE],
            )
            assert cursor.fetchone() == (0, 0)
    else:
        assert alice.client.post(URL).json()["qsequence"] == 0


@pytest.mark.django_db
def test_a_failed_create_leaves_the_stored_tasks_alone(alice):
    first = alice.client.post(URL).json()["qsequence"]
    assert alice.client.post(URL, {"job_task": {"progress": 7}}, format="json").status_code == 422
    second = alice.client.post(URL).json()["qsequence"]
    assert second > first
    assert JobTask.objects.count() == 2


@pytest.mark.django_db
def test_a_value_supplied_by_a_manager_is_kept(manager):
    response = manager.client.post(URL, {"job_task": {"qsequence": 99}}, format="json")
    assert response.json()["qsequence"] == 99


@pytest.mark.django_db(transaction=True)
def test_sqlite_counter_recovers_when_its_row_was_flushed(alice):
    from job_tasks.models import Counter

    Counter.objects.all().delete()
    first = alice.client.post(URL).json()["qsequence"]
    second = alice.client.post(URL).json()["qsequence"]
    assert second == first + 1


def _create_many(token: str, count: int, queue: multiprocessing.Queue) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    values = []
    for _ in range(count):
        response = client.post(URL)
        body = response.json()
        values.append((response.status_code, body.get("qsequence", body.get("errors"))))
    connections.close_all()
    queue.put(values)


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_processes_never_get_the_same_qsequence(alice):
    workers, per_worker = 6, 40
    connections.close_all()  # children must open their own connections
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [
        context.Process(target=_create_many, args=(alice.token, per_worker, queue))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0

    refused = [answer for result in results for answer in result if answer[0] != 200]
    assert not refused, refused
    values = [value for result in results for _, value in result]
    assert len(values) == workers * per_worker
    assert len(set(values)) == len(values), "a qsequence was handed out twice"
    for result in results:  # each worker's own creates arrive in order
        own = [value for _, value in result]
        assert own == sorted(own)
    stored = list(JobTask.objects.values_list("qsequence", flat=True))
    assert sorted(stored) == sorted(values)
