"""Token authentication as Arvados clients send it (spec §4, §15.2)."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from .models import ApiToken, hash_secret

NOT_LOGGED_IN = "Not logged in"
_HEADER_SCHEMES = ("bearer", "oauth2")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def token_from_request(request: Request) -> str | None:
    """The token the client sent, by Arvados's precedence: parameter, then header.

    The ``api_token`` / ``oauth_token`` parameter may be in the query string or in a
    form body. JSON bodies are not parsed here: a malformed body must still be
    answered with 401 before it is reported as malformed.

    Reading a form body (or the query string) may raise Django's ``RequestDataTooBig``
    or ``TooManyFieldsSent``; they are left to propagate. DRF authenticates inside the
    view's exception handling, which answers them in the error envelope (413, 400).
    """
    django_request = request._request
    sources: list[QueryDict] = [django_request.GET]
    form = _form_fields(request)
    if form is not None:
        sources.append(form)
    for source in sources:
        for name in ("api_token", "oauth_token"):
            value = source.get(name)
            if value:
                return value
    header = django_request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in _HEADER_SCHEMES and value.strip():
        return value.strip()
    return None


def _form_fields(request: Request) -> QueryDict | None:
    """The fields of a form body, whatever the method; None for other bodies.

    Django parses the forms of POST requests (a POST that the method override turned
    into a GET was parsed before the change). A URL-encoded body of any other method
    (Arvados clients send PUT forms) is parsed here from ``HttpRequest.body``, under
    the same limits (``DATA_UPLOAD_MAX_MEMORY_SIZE``, ``DATA_UPLOAD_MAX_NUMBER_FIELDS``);
    the parsers then read the cached body. Multipart bodies of other methods are not
    read, as Django does not read them.
    """
    django_request = request._request
    content_type = django_request.META.get("CONTENT_TYPE", "")
    if not content_type.startswith(_FORM_TYPES):
        return None
    if django_request.method == "POST" or content_type.startswith("multipart/form-data"):
        return django_request.POST
    return QueryDict(django_request.body, encoding=django_request.encoding)


def find_token(raw: str) -> ApiToken | None:
    """The usable token matching ``raw`` (a bare secret or ``v2/<uuid>/<secret>``), if any."""
    token_uuid = None
    secret = raw
    if raw.startswith("v2/"):
        parts = raw.split("/")
        if len(parts) != 3:
            return None
        _, token_uuid, secret = parts
    token = (
        ApiToken.objects.select_related("user", "user__job_tasks_identity")
        .filter(secret_hash=hash_secret(secret))
        .first()
    )
    if token is None or (token_uuid is not None and token.uuid != token_uuid):
        return None
    if token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= timezone.now():
        return None
    return token


class ApiTokenAuthentication(BaseAuthentication):
    """Authenticates ``Authorization: Bearer|OAuth2 <token>`` or an ``api_token`` parameter.

    A request without a token, or with a bad, expired or revoked one, is refused with
    401 ``Not logged in``. Inactive users authenticate; the permission classes refuse
    them with 403 (as Arvados did).
    """

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        raw = token_from_request(request)
        if raw is None:
            return None
        token = find_token(raw)
        if token is None:
            raise AuthenticationFailed(NOT_LOGGED_IN)
        user = token.user
        identity = getattr(user, "job_tasks_identity", None)
        if identity is not None:
            user._job_tasks_uuid = identity.uuid
        return user, token

    def authenticate_header(self, request: Request) -> str:
        # A value here makes DRF answer 401 (not 403) to unauthenticated requests.
        return 'Bearer realm="arvados"'
