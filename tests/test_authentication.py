"""Tokens (spec §4, §15.2): where they are read from, how they are stored, when they fail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from job_tasks.models import ApiToken, hash_secret

URL = "/arvados/v1/job_tasks"

pytestmark = pytest.mark.django_db


def assert_not_logged_in(response) -> None:
    assert response.status_code == 401
    body = response.json()
    assert body["errors"] == ["Not logged in"]
    assert "error_token" in body


@pytest.mark.parametrize("method", ["get", "post"])
def test_no_token_is_401_not_logged_in(anon, method):
    assert_not_logged_in(getattr(anon, method)(URL))


def test_no_token_on_a_member_path_is_401_even_for_a_missing_task(anon):
    assert_not_logged_in(anon.get(f"{URL}/zzzzz-ot0gb-000000000000000"))


def test_no_token_with_bad_parameters_is_still_401(anon):
    assert_not_logged_in(anon.get(URL, {"limit": "-5", "filters": "[[garbage"}))
    assert_not_logged_in(anon.post(URL, data="{bad json", content_type="application/json"))


@pytest.mark.parametrize("scheme", ["Bearer", "OAuth2", "bearer", "oauth2"])
def test_authorization_header_schemes(alice, scheme):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {alice.token}")
    assert client.get(URL).status_code == 200


def test_unknown_scheme_is_401(alice):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {alice.token}")
    assert_not_logged_in(client.get(URL))


@pytest.mark.parametrize("name", ["api_token", "oauth_token"])
def test_token_as_query_parameter(alice, name):
    assert APIClient().get(URL, {name: alice.token}).status_code == 200


def test_token_as_form_field(alice):
    response = APIClient().post(URL, {"api_token": alice.token, "job_task": '{"sequence": 1}'})
    assert response.status_code == 200
    assert response.json()["owner_uuid"] == alice.uuid


def test_bare_secret_without_the_v2_prefix_works(alice):
    secret = alice.token.rsplit("/", 1)[1]
    assert APIClient().get(URL, {"api_token": secret}).status_code == 200


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t + "x",
        lambda t: t[:-1],
        lambda t: t.replace("v2/zzzzz-gj3su-", "v2/zzzzz-gj3su-0", 1),
        lambda t: "v2/" + t.rsplit("/", 1)[1],
        lambda t: "garbage",
    ],
)
def test_wrong_tokens_are_401(alice, mangle):
    assert_not_logged_in(APIClient().get(URL, {"api_token": mangle(alice.token)}))


def test_v2_token_with_another_tokens_uuid_is_401(alice, bob):
    bob_uuid = bob.token.split("/")[1]
    secret = alice.token.rsplit("/", 1)[1]
    assert_not_logged_in(APIClient().get(URL, {"api_token": f"v2/{bob_uuid}/{secret}"}))


def test_revoked_token_is_401(alice):
    ApiToken.objects.get(user=alice.user).revoke()
    assert_not_logged_in(alice.client.get(URL))


def test_expired_token_is_401_and_unexpired_works(alice):
    token = ApiToken.objects.get(user=alice.user)
    token.expires_at = timezone.now() + timedelta(hours=1)
    token.save()
    assert alice.client.get(URL).status_code == 200
    token.expires_at = timezone.now() - timedelta(seconds=1)
    token.save()
    assert_not_logged_in(alice.client.get(URL))


def test_tokens_are_stored_hashed(alice):
    secret = alice.token.rsplit("/", 1)[1]
    table = ApiToken._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
        rows = cursor.fetchall()
    stored = " ".join(str(value) for row in rows for value in row)
    assert secret not in stored
    assert hash_secret(secret) in stored


def test_inactive_user_is_refused_with_403(alice):
    alice.user.is_active = False
    alice.user.save()
    response = alice.client.get(URL)
    assert response.status_code == 403
    assert "inactive" in response.json()["errors"][0]


def test_token_lifetime_setting_makes_tokens_expire(settings, alice):
    settings.JOB_TASKS = {"TOKEN_LIFETIME_SECONDS": 60}
    token, _ = ApiToken.issue(alice.user)
    assert token.expires_at is not None
    assert timedelta(seconds=55) < token.expires_at - timezone.now() <= timedelta(seconds=60)
