"""The audit log: ``record()`` writes one ``AuditEvent`` per change, in the caller's transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .models import AuditEvent, JobTask
from .representation import STORED_ATTRIBUTES, format_timestamp

if TYPE_CHECKING:
    from .identities import Actor

_TIMESTAMPS = frozenset({"created_at", "modified_at", "started_at", "finished_at"})


def snapshot(task: JobTask) -> dict[str, Any]:
    """The task's stored attributes, JSON-ready (timestamps as the API renders them)."""
    out: dict[str, Any] = {}
    for name in STORED_ATTRIBUTES:
        value = getattr(task, name)
        out[name] = format_timestamp(value) if name in _TIMESTAMPS else value
    return out


def build_event(
    event_type: str,
    task_uuid: str,
    actor: Actor | None,
    *,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    summary: str = "",
) -> AuditEvent:
    """An unsaved event (``actor`` None: done by the system), for ``record_many``."""
    return AuditEvent(
        event_type=event_type,
        object_uuid=task_uuid,
        user_uuid=actor.uuid if actor is not None else None,
        token_uuid=actor.token_uuid if actor is not None else None,
        summary=summary[:200],
        old_attributes=old,
        new_attributes=new,
    )


def record(
    event_type: str,
    task_uuid: str,
    actor: Actor | None,
    *,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    summary: str = "",
    using: str = "default",
) -> AuditEvent:
    """Write one audit event. Call it inside the transaction that makes the change."""
    event = build_event(event_type, task_uuid, actor, old=old, new=new, summary=summary)
    event.save(using=using, force_insert=True)
    return event


def record_many(events: list[AuditEvent], *, using: str = "default") -> None:
    """Write several events in one query (scheduling changes many tasks at once)."""
    AuditEvent.objects.using(using).bulk_create(events)
