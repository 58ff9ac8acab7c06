"""Token authentication as Arvados clients send it (spec §4, §15.2)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connections, router
from django.db.models import CharField, Exists, Func, OuterRef, QuerySet, Subquery
from django.http import QueryDict
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from .models import MANAGER_PERMISSION, ApiToken, GroupIdentity, hash_secret
from .prepared import PreparedQuery

NOT_LOGGED_IN = "Not logged in"
_HEADER_SCHEMES = ("bearer", "oauth2")
_MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def token_from_request(request: Request) -> str | None:
    """The token the client sent, by Arvados's precedence: parameter, then header.

    The ``api_token`` / ``oauth_token`` parameter may be in the query string or in a
    form body. JSON bodies are not parsed here: a malformed body must still be
    answered with 401 before it is reported as malformed.

    Reading a form body (or the query string) may raise Django's ``RequestDataTooBig``
    or ``TooManyFieldsSent``; they are left to propagate. DRF authenticates inside the
    view's exception handling, which answers them in the error envelope (413).
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
    token = _TOKEN_LOOKUP.first(
        hash_secret(secret),
        key=(tuple(settings.AUTHENTICATION_BACKENDS), settings.AUTH_USER_MODEL),
        using=router.db_for_read(ApiToken),
    )
    if token is None or (token_uuid is not None and token.uuid != token_uuid):
        return None
    if token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= timezone.now():
        return None
    return token


def _token_query(secret_hash: str) -> QuerySet[ApiToken]:
    """The token with this hash, its user, the user's identity and job-manager flag."""
    tokens = ApiToken.objects.select_related("user", "user__job_tasks_identity")
    flag = _manager_flag()
    if flag is not None:
        tokens = tokens.annotate(_user_is_manager=flag)
    groups = _group_uuids()
    if groups is not None:
        tokens = tokens.annotate(_user_group_uuids=groups)
    return tokens.filter(secret_hash=secret_hash)


#: Every request makes this lookup: compiled once per connection (and settings that
#: shape it), not on every request.
_TOKEN_LOOKUP = PreparedQuery("token", _token_query, arity=1)


class _JoinedUuids(Func):
    """The values of a column, comma-joined (uuids hold no commas): an aggregate that
    needs no GROUP BY in a scalar subquery."""

    function = "STRING_AGG"
    template = "%(function)s(%(expressions)s, ',')"
    output_field = CharField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(compiler, connection, function="GROUP_CONCAT", **extra)


def _group_uuids() -> Subquery | None:
    """The uuids of the token's user's groups, as a subquery of the token lookup, so
    that visibility and write checks need no query of their own (``Actor.group_uuids``).

    On SQLite and PostgreSQL, for user models with Django's ``groups``; otherwise
    ``Actor.group_uuids`` asks the database as usual.
    """
    if connections[router.db_for_read(ApiToken)].vendor not in ("postgresql", "sqlite"):
        return None
    user_model = get_user_model()
    if "groups" not in {field.name for field in user_model._meta.get_fields()}:
        return None
    users = user_model._meta.get_field("groups").related_query_name()
    identities = GroupIdentity.objects.filter(**{f"group__{users}": OuterRef("user_id")})
    identities = identities.order_by()
    joined = identities.annotate(_joined=_JoinedUuids("uuid")).values("_joined")
    return Subquery(joined, output_field=CharField())


def _manager_flag() -> Exists | None:
    """Whether the token's user holds the job-manager permission, as a subquery of the
    token lookup, so that authenticating answers ``is_manager`` in the same query.

    Only when ``ModelBackend`` is the sole backend (then the permission comes from the
    user's own or their groups' permissions, nowhere else) and the user model has
    Django's permission fields; otherwise ``is_manager`` asks ``has_perm`` as usual.
    """
    if list(settings.AUTHENTICATION_BACKENDS) != [_MODEL_BACKEND]:
        return None
    user_model = get_user_model()
    fields = {field.name for field in user_model._meta.get_fields()}
    if not {"user_permissions", "groups"} <= fields:
        return None
    app_label, codename = MANAGER_PERMISSION.split(".")
    permission = Permission.objects.filter(
        content_type__app_label=app_label, codename=codename
    ).values("pk")
    # Through the link tables only: fewer joins for PostgreSQL's planner (measured in
    # bench/perf.py: a third of the lookup's time went to planning the join-heavy form).
    own = _links(user_model, "user_permissions", permission)
    granting_groups = Group.permissions.through.objects.filter(permission_id__in=permission)
    through_group = _links(user_model, "groups", granting_groups.values("group_id"))
    return Exists(own) | Exists(through_group)


def _links(user_model: Any, name: str, targets: Any) -> Any:
    """Rows of the user model's ``name`` link table joining the token's user to ``targets``."""
    field = user_model._meta.get_field(name)
    return field.remote_field.through.objects.filter(
        **{
            f"{field.m2m_field_name()}_id": OuterRef("user_id"),
            f"{field.m2m_reverse_field_name()}_id__in": targets,
        }
    )


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
        flag = getattr(token, "_user_is_manager", None)
        if flag is not None:
            user._job_tasks_has_manager_permission = flag
        if hasattr(token, "_user_group_uuids"):
            joined = token._user_group_uuids
            user._job_tasks_group_uuids = frozenset(joined.split(",")) if joined else frozenset()
        return user, token

    def authenticate_header(self, request: Request) -> str:
        # A value here makes DRF answer 401 (not 403) to unauthenticated requests.
        return 'Bearer realm="arvados"'
