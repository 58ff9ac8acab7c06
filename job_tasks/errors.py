"""Domain errors. They carry messages only; ``exceptions.py`` maps them to HTTP statuses."""

from __future__ import annotations

from collections.abc import Iterable


class JobTasksError(Exception):
    """Base class: a request was refused. ``messages`` go to the client verbatim."""

    def __init__(self, *messages: str | Iterable[str]) -> None:
        flat: list[str] = []
        for message in messages:
            if isinstance(message, str):
                flat.append(message)
            else:
                flat.extend(message)
        self.messages = flat or [self.default_message]
        super().__init__("; ".join(self.messages))

    default_message = "Request refused"


class InvalidRequest(JobTasksError):
    """The request is malformed or breaks a validation rule (HTTP 422)."""

    default_message = "Invalid request"


class PermissionRefused(JobTasksError):
    """The caller may not do this (HTTP 403)."""

    default_message = "Forbidden"


class NotFound(JobTasksError):
    """No such object, or the caller may not see it (HTTP 404)."""

    default_message = "Path not found"


class PreconditionFailed(JobTasksError):
    """An ``If-Match`` etag no longer matches (HTTP 412)."""

    default_message = "Precondition failed: the object was changed by someone else"
