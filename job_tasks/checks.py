"""System checks for the ``JOB_TASKS`` settings dict (ids ``job_tasks.E0xx`` / ``W0xx``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .app_settings import DEFAULTS
from .uuids import CLUSTER_ID_RE


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@register(Tags.compatibility)
def check_settings(**kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    user = getattr(settings, "JOB_TASKS", {})
    if not isinstance(user, dict):
        return [
            Error(
                "JOB_TASKS must be a dict.",
                hint="Set JOB_TASKS = {} or remove it.",
                id="job_tasks.E001",
            )
        ]
    for key in sorted(set(user) - set(DEFAULTS)):
        errors.append(
            Error(
                f"JOB_TASKS has an unknown key {key!r}.",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                id="job_tasks.E002",
            )
        )
    merged = {**DEFAULTS, **user}
    if not (isinstance(merged["CLUSTER_ID"], str) and CLUSTER_ID_RE.match(merged["CLUSTER_ID"])):
        errors.append(
            Error(
                "JOB_TASKS['CLUSTER_ID'] must be five characters from [0-9a-z].",
                hint="For example 'zzzzz' (the default) or 'x1y2z'.",
                id="job_tasks.E003",
            )
        )
    for key in ("DEFAULT_LIMIT", "MAX_LIMIT", "MAX_BODY_BYTES", "MAX_FILTERS"):
        if not _positive_int(merged[key]):
            errors.append(
                Error(
                    f"JOB_TASKS[{key!r}] must be a positive integer.",
                    hint=f"The default is {DEFAULTS[key]!r}.",
                    id="job_tasks.E004",
                )
            )
    if (
        _positive_int(merged["DEFAULT_LIMIT"])
        and _positive_int(merged["MAX_LIMIT"])
        and merged["DEFAULT_LIMIT"] > merged["MAX_LIMIT"]
    ):
        errors.append(
            Error(
                "JOB_TASKS['DEFAULT_LIMIT'] is larger than JOB_TASKS['MAX_LIMIT'].",
                hint="Lower DEFAULT_LIMIT or raise MAX_LIMIT.",
                id="job_tasks.E005",
            )
        )
    lifetime = merged["TOKEN_LIFETIME_SECONDS"]
    if lifetime is not None and not _positive_int(lifetime):
        errors.append(
            Error(
                "JOB_TASKS['TOKEN_LIFETIME_SECONDS'] must be None or a positive integer.",
                hint="None (the default) makes tokens that never expire.",
                id="job_tasks.E006",
            )
        )
    if not (isinstance(merged["MANAGER_GROUP_NAME"], str) and merged["MANAGER_GROUP_NAME"]):
        errors.append(
            Error(
                "JOB_TASKS['MANAGER_GROUP_NAME'] must be a non-empty string.",
                hint=f"The default is {DEFAULTS['MANAGER_GROUP_NAME']!r}.",
                id="job_tasks.E007",
            )
        )
    for name, check_id in (("PREPARED_STATEMENTS", "E010"), ("SINGLE_STATEMENT_WRITES", "E011")):
        if not isinstance(merged[name], bool):
            errors.append(
                Error(
                    f"JOB_TASKS[{name!r}] must be True or False.",
                    hint="The default is True.",
                    id=f"job_tasks.{check_id}",
                )
            )
    errors.extend(_check_scheduling(merged))
    if not getattr(settings, "USE_TZ", True):
        errors.append(
            Warning(
                "USE_TZ is False: job task timestamps are stored naive and read as UTC.",
                hint="Set USE_TZ = True (Django's default).",
                id="job_tasks.W001",
            )
        )
    return errors


def _check_scheduling(merged: dict[str, Any]) -> list[CheckMessage]:
    """The scheduling keys: positive integers (E008), and leases no longer than allowed (E009)."""
    errors: list[CheckMessage] = []
    keys = ("DEFAULT_LEASE_SECONDS", "MAX_LEASE_SECONDS", "MAX_EXPIRED_LEASES", "MAX_CLAIM_LIMIT")
    for key in keys:
        if not _positive_int(merged[key]):
            errors.append(
                Error(
                    f"JOB_TASKS[{key!r}] must be a positive integer.",
                    hint=f"The default is {DEFAULTS[key]!r}.",
                    id="job_tasks.E008",
                )
            )
    default, largest = merged["DEFAULT_LEASE_SECONDS"], merged["MAX_LEASE_SECONDS"]
    if _positive_int(default) and _positive_int(largest) and default > largest:
        errors.append(
            Error(
                "JOB_TASKS['DEFAULT_LEASE_SECONDS'] is larger than JOB_TASKS['MAX_LEASE_SECONDS'].",
                hint="Lower DEFAULT_LEASE_SECONDS or raise MAX_LEASE_SECONDS.",
                id="job_tasks.E009",
            )
        )
    return errors
