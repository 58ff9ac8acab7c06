"""Hostile input at volume: every input of the corpus gets a clear answer and stored
data changes only when the input was valid.

Refused inputs (oversized bodies, deep JSON nesting, huge filter arrays, invalid
UTF-8, absurd limits and offsets, malformed operands) answer a 4xx in the Arvados
error envelope and leave every task row and the audit log exactly as they were.
SQL meta-characters are data: in free-text attributes they are stored and matched
literally (200); in uuid attributes they are a 422. Never a 5xx.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from django.db import connection, transaction

from job_tasks.app_settings import app_settings
from job_tasks.models import AuditEvent, JobTask
from tests.reliability import is_envelope, table

URL = "/arvados/v1/job_tasks"
pytestmark = pytest.mark.django_db

SQL = [
    "'",
    '"',
    "';",
    "--",
    "/*",
    "*/",
    "\\",
    "%",
    "_",
    "' OR '1'='1",
    "'); DROP TABLE job_tasks_jobtask; --",
    '"; DELETE FROM job_tasks_auditevent; --',
    "$$; SELECT pg_sleep(10); $$",
    "\\'; TRUNCATE job_tasks_jobtask CASCADE; --",
    "%' AND 1=1 --",
    "[]{}:,",
]
ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql"))


@pytest.fixture
def stored(alice, make_task) -> dict[str, Any]:
    """A few tasks to guard; returns what to compare with after each hostile request."""
    parent = make_task(alice, output="first", parameters={"k": "v"}, sequence=1)
    make_task(alice, output="second", created_by_job_task_uuid=parent.uuid, progress=0.5)
    return {"uuid": parent.uuid}


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def corpus(uuid: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(name, method, path, request arguments) of inputs that must be refused."""
    big = app_settings.MAX_BODY_BYTES
    member = f"{URL}/{uuid}"
    json_body = {"content_type": "application/json"}
    form = {"content_type": "application/x-www-form-urlencoded"}
    too_many = [["sequence", "=", n] for n in range(app_settings.MAX_FILTERS + 1)]
    uuids = [f"zzzzz-ot0gb-{n:015d}" for n in range(100_000)]
    return [
        # size
        ("oversized JSON create", "POST", URL, {"data": "x" * (big + 1), **json_body}),
        (
            "oversized output",
            "PUT",
            member,
            {"data": json.dumps({"job_task": {"output": "x" * big}}), **json_body},
        ),
        ("oversized form", "POST", URL, {"data": "job_task=" + "x" * (big + 1), **form}),
        # nesting
        (
            "deep JSON body",
            "POST",
            URL,
            {"data": f'{{"job_task": {{"parameters": {{"a": {deep(100_000)}}}}}}}', **json_body},
        ),
        (
            "deep JSON update",
            "PUT",
            member,
            {"data": f'{{"job_task": {{"parameters": {{"a": {deep(5_000)}}}}}}}', **json_body},
        ),
        ("deep filters", "GET", URL, {"data": {"filters": deep(50_000)}}),
        ("deep where", "GET", URL, {"data": {"where": '{"a":' * 5_000 + "1" + "}" * 5_000}}),
        ("deep order", "GET", URL, {"data": {"order": deep(50_000)}}),
        ("deep select", "GET", URL, {"data": {"select": deep(50_000)}}),
        (
            "deep parameters string",
            "POST",
            URL,
            {"data": {"job_task": json.dumps({"parameters": deep(5_000)})}, "format": "json"},
        ),
        # huge filter arrays
        ("too many filters", "GET", URL, {"data": {"filters": json.dumps(too_many)}}),
        (
            "huge in list",
            "GET",
            URL,
            {"data": {"filters": json.dumps([["uuid", "in", uuids]])}},
        ),
        (
            "huge not in list",
            "GET",
            URL,
            {"data": {"filters": json.dumps([["sequence", "not in", list(range(200_000))]])}},
        ),
        (
            "huge contains object",
            "GET",
            URL,
            {
                "data": {
                    "filters": json.dumps([["parameters", "contains", dict.fromkeys(uuids, 1)]])
                }
            },
        ),
        # invalid UTF-8 and text PostgreSQL cannot store
        (
            "invalid UTF-8 JSON create",
            "POST",
            URL,
            {"data": b'{"job_task": {"output": "\xff\xfe"}}', **json_body},
        ),
        (
            "invalid UTF-8 JSON update",
            "PUT",
            member,
            {"data": b'{"job_task": {"output": "\xc3\x28"}}', **json_body},
        ),
        (
            "lone surrogate output",
            "PUT",
            member,
            {"data": '{"job_task": {"output": "\\ud800"}}', **json_body},
        ),
        (
            "NUL in output",
            "PUT",
            member,
            {"data": {"job_task": {"output": "a\x00"}}, "format": "json"},
        ),
        (
            "NUL in parameters key",
            "PUT",
            member,
            {"data": {"job_task": {"parameters": {"a\x00": 1}}}, "format": "json"},
        ),
        ("NUL in filter", "GET", URL, {"data": {"filters": '[["output","=","a\\u0000"]]'}}),
        ("surrogate in filter", "GET", URL, {"data": {"filters": '[["output","=","\\udfff"]]'}}),
        # absurd limits and offsets
        *(
            (f"limit {value}", "GET", URL, {"data": {"limit": value}})
            for value in ("-1", "abc", "1e3", "NaN", "Infinity", "0x10", "١٢", str(-(2**70)))
        ),
        *(
            (f"offset {value}", "GET", URL, {"data": {"offset": value}})
            for value in ("-1", "1.5", "NaN", str(2**63), str(10**30), "9" * 5000)
        ),
        *(
            (f"history {name} {value}", "GET", f"{member}/history", {"data": {name: value}})
            for name, value in (("limit", "-5"), ("offset", str(10**30)), ("limit", "x"))
        ),
        ("claim limit huge", "POST", f"{URL}/claim?limit={10**30}", {}),
        ("claim lease huge", "POST", f"{URL}/claim?lease_seconds={10**30}", {}),
        ("claim lease negative", "POST", f"{URL}/claim?lease_seconds=-1", {}),
        # absurd values
        (
            "sequence 2^31",
            "PUT",
            member,
            {"data": {"job_task": {"sequence": 2**31}}, "format": "json"},
        ),
        (
            "progress 1e400",
            "PUT",
            member,
            {"data": '{"job_task": {"progress": 1e400}}', **json_body},
        ),
        (
            "integer 10^5000",
            "PUT",
            member,
            {"data": '{"job_task": {"sequence": 1%s}}' % ("0" * 5000), **json_body},
        ),
        ("filter 2^70", "GET", URL, {"data": {"filters": json.dumps([["qsequence", ">", 2**70]])}}),
        (
            "timestamp year 99999",
            "PUT",
            member,
            {"data": {"job_task": {"started_at": "99999-01-01T00:00:00Z"}}, "format": "json"},
        ),
        # SQL meta-characters where only a uuid or a name fits
        *(
            (
                f"SQL in {name}",
                "PUT",
                member,
                {"data": {"job_task": {name: text}}, "format": "json"},
            )
            for name in ("owner_uuid", "job_uuid", "created_by_job_task_uuid", "uuid")
            for text in SQL[9:12]
        ),
        *(
            (f"SQL in {parameter}", "GET", URL, {"data": {parameter: text}})
            for parameter, text in (
                ("select", json.dumps(['uuid"; --'])),
                ("distinct", "1; DROP"),
                ("count", "exact'; --"),
                ("filters", json.dumps([["output'; --", "=", "x"]])),
                ("filters", json.dumps([["output", "= 1; --", "x"]])),
            )
        ),
        ("SQL in path", "GET", f"{URL}/zzzzz-ot0gb-'%3B--", {}),
        ("SQL in job_uuid param", "POST", f"{URL}/claim?job_uuid=%27%20OR%201%3D1", {}),
    ]


def test_order_and_where_entries_that_name_no_column_are_ignored_as_arvados_does(alice, stored):
    """Spec: unusable ``order`` entries and ``where`` keys are silently ignored (200);
    the SQL in them never reaches the database."""
    before, events = table(), AuditEvent.objects.count()
    plain = [item["uuid"] for item in alice.client.get(URL).json()["items"]]
    for parameter, text in (
        ("order", json.dumps(["output; DROP TABLE job_tasks_jobtask"])),
        ("order", json.dumps(["uuid desc, (SELECT 1)"])),
        ("where", json.dumps({"output; --": "x"})),
        ("where", json.dumps({"1=1) OR (1": 1})),
    ):
        response = alice.client.get(URL, {parameter: text})
        assert response.status_code == 200, response.content[:300]
        assert [item["uuid"] for item in response.json()["items"]] == plain
    assert table() == before
    assert AuditEvent.objects.count() == events


#: Text that is not valid Unicode: lone surrogates (escaped or UTF-8 encoded) in JSON,
#: invalid UTF-8 in the query string or a form. Each was once accepted (stored, then a
#: 500 on every read on SQLite; or silently turned into U+FFFD); now a 422.
NOT_UNICODE = [
    pytest.param(
        "POST",
        URL,
        b'{"job_task": {"parameters": {"\\udc00": 1}}}',
        "application/json",
        id="surrogate escape in parameters",
    ),
    pytest.param(
        "POST",
        URL,
        b'{"job_task": {"parameters": {"\xed\xa0\x80": 1}}}',
        "application/json",
        id="UTF-8 encoded surrogate in a JSON body",
    ),
    pytest.param(
        "GET",
        URL + "?filters=%5B%5B%22output%22%2C%22%3D%22%2C%22%FF%22%5D%5D",
        None,
        None,
        id="invalid UTF-8 in the query string",
    ),
    pytest.param(
        "POST",
        URL,
        b"job_task=%7B%22output%22%3A%22%FF%22%7D",
        "application/x-www-form-urlencoded",
        id="invalid UTF-8 in a form field",
    ),
]


@pytest.mark.parametrize(("method", "path", "data", "content_type"), NOT_UNICODE)
def test_text_that_is_not_unicode_is_refused(alice, stored, method, path, data, content_type):
    alice.client.raise_request_exception = False
    before, events = table(), AuditEvent.objects.count()
    if data is None:
        response = alice.client.generic(method, path)
    else:
        response = alice.client.generic(method, path, data, content_type)
    assert 400 <= response.status_code < 500, response.content[:300]
    assert is_envelope(json.loads(response.content))
    assert table() == before
    assert AuditEvent.objects.count() == events


def test_every_hostile_input_is_a_clear_4xx_and_changes_nothing(alice, stored):
    alice.client.raise_request_exception = False  # a 500 is a finding, reported below
    before, events = table(), AuditEvent.objects.count()
    wrong = []
    cases = corpus(stored["uuid"])
    for name, method, path, kwargs in cases:
        problems = []
        with transaction.atomic():  # a case that changes data is reported, then undone
            if "content_type" in kwargs:
                response = alice.client.generic(
                    method, path, kwargs["data"], kwargs["content_type"]
                )
            else:
                response = getattr(alice.client, method.lower())(path, **kwargs)
            if not 400 <= response.status_code < 500:
                problems.append(f"status {response.status_code}")
            elif not is_envelope(json.loads(response.content)):
                problems.append("not the error envelope")
            if table() != before or AuditEvent.objects.count() != events:
                problems.append("stored data changed")
            transaction.set_rollback(True)
        if problems:
            wrong.append((name, problems, response.content[:200]))
    assert len(cases) > 60
    assert wrong == [], "\n".join(map(repr, wrong))


def test_sql_metacharacters_are_stored_and_matched_literally(alice, stored):
    uuid = stored["uuid"]
    for text in SQL:
        body = {"job_task": {"output": text, "parameters": {text: text, "k": [text]}}}
        response = alice.client.put(f"{URL}/{uuid}", body, format="json")
        assert response.status_code == 200, (text, response.content[:300])
        task = JobTask.objects.get(uuid=uuid)
        assert task.output == text
        assert task.parameters == {text: text, "k": [text]}
        assert alice.client.get(f"{URL}/{uuid}").json()["output"] == text
        for condition in (
            ["output", "=", text],
            ["output", "in", [text, "x"]],
            ["output", ">=", text],
            [f"parameters.{text}", "=", text]
            if "." not in text
            else ["parameters", "exists", text],
            ["parameters", "exists", text],
            ["parameters", "contains", {text: text}],
        ):
            listed = alice.client.get(URL, {"filters": json.dumps([condition])})
            assert listed.status_code == 200, (condition, listed.content[:300])
            assert uuid in [item["uuid"] for item in listed.json()["items"]], condition
        others = alice.client.get(URL, {"filters": json.dumps([["output", "!=", text]])})
        assert uuid not in [item["uuid"] for item in others.json()["items"]]
        listed = alice.client.get(URL, {"where": json.dumps({"output": text})})
        assert [item["uuid"] for item in listed.json()["items"]] == [uuid]
        for pattern in (["output", "like", text], ["output", "ilike", f"%{text}%"]):
            listed = alice.client.get(URL, {"filters": json.dumps([pattern])})
            # a pattern may be malformed (a trailing escape): then a 422, never a 5xx
            assert listed.status_code in (200, 422), (pattern, listed.content[:300])
    # the tables the strings name are still there and whole
    assert JobTask.objects.count() == 2
    assert AuditEvent.objects.filter(object_uuid=uuid, event_type="update").count() == len(SQL)
    assert connection.introspection.table_names().count("job_tasks_jobtask") == 1


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1E+999"])
def test_numbers_beyond_a_double_are_refused_not_stored_as_infinity(alice, stored, number):
    before = table()
    body = '{"job_task": {"parameters": {"x": NUMBER}}}'.replace("NUMBER", number)
    response = alice.client.generic("POST", URL, body, "application/json")
    assert response.status_code == 422
    assert "beyond the range of a JSON number" in response.json()["errors"][0]
    assert table() == before


def test_big_integers_in_parameters_stay_exact(alice):
    big = 10**40
    response = alice.client.generic(
        "POST",
        URL,
        '{"job_task": {"parameters": {"x": BIG, "y": 0.5}}}'.replace("BIG", str(big)),
        "application/json",
    )
    assert response.status_code == 200, response.content[:300]
    assert JobTask.objects.get(uuid=response.json()["uuid"]).parameters == {"x": big, "y": 0.5}


def test_json_nesting_is_bounded_whatever_the_python(alice, stored):
    """Python 3.12+ parses far deeper than 3.11 (and than anything can write back): one
    explicit bound, the same on every Python."""
    before = table()
    too_deep = '{"job_task": {"parameters": {"x": ' + "[" * 127 + "]" * 127 + "}}}"
    response = alice.client.generic("POST", URL, too_deep, "application/json")
    assert response.status_code == 422
    assert "nested deeper than 128 levels" in response.json()["errors"][0]
    assert table() == before
    deepest = '{"job_task": {"parameters": {"x": ' + "[" * 125 + "]" * 125 + "}}}"
    response = alice.client.generic("POST", URL, deepest, "application/json")
    assert response.status_code == 200, response.content[:300]
    task = JobTask.objects.get(uuid=response.json()["uuid"])
    assert alice.client.get(f"{URL}/{task.uuid}").json()["parameters"] == task.parameters
