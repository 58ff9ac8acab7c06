"""The Arvados error envelope (spec §9): ``{"errors": [...], "error_token": "..."}``.

Every error the API answers, 4xx or 5xx, goes through ``exception_handler`` (set on
the views, so the host project's ``REST_FRAMEWORK`` settings cannot change it).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from . import errors

logger = logging.getLogger("job_tasks")

_DOMAIN_STATUS: dict[type[errors.JobTasksError], int] = {
    errors.InvalidRequest: status.HTTP_422_UNPROCESSABLE_ENTITY,
    errors.PermissionRefused: status.HTTP_403_FORBIDDEN,
    errors.NotFound: status.HTTP_404_NOT_FOUND,
    errors.PreconditionFailed: status.HTTP_412_PRECONDITION_FAILED,
}


def error_token() -> str:
    """``<unix seconds>+<8 hex digits>``, for correlating a client's error with the logs."""
    return f"{int(time.time())}+{secrets.token_hex(4)}"


def error_body(messages: Iterable[str]) -> dict[str, Any]:
    return {"errors": list(messages) or ["Error"], "error_token": error_token()}


def error_response(
    status_code: int, messages: Iterable[str], headers: dict[str, str] | None = None
) -> Response:
    return Response(error_body(messages), status=status_code, headers=headers)


def flatten_detail(detail: Any, prefix: str = "") -> list[str]:
    """DRF error details (dicts, lists, strings) as flat ``"field: message"`` strings."""
    if isinstance(detail, dict):
        out: list[str] = []
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            out.extend(flatten_detail(value, f"{prefix}{name}: " if name else prefix))
        return out
    if isinstance(detail, list):
        return [message for item in detail for message in flatten_detail(item, prefix)]
    return [f"{prefix}{detail}"]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Turn any exception raised by a view into an enveloped response. Never re-raises."""
    set_rollback()
    if isinstance(exc, errors.JobTasksError):
        return error_response(_DOMAIN_STATUS.get(type(exc), 422), exc.messages)
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        return error_response(status.HTTP_401_UNAUTHORIZED, ["Not logged in"], headers)
    if isinstance(exc, (Http404, drf.NotFound)):
        return error_response(status.HTTP_404_NOT_FOUND, ["Path not found"])
    if isinstance(exc, DjangoPermissionDenied):
        return error_response(status.HTTP_403_FORBIDDEN, [str(exc) or "Forbidden"])
    if isinstance(exc, (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)):
        # Django's request-size limits: too many bytes, fields or files are all "too large".
        return error_response(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, [str(exc)])
    if isinstance(exc, SuspiciousOperation):
        # Any other malformed request is bad input like the rest: 422 (spec §9.2).
        return error_response(status.HTTP_422_UNPROCESSABLE_ENTITY, [f"Malformed request: {exc}"])
    if isinstance(exc, drf.ParseError):
        # Malformed request bodies are 422 like every other bad input (spec §15.1).
        return error_response(
            status.HTTP_422_UNPROCESSABLE_ENTITY, [f"Malformed request body: {exc.detail}"]
        )
    if isinstance(exc, drf.ValidationError):
        return error_response(status.HTTP_422_UNPROCESSABLE_ENTITY, flatten_detail(exc.detail))
    if isinstance(exc, drf.APIException):
        headers = {}
        if isinstance(exc, drf.MethodNotAllowed):
            headers["Allow"] = ", ".join(context["view"].allowed_methods)
        return error_response(exc.status_code, flatten_detail(exc.detail), headers)
    if isinstance(exc, DataError):
        logger.info("Database refused an operand: %s", exc)
        return error_response(
            status.HTTP_422_UNPROCESSABLE_ENTITY, [f"Invalid value: {str(exc).strip()}"]
        )
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("Database unavailable: %s", exc)
        return error_response(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            ["Service unavailable: the database cannot be reached, try again shortly"],
            {"Retry-After": "5"},
        )
    if isinstance(exc, DatabaseError):
        logger.exception("Database error")
        return error_response(status.HTTP_500_INTERNAL_SERVER_ERROR, ["Internal server error"])
    logger.exception("Unhandled error in the job tasks API")
    return error_response(status.HTTP_500_INTERNAL_SERVER_ERROR, ["Internal server error"])
