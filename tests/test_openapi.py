"""The OpenAPI description (``job_tasks/openapi.py``): generated clean, and saying the right things.

``spectacular --validate --fail-on-warn`` runs twice: in this process on the test URLconf
(with the settings ``job_tasks.openapi.SPECTACULAR_SETTINGS`` asks for), and in a
subprocess on the reference project exactly as CI and users run it. Both must be free
of warnings and errors, and describe the same paths; the project also serves the schema
at ``/api/schema/`` and Swagger UI at ``/api/docs/`` (asked through Django's test client
in a subprocess with the project's own settings). The rest of the module reads the
generated schema: paths, parameters, objects and the error envelope. That the app
works without drf-spectacular is checked in a subprocess where it cannot be imported.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import drf_spectacular_sidecar
import pytest
import yaml
from django.core.management import call_command
from drf_spectacular.management.commands.spectacular import Command as SpectacularCommand
from drf_spectacular.validation import validate_schema

from job_tasks.openapi import preprocess_endpoints
from job_tasks.representation import STORED_ATTRIBUTES, WIRE_ATTRIBUTES
from job_tasks.serializers import JobTaskSerializer

REPO_ROOT = Path(__file__).resolve().parent.parent
JSON = "application/json"
TASK_PATHS = {
    "/arvados/v1/job_tasks": {"get", "post"},
    "/arvados/v1/job_tasks/{uuid}": {"get", "put", "patch", "delete"},
    "/arvados/v1/job_tasks/{uuid}/history": {"get"},
    "/arvados/v1/job_tasks/{uuid}/renew": {"post"},
    "/arvados/v1/job_tasks/{uuid}/release": {"post"},
    "/arvados/v1/job_tasks/{uuid}/retry": {"post"},
    "/arvados/v1/job_tasks/claim": {"post"},
    "/arvados/v1/job_tasks/summary": {"get"},
    "/arvados/v1/users/current": {"get"},
    "/arvados/v1/groups": {"get"},
    "/discovery/v1/apis/arvados/v1/rest": {"get", "post"},
}
LIST_PARAMETERS = {"filters", "where", "order", "select", "distinct", "limit", "offset", "count"}
JSON_PARAMETERS = {"filters", "where", "order", "select"}
NULLABLE = {
    "modified_by_client_uuid",
    "modified_by_user_uuid",
    "modified_at",
    "job_uuid",
    "created_by_job_task_uuid",
    "sequence",
    "qsequence",
    "output",
    "progress",
    "success",
    "started_at",
    "finished_at",
}
TIMESTAMPS = {"created_at", "modified_at", "started_at", "finished_at"}
#: Asks the reference project for ``sys.argv[1:]`` with Django's test client; prints JSON.
PROJECT_GET = """
import json, sys
import django
from django.test.utils import setup_test_environment

django.setup()
setup_test_environment()
from django.test import Client

client = Client()
answers = {}
for path in sys.argv[1:]:
    response = client.get(path)
    answers[path] = {
        "status": response.status_code,
        "content_type": response["Content-Type"],
        "body": response.content.decode(),
    }
print(json.dumps(answers))
"""


def project_env() -> dict[str, str]:
    """The environment the reference project runs in here: debug, a throwaway database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "jobtasks_project.settings",
        "DEBUG": "1",
        "DATABASE_URL": "sqlite:///:memory:",
    }


def run_spectacular(path: Path) -> dict[str, Any]:
    """``spectacular --validate --fail-on-warn`` on the test URLconf; raises on any warning."""
    call_command(
        SpectacularCommand(),  # not in the test settings' INSTALLED_APPS: pass the command
        "--validate",
        "--fail-on-warn",
        "--urlconf",
        "tests.urls",
        "--custom-settings",
        "job_tasks.openapi.SPECTACULAR_SETTINGS",
        "--format",
        "openapi-json",
        "--file",
        str(path),
    )
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_spectacular(tmp_path_factory.mktemp("openapi") / "schema.json")


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]


def parameters(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {parameter["name"]: parameter for parameter in operation.get("parameters", [])}


def component(schema: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    _, _, kind, name = reference["$ref"].split("/")
    return schema["components"][kind][name]


def test_the_schema_is_generated_and_valid_without_warnings(schema: dict[str, Any]) -> None:
    assert schema["openapi"].startswith("3.")


def test_the_reference_project_serves_a_clean_schema_of_the_same_paths(
    schema: dict[str, Any], tmp_path: Path
) -> None:
    """What CI runs: ``manage.py spectacular --validate --fail-on-warn``, on the project."""
    out = tmp_path / "schema.json"
    command = ["manage.py", "spectacular", "--validate", "--fail-on-warn"]
    proc = subprocess.run(
        [sys.executable, *command, "--format", "openapi-json", "--file", str(out)],
        cwd=REPO_ROOT,
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr
    assert "Error" not in proc.stderr
    served = json.loads(out.read_text())
    assert served["paths"] == schema["paths"]
    assert served["components"] == schema["components"]


def test_the_reference_project_serves_the_schema_and_swagger_ui(schema: dict[str, Any]) -> None:
    """``jobtasks_project.urls``: ``/api/schema/`` (valid OpenAPI 3) and ``/api/docs/``."""
    proc = subprocess.run(
        [sys.executable, "-c", PROJECT_GET, "/api/schema/", "/api/docs/"],
        cwd=REPO_ROOT,
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    answers = json.loads(proc.stdout)

    served = answers["/api/schema/"]
    assert served["status"] == 200
    assert served["content_type"].startswith("application/vnd.oai.openapi")
    document = yaml.safe_load(served["body"])
    validate_schema(document)  # raises on anything that is not valid OpenAPI 3
    assert document["openapi"].startswith("3.")
    assert document["paths"] == schema["paths"]

    docs = answers["/api/docs/"]
    assert docs["status"] == 200
    assert docs["content_type"].startswith("text/html")
    assert 'id="swagger-ui"' in docs["body"]
    assert 'url: "/api/schema/"' in docs["body"]
    # Swagger UI comes from the sidecar package (no CDN): each file it names is there.
    assets = re.findall(r'(?:src|href)="/static/drf_spectacular_sidecar/([^"]+)"', docs["body"])
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    sidecar_static = Path(drf_spectacular_sidecar.__file__).parent / "static"
    for asset in assets:
        assert (sidecar_static / "drf_spectacular_sidecar" / asset).is_file(), asset


def test_paths_are_the_api_operations_without_slashes_or_regexes(schema: dict[str, Any]) -> None:
    assert {path: set(item) for path, item in schema["paths"].items()} == TASK_PATHS


def test_every_operation_has_a_unique_id_a_summary_and_a_tag(schema: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(schema)]
    assert len(ids) == len(set(ids))
    for _, _, operation in operations(schema):
        assert operation["summary"]
        assert operation["description"]
        assert len(operation["tags"]) == 1


def test_token_security_everywhere_but_discovery(schema: dict[str, Any]) -> None:
    schemes = schema["components"]["securitySchemes"]
    assert (schemes["ArvadosToken"]["type"], schemes["ArvadosToken"]["scheme"]) == (
        "http",
        "bearer",
    )
    assert schemes["ArvadosTokenParameter"]["in"] == "query"
    assert schemes["ArvadosTokenParameter"]["name"] == "api_token"
    for path, _, operation in operations(schema):
        if path.startswith("/discovery/"):
            assert "security" not in operation
            assert set(operation["responses"]) == {"200"}
        else:
            assert operation["security"] == [{"ArvadosToken": []}, {"ArvadosTokenParameter": []}]
            assert {"401", "503"} <= set(operation["responses"])


def test_errors_are_the_arvados_envelope(schema: dict[str, Any]) -> None:
    error = schema["components"]["schemas"]["ArvadosError"]
    assert error["required"] == ["errors", "error_token"]
    assert error["properties"]["errors"]["minItems"] == 1
    responses = schema["components"]["responses"]
    used = {code for _, _, operation in operations(schema) for code in operation["responses"]}
    assert used == {"200", "400", "401", "403", "404", "412", "413", "415", "422", "503"}
    assert "MethodNotAllowed" in responses  # 405: documented, but no operation answers it
    for name, response in responses.items():
        assert response["content"][JSON]["schema"] == {
            "$ref": "#/components/schemas/ArvadosError"
        }, name
        assert "X-Request-Id" in response["headers"]
    create = schema["paths"]["/arvados/v1/job_tasks"]["post"]
    unprocessable = component(schema, create["responses"]["422"])
    assert unprocessable == responses["Unprocessable"]
    assert "WWW-Authenticate" in responses["NotLoggedIn"]["headers"]
    assert "Retry-After" in responses["Unavailable"]["headers"]
    assert "Allow" in responses["MethodNotAllowed"]["headers"]


@pytest.mark.parametrize(
    ("path", "method", "codes"),
    [
        ("/arvados/v1/job_tasks/{uuid}", "get", {"200", "401", "403", "404", "422"}),
        ("/arvados/v1/job_tasks/{uuid}", "put", {"404", "412", "413", "415", "422"}),
        ("/arvados/v1/job_tasks/{uuid}", "patch", {"404", "412", "413", "415", "422"}),
        ("/arvados/v1/job_tasks/{uuid}", "delete", {"404", "412", "422"}),
        ("/arvados/v1/job_tasks", "post", {"403", "413", "415", "422"}),
    ],
)
def test_status_codes(schema: dict[str, Any], path: str, method: str, codes: set[str]) -> None:
    assert codes <= set(schema["paths"][path][method]["responses"])


def test_list_parameters(schema: dict[str, Any]) -> None:
    listed = parameters(schema["paths"]["/arvados/v1/job_tasks"]["get"])
    assert set(listed) == LIST_PARAMETERS
    for name in JSON_PARAMETERS:
        assert "schema" not in listed[name]
        assert set(listed[name]["content"]) == {JSON}, name
    assert listed["filters"]["content"][JSON]["schema"]["type"] == "array"
    assert listed["where"]["content"][JSON]["schema"]["type"] == "object"
    select = listed["select"]["content"][JSON]["schema"]
    assert select["items"]["enum"] == list(WIRE_ATTRIBUTES)
    assert select["minItems"] == 1
    assert listed["count"]["schema"]["enum"] == ["exact", "none"]
    assert listed["distinct"]["schema"]["type"] == "boolean"
    assert listed["limit"]["schema"] == {"type": "integer", "minimum": 0, "default": 100}
    assert listed["offset"]["schema"]["minimum"] == 0
    groups = parameters(schema["paths"]["/arvados/v1/groups"]["get"])
    assert set(groups) == {"filters", "limit", "offset", "count"}


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_select_on_objects(schema: dict[str, Any], method: str) -> None:
    operation = schema["paths"]["/arvados/v1/job_tasks/{uuid}"][method]
    described = parameters(operation)
    assert set(described["select"]["content"]) == {JSON}
    assert described["uuid"]["in"] == "path"
    answer = operation["responses"]["200"]["content"][JSON]["schema"]
    assert answer == {
        "anyOf": [
            {"$ref": "#/components/schemas/JobTask"},
            {"$ref": "#/components/schemas/JobTaskSelection"},
        ]
    }
    assert "ETag" in operation["responses"]["200"]["headers"]
    if method in ("put", "patch", "delete"):
        assert described["If-Match"]["in"] == "header"


def test_the_job_task_object(schema: dict[str, Any]) -> None:
    task = schema["components"]["schemas"]["JobTask"]
    assert list(task["properties"]) == list(WIRE_ATTRIBUTES)
    assert task["required"] == list(WIRE_ATTRIBUTES)
    nullable = {name for name, prop in task["properties"].items() if prop.get("nullable")}
    assert nullable == NULLABLE
    for name in TIMESTAMPS:
        prop = task["properties"][name]
        assert prop["type"] == "string"
        assert prop["pattern"] == r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$"
    types = {name: task["properties"][name].get("type") for name in STORED_ATTRIBUTES}
    assert types["sequence"] == types["qsequence"] == "integer"
    assert types["progress"] == "number"
    assert types["success"] == "boolean"
    assert types["parameters"] == "object"
    selection = schema["components"]["schemas"]["JobTaskSelection"]
    assert selection["required"] == ["kind"]
    assert selection["properties"] == task["properties"]


def test_the_list_envelope(schema: dict[str, Any]) -> None:
    envelope = schema["components"]["schemas"]["JobTaskList"]
    assert list(envelope["properties"]) == [
        "kind",
        "etag",
        "self_link",
        "offset",
        "limit",
        "items",
        "items_available",
    ]
    assert "items_available" not in envelope["required"]
    claimed = schema["components"]["schemas"]["LeasedJobTaskList"]
    assert "items_available" in claimed["required"]


def test_the_request_body_is_the_wrapped_form(schema: dict[str, Any]) -> None:
    for path, method in [
        ("/arvados/v1/job_tasks", "post"),
        ("/arvados/v1/job_tasks/{uuid}", "put"),
        ("/arvados/v1/job_tasks/{uuid}", "patch"),
    ]:
        body = schema["paths"][path][method]["requestBody"]
        assert set(body["content"]) == {JSON}
        assert body["content"][JSON]["schema"] == {"$ref": "#/components/schemas/JobTaskWrite"}
        assert not body.get("required")  # no body: defaults (create), no change (update)
    wrapper = schema["components"]["schemas"]["JobTaskWrite"]
    assert set(wrapper["properties"]) == {"job_task"}
    attributes = schema["components"]["schemas"]["JobTaskAttributes"]
    assert set(attributes["properties"]) == JobTaskSerializer.writable()
    assert attributes["additionalProperties"] is False


def test_the_hook_only_touches_the_api_routes() -> None:
    class Other:
        pass

    def callback(view: type) -> Any:
        def view_function() -> None:
            raise NotImplementedError

        view_function.cls = view  # type: ignore[attr-defined]
        return view_function

    from job_tasks.views import CurrentUserView, PathNotFoundView

    endpoints = [
        ("/arvados/v1/users/current/", "^x", "GET", callback(CurrentUserView)),
        ("/arvados/v1", "^y", "GET", callback(PathNotFoundView)),
        ("/other/", "^z", "GET", callback(Other)),
    ]
    assert [(path, method) for path, _, method, _ in preprocess_endpoints(endpoints)] == [
        ("/arvados/v1/users/current", "GET"),
        ("/other/", "GET"),
    ]


def test_the_app_works_without_drf_spectacular() -> None:
    """drf-spectacular is optional: the app imports, serves and never loads openapi.py."""
    script = """
import sys
sys.modules["drf_spectacular"] = None  # any import of it now fails
import django
django.setup()
from django.test import Client
response = Client().get("/discovery/v1/apis/arvados/v1/rest")
assert response.status_code == 200, response.status_code
assert response.json()["kind"] == "discovery#restDescription"
assert "job_tasks.openapi" not in sys.modules
print("ok")
"""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": "sqlite:///:memory:",
    }
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
