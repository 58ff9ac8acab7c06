"""JSON in and out: parsing request bodies, rendering responses, content negotiation."""

from __future__ import annotations

import json
import math
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


def loads(text: str | bytes, *, check_unicode: bool = True) -> Any:
    """Strict JSON parsing: UTF-8, no lone surrogates, no ``NaN`` or infinities, at most
    ``MAX_JSON_DEPTH`` levels deep; big integers kept exact.

    Input goes through the standard library (writes are small): orjson would read
    integers beyond 64 bits as floats, silently losing digits. What no database or JSON
    encoder could take back is refused: invalid UTF-8, ``\\udc00`` escapes that pair
    with nothing, ``NaN`` and numbers beyond a double (``1e400``). Output uses orjson.
    Raises ``ValueError`` (``json.JSONDecodeError`` and ``UnicodeError`` are ones).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # strict: encoded surrogates are invalid UTF-8 too
    value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    _check_document(value, check_unicode)
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond the range of a JSON number")
    return value


#: Deepest nesting of arrays and objects accepted in JSON input. Python's own limit
#: depends on its version (3.12 and later parse far deeper than they can write back),
#: and orjson writes at most 255 levels: one explicit bound, well below both.
MAX_JSON_DEPTH = 128


def _check_document(value: Any, check_unicode: bool) -> None:
    """Refuse nesting deeper than ``MAX_JSON_DEPTH`` and (``check_unicode``) strings,
    keys included, holding a lone surrogate, which is not Unicode."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if check_unicode and not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError("a string holds a lone surrogate (not Unicode)") from None
        elif isinstance(item, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)


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
