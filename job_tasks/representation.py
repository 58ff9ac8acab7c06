"""The wire shape of a job task: key order, timestamp format, etag, ``href`` and ``select``.

Reads never go through a DRF serializer: rows come from ``QuerySet.values()`` and are
turned into dicts here, once, in the key order Arvados clients expect (spec §2.1).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import orjson

from .models import JobTask
from .uuids import LOG_INFIX, base36

KIND = "arvados#jobTask"
LIST_KIND = "arvados#jobTaskList"

#: Stored attributes in wire order (spec §2.1, rows 4–19).
STORED_ATTRIBUTES: tuple[str, ...] = (
    "uuid",
    "owner_uuid",
    "created_at",
    "modified_by_client_uuid",
    "modified_by_user_uuid",
    "modified_at",
    "job_uuid",
    "created_by_job_task_uuid",
    "sequence",
    "qsequence",
    "parameters",
    "output",
    "progress",
    "success",
    "started_at",
    "finished_at",
)
#: Every key of a rendered object, in order.
WIRE_ATTRIBUTES: tuple[str, ...] = ("href", "kind", "etag", *STORED_ATTRIBUTES)
TIMESTAMP_ATTRIBUTES = frozenset(
    {"created_at", "modified_at", "started_at", "finished_at", "updated_at"}
)


def format_timestamp(value: datetime | str | None) -> str | None:
    """UTC with exactly nine fractional digits: ``2014-04-21T15:37:48.123456000Z``."""
    if value is None or isinstance(value, str):  # (None, or written by the database)
        return value
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(timezone.utc)
    return value.isoformat(timespec="microseconds")[:26] + "000Z"


def etag(row: Mapping[str, Any]) -> str:
    """MD5 of the stored attributes, in base 36 (as Arvados computes it, spec §2.3).

    ``row`` holds the stored attributes with timestamps already formatted.
    """
    return _etag_of([row[name] for name in STORED_ATTRIBUTES])


def columns_for(select: Sequence[str] | None) -> tuple[str, ...]:
    """The database columns needed to render ``select`` (None = everything).

    ``select=["kind"]`` needs no stored column: it reads ``kind``, the constant that
    ``ListQuery.filter`` annotates for that selection, so that ``distinct`` merges every
    row into one item, as SQL ``DISTINCT`` over the selected columns does (spec §7.5).
    """
    if select is None or "etag" in select:
        return STORED_ATTRIBUTES
    wanted = set(select)
    if "href" in wanted:
        wanted.add("uuid")
    return tuple(name for name in STORED_ATTRIBUTES if name in wanted) or ("kind",)


def render_row(row: dict[str, Any], select: Sequence[str] | None = None) -> dict[str, Any]:
    """Turn a row (a dict of stored attributes) into the wire object. ``row`` is
    modified in place."""
    if select is None:
        return _render_stored([row[name] for name in STORED_ATTRIBUTES])
    for name in TIMESTAMP_ATTRIBUTES.intersection(row):
        row[name] = format_timestamp(row[name])
    if "parameters" in row and row["parameters"] is None:
        row["parameters"] = {}
    out = {}
    for name in WIRE_ATTRIBUTES:
        if name == "kind":
            out["kind"] = KIND
        elif name not in select:
            continue
        elif name == "href":
            out["href"] = f"/job_tasks/{row['uuid']}"
        elif name == "etag":
            out["etag"] = etag(row)
        else:
            out[name] = row[name]
    return out


def render_task(task: JobTask, select: Sequence[str] | None = None) -> dict[str, Any]:
    """Render a model instance (get, create, update, delete)."""
    if select is None:
        return _render_stored([getattr(task, name) for name in STORED_ATTRIBUTES])
    return render_row({name: getattr(task, name) for name in STORED_ATTRIBUTES}, select)


def task_etag(task: JobTask) -> str:
    """The etag of a model instance (as ``render_task`` would put in the body)."""
    return _etag_of(_wire_values([getattr(task, name) for name in STORED_ATTRIBUTES]))


def render_event(event: Any, cluster_id: str) -> dict[str, Any]:
    """An audit event as an Arvados log object (``arvados#log``)."""
    uuid = f"{cluster_id}-{LOG_INFIX}-{base36(event.id).rjust(15, '0')}"
    attributes = event.new_attributes or event.old_attributes or {}
    return {
        "href": f"/logs/{uuid}",
        "kind": "arvados#log",
        "etag": "",
        "uuid": uuid,
        "object_uuid": event.object_uuid,
        "object_owner_uuid": attributes.get("owner_uuid"),
        "event_type": event.event_type,
        "event_at": format_timestamp(event.created_at),
        "modified_by_user_uuid": event.user_uuid,
        "modified_by_token_uuid": event.token_uuid,
        "summary": event.summary,
        "properties": {
            "old_attributes": event.old_attributes,
            "new_attributes": event.new_attributes,
        },
    }


def render_list(
    rows: Sequence[Sequence[Any]],
    *,
    names: Sequence[str],
    select: Sequence[str] | None,
    offset: int,
    limit: int,
    items_available: int | None,
) -> dict[str, Any]:
    """The list envelope (spec §7.9) of rows of the ``names`` columns; ``items_available``
    is left out for ``count=none``."""
    envelope: dict[str, Any] = {
        "kind": LIST_KIND,
        "etag": "",
        "self_link": "",
        "offset": offset,
        "limit": limit,
        "items": render_rows(names, rows, select),
    }
    if items_available is not None:
        envelope["items_available"] = items_available
    return envelope


def render_rows(
    names: Sequence[str], rows: Sequence[Sequence[Any]], select: Sequence[str] | None
) -> list[dict[str, Any]]:
    """Rows of the ``names`` columns as wire objects."""
    if select is None and tuple(names) == STORED_ATTRIBUTES:  # the common case, in one pass
        return [_render_stored(row) for row in rows]
    return [render_row(dict(zip(names, row, strict=True)), select) for row in rows]


_TIMESTAMP_INDEXES = tuple(
    index for index, name in enumerate(STORED_ATTRIBUTES) if name in TIMESTAMP_ATTRIBUTES
)
_PARAMETERS_INDEX = STORED_ATTRIBUTES.index("parameters")


def _wire_values(row: Sequence[Any]) -> list[Any]:
    """Every stored attribute (in order) as the wire has it: timestamps formatted,
    missing ``parameters`` as ``{}``."""
    values = list(row)
    for index in _TIMESTAMP_INDEXES:
        values[index] = format_timestamp(values[index])
    if values[_PARAMETERS_INDEX] is None:
        values[_PARAMETERS_INDEX] = {}
    return values


def _render_stored(row: Sequence[Any]) -> dict[str, Any]:
    """The whole wire object of a row of every stored attribute, in order."""
    values = _wire_values(row)
    out = {"href": f"/job_tasks/{values[0]}", "kind": KIND, "etag": _etag_of(values)}
    out.update(zip(STORED_ATTRIBUTES, values, strict=True))
    return out


def _etag_of(values: list[Any]) -> str:
    """MD5 of the values' JSON, written in base 36."""
    try:
        dump = orjson.dumps(values, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # integers beyond 64 bits in parameters
        dump = json.dumps(values, sort_keys=True, separators=(",", ":")).encode()
    return base36(int.from_bytes(hashlib.md5(dump, usedforsecurity=False).digest(), "big"))


def system_user_uuid(cluster_id: str) -> str:
    """The Arvados system user, owner of users and groups (``CCCCC-tpzed-000000000000000``)."""
    return f"{cluster_id}-tpzed-{'0' * 15}"


def render_user(user: Any, *, uuid: str, is_job_manager: bool, cluster_id: str) -> dict[str, Any]:
    """An ``arvados#user`` object for any ``AUTH_USER_MODEL`` (fields it lacks are null)."""
    email_field = user.get_email_field_name() if hasattr(user, "get_email_field_name") else None
    body: dict[str, Any] = {
        "href": f"/users/{uuid}",
        "kind": "arvados#user",
        "etag": "",
        "uuid": uuid,
        "owner_uuid": system_user_uuid(cluster_id),
        "created_at": format_timestamp(getattr(user, "date_joined", None)),
        "email": getattr(user, email_field, None) if email_field else None,
        "username": user.get_username(),
        "first_name": getattr(user, "first_name", None),
        "last_name": getattr(user, "last_name", None),
        "is_admin": bool(user.is_active and getattr(user, "is_superuser", False)),
        "is_active": bool(user.is_active),
        "is_job_manager": is_job_manager,
    }
    body["etag"] = _etag_of(list(body.values()))
    return body


def render_group(
    name: str, uuid: str, *, is_manager_group: bool, cluster_id: str
) -> dict[str, Any]:
    """An ``arvados#group`` object for a Django group (a ``role`` group in Arvados terms)."""
    body: dict[str, Any] = {
        "href": f"/groups/{uuid}",
        "kind": "arvados#group",
        "etag": "",
        "uuid": uuid,
        "owner_uuid": system_user_uuid(cluster_id),
        "name": name,
        "group_class": "role",
        "is_job_manager_group": is_manager_group,
    }
    body["etag"] = _etag_of(list(body.values()))
    return body
