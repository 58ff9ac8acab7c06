"""JSON in and out: parsing request bodies, rendering responses, content negotiation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from .app_settings import app_settings


class ORJSONRenderer(BaseRenderer):
    """Renders already-shaped data (strings, numbers, dicts in wire order) with orjson."""

    media_type = "application/json"
    format = "json"
    charset = None  # JSON is UTF-8 by definition (RFC 8259); no charset parameter

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        try:
            return orjson.dumps(data)
        except orjson.JSONEncodeError:
            # orjson refuses integers beyond 64 bits; stored JSON may hold them.
            return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str | bytes) -> Any:
    """Strict JSON parsing that keeps big integers exact.

    orjson would read integers beyond 64 bits as floats, silently losing digits, so
    input goes through the standard library (writes are small); output uses orjson.
    Raises ``ValueError`` (``json.JSONDecodeError`` is one) on bad input.
    """
    return json.loads(text, parse_constant=_refuse_constant)


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large"


class ORJSONParser(BaseParser):
    """Parses JSON bodies (see ``loads``), refusing bodies over ``JOB_TASKS['MAX_BODY_BYTES']``."""

    media_type = "application/json"

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit = app_settings.MAX_BODY_BYTES
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge(f"Request body is larger than {limit} bytes")
        if not body.strip():
            return None
        try:
            return loads(body)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"invalid JSON: {exc}") from None


class AlwaysJSON(DefaultContentNegotiation):
    """Arvados answers JSON whatever ``Accept`` says; so do we (never a 406)."""

    def select_renderer(
        self, request: Request, renderers: list[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return renderers[0], renderers[0].media_type
