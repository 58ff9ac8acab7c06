"""Validation of written attributes: strict JSON types, no silent coercion (spec §15.1).

Only the *shape* of the input is checked here (types, ranges, formats). Rules that need
the database or the caller (uuids, owners, the job-manager role, qsequence) live in the
domain layer, ``operations.py``, so the API and the admin share them.
"""

from __future__ import annotations

import math
import re
import threading
from datetime import datetime, timezone
from typing import Any

from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from . import uuids
from .renderers import loads

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
#: ASCII digits only (``\d`` also takes "²", which ``int()`` refuses), and few enough
#: that ``int()`` never hits Python's digit limit: anything longer is out of range anyway.
_INTEGER_RE = re.compile(r"-?[0-9]{1,30}")
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


class StrictCharField(serializers.CharField):
    """A JSON string; numbers and booleans are refused, not turned into text."""

    default_error_messages = {"invalid": "must be a string, not {kind}."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid", kind=type(data).__name__)
        if "\x00" in data:
            raise serializers.ValidationError("must not contain NUL characters.")
        return super().to_internal_value(data)


class UuidField(StrictCharField):
    """A well-formed Arvados uuid string (or null, where allowed)."""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not uuids.is_uuid(value):
            raise serializers.ValidationError(f"'{value}' is not a valid Arvados uuid.")
        return value


class StrictIntegerField(serializers.Field):
    """A JSON integer, or a string of digits (form-encoded clients), within ``bounds``."""

    def __init__(self, *, bounds: tuple[int, int], **kwargs: Any) -> None:
        self.bounds = bounds
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, (int, str)):
            raise serializers.ValidationError(f"must be an integer, not {type(data).__name__}.")
        if isinstance(data, str):
            text = data.strip()
            if not _INTEGER_RE.fullmatch(text):
                if re.fullmatch(r"-?[0-9]+", text):
                    raise serializers.ValidationError("is out of range.")
                raise serializers.ValidationError(f"must be an integer, not '{data[:40]}'.")
            data = int(text)
        low, high = self.bounds
        if not low <= data <= high:
            raise serializers.ValidationError(f"{data} is out of range [{low}, {high}].")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class ProgressField(serializers.Field):
    """A number in [0, 1] (or a numeric string)."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, (int, float, str)):
            raise serializers.ValidationError(f"must be a number, not {type(data).__name__}.")
        try:
            value = float(data)
        except OverflowError:  # an integer beyond any float
            raise serializers.ValidationError("is out of range [0, 1].") from None
        except ValueError:
            raise serializers.ValidationError(f"must be a number, not '{data}'.") from None
        if not math.isfinite(value) or not 0 <= value <= 1:
            raise serializers.ValidationError(f"{data} is out of range [0, 1].")
        return value

    def to_representation(self, value: Any) -> Any:
        return value


class StrictBooleanField(serializers.Field):
    """``true``/``false``, or the spellings form-encoded clients send: ``"true"``, ``"1"``..."""

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        if isinstance(data, int) and data in (0, 1):
            return bool(data)
        if isinstance(data, str):
            lowered = data.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
        raise serializers.ValidationError(f"must be true or false, not {data!r}.")

    def to_representation(self, value: Any) -> Any:
        return value


class TimestampField(serializers.Field):
    """An ISO-8601 timestamp string; a naive one is read as UTC."""

    def to_internal_value(self, data: Any) -> datetime:
        if not isinstance(data, str):
            raise serializers.ValidationError(
                f"must be an ISO-8601 timestamp string, not {type(data).__name__}."
            )
        text = data.strip()
        if text.endswith(("z", "Z")):
            text = text[:-1] + "+00:00"
        # Arvados sends nine fractional digits; Python keeps six.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        try:
            value = parse_datetime(text)
        except ValueError:
            value = None
        if value is None:
            raise serializers.ValidationError(f"'{data}' is not an ISO-8601 timestamp.")
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        try:
            in_range = 1 <= value.astimezone(timezone.utc).year <= 9998
        except OverflowError:  # e.g. 9999-12-31T23:59:59-23:00 is past year 9999 in UTC
            in_range = False
        if not in_range:
            raise serializers.ValidationError(f"'{data}' is out of range.")
        return value

    def to_representation(self, value: Any) -> Any:
        return value


class ParametersField(serializers.Field):
    """A JSON object, or a string holding one (spec §6.3). ``null`` means ``{}``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is None:
            return True, {}
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, str):
            try:
                data = loads(data)
            except (ValueError, RecursionError) as exc:
                raise serializers.ValidationError(f"is not valid JSON: {exc}") from None
            if data is None:
                return {}
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                f"must be a Hash (a JSON object), not {_json_kind(data)}."
            )
        if _contains_nul(data):  # PostgreSQL cannot store U+0000 in jsonb
            raise serializers.ValidationError("must not contain NUL characters.")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


def _contains_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, (int, float)):
        return "Number"
    return type(value).__name__


class JobTaskSerializer(serializers.Serializer):
    """The writable attributes of a job task and their types.

    Used for input only (``partial=True`` for every write: PUT and PATCH are both
    partial updates). Output is rendered by ``representation.py``.
    """

    uuid = StrictCharField(required=False, allow_blank=True, allow_null=True)
    owner_uuid = StrictCharField(required=False, allow_null=True, allow_blank=True)
    job_uuid = UuidField(required=False, allow_null=True)
    created_by_job_task_uuid = StrictCharField(required=False, allow_null=True)
    sequence = StrictIntegerField(bounds=INT32, required=False, allow_null=True)
    qsequence = StrictIntegerField(bounds=INT64, required=False, allow_null=True)
    parameters = ParametersField(required=False)
    output = StrictCharField(
        required=False, allow_null=True, allow_blank=True, trim_whitespace=False
    )
    progress = ProgressField(required=False, allow_null=True)
    success = StrictBooleanField(required=False, allow_null=True)
    started_at = TimestampField(required=False, allow_null=True)
    finished_at = TimestampField(required=False, allow_null=True)

    #: Attributes a client may write (every field above).
    @classmethod
    def writable(cls) -> frozenset[str]:
        return frozenset(cls._declared_fields)


_per_thread = threading.local()


def validated_attributes(data: Any) -> dict[str, Any]:
    """``data`` checked by ``JobTaskSerializer(partial=True)``: its validated data, or
    DRF's ``ValidationError`` with the same details as ``is_valid(raise_exception=True)``.

    One serializer per thread, reused: DRF builds a serializer's twelve fields anew for
    every instance, which costs six times what validating a write's attributes does;
    ``run_validation`` keeps no state on the serializer.
    """
    serializer = getattr(_per_thread, "serializer", None)
    if serializer is None:
        serializer = _per_thread.serializer = JobTaskSerializer(partial=True)
    return dict(serializer.run_validation(data))
