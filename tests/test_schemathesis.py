"""Fuzzing the live API against its own OpenAPI schema with schemathesis (issue 6).

The app runs on loopback in pytest-django's ``live_server`` (transactional database:
an in-memory SQLite database is shared with the server thread, PostgreSQL is reached
through the server's own connections), with ``tests.urls_openapi`` serving the schema
at ``/api/schema/``; the first test checks that it serves exactly the schema fuzzed
here, which is generated at collection time so that schemathesis can make one pytest
item per operation (they spread over xdist workers).

For every operation schemathesis sends the schema's examples and generated requests,
valid and invalid, with alice's token, and checks every answer: never a 5xx, a
documented status code and content type, a body and headers that match the schema,
and (a check of ours) task objects with every key in wire order unless ``select``
asked for fewer. The schema's example uuid names one of alice's tasks, so examples
reach a real task. A stateful run then chains operations through the links
schemathesis infers (create a task, then get, update, claim, renew, delete it...), so
that generated requests reach fresh tasks too.

Bounded and reproducible: derandomized Hypothesis, no example database, 50 examples per
operation and 25 chains of 10 steps (20 to 30 seconds in all on SQLite, 40 on
PostgreSQL, on two cores); ``JOB_TASKS_FUZZ_EXAMPLES`` raises the number for a deeper
run. Hypothesis has no per-example deadline (a loaded machine would make it flaky);
instead each fuzz test fails once it has run ``FUZZ_TIMEOUT`` seconds (pytest-timeout),
so that a hung request or a runaway run fails the job instead of stalling it.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.settings import patched_settings
from schemathesis import Case, CheckContext, Response

from job_tasks.openapi import EXAMPLE_JOB_UUID, EXAMPLE_TASK_UUID, SPECTACULAR_SETTINGS
from job_tasks.representation import KIND, WIRE_ATTRIBUTES
from tests.conftest import Caller

#: Examples per operation; ``JOB_TASKS_FUZZ_EXAMPLES=500`` digs deeper (locally).
MAX_EXAMPLES = int(os.environ.get("JOB_TASKS_FUZZ_EXAMPLES", "50"))
STATEFUL_SCENARIOS = max(MAX_EXAMPLES // 2, 1)
STATEFUL_STEPS = 10
#: Wall-clock seconds each fuzz test may take: some 40 times what the slowest takes now
#: (3 s), and more for a deeper run.
FUZZ_TIMEOUT = 120 * max(1, MAX_EXAMPLES // 50)
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
LEASE_KEYS = ("lease_expires_at", "attempt")
FUZZ_SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)


def generate_schema() -> dict[str, Any]:
    """The schema ``/api/schema/?format=json`` serves for ``tests.urls_openapi``."""
    with patched_settings(SPECTACULAR_SETTINGS):
        raw = SchemaGenerator(urlconf="tests.urls").get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(raw, renderer_context={}))


def schemathesis_config() -> schemathesis.Config:
    """Our checks only, every generation mode, the token in the header only."""
    checks: dict[str, Any] = {"enabled": False}
    checks.update({name: {"enabled": True} for name in CHECKS})
    return schemathesis.Config.from_dict(
        {
            "checks": checks,
            "generation": {
                "mode": "all",
                # A generated api_token parameter would win over the real token.
                "with-security-parameters": False,
            },
            "phases": {"coverage": {"enabled": False}},
        }
    )


RAW_SCHEMA = generate_schema()
# A copy: schemathesis edits the dict it is given (it inlines references, adds links).
schema = schemathesis.openapi.from_dict(copy.deepcopy(RAW_SCHEMA), config=schemathesis_config())


@pytest.fixture
def api(
    transactional_db: None, live_server: Any, settings: Any, alice: Caller, make_task: Any
) -> dict[str, Any]:
    """The live server's URL and alice's credentials, with tasks of hers to find."""
    settings.ROOT_URLCONF = "tests.urls_openapi"
    now = timezone.now()
    make_task(alice, uuid=EXAMPLE_TASK_UUID, job_uuid=EXAMPLE_JOB_UUID, sequence=0)
    make_task(alice, job_uuid=EXAMPLE_JOB_UUID, sequence=1, parameters={"input": "a.txt"})
    make_task(alice, job_uuid=EXAMPLE_JOB_UUID, sequence=0, started_at=now, progress=0.5)
    make_task(alice, success=False, started_at=now, finished_at=now, output="x")
    return {
        "base_url": live_server.url,
        "headers": {"Authorization": f"Bearer {alice.token}"},
    }


def wire_order(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Task objects hold every key in wire order (spec §2.1), or ``kind`` and a selection."""
    if not 200 <= response.status_code < 300:
        return None
    body = response.json()
    if not isinstance(body, dict):
        return None
    selected = "select" in (case.query or {}) or (
        isinstance(case.body, dict) and "select" in case.body
    )
    objects = body.get("items", []) if "items" in body else [body]
    for item in objects:
        if not isinstance(item, dict) or item.get("kind") != KIND:
            continue
        keys = [key for key in item if key not in LEASE_KEYS]
        assert keys == [key for key in WIRE_ATTRIBUTES if key in item], f"key order: {keys}"
        if not selected:
            assert keys == list(WIRE_ATTRIBUTES), f"not every key: {keys}"
    return True


@pytest.mark.slow
def test_the_server_serves_the_fuzzed_schema(api: dict[str, Any]) -> None:
    response = requests.get(f"{api['base_url']}/api/schema/?format=json", timeout=30)
    assert response.status_code == 200
    assert differences(response.json(), RAW_SCHEMA) == []


def differences(served: Any, fuzzed: Any, where: str = "") -> list[str]:
    """Where two JSON documents differ (JSON-pointer-like locations), for a readable failure."""
    if isinstance(served, dict) and isinstance(fuzzed, dict):
        return [
            found
            for key in sorted(served.keys() | fuzzed.keys())
            for found in differences(served.get(key), fuzzed.get(key), f"{where}/{key}")
        ]
    if isinstance(served, list) and isinstance(fuzzed, list) and len(served) == len(fuzzed):
        return [
            found
            for index, (a, b) in enumerate(zip(served, fuzzed, strict=True))
            for found in differences(a, b, f"{where}/{index}")
        ]
    return [] if served == fuzzed else [f"{where}: {served!r} != {fuzzed!r}"]


@pytest.mark.slow
@pytest.mark.timeout(FUZZ_TIMEOUT)
@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_answers_as_documented(case: Case, api: dict[str, Any]) -> None:
    case.call_and_validate(
        base_url=api["base_url"], headers=api["headers"], additional_checks=[wire_order]
    )


@pytest.mark.slow
@pytest.mark.timeout(FUZZ_TIMEOUT)
def test_chained_operations_answer_as_documented(api: dict[str, Any]) -> None:
    """Create, then get / update / claim / renew / release / delete the task, and so on."""

    class Chain(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return dict(api)

        def validate_response(
            self, response: Response, case: Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            super().validate_response(response, case, [wire_order], **kwargs)

    Chain.run(
        settings=hypothesis.settings(
            FUZZ_SETTINGS, max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS
        )
    )


# -- what fuzzing found ----------------------------------------------------------------
#
# Integer parameters of the scheduling calls were read with ``str.isdigit()``: true for
# superscript and circled digits, and for "--1" once the sign was stripped, all of which
# ``int()`` refuses, so the ValueError escaped as a 500. Now they are 422.


@pytest.mark.parametrize(
    ("path", "query", "body"),
    [
        ("claim", "limit=--1", None),
        ("claim", "lease_seconds=%C2%B3", None),  # "³"
        ("claim", "", {"limit": "\u2460"}),  # "①" in a JSON body
        (f"{EXAMPLE_TASK_UUID}/renew", "lease_seconds=%C2%B2", None),  # "²"
        (f"{EXAMPLE_TASK_UUID}/renew", "attempt=--0", None),
        (f"{EXAMPLE_TASK_UUID}/release", "attempt=%C2%B9", None),  # "¹"
    ],
)
def test_bad_integer_parameters_are_422(
    alice: Caller, path: str, query: str, body: dict[str, Any] | None
) -> None:
    response = alice.client.post(
        f"/arvados/v1/job_tasks/{path}?{query}",
        data=json.dumps(body) if body is not None else None,
        content_type="application/json",
    )
    assert response.status_code == 422, response.content
    assert "must be an integer" in response.json()["errors"][0]
