"""The permission matrix through HTTP: actor × method × job-manager attribute (spec §10, §15.2,
§15.3). Every case asserts the status and the body."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.test import APIClient

from job_tasks import rules
from job_tasks.identities import group_uuid
from job_tasks.models import ApiToken, JobTask
from job_tasks.representation import render_task
from job_tasks.signals import manager_group
from tests.conftest import new_user

URL = "/arvados/v1/job_tasks"
JOB = "zzzzz-8i9sb-aaaaaaaaaaaaaaa"
OTHER_JOB = "zzzzz-8i9sb-bbbbbbbbbbbbbbb"
ACTORS = ["anonymous", "owner", "group_member", "other", "manager", "superuser", "inactive"]
ATTRIBUTES = ["qsequence", "job_uuid", "created_by_job_task_uuid"]

pytestmark = pytest.mark.django_db


@dataclass
class World:
    clients: dict[str, APIClient]
    target: dict[str, JobTask]  # the task each actor acts on
    parent: dict[str, JobTask]  # a running task each actor may read (for references)
    uuid: dict[str, str]


def _client(token: str | None) -> APIClient:
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"OAuth2 {token}")
    return client


@pytest.fixture
def world(make_task: Any) -> World:
    users = {
        "owner": new_user("owner"),
        "group_member": new_user("member"),
        "other": new_user("other"),
        "manager": new_user("dispatcher"),
        "superuser": new_user("root", is_superuser=True),
        "inactive": new_user("gone"),
    }
    users["manager"].groups.add(manager_group())  # the role through the group
    lab = Group.objects.create(name="lab")
    users["group_member"].groups.add(lab)
    tokens = {name: ApiToken.issue(user)[1] for name, user in users.items()}
    users["inactive"].is_active = False
    users["inactive"].save()
    clients = {name: _client(token) for name, token in tokens.items()}
    clients["anonymous"] = _client(None)

    from job_tasks.identities import user_uuid

    class Owner:
        def __init__(self, uuid: str) -> None:
            self.uuid = uuid

    owner = Owner(user_uuid(users["owner"]))
    group = Owner(group_uuid(lab))
    started = {"started_at": timezone.now(), "job_uuid": JOB, "sequence": 0}
    owner_task = make_task(owner, job_uuid=JOB, sequence=1)
    group_task = make_task(group, job_uuid=JOB, sequence=1)
    inactive_task = make_task(Owner(user_uuid(users["inactive"])), job_uuid=JOB)
    owner_parent = make_task(owner, **started)
    group_parent = make_task(group, **started)
    target = {
        "anonymous": owner_task,
        "owner": owner_task,
        "group_member": group_task,
        "other": owner_task,
        "manager": owner_task,
        "superuser": owner_task,
        "inactive": inactive_task,
    }
    parent = dict.fromkeys(target, owner_parent)
    parent["group_member"] = group_parent
    uuids = {name: user_uuid(user) for name, user in users.items()}
    return World(clients=clients, target=target, parent=parent, uuid=uuids)


def new_value(world: World, actor: str, attribute: str) -> Any:
    return {
        "qsequence": 424242,
        "job_uuid": OTHER_JOB,
        "created_by_job_task_uuid": world.parent[actor].uuid,
    }[attribute]


def errors(response: Any) -> str:
    return " ".join(response.json()["errors"])


# -- update -------------------------------------------------------------------------

UPDATE_EXPECTED = {
    "anonymous": (401, "Not logged in"),
    "owner": (403, "Only a job manager may set or change {attribute}"),
    "group_member": (403, "Only a job manager may set or change {attribute}"),
    "other": (404, "Path not found"),
    "manager": (200, None),
    "superuser": (200, None),
    "inactive": (403, "inactive"),
}


@pytest.mark.parametrize("method", ["put", "patch"])
@pytest.mark.parametrize("attribute", ATTRIBUTES)
@pytest.mark.parametrize("actor", ACTORS)
def test_update_changing_manager_attribute(world, actor, attribute, method):
    task = world.target[actor]
    value = new_value(world, actor, attribute)

    response = getattr(world.clients[actor], method)(
        f"{URL}/{task.uuid}", {"job_task": {attribute: value}}, format="json"
    )

    status, message = UPDATE_EXPECTED[actor]
    assert response.status_code == status, response.content
    stored = JobTask.objects.get(pk=task.pk)
    if status == 200:
        assert response.json()[attribute] == value
        assert getattr(stored, attribute) == value
    else:
        assert message.format(attribute=attribute) in errors(response)
        assert getattr(stored, attribute) == getattr(task, attribute)


@pytest.mark.parametrize("attribute", ATTRIBUTES)
@pytest.mark.parametrize("actor", ["owner", "group_member"])
def test_update_sending_the_current_value_is_allowed(world, actor, attribute):
    task = world.target[actor]
    current = getattr(task, attribute)

    response = world.clients[actor].put(
        f"{URL}/{task.uuid}", {"job_task": {attribute: current, "progress": 0.5}}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["progress"] == 0.5


def test_update_refusal_names_every_changed_attribute(world):
    task = world.target["owner"]
    response = world.clients["owner"].put(
        f"{URL}/{task.uuid}",
        {"job_task": {"qsequence": 1, "job_uuid": OTHER_JOB, "progress": 1}},
        format="json",
    )
    assert response.status_code == 403
    assert "Only a job manager may set or change qsequence, job_uuid" in errors(response)
    assert JobTask.objects.get(pk=task.pk).progress is None


# -- create -------------------------------------------------------------------------

CREATE_EXPECTED = {
    # actor: {attribute: (status, message)}
    "anonymous": dict.fromkeys(ATTRIBUTES, (401, "Not logged in")),
    "owner": {
        "qsequence": (403, "Only a job manager may set or change qsequence"),
        "job_uuid": (403, "Only a job manager may set or change job_uuid"),
        "created_by_job_task_uuid": (200, None),  # a running task queuing follow-up work
    },
    "group_member": {
        "qsequence": (403, "Only a job manager may set or change qsequence"),
        "job_uuid": (403, "Only a job manager may set or change job_uuid"),
        "created_by_job_task_uuid": (200, None),
    },
    "other": {
        "qsequence": (403, "Only a job manager may set or change qsequence"),
        "job_uuid": (403, "Only a job manager may set or change job_uuid"),
        # the parent is not readable by "other": the reference check comes first
        "created_by_job_task_uuid": (422, "Created by job task uuid"),
    },
    "manager": dict.fromkeys(ATTRIBUTES, (200, None)),
    "superuser": dict.fromkeys(ATTRIBUTES, (200, None)),
    # inactive users are refused at the door, before their input is looked at
    "inactive": dict.fromkeys(ATTRIBUTES, (403, "inactive")),
}


@pytest.mark.parametrize("attribute", ATTRIBUTES)
@pytest.mark.parametrize("actor", ACTORS)
def test_create_setting_manager_attribute(world, actor, attribute):
    value = new_value(world, actor, attribute)
    before = JobTask.objects.count()

    response = world.clients[actor].post(URL, {"job_task": {attribute: value}}, format="json")

    status, message = CREATE_EXPECTED[actor][attribute]
    assert response.status_code == status, response.content
    if status == 200:
        body = response.json()
        assert body[attribute] == value
        if attribute == "created_by_job_task_uuid":
            assert body["job_uuid"] == world.parent[actor].job_uuid  # filled from the parent
        assert JobTask.objects.count() == before + 1
    else:
        assert message in errors(response)
        assert JobTask.objects.count() == before


@pytest.mark.parametrize("actor", ["owner", "group_member"])
def test_create_follow_up_with_the_parents_job_uuid_is_allowed(world, actor):
    parent = world.parent[actor]
    response = world.clients[actor].post(
        URL,
        {"job_task": {"created_by_job_task_uuid": parent.uuid, "job_uuid": parent.job_uuid}},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["created_by_job_task_uuid"] == parent.uuid


def test_create_follow_up_in_another_job_is_403(world):
    parent = world.parent["owner"]
    response = world.clients["owner"].post(
        URL,
        {"job_task": {"created_by_job_task_uuid": parent.uuid, "job_uuid": OTHER_JOB}},
        format="json",
    )
    assert response.status_code == 403
    assert "must use its own job_uuid" in errors(response)


@pytest.mark.parametrize(
    "state",
    [
        {"started_at": None},
        {"success": True},
        {"success": False},
    ],
    ids=["not-started", "succeeded", "failed"],
)
def test_create_follow_up_of_a_task_that_is_not_running_is_403(world, state):
    parent = world.parent["owner"]
    JobTask.objects.filter(pk=parent.pk).update(**state)
    response = world.clients["owner"].post(
        URL, {"job_task": {"created_by_job_task_uuid": parent.uuid}}, format="json"
    )
    assert response.status_code == 403
    assert "is not running" in errors(response)


def test_create_with_null_qsequence_is_not_setting_it(world):
    response = world.clients["owner"].post(URL, {"job_task": {"qsequence": None}}, format="json")
    assert response.status_code == 200
    assert isinstance(response.json()["qsequence"], int)


def test_bad_input_is_422_before_any_403(world):
    response = world.clients["owner"].post(
        URL, {"job_task": {"qsequence": 5, "sequence": "x"}}, format="json"
    )
    assert response.status_code == 422
    assert "sequence: must be an integer" in errors(response)


# -- every body form ----------------------------------------------------------------


def _send(client: APIClient, method: str, url: str, form: str, attrs: dict[str, Any]) -> Any:
    call = getattr(client, method)
    if form == "wrapped":
        return call(url, {"job_task": attrs}, format="json")
    if form == "bare":
        return call(url, attrs, format="json")
    if form == "form-json":
        return call(url, {"job_task": json.dumps(attrs)})
    assert form == "nested-form"
    return call(url, {f"job_task[{key}]": str(value) for key, value in attrs.items()})


FORMS = ["wrapped", "bare", "form-json", "nested-form"]


@pytest.mark.parametrize("form", FORMS)
def test_every_body_form_obeys_the_role_on_update(world, form):
    task = world.target["owner"]
    refused = _send(world.clients["owner"], "put", f"{URL}/{task.uuid}", form, {"qsequence": 7})
    assert refused.status_code == 403, refused.content
    assert "qsequence" in errors(refused)
    allowed = _send(world.clients["manager"], "put", f"{URL}/{task.uuid}", form, {"qsequence": 7})
    assert allowed.status_code == 200, allowed.content
    assert allowed.json()["qsequence"] == 7


@pytest.mark.parametrize("form", FORMS)
def test_every_body_form_obeys_the_role_on_create(world, form):
    refused = _send(world.clients["owner"], "post", URL, form, {"job_uuid": OTHER_JOB})
    assert refused.status_code == 403, refused.content
    assert "job_uuid" in errors(refused)
    parent = world.parent["owner"]
    allowed = _send(
        world.clients["owner"], "post", URL, form, {"created_by_job_task_uuid": parent.uuid}
    )
    assert allowed.status_code == 200, allowed.content
    assert allowed.json()["job_uuid"] == JOB


# -- read and delete ----------------------------------------------------------------

READ_EXPECTED = {
    "anonymous": 401,
    "owner": 200,
    "group_member": 200,
    "other": 404,
    "manager": 200,
    "superuser": 200,
    "inactive": 403,
}
#: The exact ``errors`` of each refusal on get and delete.
READ_ERRORS = {
    "anonymous": ["Not logged in"],
    "other": ["Path not found"],  # hidden: exactly like a missing task
    "inactive": [rules.INACTIVE],
}


@pytest.mark.parametrize("actor", ACTORS)
def test_get(world, actor):
    task = world.target[actor]
    response = world.clients[actor].get(f"{URL}/{task.uuid}")
    assert response.status_code == READ_EXPECTED[actor]
    if response.status_code == 200:
        assert response.json() == render_task(task)
    else:
        assert response.json()["errors"] == READ_ERRORS[actor]


@pytest.mark.parametrize("actor", ACTORS)
def test_list_shows_exactly_the_visible_tasks(world, actor):
    response = world.clients[actor].get(URL, {"limit": 1000})
    expected = READ_EXPECTED[actor]
    if actor == "other":
        expected = 200
    assert response.status_code == expected
    if expected != 200:
        assert response.json()["errors"]
        return
    got = {item["uuid"] for item in response.json()["items"]}
    owners = {
        "owner": {world.uuid["owner"]},
        "group_member": {world.parent["group_member"].owner_uuid},
        "other": set(),
    }
    if actor in ("manager", "superuser"):
        want = set(JobTask.objects.values_list("uuid", flat=True))
    else:
        want = set(
            JobTask.objects.filter(owner_uuid__in=owners[actor]).values_list("uuid", flat=True)
        )
    assert got == want
    assert response.json()["items_available"] == len(want)


@pytest.mark.parametrize("actor", ACTORS)
def test_delete(world, actor):
    task = world.target[actor]
    as_it_was = world.clients["superuser"].get(f"{URL}/{task.uuid}").json()
    assert as_it_was["uuid"] == task.uuid
    response = world.clients[actor].delete(f"{URL}/{task.uuid}")
    assert response.status_code == READ_EXPECTED[actor]
    assert JobTask.objects.filter(pk=task.pk).exists() is (response.status_code != 200)
    if response.status_code == 200:
        assert response.json() == as_it_was
    else:
        assert response.json()["errors"] == READ_ERRORS[actor]


def test_changing_owner_needs_write_on_old_and_new(world):
    group_task = world.target["group_member"]
    # the member may give the group's task to themselves...
    mine = world.clients["group_member"].put(
        f"{URL}/{group_task.uuid}",
        {"job_task": {"owner_uuid": world.uuid["group_member"]}},
        format="json",
    )
    assert mine.status_code == 200
    # ...but not to someone else
    theirs = world.clients["group_member"].put(
        f"{URL}/{group_task.uuid}", {"job_task": {"owner_uuid": world.uuid["other"]}}, format="json"
    )
    assert theirs.status_code == 403
    assert "write permission on new owner" in errors(theirs)
