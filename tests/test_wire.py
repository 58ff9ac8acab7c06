"""Wire details clients rely on (spec §5, §9, §15.7): CORS, request ids, errors, paths."""

from __future__ import annotations

import re

import pytest

URL = "/arvados/v1/job_tasks"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, PUT, POST, DELETE",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "86486400",
}

pytestmark = pytest.mark.django_db


def assert_cors(response) -> None:
    for header, value in CORS.items():
        assert response[header] == value


def test_success_and_error_responses_carry_cors_headers(alice, anon):
    assert_cors(alice.client.get(URL))
    assert_cors(anon.get(URL))
    assert_cors(alice.client.get(f"{URL}/zzzzz-ot0gb-000000000000000"))


@pytest.mark.parametrize("path", [URL, f"{URL}/zzzzz-ot0gb-000000000000000", "/arvados/v1/x"])
def test_options_is_200_empty_without_authentication(anon, path):
    response = anon.options(path)
    assert response.status_code == 200
    assert response.content == b""
    assert_cors(response)


def test_request_id_is_echoed_when_given(alice):
    response = alice.client.get(URL, HTTP_X_REQUEST_ID="my-request-42")
    assert response["X-Request-Id"] == "my-request-42"


@pytest.mark.parametrize("given", [None, "", "x" * 1025])
def test_request_id_is_generated_otherwise(alice, given):
    extra = {} if given is None else {"HTTP_X_REQUEST_ID": given}
    response = alice.client.get(URL, **extra)
    assert re.match(r"^req-[0-9a-z]{20}$", response["X-Request-Id"])


@pytest.mark.parametrize(
    "path", ["/arvados/v1/nothing", "/arvados/v1/job_tasks/x/y", "/arvados/v1", "/arvados/v1/"]
)
def test_unknown_paths_are_404_path_not_found(alice, path):
    response = alice.client.get(path)
    assert response.status_code == 404
    assert response.json()["errors"] == ["Path not found"]
    assert re.match(r"^\d+\+[0-9a-f]{8}$", response.json()["error_token"])


def test_wrong_method_is_405_in_the_envelope(alice):
    response = alice.client.put(URL, {}, format="json")
    assert response.status_code == 405
    assert "errors" in response.json()


def test_json_is_answered_whatever_accept_says(alice):
    response = alice.client.get(URL, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_oversized_body_is_413_in_the_envelope(settings, alice):
    settings.JOB_TASKS = {"MAX_BODY_BYTES": 100}
    response = alice.client.post(
        URL, data='{"job_task": {"output": "' + "x" * 200 + '"}}', content_type="application/json"
    )
    assert response.status_code == 413
    assert "larger than 100 bytes" in response.json()["errors"][0]


def test_unsupported_media_type_is_415_in_the_envelope(alice):
    response = alice.client.post(URL, data="sequence=1", content_type="text/plain")
    assert response.status_code == 415
    assert "errors" in response.json()


def test_big_integers_in_parameters_round_trip(alice):
    big = 2**70
    response = alice.client.post(
        URL,
        data=f'{{"job_task": {{"parameters": {{"n": {big}}}}}}}',
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["parameters"]["n"] == big
    uuid = response.json()["uuid"]
    assert alice.client.get(f"{URL}/{uuid}").json()["parameters"]["n"] == big


def test_deeply_nested_json_is_422_not_500(alice):
    body = '{"job_task": {"parameters": ' + '{"a": ' * 100_000 + "1" + "}" * 100_002
    response = alice.client.post(URL, data=body, content_type="application/json")
    assert response.status_code == 422


def test_nan_is_not_json(alice):
    response = alice.client.post(
        URL, data='{"job_task": {"progress": NaN}}', content_type="application/json"
    )
    assert response.status_code == 422


FORM = "application/x-www-form-urlencoded"


def assert_envelope(response, status: int, message: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["errors", "error_token"]
    assert message in body["errors"][0]
    assert_cors(response)
    assert re.match(r"^req-[0-9a-z]{20}$", response["X-Request-Id"])


# Django reads form bodies under its own limits (DATA_UPLOAD_MAX_MEMORY_SIZE and
# DATA_UPLOAD_MAX_NUMBER_FIELDS). Whichever reads the form first (the method override,
# the token lookup, the parameters), a body over a limit is answered in the envelope.


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        (URL, {}),
        (URL, {"HTTP_X_HTTP_METHOD_OVERRIDE": "GET"}),
        (f"{URL}/zzzzz-ot0gb-000000000000000", {}),
        ("/arvados/v1/nothing", {}),
        ("/discovery/v1/apis/arvados/v1/rest", {}),
    ],
)
def test_oversized_form_body_is_413_in_the_envelope(settings, alice, path, extra):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    body = "_method=GET&job_task=" + "x" * 200
    response = alice.client.post(path, data=body, content_type=FORM, **extra)
    assert_envelope(response, 413, "exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE")


def test_oversized_form_body_without_a_token_is_413_in_the_envelope(settings, anon):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = anon.post(URL, data="job_task=" + "x" * 200, content_type=FORM)
    assert_envelope(response, 413, "exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE")


def test_oversized_multipart_form_is_413_in_the_envelope(settings, alice):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = alice.client.post(URL, {"_method": "GET", "job_task": "x" * 200})
    assert_envelope(response, 413, "exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE")


@pytest.mark.parametrize("path", [URL, f"{URL}/zzzzz-ot0gb-000000000000000"])
def test_too_many_form_fields_is_413_in_the_envelope(settings, alice, path):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    body = "_method=GET&" + "&".join(f"f{n}=1" for n in range(10))
    response = alice.client.post(path, data=body, content_type=FORM)
    assert_envelope(response, 413, "DATA_UPLOAD_MAX_NUMBER_FIELDS")


def test_too_many_multipart_fields_is_413_in_the_envelope(settings, alice):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    response = alice.client.post(URL, {f"f{n}": "1" for n in range(10)})
    assert_envelope(response, 413, "DATA_UPLOAD_MAX_NUMBER_FIELDS")


def test_too_many_query_parameters_is_413_in_the_envelope(settings, alice):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    query = "&".join(f"f{n}=1" for n in range(10))
    response = alice.client.get(f"{URL}?{query}")
    assert_envelope(response, 413, "DATA_UPLOAD_MAX_NUMBER_FIELDS")


def test_a_form_body_within_the_limits_still_authenticates_and_overrides(settings, alice):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    body = f"_method=GET&api_token={alice.token}&limit=0"
    response = alice.client.__class__().post(URL, data=body, content_type=FORM)
    assert response.status_code == 200, response.content
    assert response.json()["kind"] == "arvados#jobTaskList"
    assert response.json()["limit"] == 0
    assert_cors(response)


# The api_token parameter may be in a form body whatever the method (spec §15.2).


@pytest.mark.parametrize("multipart", [False, True])
def test_token_in_the_form_body_of_a_header_overridden_post(anon, alice, make_task, multipart):
    make_task(alice)
    if multipart:
        response = anon.post(URL, {"api_token": alice.token}, HTTP_X_HTTP_METHOD_OVERRIDE="GET")
    else:
        body = f"api_token={alice.token}"
        response = anon.post(URL, body, content_type=FORM, HTTP_X_HTTP_METHOD_OVERRIDE="GET")
    assert response.status_code == 200, response.content
    assert response.json()["kind"] == "arvados#jobTaskList"
    assert len(response.json()["items"]) == 1


@pytest.mark.parametrize("method", ["put", "patch"])
def test_token_in_a_urlencoded_update_body(anon, alice, make_task, method):
    task = make_task(alice)
    body = f"api_token={alice.token}&job_task%5Bsequence%5D=7"
    response = getattr(anon, method)(f"{URL}/{task.uuid}", body, content_type=FORM)
    assert response.status_code == 200, response.content
    assert response.json()["sequence"] == 7


def test_token_in_a_urlencoded_delete_body(anon, alice, make_task):
    task = make_task(alice)
    response = anon.delete(f"{URL}/{task.uuid}", f"oauth_token={alice.token}", content_type=FORM)
    assert response.status_code == 200, response.content
    assert response.json()["uuid"] == task.uuid


@pytest.mark.parametrize(
    ("client", "method"), [("anon", "put"), ("alice", "patch"), ("anon", "delete")]
)
def test_oversized_urlencoded_body_of_other_methods_is_413_before_any_401(
    request, settings, alice, make_task, client, method
):
    task = make_task(alice)
    caller = alice.client if client == "alice" else request.getfixturevalue("anon")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    body = "job_task%5Boutput%5D=" + "x" * 200
    response = getattr(caller, method)(f"{URL}/{task.uuid}", body, content_type=FORM)
    assert_envelope(response, 413, "exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE")


def test_too_many_fields_in_a_urlencoded_put_is_413_in_the_envelope(
    settings, anon, alice, make_task
):
    task = make_task(alice)
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    body = "&".join(f"f{n}=1" for n in range(10))
    response = anon.put(f"{URL}/{task.uuid}", body, content_type=FORM)
    assert_envelope(response, 413, "DATA_UPLOAD_MAX_NUMBER_FIELDS")
