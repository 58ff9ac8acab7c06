"""The five methods of /arvados/v1/job_tasks through HTTP (spec §5, §6, §7.9, §15)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import pytest

from job_tasks import uuids
from job_tasks.models import AuditEvent, JobTask
from job_tasks.representation import WIRE_ATTRIBUTES

URL = "/arvados/v1/job_tasks"
TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
UUID_RE = re.compile(r"^zzzzz-ot0gb-[0-9a-z]{15}$")
FORM = "application/x-www-form-urlencoded"

pytestmark = pytest.mark.django_db


def create(caller: Any, body: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    return caller.client.post(URL, body or {}, format="json", **kwargs)


def test_create_with_wrapped_body_returns_the_full_object_in_wire_order(alice):
    response = create(alice, {"job_task": {"sequence": 1, "parameters": {"a": "b"}}})

    assert response.status_code == 200, response.content
    body = response.json()
    assert list(body) == list(WIRE_ATTRIBUTES)
    assert body["kind"] == "arvados#jobTask"
    assert UUID_RE.match(body["uuid"])
    assert body["href"] == f"/job_tasks/{body['uuid']}"
    assert body["owner_uuid"] == alice.uuid
    assert body["modified_by_user_uuid"] == alice.uuid
    assert body["modified_by_client_uuid"] is None
    assert body["sequence"] == 1
    assert body["parameters"] == {"a": "b"}
    assert body["success"] is None
    assert TIMESTAMP_RE.match(body["created_at"])
    assert TIMESTAMP_RE.match(body["modified_at"])
    assert re.match(r"^[0-9a-z]{1,25}$", body["etag"])
    assert response["Content-Type"] == "application/json"
    assert JobTask.objects.filter(uuid=body["uuid"]).exists()


def test_create_with_no_body_creates_a_task_with_defaults(alice):
    response = alice.client.post(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["parameters"] == {}
    assert body["sequence"] is None
    assert isinstance(body["qsequence"], int)


def test_create_with_bare_json_body_wraps_column_names_and_ignores_other_keys(alice):
    response = create(alice, {"sequence": 2, "output": "x", "not_a_column": 1})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["sequence"] == 2
    assert body["output"] == "x"


def test_create_with_form_field_holding_json(alice):
    response = alice.client.post(URL, {"job_task": json.dumps({"sequence": 3, "progress": 0.5})})

    assert response.status_code == 200, response.content
    assert response.json()["sequence"] == 3
    assert response.json()["progress"] == 0.5


def test_create_with_job_task_json_in_the_query_string(alice):
    job_task = json.dumps({"sequence": 4})
    response = alice.client.post(f"{URL}?job_task={job_task}")

    assert response.status_code == 200, response.content
    assert response.json()["sequence"] == 4


def test_create_with_rails_nested_form_fields_converts_strings(alice):
    response = alice.client.post(
        URL,
        {
            "job_task[sequence]": "5",
            "job_task[success]": "false",
            "job_task[progress]": "0.25",
            "job_task[parameters]": '{"k": [1, 2]}',
        },
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["sequence"], body["success"], body["progress"]) == (5, False, 0.25)
    assert body["parameters"] == {"k": [1, 2]}


# application/x-www-form-urlencoded, as the Go SDK and Workbench sent (the test
# client's default above is multipart/form-data).


def send_form(caller: Any, method: str, path: str, fields: dict[str, str]) -> Any:
    return getattr(caller.client, method)(path, urlencode(fields), content_type=FORM)


def test_create_with_urlencoded_job_task_json(alice):
    job_task = {"sequence": 3, "progress": 0.5, "parameters": {"q": "a&b=c+d é"}}

    response = send_form(alice, "post", URL, {"job_task": json.dumps(job_task)})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["sequence"], body["progress"]) == (3, 0.5)
    assert body["parameters"] == {"q": "a&b=c+d é"}
    assert JobTask.objects.get(uuid=body["uuid"]).parameters == {"q": "a&b=c+d é"}


def test_create_with_urlencoded_rails_nested_fields_converts_strings(alice):
    fields = {
        "job_task[sequence]": "5",
        "job_task[success]": "false",
        "job_task[progress]": "0.25",
        "job_task[output]": "out&put",
        "job_task[parameters]": '{"k": [1, 2]}',
    }

    response = send_form(alice, "post", URL, fields)

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["sequence"], body["success"], body["progress"]) == (5, False, 0.25)
    assert (body["output"], body["parameters"]) == ("out&put", {"k": [1, 2]})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"job_task[nope]": "1"}, "unknown attribute 'nope' for JobTask."),
        ({"job_task[sequence]": "one"}, "sequence"),
        ({"job_task": "{not json"}, "Could not parse job_task as JSON"),
        ({"job_task": "[1]"}, "No job_task (or jobTask) hash provided with request"),
    ],
)
def test_bad_urlencoded_job_task_is_422_and_creates_nothing(alice, fields, message):
    response = send_form(alice, "post", URL, fields)

    assert response.status_code == 422, response.content
    assert message in " ".join(response.json()["errors"])
    assert not JobTask.objects.exists()


@pytest.mark.parametrize("method", ["put", "patch"])
def test_update_with_urlencoded_job_task_json_and_nested_fields(alice, make_task, method):
    task = make_task(alice, sequence=1, output="kept")

    first = send_form(alice, method, f"{URL}/{task.uuid}", {"job_task": '{"sequence": 2}'})
    second = send_form(alice, method, f"{URL}/{task.uuid}", {"job_task[success]": "true"})

    assert first.status_code == 200, first.content
    assert first.json()["sequence"] == 2
    assert second.status_code == 200, second.content
    task.refresh_from_db()
    assert (task.sequence, task.success, task.output) == (2, True, "kept")


def test_urlencoded_method_override_on_the_collection_is_a_list(alice, make_task):
    for sequence in (1, 2, 2):
        make_task(alice, sequence=sequence)
    fields = {
        "_method": "GET",
        "filters": json.dumps([["sequence", "=", 2]]),
        "limit": "1",
        "count": "exact",
        "select": json.dumps(["uuid", "sequence"]),
    }

    response = send_form(alice, "post", URL, fields)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["kind"] == "arvados#jobTaskList"
    assert (body["limit"], body["items_available"]) == (1, 2)
    assert [sorted(item) for item in body["items"]] == [["kind", "sequence", "uuid"]]
    assert body["items"][0]["sequence"] == 2
    assert JobTask.objects.count() == 3


def test_urlencoded_method_override_on_a_member_is_a_get(alice, make_task):
    task = make_task(alice, sequence=4)

    response = send_form(alice, "post", f"{URL}/{task.uuid}", {"_method": "get"})

    assert response.status_code == 200, response.content
    assert (response.json()["uuid"], response.json()["sequence"]) == (task.uuid, 4)
    assert response["ETag"] == f'"{response.json()["etag"]}"'


def test_urlencoded_post_without_override_on_a_member_is_405(alice, make_task):
    task = make_task(alice)

    response = send_form(alice, "post", f"{URL}/{task.uuid}", {"_method": "PUT"})

    assert response.status_code == 405, response.content
    assert "errors" in response.json()


def test_parameters_may_be_a_json_encoded_string_inside_job_task(alice):
    response = create(alice, {"job_task": {"parameters": '{"input": "foo"}'}})

    assert response.status_code == 200
    assert response.json()["parameters"] == {"input": "foo"}


@pytest.mark.parametrize("value", [None, {}, "null"])
def test_null_and_empty_parameters_read_back_as_empty_object(alice, value):
    response = create(alice, {"job_task": {"parameters": value}})

    assert response.status_code == 200
    assert response.json()["parameters"] == {}


def test_server_managed_keys_are_silently_dropped(alice):
    response = create(
        alice,
        {
            "job_task": {
                "kind": "x",
                "etag": "y",
                "href": "z",
                "created_at": "2000-01-01T00:00:00Z",
                "modified_at": "2000-01-01T00:00:00Z",
                "modified_by_user_uuid": "zzzzz-tpzed-000000000000000",
                "modified_by_client_uuid": "zzzzz-ozdt8-000000000000000",
                "updated_at": "2000-01-01T00:00:00Z",
                "sequence": 1,
            }
        },
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["kind"] == "arvados#jobTask"
    assert not body["created_at"].startswith("2000")
    assert body["modified_by_user_uuid"] == alice.uuid
    assert body["modified_by_client_uuid"] is None


@pytest.mark.parametrize("key", ["foo", "id"])
def test_unknown_attribute_is_422_naming_it(alice, key):
    response = create(alice, {"job_task": {key: 1}})

    assert response.status_code == 422
    assert f"unknown attribute '{key}' for JobTask." in response.json()["errors"][0]
    assert not JobTask.objects.exists()


@pytest.mark.parametrize("value", [1, [1], "[1]", '"str"', True])
def test_job_task_that_is_not_an_object_is_422(alice, value):
    response = create(alice, {"job_task": value})

    assert response.status_code == 422
    assert "No job_task (or jobTask) hash provided" in response.json()["errors"][0]


def test_job_task_string_that_is_not_json_is_422(alice):
    response = alice.client.post(URL, {"job_task": "{not json"})

    assert response.status_code == 422
    assert "Could not parse job_task" in response.json()["errors"][0]


def test_malformed_json_body_is_422_in_the_envelope(alice):
    response = alice.client.post(URL, data="{bad json", content_type="application/json")

    assert response.status_code == 422
    body = response.json()
    assert "Malformed request body" in body["errors"][0]
    assert re.match(r"^\d+\+[0-9a-f]{8}$", body["error_token"])


def test_json_body_that_is_not_an_object_is_422(alice):
    response = alice.client.post(URL, data="[1, 2]", content_type="application/json")

    assert response.status_code == 422
    assert "must be a JSON object" in response.json()["errors"][0]


@pytest.mark.parametrize(
    ("attribute", "value", "message"),
    [
        ("sequence", "abc", "sequence: must be an integer"),
        ("sequence", 1.5, "sequence: must be an integer"),
        ("sequence", True, "sequence: must be an integer"),
        ("sequence", 2**31, "sequence: 2147483648 is out of range"),
        ("sequence", "1" * 5000, "sequence: is out of range"),
        ("sequence", "²", "sequence: must be an integer"),
        ("qsequence", 2**63, "qsequence:"),
        ("success", "yes", "success: must be true or false"),
        ("success", 2, "success: must be true or false"),
        ("progress", "abc", "progress: must be a number"),
        ("progress", 1.5, "progress: 1.5 is out of range [0, 1]"),
        ("progress", -0.1, "progress: -0.1 is out of range"),
        ("progress", True, "progress: must be a number"),
        ("progress", 10**400, "progress: is out of range [0, 1]"),
        ("output", 12, "output: must be a string, not int"),
        ("output", True, "output: must be a string, not bool"),
        ("parameters", [1], "parameters: must be a Hash (a JSON object), not Array"),
        ("parameters", "[1]", "parameters: must be a Hash (a JSON object), not Array"),
        ("parameters", 3, "parameters: must be a Hash"),
        ("parameters", "{nope", "parameters: is not valid JSON"),
        ("started_at", "yesterday", "started_at: 'yesterday' is not an ISO-8601 timestamp"),
        ("started_at", 12, "started_at: must be an ISO-8601 timestamp string"),
        ("finished_at", "9999-12-31T23:59:59-23:00", "finished_at: '9999-12-31T23:59:59-2"),
        ("job_uuid", "not-a-uuid", "job_uuid: 'not-a-uuid' is not a valid Arvados uuid"),
        ("job_uuid", 5, "job_uuid: must be a string"),
    ],
)
def test_wrong_types_are_422_naming_the_field(alice, attribute, value, message):
    response = create(alice, {"job_task": {attribute: value}})

    assert response.status_code == 422, response.content
    assert any(message in error for error in response.json()["errors"]), response.json()
    assert not JobTask.objects.exists()


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("1", True), ("false", False), ("0", False), (1, True)]
)
def test_success_accepts_form_spellings(alice, value, expected):
    response = create(alice, {"job_task": {"success": value}})

    assert response.status_code == 200
    assert response.json()["success"] is expected


def test_timestamps_in_any_iso_form_come_back_utc_with_nine_digits(alice):
    response = create(
        alice,
        {
            "job_task": {
                "started_at": "2014-04-21T17:37:48.123456789+02:00",
                "finished_at": "2014-04-21 15:40:00",
            }
        },
    )

    assert response.status_code == 200, response.content
    assert response.json()["started_at"] == "2014-04-21T15:37:48.123456000Z"
    assert response.json()["finished_at"] == "2014-04-21T15:40:00.000000000Z"


def test_get_returns_the_object_and_an_etag_header(alice, make_task):
    task = make_task(alice, sequence=7)

    response = alice.client.get(f"{URL}/{task.uuid}")

    assert response.status_code == 200
    body = response.json()
    assert body["uuid"] == task.uuid
    assert body["sequence"] == 7
    assert response["ETag"] == f'"{body["etag"]}"'


def test_get_unknown_or_malformed_uuid_is_404_path_not_found(alice):
    for uuid in ("zzzzz-ot0gb-000000000000000", "nonsense"):
        response = alice.client.get(f"{URL}/{uuid}")
        assert response.status_code == 404
        assert response.json()["errors"] == ["Path not found"]


def test_update_with_put_is_partial_and_bumps_modified_at(alice, make_task):
    task = make_task(alice, sequence=1, output="keep")
    before = alice.client.get(f"{URL}/{task.uuid}").json()

    response = alice.client.put(
        f"{URL}/{task.uuid}", {"job_task": {"progress": 0.5}}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["progress"] == 0.5
    assert body["output"] == "keep"
    assert body["sequence"] == 1
    assert body["modified_at"] > before["modified_at"]
    assert body["etag"] != before["etag"]


def test_update_with_patch_and_bare_body(alice, make_task):
    task = make_task(alice)

    response = alice.client.patch(f"{URL}/{task.uuid}", {"success": True}, format="json")

    assert response.status_code == 200
    assert response.json()["success"] is True
    task.refresh_from_db()
    assert task.success is True


def test_update_that_changes_nothing_keeps_modified_at_and_etag(alice):
    created = create(alice, {"job_task": {"sequence": 1}}).json()

    response = alice.client.put(
        f"{URL}/{created['uuid']}", {"job_task": {"sequence": 1}}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["modified_at"] == created["modified_at"]
    assert response.json()["etag"] == created["etag"]


def test_put_with_no_body_is_a_no_op_update(alice):
    created = create(alice, {"job_task": {"sequence": 1}}).json()

    response = alice.client.put(f"{URL}/{created['uuid']}")

    assert response.status_code == 200
    assert response.json() == created


def test_update_with_a_bad_value_changes_nothing(alice, make_task):
    task = make_task(alice, sequence=1)

    response = alice.client.put(
        f"{URL}/{task.uuid}", {"job_task": {"sequence": 2, "progress": 9}}, format="json"
    )

    assert response.status_code == 422
    task.refresh_from_db()
    assert task.sequence == 1


def test_delete_returns_the_deleted_object_and_then_get_is_404(alice, make_task):
    task = make_task(alice, sequence=3)

    response = alice.client.delete(f"{URL}/{task.uuid}")

    assert response.status_code == 200
    assert response.json()["uuid"] == task.uuid
    assert response.json()["sequence"] == 3
    assert alice.client.get(f"{URL}/{task.uuid}").status_code == 404
    assert alice.client.delete(f"{URL}/{task.uuid}").status_code == 404


def test_delete_does_not_delete_children(alice, make_task):
    parent = make_task(alice)
    child = make_task(alice, created_by_job_task_uuid=parent.uuid)

    assert alice.client.delete(f"{URL}/{parent.uuid}").status_code == 200
    assert JobTask.objects.filter(uuid=child.uuid).exists()


def test_success_false_deletes_direct_children_only(alice, make_task):
    parent = make_task(alice, started_at="2020-01-01T00:00:00Z")
    child = make_task(alice, created_by_job_task_uuid=parent.uuid)
    grandchild = make_task(alice, created_by_job_task_uuid=child.uuid)
    other = make_task(alice)

    response = alice.client.put(
        f"{URL}/{parent.uuid}", {"job_task": {"success": False}}, format="json"
    )

    assert response.status_code == 200
    assert not JobTask.objects.filter(uuid=child.uuid).exists()
    assert JobTask.objects.filter(uuid=grandchild.uuid).exists()
    assert JobTask.objects.filter(uuid=other.uuid).exists()


def test_success_false_when_already_false_deletes_nothing(alice, make_task):
    parent = make_task(alice, success=False)
    child = make_task(alice, created_by_job_task_uuid=parent.uuid)

    alice.client.put(f"{URL}/{parent.uuid}", {"job_task": {"success": False}}, format="json")

    assert JobTask.objects.filter(uuid=child.uuid).exists()


def test_creating_with_success_false_deletes_nothing(admin, alice, make_task):
    # Spec §11.2: only an *update* to false deletes the tasks a task queued. Two tasks
    # that a create misread as such an update would take: the siblings of the new task
    # (it names their parent as its creator), and orphans that already name the uuid
    # the new task is given (an admin may choose it).
    parent = make_task(alice, started_at="2020-01-01T00:00:00Z")
    sibling = make_task(alice, created_by_job_task_uuid=parent.uuid)
    new_uuid = uuids.new_uuid(uuids.JOB_TASK_INFIX)
    orphan = make_task(alice, created_by_job_task_uuid=new_uuid)

    response = create(
        admin,
        {
            "job_task": {
                "uuid": new_uuid,
                "created_by_job_task_uuid": parent.uuid,
                "success": False,
            }
        },
    )

    assert response.status_code == 200, response.content
    assert (response.json()["uuid"], response.json()["success"]) == (new_uuid, False)
    remaining = set(JobTask.objects.values_list("uuid", flat=True))
    assert remaining == {parent.uuid, sibling.uuid, orphan.uuid, new_uuid}
    assert not AuditEvent.objects.filter(event_type=AuditEvent.Event.DELETE).exists()


def test_list_envelope_keys_and_defaults(alice, make_task):
    for sequence in range(3):
        make_task(alice, sequence=sequence)

    response = alice.client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert list(body) == [
        "kind",
        "etag",
        "self_link",
        "offset",
        "limit",
        "items",
        "items_available",
    ]
    assert body["kind"] == "arvados#jobTaskList"
    assert (body["etag"], body["self_link"], body["offset"], body["limit"]) == ("", "", 0, 100)
    assert body["items_available"] == 3
    assert len(body["items"]) == 3
    assert list(body["items"][0]) == list(WIRE_ATTRIBUTES)


def test_list_default_order_is_modified_at_desc_then_uuid(alice):
    uuids = [create(alice, {"job_task": {"sequence": n}}).json()["uuid"] for n in range(3)]

    items = alice.client.get(URL).json()["items"]

    assert [item["uuid"] for item in items] == list(reversed(uuids))


def test_list_limit_offset_and_count(alice, make_task):
    for _ in range(5):
        make_task(alice)

    page = alice.client.get(URL, {"limit": 2, "offset": 1}).json()
    assert (page["limit"], page["offset"], len(page["items"]), page["items_available"]) == (
        2,
        1,
        2,
        5,
    )
    none = alice.client.get(URL, {"count": "none"}).json()
    assert "items_available" not in none
    zero = alice.client.get(URL, {"limit": 0}).json()
    assert zero["items"] == []
    assert zero["items_available"] == 5
    clamped = alice.client.get(URL, {"limit": 5000}).json()
    assert clamped["limit"] == 1000
    past = alice.client.get(URL, {"offset": 50}).json()
    assert past["items"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "-1"}, "Invalid value for limit parameter"),
        ({"limit": "1.5"}, "Invalid value for limit parameter"),
        ({"offset": "x"}, "Invalid value for offset parameter"),
        ({"count": "maybe"}, "count parameter must be 'exact' or 'none'"),
    ],
)
def test_list_bad_paging_parameters_are_422(alice, params, message):
    response = alice.client.get(URL, params)

    assert response.status_code == 422
    assert message in response.json()["errors"][0]


def test_list_parameters_in_a_json_body(alice, make_task):
    for _ in range(3):
        make_task(alice)

    response = alice.client.generic(
        "GET", URL, data=json.dumps({"limit": 1}), content_type="application/json"
    )

    assert response.status_code == 200
    assert len(response.json()["items"]) == 1


def test_post_with_method_override_form_field_is_a_list(alice, make_task):
    make_task(alice)

    response = alice.client.post(URL, {"_method": "GET", "limit": "1"})

    assert response.status_code == 200
    assert response.json()["kind"] == "arvados#jobTaskList"
    assert JobTask.objects.count() == 1


def test_post_with_method_override_header_on_member_is_a_get(alice, make_task):
    task = make_task(alice)

    response = alice.client.post(f"{URL}/{task.uuid}", HTTP_X_HTTP_METHOD_OVERRIDE="GET")

    assert response.status_code == 200
    assert response.json()["uuid"] == task.uuid


def test_trailing_slash_works_and_never_redirects(alice, make_task):
    task = make_task(alice)

    assert alice.client.get(f"{URL}/").status_code == 200
    assert alice.client.get(f"{URL}/{task.uuid}/").status_code == 200


def test_ensure_unique_name_must_be_boolean(alice):
    response = alice.client.post(f"{URL}?ensure_unique_name=perhaps")

    assert response.status_code == 422
    assert "ensure_unique_name parameter must be a boolean" in response.json()["errors"][0]
    assert create(alice, {"ensure_unique_name": True, "sequence": 1}).status_code == 200
