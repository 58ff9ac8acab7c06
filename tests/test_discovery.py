"""The discovery document (spec §14, §15.7): shape, no auth, rootUrl, refs, routing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import Resolver404, resolve
from rest_framework.test import APIClient

from job_tasks.discovery import (
    DiscoveryMethod,
    DiscoveryParameter,
    DiscoveryRegistry,
    crud_methods,
    list_schema,
    object_schema,
    registry,
)
from job_tasks.representation import STORED_ATTRIBUTES
from job_tasks.views import PathNotFoundView
from tests.conftest import Caller

URL = "/discovery/v1/apis/arvados/v1/rest"
TASK_UUID = "zzzzz-ot0gb-0123456789abcde"
SCOPE = "https://api.curoverse.com/auth/arvados"
READONLY = "https://api.curoverse.com/auth/arvados.readonly"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, PUT, POST, DELETE",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "86486400",
}
#: (http method, path, response schema) of each job_tasks method (spec §14).
JOB_TASK_METHODS = {
    "get": ("GET", "job_tasks/{uuid}", "JobTask"),
    "show": ("GET", "job_tasks/{uuid}", "JobTask"),
    "list": ("GET", "job_tasks", "JobTaskList"),
    "index": ("GET", "job_tasks", "JobTaskList"),
    "create": ("POST", "job_tasks", "JobTask"),
    "update": ("PUT", "job_tasks/{uuid}", "JobTask"),
    "delete": ("DELETE", "job_tasks/{uuid}", "JobTask"),
    "destroy": ("DELETE", "job_tasks/{uuid}", "JobTask"),
}


def get_document(client: APIClient, **extra: Any) -> dict[str, Any]:
    response = client.get(URL, **extra)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def document(anon: APIClient) -> dict[str, Any]:
    return get_document(anon)


def refs(value: Any) -> Iterator[str]:
    """Every ``$ref`` anywhere in ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs(item)


def all_methods(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for resource, description in document["resources"].items():
        for name, method in description["methods"].items():
            yield resource, name, method


# -- serving -------------------------------------------------------------------------


def test_get_and_post_answer_without_authentication(anon: APIClient) -> None:
    got = anon.get(URL)
    posted = anon.post(URL)
    assert (got.status_code, posted.status_code) == (200, 200)
    assert got["Content-Type"] == "application/json"
    assert got.json() == posted.json()
    assert got["Cache-Control"] == "public, max-age=3600"


def test_a_bad_token_does_not_matter(anon: APIClient) -> None:
    assert anon.get(URL, HTTP_AUTHORIZATION="Bearer nonsense").status_code == 200
    assert anon.get(URL + "/", {"api_token": "nonsense"}).status_code == 200


def test_cors_and_request_id_headers(anon: APIClient) -> None:
    response = anon.get(URL, HTTP_X_REQUEST_ID="discover-1")
    for header, value in CORS.items():
        assert response[header] == value
    assert response["X-Request-Id"] == "discover-1"
    preflight = anon.options(URL)
    assert (preflight.status_code, preflight.content) == (200, b"")
    assert preflight["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_other_methods_are_405_in_the_error_envelope(anon: APIClient, method: str) -> None:
    response = getattr(anon, method)(URL)
    assert response.status_code == 405
    assert response.json()["errors"]
    assert response["Access-Control-Allow-Origin"] == "*"


# -- the top level -------------------------------------------------------------------


def test_top_level_keys(document: dict[str, Any]) -> None:
    assert {
        key: document[key]
        for key in (
            "kind",
            "discoveryVersion",
            "id",
            "name",
            "version",
            "protocol",
            "basePath",
            "servicePath",
            "batchPath",
            "uuidPrefix",
            "maxItemsPerResponse",
        )
    } == {
        "kind": "discovery#restDescription",
        "discoveryVersion": "v1",
        "id": "arvados:v1",
        "name": "arvados",
        "version": "v1",
        "protocol": "rest",
        "basePath": "/arvados/v1/",
        "servicePath": "arvados/v1/",
        "batchPath": "batch",
        "uuidPrefix": "zzzzz",
        "maxItemsPerResponse": 1000,
    }
    assert document["maxRequestSize"] == 1_048_576
    assert set(document["parameters"]) >= {
        "alt",
        "fields",
        "key",
        "oauth_token",
        "prettyPrint",
        "quotaUser",
        "userIp",
    }
    assert all(p["location"] == "query" for p in document["parameters"].values())
    assert set(document["auth"]["oauth2"]["scopes"]) == {SCOPE, READONLY}


@pytest.mark.parametrize(
    ("extra", "root"),
    [
        ({}, "http://testserver/"),
        ({"HTTP_HOST": "api.example:8443", "secure": True}, "https://api.example:8443/"),
        ({"HTTP_HOST": "api.example", "secure": True}, "https://api.example/"),
        ({"HTTP_HOST": "127.0.0.1:8000"}, "http://127.0.0.1:8000/"),
        ({"HTTP_HOST": "[::1]:8443", "secure": True}, "https://[::1]:8443/"),
    ],
)
def test_root_url_comes_from_the_scheme_and_host(
    anon: APIClient, extra: dict[str, Any], root: str
) -> None:
    document = get_document(anon, **extra)
    assert document["rootUrl"] == root
    assert document["baseUrl"] == root + "arvados/v1/"


def test_root_url_keeps_the_script_prefix(anon: APIClient) -> None:
    document = get_document(anon, SCRIPT_NAME="/api", HTTP_HOST="h.example")
    assert document["rootUrl"] == "http://h.example/api/"
    assert document["baseUrl"] == "http://h.example/api/arvados/v1/"


def test_settings_are_read_on_every_request(anon: APIClient, settings: Any) -> None:
    before = get_document(anon)
    settings.JOB_TASKS = {"CLUSTER_ID": "x1y2z", "MAX_LIMIT": 50, "DEFAULT_LIMIT": 7}
    after = get_document(anon)
    assert (after["uuidPrefix"], after["maxItemsPerResponse"]) == ("x1y2z", 50)
    limit = after["resources"]["job_tasks"]["methods"]["list"]["parameters"]["limit"]
    assert limit["default"] == "7"
    assert before["uuidPrefix"] == "zzzzz"


def test_the_request_independent_part_is_cached() -> None:
    first = registry.document("https://a.example/")
    second = registry.document("https://b.example/")
    assert first["resources"] is second["resources"]
    assert first["rootUrl"] != second["rootUrl"]
    assert list(first) == list(second)  # rootUrl and baseUrl keep their place


# -- schemas -------------------------------------------------------------------------


def test_job_task_schema(document: dict[str, Any]) -> None:
    schema = document["schemas"]["JobTask"]
    assert (schema["id"], schema["type"], schema["uuidPrefix"]) == ("JobTask", "object", "ot0gb")
    types = {name: value["type"] for name, value in schema["properties"].items()}
    assert types == {
        "uuid": "string",
        "etag": "string",
        "owner_uuid": "string",
        "created_at": "datetime",
        "modified_by_client_uuid": "string",
        "modified_by_user_uuid": "string",
        "modified_at": "datetime",
        "job_uuid": "string",
        "created_by_job_task_uuid": "string",
        "sequence": "integer",
        "qsequence": "integer",
        "parameters": "Hash",
        "output": "text",
        "progress": "float",
        "success": "boolean",
        "started_at": "datetime",
        "finished_at": "datetime",
    }
    assert set(types) == {"etag", *STORED_ATTRIBUTES}


@pytest.mark.django_db
def test_job_task_schema_matches_a_rendered_task(document: dict[str, Any], alice: Caller) -> None:
    task = alice.client.post("/arvados/v1/job_tasks", {}, format="json").json()
    assert set(task) - {"href", "kind"} == set(document["schemas"]["JobTask"]["properties"])


def test_job_task_list_schema(document: dict[str, Any]) -> None:
    schema = document["schemas"]["JobTaskList"]
    properties = schema["properties"]
    assert schema["id"] == "JobTaskList"
    assert properties["kind"]["default"] == "arvados#jobTaskList"
    assert properties["items"] == {
        "type": "array",
        "description": properties["items"]["description"],
        "items": {"$ref": "JobTask"},
    }
    assert {"etag", "next_link", "next_page_token", "selfLink", "items_available"} <= set(
        properties
    )


def test_leased_job_task_schema_is_a_job_task_and_its_lease(document: dict[str, Any]) -> None:
    task = document["schemas"]["JobTask"]["properties"]
    leased = document["schemas"]["LeasedJobTask"]
    assert (leased["id"], leased["type"]) == ("LeasedJobTask", "object")
    assert "uuidPrefix" not in leased  # ot0gb names the JobTask schema only
    assert list(leased["properties"]) == [*task, "lease_expires_at", "attempt"]
    assert {name: leased["properties"][name] for name in task} == task
    assert leased["properties"]["lease_expires_at"]["type"] == "datetime"
    assert leased["properties"]["attempt"]["type"] == "integer"
    listed = document["schemas"]["LeasedJobTaskList"]["properties"]
    assert listed["kind"]["default"] == "arvados#jobTaskList"
    assert listed["items"]["items"] == {"$ref": "LeasedJobTask"}


@pytest.mark.parametrize(
    ("name", "response"),
    [
        ("claim", "LeasedJobTaskList"),
        ("renew", "LeasedJobTask"),
        ("release", "LeasedJobTask"),
        ("retry", "LeasedJobTask"),
        ("summary", "JobTaskSummary"),
    ],
)
def test_scheduling_methods_answer_leased_tasks(
    document: dict[str, Any], name: str, response: str
) -> None:
    method = document["resources"]["job_tasks"]["methods"][name]
    assert method["response"] == {"$ref": response}


@pytest.mark.django_db
def test_leased_job_task_schema_matches_what_the_scheduling_calls_answer(
    document: dict[str, Any], alice: Caller
) -> None:
    alice.client.post("/arvados/v1/job_tasks", {}, format="json")
    claimed = alice.client.post("/arvados/v1/job_tasks/claim", {}, format="json").json()
    assert claimed["kind"] == "arvados#jobTaskList"
    (task,) = claimed["items"]
    released = alice.client.post(
        f"/arvados/v1/job_tasks/{task['uuid']}/release", {}, format="json"
    ).json()
    properties = set(document["schemas"]["LeasedJobTask"]["properties"])
    for answered in (task, released):
        assert set(answered) - {"href", "kind"} == properties
    assert set(claimed) <= set(document["schemas"]["LeasedJobTaskList"]["properties"])
    listed = alice.client.get("/arvados/v1/job_tasks").json()
    assert set(listed) <= set(document["schemas"]["JobTaskList"]["properties"])


def test_every_ref_resolves_to_a_schema(document: dict[str, Any]) -> None:
    found = list(refs(document))
    assert found
    assert set(found) <= set(document["schemas"])


# -- methods -------------------------------------------------------------------------


def test_job_task_methods(document: dict[str, Any]) -> None:
    methods = document["resources"]["job_tasks"]["methods"]
    assert set(methods) >= set(JOB_TASK_METHODS)  # extensions come on top
    for name, (http_method, path, response) in JOB_TASK_METHODS.items():
        method = methods[name]
        assert method["id"] == f"arvados.job_tasks.{name}"
        assert (method["httpMethod"], method["path"]) == (http_method, path)
        assert method["response"] == {"$ref": response}
        if "{uuid}" in path:
            assert method["parameterOrder"] == ["uuid"]
            uuid = method["parameters"]["uuid"]
            assert (uuid["location"], uuid["required"], uuid["type"]) == ("path", True, "string")
        else:
            assert method["parameterOrder"] == []
        expected_scopes = [SCOPE, READONLY] if http_method == "GET" else [SCOPE]
        assert method["scopes"] == expected_scopes


@pytest.mark.parametrize("name", ["create", "update"])
def test_create_and_update_take_a_job_task_body(document: dict[str, Any], name: str) -> None:
    method = document["resources"]["job_tasks"]["methods"][name]
    assert method["request"] == {
        "required": True,
        "properties": {"job_task": {"$ref": "JobTask"}},
    }


def test_list_parameters(document: dict[str, Any]) -> None:
    parameters = document["resources"]["job_tasks"]["methods"]["list"]["parameters"]
    described = {
        name: (value["type"], value["location"], value["required"], value.get("default"))
        for name, value in parameters.items()
    }
    assert described == {
        # array/object: the SDK sends them JSON-encoded in the query string
        "filters": ("array", "query", False, None),
        "where": ("object", "query", False, None),
        "order": ("array", "query", False, None),
        "select": ("array", "query", False, None),
        "distinct": ("boolean", "query", False, None),
        "limit": ("integer", "query", False, "100"),
        "offset": ("integer", "query", False, "0"),
        "count": ("string", "query", False, "exact"),
        "cluster_id": ("string", "query", False, None),
    }


def test_create_parameters(document: dict[str, Any]) -> None:
    parameters = document["resources"]["job_tasks"]["methods"]["create"]["parameters"]
    assert parameters["ensure_unique_name"]["type"] == "boolean"
    assert parameters["ensure_unique_name"]["default"] == "false"
    assert parameters["select"]["type"] == "array"
    assert "cluster_id" in parameters


def test_every_default_is_a_string(document: dict[str, Any]) -> None:
    defaults = [
        parameter["default"]
        for _, _, method in all_methods(document)
        for parameter in method["parameters"].values()
        if "default" in parameter
    ]
    assert defaults
    assert all(isinstance(default, str) for default in defaults)


def test_every_method_routes_to_a_view_that_handles_it(document: dict[str, Any]) -> None:
    for resource, name, method in all_methods(document):
        path = document["basePath"] + re.sub(r"\{\w+\}", TASK_UUID, method["path"])
        try:
            match = resolve(path)
        except Resolver404:
            pytest.fail(f"{resource}.{name}: {path} does not resolve")
        view_class = match.func.cls
        assert view_class is not PathNotFoundView, f"{resource}.{name}: {path} is not routed"
        http_method = method["httpMethod"].lower()
        actions = getattr(match.func, "actions", None)
        handles = (
            http_method in actions if actions is not None else hasattr(view_class, http_method)
        )
        assert handles, f"{resource}.{name}: {path} does not take {method['httpMethod']}"


# -- extending the registry ----------------------------------------------------------


def test_a_new_resource_and_method_take_a_few_lines() -> None:
    extended = DiscoveryRegistry()
    before = extended.document("https://x.example/")
    assert before["resources"] == {}
    extended.add_schema(
        object_schema("User", "Arvados user.", {"uuid": ("string", "Object ID.")}, "tpzed")
    )
    extended.add_schema(list_schema("User", "arvados#userList"))
    extended.add_methods(
        DiscoveryMethod("users", "current", "GET", "users/current", "The caller.", response="User"),
        DiscoveryMethod(
            "job_tasks",
            "claim",
            "POST",
            "job_tasks/claim",
            "Claim the next runnable task.",
            {"job_uuid": DiscoveryParameter("string", "Only this job.", required=True)},
            response="User",
        ),
        *crud_methods(
            "groups",
            "User",
            "group",
            list_parameters={"limit": DiscoveryParameter("integer", default=100)},
            create_parameters={},
        ),
    )
    after = extended.document("https://x.example/")  # the cache was invalidated
    current = after["resources"]["users"]["methods"]["current"]
    assert current["id"] == "arvados.users.current"
    assert (current["path"], current["parameterOrder"]) == ("users/current", [])
    claim = after["resources"]["job_tasks"]["methods"]["claim"]["parameters"]["job_uuid"]
    assert claim == {
        "type": "string",
        "description": "Only this job.",
        "location": "query",
        "required": True,
    }
    groups = after["resources"]["groups"]["methods"]
    assert set(groups) == set(JOB_TASK_METHODS)
    assert groups["list"]["parameters"]["limit"]["default"] == "100"
    assert set(refs(after)) <= set(after["schemas"])
