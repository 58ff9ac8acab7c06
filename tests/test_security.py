"""A token of one user can never read, change, count or infer another user's tasks."""

from __future__ import annotations

import json
from typing import Any

import pytest

URL = "/arvados/v1/job_tasks"
MISSING = "zzzzz-ot0gb-000000000000000"

pytestmark = pytest.mark.django_db


def without_token(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "error_token"}


@pytest.fixture
def bobs_task(bob, make_task):
    return make_task(bob, sequence=1, output="secret", parameters={"who": "bob"})


def test_a_hidden_task_answers_exactly_like_a_missing_one(alice, bobs_task):
    for method in ("get", "put", "patch", "delete"):
        call = getattr(alice.client, method)
        hidden = call(f"{URL}/{bobs_task.uuid}", {"job_task": {"progress": 1}}, format="json")
        missing = call(f"{URL}/{MISSING}", {"job_task": {"progress": 1}}, format="json")
        assert hidden.status_code == missing.status_code == 404, method
        assert without_token(hidden.json()) == without_token(missing.json())
        assert hidden.headers.keys() == missing.headers.keys()


def test_naming_a_hidden_task_as_parent_answers_like_a_missing_one(alice, bobs_task):
    def create_child(parent: str) -> Any:
        return alice.client.post(
            URL, {"job_task": {"created_by_job_task_uuid": parent}}, format="json"
        )

    hidden, missing = create_child(bobs_task.uuid), create_child(MISSING)
    assert hidden.status_code == missing.status_code == 422
    assert (
        hidden.json()["errors"][0].replace(bobs_task.uuid, MISSING) == (missing.json()["errors"][0])
    )


@pytest.mark.parametrize(
    "override",
    [
        {"HTTP_X_HTTP_METHOD_OVERRIDE": "GET"},
        {"HTTP_X_HTTP_METHOD_OVERRIDE": "DELETE"},
        {"HTTP_X_HTTP_METHOD_OVERRIDE": "PUT"},
    ],
)
def test_method_overrides_do_not_open_a_way_in(alice, bobs_task, override):
    response = alice.client.post(
        f"{URL}/{bobs_task.uuid}", {"job_task": {"output": "mine"}}, format="json", **override
    )
    assert response.status_code in (404, 405)
    bobs_task.refresh_from_db()
    assert bobs_task.output == "secret"


def test_bobs_task_cannot_be_changed_or_deleted_by_alice_in_any_body_form(alice, bobs_task):
    url = f"{URL}/{bobs_task.uuid}"
    attempts = [
        alice.client.put(url, {"job_task": {"output": "x"}}, format="json"),
        alice.client.put(url, {"output": "x"}, format="json"),
        alice.client.put(url, {"job_task": json.dumps({"output": "x"})}),
        alice.client.put(url, {"job_task[output]": "x"}),
        alice.client.delete(url),
        alice.client.post(URL, {"_method": "GET", "filters": json.dumps([["uuid", "=", url]])}),
    ]
    assert [response.status_code for response in attempts[:5]] == [404] * 5
    assert attempts[5].json()["items"] == []
    bobs_task.refresh_from_db()
    assert bobs_task.output == "secret"


def test_alice_cannot_move_her_task_to_bob_or_take_bobs(alice, bob, bobs_task, make_task):
    mine = make_task(alice)
    give = alice.client.put(
        f"{URL}/{mine.uuid}", {"job_task": {"owner_uuid": bob.uuid}}, format="json"
    )
    assert give.status_code == 403
    take = alice.client.put(
        f"{URL}/{bobs_task.uuid}", {"job_task": {"owner_uuid": alice.uuid}}, format="json"
    )
    assert take.status_code == 404


def test_counts_never_include_hidden_tasks(alice, bobs_task, make_task):
    make_task(alice)
    assert alice.client.get(URL).json()["items_available"] == 1
    by_uuid = {"filters": json.dumps([["uuid", "=", bobs_task.uuid]])}
    assert alice.client.get(URL, by_uuid).json()["items_available"] == 0


def test_hidden_blockers_hold_a_task_back_without_being_counted_or_named(alice, bob, make_task):
    """The one deliberate exception: a shared job_uuid lets bob's unfinished lower-level
    tasks hold alice's task back. Alice learns that some exist, never how many or which."""
    job = "zzzzz-8i9sb-000000000000001"
    mine = make_task(alice, job_uuid=job, sequence=1)
    started = {"job_task": {"started_at": "2030-01-01T00:00:00Z"}}

    def observe() -> tuple[Any, ...]:
        refused = alice.client.put(f"{URL}/{mine.uuid}", started, format="json")
        summary = alice.client.get(f"{URL}/summary", {"job_uuid": job})
        claimed = alice.client.post(f"{URL}/claim", {"job_uuid": job}, format="json")
        statuses = (refused.status_code, summary.status_code, claimed.status_code)
        assert statuses == (422, 200, 200)
        return refused.json()["errors"], summary.json(), claimed.json()

    hidden = [make_task(bob, job_uuid=job, sequence=0)]
    one = observe()
    hidden += [make_task(bob, job_uuid=job, sequence=0, success=False) for _ in range(3)]
    hidden += [make_task(bob, job_uuid=job, sequence=None, started_at=mine.created_at)]
    assert observe() == one, "five hidden blockers answer exactly like one"

    errors, summary, claimed = one
    assert errors == [
        f"Task cannot start: one or more tasks of job {job} with a lower sequence "
        "that you cannot see have not succeeded"
    ]
    assert (summary["items_available"], summary["todo"], summary["runnable"]) == (1, 1, 0)
    assert summary["current_sequence"] == 1, "only alice's own levels"
    assert (claimed["items"], claimed["items_available"]) == ([], 0)
    text = json.dumps(one)
    assert not [task.uuid for task in hidden if task.uuid in text]
    assert bob.uuid not in text
    mine.refresh_from_db()
    assert mine.started_at is None
