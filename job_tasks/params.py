"""Reading request parameters the way Arvados clients send them (spec §5.1, §7).

Parameters come from the query string and from the body (a JSON object or a form);
the body wins. The attributes of a create or update come from ``job_task`` in any
of four forms: a JSON object, a form/query field holding JSON, a bare JSON body, or
``job_task[attr]`` form fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from django.http import QueryDict
from rest_framework.request import Request

from .errors import InvalidRequest
from .renderers import loads
from .serializers import JobTaskSerializer

#: Keys inside ``job_task`` that are dropped without a word (spec §15.1).
IGNORED_ATTRIBUTES = frozenset(
    {
        "kind",
        "etag",
        "href",
        "created_at",
        "updated_at",
        "modified_at",
        "modified_by_client_uuid",
        "modified_by_user_uuid",
    }
)
#: Top-level keys of a bare JSON body that are taken as attributes: the table's
#: column names (Rails params wrapping, spec §5.1 form 3).
COLUMN_NAMES = frozenset(
    {
        "id",
        "uuid",
        "owner_uuid",
        "modified_by_client_uuid",
        "modified_by_user_uuid",
        "modified_at",
        "job_uuid",
        "sequence",
        "parameters",
        "output",
        "progress",
        "success",
        "created_at",
        "updated_at",
        "created_by_job_task_uuid",
        "qsequence",
        "started_at",
        "finished_at",
    }
)
WRAPPER = "job_task"
_NOT_A_HASH = "No job_task (or jobTask) hash provided with request"


def _flat(query: QueryDict) -> dict[str, Any]:
    return {key: query.get(key) for key in query}


def _check_utf8(raw: bytes, where: str) -> None:
    """Django reads invalid UTF-8 in a query string or form as U+FFFD, silently
    changing what was sent: refuse it instead (422)."""
    if raw.isascii() and b"%" not in raw:
        return
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"The {where} is not valid UTF-8") from None


def request_params(request: Request) -> dict[str, Any]:
    """Query-string parameters, updated with the body's (JSON object or form fields)."""
    django_request = request._request
    query = django_request.META.get("QUERY_STRING", "")
    try:  # WSGI passes the raw bytes as ISO-8859-1 text
        raw_query = query.encode("iso-8859-1")
    except UnicodeEncodeError:
        raw_query = query.encode("utf-8")
    _check_utf8(raw_query, "query string")
    params = _flat(request.query_params)
    data = request.data
    if isinstance(data, QueryDict):
        if request.content_type.startswith("application/x-www-form-urlencoded"):
            _check_utf8(django_request.body, "form body")
        params.update(_flat(data))
    elif isinstance(data, dict):
        params.update(data)
    elif data is not None:
        raise InvalidRequest("The request body must be a JSON object")
    return params


def job_task_attributes(request: Request, params: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes the client asks to write, validated for names (not yet for types).

    Unknown names are a 422 naming them; server-managed names are dropped.
    """
    raw: Any
    if WRAPPER in params:
        raw = params[WRAPPER]
        if isinstance(raw, str):
            try:
                raw = loads(raw) if raw.strip() else {}
            except (ValueError, RecursionError) as exc:
                raise InvalidRequest(f"Could not parse job_task as JSON: {exc}") from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise InvalidRequest(_NOT_A_HASH)
    else:
        nested = {
            key[len(WRAPPER) + 1 : -1]: value
            for key, value in params.items()
            if key.startswith(f"{WRAPPER}[") and key.endswith("]")
        }
        if nested:
            raw = nested
        elif isinstance(request.data, dict):
            raw = {key: value for key, value in request.data.items() if key in COLUMN_NAMES}
        else:
            raw = {}
    unknown = sorted(key for key in raw if key not in IGNORED_ATTRIBUTES and key not in _writable())
    if unknown:
        raise InvalidRequest(*(f"unknown attribute '{key}' for JobTask." for key in unknown))
    return {key: value for key, value in raw.items() if key not in IGNORED_ATTRIBUTES}


def _writable() -> frozenset[str]:
    return JobTaskSerializer.writable()
